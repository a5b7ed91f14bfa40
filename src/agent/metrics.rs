//! `/v1/agent/metrics`: runtime gauges under Consul's names, as JSON or (when
//! `telemetry.prometheus_retention_time` is set) Prometheus text.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Agent;
use crate::acl::Access;
use crate::http::error::ApiResult;
use crate::http::query::QueryOptions;
use crate::http::response::json;

/// Resident set size in bytes, from /proc (our stand-in for Go's heap figures).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

fn gauges(agent: &Agent) -> Vec<(String, f64)> {
    // Like go-metrics, gauges carry the host name unless `disable_hostname` is set.
    let prefix = if agent.config.telemetry.disable_hostname {
        agent.config.telemetry.metrics_prefix.clone()
    } else {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}.{}", agent.config.telemetry.metrics_prefix, host.trim())
    };
    let rss = rss_bytes() as f64;
    let mut out = vec![
        (format!("{prefix}.runtime.alloc_bytes"), rss),
        (format!("{prefix}.runtime.sys_bytes"), rss),
        (format!("{prefix}.runtime.heap_objects"), 0.0),
        (
            format!("{prefix}.runtime.num_goroutines"),
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as f64,
        ),
        (
            format!("{prefix}.agent.local.services"),
            agent.local.services().len() as f64,
        ),
        (
            format!("{prefix}.agent.local.checks"),
            agent.local.checks().len() as f64,
        ),
        (
            format!("{prefix}.blocking_query.watch_slots"),
            agent.store.watches.slot_count() as f64,
        ),
    ];
    if agent.config.server {
        out.push((
            format!("{prefix}.server.isLeader"),
            if agent.consensus.is_leader() {
                1.0
            } else {
                0.0
            },
        ));
    }
    out
}

/// Consul's answer when Prometheus output is off: a `CodeWithPayloadError`
/// carrying 415 and a `text/plain` reason, which Consul's HTTP wrapper renders
/// with no body at all. Only the `X-Consul-Reason` header is written; the status
/// and content type it carries are never sent, so the client sees a bare 200.
fn prometheus_disabled() -> Response {
    let mut r = crate::http::response::empty();
    r.headers_mut().insert(
        "X-Consul-Reason",
        HeaderValue::from_static(
            "Prometheus is not enabled since its retention time is not positive",
        ),
    );
    r
}

pub async fn handler(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    headers: HeaderMap,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let prometheus =
        opts.params.get("format") == Some("prometheus") || accept.contains("openmetrics");
    if prometheus {
        if agent.config.telemetry.prometheus_retention_time.is_zero() {
            return Ok(prometheus_disabled());
        }
        let mut text = String::new();
        for (name, value) in gauges(&agent) {
            let name = name.replace(['.', '-'], "_");
            text.push_str(&format!(
                "# HELP {name} {name}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        let mut r = (StatusCode::OK, text).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(r);
    }
    let now = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let g: Vec<_> = gauges(&agent)
        .into_iter()
        .map(|(name, value)| json!({ "Name": name, "Value": value, "Labels": {} }))
        .collect();
    Ok(json(
        &json!({ "Timestamp": ts, "Gauges": g, "Points": [], "Counters": [], "Samples": [] }),
        opts.pretty,
    ))
}
