//! Requests this agent cannot answer itself go to the server that can, over the
//! server RPC port: from a client agent, everything but the agent-local API; from
//! a follower, writes and default/`?consistent` reads (to the leader). `?stale`
//! reads, `/v1/status/*` and the datacenter list stay on any server. A request
//! naming another datacenter with `?dc=` goes from a client agent to its server
//! and from there to a server of that datacenter, found through the WAN pool,
//! which serves it as if it had been sent there. The receiving server runs the
//! request through its own router, so every endpoint behaves identically
//! wherever it was sent, blocking queries and response headers included.

use std::net::SocketAddr;
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
use super::query::Params;
use crate::agent::Agent;
use crate::rpc::client::RpcError;
use crate::rpc::{ForwardedRequest, ForwardedResponse, Reply, Request as RpcRequest};

/// How many times a request has been forwarded within one datacenter; a request
/// is forwarded at most twice there (client agent → follower → leader), then
/// served where it is.
const HOPS: &str = "x-concord-forward-hops";
/// Set on a request a server of another datacenter sent here. It is served in
/// this datacenter and never sent on to a third, so a datacenter that WAN
/// members name wrongly cannot make requests go round in circles.
const FROM_DC: &str = "x-concord-forwarded-from-dc";
/// The node name of the agent the client called, for answers that depend on it
/// (`near=_agent`, a new session's node).
pub const AGENT_NODE: &str = "x-concord-agent-node";
const MAX_HOPS: usize = 2;
/// Bodies larger than this are refused before forwarding (snapshots fit).
const FORWARD_BODY_LIMIT: usize = 48 << 20;
/// The longest a forwarded request may take: the longest blocking wait (10m plus
/// jitter) with a margin.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(11 * 60);
/// Consul's answer (500) for a datacenter no WAN member belongs to.
pub const NO_DC_PATH: &str = "No path to datacenter";
/// Consul's answer (500) when a known datacenter has no server that answers.
const DC_NOT_AVAILABLE: &str = "Remote DC has no server currently reachable";

/// Where a request is answered.
enum Route {
    Here,
    /// The leader (from a follower) or any server (from a client agent).
    Servers,
    /// A server of another datacenter.
    Datacenter(String),
}

pub async fn middleware(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let result = match route(&agent, &req) {
        Route::Here => return next.run(req).await,
        Route::Servers => forward(&agent, req).await,
        Route::Datacenter(dc) => forward_dc(&agent, &dc, req).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn route(agent: &Agent, req: &Request) -> Route {
    if let Some(dc) = other_datacenter(agent, req) {
        return if !agent.consensus.server_mode {
            Route::Servers
        } else if req.headers().contains_key(FROM_DC) {
            // The handler answers "No path to datacenter".
            Route::Here
        } else {
            Route::Datacenter(dc)
        };
    }
    if must_forward(agent, req) {
        Route::Servers
    } else {
        Route::Here
    }
}

/// Endpoints every agent answers from its own state.
pub fn agent_local(path: &str) -> bool {
    !path.starts_with("/v1/")
        || path.starts_with("/v1/agent/")
        || path.starts_with("/v1/event/")
        || path == "/v1/operator/keyring"
}

/// The datacenter named by `?dc=` when it is another one and the endpoint
/// takes one: every server-answered endpoint, and firing an event (which a
/// server of that datacenter fires in its own pool). The datacenter list is
/// every server's own view, as in Consul.
fn other_datacenter(agent: &Agent, req: &Request) -> Option<String> {
    let path = req.uri().path();
    let takes_dc = !agent_local(path) || path.starts_with("/v1/event/fire/");
    if !takes_dc || path == "/v1/catalog/datacenters" {
        return None;
    }
    let params = Params::parse(req.uri().query().unwrap_or(""));
    params
        .get("dc")
        .filter(|dc| !dc.is_empty() && *dc != agent.config.datacenter)
        .map(str::to_string)
}

fn hops(req: &Request) -> usize {
    req.headers()
        .get(HOPS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn must_forward(agent: &Agent, req: &Request) -> bool {
    let path = req.uri().path();
    if agent_local(path) || hops(req) >= MAX_HOPS {
        return false;
    }
    let consensus = &agent.consensus;
    if !consensus.server_mode {
        return true;
    }
    if consensus.is_leader() || path.starts_with("/v1/status/") || path == "/v1/catalog/datacenters"
    {
        return false;
    }
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let stale = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "stale" || p.starts_with("stale="))
    });
    !(read && stale)
}

/// The request as it travels over RPC, with `extra` headers replacing any of
/// the same name.
async fn to_rpc(
    agent: &Agent,
    req: Request,
    extra: &[(&str, String)],
) -> Result<RpcRequest, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, FORWARD_BODY_LIMIT)
        .await
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "connection" | "content-length"))
        .filter(|(name, _)| name.as_str() != HOPS && name.as_str() != FROM_DC)
        .filter_map(|(name, v)| Some((name.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    if !parts.headers.contains_key(AGENT_NODE) {
        headers.push((AGENT_NODE.to_string(), agent.node_name().to_string()));
    }
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    Ok(RpcRequest::Http(ForwardedRequest {
        method: parts.method.to_string(),
        uri,
        headers,
        body: body.to_vec(),
    }))
}

/// To the leader (or, from a client agent, a server) of this datacenter.
async fn forward(agent: &Agent, req: Request) -> Result<Response, ApiError> {
    let hops = hops(&req) + 1;
    let request = to_rpc(agent, req, &[(HOPS, hops.to_string())]).await?;
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
            Err(RpcError::Unreachable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
}

/// To a server of datacenter `dc`. Its datacenter counts hops afresh.
async fn forward_dc(agent: &Agent, dc: &str, req: Request) -> Result<Response, ApiError> {
    let from = agent.config.datacenter.clone();
    let request = to_rpc(agent, req, &[(FROM_DC, from)]).await?;
    call_datacenter(agent, dc, &request, FORWARD_TIMEOUT)
        .await
        .map(into_response)
}

/// Sends `request` to the servers of `dc` the WAN pool knows, one after another
/// until one is reachable. A server that took the request but failed to answer
/// is not retried: it may have applied a write.
async fn call_datacenter(
    agent: &Agent,
    dc: &str,
    request: &RpcRequest,
    timeout: Duration,
) -> Result<ForwardedResponse, ApiError> {
    let servers: Vec<SocketAddr> = crate::agent::wan::servers_in(agent, dc);
    if servers.is_empty() {
        tracing::warn!(
            datacenter = dc,
            "request for a datacenter no path was found to"
        );
        return Err(ApiError::internal(NO_DC_PATH));
    }
    for addr in servers {
        match agent.consensus.rpc.call(addr, request, timeout).await {
            Ok(Reply::Http(answer)) => return Ok(answer),
            Ok(other) => {
                return Err(ApiError::internal(format!(
                    "rpc error making call: unexpected reply {other:?}"
                )));
            }
            Err(e @ RpcError::Unreachable { .. }) => {
                tracing::warn!(datacenter = dc, server = %addr, error = %e, "server of another datacenter unreachable; trying the next");
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
    Err(ApiError::internal(DC_NOT_AVAILABLE))
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

/// A GET this agent makes on its own behalf in another datacenter (DNS lookups
/// there): a server sends it to a server of `dc`, a client agent to its own
/// server with `?dc=`, which sends it on. Returns the body of a 200; any other
/// answer comes back as an error with the remote status and text (such as
/// [`NO_DC_PATH`]).
pub async fn get_from_datacenter(agent: &Agent, dc: &str, uri: &str) -> Result<Vec<u8>, ApiError> {
    let timeout = Duration::from_secs(30);
    let answer = if agent.consensus.server_mode {
        let request = RpcRequest::Http(ForwardedRequest {
            method: "GET".into(),
            uri: uri.to_string(),
            headers: vec![(FROM_DC.to_string(), agent.config.datacenter.clone())],
            body: Vec::new(),
        });
        call_datacenter(agent, dc, &request, timeout).await?
    } else {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let sep = if uri.contains('?') { '&' } else { '?' };
        let dc = utf8_percent_encode(dc, NON_ALPHANUMERIC);
        let request = RpcRequest::Http(ForwardedRequest {
            method: "GET".into(),
            uri: format!("{uri}{sep}dc={dc}"),
            headers: vec![(HOPS.to_string(), "1".to_string())],
            body: Vec::new(),
        });
        let target = agent
            .consensus
            .forward_target()
            .ok_or_else(|| ApiError::internal("No known Consul servers"))?;
        match agent.consensus.rpc.call(target, &request, timeout).await {
            Ok(Reply::Http(answer)) => answer,
            Ok(other) => return Err(ApiError::internal(format!("unexpected reply {other:?}"))),
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    };
    if answer.status == 200 {
        return Ok(answer.body);
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(ApiError::new(
        status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    ))
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
