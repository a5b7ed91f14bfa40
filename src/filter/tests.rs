//! Tests for the filter module: go-bexpr's own grammar and evaluation tables
//! (adapted to JSON elements), the filter cases of Consul's `api` tests, Go
//! coercion rules, error texts, and a no-panic sweep over junk input.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::eval::{go_quote, parse_bool, parse_float, parse_int, parse_uint};
use super::parser::{self, Expr, Selector, SelectorKind};
use super::{Filter, FilterError, apply};

// ---- helpers ------------------------------------------------------------------

fn sel(s: &Selector) -> String {
    match s.kind {
        SelectorKind::Bexpr => s.path.join("."),
        SelectorKind::JsonPointer => format!("ptr:{}", s.path.join("/")),
    }
}

/// A compact rendering of the tree, for comparing parses.
fn dump(e: &Expr) -> String {
    let list = |terms: &[Expr]| terms.iter().map(dump).collect::<Vec<_>>().join("; ");
    match e {
        Expr::Or(terms) => format!("Or({})", list(terms)),
        Expr::And(terms) => format!("And({})", list(terms)),
        Expr::Not(inner) => format!("Not({})", dump(inner)),
        Expr::Match(m) => match &m.value {
            Some(v) => format!("{:?}({}, {:?})", m.op, sel(&m.selector), v),
            None => format!("{:?}({})", m.op, sel(&m.selector)),
        },
        Expr::Collection(c) => format!(
            "{:?}({} as {:?}){{{}}}",
            c.op,
            sel(&c.selector),
            c.binding,
            dump(&c.inner)
        ),
    }
}

fn parsed(input: &str) -> String {
    match parser::parse(input) {
        Ok(e) => dump(&e),
        Err(e) => panic!("{input:?} failed to parse: {e}"),
    }
}

fn parse_err(input: &str) -> String {
    match parser::parse(input) {
        Ok(e) => panic!("{input:?} parsed as {}", dump(&e)),
        Err(e) => e,
    }
}

fn eval(expr: &str, item: &Value) -> Result<bool, String> {
    let filter = Filter::parse(expr).map_err(|e| format!("parse: {e}"))?;
    filter.matches(item).map_err(|e| e.to_string())
}

fn check(expr: &str, item: &Value, expected: bool) {
    match eval(expr, item) {
        Ok(got) => assert_eq!(got, expected, "{expr}"),
        Err(e) => panic!("{expr}: unexpected error {e}"),
    }
}

fn check_err(expr: &str, item: &Value, expected: &str) {
    match eval(expr, item) {
        Ok(got) => panic!("{expr}: expected error {expected:?}, got {got}"),
        Err(e) => assert_eq!(e, expected, "{expr}"),
    }
}

// ---- grammar ------------------------------------------------------------------

#[test]
fn parses_match_operators() {
    let cases = [
        ("foo == 3", r#"Equal(foo, "3")"#),
        (r#""/foo" == 3"#, r#"Equal(ptr:foo, "3")"#),
        (
            r#""/hy-phen/under_score/pi|pe/do.t/ti~lde/co:lon" == 3"#,
            r#"Equal(ptr:hy-phen/under_score/pi|pe/do.t/ti~lde/co:lon, "3")"#,
        ),
        ("foo/bar == 3", r#"Equal(foo/bar, "3")"#),
        ("foo != xyz", r#"NotEqual(foo, "xyz")"#),
        ("list is empty", "IsEmpty(list)"),
        ("list is not empty", "IsNotEmpty(list)"),
        ("list is nil", "IsNil(list)"),
        ("list is not nil", "IsNotNil(list)"),
        ("foo in bar", r#"In(bar, "foo")"#),
        ("foo not in bar", r#"NotIn(bar, "foo")"#),
        ("bar contains foo", r#"In(bar, "foo")"#),
        ("bar not contains foo", r#"NotIn(bar, "foo")"#),
        ("foo matches bar", r#"Matches(foo, "bar")"#),
        ("foo not matches bar", r#"NotMatches(foo, "bar")"#),
        ("foo == \"bar\"", r#"Equal(foo, "bar")"#),
        ("foo != \"bar\"", r#"NotEqual(foo, "bar")"#),
        ("\"foo\" in bar", r#"In(bar, "foo")"#),
        ("\"foo\" not in bar", r#"NotIn(bar, "foo")"#),
        ("foo == `bar`", r#"Equal(foo, "bar")"#),
        ("foo != `bar`", r#"NotEqual(foo, "bar")"#),
        ("`foo` in bar", r#"In(bar, "foo")"#),
        ("`foo` not in bar", r#"NotIn(bar, "foo")"#),
        ("foo == 0.2", r#"Equal(foo, "0.2")"#),
        ("foo == 11.11", r#"Equal(foo, "11.11")"#),
        ("foo == -0.2", r#"Equal(foo, "-0.2")"#),
        ("foo == -7", r#"Equal(foo, "-7")"#),
        ("foo==3", r#"Equal(foo, "3")"#),
        ("ServiceID == ``", r#"Equal(ServiceID, "")"#),
        ("ServiceID == \"\"", r#"Equal(ServiceID, "")"#),
        // A selector on the right stands for its own text.
        ("Meta.env == prod.v1", r#"Equal(Meta.env, "prod.v1")"#),
        ("x == a[\"b\"]", r#"Equal(x, "a.b")"#),
        // A double-quoted value shaped like a JSON pointer is read as one.
        ("Path == \"/usr/bin\"", r#"Equal(Path, "usr/bin")"#),
        ("Path == \"/\"", r#"Equal(Path, "/")"#),
        ("Path == \"/a b\"", r#"Equal(Path, "/a b")"#),
    ];
    for (input, want) in cases {
        assert_eq!(parsed(input), want, "{input}");
    }
}

#[test]
fn parses_logic_and_precedence() {
    let cases = [
        ("not prod in tags", r#"Not(In(tags, "prod"))"#),
        (
            "port != 80 and port != 8080",
            r#"And(NotEqual(port, "80"); NotEqual(port, "8080"))"#,
        ),
        (
            "port == 80 or port == 443",
            r#"Or(Equal(port, "80"); Equal(port, "443"))"#,
        ),
        (
            "x in foo and not str == something or list is empty",
            r#"Or(And(In(foo, "x"); Not(Equal(str, "something"))); IsEmpty(list))"#,
        ),
        (
            "x in foo and not (str == something or list is empty)",
            r#"And(In(foo, "x"); Not(Or(Equal(str, "something"); IsEmpty(list))))"#,
        ),
        ("not not foo == 3", r#"Equal(foo, "3")"#),
        ("not not not foo == 3", r#"Not(Equal(foo, "3"))"#),
        (
            "a == 1 or b == 2 and c == 3",
            r#"Or(Equal(a, "1"); And(Equal(b, "2"); Equal(c, "3")))"#,
        ),
        (
            "(a == 1 or b == 2) and c == 3",
            r#"And(Or(Equal(a, "1"); Equal(b, "2")); Equal(c, "3"))"#,
        ),
        ("(foo == 3)", r#"Equal(foo, "3")"#),
        ("((foo == 3))", r#"Equal(foo, "3")"#),
        (
            "(foo == 3) and (bar == 4)",
            r#"And(Equal(foo, "3"); Equal(bar, "4"))"#,
        ),
        // Keywords are ordinary names where a selector or value is expected.
        ("not == 3", r#"Equal(not, "3")"#),
        ("not not == 3", r#"Not(Equal(not, "3"))"#),
        ("and == or", r#"Equal(and, "or")"#),
        ("x in not", r#"In(not, "x")"#),
        ("any == 1", r#"Equal(any, "1")"#),
        (
            "(((foo == 3) and (not ((bar in baz) and (not (one != two))))) or (((next is empty) and (not (foo is not empty))) and (bar not in foo)))",
            r#"Or(And(Equal(foo, "3"); Not(And(In(baz, "bar"); Not(NotEqual(one, "two"))))); And(And(IsEmpty(next); Not(IsNotEmpty(foo))); NotIn(foo, "bar")))"#,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parsed(input), want, "{input}");
    }
}

#[test]
fn parses_extra_whitespace() {
    let cases = [
        (
            "\t\r\n  foo \t\r\n == \t\r\n x \t\r\n",
            r#"Equal(foo, "x")"#,
        ),
        (
            "\t\r\n  foo \t\r\n != \t\r\n x \t\r\n",
            r#"NotEqual(foo, "x")"#,
        ),
        ("\t\r\n  foo \t\r\n in \t\r\n x \t\r\n", r#"In(x, "foo")"#),
        (
            "\t\r\n  foo \t\r\n not \t\r\n in \t\r\n x \t\r\n",
            r#"NotIn(x, "foo")"#,
        ),
        ("\t\r\n  foo \t\r\n is \t\r\n empty \t\r\n", "IsEmpty(foo)"),
        (
            "\t\r\n  foo \t\r\n is \t\r\n not \t\r\n empty \t\r\n",
            "IsNotEmpty(foo)",
        ),
        (
            "\t\r\n not \t\r\n  foo \t\r\n in \t\r\n x \t\r\n",
            r#"Not(In(x, "foo"))"#,
        ),
        (
            "\t\r\n foo \t\r\n == \t\r\n x \t\r\n and \t\r\n y \t\r\n is \t\r\n empty \t\r\n",
            r#"And(Equal(foo, "x"); IsEmpty(y))"#,
        ),
        (
            "\t\r\n foo \t\r\n == \t\r\n x \t\r\n or \t\r\n y \t\r\n is \t\r\n empty \t\r\n",
            r#"Or(Equal(foo, "x"); IsEmpty(y))"#,
        ),
        (
            "\t\r\n ( \t\r\n foo \t\r\n == \t\r\n x \t\r\n ) \t\r\n",
            r#"Equal(foo, "x")"#,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parsed(input), want, "{input:?}");
    }
}

#[test]
fn parses_selectors() {
    let cases = [
        (
            "`environment` in foo.bar[\"meta\"].tags[\t`ENV` ]",
            r#"In(foo.bar.meta.tags.ENV, "environment")"#,
        ),
        (
            r#"environment in "/hy-phen/under_score/pi|pe/do.t/ti~lde""#,
            r#"In(ptr:hy-phen/under_score/pi|pe/do.t/ti~lde, "environment")"#,
        ),
        (
            r#"environment in foo["bar"]["meta"]["tags"]["ENV"]"#,
            r#"In(foo.bar.meta.tags.ENV, "environment")"#,
        ),
        (
            "environment in foo.bar.meta.tags.ENV",
            r#"In(foo.bar.meta.tags.ENV, "environment")"#,
        ),
        (
            "environment in foo[\"abc-def ghi åß∂ƒ\"]",
            r#"In(foo.abc-def ghi åß∂ƒ, "environment")"#,
        ),
        (
            "Checks.0.Status == passing",
            r#"Equal(Checks.0.Status, "passing")"#,
        ),
        (r#""/a~1b/c~0d" == 1"#, r#"Equal(ptr:a/b/c~d, "1")"#),
        (r#""" == 1"#, r#"Equal(ptr:, "1")"#),
        (r#""/ünï/ü1" == 1"#, r#"Equal(ptr:ünï/ü1, "1")"#),
    ];
    for (input, want) in cases {
        assert_eq!(parsed(input), want, "{input}");
    }
}

#[test]
fn parses_string_escapes() {
    let cases = [
        (r#"foo == "a\tb""#, "a\tb"),
        (r#"foo == "a\\b""#, "a\\b"),
        (r#"foo == "\u00e9\U0001F600""#, "é😀"),
        (
            r#"foo == "\x41\101\a\b\f\n\r\v""#,
            "AA\u{7}\u{8}\u{c}\n\r\u{b}",
        ),
        ("foo == `a\\tb`", "a\\tb"),
        ("foo == `multi\r\nline`", "multi\nline"),
        ("foo == \"ünïcödé\"", "ünïcödé"),
    ];
    for (input, want) in cases {
        let Ok(Expr::Match(m)) = parser::parse(input) else {
            panic!("{input} did not parse to a match");
        };
        assert_eq!(m.value.as_deref(), Some(want), "{input}");
    }
}

#[test]
fn parses_collections() {
    let cases = [
        (
            r#"all group.tasks as t { t.name == "hello" }"#,
            r#"All(group.tasks as Default("t")){Equal(t.name, "hello")}"#,
        ),
        (
            r#"all group.tasks as t { all t.test as i { i == "test" }}"#,
            r#"All(group.tasks as Default("t")){All(t.test as Default("i")){Equal(i, "test")}}"#,
        ),
        (
            "all group.tasks as k, v { k == v }",
            r#"All(group.tasks as IndexAndValue("k", "v")){Equal(k, "v")}"#,
        ),
        (
            "any group.tasks as k, _ { k == v }",
            r#"Any(group.tasks as Index("k")){Equal(k, "v")}"#,
        ),
        (
            "any group.tasks as _ , v { k == v }",
            r#"Any(group.tasks as Value("v")){Equal(k, "v")}"#,
        ),
        (
            r#"any group.tasks as t { any t.test as t { t == "test" }}"#,
            r#"Any(group.tasks as Default("t")){Any(t.test as Default("t")){Equal(t, "test")}}"#,
        ),
        (
            "a == 1 or any Tags as t { t == x }",
            r#"Or(Equal(a, "1"); Any(Tags as Default("t")){Equal(t, "x")})"#,
        ),
        (
            "(any Tags as t { t == x }) and a == 1",
            r#"And(Any(Tags as Default("t")){Equal(t, "x")}; Equal(a, "1"))"#,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parsed(input), want, "{input}");
    }
}

#[test]
fn collection_placement_follows_the_grammar() {
    // A collection is an OrExpression alternative: it cannot be an operand of
    // `and` or `not` without parentheses, nor the left operand of `or`.
    assert!(parser::parse("any Tags as t { t == x } and a == 1").is_err());
    assert!(parser::parse("not any Tags as t { t == x }").is_err());
    assert!(parser::parse("not (any Tags as t { t == x })").is_ok());
    // A number right before `}` is an invalid number literal in go-bexpr.
    assert_eq!(
        parse_err("any Ports as p {p == 80}"),
        r#"1:24 (23): rule "number": Invalid number literal"#
    );
}

#[test]
fn syntax_error_texts() {
    let cases = [
        (
            r#""/hy-phen/under_score/pi|pe/do.t/ti~lde/" == 3"#,
            r#"1:43 (42): no match found, expected: "in", "not" or [ \t\r\n]"#,
        ),
        (
            "foo == \"12x",
            r#"1:12 (11): rule "string": Unterminated string literal"#,
        ),
        (
            "foo == `12x",
            r#"1:12 (11): rule "string": Unterminated string literal"#,
        ),
        (
            "foo == 3x",
            r#"1:9 (8): rule "number": Invalid number literal"#,
        ),
        ("foo[3] == abc", r#"1:5 (4): rule "index": Invalid index"#),
        (
            "x in foo[\"abc\"",
            r#"1:15 (14): rule "index": Unclosed index expression"#,
        ),
        (
            "foo[\"abc\" == 3",
            r#"1:11 (10): rule "index": Unclosed index expression"#,
        ),
        ("x in 32", r#"1:6 (5): rule "match": Invalid selector"#),
        (
            "32 == 32",
            r#"1:4 (3): no match found, expected: "in", "not" or [ \t\r\n]"#,
        ),
        (
            "32 is empty",
            r#"1:4 (3): no match found, expected: "in", "not" or [ \t\r\n]"#,
        ),
        (
            "x in foo abc",
            r#"1:10 (9): no match found, expected: "and", "or", [ \t\r\n] or EOF"#,
        ),
        (
            "x in foo and ",
            r#"1:14 (13): no match found, expected: "(", "-", "0", "\"", "`", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "x in foo or ",
            r#"1:13 (12): no match found, expected: "(", "-", "0", "\"", "`", "all", "any", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "x in foo or not ",
            r#"1:17 (16): no match found, expected: "!=", "(", "-", "0", "==", "\"", "`", "contains", "in", "is", "matches", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "(foo == 4",
            r#"1:10 (9): rule "grouping": Unmatched parentheses"#,
        ),
        (
            r#"all group.tasks as { t.name == "hello" }"#,
            r#"1:20 (19): no match found, expected: "_", [ \t\r\n] or [a-zA-Z]"#,
        ),
        (
            r#"all as t { t.name == "hello" }"#,
            r#"1:8 (7): no match found, expected: "as" or [ \t\r\n]"#,
        ),
        // Go's strconv.Unquote rejects the escape; pigeon reports the action error.
        (
            r#"foo == "\q""#,
            r#"1:8 (7): rule "string": invalid syntax"#,
        ),
        (
            r#"foo == "a\""#,
            r#"1:8 (7): rule "string": invalid syntax"#,
        ),
        (
            "foo == \"a\nb\"",
            r#"1:8 (7): rule "string": invalid syntax"#,
        ),
        // An unterminated key inside an index fails both index alternatives.
        (
            "foo[\"abc",
            "1:9 (8): rule \"string\": Unterminated string literal\n1:5 (4): rule \"index\": Invalid index",
        ),
        // Lines and columns as pigeon counts them: a newline sits in column 0.
        (
            "foo == 1\nand\nbar",
            "3:4 (16): no match found, expected: \"!=\", \".\", \"==\", \"[\", [ \\t\\r\\n] or [a-zA-Z0-9_/]",
        ),
        (
            "",
            r#"1:1 (0): no match found, expected: "(", "-", "0", "\"", "`", "all", "any", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "foo = 3",
            r#"1:5 (4): no match found, expected: "!=", "==", "contains", "in", "is", "matches", "not" or [ \t\r\n]"#,
        ),
        (
            "a == 010",
            r#"1:7 (6): rule "number": Invalid number literal"#,
        ),
        (
            "a == 1.2.3",
            r#"1:9 (8): rule "number": Invalid number literal"#,
        ),
        ("a == b[", r#"1:8 (7): rule "index": Invalid index"#),
    ];
    for (input, want) in cases {
        assert_eq!(parse_err(input), want, "{input:?}");
    }
}

#[test]
fn parse_error_display_has_consul_prefix() {
    let err = Filter::parse("foo ==").unwrap_err();
    assert!(matches!(err, FilterError::Parse(_)));
    assert_eq!(
        err.to_string(),
        "Failed to create boolean expression evaluator: 1:7 (6): no match found, expected: \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]"
    );
}

#[test]
fn empty_expression_keeps_everything() {
    let filter = Filter::parse("").unwrap();
    assert!(filter.matches(&json!({})).unwrap());
    assert_eq!(filter.retain(vec![json!(1), json!(2)]).unwrap().len(), 2);
    // Whitespace alone is not empty: go-bexpr parses it and fails.
    assert!(Filter::parse("  ").is_err());
}

#[test]
fn nesting_is_bounded() {
    // The outermost pair belongs to the Input rule and does not count.
    let ok = format!("{}a == 1{}", "(".repeat(65), ")".repeat(65));
    assert!(Filter::parse(&ok).is_ok());
    let deep = format!("{}a == 1{}", "(".repeat(66), ")".repeat(66));
    let err = Filter::parse(&deep).unwrap_err().to_string();
    assert_eq!(
        err,
        "Failed to create boolean expression evaluator: 1:67 (66): rule \"grouping\": expression nested more than 64 levels deep"
    );
    let deep_collections = format!("{}a == 1{}", "any x as y { ".repeat(65), " }".repeat(65));
    assert!(Filter::parse(&deep_collections).is_err());
    // Long flat chains are loops, not recursion.
    let chain = vec!["a == 1"; 20_000].join(" and ");
    assert!(Filter::parse(&chain).is_ok());
    let nots = format!("{}a == 1", "not ".repeat(20_001));
    let filter = Filter::parse(&nots).unwrap();
    assert!(!filter.matches(&json!({"a": 1})).unwrap());
}

#[test]
fn deepest_nesting_fits_half_a_worker_stack() {
    let run = || {
        let parens = format!("{}x == 1{}", "(".repeat(65), ")".repeat(65));
        let collections = format!("{}x == 1{}", "any a as b { (".repeat(32), ") }".repeat(32));
        for input in [parens, collections] {
            let filter = Filter::parse(&input).unwrap();
            assert!(filter.matches(&json!({"a": [[1]], "x": 1})).is_ok());
            assert!(filter.validate_fields(&["a", "x"]).is_ok());
        }
    };
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(run)
        .unwrap();
    assert!(handle.join().is_ok());
}

#[test]
fn nested_parentheses_parse_in_linear_time() {
    // pigeon without memoisation is exponential here; this must stay fast.
    let input = format!("{}a == 1{}", "(a == 2 or (".repeat(32), "))".repeat(32));
    let start = std::time::Instant::now();
    assert!(Filter::parse(&input).is_ok());
    let broken = format!("{}a ==", "not (".repeat(64));
    assert!(Filter::parse(&broken).is_err());
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn no_panic_on_junk() {
    let pieces = [
        "a", "Meta", ".", "[", "]", "\"", "`", "(", ")", "{", "}", " ", "\t", "\n", "==", "!=",
        "=", "!", "and", "or", "not", "in", "is", "empty", "nil", "contains", "matches", "any",
        "all", "as", ",", "_", "-", "0", "1", "9", "3.", ".5", "/", "~", "\\", "\\u", "\\x4", "é",
        "😀", "\"/a\"", "`x`", "\"\"", "Tags", "k", "v",
    ];
    let item = json!({
        "a": 1, "Meta": {"a": "x"}, "Tags": ["a", "b"], "k": [1, {"v": null}], "v": null
    });
    // A small deterministic generator keeps the test reproducible.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let mut input = String::new();
        for _ in 0..len {
            input.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            if next() % 3 == 0 {
                input.push(' ');
            }
        }
        if let Ok(filter) = Filter::parse(&input) {
            let _ = filter.matches(&item);
        }
    }
    // Every prefix of valid expressions.
    let valid = [
        r#"Node.Meta["os"] == "linux" and (Service.Port == 80 or not "x" in Service.Tags)"#,
        r#"(all Checks as _, c { c.Status matches "^pass(ing)?$" }) or "/a~1b/0" is not empty"#,
        "(any Meta as k, v { k == `a` and v != \"b\\u00e9\" }) and Tags not contains a",
    ];
    for text in valid {
        for (i, _) in text.char_indices() {
            if let Ok(filter) = Filter::parse(&text[..i]) {
                let _ = filter.matches(&item);
            }
        }
        assert!(Filter::parse(text).is_ok(), "{text}");
    }
}

// ---- evaluation: go-bexpr's tables ------------------------------------------

fn flat() -> Value {
    json!({
        "Int": -1, "Int8": -2, "Int16": -3, "Int32": -4, "Int64": -5,
        "Uint": 6, "Uint8": 7, "Uint16": 8, "Uint32": 9, "Uint64": 10,
        "Float32": 1.1, "Float64": 1.2,
        "Bool": true,
        "String": "exported",
        "ColonString": "expo:rted",
        "slash/value": "hello",
    })
}

#[test]
fn flat_struct_table() {
    let item = flat();
    let cases = [
        ("Int == -1", true),
        ("Int == -99", false),
        ("Int != -1", false),
        ("Int != -99", true),
        ("Int8 == -2", true),
        ("Int16 != -3", false),
        ("Int32 == -4", true),
        ("Int64 != -99", true),
        ("Uint == 6", true),
        ("Uint == 99", false),
        ("Uint8 != 7", false),
        ("Uint16 == 8", true),
        ("Uint32 != 99", true),
        ("Uint64 == 10", true),
        ("Uint64 != 10", false),
        ("Float32 == 1.1", true),
        ("Float32 == 9.9", false),
        ("Float64 == 1.2", true),
        ("Float64 != 1.2", false),
        ("Float64 != 9.9", true),
        ("Bool == true", true),
        ("Bool == false", false),
        ("Bool != true", false),
        ("Bool != false", true),
        ("String == `exported`", true),
        ("String == `not-it`", false),
        ("String != `exported`", false),
        ("String != `not-it`", true),
        ("port in String", true),
        ("part in String", false),
        ("port not in String", false),
        ("part not in String", true),
        ("ColonString == `expo:rted`", true),
        ("ColonString != `expor:ted`", true),
        ("slash/value == `hello`", true),
        ("String matches \t`^ex.*`", true),
        ("String not matches `^anchored.*`", true),
        ("String matches \t`^anchored.*`", false),
        ("String not matches `^ex.*`", false),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
}

#[test]
fn map_of_maps_table() {
    let item = json!({
        "foo": {"bar": true, "baz": false},
        "abc": null,
        "co:lon": {"bar": true},
    });
    let cases = [
        ("bar in foo", true),
        (r#"bar in "/co:lon""#, true),
        ("arg in foo", false),
        ("arg not in foo", true),
        ("baz not in foo", false),
        ("foo is empty", false),
        ("foo is not empty", true),
        ("abc is empty", true),
        ("abc is not empty", false),
        ("foo in abc", false),
        ("foo not in abc", true),
        ("foo.bar == true", true),
        ("foo.bar == false", false),
        ("foo.baz == false", true),
        ("foo.baz == true", false),
        ("foo.bar != true", false),
        ("foo.bar != false", true),
        ("foo.baz != false", false),
        ("foo.baz != true", true),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
    check_err(
        "foo.bar.baz == 3",
        &item,
        "error finding value in datum: /foo/bar/baz: at part 2, invalid value kind: bool",
    );
}

fn nested() -> Value {
    json!({
        "Nested": {
            "Map": {
                "foo": "bar", "bar": "baz", "abc": "123", "colon": "co:lon",
                "co:lon": "co:lon", "email": "foo@example.com"
            },
            "MapOfStructs": {
                "one": {"Foo": 42, "Baz": "exported"},
                "two": {"Foo": 77, "Baz": "consul"}
            },
            "SliceOfInts": [1, 3, 5, 7, 9],
            "SliceOfStructs": [{"X": 1, "Y": 2}, {"X": 3, "Y": 5}],
            "SliceOfInfs": ["foobar", 1, true],
            "SliceOfPointersToStructs": [{"X": 1, "Y": 2}, null]
        },
        "TopInt": 5
    })
}

#[test]
fn nested_table() {
    let item = nested();
    let cases = [
        ("Nested.Map.foo == bar", true),
        ("Nested.Map.foo contains ba", true),
        ("Nested.Map.foo == baz", false),
        ("Nested.Map is not empty", true),
        ("Nested.Map contains foo and Nested.Map contains bar", true),
        (r#"Nested.Map.colon == "co:lon""#, true),
        (r#""/Nested/Map/co:lon" == "co:lon""#, true),
        ("Nested.Map contains nope", false),
        ("Nested.Map contains bar", true),
        ("Nested.Map.bar == `bazel`", false),
        ("TopInt != 0", true),
        (
            "Nested.Map contains nope or (Nested.Map contains bar and Nested.Map.bar == `bazel`) or TopInt != 0",
            true,
        ),
        ("Nested.MapOfStructs.one.Foo == 42", true),
        ("Nested.MapOfStructs.one.Baz == `exported`", true),
        ("Nested.MapOfStructs.two.Foo == 77", true),
        ("Nested.MapOfStructs.two.Baz == `consul`", true),
        ("7 in Nested.SliceOfInts", true),
        (
            "Nested.MapOfStructs is empty or (Nested.SliceOfInts contains 7 and 9 in Nested.SliceOfInts)",
            true,
        ),
        ("Nested.SliceOfStructs.0.X == 1", true),
        ("Nested.SliceOfStructs.0.Y == 4", false),
        (r#""foobar" in "/Nested/SliceOfInfs""#, true),
        (r#""1" in "/Nested/SliceOfInfs""#, true),
        (r#""2" in "/Nested/SliceOfInfs""#, false),
        (r#""true" in "/Nested/SliceOfInfs""#, true),
        (
            r#""/Nested/Map/email" matches "(foz|foo)@example.com""#,
            true,
        ),
        // Missing map keys.
        ("Nested.Map.notfound == 4", false),
        ("Nested.Map.notfound != 4", true),
        ("4 in Nested.Map.notfound", false),
        ("4 not in Nested.Map.notfound", true),
        ("Nested.Map.notfound is empty", true),
        ("Nested.Map.notfound is not empty", false),
        (r#"Nested.Map.notfound matches ".*""#, false),
        (r#"Nested.Map.notfound not matches ".*""#, true),
        ("Nested.Map.notfound is nil", true),
        ("Nested.Map.notfound is not nil", false),
        // go-bexpr reports an unknown struct field here; JSON cannot tell a
        // struct from a map, so these behave as missing keys.
        ("Nested.Notfound == 4", false),
        ("Nested.Notfound != 4", true),
        ("Missing.Deeper.Still == 4", false),
        ("Missing.Deeper.Still != 4", true),
        // all
        ("all Nested.SliceOfInts as i { i != 42 }", true),
        ("all Nested.SliceOfInts as i { i == 1 }", false),
        (r#"all Nested.Map as v { v == "bar" }"#, false),
        (r#"all Nested.Map as v { v != "hello" }"#, true),
        (r#"all Nested.Map as k, _ { k != "foo" }"#, false),
        (r#"all Nested.Map as k, _ { k != "hello" }"#, true),
        (
            r#"all Nested.Map as k, v { k != "foo" or v != "baz" }"#,
            true,
        ),
        // any
        ("any Nested.SliceOfInts as i { i == 1 }", true),
        ("any Nested.SliceOfInts as i { i == 42 }", false),
        (r#"any Nested.SliceOfStructs as i { "/i/X" == 1 }"#, true),
        (r#"any Nested.Map as k { k != "bar" }"#, true),
        (r#"any Nested.Map as k { k == "bar" }"#, true),
        (r#"any Nested.Map as k { k == "hello" }"#, false),
        (
            r#"any Nested.Map as k, v { k == "foo" and v == "bar" }"#,
            true,
        ),
        ("any Nested.SliceOfInts as i, _ { i == 4 }", true),
        ("any Nested.SliceOfInts as i, _ { i == 5 }", false),
        ("any Nested.SliceOfInts as _, v { v == 9 }", true),
        ("all Nested.SliceOfStructs as s { s.X < 0 }", false),
        // Missing collections: `all` holds, `any` does not.
        ("all Nested.Nope as x { x == 1 }", true),
        ("any Nested.Nope as x { x == 1 }", false),
        // Nested bindings resolve through each other.
        (
            "any Nested.SliceOfStructs as s { any s as k { k == Y } }",
            true,
        ),
        (
            "all Nested.MapOfStructs as _, v { v.Foo == 42 or v.Baz == consul }",
            true,
        ),
        // Shadowing: the innermost binding wins.
        (
            "any Nested.SliceOfStructs as t { any Nested.SliceOfInts as t { t == 9 } }",
            true,
        ),
        ("Nested.SliceOfPointersToStructs.0 is nil", false),
        ("Nested.SliceOfPointersToStructs.1 is nil", true),
        ("Nested.SliceOfPointersToStructs.0 is not nil", true),
        ("Nested.SliceOfPointersToStructs.1 is not nil", false),
    ];
    for (expr, want) in cases {
        if expr.contains(" < ") {
            // `<` is not an operator: the whole filter fails to parse.
            assert!(Filter::parse(expr).is_err(), "{expr}");
            continue;
        }
        check(expr, &item, want);
    }
    let errors = [
        (
            r#""/Nested/SliceOfInts" == "7""#,
            "unable to find suitable primitive comparison function for matching",
        ),
        (
            "all Nested.Map as k, k { TopInt == 5 }",
            r#""k" cannot be used as a placeholder for both the index and the value"#,
        ),
        (
            r#"all TopInt as k, v { k != "foo" or v != "baz" }"#,
            "TopInt is not a list or a map",
        ),
        (
            r#"any Nested.Map as k { k.Color == "red" }"#,
            "/k references a string so /k/Color is invalid",
        ),
        (
            r#"any Nested.SliceOfInts as i, _ { i.Color == "red" }"#,
            "/i references a int so /i/Color is invalid",
        ),
        (
            "TopInt is empty",
            r#"cannot perform is-empty operations on type int for selector: "TopInt""#,
        ),
        (
            "Nested.Map.foo is nil",
            r#"cannot perform is-nil operations on type string for selector: "Nested.Map.foo""#,
        ),
        (
            "5 in TopInt",
            r#"Cannot perform in/contains operations on type int for selector: "TopInt""#,
        ),
        // The literal is coerced to the field's kind before the kind is checked.
        (
            "x in TopInt",
            r#"error getting match value in expression: strconv.ParseInt: parsing "x": invalid syntax"#,
        ),
        (
            "TopInt matches 5",
            "Value of type int is not convertible to []byte",
        ),
        (
            "Nested.SliceOfInts matches 5",
            "Value of type []interface {} is not convertible to []byte",
        ),
        (
            "Nested.Map matches 5",
            "Value of type map[string]string is not convertible to []byte",
        ),
        (
            "Nested.SliceOfStructs.Status == passing",
            r#"error finding value in datum: /Nested/SliceOfStructs/Status at part 2: couldn't convert value "Status" to type int"#,
        ),
        (
            "Nested.SliceOfStructs.7.X == 1",
            "error finding value in datum: /Nested/SliceOfStructs/7/X at part 2: index 7 is out of range (length = 2)",
        ),
        (
            "x in Nested.SliceOfStructs",
            r#"unable to find suitable primitive comparison function for "in" comparison"#,
        ),
        (
            "Nested.Map == x",
            "unable to find suitable primitive comparison function for matching",
        ),
        (
            "TopInt == five",
            r#"error getting match value in expression: strconv.ParseInt: parsing "five": invalid syntax"#,
        ),
        (
            "five in TopInt",
            r#"error getting match value in expression: strconv.ParseInt: parsing "five": invalid syntax"#,
        ),
        (
            "Nested.Map.foo matches `(`",
            r#"Failed to compile regular expression "(": error parsing regexp: missing closing ): `(`"#,
        ),
    ];
    for (expr, want) in errors {
        check_err(expr, &item, want);
    }
}

#[test]
fn regex_errors_use_go_wording() {
    let item = json!({"a": "x"});
    let cases = [
        ("(", "missing closing ): `(`"),
        (")", "unexpected ): `)`"),
        ("+1", "missing argument to repetition operator: `+`"),
        ("*", "missing argument to repetition operator: `*`"),
        ("[a", "missing closing ]: `[a`"),
        ("x[a", "missing closing ]: `[a`"),
        ("\\q", "invalid escape sequence: `\\q`"),
        ("z{2,1}", "invalid repeat count: `{2,1}`"),
        ("[z-a]", "invalid character class range: `z-a`"),
        ("\\", "trailing backslash at end of expression: ``"),
        ("(?=x)", "invalid or unsupported Perl syntax: `(?=`"),
        ("é(", "missing closing ): `é(`"),
    ];
    for (pattern, want) in cases {
        let expr = format!("a matches `{pattern}`");
        let quoted = go_quote(pattern);
        check_err(
            &expr,
            &item,
            &format!("Failed to compile regular expression {quoted}: error parsing regexp: {want}"),
        );
    }
}

#[test]
fn bad_regex_is_reported_only_when_evaluated() {
    let filter = Filter::parse("Name matches `(`").unwrap();
    assert!(filter.retain(Vec::new()).unwrap().is_empty());
    // A missing field never reaches the regex either.
    assert!(!filter.matches(&json!({})).unwrap());
    assert!(filter.matches(&json!({"Name": "x"})).is_err());
}

#[test]
fn in_on_any_typed_role() {
    for expr in ["Role contains admin", "admin in Role"] {
        check(expr, &json!({"Role": ["admin", "foo"]}), true);
        check(expr, &json!({"Role": "admin"}), true);
        check(expr, &json!({"Role": "dbadmin"}), true);
        check(expr, &json!({"Role": ["dbadmin", "foo"]}), false);
    }
}

#[test]
fn filter_slice_like_go_bexpr() {
    let items: Vec<Value> = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "c")]
        .iter()
        .map(|(x, y)| json!({"X": x, "Y": y}))
        .collect();
    let kept = Filter::parse("X==1")
        .unwrap()
        .retain(items.clone())
        .unwrap();
    assert_eq!(
        kept,
        vec![json!({"X": 1, "Y": "a"}), json!({"X": 1, "Y": "b"})]
    );
    let kept = Filter::parse("Y==`c`").unwrap().retain(items).unwrap();
    assert_eq!(kept, vec![json!({"X": 3, "Y": "c"})]);
}

// ---- evaluation: coercion -------------------------------------------------------

#[test]
fn literal_coerces_to_field_type() {
    let item = json!({
        "Port": 8080, "Weight": 1.5, "Whole": 2.0, "Big": u64::MAX, "On": true, "Name": "8080",
        "Neg": -3
    });
    let cases = [
        ("Port == 8080", true),
        ("Port == \"8080\"", true),
        ("Port == `8080`", true),
        ("Port == \"0x1F90\"", true),
        ("Port == \"0o17620\"", true),
        ("Port == \"017620\"", true),
        ("Port == \"8_080\"", true),
        ("Port != 8081", true),
        ("Neg == -3", true),
        ("Neg == \"-0x3\"", true),
        ("Name == 8080", true),
        ("Name == \"8080\"", true),
        ("Name == 8080.0", false),
        ("Weight == 1.5", true),
        ("Weight == \"1.50\"", true),
        ("Weight == \"15e-1\"", true),
        ("Weight != 1.25", true),
        ("Whole == 2", true),
        ("Big == 18446744073709551615", true),
        ("Big == \"0xffffffffffffffff\"", true),
        ("On == true", true),
        ("On == True", true),
        ("On == TRUE", true),
        ("On == t", true),
        ("On == 1", true),
        ("On == false", false),
        ("On != f", true),
        ("On == `0`", false),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
    let errors = [
        (
            "Port == 8080.0",
            r#"error getting match value in expression: strconv.ParseInt: parsing "8080.0": invalid syntax"#,
        ),
        (
            "Port == 99999999999999999999",
            r#"error getting match value in expression: strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
        (
            "Port == \"8_0_\"",
            r#"error getting match value in expression: strconv.ParseInt: parsing "8_0_": invalid syntax"#,
        ),
        (
            "On == yes",
            r#"error getting match value in expression: strconv.ParseBool: parsing "yes": invalid syntax"#,
        ),
        (
            "Weight == heavy",
            r#"error getting match value in expression: strconv.ParseFloat: parsing "heavy": invalid syntax"#,
        ),
        (
            "Big == -1",
            r#"error getting match value in expression: strconv.ParseUint: parsing "-1": invalid syntax"#,
        ),
        (
            "On != maybe",
            r#"error getting match value in expression: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
    ];
    for (expr, want) in errors {
        check_err(expr, &item, want);
    }
}

#[test]
fn in_on_lists_coerces_per_element_kind() {
    let item = json!({
        "Ports": [80, 443], "Flags": [true], "Weights": [0.5, 1], "Mixed": ["x", 2, false],
        "WithNull": [null, "a"], "Empty": [], "Objects": [{"a": 1}],
        "MixedObjects": ["a", {"b": 1}]
    });
    let cases = [
        ("80 in Ports", true),
        ("\"443\" in Ports", true),
        ("8080 in Ports", false),
        ("8080 not in Ports", true),
        ("true in Flags", true),
        ("f in Flags", false),
        ("1 in Weights", true),
        ("0.5 in Weights", true),
        ("x in Mixed", true),
        ("2 in Mixed", true),
        ("false in Mixed", true),
        ("y in Mixed", false),
        ("a in WithNull", true),
        ("a in Empty", false),
        ("a not in Empty", true),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
    // Elements the literal cannot be coerced to are skipped, as for `[]interface{}`.
    check("http in Ports", &item, false);
    check("http not in Ports", &item, true);
    check_err(
        "a in Objects",
        &item,
        r#"unable to find suitable primitive comparison function for "in" comparison"#,
    );
    check_err(
        "z in MixedObjects",
        &item,
        r#"unable to find suitable primitive comparison function for "in" comparison in interface slice: map"#,
    );
    check_err(
        "99999999999999999999 in Mixed",
        &item,
        "error getting interface slice match value in expression",
    );
}

#[test]
fn null_behaves_like_a_missing_key() {
    let item = json!({"Tags": null, "Meta": null, "Proxy": null});
    let cases = [
        ("Tags is empty", true),
        ("Tags is not empty", false),
        ("Tags is nil", true),
        ("Tags is not nil", false),
        ("a in Tags", false),
        ("a not in Tags", true),
        ("Meta.env == prod", false),
        ("Meta.env != prod", true),
        ("Meta == x", false),
        ("Meta != x", true),
        ("Proxy matches x", false),
        ("Proxy not matches x", true),
        ("Proxy.Upstreams.0.Port == 1", false),
        ("all Tags as t { t == x }", true),
        ("any Tags as t { t == x }", false),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
}

#[test]
fn strings_and_maps_for_in_and_empty() {
    let item = json!({"Name": "web-frontend", "Blank": "", "Meta": {"env": "prod"}, "NoMeta": {}});
    let cases = [
        ("frontend in Name", true),
        ("Name contains web", true),
        ("Name not contains db", true),
        ("\"\" in Name", true),
        ("Blank is empty", true),
        ("Name is empty", false),
        ("Name is not empty", true),
        ("env in Meta", true),
        ("Meta contains env", true),
        ("prod in Meta", false),
        ("Meta is empty", false),
        ("NoMeta is empty", true),
        ("Meta is nil", false),
        ("Meta is not nil", true),
        ("Name matches `^web-`", true),
        ("Name matches `(?i)^WEB`", true),
        ("Name matches `^end`", false),
        ("Name matches \"front\"", true),
        ("Meta.env matches `^pr`", true),
    ];
    for (expr, want) in cases {
        check(expr, &item, want);
    }
}

#[test]
fn json_pointer_values_and_selectors() {
    let item = json!({"Path": "usr/bin", "Raw": "/usr/bin", "a/b": {"c~d": 1}, "": "root"});
    // `"/usr/bin"` as a value is a JSON pointer selector and stands for "usr/bin".
    check("Path == \"/usr/bin\"", &item, true);
    check("Raw == \"/usr/bin\"", &item, false);
    check("Raw == `/usr/bin`", &item, true);
    check(r#""/a~1b/c~0d" == 1"#, &item, true);
    check(r#""" == root"#, &item, true);
    check(r#"a/b["c~d"] == 1"#, &item, true);
}

// ---- evaluation: Consul's api test cases ------------------------------------------

/// Nodes as `/v1/catalog/nodes` returns them (after `testNodeServiceCheckRegistrations`).
fn nodes() -> Vec<Value> {
    let node = |name: &str, addr: &str, env: &str, os: &str| {
        json!({
            "ID": "", "Node": name, "Address": addr, "Datacenter": "dc1",
            "TaggedAddresses": {"lan": addr}, "Meta": {"env": env, "os": os},
            "CreateIndex": 10, "ModifyIndex": 10
        })
    };
    vec![
        node("foo", "127.0.0.2", "production", "linux"),
        node("bar", "127.0.0.3", "production", "windows"),
        node("baz", "127.0.0.4", "qa", "linux"),
        json!({
            "ID": "", "Node": "agent", "Address": "127.0.0.1", "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "127.0.0.1"}, "Meta": {"consul-network-segment": ""},
            "CreateIndex": 5, "ModifyIndex": 5
        }),
    ]
}

struct Svc {
    node: &'static str,
    id: &'static str,
    name: &'static str,
    tags: &'static [&'static str],
    version: &'static str,
    port: u16,
    native: bool,
    status: &'static str,
}

const SERVICES: [Svc; 8] = [
    Svc {
        node: "foo",
        id: "redisV1",
        name: "redis",
        tags: &["v1"],
        version: "1",
        port: 1234,
        native: false,
        status: "passing",
    },
    Svc {
        node: "foo",
        id: "redisV2",
        name: "redis",
        tags: &["v2"],
        version: "2",
        port: 1235,
        native: false,
        status: "passing",
    },
    Svc {
        node: "bar",
        id: "redisV1",
        name: "redis",
        tags: &["v1"],
        version: "1",
        port: 1234,
        native: false,
        status: "passing",
    },
    Svc {
        node: "bar",
        id: "webV1",
        name: "web",
        tags: &["v1", "connect"],
        version: "1",
        port: 443,
        native: true,
        status: "passing",
    },
    Svc {
        node: "baz",
        id: "webV1",
        name: "web",
        tags: &["v1", "connect"],
        version: "1",
        port: 443,
        native: true,
        status: "passing",
    },
    Svc {
        node: "baz",
        id: "webV2",
        name: "web",
        tags: &["v2", "connect"],
        version: "2",
        port: 8443,
        native: true,
        status: "passing",
    },
    Svc {
        node: "baz",
        id: "criticalV2",
        name: "critical",
        tags: &["v2"],
        version: "2",
        port: 8080,
        native: false,
        status: "critical",
    },
    Svc {
        node: "baz",
        id: "warningV2",
        name: "warning",
        tags: &["v2"],
        version: "2",
        port: 8081,
        native: false,
        status: "warning",
    },
];

fn node_json(name: &str) -> Value {
    nodes()
        .into_iter()
        .find(|n| n["Node"] == name)
        .unwrap_or(Value::Null)
}

/// `/v1/catalog/service/:name` rows (ServiceNode).
fn service_nodes(name: &str) -> Vec<Value> {
    SERVICES
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let node = node_json(s.node);
            let mut meta = json!({"version": s.version});
            if s.native {
                meta["connect"] = json!("enabled");
            }
            json!({
                "ID": "", "Node": s.node, "Address": node["Address"], "Datacenter": "dc1",
                "TaggedAddresses": node["TaggedAddresses"], "NodeMeta": node["Meta"],
                "ServiceKind": "", "ServiceID": s.id, "ServiceName": s.name,
                "ServiceTags": s.tags, "ServiceAddress": "198.18.1.2", "ServiceMeta": meta,
                "ServicePort": s.port, "ServiceEnableTagOverride": false,
                "ServiceProxy": {"MeshGateway": {}, "Expose": {}},
                "ServiceConnect": if s.native { json!({"Native": true}) } else { json!({}) },
                "CreateIndex": 20, "ModifyIndex": 20
            })
        })
        .collect()
}

fn node_check(node: &str, id: &str) -> Value {
    json!({
        "Node": node, "CheckID": id, "Name": id, "Status": "passing", "Notes": "",
        "Output": "", "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
        "Definition": {}, "CreateIndex": 30, "ModifyIndex": 30
    })
}

fn service_check(s: &Svc) -> Value {
    json!({
        "Node": s.node, "CheckID": format!("{}:{}", s.node, s.id), "Name": "liveness",
        "Status": s.status, "Notes": "", "Output": "", "ServiceID": s.id,
        "ServiceName": s.name, "ServiceTags": s.tags, "Type": "", "Definition": {},
        "CreateIndex": 30, "ModifyIndex": 30
    })
}

/// Every health check (`/v1/health/state/any`).
fn all_checks() -> Vec<Value> {
    let mut checks = vec![
        node_check("foo", "foo:alive"),
        node_check("foo", "foo:ssh"),
        node_check("bar", "bar:alive"),
        node_check("baz", "baz:alive"),
        node_check("baz", "baz:ssh"),
    ];
    checks.extend(SERVICES.iter().map(service_check));
    checks
}

/// `/v1/health/service/:name` rows (CheckServiceNode).
fn check_service_nodes(name: &str) -> Vec<Value> {
    SERVICES
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let node = node_json(s.node);
            let mut meta = json!({"version": s.version});
            if s.native {
                meta["connect"] = json!("enabled");
            }
            let node_checks: Vec<Value> = all_checks()
                .into_iter()
                .filter(|c| c["Node"] == s.node && c["ServiceID"] == "")
                .collect();
            let mut checks = node_checks;
            checks.push(service_check(s));
            json!({
                "Node": node,
                "Service": {
                    "Kind": "", "ID": s.id, "Service": s.name, "Tags": s.tags,
                    "Address": "198.18.1.2", "Meta": meta, "Port": s.port,
                    "Connect": if s.native { json!({"Native": true}) } else { json!({}) },
                    "Proxy": {"MeshGateway": {}, "Expose": {}}
                },
                "Checks": checks
            })
        })
        .collect()
}

fn count(expr: &str, items: Vec<Value>) -> usize {
    match Filter::parse(expr) {
        Ok(filter) => match filter.retain(items) {
            Ok(kept) => kept.len(),
            Err(e) => panic!("{expr}: {e}"),
        },
        Err(e) => panic!("{expr}: {e}"),
    }
}

#[test]
fn consul_catalog_nodes_filter() {
    assert_eq!(count("Meta.env == production", nodes()), 2);
    assert_eq!(count("Node == bar or Node == baz", nodes()), 2);
    assert_eq!(count("Address == `10.0.0.1`", nodes()), 0);
    assert_eq!(count("Meta.os == linux", nodes()), 2);
    assert_eq!(count("Meta[\"os\"] == \"linux\"", nodes()), 2);
    assert_eq!(count("TaggedAddresses.wan is empty", nodes()), 4);
}

#[test]
fn consul_catalog_service_filter() {
    let redis = service_nodes("redis");
    assert_eq!(count("ServiceMeta.version == 1", redis.clone()), 2);
    let kept = Filter::parse("NodeMeta.os != windows")
        .unwrap()
        .retain(redis.clone())
        .unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|s| s["Node"] == "foo"));
    assert_eq!(count("Address == `10.0.0.1`", redis.clone()), 0);
    assert_eq!(count("v2 in ServiceTags", redis.clone()), 1);
    assert_eq!(count("ServicePort == 1234", redis), 2);
}

#[test]
fn consul_catalog_connect_filter() {
    let web = service_nodes("web");
    assert_eq!(count("ServicePort == 443", web.clone()), 2);
    assert_eq!(count("ServiceConnect.Native != true", web.clone()), 0);
    assert_eq!(count("ServiceConnect.Native == true", web), 3);
    // Non-native services omit Native, which then reads as missing.
    assert_eq!(
        count("ServiceConnect.Native != true", service_nodes("redis")),
        3
    );
}

#[test]
fn consul_catalog_node_services_filter() {
    let on = |node: &str| -> Vec<Value> {
        SERVICES
            .iter()
            .filter(|s| s.node == node)
            .map(|s| json!({"ID": s.id, "Service": s.name, "Tags": s.tags, "Port": s.port}))
            .collect()
    };
    assert_eq!(count("connect in Tags", on("bar")), 1);
    assert_eq!(count("connect in Tags", on("baz")), 2);
}

#[test]
fn consul_health_filters() {
    let foo_checks: Vec<Value> = all_checks()
        .into_iter()
        .filter(|c| c["Node"] == "foo")
        .collect();
    assert_eq!(count("ServiceName == redis", foo_checks.clone()), 2);
    assert_eq!(count("ServiceID == ``", foo_checks), 2);

    let redis_checks: Vec<Value> = all_checks()
        .into_iter()
        .filter(|c| c["ServiceName"] == "redis")
        .collect();
    assert_eq!(count("Node == foo", redis_checks.clone()), 2);
    assert_eq!(count("Node == bar", redis_checks.clone()), 1);
    assert_eq!(count("Node == foo and v1 in ServiceTags", redis_checks), 1);

    assert_eq!(count("Node == baz", all_checks()), 6);
    assert_eq!(
        count("Status == warning or Status == critical", all_checks()),
        2
    );

    assert_eq!(
        count("Service.Meta.version == 2", check_service_nodes("redis")),
        1
    );
    let web = check_service_nodes("web");
    let linux = Filter::parse("Node.Meta.os == linux")
        .unwrap()
        .retain(web.clone())
        .unwrap();
    assert_eq!(linux.len(), 2);
    assert!(linux.iter().all(|s| s["Node"]["Node"] == "baz"));
    assert_eq!(
        count(
            "Node.Meta.os == linux and Service.Meta.version == 1",
            web.clone()
        ),
        1
    );
    assert_eq!(
        count(
            r#"any Checks as c { c.Status == "critical" }"#,
            check_service_nodes("critical")
        ),
        1
    );
    assert_eq!(
        count(r#"all Checks as c { c.Status == passing }"#, web.clone()),
        3
    );
    assert_eq!(count("Checks.0.Status == passing", web), 3);
}

#[test]
fn consul_agent_filters() {
    // `/v1/agent/services` is a map; the caller filters its values.
    let services = [
        json!({"ID": "foo1", "Service": "foo", "Tags": ["bar", "baz"], "Port": 8000,
               "Meta": {"env": "prod"}, "Weights": {"Passing": 1, "Warning": 1},
               "EnableTagOverride": false, "Datacenter": "dc1"}),
        json!({"ID": "foo2", "Service": "foo", "Tags": ["bar"], "Port": 8001,
               "Meta": {}, "Weights": {"Passing": 1, "Warning": 1},
               "EnableTagOverride": true, "Datacenter": "dc1"}),
    ];
    let items = services.to_vec();
    assert_eq!(count("Service == foo", items.clone()), 2);
    assert_eq!(count("baz in Tags", items.clone()), 1);
    assert_eq!(count("Meta.env == prod", items.clone()), 1);
    assert_eq!(count("Meta is empty", items.clone()), 1);
    assert_eq!(count("EnableTagOverride == true", items.clone()), 1);
    assert_eq!(count("Weights.Passing == 1 and Port != 8000", items), 1);
}

#[test]
fn validate_fields_reports_unknown_top_level_names() {
    let fields = ["Node", "Address", "Meta", "TaggedAddresses"];
    let ok = [
        "Meta.env == production",
        "Node == foo or not (Address == `x`)",
        r#"any Meta as k, v { k == os and v == linux }"#,
        r#""/Meta/os" == linux"#,
        "x in TaggedAddresses",
    ];
    for expr in ok {
        let filter = Filter::parse(expr).unwrap();
        assert!(filter.validate_fields(&fields).is_ok(), "{expr}");
    }
    let err = Filter::parse("Node == foo and Foo.Bar == 1")
        .unwrap()
        .validate_fields(&fields)
        .unwrap_err();
    assert!(matches!(err, FilterError::UnknownField(_)));
    assert_eq!(
        err.to_string(),
        r#"error finding value in datum: /Foo/Bar at part 0: couldn't find key: struct field with name "Foo""#
    );
    // Bound names only count inside their body.
    let err = Filter::parse("(any Meta as k { k == a }) and k == b")
        .unwrap()
        .validate_fields(&fields)
        .unwrap_err();
    assert!(err.to_string().contains(r#"name "k""#), "{err}");
    assert!(Filter::parse("").unwrap().validate_fields(&[]).is_ok());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    node: String,
    port: u16,
    tags: Vec<String>,
}

#[test]
fn apply_keeps_matching_originals() {
    let rows = vec![
        Row {
            node: "a".into(),
            port: 80,
            tags: vec!["web".into()],
        },
        Row {
            node: "b".into(),
            port: 443,
            tags: vec![],
        },
    ];
    let filter = Filter::parse("Port == 443 or web in Tags").unwrap();
    assert_eq!(apply(Some(&filter), rows.clone()).unwrap(), rows);
    let filter = Filter::parse("Tags is empty").unwrap();
    assert_eq!(
        apply(Some(&filter), rows.clone()).unwrap(),
        vec![rows[1].clone()]
    );
    assert_eq!(apply::<Row>(None, rows.clone()).unwrap(), rows);
    let filter = Filter::parse("Port == http").unwrap();
    let err = apply(Some(&filter), rows.clone()).unwrap_err();
    assert!(matches!(err, FilterError::Evaluate(_)));
    // A selector naming no field of the element type is an error, but only when
    // there is something to test (go-bexpr finds it while evaluating).
    let filter = Filter::parse("Nodes == a").unwrap();
    let err = apply(Some(&filter), rows).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error finding value in datum: /Nodes at part 0: couldn't find key: struct field with name \"Nodes\""
    );
    assert!(apply::<Row>(Some(&filter), Vec::new()).unwrap().is_empty());
    // Fields a type omits from its JSON when empty are still its fields.
    let filter = Filter::parse("Locality is empty").unwrap();
    assert_eq!(apply(Some(&filter), vec![rows_one()]).unwrap().len(), 1);
}

fn rows_one() -> serde_json::Value {
    json!({"Node": "a"})
}

#[test]
fn filter_from_str() {
    let filter: Filter = "Node == foo".parse().unwrap();
    assert!(filter.matches(&json!({"Node": "foo"})).unwrap());
}

// ---- Go helpers -------------------------------------------------------------------

#[test]
fn go_strconv_rules() {
    assert_eq!(parse_int("0x_1F").ok(), Some(31));
    assert_eq!(parse_int("0b101").ok(), Some(5));
    assert_eq!(parse_int("-9223372036854775808").ok(), Some(i64::MIN));
    assert!(parse_int("9223372036854775808").is_err());
    assert!(parse_int("1_").is_err());
    assert!(parse_int("_1").is_err());
    assert!(parse_int("0x").is_err());
    assert!(parse_int("").is_err());
    assert!(parse_int("+").is_err());
    assert_eq!(parse_int("+7").ok(), Some(7));
    assert_eq!(parse_uint("18446744073709551615").ok(), Some(u64::MAX));
    assert!(parse_uint("+1").is_err());
    assert_eq!(parse_bool("T").ok(), Some(true));
    assert!(parse_bool("yes").is_err());
    assert_eq!(parse_float("1e3").ok(), Some(1000.0));
    assert_eq!(parse_float(".5").ok(), Some(0.5));
    assert_eq!(parse_float("-Inf").ok(), Some(f64::NEG_INFINITY));
    assert!(parse_float("NaN").is_ok_and(f64::is_nan));
    assert!(parse_float("+NaN").is_err());
    assert!(parse_float("1e").is_err());
    assert_eq!(parse_float("0x1p3").ok(), Some(8.0));
    assert_eq!(parse_float("-0x1.8p1").ok(), Some(-3.0));
    assert_eq!(parse_float("0x_1p-2").ok(), Some(0.25));
    assert!(parse_float("0x1").is_err());
    assert!(parse_float("0x1p").is_err());
    assert!(parse_float("0xp1").is_err());
    assert_eq!(
        parse_float("1e400").unwrap_err().to_string(),
        r#"strconv.ParseFloat: parsing "1e400": value out of range"#
    );
    assert_eq!(
        go_quote("a\"b\\c\n\u{1}é\u{a0}"),
        r#""a\"b\\c\n\x01é\u00a0""#
    );
}

#[test]
fn filter_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
    assert_send_sync::<FilterError>();
}
