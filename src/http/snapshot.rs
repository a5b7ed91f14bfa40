//! `GET/PUT /v1/snapshot`: the whole state in Consul's archive envelope (a gzipped tar
//! of `meta.json`, `state.bin` and `SHA256SUMS`). `state.bin` holds concord's own
//! state format, so archives move between concord clusters, not to or from Consul.
//! A restore goes through Raft, so every server applies it.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::blocking::{check_consistency, meta};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{empty, set_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::{Command, Response as FsmResponse};
use crate::state::snapshot::is_state_snapshot;

pub fn router() -> Router<Arc<Agent>> {
    Router::new().route(
        "/v1/snapshot",
        endpoint(&["GET", "PUT"], get(save).put(restore)),
    )
}

/// Unpacks and verifies an archive; returns `state.bin`, which must be concord's.
fn unarchive(body: &[u8]) -> Result<Vec<u8>, String> {
    let state = crate::archive::read(body)?.state;
    if !is_state_snapshot(&state) {
        return Err("snapshot state was not written by concord".into());
    }
    Ok(state)
}

async fn save(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    check_consistency(&agent, &opts).await?;
    let mut state = Vec::new();
    agent.store.snapshot_to(&mut state)?;
    let metrics = agent.consensus.raft.metrics().borrow().clone();
    let index = metrics.last_applied.map_or(0, |l| l.index);
    let meta_json = serde_json::to_vec(&json!({
        "Version": 1,
        "ID": format!("{}-{}-concord", metrics.current_term, index),
        "Index": index,
        "Term": metrics.current_term,
        "Peers": null,
        "Configuration": { "Servers": agent.consensus.voters().iter().map(|n| json!({
            "Suffrage": 0, "ID": n.node_id, "Address": n.addr })).collect::<Vec<_>>() },
        "ConfigurationIndex": 0,
        "Size": state.len(),
    }))
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let body =
        crate::archive::write(&meta_json, &state).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-gzip"),
    );
    set_meta(r.headers_mut(), &meta(&agent, index, None));
    Ok(r)
}

async fn restore(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let state = unarchive(&body)
        .map_err(|e| ApiError::internal(format!("failed to restore snapshot: {e}")))?;
    match agent.consensus.propose(Command::Restore { state }).await? {
        FsmResponse::Rejected(msg) => Err(ApiError::internal(format!(
            "failed to restore snapshot: {msg}"
        ))),
        _ => Ok(empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_concord_state_is_restored() {
        let ours = crate::archive::write(b"{}", b"CONCORD-STATE-1\nrest").unwrap();
        assert!(unarchive(&ours).is_ok());
        let foreign = crate::archive::write(b"{}", b"raft state of another program").unwrap();
        assert_eq!(
            unarchive(&foreign).unwrap_err(),
            "snapshot state was not written by concord"
        );
    }
}
