module concord/compat-tests/fuzz

go 1.26.7
