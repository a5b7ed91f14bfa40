//! Config sources: reading files, directories and `-hcl` snippets into JSON
//! objects, the schema of Consul's config file format, and the per-source
//! normalisation (type checks, unknown keys, one-or-many blocks, legacy keys).
//!
//! Every source is checked on its own so that an error names the file (or
//! flag) it came from and the dotted key path inside it.

use std::path::{Path, PathBuf};

use serde_json::{Map as JsonMap, Value};

use super::ConfigError;
use super::duration::parse_go_duration_nanos;
use super::merge::merge_objects;
use schema::{Field, Kind};

/// Format of a config source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Hcl,
}

impl Format {
    /// Parses the `-config-format` flag value.
    pub fn from_flag(s: &str) -> Result<Format, ConfigError> {
        match s {
            "json" => Ok(Format::Json),
            "hcl" => Ok(Format::Hcl),
            _ => Err(ConfigError::Invalid(
                "config: -config-format must be either 'hcl' or 'json'".to_string(),
            )),
        }
    }

    fn from_extension(path: &Path) -> Option<Format> {
        // Consul matches on the name suffix, case-sensitively.
        let name = path.to_string_lossy();
        if name.ends_with(".json") {
            Some(Format::Json)
        } else if name.ends_with(".hcl") {
            Some(Format::Hcl)
        } else {
            None
        }
    }
}

/// A parsed and normalised config source: its top-level object.
pub type Source = JsonMap<String, Value>;

/// Label for a config file in error messages.
pub fn file_origin(path: &Path) -> String {
    format!("config file \"{}\"", path.display())
}

/// Reads one `-config-file`/`-config-dir` argument. Like Consul, both flags
/// accept either a file or a directory. Directory entries are read in lexical
/// order, sub-directories are skipped, and files without a `.json`/`.hcl`
/// suffix are skipped (with a warning) unless `-config-format` is set. Files
/// actually read are appended to `files_read`.
pub fn read_path(
    path: &Path,
    format: Option<Format>,
    files_read: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Source>, ConfigError> {
    let origin = file_origin(path);
    let meta = std::fs::metadata(path).map_err(|error| ConfigError::Io {
        origin: origin.clone(),
        error,
    })?;
    if !meta.is_dir() {
        let Some(fmt) = format.or_else(|| Format::from_extension(path)) else {
            return Err(ConfigError::UnknownExtension {
                path: path.to_path_buf(),
            });
        };
        let src = read_file(path, fmt, warnings)?;
        files_read.push(path.to_path_buf());
        return Ok(vec![src]);
    }

    let entries = std::fs::read_dir(path).map_err(|error| ConfigError::Io {
        origin: format!("config dir \"{}\"", path.display()),
        error,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| ConfigError::Io {
            origin: format!("config dir \"{}\"", path.display()),
            error,
        })?;
        names.push(entry.file_name());
    }
    // Go sorts by the raw file name bytes.
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));

    let mut sources = Vec::new();
    for name in names {
        let file = path.join(&name);
        // metadata() follows symlinks, as Consul's EvalSymlinks + Stat does.
        let meta = std::fs::metadata(&file).map_err(|error| ConfigError::Io {
            origin: file_origin(&file),
            error,
        })?;
        if meta.is_dir() {
            continue;
        }
        let Some(fmt) = format.or_else(|| Format::from_extension(&file)) else {
            warnings.push(format!(
                "skipping file {}, extension must be .hcl or .json, or config format must be set",
                file.display()
            ));
            continue;
        };
        sources.push(read_file(&file, fmt, warnings)?);
        files_read.push(file);
    }
    Ok(sources)
}

fn read_file(
    path: &Path,
    format: Format,
    warnings: &mut Vec<String>,
) -> Result<Source, ConfigError> {
    let origin = file_origin(path);
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
        origin: origin.clone(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
        origin: origin.clone(),
        message: "file is not valid UTF-8".to_string(),
    })?;
    parse_source(&origin, &text, format, warnings)
}

/// Parses and normalises the text of one source.
pub fn parse_source(
    origin: &str,
    text: &str,
    format: Format,
    warnings: &mut Vec<String>,
) -> Result<Source, ConfigError> {
    let raw = parse_text(origin, text, format)?;
    normalize_source(origin, raw, warnings)
}

/// Turns source text into a JSON object. Empty and whitespace-only text is an
/// empty config: the Go test harness starts agents with a zero-byte file.
pub fn parse_text(
    origin: &str,
    text: &str,
    format: Format,
) -> Result<JsonMap<String, Value>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(JsonMap::new());
    }
    // HCL1 reads a text that starts with `{` as JSON, so a JSON file loaded with
    // `-config-format=hcl` works in Consul.
    let format = match format {
        Format::Hcl if text.trim_start().starts_with('{') => Format::Json,
        f => f,
    };
    let value = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?,
        Format::Hcl => parse_hcl(text).map_err(|message| ConfigError::Parse {
            origin: origin.to_string(),
            message,
        })?,
    };
    match value {
        Value::Object(map) => Ok(map),
        // An HCL file holding only comments decodes to null.
        Value::Null => Ok(JsonMap::new()),
        other => Err(ConfigError::Parse {
            origin: origin.to_string(),
            message: format!(
                "top-level value must be an object, got {}",
                type_name(&other)
            ),
        }),
    }
}

/// Parses HCL with hcl-rs. Consul uses HCL1, which accepts two things HCL2
/// rejects: quoted attribute names inside blocks (`node_meta { "rack-1" =
/// "r1" }`), nested blocks on one line (`acl { tokens { agent = "x" } }`) and
/// commas between a block's attributes (`telemetry { a = 1, b = 2 }`).
/// When the plain parse fails we retry once on a rewritten text and keep the
/// original error if the retry fails too.
fn parse_hcl(text: &str) -> Result<Value, String> {
    match hcl::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            if let Some(fixed) = rewrite_hcl1(text)
                && let Ok(v) = hcl::from_str::<Value>(&fixed)
            {
                return Ok(v);
            }
            Err(first.to_string())
        }
    }
}

/// What an open bracket on the scanner's stack is.
#[derive(Clone, Copy)]
enum Open {
    /// A block body; `brace` is the byte offset of its `{`, and
    /// `single_ident` says the header is one bare identifier (so the block
    /// can become `ident = {`).
    Block { brace: usize, single_ident: bool },
    /// An object/tuple/parenthesised expression.
    Expr,
}

/// Rewrites HCL1-only syntax so hcl-rs can parse it:
/// - a quoted attribute name in a block body that is a valid HCL2 identifier
///   is unquoted (`"rack-1" = 1` -> `rack-1 = 1`); any other quoted name turns
///   its enclosing single-identifier block into an object expression
///   (`m { "a.b" = 1 }` -> `m = { "a.b" = 1 }`), where quoted keys are legal;
/// - block braces get line breaks around them, since HCL2 wants a block's body
///   on its own lines (`a { b { c = 1 } }`), and commas between attributes in
///   a block body become line breaks.
///
/// Returns `None` when the text cannot be scanned or nothing would change.
fn rewrite_hcl1(src: &str) -> Option<String> {
    let b = src.as_bytes();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    // Last significant token kind before the current position.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        None,
        Ident,
        Str,
        Punct(u8),
    }
    let mut last = Tok::None;
    // Tokens seen since the start of the current line/item, used to tell a
    // block header `name {` (one identifier) from `name "label" {`.
    let mut line_tokens: usize = 0;
    let mut at_item_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                at_item_start = true;
                line_tokens = 0;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            b'<' if b.get(i + 1) == Some(&b'<') => {
                // Heredoc: <<EOF or <<-EOF, ends at a line equal to the marker.
                let mut j = i + 2;
                if b.get(j) == Some(&b'-') {
                    j += 1;
                }
                let start = j;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let marker = &src[start..j];
                if marker.is_empty() {
                    return None;
                }
                // Skip to the end of the heredoc.
                let mut pos = j;
                loop {
                    let nl = src[pos..].find('\n')?;
                    pos += nl + 1;
                    let line_end = src[pos..].find('\n').map_or(src.len(), |n| pos + n);
                    if src[pos..line_end].trim() == marker {
                        i = line_end;
                        break;
                    }
                }
                last = Tok::Str;
                at_item_start = false;
                line_tokens += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if b[i] == b'\n' {
                        return None;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return None;
                }
                i += 1; // closing quote
                let end = i;
                let in_body = matches!(stack.last(), None | Some(Open::Block { .. }));
                if at_item_start && in_body {
                    // Is this string the name of an attribute?
                    let mut j = i;
                    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'=') && b.get(j + 1) != Some(&b'=') {
                        let content = &src[start + 1..end - 1];
                        if is_hcl_identifier(content) {
                            edits.push((start, end, content.to_string()));
                        } else if let Some(Open::Block {
                            brace,
                            single_ident: true,
                        }) = stack.last()
                        {
                            let brace = *brace;
                            if !edits
                                .iter()
                                .any(|e| e.0 == brace && e.1 == brace && e.2 != "\n")
                            {
                                edits.push((brace, brace, "= ".to_string()));
                            }
                            // From now on this body is an object expression.
                            if let Some(top) = stack.last_mut() {
                                *top = Open::Expr;
                            }
                        } else {
                            return None;
                        }
                    }
                }
                last = Tok::Str;
                at_item_start = false;
                line_tokens += 1;
            }
            b'{' => {
                let in_expr = matches!(stack.last(), Some(Open::Expr));
                let is_block = !in_expr && matches!(last, Tok::Ident | Tok::Str);
                if is_block {
                    edits.push((i + 1, i + 1, "\n".to_string()));
                    stack.push(Open::Block {
                        brace: i,
                        single_ident: line_tokens == 1 && last == Tok::Ident,
                    });
                } else {
                    stack.push(Open::Expr);
                }
                last = Tok::Punct(b'{');
                at_item_start = true;
                line_tokens = 0;
                i += 1;
            }
            b'[' | b'(' => {
                stack.push(Open::Expr);
                last = Tok::Punct(c);
                at_item_start = false;
                line_tokens += 1;
                i += 1;
            }
            b'}' | b']' | b')' => {
                let closed = stack.pop();
                if c == b'}' && matches!(closed, Some(Open::Block { .. })) {
                    edits.push((i, i, "\n".to_string()));
                    edits.push((i + 1, i + 1, "\n".to_string()));
                }
                last = Tok::Punct(c);
                at_item_start = c == b'}';
                line_tokens = 0;
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-') || b[i] >= 0x80)
                {
                    i += 1;
                }
                last = Tok::Ident;
                at_item_start = false;
                line_tokens += 1;
            }
            b',' => {
                last = Tok::Punct(c);
                // HCL1 lets commas separate attributes in a block body; HCL2
                // wants line breaks there.
                at_item_start = matches!(stack.last(), None | Some(Open::Block { .. }));
                if at_item_start {
                    edits.push((i, i + 1, "\n".to_string()));
                }
                i += 1;
            }
            _ => {
                last = Tok::Punct(c);
                at_item_start = false;
                line_tokens += 1;
                i += 1;
            }
        }
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(src.len() + 16);
    let mut pos = 0;
    for (start, end, repl) in edits {
        if start < pos {
            return None;
        }
        out.push_str(&src[pos..start]);
        out.push_str(&repl);
        pos = end;
    }
    out.push_str(&src[pos..]);
    Some(out)
}

/// HCL2 identifier: a letter or `_`, then letters, digits, `_` or `-`.
fn is_hcl_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Renders an offending value for an error message, shortened if long.
fn render_value(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "?".to_string());
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Checks a raw source object against the schema and returns it in canonical
/// form: known keys only (canonical spelling), nulls dropped, one-or-many
/// blocks as lists, repeated HCL blocks folded into one object, legacy keys
/// moved to their current names, and `service`/`check` folded into
/// `services`/`checks`.
pub fn normalize_source(
    origin: &str,
    raw: JsonMap<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<JsonMap<String, Value>, ConfigError> {
    let mut obj = normalize_struct(origin, "", raw, schema::TOP)?;
    apply_deprecated(&mut obj, warnings);
    fold_single(&mut obj, "check", "checks");
    fold_single(&mut obj, "service", "services");
    Ok(obj)
}

fn normalize_struct(
    origin: &str,
    path: &str,
    raw: JsonMap<String, Value>,
    fields: &'static [Field],
) -> Result<JsonMap<String, Value>, ConfigError> {
    let mut out = JsonMap::new();
    for (key, value) in raw {
        // mapstructure matches field names exactly first, then ignoring case.
        let field = fields
            .iter()
            .find(|f| f.0 == key)
            .or_else(|| fields.iter().find(|f| f.0.eq_ignore_ascii_case(&key)));
        let Some(field) = field else {
            return Err(ConfigError::UnknownKey {
                origin: origin.to_string(),
                key: join_path(path, &key),
            });
        };
        let key_path = join_path(path, field.0);
        if let Some(v) = normalize_value(origin, &key_path, value, field.1)? {
            out.insert(field.0.to_string(), v);
        }
    }
    Ok(out)
}

fn invalid_value(
    origin: &str,
    path: &str,
    value: &Value,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::InvalidValue {
        origin: origin.to_string(),
        key: path.to_string(),
        value: render_value(value),
        expected: expected.into(),
    }
}

/// Normalises one value; `Ok(None)` means "not set" (JSON null).
fn normalize_value(
    origin: &str,
    path: &str,
    value: Value,
    kind: Kind,
) -> Result<Option<Value>, ConfigError> {
    if value.is_null() {
        return Ok(None);
    }
    let out = match kind {
        Kind::Any => value,
        Kind::Str => match value {
            Value::String(_) => value,
            other => return Err(invalid_value(origin, path, &other, "a string")),
        },
        Kind::Bool => match value {
            Value::Bool(_) => value,
            other => return Err(invalid_value(origin, path, &other, "a boolean")),
        },
        Kind::Int => {
            integer(&value).ok_or_else(|| invalid_value(origin, path, &value, "an integer"))?
        }
        Kind::Float => match value {
            Value::Number(_) => value,
            other => return Err(invalid_value(origin, path, &other, "a number")),
        },
        Kind::Dur => match &value {
            Value::String(s) => match parse_go_duration_nanos(s) {
                Ok(_) => value,
                Err(e) => {
                    return Err(invalid_value(
                        origin,
                        path,
                        &value,
                        format!("a duration ({e})"),
                    ));
                }
            },
            _ => {
                return Err(invalid_value(
                    origin,
                    path,
                    &value,
                    "a duration string such as \"10s\"",
                ));
            }
        },
        Kind::StrList => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(_) => out.push(item),
                        other => {
                            return Err(invalid_value(
                                origin,
                                &format!("{path}[{i}]"),
                                &other,
                                "a string",
                            ));
                        }
                    }
                }
                Value::Array(out)
            }
            other => return Err(invalid_value(origin, path, &other, "a list of strings")),
        },
        Kind::List => {
            // One-or-many: a single block/object stands for a list of one.
            let items = match value {
                Value::Array(items) => items,
                Value::Object(_) => vec![value],
                other => {
                    return Err(invalid_value(
                        origin,
                        path,
                        &other,
                        "an object or a list of objects",
                    ));
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::Object(_) => out.push(item),
                    Value::Null => {}
                    other => {
                        return Err(invalid_value(
                            origin,
                            &format!("{path}[{i}]"),
                            &other,
                            "an object",
                        ));
                    }
                }
            }
            Value::Array(out)
        }
        Kind::StrMap | Kind::DurMap | Kind::Map => {
            let map = flatten_objects(origin, path, value)?;
            let mut out = JsonMap::new();
            for (k, v) in map {
                let entry_path = format!("{path}[{k:?}]");
                match kind {
                    Kind::StrMap if !v.is_string() => {
                        return Err(invalid_value(origin, &entry_path, &v, "a string"));
                    }
                    Kind::DurMap => {
                        let Some(s) = v.as_str() else {
                            return Err(invalid_value(
                                origin,
                                &entry_path,
                                &v,
                                "a duration string such as \"10s\"",
                            ));
                        };
                        if let Err(e) = parse_go_duration_nanos(s) {
                            return Err(invalid_value(
                                origin,
                                &entry_path,
                                &v,
                                format!("a duration ({e})"),
                            ));
                        }
                    }
                    _ => {}
                }
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Kind::Struct(fields) | Kind::Replace(fields) => match value {
            Value::Object(map) => Value::Object(normalize_struct(origin, path, map, fields)?),
            // HCL decodes blocks as lists of objects; Consul folds them.
            Value::Array(items) => {
                let mut acc = JsonMap::new();
                for item in items {
                    match item {
                        Value::Object(map) => {
                            let part = normalize_struct(origin, path, map, fields)?;
                            merge_objects(&mut acc, part, fields);
                        }
                        Value::Null => {}
                        other => return Err(invalid_value(origin, path, &other, "an object")),
                    }
                }
                Value::Object(acc)
            }
            other => return Err(invalid_value(origin, path, &other, "an object")),
        },
    };
    Ok(Some(out))
}

/// Folds an object, or a list of objects (repeated HCL blocks), into one map.
fn flatten_objects(
    origin: &str,
    path: &str,
    value: Value,
) -> Result<JsonMap<String, Value>, ConfigError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Array(items) => {
            let mut acc = JsonMap::new();
            for item in items {
                match item {
                    Value::Object(map) => acc.extend(map),
                    Value::Null => {}
                    other => return Err(invalid_value(origin, path, &other, "an object")),
                }
            }
            Ok(acc)
        }
        other => Err(invalid_value(origin, path, &other, "an object")),
    }
}

/// Accepts JSON integers and integral floats (Go decodes every JSON number as
/// a float64 and mapstructure converts it).
fn integer(v: &Value) -> Option<Value> {
    let Value::Number(n) = v else {
        return None;
    };
    if n.is_i64() || n.is_u64() {
        return Some(v.clone());
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        return Some(Value::from(f as i64));
    }
    None
}

// ---------------------------------------------------------------------------
// Legacy keys

fn deprecation(old: &str, new: &str) -> String {
    format!("The '{old}' field is deprecated. Use the '{new}' field instead.")
}

/// Walks to the object at `path`, creating empty objects on the way.
fn object_at<'a>(
    obj: &'a mut JsonMap<String, Value>,
    path: &[&str],
) -> &'a mut JsonMap<String, Value> {
    let mut cur = obj;
    for key in path {
        let entry = cur
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(JsonMap::new()));
        if !entry.is_object() {
            *entry = Value::Object(JsonMap::new());
        }
        let Value::Object(next) = entry else {
            unreachable!("just made an object")
        };
        cur = next;
    }
    cur
}

fn has(obj: &JsonMap<String, Value>, path: &[&str]) -> bool {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        match cur.get(*key) {
            None => return false,
            Some(v) if i + 1 == path.len() => return !v.is_null(),
            Some(Value::Object(next)) => cur = next,
            Some(_) => return false,
        }
    }
    false
}

fn take(obj: &mut JsonMap<String, Value>, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for key in parents {
        match cur.get_mut(*key) {
            Some(Value::Object(next)) => cur = next,
            _ => return None,
        }
    }
    cur.remove(*last)
}

fn set(obj: &mut JsonMap<String, Value>, path: &[&str], v: Value) {
    if let Some((last, parents)) = path.split_last() {
        object_at(obj, parents).insert((*last).to_string(), v);
    }
}

/// Moves a legacy key to its replacement unless the replacement is already
/// set in the same source (Consul's rule), and records the warning.
fn move_key(
    obj: &mut JsonMap<String, Value>,
    old: &[&str],
    new: &[&str],
    warnings: &mut Vec<String>,
) -> bool {
    let Some(v) = take(obj, old) else {
        return false;
    };
    if !has(obj, new) {
        set(obj, new, v);
    }
    warnings.push(deprecation(&old.join("."), &new.join(".")));
    true
}

fn append_list(obj: &mut JsonMap<String, Value>, key: &str, extra: &Value) {
    let Value::Array(extra) = extra else { return };
    let entry = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = entry {
        list.extend(extra.iter().cloned());
    }
}

/// Applies Consul's deprecated-key translation to one source.
fn apply_deprecated(obj: &mut JsonMap<String, Value>, warnings: &mut Vec<String>) {
    move_key(
        obj,
        &["acl", "tokens", "agent_master"],
        &["acl", "tokens", "agent_recovery"],
        warnings,
    );
    move_key(
        obj,
        &["acl_agent_master_token"],
        &["acl", "tokens", "agent_recovery"],
        warnings,
    );
    move_key(
        obj,
        &["acl_agent_token"],
        &["acl", "tokens", "agent"],
        warnings,
    );
    move_key(obj, &["acl_token"], &["acl", "tokens", "default"], warnings);
    move_key(
        obj,
        &["acl", "tokens", "master"],
        &["acl", "tokens", "initial_management"],
        warnings,
    );
    move_key(
        obj,
        &["acl_master_token"],
        &["acl", "tokens", "initial_management"],
        warnings,
    );
    if move_key(
        obj,
        &["acl_replication_token"],
        &["acl", "tokens", "replication"],
        warnings,
    ) {
        // A replication token implies token replication.
        set(obj, &["acl", "enable_token_replication"], Value::Bool(true));
    }
    move_key(
        obj,
        &["enable_acl_replication"],
        &["acl", "enable_token_replication"],
        warnings,
    );
    if move_key(obj, &["acl_datacenter"], &["primary_datacenter"], warnings) {
        // The legacy ACL datacenter key implicitly enabled ACLs.
        set(obj, &["acl", "enabled"], Value::Bool(true));
    }
    move_key(
        obj,
        &["acl_default_policy"],
        &["acl", "default_policy"],
        warnings,
    );
    move_key(obj, &["acl_down_policy"], &["acl", "down_policy"], warnings);
    move_key(obj, &["acl_ttl"], &["acl", "token_ttl"], warnings);
    move_key(
        obj,
        &["acl_enable_key_list_policy"],
        &["acl", "enable_key_list_policy"],
        warnings,
    );
    if take(obj, &["acl_enforce_version_8"]).is_some() {
        warnings.push(
            "config key \"acl_enforce_version_8\" is deprecated and should be removed".to_string(),
        );
    }

    // start_join is appended to retry_join (Consul >= 1.15); the key is kept
    // so RuntimeConfig can still report what was given.
    if let Some(v) = obj.get("start_join").cloned() {
        append_list(obj, "retry_join", &v);
        warnings.push(deprecation("start_join", "retry_join"));
    }
    if let Some(v) = obj.get("start_join_wan").cloned() {
        append_list(obj, "retry_join_wan", &v);
        warnings.push(deprecation("start_join_wan", "retry_join_wan"));
    }
    move_key(
        obj,
        &["raft_boltdb", "no_freelist_sync"],
        &["raft_logstore", "boltdb", "no_freelist_sync"],
        warnings,
    );
    take(obj, &["raft_boltdb"]);
    // Enterprise alias.
    if let Some(v) = take(obj, &["non_voting_server"]) {
        if !has(obj, &["read_replica"]) {
            obj.insert("read_replica".to_string(), v);
        }
        warnings.push(deprecation("non_voting_server", "read_replica"));
    }

    // Top-level TLS keys.
    for key in [
        "ca_file",
        "ca_path",
        "cert_file",
        "key_file",
        "tls_cipher_suites",
    ] {
        move_key(obj, &[key], &["tls", "defaults", key], warnings);
    }
    if let Some(v) = take(obj, &["tls_min_version"]) {
        let v = match v.as_str() {
            Some("tls10") => Value::from("TLSv1_0"),
            Some("tls11") => Value::from("TLSv1_1"),
            Some("tls12") => Value::from("TLSv1_2"),
            Some("tls13") => Value::from("TLSv1_3"),
            _ => v,
        };
        if !has(obj, &["tls", "defaults", "tls_min_version"]) {
            set(obj, &["tls", "defaults", "tls_min_version"], v);
        }
        warnings.push(deprecation(
            "tls_min_version",
            "tls.defaults.tls_min_version",
        ));
    }
    if move_key(
        obj,
        &["verify_incoming"],
        &["tls", "defaults", "verify_incoming"],
        warnings,
    ) && !has(obj, &["tls", "grpc", "verify_incoming"])
    {
        // Before 1.12 the top-level key never applied to the gRPC port.
        set(obj, &["tls", "grpc", "verify_incoming"], Value::Bool(false));
    }
    move_key(
        obj,
        &["verify_incoming_https"],
        &["tls", "https", "verify_incoming"],
        warnings,
    );
    move_key(
        obj,
        &["verify_incoming_rpc"],
        &["tls", "internal_rpc", "verify_incoming"],
        warnings,
    );
    move_key(
        obj,
        &["verify_outgoing"],
        &["tls", "defaults", "verify_outgoing"],
        warnings,
    );
    move_key(
        obj,
        &["verify_server_hostname"],
        &["tls", "internal_rpc", "verify_server_hostname"],
        warnings,
    );
    if take(obj, &["tls_prefer_server_cipher_suites"]).is_some() {
        warnings.push(
            "The 'tls_prefer_server_cipher_suites' field is deprecated and will be ignored."
                .to_string(),
        );
    }
}

/// Consul appends a source's single `service`/`check` after its list.
fn fold_single(obj: &mut JsonMap<String, Value>, single: &str, list: &str) {
    if let Some(v) = obj.remove(single) {
        append_list(obj, list, &v);
    }
}

// ---------------------------------------------------------------------------
// Schema

/// The shape of Consul's config file format (`agent/config/config.go`,
/// `deprecated.go`), used to reject unknown keys, check value types and drive
/// merging.
pub mod schema {
    /// How a key is typed and how two sources combine (Consul's `Merge`):
    /// structs merge field by field, lists append, maps are replaced by a later
    /// non-empty map, everything else is replaced by a later value.
    #[derive(Debug, Clone, Copy)]
    pub enum Kind {
        Str,
        Bool,
        Int,
        Float,
        /// A Go duration string.
        Dur,
        /// Any value, kept verbatim.
        Any,
        StrList,
        /// One-or-many list of objects kept verbatim (services, checks, ...).
        List,
        StrMap,
        /// Map of Go duration strings.
        DurMap,
        /// Map of anything, kept verbatim.
        Map,
        /// Nested block merged key by key.
        Struct(&'static [Field]),
        /// Nested block replaced as a whole (a Go pointer-to-struct).
        Replace(&'static [Field]),
    }

    /// A known key and its kind.
    #[derive(Debug)]
    pub struct Field(pub &'static str, pub Kind);

    use Kind::*;

    pub const TOKENS: &[Field] = &[
        Field("initial_management", Str),
        Field("replication", Str),
        Field("agent_recovery", Str),
        Field("default", Str),
        Field("agent", Str),
        Field("config_file_service_registration", Str),
        Field("dns", Str),
        Field("managed_service_provider", List),
        // Legacy names.
        Field("master", Str),
        Field("agent_master", Str),
    ];

    pub const ACL: &[Field] = &[
        Field("enabled", Bool),
        Field("enable_token_replication", Bool),
        Field("policy_ttl", Dur),
        Field("role_ttl", Dur),
        Field("token_ttl", Dur),
        Field("down_policy", Str),
        Field("default_policy", Str),
        Field("enable_key_list_policy", Bool),
        Field("tokens", Struct(TOKENS)),
        Field("enable_token_persistence", Bool),
        Field("msp_disable_bootstrap", Bool),
        // Written by older Go test harnesses; ignored.
        Field("disabled_ttl", Dur),
    ];

    pub const ADDRESSES: &[Field] = &[
        Field("dns", Str),
        Field("http", Str),
        Field("https", Str),
        Field("grpc", Str),
        Field("grpc_tls", Str),
    ];

    pub const AUTO_CONFIG_STATIC: &[Field] = &[
        Field("claim_assertions", StrList),
        Field("allow_reuse", Bool),
        Field("jwt_supported_algs", StrList),
        Field("bound_audiences", StrList),
        Field("claim_mappings", StrMap),
        Field("list_claim_mappings", StrMap),
        Field("oidc_discovery_url", Str),
        Field("oidc_discovery_ca_cert", Str),
        Field("jwks_url", Str),
        Field("jwks_ca_cert", Str),
        Field("jwt_validation_pub_keys", StrList),
        Field("bound_issuer", Str),
        Field("expiration_leeway", Dur),
        Field("not_before_leeway", Dur),
        Field("clock_skew_leeway", Dur),
    ];

    pub const AUTO_CONFIG_AUTHZ: &[Field] = &[
        Field("enabled", Bool),
        Field("static", Struct(AUTO_CONFIG_STATIC)),
    ];

    pub const AUTO_CONFIG: &[Field] = &[
        Field("enabled", Bool),
        Field("intro_token", Str),
        Field("intro_token_file", Str),
        Field("server_addresses", StrList),
        Field("dns_sans", StrList),
        Field("ip_sans", StrList),
        Field("authorization", Struct(AUTO_CONFIG_AUTHZ)),
    ];

    pub const AUTOPILOT: &[Field] = &[
        Field("cleanup_dead_servers", Bool),
        Field("last_contact_threshold", Dur),
        Field("max_trailing_logs", Int),
        Field("min_quorum", Int),
        Field("server_stabilization_time", Dur),
        Field("disable_upgrade_migration", Bool),
        Field("redundancy_zone_tag", Str),
        Field("upgrade_version_tag", Str),
    ];

    pub const CACHE: &[Field] = &[
        Field("entry_fetch_max_burst", Int),
        Field("entry_fetch_rate", Float),
    ];

    pub const CLOUD: &[Field] = &[
        Field("resource_id", Str),
        Field("client_id", Str),
        Field("client_secret", Str),
        Field("hostname", Str),
        Field("auth_url", Str),
        Field("scada_address", Str),
        Field("management_token", Str),
    ];

    pub const CONFIG_ENTRIES: &[Field] = &[Field("bootstrap", List)];

    pub const AUTO_ENCRYPT: &[Field] = &[
        Field("tls", Bool),
        Field("dns_san", StrList),
        Field("ip_san", StrList),
        Field("allow_tls", Bool),
    ];

    pub const CONNECT: &[Field] = &[
        Field("enabled", Bool),
        Field("ca_provider", Str),
        Field("ca_config", Map),
        Field("enable_mesh_gateway_wan_federation", Bool),
        Field("test_ca_leaf_root_change_spread", Dur),
    ];

    pub const SOA: &[Field] = &[
        Field("refresh", Int),
        Field("retry", Int),
        Field("expire", Int),
        Field("min_ttl", Int),
    ];

    pub const DNS: &[Field] = &[
        Field("allow_stale", Bool),
        Field("a_record_limit", Int),
        Field("disable_compression", Bool),
        Field("enable_truncate", Bool),
        Field("max_stale", Dur),
        Field("node_ttl", Dur),
        Field("only_passing", Bool),
        Field("recursor_strategy", Str),
        Field("recursor_timeout", Dur),
        Field("service_ttl", DurMap),
        Field("udp_answer_limit", Int),
        Field("enable_additional_node_meta_txt", Bool),
        Field("soa", Replace(SOA)),
        Field("use_cache", Bool),
        Field("cache_max_age", Dur),
        Field("prefer_namespace", Bool),
    ];

    pub const GOSSIP: &[Field] = &[
        Field("gossip_nodes", Int),
        Field("gossip_interval", Dur),
        Field("probe_interval", Dur),
        Field("probe_timeout", Dur),
        Field("suspicion_mult", Int),
        Field("retransmit_mult", Int),
    ];

    pub const HTTP_CONFIG: &[Field] = &[
        Field("block_endpoints", StrList),
        Field("allow_write_http_from", StrList),
        Field("response_headers", StrMap),
        Field("use_cache", Bool),
        Field("max_header_bytes", Int),
    ];

    pub const REQUEST_LIMITS: &[Field] = &[
        Field("mode", Str),
        Field("read_rate", Float),
        Field("write_rate", Float),
    ];

    pub const LIMITS: &[Field] = &[
        Field("http_max_conns_per_client", Int),
        Field("https_handshake_timeout", Dur),
        Field("request_limits", Struct(REQUEST_LIMITS)),
        Field("rpc_client_timeout", Dur),
        Field("rpc_handshake_timeout", Dur),
        Field("rpc_max_burst", Int),
        Field("rpc_max_conns_per_client", Int),
        Field("rpc_rate", Float),
        Field("kv_max_value_size", Int),
        Field("txn_max_req_len", Int),
    ];

    pub const LOCALITY: &[Field] = &[Field("region", Str), Field("zone", Str)];

    pub const PEERING: &[Field] = &[
        Field("enabled", Bool),
        Field("test_allow_peer_registrations", Bool),
    ];

    pub const PERFORMANCE: &[Field] = &[
        Field("leave_drain_time", Dur),
        Field("raft_multiplier", Int),
        Field("rpc_hold_timeout", Dur),
    ];

    pub const PORTS: &[Field] = &[
        Field("dns", Int),
        Field("http", Int),
        Field("https", Int),
        Field("serf_lan", Int),
        Field("serf_wan", Int),
        Field("server", Int),
        Field("grpc", Int),
        Field("grpc_tls", Int),
        Field("proxy_min_port", Int),
        Field("proxy_max_port", Int),
        Field("sidecar_min_port", Int),
        Field("sidecar_max_port", Int),
        Field("expose_min_port", Int),
        Field("expose_max_port", Int),
    ];

    pub const TLS_PROTOCOL: &[Field] = &[
        Field("ca_file", Str),
        Field("ca_path", Str),
        Field("cert_file", Str),
        Field("key_file", Str),
        Field("tls_min_version", Str),
        Field("tls_cipher_suites", Str),
        Field("verify_incoming", Bool),
        Field("verify_outgoing", Bool),
        Field("verify_server_hostname", Bool),
        Field("use_auto_cert", Bool),
    ];

    pub const TLS: &[Field] = &[
        Field("defaults", Struct(TLS_PROTOCOL)),
        Field("internal_rpc", Struct(TLS_PROTOCOL)),
        Field("https", Struct(TLS_PROTOCOL)),
        Field("grpc", Struct(TLS_PROTOCOL)),
    ];

    pub const TELEMETRY: &[Field] = &[
        Field("circonus_api_app", Str),
        Field("circonus_api_token", Str),
        Field("circonus_api_url", Str),
        Field("circonus_broker_id", Str),
        Field("circonus_broker_select_tag", Str),
        Field("circonus_check_display_name", Str),
        Field("circonus_check_force_metric_activation", Str),
        Field("circonus_check_id", Str),
        Field("circonus_check_instance_id", Str),
        Field("circonus_check_search_tag", Str),
        Field("circonus_check_tags", Str),
        Field("circonus_submission_interval", Str),
        Field("circonus_submission_url", Str),
        Field("disable_hostname", Bool),
        Field("dogstatsd_addr", Str),
        Field("dogstatsd_tags", StrList),
        Field("retry_failed_connection", Bool),
        Field("filter_default", Bool),
        Field("prefix_filter", StrList),
        Field("metrics_prefix", Str),
        Field("prometheus_retention_time", Dur),
        Field("statsd_address", Str),
        Field("statsite_address", Str),
        Field("enable_host_metrics", Bool),
        Field("disable_per_tenancy_usage_metrics", Bool),
        // Removed in 1.10 but still present in old configs.
        Field("disable_compat_1.9", Bool),
    ];

    pub const XDS: &[Field] = &[Field("update_max_per_second", Float)];

    pub const UI_METRICS_PROXY: &[Field] = &[
        Field("base_url", Str),
        Field("add_headers", List),
        Field("path_allowlist", StrList),
    ];

    pub const UI_CONFIG: &[Field] = &[
        Field("enabled", Bool),
        Field("dir", Str),
        Field("content_path", Str),
        Field("metrics_provider", Str),
        Field("metrics_provider_files", StrList),
        Field("metrics_provider_options_json", Str),
        Field("metrics_proxy", Struct(UI_METRICS_PROXY)),
        Field("dashboard_url_templates", StrMap),
    ];

    pub const UNIX_SOCKETS: &[Field] =
        &[Field("group", Str), Field("mode", Str), Field("user", Str)];

    pub const RPC: &[Field] = &[Field("enable_streaming", Bool)];

    pub const RAFT_LOGSTORE_VERIFICATION: &[Field] =
        &[Field("enabled", Bool), Field("interval", Dur)];
    pub const RAFT_BOLTDB: &[Field] = &[Field("no_freelist_sync", Bool)];
    pub const RAFT_WAL: &[Field] = &[Field("segment_size_mb", Int)];

    pub const RAFT_LOGSTORE: &[Field] = &[
        Field("backend", Str),
        Field("disable_log_cache", Bool),
        Field("verification", Struct(RAFT_LOGSTORE_VERIFICATION)),
        Field("boltdb", Struct(RAFT_BOLTDB)),
        Field("wal", Struct(RAFT_WAL)),
    ];

    pub const CONSUL_COORDINATE: &[Field] = &[
        Field("update_batch_size", Int),
        Field("update_max_batches", Int),
        Field("update_period", Dur),
    ];
    pub const CONSUL_RAFT: &[Field] = &[
        Field("election_timeout", Dur),
        Field("heartbeat_timeout", Dur),
        Field("leader_lease_timeout", Dur),
    ];
    pub const CONSUL_SERVER: &[Field] = &[Field("health_interval", Dur)];
    pub const CONSUL: &[Field] = &[
        Field("coordinate", Struct(CONSUL_COORDINATE)),
        Field("raft", Struct(CONSUL_RAFT)),
        Field("server", Struct(CONSUL_SERVER)),
    ];

    pub const AUDIT: &[Field] = &[Field("enabled", Bool), Field("sink", Map)];
    pub const REPORTING_LICENSE: &[Field] = &[Field("enabled", Bool)];
    pub const REPORTING: &[Field] = &[Field("license", Struct(REPORTING_LICENSE))];

    /// Every top-level key of Consul's `Config` and `DeprecatedConfig`.
    pub const TOP: &[Field] = &[
        Field("acl", Struct(ACL)),
        Field("addresses", Struct(ADDRESSES)),
        Field("advertise_addr", Str),
        Field("advertise_addr_ipv4", Str),
        Field("advertise_addr_ipv6", Str),
        Field("advertise_addr_wan", Str),
        Field("advertise_addr_wan_ipv4", Str),
        Field("advertise_addr_wan_ipv6", Str),
        Field("advertise_reconnect_timeout", Dur),
        Field("auto_config", Struct(AUTO_CONFIG)),
        Field("autopilot", Struct(AUTOPILOT)),
        Field("bind_addr", Str),
        Field("bootstrap", Bool),
        Field("bootstrap_expect", Int),
        Field("cache", Struct(CACHE)),
        Field("check", List),
        Field("check_output_max_size", Int),
        Field("check_update_interval", Dur),
        Field("checks", List),
        Field("client_addr", Str),
        Field("cloud", Replace(CLOUD)),
        Field("config_entries", Struct(CONFIG_ENTRIES)),
        Field("auto_encrypt", Struct(AUTO_ENCRYPT)),
        Field("connect", Struct(CONNECT)),
        Field("dns_config", Struct(DNS)),
        Field("domain", Str),
        Field("alt_domain", Str),
        Field("recursors", StrList),
        Field("data_dir", Str),
        Field("datacenter", Str),
        Field("default_query_time", Dur),
        Field("disable_anonymous_signature", Bool),
        Field("disable_coordinates", Bool),
        Field("disable_host_node_id", Bool),
        Field("disable_http_unprintable_char_filter", Bool),
        Field("disable_keyring_file", Bool),
        Field("disable_remote_exec", Bool),
        Field("disable_update_check", Bool),
        Field("discard_check_output", Bool),
        Field("discovery_max_stale", Dur),
        Field("enable_agent_tls_for_checks", Bool),
        Field("enable_central_service_config", Bool),
        Field("enable_debug", Bool),
        Field("enable_script_checks", Bool),
        Field("enable_local_script_checks", Bool),
        Field("enable_syslog", Bool),
        Field("encrypt", Str),
        Field("encrypt_verify_incoming", Bool),
        Field("encrypt_verify_outgoing", Bool),
        Field("experiments", StrList),
        Field("gossip_lan", Struct(GOSSIP)),
        Field("gossip_wan", Struct(GOSSIP)),
        Field("http_config", Struct(HTTP_CONFIG)),
        Field("leave_on_terminate", Bool),
        Field("license_path", Str),
        Field("limits", Struct(LIMITS)),
        Field("locality", Replace(LOCALITY)),
        Field("log_level", Str),
        Field("log_sublevels", StrMap),
        Field("log_json", Bool),
        Field("log_file", Str),
        Field("log_rotate_duration", Dur),
        Field("log_rotate_bytes", Int),
        Field("log_rotate_max_files", Int),
        Field("max_query_time", Dur),
        Field("node_id", Str),
        Field("node_meta", StrMap),
        Field("node_name", Str),
        Field("peering", Struct(PEERING)),
        Field("performance", Struct(PERFORMANCE)),
        Field("pid_file", Str),
        Field("ports", Struct(PORTS)),
        Field("primary_datacenter", Str),
        Field("primary_gateways", StrList),
        Field("primary_gateways_interval", Dur),
        Field("protocol", Int),
        Field("raft_protocol", Int),
        Field("raft_snapshot_threshold", Int),
        Field("raft_snapshot_interval", Dur),
        Field("raft_trailing_logs", Int),
        Field("reconnect_timeout", Dur),
        Field("reconnect_timeout_wan", Dur),
        Field("rejoin_after_leave", Bool),
        Field("auto_reload_config", Bool),
        Field("retry_interval", Dur),
        Field("retry_interval_wan", Dur),
        Field("retry_join", StrList),
        Field("retry_max", Int),
        Field("retry_max_wan", Int),
        Field("retry_join_wan", StrList),
        Field("serf_lan_allowed_cidrs", StrList),
        Field("serf_wan_allowed_cidrs", StrList),
        Field("serf_lan", Str),
        Field("serf_wan", Str),
        Field("server", Bool),
        Field("server_name", Str),
        Field("server_rejoin_age_max", Dur),
        Field("service", List),
        Field("services", List),
        Field("session_ttl_min", Dur),
        Field("skip_leave_on_interrupt", Bool),
        Field("syslog_facility", Str),
        Field("tls", Struct(TLS)),
        Field("tagged_addresses", StrMap),
        Field("telemetry", Struct(TELEMETRY)),
        Field("translate_wan_addrs", Bool),
        Field("xds", Struct(XDS)),
        Field("ui", Bool),
        Field("ui_content_path", Str),
        Field("ui_dir", Str),
        Field("ui_config", Struct(UI_CONFIG)),
        Field("unix_sockets", Struct(UNIX_SOCKETS)),
        Field("watches", List),
        Field("rpc", Struct(RPC)),
        Field("raft_logstore", Struct(RAFT_LOGSTORE)),
        Field("use_streaming_backend", Bool),
        Field("snapshot_agent", Map),
        // Not user-facing in Consul, but parsed (the Go test harness writes
        // "version").
        Field("ae_interval", Dur),
        Field("check_deregister_interval_min", Dur),
        Field("check_reap_interval", Dur),
        Field("consul", Struct(CONSUL)),
        Field("revision", Str),
        Field("segment_limit", Int),
        Field("segment_name_limit", Int),
        Field("sync_coordinate_interval_min", Dur),
        Field("sync_coordinate_rate_target", Float),
        Field("version", Any),
        Field("version_prerelease", Str),
        Field("version_metadata", Str),
        Field("build_date", Any),
        // Enterprise-only, accepted and ignored.
        Field("audit", Struct(AUDIT)),
        Field("read_replica", Bool),
        Field("non_voting_server", Bool),
        Field("segment", Str),
        Field("segments", List),
        Field("partition", Str),
        Field("license_poll_base_time", Str),
        Field("license_poll_max_time", Str),
        Field("license_update_base_time", Str),
        Field("license_update_max_time", Str),
        Field("reporting", Struct(REPORTING)),
        // Deprecated keys, translated by apply_deprecated.
        Field("acl_agent_master_token", Str),
        Field("acl_agent_token", Str),
        Field("acl_token", Str),
        Field("acl_enable_key_list_policy", Bool),
        Field("acl_master_token", Str),
        Field("acl_replication_token", Str),
        Field("enable_acl_replication", Bool),
        Field("acl_datacenter", Str),
        Field("acl_default_policy", Str),
        Field("acl_down_policy", Str),
        Field("acl_ttl", Dur),
        Field("acl_enforce_version_8", Any),
        Field("ca_file", Str),
        Field("ca_path", Str),
        Field("cert_file", Str),
        Field("key_file", Str),
        Field("tls_cipher_suites", Str),
        Field("tls_min_version", Str),
        Field("verify_incoming", Bool),
        Field("verify_incoming_https", Bool),
        Field("verify_incoming_rpc", Bool),
        Field("verify_outgoing", Bool),
        Field("verify_server_hostname", Bool),
        Field("tls_prefer_server_cipher_suites", Bool),
        Field("start_join", StrList),
        Field("start_join_wan", StrList),
        Field("raft_boltdb", Replace(RAFT_BOLTDB)),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hcl(text: &str) -> Value {
        match parse_text("test", text, Format::Hcl) {
            Ok(m) => Value::Object(m),
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    #[test]
    fn json_text_read_as_hcl_is_json() {
        assert_eq!(
            hcl("\n  {\"data_dir\": \"/d\", \"ports\": {\"http\": 1}}"),
            json!({"data_dir": "/d", "ports": {"http": 1}})
        );
    }

    #[test]
    fn hcl1_one_line_nested_blocks() {
        assert_eq!(
            hcl("acl { tokens { agent = \"x\" } }\nports { http = 1 }"),
            json!({"acl": {"tokens": {"agent": "x"}}, "ports": {"http": 1}})
        );
        assert_eq!(
            hcl(
                "telemetry { prometheus_retention_time = \"30s\", disable_hostname = true }\nautopilot = { max_trailing_logs = 1, }"
            ),
            json!({"telemetry": {"prometheus_retention_time": "30s", "disable_hostname": true}, "autopilot": {"max_trailing_logs": 1}})
        );
        assert_eq!(
            hcl("audit { sink \"My Sink\" { type = \"file\" } }"),
            json!({"audit": {"sink": {"My Sink": {"type": "file"}}}})
        );
    }

    #[test]
    fn hcl1_quoted_keys() {
        assert_eq!(
            hcl("node_meta {\n  \"rack-1\" = \"r1\"\n}\nservice { \"name\" = \"web\" }"),
            json!({"node_meta": {"rack-1": "r1"}, "service": {"name": "web"}})
        );
        // Not an identifier: the block becomes an object expression.
        assert_eq!(
            hcl(
                "dns_config {\n  service_ttl {\n    \"web.*\" = \"5s\"\n    \"*\" = \"1s\"\n  }\n}"
            ),
            json!({"dns_config": {"service_ttl": {"web.*": "5s", "*": "1s"}}})
        );
    }

    #[test]
    fn hcl_rewrite_skips_comments_strings_and_heredocs() {
        let text = "# comment { \"x\" = 1\n// another } \"y\"\n/* block { */\n\
                    ui_config { content_path = \"/a{b}/\" }\n\
                    node_meta { \"k-1\" = <<EOF\nline with { and \"quotes\" }\nEOF\n}\n";
        let v = hcl(text);
        assert_eq!(v["ui_config"]["content_path"], json!("/a{b}/"));
        assert_eq!(
            v["node_meta"]["k-1"],
            json!("line with { and \"quotes\" }\n")
        );
    }

    #[test]
    fn hcl_unfixable_keeps_original_error() {
        let err = parse_text("src", "\"a.b\" = 1\n", Format::Hcl).expect_err("must fail");
        assert!(err.to_string().starts_with("src: parse error:"), "{err}");
    }

    #[test]
    fn json_top_level_must_be_object() {
        let err = parse_text("src", "[1]", Format::Json).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "src: parse error: top-level value must be an object, got a list"
        );
        assert_eq!(
            parse_text("src", "\u{feff}{}", Format::Json)
                .expect("bom")
                .len(),
            0
        );
        assert_eq!(
            parse_text("src", "# only a comment\n", Format::Hcl)
                .expect("comment")
                .len(),
            0
        );
    }

    #[test]
    fn normalisation() {
        let mut warnings = Vec::new();
        let raw = match json!({
            "ports": [{"http": 1}, {"dns": 2.0}],
            "segments": null,
            "Node_Meta": {"a": "b"},
            "service": {"name": "x"},
            "services": [{"name": "y"}],
            "acl": {"tokens": {"master": "m"}},
            "dns_config": {"soa": [{"retry": 5}]},
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let out = normalize_source("src", raw, &mut warnings).expect("normalise");
        assert_eq!(
            Value::Object(out),
            json!({
                "ports": {"http": 1, "dns": 2},
                "node_meta": {"a": "b"},
                "services": [{"name": "y"}, {"name": "x"}],
                "acl": {"tokens": {"initial_management": "m"}},
                "dns_config": {"soa": {"retry": 5}},
            })
        );
        assert_eq!(
            warnings,
            vec![
                "The 'acl.tokens.master' field is deprecated. Use the 'acl.tokens.initial_management' field instead."
            ]
        );

        let bad = |v: Value| {
            let Value::Object(m) = v else { unreachable!() };
            normalize_source("src", m, &mut Vec::new())
                .expect_err("must fail")
                .to_string()
        };
        assert_eq!(
            bad(json!({"ports": {"http": 1.5}})),
            "src: ports.http: invalid value 1.5: expected an integer"
        );
        assert_eq!(
            bad(json!({"node_meta": {"a": 1}})),
            "src: node_meta[\"a\"]: invalid value 1: expected a string"
        );
        assert_eq!(
            bad(json!({"services": ["web"]})),
            "src: services[0]: invalid value \"web\": expected an object"
        );
        assert_eq!(
            bad(json!({"dns_config": {"service_ttl": {"*": "soon"}}})),
            "src: dns_config.service_ttl[\"*\"]: invalid value \"soon\": expected a duration (time: invalid duration \"soon\")"
        );
        assert_eq!(
            bad(json!({"telemetry": {"nope": true}})),
            "src: unknown key \"telemetry.nope\""
        );
    }
}
