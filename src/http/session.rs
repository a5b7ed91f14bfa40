//! `/v1/session/...`: create (Consul's defaults and validation), destroy, renew,
//! info, node, list.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::Value;

use super::blocking::{Found, blocking};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json, json_with_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::config::{format_go_duration, parse_go_duration};
use crate::fsm::{Command, Response as FsmResponse};
use crate::state::{Table, WatchKey};
use crate::structs::codec::null_default;
use crate::structs::decode;
use crate::structs::{
    DEFAULT_LOCK_DELAY, SERF_CHECK_ID, SESSION_BEHAVIOR_RELEASE, SESSION_TTL_MAX, ServiceCheck,
    Session, SessionView,
};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/session/create", endpoint(&["PUT"], put(create)))
        .route("/v1/session/destroy/{id}", endpoint(&["PUT"], put(destroy)))
        .route("/v1/session/renew/{id}", endpoint(&["PUT"], put(renew)))
        .route("/v1/session/info/{id}", endpoint(&["GET"], get(info)))
        .route("/v1/session/node/{node}", endpoint(&["GET"], get(node)))
        .route("/v1/session/list", endpoint(&["GET"], get(list)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateRequest {
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    _id: String,
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    node: String,
    #[serde(default)]
    lock_delay: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    behavior: String,
    #[serde(rename = "TTL", default, deserialize_with = "null_default")]
    ttl: String,
    #[serde(default)]
    checks: Option<Vec<String>>,
    #[serde(default)]
    node_checks: Option<Vec<String>>,
    #[serde(default)]
    service_checks: Option<Vec<ServiceCheck>>,
    #[serde(default, deserialize_with = "null_default")]
    namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    partition: String,
}

/// `LockDelay` arrives as nanoseconds or a duration string; values under 1000 are
/// taken as seconds (Consul's `lockDelayMinThreshold`).
fn parse_lock_delay(v: Option<Value>) -> Result<Duration, String> {
    let d = match v {
        None | Some(Value::Null) => return Ok(DEFAULT_LOCK_DELAY),
        Some(Value::Number(n)) => Duration::from_nanos(n.as_f64().unwrap_or(0.0).max(0.0) as u64),
        Some(Value::String(s)) => parse_go_duration(&s)?,
        Some(other) => return Err(format!("invalid LockDelay {other}")),
    };
    if d.as_nanos() < 1000 {
        Ok(Duration::from_secs(d.as_nanos() as u64))
    } else {
        Ok(d)
    }
}

async fn create(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        CreateRequest::default()
    } else {
        decode::from_slice(&body).map_err(ApiError::decode)?
    };
    let _ = (&req.namespace, &req.partition);
    let node = if req.node.is_empty() {
        opts.agent_node.clone()
    } else {
        req.node
    };
    agent.authorize(&opts.token, Access::SessionWrite(&node))?;
    let lock_delay = parse_lock_delay(req.lock_delay).map_err(ApiError::decode)?;
    let behavior = if req.behavior.is_empty() {
        SESSION_BEHAVIOR_RELEASE.to_string()
    } else {
        req.behavior
    };
    if behavior != "release" && behavior != "delete" {
        return Err(ApiError::internal(format!(
            "Invalid Behavior setting '{behavior}'"
        )));
    }
    if !req.ttl.is_empty() {
        let ttl = parse_go_duration(&req.ttl)
            .map_err(|e| ApiError::internal(format!("Session TTL '{}' invalid: {e}", req.ttl)))?;
        let min = agent.config.session_ttl_min;
        if !ttl.is_zero() && (ttl < min || ttl > SESSION_TTL_MAX) {
            return Err(ApiError::internal(format!(
                "Invalid Session TTL '{}', must be between [{}={}]",
                ttl.as_nanos(),
                format_go_duration(min),
                format_go_duration(SESSION_TTL_MAX)
            )));
        }
    }
    // Legacy `Checks`: an explicit empty list means no checks; otherwise its entries
    // are node checks. With neither field the session depends on serfHealth, even
    // when it also names service checks.
    let node_checks = match (req.checks, req.node_checks) {
        (_, Some(nc)) => nc,
        (Some(c), None) => c,
        (None, None) => vec![SERF_CHECK_ID.to_string()],
    };
    let mut deduped: Vec<String> = Vec::new();
    for c in node_checks {
        if !deduped.contains(&c) {
            deduped.push(c);
        }
    }
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        node,
        lock_delay: lock_delay.as_nanos() as u64,
        behavior,
        ttl: req.ttl,
        node_checks: deduped,
        service_checks: req.service_checks,
        create_index: 0,
        modify_index: 0,
    };
    match agent
        .consensus
        .propose(Command::SessionCreate(session))
        .await?
    {
        FsmResponse::Session(s) => {
            agent.session_timers.created(&s);
            Ok(json(&serde_json::json!({ "ID": s.id }), opts.pretty))
        }
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        other => Err(ApiError::internal(format!(
            "unexpected FSM answer: {other:?}"
        ))),
    }
}

async fn destroy(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::SessionWrite(&id))?;
    agent
        .consensus
        .propose(Command::SessionDestroy { id: id.clone() })
        .await?;
    agent.session_timers.forget(&id);
    Ok(json(&true, opts.pretty))
}

async fn renew(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::SessionWrite(&id))?;
    super::blocking::check_mode(&agent, super::query::Consistency::Default, opts.reroutable)
        .await?;
    let session = agent.store.read()?.view().session(&id)?.1;
    match session {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Session id '{id}' not found"),
        )),
        Some(s) => {
            agent.session_timers.renewed(&s);
            Ok(json(&[SessionView::from(&s)], opts.pretty))
        }
    }
}

fn views(sessions: &[Session]) -> Vec<SessionView<'_>> {
    sessions.iter().map(SessionView::from).collect()
}

async fn info(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::SessionRead(&id))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Sessions)],
        false,
        |r| {
            let (idx, s) = r.session(&id)?;
            Ok(Found::new(idx, s.into_iter().collect::<Vec<_>>()))
        },
    )
    .await?;
    Ok(json_with_meta(&views(&ans.value), &ans.meta, opts.pretty))
}

async fn node(
    State(agent): State<Arc<Agent>>,
    Path(node): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::SessionRead(&node))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Sessions)],
        false,
        |r| {
            let (idx, s) = r.node_sessions(&node)?;
            Ok(Found::new(idx, s))
        },
    )
    .await?;
    Ok(json_with_meta(&views(&ans.value), &ans.meta, opts.pretty))
}

async fn list(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::SessionRead(""))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Sessions)],
        false,
        |r| {
            let (idx, s) = r.sessions()?;
            Ok(Found::new(idx, s))
        },
    )
    .await?;
    Ok(json_with_meta(&views(&ans.value), &ans.meta, opts.pretty))
}
