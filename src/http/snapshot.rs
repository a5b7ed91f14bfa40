//! `GET/PUT /v1/snapshot`: the whole state in Consul's archive envelope (a gzipped tar
//! of `meta.json`, `state.bin` and `SHA256SUMS`). `state.bin` holds concord's own
//! state format, so archives move between concord clusters, not to or from Consul.
//! A restore goes through Raft, so every server applies it.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

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

fn archive(meta_json: &[u8], state: &[u8]) -> std::io::Result<Vec<u8>> {
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(Sha256::digest(meta_json)),
        hex::encode(Sha256::digest(state))
    );
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, data) in [
        ("meta.json", meta_json),
        ("state.bin", state),
        ("SHA256SUMS", sums.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data)?;
    }
    tar.into_inner()?.finish()
}

/// Unpacks and verifies an archive; returns `state.bin`.
fn unarchive(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut tar = tar::Archive::new(GzDecoder::new(body));
    let entries = tar
        .entries()
        .map_err(|e| format!("failed to read snapshot archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("failed to read snapshot archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        if !matches!(name.as_str(), "meta.json" | "state.bin" | "SHA256SUMS") {
            return Err(format!("unexpected file {name:?} in snapshot"));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        files.insert(name, data);
    }
    let sums = String::from_utf8_lossy(
        files
            .get("SHA256SUMS")
            .ok_or("snapshot is missing SHA256SUMS")?,
    )
    .into_owned();
    for line in sums.lines() {
        let Some((sum, name)) = line.split_once("  ") else {
            continue;
        };
        let data = files
            .get(name)
            .ok_or_else(|| format!("snapshot is missing {name}"))?;
        if hex::encode(Sha256::digest(data)) != sum {
            return Err(format!("sha256 hash mismatch for {name:?}"));
        }
    }
    let state = files
        .remove("state.bin")
        .ok_or("snapshot is missing state.bin")?;
    if !is_state_snapshot(&state) {
        return Err("snapshot state was not written by concord".into());
    }
    Ok(state)
}

async fn save(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    check_consistency(&agent, opts.consistency).await?;
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
    let body = archive(&meta_json, &state).map_err(|e| ApiError::internal(e.to_string()))?;
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
    use std::io::Write;

    #[test]
    fn archives_round_trip_and_tampering_is_caught() {
        let state = b"CONCORD-STATE-1\nrest".to_vec();
        let a = archive(b"{}", &state).unwrap();
        assert_eq!(unarchive(&a).unwrap(), state);
        assert!(unarchive(b"foo").is_err());
        let mut bad = Vec::new();
        {
            let mut gz = GzEncoder::new(&mut bad, Compression::default());
            gz.write_all(b"not a tar").unwrap();
            gz.finish().unwrap();
        }
        assert!(unarchive(&bad).is_err());
    }
}
