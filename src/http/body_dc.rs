//! Request bodies that name a datacenter. Consul routes `catalog/register`,
//! `catalog/deregister` and `coordinate/update` by the body's `Datacenter` field
//! when the query names none, so before the forwarding middleware routes such a
//! request, the body's datacenter becomes the request's `?dc=`. A `?dc=` that is
//! present and not empty wins over the body.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::ApiError;
use super::query::Params;

/// The endpoints whose request body carries a `Datacenter` Consul routes by.
const PATHS: &[&str] = &[
    "/v1/catalog/register",
    "/v1/catalog/deregister",
    "/v1/coordinate/update",
];

/// Bodies larger than this are refused before they are read (as when forwarding).
const BODY_LIMIT: usize = 48 << 20;

/// The datacenter a JSON body names; keys compare case-insensitively, as Go
/// decodes a body into a struct. A body that is not an object, or whose
/// `Datacenter` is not a string, names none: its handler answers the decode error.
fn named_in(body: &[u8]) -> Option<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return None;
    };
    fields
        .iter()
        .rfind(|(k, _)| k.eq_ignore_ascii_case("Datacenter"))
        .and_then(|(_, v)| v.as_str())
        .filter(|dc| !dc.is_empty())
        .map(str::to_string)
}

/// `uri` with its `dc` parameters replaced by `dc`.
fn with_dc(uri: &Uri, dc: &str) -> Result<Uri, ApiError> {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !Params::parse(p).has("dc"))
        .map(str::to_string)
        .collect();
    pairs.push(format!("dc={}", utf8_percent_encode(dc, NON_ALPHANUMERIC)));
    format!("{}?{}", uri.path(), pairs.join("&"))
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{e}")))
}

/// The request, with the body's datacenter as `?dc=` where Consul routes by it.
pub async fn apply(req: Request) -> Result<Request, ApiError> {
    if !PATHS.contains(&req.uri().path()) {
        return Ok(req);
    }
    let params = Params::parse(req.uri().query().unwrap_or(""));
    if params.get("dc").is_some_and(|dc| !dc.is_empty()) {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    if let Some(dc) = named_in(&body) {
        parts.uri = with_dc(&parts.uri, &dc)?;
    }
    Ok(Request::from_parts(parts, Body::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_datacenter_as_consul_decodes_it() {
        assert_eq!(
            named_in(br#"{"Node":"a","Datacenter":"dc2"}"#).as_deref(),
            Some("dc2")
        );
        assert_eq!(named_in(br#"{"datacenter":"dc3"}"#).as_deref(), Some("dc3"));
        assert_eq!(named_in(br#"{"Datacenter":""}"#), None);
        assert_eq!(named_in(br#"{"Datacenter":null}"#), None);
        assert_eq!(named_in(br#"{"Datacenter":7}"#), None);
        assert_eq!(named_in(b"not json"), None);
        assert_eq!(named_in(b"[1]"), None);
    }

    #[test]
    fn an_empty_dc_parameter_gives_way_to_the_body() {
        let uri: Uri = "/v1/catalog/register?dc=&token=x".parse().unwrap();
        assert_eq!(
            with_dc(&uri, "dc 2").unwrap().to_string(),
            "/v1/catalog/register?token=x&dc=dc%202"
        );
    }
}
