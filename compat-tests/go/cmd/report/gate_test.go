package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The gate's classification, end to end through the command (its output is
// what compat-tests/run greps).
func TestGateVerdict(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := write("first.json", `{"Action":"pass","Package":"p","Test":"TestPasses"}
{"Action":"run","Package":"p","Test":"TestFlaky"}
{"Action":"output","Package":"p","Test":"TestFlaky","Output":"    x_test.go:12: boom\n"}
{"Action":"fail","Package":"p","Test":"TestFlaky"}
{"Action":"fail","Package":"p","Test":"TestBroken"}
{"Action":"pass","Package":"p","Test":"TestListedPasses"}
{"Action":"fail","Package":"p","Test":"TestListedFails"}
{"Action":"skip","Package":"p","Test":"TestSkipped"}
{"Action":"fail","Package":"p","Test":"TestPasses/sub"}
`)
	list := write("list", "TestPasses\nTestFlaky\nTestBroken\nTestListedPasses\nTestListedFails\nTestSkipped\nTestNoResult\n")
	known := write("known.txt", "# comment\nTestListedPasses\tnot built\tissue 1\nTestListedFails\tnot built\tissue 1\nTestGone\tx\ty\n")
	rerun := write("rerun.json", `{"Action":"pass","Package":"p","Test":"TestFlaky"}
{"Action":"fail","Package":"p","Test":"TestBroken"}
{"Action":"fail","Package":"p","Test":"TestNoResult"}
`)
	bin := filepath.Join(dir, "report")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("report %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	if got, want := run("gate", "rerun", "-known", known, "-list", list, first), "TestBroken\nTestFlaky\nTestNoResult\n"; got != want {
		t.Errorf("rerun list = %q, want %q", got, want)
	}

	got := run("gate", "verdict", "-label", "off", "-known", known, "-list", list, "-rerun", rerun, first)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	wantPrefixes := []string{
		"broken: off TestBroken: failed, and failed again on its rerun",
		"flaky: off TestFlaky: failed, then passed on its rerun: x_test.go:12: boom",
		"now passes: off TestListedPasses: listed in known-failures.txt",
		"broken: off TestNoResult: failed, and failed again on its rerun",
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("verdict:\n%s\nwant %d lines", got, len(wantPrefixes))
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}

	// Without a rerun (own tests, or too many failures) every unlisted
	// failure breaks; without a known list, listed tests are just tests.
	got = run("gate", "verdict", "-label", "own", "-list", list, first)
	for _, w := range []string{"broken: own TestBroken:", "broken: own TestFlaky: x_test.go:12: boom",
		"broken: own TestListedFails:", "broken: own TestNoResult: no result"} {
		if !strings.Contains(got, w) {
			t.Errorf("own verdict lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "TestPasses") || strings.Contains(got, "TestSkipped") || strings.Contains(got, "now passes") {
		t.Errorf("own verdict flags a passing, skipped or listed test:\n%s", got)
	}

	got = run("gate", "stale", "-known", known, list)
	if want := "not in suite: TestGone:"; !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("stale = %q, want one line starting %q", got, want)
	}
}
