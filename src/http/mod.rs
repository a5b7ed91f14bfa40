//! The HTTP API: routers composed per area (one file each), Consul's method and
//! unknown-path handling, and the listeners.

pub mod blocking;
pub mod body_dc;
pub mod cache;
pub mod catalog;
pub mod conn;
pub mod coordinate;
pub mod error;
pub mod forward;
pub mod health;
pub mod index;
pub mod keyring;
pub mod kv;
pub mod operator;
pub mod query;
pub mod response;
pub mod session;
pub mod shared;
pub mod snapshot;
pub mod status;
pub mod tls;
pub mod txn;
pub mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;

use crate::agent::Agent;
use error::ApiError;

/// Bodies larger than this are refused before a handler sees them; handlers enforce
/// Consul's own, smaller limits with Consul's texts.
const BODY_LIMIT: usize = 64 << 20;

/// Adds Consul's method handling to a route: `OPTIONS` answers 200 with `Allow`, any
/// other method not listed answers 405 `method X not allowed`.
pub fn endpoint(
    methods: &'static [&'static str],
    route: MethodRouter<Arc<Agent>>,
) -> MethodRouter<Arc<Agent>> {
    let allow = std::iter::once("OPTIONS")
        .chain(methods.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let allow_opts = allow.clone();
    route
        .options(move || {
            let allow = allow_opts.clone();
            async move {
                let mut r = response::empty();
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    r.headers_mut().insert("Allow", v);
                }
                r
            }
        })
        .fallback(move |method: Method| {
            let allow = allow.clone();
            async move {
                let mut e = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("method {method} not allowed"),
                );
                e.headers.push(("Allow", allow));
                e
            }
        })
}

async fn unknown_path(agent: axum::extract::State<Arc<Agent>>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/" {
        return index::index(&agent, req.method());
    }
    let err = if path.contains("/v1/") {
        ApiError::not_found("Invalid URL path: not a recognized HTTP API endpoint\n")
    } else {
        ApiError::not_found(
            "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n",
        )
    };
    axum::response::IntoResponse::into_response(err)
}

/// Headers Consul sets on every answer.
async fn common_headers(
    agent: axum::extract::State<Arc<Agent>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    let policy = if agent.config.acl.enabled {
        agent.config.acl.default_policy.as_str()
    } else {
        "allow"
    };
    if let Ok(v) = HeaderValue::from_str(policy) {
        resp.headers_mut().insert("X-Consul-Default-ACL-Policy", v);
    }
    for (k, v) in &agent.config.http_config.response_headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .merge(kv::router())
        .merge(txn::router())
        .merge(session::router())
        .merge(status::router())
        .merge(catalog::router())
        .merge(health::router())
        .merge(coordinate::router())
        .merge(operator::router())
        .merge(keyring::router())
        .merge(usage::router())
        .merge(snapshot::router())
        .merge(crate::agent::http::router())
        .merge(crate::agent::events::router())
        .merge(crate::agent::monitor::router())
        .merge(crate::connect::http::router())
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(
            agent.clone(),
            forward::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            agent.clone(),
            cache::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            agent.clone(),
            common_headers,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(agent)
}
