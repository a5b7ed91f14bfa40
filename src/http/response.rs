//! Response rendering: JSON with Consul's formatting (`?pretty` and `-dev` indent by
//! four spaces with a trailing newline) and the `X-Consul-*` metadata headers.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::blocking::QueryMeta;

pub fn json_bytes<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Vec<u8> {
    if pretty {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        if value.serialize(&mut ser).is_err() {
            return b"null".to_vec();
        }
        out.push(b'\n');
        out
    } else {
        serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
    }
}

/// A 200 JSON response.
pub fn json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Response {
    json_status(StatusCode::OK, value, pretty)
}

pub fn json_status<T: Serialize + ?Sized>(status: StatusCode, value: &T, pretty: bool) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(json_bytes(value, pretty)),
    )
        .into_response()
}

/// 200 with a completely empty body and no Content-Type (agent writes).
pub fn empty() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::OK;
    r
}

pub fn set_meta(headers: &mut HeaderMap, meta: &QueryMeta) {
    headers.insert("X-Consul-Index", HeaderValue::from(meta.index.max(1)));
    set_leader_meta(headers, meta);
    if let Some(c) = meta.consistency {
        headers.insert(
            "X-Consul-Effective-Consistency",
            HeaderValue::from_static(c.header_value()),
        );
    }
}

/// Only `X-Consul-KnownLeader` and `X-Consul-LastContact` (read-only txn).
pub fn set_leader_meta(headers: &mut HeaderMap, meta: &QueryMeta) {
    headers.insert(
        "X-Consul-KnownLeader",
        HeaderValue::from_static(if meta.known_leader { "true" } else { "false" }),
    );
    headers.insert(
        "X-Consul-LastContact",
        HeaderValue::from(meta.last_contact_ms),
    );
}

/// A JSON answer to a read, with its metadata headers.
pub fn json_with_meta<T: Serialize + ?Sized>(
    value: &T,
    meta: &QueryMeta,
    pretty: bool,
) -> Response {
    let mut r = json(value, pretty);
    set_meta(r.headers_mut(), meta);
    r
}

/// A JSON answer rendered earlier (a shared answer), with its metadata headers.
pub fn rendered_with_meta(body: bytes::Bytes, meta: &QueryMeta) -> Response {
    let mut r = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(body),
    )
        .into_response();
    set_meta(r.headers_mut(), meta);
    r
}

/// A 404 with an empty body that still carries the metadata (KV misses), so clients
/// can block for the object's creation.
pub fn not_found_with_meta(meta: &QueryMeta) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NOT_FOUND;
    set_meta(r.headers_mut(), meta);
    r
}
