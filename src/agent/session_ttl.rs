//! Session TTLs: the leader keeps a deadline per TTL session (TTL × 2, as Consul) and
//! destroys sessions that pass it without a renew. Timers are in memory; a new leader
//! starts fresh ones for every TTL session, as Consul's does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Agent;
use crate::config::parse_go_duration;
use crate::fsm::Command;
use crate::structs::{SESSION_TTL_MULTIPLIER, Session};

#[derive(Default)]
pub struct SessionTimers {
    deadlines: Mutex<HashMap<String, Instant>>,
}

fn ttl_of(s: &Session) -> Option<Duration> {
    if s.ttl.is_empty() {
        return None;
    }
    parse_go_duration(&s.ttl).ok().filter(|d| !d.is_zero())
}

impl SessionTimers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn created(&self, s: &Session) {
        self.renewed(s);
    }

    pub fn renewed(&self, s: &Session) {
        if let Some(ttl) = ttl_of(s) {
            self.lock()
                .insert(s.id.clone(), Instant::now() + ttl * SESSION_TTL_MULTIPLIER);
        }
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Restarts every TTL session's clock (on gaining leadership).
    pub fn reset_all(&self, sessions: &[Session]) {
        let mut map = self.lock();
        map.clear();
        let now = Instant::now();
        for s in sessions {
            if let Some(ttl) = ttl_of(s) {
                map.insert(s.id.clone(), now + ttl * SESSION_TTL_MULTIPLIER);
            }
        }
    }

    fn expired(&self) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// The reaper loop: on the leader, destroys expired sessions.
pub async fn run(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = agent.shutdown.cancelled() => return,
        }
        if !agent.consensus.is_leader() {
            continue;
        }
        for id in agent.session_timers.expired() {
            tracing::debug!(session = %id, "session TTL expired");
            match agent
                .consensus
                .propose(Command::SessionDestroy { id: id.clone() })
                .await
            {
                Ok(_) => agent.session_timers.forget(&id),
                Err(e) => tracing::warn!(session = %id, error = %e, "could not expire session"),
            }
        }
    }
}
