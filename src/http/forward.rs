//! Requests this agent cannot answer itself go to the server that can, over the
//! server RPC port: from a client agent, everything but the agent-local API (the
//! Connect CA endpoints under `/v1/agent/` included, their data is the servers');
//! from a follower, writes and default/`?consistent` reads (to the leader).
//! `?stale` reads, `/v1/status/*` and the datacenter list stay on any server; a
//! stale read bounded by `?max_stale` (or `discovery_max_stale`) is re-run on the
//! leader when the follower's last contact with it is older than the bound. A
//! request naming another datacenter with `?dc=` goes from a client agent to its
//! server and from there to a server of that datacenter, found through the WAN
//! pool, which serves it as if it had been sent there. The receiving server runs
//! the request through its own router, so every endpoint behaves identically
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

use super::error::{ApiError, Deposed};
use super::query::{Consistency, Params, ReadMode};
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

/// Set on a request this server serves because it leads, when it could still
/// forward it: if leadership turns out lost before the read is answered
/// ([`super::blocking::check_mode`]), the request goes to the new leader.
#[derive(Debug, Clone, Copy)]
pub struct Reroutable;

/// Where a request is answered.
enum Route {
    Local,
    /// Here, as the leader; to the new leader if this server was deposed meanwhile.
    Leading,
    /// To the leader (from a follower) or to a server (from a client agent).
    Forward,
    /// To a server of another datacenter.
    Datacenter(String),
    /// A `max_stale` read on a follower: here, unless the last contact with the
    /// leader turns out older than the bound.
    StaleBounded(Duration),
}

pub async fn middleware(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let req = match super::body_dc::apply(req).await {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let result = match route(&agent, &req) {
        Route::Local => return next.run(req).await,
        Route::Leading => leading(&agent, req, next).await,
        Route::Forward => forward(&agent, req).await,
        Route::Datacenter(dc) => forward_dc(&agent, &dc, req).await,
        Route::StaleBounded(max_stale) => stale_bounded(&agent, req, next, max_stale).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
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
    if let Some(dc) = other_datacenter(agent, req) {
        return if !agent.consensus.server_mode {
            Route::Forward
        } else if req.headers().contains_key(FROM_DC) {
            // The handler answers "No path to datacenter".
            Route::Local
        } else {
            Route::Datacenter(dc)
        };
    }
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
    if agent_local(path) || path.starts_with("/v1/status/") || path == "/v1/catalog/datacenters" {
        return Route::Local;
    }
    if consensus.is_leader() {
        // Reads (a transaction may be one) can go on to a new leader; writes
        // already do from inside `propose`.
        let read = matches!(*req.method(), Method::GET | Method::HEAD) || path == "/v1/txn";
        return if read && !req.headers().contains_key(FROM_DC) {
            Route::Leading
        } else {
            Route::Local
        };
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

/// A read served here as the leader. A server deposed while the read waited for
/// its consistency check (a pause, a partition healing) answers with a
/// [`Deposed`] error; the read is then sent to the new leader, as writes are,
/// rather than answered with "node is not the leader".
async fn leading(agent: &Agent, req: Request, next: Next) -> Result<Response, ApiError> {
    let (mut served, again) = Replayable::take(req).await?;
    served.extensions_mut().insert(Reroutable);
    let local = next.run(served).await;
    if local.extensions().get::<Deposed>().is_none() {
        return Ok(local);
    }
    tracing::info!(uri = %again.uri, "leadership lost while serving a read; forwarding it to the new leader");
    let uri = again.uri.to_string();
    forward(agent, again.rebuild(uri)?).await
}

/// A request whose body is buffered, so that after it is served here it can be
/// sent on once more.
struct Replayable {
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

impl Replayable {
    /// The request to serve here, and what it takes to send it again.
    async fn take(req: Request) -> Result<(Request, Replayable), ApiError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, FORWARD_BODY_LIMIT)
            .await
            .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?;
        let again = Replayable {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        Ok((Request::from_parts(parts, Body::from(body)), again))
    }

    /// The request again, to `uri`.
    fn rebuild(self, uri: String) -> Result<Request, ApiError> {
        let mut retry = axum::http::Request::builder()
            .method(self.method)
            .uri(uri)
            .body(Body::from(self.body))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        *retry.headers_mut() = self.headers;
        Ok(retry)
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
    let (served, again) = Replayable::take(req).await?;
    let local = next.run(served).await;
    let answered = matches!(local.status(), StatusCode::OK | StatusCode::NOT_FOUND);
    let too_stale = agent
        .consensus
        .last_contact()
        .is_none_or(|since| since > max_stale);
    if !(answered && too_stale) {
        return Ok(local);
    }
    let uri = leader_mode_uri(&again.uri);
    forward(agent, again.rebuild(uri)?).await
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
    let answer = get_via_server(agent, uri, Duration::from_secs(30)).await?;
    if answer.status == 200 {
        return Ok(answer.body);
    }
    Err(ApiError::internal(format!(
        "{uri}: {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    )))
}

/// Sends a GET to one of the servers this agent forwards to, as a request that
/// was already forwarded once (so that server serves it rather than pass it on).
async fn get_via_server(
    agent: &Agent,
    uri: &str,
    timeout: Duration,
) -> Result<ForwardedResponse, ApiError> {
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
    match agent.consensus.rpc.call(target, &request, timeout).await {
        Ok(Reply::Http(answer)) => Ok(answer),
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
        get_via_server(agent, &format!("{uri}{sep}dc={dc}"), timeout).await?
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
