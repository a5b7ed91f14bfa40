//! `/v1/kv/...`: reads (single key, `recurse`, `keys` with `separator`, `raw`) and
//! writes (set, `flags`, `cas`, `acquire`, `release`, deletes).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use super::blocking::{Found, blocking, blocking_shared};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{
    json, json_bytes, json_with_meta, not_found_with_meta, rendered_with_meta, set_meta,
};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::{Command, Response as FsmResponse};
use crate::state::WatchKey;
use crate::structs::DirEntry;

pub fn router() -> Router<Arc<Agent>> {
    let methods = || {
        endpoint(
            &["GET", "PUT", "DELETE"],
            get(kv_get).put(kv_put).delete(kv_delete),
        )
    };
    Router::new()
        .route("/v1/kv", methods())
        .route("/v1/kv/", methods())
        .route("/v1/kv/{*key}", methods())
}

fn key_of(path: Option<Path<String>>) -> String {
    path.map(|Path(k)| k).unwrap_or_default()
}

async fn kv_get(
    State(agent): State<Arc<Agent>>,
    path: Option<Path<String>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    let key = key_of(path);
    agent.authorize(&opts.token, Access::KeyRead(&key))?;
    let p = &opts.params;
    if p.has("keys") {
        let sep = p
            .get("separator")
            .or_else(|| p.get("seperator"))
            .unwrap_or("")
            .to_string();
        let ans = blocking(
            &agent,
            &opts,
            &[WatchKey::KvPrefix(key.clone())],
            false,
            |r| {
                let (idx, keys) = r.kv_keys(&key, &sep)?;
                Ok(Found::new(idx, keys))
            },
        )
        .await?;
        if ans.value.is_empty() && !key.is_empty() {
            return Ok(not_found_with_meta(&ans.meta));
        }
        return Ok(json_with_meta(&ans.value, &ans.meta, opts.pretty));
    }
    if p.has("recurse") {
        // Every instance of a Spring Cloud Consul app watches its config prefix
        // this way, so one change wakes them all: the answer is shared. An empty
        // body stands for "no keys" (a JSON list is never empty bytes).
        let watch = [WatchKey::KvPrefix(key.clone())];
        let label = format!("kv/recurse/{key}");
        let ans = blocking_shared(&agent, &opts, &label, &watch, false, |r| {
            let (idx, entries) = r.kv_list(&key)?;
            let body = if entries.is_empty() {
                Bytes::new()
            } else {
                json_bytes(&entries, opts.pretty).into()
            };
            Ok(Found::new(idx, body))
        })
        .await?;
        if ans.value.is_empty() {
            return Ok(not_found_with_meta(&ans.meta));
        }
        return Ok(rendered_with_meta(ans.value, &ans.meta));
    }
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let ans = blocking(&agent, &opts, &[WatchKey::Kv(key.clone())], false, |r| {
        let (idx, entry) = r.kv_get(&key)?;
        Ok(match entry {
            Some(e) => Found::new(idx, Some(e)),
            None => Found::missing(idx, None),
        })
    })
    .await?;
    let Some(entry) = ans.value else {
        return Ok(not_found_with_meta(&ans.meta));
    };
    if p.has("raw") {
        let mut r = Response::new(Body::from(entry.value.unwrap_or_default()));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(
            "X-Content-Type-Options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            "Content-Security-Policy",
            HeaderValue::from_static("sandbox"),
        );
        set_meta(h, &ans.meta);
        return Ok(r);
    }
    Ok(json_with_meta(&[entry], &ans.meta, opts.pretty))
}

fn parse_u64(opts: &QueryOptions, name: &str, what: &str) -> ApiResult<Option<u64>> {
    match opts.params.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Invalid {what} index"))),
    }
}

async fn propose_bool(agent: &Agent, cmd: Command) -> ApiResult<bool> {
    match agent.consensus.propose(cmd).await? {
        FsmResponse::Bool(b) => Ok(b),
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        other => Err(ApiError::internal(format!(
            "unexpected FSM answer: {other:?}"
        ))),
    }
}

async fn kv_put(
    State(agent): State<Arc<Agent>>,
    path: Option<Path<String>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let key = key_of(path);
    agent.authorize(&opts.token, Access::KeyWrite(&key))?;
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let p = &opts.params;
    let exclusive = ["cas", "acquire", "release"]
        .iter()
        .filter(|f| p.has(f))
        .count();
    if exclusive > 1 {
        return Err(ApiError::bad_request(format!(
            "Conflicting flags: {}\n",
            opts.raw_query
        )));
    }
    let max = agent.config.kv_max_value_size;
    if body.len() as u64 > max {
        return Err(ApiError::too_large(format!(
            "Request body({} bytes) too large, max size: {max} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
            body.len()
        )));
    }
    let flags = match p.get("flags") {
        None => 0,
        Some(f) => f
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("Invalid flags"))?,
    };
    let entry = DirEntry {
        key: key.clone(),
        flags,
        value: (!body.is_empty()).then(|| body.to_vec()),
        ..Default::default()
    };
    let ok = if let Some(session) = p.get("acquire") {
        if agent.store.lock_delay(&key).is_some() {
            false
        } else {
            let session = session.to_string();
            propose_bool(&agent, Command::KvLock { entry, session }).await?
        }
    } else if let Some(session) = p.get("release") {
        let session = session.to_string();
        propose_bool(&agent, Command::KvUnlock { entry, session }).await?
    } else if let Some(cas) = parse_u64(&opts, "cas", "CAS")? {
        propose_bool(&agent, Command::KvCas { entry, index: cas }).await?
    } else {
        propose_bool(&agent, Command::KvSet { entry }).await?
    };
    Ok(json(&ok, opts.pretty))
}

async fn kv_delete(
    State(agent): State<Arc<Agent>>,
    path: Option<Path<String>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    let key = key_of(path);
    agent.authorize(&opts.token, Access::KeyWrite(&key))?;
    let p = &opts.params;
    let recurse = p.has("recurse");
    if recurse && p.has("cas") {
        return Err(ApiError::bad_request(format!(
            "Conflicting flags: {}\n",
            opts.raw_query
        )));
    }
    if key.is_empty() && !recurse {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let ok = if recurse {
        propose_bool(&agent, Command::KvDeleteTree { prefix: key }).await?
    } else if let Some(cas) = parse_u64(&opts, "cas", "CAS")? {
        propose_bool(&agent, Command::KvDeleteCas { key, index: cas }).await?
    } else {
        propose_bool(&agent, Command::KvDelete { key }).await?
    };
    Ok(json(&ok, opts.pretty))
}
