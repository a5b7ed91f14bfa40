//! Evaluation of a parsed filter against one element in its JSON form, with
//! go-bexpr's coercions (Go `strconv` rules) and its error texts.
//!
//! go-bexpr walks Go values by reflection; here the element is Consul's wire
//! JSON, so Go kinds are read off JSON values:
//! - an integer number is a Go `int` (a `uint64` above `i64::MAX`), any other
//!   number a `float64`; strings, bools, arrays (slices) and objects (maps)
//!   map directly;
//! - objects are treated as maps, since JSON cannot tell a struct from a map;
//! - a missing object key and a JSON `null` count as "not present" wherever they
//!   occur on the path, and every operator then gives go-bexpr's answer for a
//!   missing map key (`==` false, `!=` true, `is empty` true, ...). Go would
//!   reject an unknown *struct* field instead; `Filter::validate_fields` checks
//!   top-level names for that, and omitted `omitempty` fields (which Go still
//!   sees as zero values) come out as missing rather than as zero.

use serde_json::{Map, Value};

use super::parser::{Binding, CollectionExpr, CollectionOp, Expr, MatchExpr, MatchOp, Selector};

/// Compiles the patterns of every `matches`. A bad pattern is kept as its error
/// text, which go-bexpr reports only when an element reaches the comparison.
pub(crate) fn compile_regexes(expr: &mut Expr) {
    match expr {
        Expr::Or(terms) | Expr::And(terms) => terms.iter_mut().for_each(compile_regexes),
        Expr::Not(inner) => compile_regexes(inner),
        Expr::Collection(c) => compile_regexes(&mut c.inner),
        Expr::Match(m) => {
            if matches!(m.op, MatchOp::Matches | MatchOp::NotMatches) {
                let pattern = m.value.as_deref().unwrap_or_default();
                m.regex =
                    Some(regex::Regex::new(pattern).map_err(|e| regex_error_text(pattern, &e)));
            }
        }
    }
}

/// Rewrites a `regex` error in Go's `regexp` wording: "error parsing regexp:",
/// Go's code for the problem, then the offending fragment in backquotes. The
/// rust message names the problem and marks the span with carets; the common
/// problems map onto Go's codes.
fn regex_error_text(pattern: &str, err: &regex::Error) -> String {
    let text = match err {
        regex::Error::Syntax(text) => text.as_str(),
        regex::Error::CompiledTooBig(_) => {
            return format!("error parsing regexp: expression too large: `{pattern}`");
        }
        other => return format!("error parsing regexp: {other}: `{pattern}`"),
    };
    let reason = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or("invalid regular expression")
        .trim();
    let span = caret_span(pattern, text);
    let fragment = |whole_rest: bool| match span {
        Some((start, _)) if whole_rest => &pattern[start..],
        Some((start, end)) => &pattern[start..end],
        None => pattern,
    };
    let (code, fragment) = match reason {
        "unclosed group" => ("missing closing )", pattern),
        "unopened group" => ("unexpected )", pattern),
        "repetition operator missing expression" => {
            ("missing argument to repetition operator", fragment(false))
        }
        "unclosed character class" => ("missing closing ]", fragment(true)),
        "incomplete escape sequence, reached end of pattern prematurely" => {
            ("trailing backslash at end of expression", "")
        }
        r if r.contains("escape sequence") => ("invalid escape sequence", fragment(false)),
        r if r.starts_with("invalid character class range")
            || r.starts_with("Unicode property") =>
        {
            ("invalid character class range", fragment(false))
        }
        r if r.contains("repetition") || r.starts_with("decimal literal") => {
            ("invalid repeat count", fragment(false))
        }
        r if r.starts_with("look-around") => {
            ("invalid or unsupported Perl syntax", fragment(false))
        }
        r if r.contains("capture group name") => ("invalid named capture", pattern),
        r if r.contains("flag") => ("invalid or unsupported Perl syntax", pattern),
        r if r.contains("nest") => ("expression nests too deeply", pattern),
        other => (other, pattern),
    };
    format!("error parsing regexp: {code}: `{fragment}`")
}

/// The byte range the carets of a single-line rust regex error point at.
fn caret_span(pattern: &str, text: &str) -> Option<(usize, usize)> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("regex parse error"));
    lines.next()?;
    if lines.next()?.strip_prefix("    ")? != pattern {
        return None;
    }
    let carets = lines.next()?.strip_prefix("    ")?;
    let first = carets.find('^')?;
    let count = carets[first..].chars().take_while(|&c| c == '^').count();
    let offsets: Vec<usize> = pattern
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(pattern.len()))
        .collect();
    let start = *offsets.get(first)?;
    let end = *offsets.get(first + count).unwrap_or(&pattern.len());
    Some((start, end))
}

/// Evaluates `expr` against one element.
pub(crate) fn evaluate(expr: &Expr, datum: &Value) -> Result<bool, String> {
    let mut vars = Vec::new();
    eval(expr, datum, &mut vars)
}

/// A name bound by a collection expression.
struct LocalVar {
    name: String,
    kind: VarKind,
}

enum VarKind {
    /// Stands for another path from the root (a list element or map value).
    Path(Vec<String>),
    /// A map key.
    Key(String),
    /// A list index.
    Index(i64),
}

fn eval(expr: &Expr, datum: &Value, vars: &mut Vec<LocalVar>) -> Result<bool, String> {
    match expr {
        Expr::Or(terms) => {
            for term in terms {
                if eval(term, datum, vars)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Expr::And(terms) => {
            for term in terms {
                if !eval(term, datum, vars)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Not(inner) => Ok(!eval(inner, datum, vars)?),
        Expr::Match(m) => eval_match(m, datum, vars),
        Expr::Collection(c) => eval_collection(c, datum, vars),
    }
}

/// What a selector resolved to.
enum Found<'d> {
    Missing,
    Json(&'d Value),
    Key(String),
    Index(i64),
}

/// A value seen the way go-bexpr sees a Go value: by kind.
enum View<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'a> View<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    View::Int(i)
                } else if let Some(u) = n.as_u64() {
                    View::Uint(u)
                } else {
                    View::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => View::Str(s),
            Value::Array(items) => View::Array(items),
            Value::Object(map) => View::Object(map),
        }
    }

    /// Go's `reflect.Kind` name.
    fn kind(&self) -> &'static str {
        match self {
            View::Null => "invalid",
            View::Bool(_) => "bool",
            View::Int(_) => "int",
            View::Uint(_) => "uint64",
            View::Float(_) => "float64",
            View::Str(_) => "string",
            View::Array(_) => "slice",
            View::Object(_) => "map",
        }
    }

    /// A plausible Go type name, for "Value of type ... is not convertible".
    fn type_name(&self) -> &'static str {
        match self {
            View::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                "[]string"
            }
            View::Array(_) => "[]interface {}",
            View::Object(map) if map.values().all(Value::is_string) => "map[string]string",
            View::Object(_) => "map[string]interface {}",
            other => other.kind(),
        }
    }
}

/// Resolves a selector path: local variables first (innermost binding wins),
/// then a walk down the element.
fn lookup<'d>(
    datum: &'d Value,
    selector: &[String],
    vars: &[LocalVar],
) -> Result<Found<'d>, String> {
    let mut path = selector.to_vec();
    for var in vars.iter().rev() {
        if path.first() != Some(&var.name) {
            continue;
        }
        match &var.kind {
            VarKind::Path(prefix) => {
                let mut resolved = prefix.clone();
                resolved.extend_from_slice(&path[1..]);
                path = resolved;
            }
            VarKind::Key(key) => {
                if path.len() > 1 {
                    return Err(references_error(&path, "string"));
                }
                return Ok(Found::Key(key.clone()));
            }
            VarKind::Index(index) => {
                if path.len() > 1 {
                    return Err(references_error(&path, "int"));
                }
                return Ok(Found::Index(*index));
            }
        }
    }
    walk(datum, &path)
}

fn references_error(path: &[String], type_name: &str) -> String {
    format!(
        "{} references a {} so {} is invalid",
        pointer_string(&path[..1]),
        type_name,
        pointer_string(path)
    )
}

fn walk<'d>(datum: &'d Value, path: &[String]) -> Result<Found<'d>, String> {
    let mut current = datum;
    for (i, part) in path.iter().enumerate() {
        current = match current {
            Value::Object(map) => match map.get(part) {
                Some(next) => next,
                None => return Ok(Found::Missing),
            },
            Value::Null => return Ok(Found::Missing),
            Value::Array(items) => {
                let Some(index) = weak_int(part) else {
                    return Err(format!(
                        "error finding value in datum: {} at part {}: couldn't convert value {} to type int",
                        pointer_string(path),
                        i,
                        go_quote(part)
                    ));
                };
                match usize::try_from(index).ok().and_then(|idx| items.get(idx)) {
                    Some(next) => next,
                    None => {
                        return Err(format!(
                            "error finding value in datum: {} at part {}: index {} is out of range (length = {})",
                            pointer_string(path),
                            i,
                            index,
                            items.len()
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "error finding value in datum: {}: at part {}, invalid value kind: {}",
                    pointer_string(path),
                    i,
                    View::of(other).kind()
                ));
            }
        };
    }
    Ok(Found::Json(current))
}

/// A path index as mapstructure's weak decoding reads it: empty is 0,
/// otherwise Go's `ParseInt(s, 0, 64)`.
fn weak_int(part: &str) -> Option<i64> {
    if part.is_empty() {
        return Some(0);
    }
    parse_int(part).ok()
}

/// A JSON pointer as text, `~` and `/` escaped.
pub(crate) fn pointer_string(path: &[String]) -> String {
    path.iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn eval_match(m: &MatchExpr, datum: &Value, vars: &[LocalVar]) -> Result<bool, String> {
    let found = lookup(datum, &m.selector.path, vars)?;
    let view = match &found {
        Found::Missing => return Ok(m.op.not_present()),
        Found::Json(value) => View::of(value),
        Found::Key(key) => View::Str(key),
        Found::Index(index) => View::Int(*index),
    };
    if matches!(view, View::Null) {
        return Ok(m.op.not_present());
    }
    let raw = m.value.as_deref().unwrap_or_default();
    match m.op {
        MatchOp::Equal => equal(raw, &view),
        MatchOp::NotEqual => equal(raw, &view).map(|b| !b),
        MatchOp::In => contains(raw, &view, &m.selector),
        MatchOp::NotIn => contains(raw, &view, &m.selector).map(|b| !b),
        MatchOp::IsEmpty => is_empty(&view, &m.selector),
        MatchOp::IsNotEmpty => is_empty(&view, &m.selector).map(|b| !b),
        MatchOp::Matches => regex_match(m, raw, &view),
        MatchOp::NotMatches => regex_match(m, raw, &view).map(|b| !b),
        MatchOp::IsNil => is_nil(&view, &m.selector),
        MatchOp::IsNotNil => is_nil(&view, &m.selector).map(|b| !b),
    }
}

fn coercion_error(err: NumError) -> String {
    format!("error getting match value in expression: {err}")
}

fn equal(raw: &str, view: &View<'_>) -> Result<bool, String> {
    match *view {
        View::Bool(b) => Ok(parse_bool(raw).map_err(coercion_error)? == b),
        View::Int(i) => Ok(parse_int(raw).map_err(coercion_error)? == i),
        View::Uint(u) => Ok(parse_uint(raw).map_err(coercion_error)? == u),
        View::Float(f) => Ok(parse_float(raw).map_err(coercion_error)? == f),
        View::Str(s) => Ok(raw == s),
        View::Null | View::Array(_) | View::Object(_) => {
            Err("unable to find suitable primitive comparison function for matching".to_string())
        }
    }
}

fn contains(raw: &str, view: &View<'_>, selector: &Selector) -> Result<bool, String> {
    // go-bexpr coerces the literal to the field's kind before it looks at the
    // kind, so a scalar field reports a bad literal ahead of the unsupported operator.
    let scalar = match view {
        View::Object(map) => return Ok(map.contains_key(raw)),
        View::Str(s) => return Ok(s.contains(raw)),
        View::Array(items) => return contains_element(raw, items),
        View::Null => return Ok(false),
        View::Bool(_) => ElemKind::Bool,
        View::Int(_) => ElemKind::Int,
        View::Uint(_) => ElemKind::Uint,
        View::Float(_) => ElemKind::Float,
    };
    coerce(raw, scalar).map_err(coercion_error)?;
    Err(format!(
        "Cannot perform in/contains operations on type {} for selector: {}",
        view.kind(),
        go_quote(&selector.to_string())
    ))
}

/// The kind of a list element, as far as `in` cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Slice,
    Map,
}

impl ElemKind {
    fn of(value: &Value) -> Option<ElemKind> {
        Some(match View::of(value) {
            View::Null => return None,
            View::Bool(_) => ElemKind::Bool,
            View::Int(_) => ElemKind::Int,
            View::Uint(_) => ElemKind::Uint,
            View::Float(_) => ElemKind::Float,
            View::Str(_) => ElemKind::Str,
            View::Array(_) => ElemKind::Slice,
            View::Object(_) => ElemKind::Map,
        })
    }
}

/// The literal coerced to an element kind.
enum Coerced<'r> {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'r str),
}

impl Coerced<'_> {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Coerced::Bool(b), Value::Bool(v)) => b == v,
            (Coerced::Int(i), Value::Number(n)) => n.as_i64() == Some(*i),
            (Coerced::Uint(u), Value::Number(n)) => n.as_u64() == Some(*u),
            (Coerced::Float(f), Value::Number(n)) => n.as_f64() == Some(*f),
            (Coerced::Str(s), Value::String(v)) => s == v,
            _ => false,
        }
    }
}

fn coerce(raw: &str, kind: ElemKind) -> Result<Coerced<'_>, NumError> {
    Ok(match kind {
        ElemKind::Bool => Coerced::Bool(parse_bool(raw)?),
        ElemKind::Int => Coerced::Int(parse_int(raw)?),
        ElemKind::Uint => Coerced::Uint(parse_uint(raw)?),
        ElemKind::Float => Coerced::Float(parse_float(raw)?),
        ElemKind::Str | ElemKind::Slice | ElemKind::Map => Coerced::Str(raw),
    })
}

/// `in` on a list. A list of objects or lists is taken for a typed Go slice of
/// structs (no comparison possible). Otherwise each element is compared the
/// way go-bexpr treats `[]interface{}`: the literal is coerced to the element's
/// kind, and elements it cannot be coerced to are skipped. (A typed Go slice of
/// numbers would reject such a literal instead; JSON cannot tell them apart,
/// and free-form config is where number lists occur.) Nulls are skipped.
fn contains_element(raw: &str, items: &[Value]) -> Result<bool, String> {
    let mut kinds = items.iter().filter_map(ElemKind::of).peekable();
    if kinds.peek().is_none() {
        return Ok(false);
    }
    if kinds.all(|k| matches!(k, ElemKind::Slice | ElemKind::Map)) {
        return Err(
            "unable to find suitable primitive comparison function for \"in\" comparison"
                .to_string(),
        );
    }
    for item in items {
        let Some(kind) = ElemKind::of(item) else {
            continue;
        };
        if matches!(kind, ElemKind::Slice | ElemKind::Map) {
            let name = if kind == ElemKind::Slice {
                "slice"
            } else {
                "map"
            };
            return Err(format!(
                "unable to find suitable primitive comparison function for \"in\" comparison in interface slice: {name}"
            ));
        }
        match coerce(raw, kind) {
            Ok(target) if target.equals(item) => return Ok(true),
            Ok(_) => {}
            Err(err) if err.syntax => {}
            Err(_) => {
                return Err("error getting interface slice match value in expression".to_string());
            }
        }
    }
    Ok(false)
}

fn is_empty(view: &View<'_>, selector: &Selector) -> Result<bool, String> {
    match view {
        View::Str(s) => Ok(s.is_empty()),
        View::Array(items) => Ok(items.is_empty()),
        View::Object(map) => Ok(map.is_empty()),
        other => Err(format!(
            "cannot perform is-empty operations on type {} for selector: {}",
            other.kind(),
            go_quote(&selector.to_string())
        )),
    }
}

fn is_nil(view: &View<'_>, selector: &Selector) -> Result<bool, String> {
    match view {
        View::Array(_) | View::Object(_) => Ok(false),
        other => Err(format!(
            "cannot perform is-nil operations on type {} for selector: {}",
            other.kind(),
            go_quote(&selector.to_string())
        )),
    }
}

fn regex_match(m: &MatchExpr, raw: &str, view: &View<'_>) -> Result<bool, String> {
    let View::Str(text) = view else {
        return Err(format!(
            "Value of type {} is not convertible to []byte",
            view.type_name()
        ));
    };
    let compiled;
    let re = match &m.regex {
        Some(Ok(re)) => re,
        Some(Err(msg)) => {
            return Err(format!(
                "Failed to compile regular expression {}: {}",
                go_quote(raw),
                msg
            ));
        }
        None => {
            compiled = regex::Regex::new(raw).map_err(|e| {
                format!(
                    "Failed to compile regular expression {}: {}",
                    go_quote(raw),
                    regex_error_text(raw, &e)
                )
            })?;
            &compiled
        }
    };
    Ok(re.is_match(text))
}

fn eval_collection(
    c: &CollectionExpr,
    datum: &Value,
    vars: &mut Vec<LocalVar>,
) -> Result<bool, String> {
    let not_a_collection = || format!("{} is not a list or a map", c.selector);
    let value = match lookup(datum, &c.selector.path, vars)? {
        Found::Missing => return Ok(c.op == CollectionOp::All),
        Found::Json(value) => value,
        Found::Key(_) | Found::Index(_) => return Err(not_a_collection()),
    };
    let any = c.op == CollectionOp::Any;
    let base = vars.len();
    match value {
        // A nil slice or map: nothing to iterate.
        Value::Null => Ok(!any),
        Value::Array(items) => {
            for i in 0..items.len() {
                check_binding(&c.binding)?;
                let mut path = c.selector.path.clone();
                path.push(i.to_string());
                let index = i64::try_from(i).unwrap_or(i64::MAX);
                match &c.binding {
                    Binding::Default(name) | Binding::Value(name) => {
                        push(vars, name, VarKind::Path(path))
                    }
                    Binding::Index(name) => push(vars, name, VarKind::Index(index)),
                    Binding::IndexAndValue(index_name, value_name) => {
                        push(vars, index_name, VarKind::Index(index));
                        push(vars, value_name, VarKind::Path(path));
                    }
                }
                let result = eval(&c.inner, datum, vars);
                vars.truncate(base);
                if result? == any {
                    return Ok(any);
                }
            }
            Ok(!any)
        }
        Value::Object(map) => {
            for key in map.keys() {
                check_binding(&c.binding)?;
                match &c.binding {
                    Binding::Default(name) | Binding::Index(name) => {
                        push(vars, name, VarKind::Key(key.clone()))
                    }
                    Binding::Value(name) => push(vars, name, VarKind::Path(value_path(c, key))),
                    Binding::IndexAndValue(index_name, value_name) => {
                        push(vars, index_name, VarKind::Key(key.clone()));
                        push(vars, value_name, VarKind::Path(value_path(c, key)));
                    }
                }
                let result = eval(&c.inner, datum, vars);
                vars.truncate(base);
                if result? == any {
                    return Ok(any);
                }
            }
            Ok(!any)
        }
        _ => Err(not_a_collection()),
    }
}

fn value_path(c: &CollectionExpr, key: &str) -> Vec<String> {
    let mut path = c.selector.path.clone();
    path.push(key.to_string());
    path
}

fn push(vars: &mut Vec<LocalVar>, name: &str, kind: VarKind) {
    vars.push(LocalVar {
        name: name.to_string(),
        kind,
    });
}

/// go-bexpr checks this per element, so an empty collection never reports it.
fn check_binding(binding: &Binding) -> Result<(), String> {
    match binding {
        Binding::IndexAndValue(index, value) if index == value => Err(format!(
            "{} cannot be used as a placeholder for both the index and the value",
            go_quote(index)
        )),
        _ => Ok(()),
    }
}

// ---- Go strconv ---------------------------------------------------------------

/// Go's `*strconv.NumError`.
#[derive(Debug)]
pub(crate) struct NumError {
    func: &'static str,
    num: String,
    /// `invalid syntax` when true, `value out of range` otherwise.
    syntax: bool,
}

impl NumError {
    fn syntax(func: &'static str, num: &str) -> Self {
        NumError {
            func,
            num: num.to_string(),
            syntax: true,
        }
    }

    fn range(func: &'static str, num: &str) -> Self {
        NumError {
            func,
            num: num.to_string(),
            syntax: false,
        }
    }
}

impl std::fmt::Display for NumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = if self.syntax {
            "invalid syntax"
        } else {
            "value out of range"
        };
        write!(
            f,
            "strconv.{}: parsing {}: {}",
            self.func,
            go_quote(&self.num),
            reason
        )
    }
}

/// `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, NumError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(NumError::syntax("ParseBool", s)),
    }
}

/// `strconv.ParseInt(s, 0, 64)`: sign, then a `0x`/`0o`/`0b`/`0` prefix picks the base.
pub(crate) fn parse_int(s: &str) -> Result<i64, NumError> {
    const FUNC: &str = "ParseInt";
    let (negative, digits) = match s.as_bytes().first() {
        None => return Err(NumError::syntax(FUNC, s)),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let magnitude = match parse_uint_base0(digits, s) {
        Ok(n) => n,
        Err(UintError::Syntax) => return Err(NumError::syntax(FUNC, s)),
        Err(UintError::Range) => u64::MAX,
    };
    let cutoff = 1u64 << 63;
    if negative {
        if magnitude > cutoff {
            return Err(NumError::range(FUNC, s));
        }
        Ok(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).map_err(|_| NumError::range(FUNC, s))
    }
}

/// `strconv.ParseUint(s, 0, 64)`.
pub(crate) fn parse_uint(s: &str) -> Result<u64, NumError> {
    const FUNC: &str = "ParseUint";
    parse_uint_base0(s, s).map_err(|e| match e {
        UintError::Syntax => NumError::syntax(FUNC, s),
        UintError::Range => NumError::range(FUNC, s),
    })
}

enum UintError {
    Syntax,
    Range,
}

/// The unsigned core of Go's base-0 integer parsing; `whole` is the literal as
/// written (sign included), against which underscores are checked.
fn parse_uint_base0(s: &str, whole: &str) -> Result<u64, UintError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(UintError::Syntax);
    }
    let (base, digits): (u64, &[u8]) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &bytes[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &bytes[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &bytes[2..]),
            _ => (8, &bytes[1..]),
        }
    } else {
        (10, bytes)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return Err(UintError::Syntax),
        };
        if u64::from(d) >= base {
            return Err(UintError::Syntax);
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(UintError::Range)?;
    }
    if underscores && !underscore_ok(whole) {
        return Err(UintError::Syntax);
    }
    Ok(n)
}

/// Go's rule for `_` in numeric literals: only between digits, or right after a
/// base prefix.
fn underscore_ok(s: &str) -> bool {
    let mut bytes = s.as_bytes();
    if let Some(b'+' | b'-') = bytes.first() {
        bytes = &bytes[1..];
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x')
    {
        i = 2;
        saw = b'0';
        hex = bytes[1].eq_ignore_ascii_case(&b'x');
    }
    while i < bytes.len() {
        let c = bytes[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// `strconv.ParseFloat(s, 64)`: decimal and `0x` hexadecimal literals,
/// `inf`/`infinity`/`nan`.
pub(crate) fn parse_float(s: &str) -> Result<f64, NumError> {
    const FUNC: &str = "ParseFloat";
    let syntax = || NumError::syntax(FUNC, s);
    let (negative, unsigned) = match s.as_bytes().first() {
        None => return Err(syntax()),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Go reads a NaN only without a sign.
    if lower == "nan" && unsigned.len() == s.len() {
        return Ok(f64::NAN);
    }
    if unsigned.contains('_') && !underscore_ok(s) {
        return Err(syntax());
    }
    let value = if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        let magnitude = parse_hex_float(hex).ok_or_else(syntax)?;
        if negative { -magnitude } else { magnitude }
    } else {
        if !is_decimal_float(unsigned) {
            return Err(syntax());
        }
        let cleaned: String = s.chars().filter(|&c| c != '_').collect();
        cleaned.parse::<f64>().map_err(|_| syntax())?
    };
    if value.is_infinite() {
        return Err(NumError::range(FUNC, s));
    }
    Ok(value)
}

/// The part after `0x` of a Go hexadecimal float: hex digits with at most one
/// `.`, then a mandatory binary exponent `p[sign]digits`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once(['p', 'P'])?;
    let mut value: u64 = 0;
    let mut shift: i64 = 0;
    let mut digits = false;
    let mut dot = false;
    for c in mantissa.chars() {
        match c {
            '_' => {}
            '.' if !dot => dot = true,
            _ => {
                let d = u64::from(c.to_digit(16)?);
                digits = true;
                // Beyond 60 bits the remaining digits only move the exponent.
                if value < 1 << 56 {
                    value = value * 16 + d;
                    if dot {
                        shift -= 4;
                    }
                } else if !dot {
                    shift += 4;
                }
            }
        }
    }
    let (negative, exp_digits) = match exponent.as_bytes().first() {
        Some(b'+') => (false, &exponent[1..]),
        Some(b'-') => (true, &exponent[1..]),
        _ => (false, exponent),
    };
    if !digits || !exp_digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut exp: i64 = 0;
    for c in exp_digits.chars() {
        match c {
            '_' => {}
            _ => exp = (exp * 10 + i64::from(c.to_digit(10)?)).min(100_000),
        }
    }
    let exp = if negative { -exp } else { exp } + shift;
    let exp = i32::try_from(exp.clamp(-100_000, 100_000)).ok()?;
    // Exact for mantissas up to 2^53; wider ones round once more than Go does.
    let mantissa = value as f64;
    Some(mantissa * 2f64.powi(exp))
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit;
/// underscores pass here and are checked separately.
fn is_decimal_float(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut digits = false;
    let mut dot = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => digits = true,
            b'_' => {}
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if !digits {
        return false;
    }
    if i == bytes.len() {
        return true;
    }
    if !matches!(bytes[i], b'e' | b'E') {
        return false;
    }
    i += 1;
    if matches!(bytes.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    bytes[i..].iter().all(|&c| c.is_ascii_digit() || c == b'_')
}

/// Go's `strconv.Quote` (also what `%q` prints).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII
/// space; controls, other spaces, format characters and private use are not.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u32::from(c),
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}
