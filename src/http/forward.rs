//! Requests this agent cannot answer itself go to the server that can, over the
//! server RPC port: from a client agent, everything but the agent-local API (the
//! Connect CA endpoints under `/v1/agent/` included, their data is the servers');
//! from a follower, writes and default/`?consistent` reads (to the leader).
//! `?stale` reads and `/v1/status/*` stay on any server; a stale read bounded by
//! `?max_stale` (or `discovery_max_stale`) is re-run on the leader when the
//! follower's last contact with it is older than the bound. The receiving server
//! runs the request through its own router, so every endpoint behaves
//! identically wherever it was sent, blocking queries included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::error::ApiError;
use super::query::{Consistency, Params, ReadMode};
use crate::agent::Agent;
use crate::rpc::{ForwardedRequest, ForwardedResponse, Reply, Request as RpcRequest};

/// How many times a request has been forwarded; a request is forwarded at most
/// twice (client agent → follower → leader), then served where it is.
const HOPS: &str = "x-concord-forward-hops";
/// The node name of the agent the client called, for answers that depend on it
/// (`near=_agent`, a new session's node).
pub const AGENT_NODE: &str = "x-concord-agent-node";
const MAX_HOPS: usize = 2;
/// Bodies larger than this are refused before forwarding (snapshots fit).
const FORWARD_BODY_LIMIT: usize = 48 << 20;
/// The longest a forwarded request may take: the longest blocking wait (10m plus
/// jitter) with a margin.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(11 * 60);

pub async fn middleware(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    match route(&agent, &req) {
        Route::Local => next.run(req).await,
        Route::Forward => forward(&agent, req)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Route::StaleBounded(max_stale) => stale_bounded(&agent, req, next, max_stale)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    }
}

/// Where a request is served.
enum Route {
    Local,
    /// To the leader (from a follower) or to a server (from a client agent).
    Forward,
    /// A `max_stale` read on a follower: here, unless the last contact with the
    /// leader turns out older than the bound.
    StaleBounded(Duration),
}

/// Endpoints every agent answers from its own state.
fn agent_local(path: &str) -> bool {
    !path.starts_with("/v1/")
        || path.starts_with("/v1/agent/")
        || path.starts_with("/v1/event/")
        || path == "/v1/operator/keyring"
}

/// Agent endpoints whose answer comes from the replicated state: the Connect CA
/// roots and leaf certificates (Consul's agents fetch them from the servers with
/// stale reads). Any server answers them from its replica; a client agent has
/// none and must ask a server.
fn needs_replica(path: &str) -> bool {
    path == "/v1/agent/connect/ca/roots" || path.starts_with("/v1/agent/connect/ca/leaf/")
}

fn hops(req: &Request) -> usize {
    req.headers()
        .get(HOPS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn route(agent: &Agent, req: &Request) -> Route {
    let path = req.uri().path();
    let consensus = &agent.consensus;
    if hops(req) >= MAX_HOPS {
        return Route::Local;
    }
    if !consensus.server_mode {
        return if agent_local(path) && !needs_replica(path) {
            Route::Local
        } else {
            Route::Forward
        };
    }
    if agent_local(path) || consensus.is_leader() || path.starts_with("/v1/status/") {
        return Route::Local;
    }
    // Writes; and autopilot's view, which only the leader has (Consul forwards
    // these reads to the leader whatever their mode).
    if !matches!(*req.method(), Method::GET | Method::HEAD)
        || matches!(
            path,
            "/v1/operator/autopilot/health" | "/v1/operator/autopilot/state"
        )
    {
        return Route::Forward;
    }
    let params = Params::parse(req.uri().query().unwrap_or(""));
    match ReadMode::parse(path, &params, agent.config.discovery_max_stale) {
        Ok(ReadMode {
            consistency: Consistency::Stale,
            max_stale: Some(bound),
        }) => Route::StaleBounded(bound),
        Ok(ReadMode {
            consistency: Consistency::Stale,
            max_stale: None,
        }) => Route::Local,
        Ok(_) => Route::Forward,
        // The handler answers with the parse error, as the leader would.
        Err(_) => Route::Local,
    }
}

/// Consul's rule for a bounded stale read: serve it here, then, if this server's
/// last contact with the leader is older than `max_stale`, run it once more on the
/// leader as a default-mode read and answer with that. Answers that are errors
/// are not retried (Consul retries only a read that succeeded).
async fn stale_bounded(
    agent: &Agent,
    req: Request,
    next: Next,
    max_stale: Duration,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, FORWARD_BODY_LIMIT)
        .await
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let (method, uri, headers) = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let local = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    let answered = matches!(local.status(), StatusCode::OK | StatusCode::NOT_FOUND);
    let too_stale = agent
        .consensus
        .last_contact()
        .is_none_or(|since| since > max_stale);
    if !(answered && too_stale) {
        return Ok(local);
    }
    let mut retry = axum::http::Request::builder()
        .method(method)
        .uri(leader_mode_uri(&uri))
        .body(Body::from(body))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    *retry.headers_mut() = headers;
    forward(agent, retry).await
}

/// The same request as a default-mode read: without `stale` and `max_stale`, with
/// `leader` so that `discovery_max_stale` does not make it stale again.
fn leader_mode_uri(uri: &axum::http::Uri) -> String {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !matches!(name, "" | "stale" | "max_stale")
        })
        .chain(std::iter::once("leader"))
        .collect();
    format!("{}?{}", uri.path(), kept.join("&"))
}

async fn forward(agent: &Agent, req: Request) -> Result<Response, ApiError> {
    let hops = hops(&req) + 1;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, FORWARD_BODY_LIMIT)
        .await
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "connection" | "content-length"))
        .filter(|(name, _)| name.as_str() != HOPS)
        .filter_map(|(name, v)| Some((name.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    headers.push((HOPS.to_string(), hops.to_string()));
    if !parts.headers.contains_key(AGENT_NODE) {
        headers.push((AGENT_NODE.to_string(), agent.node_name().to_string()));
    }
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let request = RpcRequest::Http(ForwardedRequest {
        method: parts.method.to_string(),
        uri,
        headers,
        body: body.to_vec(),
    });

    let deadline = Instant::now() + agent.consensus.hold_timeout;
    loop {
        let Some(target) = agent.consensus.forward_target() else {
            if Instant::now() >= deadline {
                return Err(ApiError::internal("No cluster leader"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match agent
            .consensus
            .rpc
            .call(target, &request, FORWARD_TIMEOUT)
            .await
        {
            Ok(Reply::Http(answer)) => return Ok(into_response(answer)),
            Ok(other) => {
                return Err(ApiError::internal(format!(
                    "rpc error making call: unexpected reply {other:?}"
                )));
            }
            Err(crate::rpc::client::RpcError::Unreachable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
}

/// A GET this agent sends to a server on its own behalf (a client agent's
/// anti-entropy reading its node's catalog entries). Returns the body of a 200.
pub async fn get_from_server(agent: &Agent, uri: &str) -> Result<Vec<u8>, ApiError> {
    let request = RpcRequest::Http(ForwardedRequest {
        method: "GET".into(),
        uri: uri.to_string(),
        headers: vec![(HOPS.to_string(), "1".to_string())],
        body: Vec::new(),
    });
    let target = agent
        .consensus
        .forward_target()
        .ok_or_else(|| ApiError::internal("No known Consul servers"))?;
    match agent
        .consensus
        .rpc
        .call(target, &request, Duration::from_secs(30))
        .await
    {
        Ok(Reply::Http(answer)) if answer.status == 200 => Ok(answer.body),
        Ok(Reply::Http(answer)) => Err(ApiError::internal(format!(
            "{uri}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ))),
        Ok(other) => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

fn into_response(answer: ForwardedResponse) -> Response {
    let mut resp = Response::new(Body::from(answer.body));
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

/// Serves a request forwarded to this server through its own router.
pub async fn serve(app: Router, fwd: ForwardedRequest) -> ForwardedResponse {
    let failed = |status: StatusCode, text: String| ForwardedResponse {
        status: status.as_u16(),
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: text.into_bytes(),
    };
    let mut builder = axum::http::Request::builder()
        .method(fwd.method.as_str())
        .uri(fwd.uri.as_str());
    for (name, value) in &fwd.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let req = match builder.body(Body::from(fwd.body)) {
        Ok(req) => req,
        Err(e) => {
            return failed(
                StatusCode::BAD_REQUEST,
                format!("bad forwarded request: {e}"),
            );
        }
    };
    let resp = match app.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body.to_vec(),
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    ForwardedResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| name.as_str() != "content-length")
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_read_asks_for_the_leader() {
        let uri: axum::http::Uri = "/v1/catalog/nodes?stale&max_stale=1s&index=5&filter=a%3Db"
            .parse()
            .unwrap();
        assert_eq!(
            leader_mode_uri(&uri),
            "/v1/catalog/nodes?index=5&filter=a%3Db&leader"
        );
        let uri: axum::http::Uri = "/v1/health/service/web".parse().unwrap();
        assert_eq!(leader_mode_uri(&uri), "/v1/health/service/web?leader");
    }

    #[test]
    fn client_agents_forward_the_connect_ca_endpoints() {
        assert!(agent_local("/v1/agent/connect/ca/roots"));
        assert!(needs_replica("/v1/agent/connect/ca/roots"));
        assert!(needs_replica("/v1/agent/connect/ca/leaf/web"));
        assert!(!needs_replica("/v1/agent/connect/authorize"));
        assert!(!needs_replica("/v1/agent/services"));
    }
}
