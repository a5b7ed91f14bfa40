//! go-bexpr `?filter=` expressions: parsing, evaluation against elements in
//! their wire-JSON form, and Consul's error texts.
//!
//! Error texts are those of go-bexpr v0.1.14 (Consul's pin), including
//! pigeon's `1:5 (4): no match found, expected: ...` parse errors; the grammar
//! also has v0.1.16's `is nil` / `is not nil`.
//! Evaluation works on `serde_json::Value` instead of Go structs; the rules used
//! where JSON loses Go's type information are listed at the top of `eval.rs`:
//! integers are Go `int`s, objects are maps, and missing keys or `null` behave
//! like a missing map key.
//!
//! ```text
//! let filter = Filter::parse("Service.Meta.version == 1 and connect in Service.Tags")?;
//! filter.validate_fields(&["Node", "Service", "Checks"])?;
//! let kept = filter.retain(rows)?;
//! ```

mod eval;
pub(crate) use eval::go_quote;
mod parser;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

use parser::{Expr, Selector};

/// Why a filter could not be built or applied. `Display` is the text Consul
/// sends back (as the body of a 500).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The expression does not parse (pigeon's message, prefixed as Consul's
    /// `bexpr.CreateFilter` does).
    #[error("Failed to create boolean expression evaluator: {0}")]
    Parse(String),
    /// Evaluating against an element failed: a literal that does not coerce to
    /// the field's type, an operator the field's type does not support, a bad
    /// regular expression, a path through a scalar.
    #[error("{0}")]
    Evaluate(String),
    /// A selector starts with a name that is not a field of the element type
    /// (see [`Filter::validate_fields`]).
    #[error("{0}")]
    UnknownField(String),
    /// An element could not be turned into JSON (only from [`apply`]).
    #[error("failed to encode element for filtering: {0}")]
    Encode(String),
}

/// A parsed filter expression.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `None` for the empty expression, which keeps everything (Consul's
    /// `CreateFilter("")` returns no filter at all).
    ast: Option<Expr>,
}

impl Filter {
    /// Parses an expression. The empty string is accepted and matches
    /// everything, as in Consul; anything else must be a whole expression.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        if expr.is_empty() {
            return Ok(Filter { ast: None });
        }
        let mut ast = parser::parse(expr).map_err(FilterError::Parse)?;
        eval::compile_regexes(&mut ast);
        Ok(Filter { ast: Some(ast) })
    }

    /// Evaluates against one element, given as its wire JSON (`PascalCase` keys).
    pub fn matches(&self, item: &Value) -> Result<bool, FilterError> {
        match &self.ast {
            None => Ok(true),
            Some(ast) => eval::evaluate(ast, item).map_err(FilterError::Evaluate),
        }
    }

    /// Keeps the elements that match, in order. The first evaluation error
    /// aborts, as go-bexpr's `Filter.Execute` does.
    #[cfg(test)]
    pub fn retain(&self, items: Vec<Value>) -> Result<Vec<Value>, FilterError> {
        if self.ast.is_none() {
            return Ok(items);
        }
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if self.matches(&item)? {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    /// Checks that every selector starts with one of `allowed` (the element
    /// type's top-level field names). Names bound by `any`/`all` are exempt
    /// inside their bodies.
    ///
    /// go-bexpr finds an unknown struct field only while evaluating, so Consul
    /// reports it only when at least one element is tested; callers wanting that
    /// exact behaviour call this only for non-empty results. The error text is
    /// the one go-bexpr produces for the field.
    pub fn validate_fields(&self, allowed: &[&str]) -> Result<(), FilterError> {
        let mut scope = Vec::new();
        match &self.ast {
            None => Ok(()),
            Some(ast) => check_fields(ast, allowed, &mut scope),
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

fn check_fields<'a>(
    expr: &'a Expr,
    allowed: &[&str],
    scope: &mut Vec<&'a str>,
) -> Result<(), FilterError> {
    match expr {
        Expr::Or(terms) | Expr::And(terms) => terms
            .iter()
            .try_for_each(|term| check_fields(term, allowed, scope)),
        Expr::Not(inner) => check_fields(inner, allowed, scope),
        Expr::Match(m) => check_selector(&m.selector, allowed, scope),
        Expr::Collection(c) => {
            check_selector(&c.selector, allowed, scope)?;
            let base = scope.len();
            scope.extend(c.binding.names());
            let result = check_fields(&c.inner, allowed, scope);
            scope.truncate(base);
            result
        }
    }
}

fn check_selector(
    selector: &Selector,
    allowed: &[&str],
    scope: &[&str],
) -> Result<(), FilterError> {
    let Some(first) = selector.path.first() else {
        return Ok(());
    };
    if scope.contains(&first.as_str()) || allowed.contains(&first.as_str()) {
        return Ok(());
    }
    Err(FilterError::UnknownField(format!(
        "error finding value in datum: {} at part 0: couldn't find key: struct field with name {}",
        eval::pointer_string(&selector.path),
        eval::go_quote(first)
    )))
}

/// Top-level fields that some wire types omit from their JSON when empty
/// (`omitempty` in Consul's structs). They are still fields of the type, so a
/// selector naming them is valid even when no element in the answer carries them.
const OMITTED_WHEN_EMPTY: &[&str] = &[
    "Kind",
    "SocketPath",
    "TaggedAddresses",
    "ContentHash",
    "Proxy",
    "Connect",
    "Ports",
    "Locality",
    "ServiceTaggedAddresses",
    "ServicePorts",
    "ServiceLocality",
];

/// Filters typed elements the way Consul filters an endpoint's answer: each is
/// serialized to its wire JSON and tested, and the originals that match are
/// returned. Selectors must start with a field of the element type (the keys of
/// its wire JSON); as in go-bexpr, that is only checked when there is at least
/// one element to test. `None` keeps everything.
pub fn apply<T: Serialize>(filter: Option<&Filter>, items: Vec<T>) -> Result<Vec<T>, FilterError> {
    let Some(filter) = filter.filter(|f| f.ast.is_some()) else {
        return Ok(items);
    };
    let encoded = items
        .iter()
        .map(|item| serde_json::to_value(item).map_err(|e| FilterError::Encode(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if !encoded.is_empty() {
        let mut fields: Vec<&str> = OMITTED_WHEN_EMPTY.to_vec();
        for value in &encoded {
            if let Value::Object(map) = value {
                fields.extend(map.keys().map(String::as_str));
            }
        }
        fields.sort_unstable();
        fields.dedup();
        filter.validate_fields(&fields)?;
    }
    let mut kept = Vec::with_capacity(items.len());
    for (item, json) in items.into_iter().zip(&encoded) {
        if filter.matches(json)? {
            kept.push(item);
        }
    }
    Ok(kept)
}
