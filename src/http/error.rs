//! `ApiError`: every failure an HTTP handler returns, rendered the way Consul renders
//! it — a status code and a plain-text body (no JSON), with the same texts.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::raft::ConsensusError;
use crate::state::StateError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: String,
    /// Extra headers (e.g. `Allow` on 405).
    pub headers: Vec<(&'static str, String)>,
    /// This server lost leadership after the request was routed to it: the
    /// forwarding middleware sends the request on to the new leader.
    pub deposed: bool,
}

/// Marks the response of an [`ApiError`] with `deposed` set.
#[derive(Debug, Clone, Copy)]
pub struct Deposed;

impl ApiError {
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        ApiError {
            status,
            body: body.into(),
            headers: Vec::new(),
            deposed: false,
        }
    }

    /// The same error, marked as one a new leader should answer instead.
    pub fn deposed(mut self) -> Self {
        self.deposed = true;
        self
    }

    pub fn bad_request(body: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, body)
    }

    pub fn not_found(body: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, body)
    }

    pub fn internal(body: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, body)
    }

    pub fn too_large(body: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, body)
    }

    /// `Request decode failed: <why>`, Consul's answer to a body it cannot decode.
    pub fn decode(why: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Request decode failed: {why}"))
    }

    /// Consul maps errors to 403 by substring, wherever they come from.
    pub fn from_message(msg: String) -> Self {
        if msg.contains("Permission denied") || msg.contains("ACL not found") {
            Self::new(StatusCode::FORBIDDEN, msg)
        } else {
            Self::internal(msg)
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Rejected(msg) => ApiError::from_message(msg),
            other => {
                tracing::error!(error = %other, "state store failure");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl From<ConsensusError> for ApiError {
    fn from(e: ConsensusError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let empty = self.body.is_empty();
        let mut resp = (self.status, self.body).into_response();
        // Go sniffs a text body as text/plain and sets nothing for an empty one.
        if empty {
            resp.headers_mut().remove(header::CONTENT_TYPE);
        } else {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        if self.deposed {
            resp.extensions_mut().insert(Deposed);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
