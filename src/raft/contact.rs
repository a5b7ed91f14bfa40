//! When servers last heard from each other over Raft. A follower notes every
//! AppendEntries or InstallSnapshot the leader of its term sends (the basis of
//! `X-Consul-LastContact` and `?max_stale`); a leader notes every answer a follower
//! gives its AppendEntries (the basis of autopilot's per-server `LastContact`).
//! openraft's metrics carry neither: `millis_since_quorum_ack` is the leader's
//! quorum view, nothing per server and nothing on a follower.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Contacts {
    /// Follower side: the last message accepted from the current leader.
    leader: Mutex<Option<Instant>>,
    /// Leader side: the last AppendEntries answer from each server, by Raft ID.
    followers: Mutex<HashMap<u64, Instant>>,
}

impl Contacts {
    /// The leader of this server's term reached it (a heartbeat counts).
    pub fn heard_from_leader(&self) {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// How long ago the leader last reached this server; `None` if it never has
    /// since this process started.
    pub fn since_leader(&self) -> Option<Duration> {
        self.leader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }

    /// Server `id` answered an AppendEntries this server sent as leader.
    pub fn heard_from_follower(&self, id: u64) {
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Instant::now());
    }

    /// How long ago server `id` last answered this server's AppendEntries.
    pub fn since_follower(&self, id: u64) -> Option<Duration> {
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(Instant::elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_heard_is_none_and_contact_is_recent() {
        let c = Contacts::default();
        assert_eq!(c.since_leader(), None);
        assert_eq!(c.since_follower(7), None);
        c.heard_from_leader();
        c.heard_from_follower(7);
        assert!(c.since_leader().unwrap() < Duration::from_secs(1));
        assert!(c.since_follower(7).unwrap() < Duration::from_secs(1));
        assert_eq!(c.since_follower(8), None);
    }
}
