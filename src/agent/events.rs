//! User events: `/v1/event/fire` and `/v1/event/list`. Events live in a bounded
//! in-memory ring (Consul keeps the last 256), and the list's `X-Consul-Index` is
//! Consul's pseudo-index derived from the newest event's UUID, so blocking compares
//! it for equality rather than order. Events spread to every agent through the LAN
//! gossip pool, wrapped in Consul's envelope (ID and filters) under the
//! `consul:event:` name prefix; each agent keeps those meant for it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Agent;
use super::cluster::USER_EVENT_PREFIX;
use crate::acl::Access;
use crate::http::endpoint;
use crate::http::error::{ApiError, ApiResult};
use crate::http::query::QueryOptions;
use crate::http::response::json;

const RING: usize = 256;
/// Serf's limit on a user event (name and payload) before encoding.
const SIZE_LIMIT: usize = 512;
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(with = "crate::structs::codec::base64_opt")]
    pub payload: Option<Vec<u8>>,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    pub version: u32,
    #[serde(rename = "LTime")]
    pub ltime: u64,
}

pub struct EventLog {
    ring: Mutex<(VecDeque<UserEvent>, u64)>,
    changed: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            ring: Mutex::new((VecDeque::new(), 0)),
            changed: watch::channel(0).0,
        }
    }
}

/// Consul's `uuidToUint64`: the XOR of the two 64-bit halves of the UUID.
fn pseudo_index(id: &str) -> u64 {
    match uuid::Uuid::parse_str(id) {
        Ok(u) => {
            let b = u.as_u128();
            (b >> 64) as u64 ^ b as u64
        }
        Err(_) => 1,
    }
}

impl EventLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<UserEvent>, u64)> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events named `name` (all without a name), oldest first, and their
    /// pseudo-index: the newest one's, or 1 for none (Consul's guard against a
    /// watch spinning on an empty list).
    fn list(&self, name: Option<&str>) -> (Vec<UserEvent>, u64) {
        let events: Vec<UserEvent> = self
            .lock()
            .0
            .iter()
            .filter(|e| name.is_none_or(|n| e.name == n))
            .cloned()
            .collect();
        let index = events.last().map_or(1, |e| pseudo_index(&e.id));
        (events, index)
    }

    fn contains(&self, id: &str) -> bool {
        self.lock().0.iter().any(|e| e.id == id)
    }

    /// Records an event; `ltime` is the gossip pool's Lamport time when it came by
    /// gossip, else the next local one.
    fn record(&self, mut e: UserEvent, ltime: Option<u64>) -> UserEvent {
        {
            let mut g = self.lock();
            g.1 = ltime.unwrap_or(g.1 + 1).max(g.1);
            e.ltime = ltime.unwrap_or(g.1);
            g.0.push_back(e.clone());
            if g.0.len() > RING {
                g.0.pop_front();
            }
        }
        self.changed.send_modify(|v| *v += 1);
        e
    }
}

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/event/fire/{name}", endpoint(&["PUT"], put(fire)))
        .route("/v1/event/fire/", endpoint(&["PUT"], put(fire_unnamed)))
        .route("/v1/event/list", endpoint(&["GET"], get(list)))
}

async fn fire_unnamed() -> ApiResult<Response> {
    Err(ApiError::bad_request("Missing name"))
}

/// Whether an event with these filters is meant for this agent.
fn matches_agent(agent: &Agent, e: &UserEvent) -> bool {
    let re = |p: &str| regex::Regex::new(p).ok();
    if !e.node_filter.is_empty()
        && !re(&e.node_filter).is_some_and(|r| r.is_match(agent.node_name()))
    {
        return false;
    }
    if !e.service_filter.is_empty() {
        let Some(svc_re) = re(&e.service_filter) else {
            return false;
        };
        let tag_re = (!e.tag_filter.is_empty())
            .then(|| re(&e.tag_filter))
            .flatten();
        let ok = agent.local.services().iter().any(|s| {
            svc_re.is_match(&s.service)
                && (e.tag_filter.is_empty()
                    || tag_re
                        .as_ref()
                        .is_some_and(|t| s.tags.iter().any(|tag| t.is_match(tag))))
        });
        if !ok {
            return false;
        }
    }
    true
}

async fn fire(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentWrite)?;
    let p = &opts.params;
    let event = UserEvent {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.clone(),
        payload: (!body.is_empty()).then(|| body.to_vec()),
        node_filter: p.get("node").unwrap_or("").to_string(),
        service_filter: p.get("service").unwrap_or("").to_string(),
        tag_filter: p.get("tag").unwrap_or("").to_string(),
        version: 1,
        ltime: 0,
    };
    for (what, pattern) in [
        ("node", &event.node_filter),
        ("service", &event.service_filter),
        ("tag", &event.tag_filter),
    ] {
        if !pattern.is_empty() && regex::Regex::new(pattern).is_err() {
            return Err(ApiError::internal(format!(
                "Invalid {what} filter regex {pattern:?}"
            )));
        }
    }
    if name.len() + body.len() > SIZE_LIMIT {
        return Err(ApiError::internal(format!(
            "user event exceeds configured limit of {SIZE_LIMIT} bytes before encoding"
        )));
    }
    if let Some(gossip) = &agent.gossip {
        let envelope = serde_json::to_vec(&event).map_err(|e| ApiError::internal(e.to_string()))?;
        gossip
            .fire_user_event(&format!("{USER_EVENT_PREFIX}{name}"), envelope, false)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    // Recorded here at once (the gossip copy is then recognised by its ID), so a
    // list right after the fire shows it, as on Consul.
    if matches_agent(&agent, &event) {
        agent.events.record(event.clone(), None);
    }
    Ok(json(&event, opts.pretty))
}

/// An event that arrived through gossip (the firing agent's own copy included):
/// kept if it is meant for this agent and not already recorded.
pub fn deliver_from_gossip(agent: &Agent, name: &str, payload: &[u8], ltime: u64) {
    if !name.starts_with(USER_EVENT_PREFIX) {
        return;
    }
    let Ok(event) = serde_json::from_slice::<UserEvent>(payload) else {
        tracing::warn!(name, "dropping a user event with a malformed envelope");
        return;
    };
    if matches_agent(agent, &event) && !agent.events.contains(&event.id) {
        agent.events.record(event, Some(ltime));
    }
}

async fn list(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let name = opts
        .params
        .get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    // Its own loop, as Consul's: the index is that of the newest event the name
    // selects, and the query waits while it still equals the client's, up to
    // `wait` (default and cap: 10 minutes). Events of other names do not end the
    // wait.
    let wait = if opts.wait.is_zero() {
        MAX_WAIT
    } else {
        opts.wait.min(MAX_WAIT)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = agent.events.changed.subscribe();
    let (events, index) = loop {
        changes.borrow_and_update();
        let (events, index) = agent.events.list(name.as_deref());
        if opts.min_index == 0 || index != opts.min_index {
            break (events, index);
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break (events, index);
        }
    };
    // Events are this agent's own, not the servers': like Consul, only the
    // pseudo-index is reported, no leader or last-contact metadata.
    let mut r = json(&events, opts.pretty);
    r.headers_mut()
        .insert("X-Consul-Index", axum::http::HeaderValue::from(index));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, name: &str) -> UserEvent {
        UserEvent {
            id: id.into(),
            name: name.into(),
            payload: None,
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            version: 1,
            ltime: 0,
        }
    }

    #[test]
    fn the_index_is_the_newest_selected_event() {
        let log = EventLog::default();
        assert_eq!(log.list(None).1, 1, "no events: 1, not 0");
        let a = "00000000-0000-0005-0000-000000000000";
        let b = "00000000-0000-0009-0000-000000000000";
        log.record(event(a, "deploy"), None);
        log.record(event(b, "other"), None);
        let (all, idx) = log.list(None);
        assert_eq!((all.len(), idx), (2, 9));
        let (deploys, idx) = log.list(Some("deploy"));
        assert_eq!((deploys.len(), idx), (1, 5), "other names do not move it");
        assert_eq!(log.list(Some("none")).1, 1);
    }
}
