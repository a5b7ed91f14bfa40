//! `?cached` (Consul's agent cache), as one middleware. concord answers every read
//! from its local store, so results are always current; what the cache contributes
//! is Consul's wire contract: `X-Cache: MISS` on the first request for a key, `HIT`
//! with `Age` (seconds since the answer last changed) afterwards, and a forced
//! `MISS` when `Cache-Control: max-age` is exceeded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::query::Params;
use crate::agent::Agent;

/// Endpoints Consul serves from its agent cache.
const CACHED_PREFIXES: &[&str] = &[
    "/v1/catalog/datacenters",
    "/v1/catalog/services",
    "/v1/catalog/service/",
    "/v1/health/service/",
    "/v1/agent/connect/ca/",
    "/v1/query/",
];

struct Entry {
    index: String,
    changed_at: Instant,
}

#[derive(Default)]
pub struct AgentCache {
    entries: Mutex<HashMap<String, Entry>>,
}

fn cache_key(path: &str, params: &Params, raw: &str) -> String {
    let _ = params;
    let mut parts: Vec<&str> = raw
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            !matches!(name, "index" | "wait" | "cached" | "")
        })
        .collect();
    parts.sort_unstable();
    format!("{path}?{}", parts.join("&"))
}

/// `max-age=N` from `Cache-Control`, if given.
fn max_age(req: &Request) -> Option<Duration> {
    let cc = req.headers().get("cache-control")?.to_str().ok()?;
    cc.split(',').find_map(|d| {
        d.trim()
            .strip_prefix("max-age=")
            .and_then(|n| n.parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

pub async fn middleware(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let raw = req.uri().query().unwrap_or("").to_string();
    let params = Params::parse(&raw);
    let eligible = agent.config.http_config.use_cache
        && params.has("cached")
        && CACHED_PREFIXES.iter().any(|p| path.starts_with(p));
    if !eligible {
        return next.run(req).await;
    }
    let key = cache_key(&path, &params, &raw);
    let max_age = max_age(&req);
    let mut resp = next.run(req).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let index = resp
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (hit, age) = {
        let mut entries = agent
            .http_cache
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match entries.get_mut(&key) {
            Some(e) => {
                if e.index != index {
                    e.index = index;
                    e.changed_at = now;
                }
                let age = now - e.changed_at;
                if max_age.is_some_and(|m| age > m) {
                    e.changed_at = now;
                    (false, Duration::ZERO)
                } else {
                    (true, age)
                }
            }
            None => {
                entries.insert(
                    key,
                    Entry {
                        index,
                        changed_at: now,
                    },
                );
                (false, Duration::ZERO)
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(
        "X-Cache",
        HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
    );
    if hit {
        h.insert("Age", HeaderValue::from(age.as_secs()));
    }
    resp
}
