//! The leader's read lease: whether a default-mode read may be answered from the
//! leader's own state without a quorum round.
//!
//! A follower that accepted an AppendEntries from the leader will not start an
//! election for at least the minimum election timeout after receiving it, and
//! openraft followers refuse votes for longer still. So once a majority has
//! acknowledged an AppendEntries the leader *sent* at `t`, no other leader can
//! exist before `t + election_timeout_min`. The lease is a margin shorter than
//! that. The network layer ([`super::network`]) records every acknowledgement
//! with its send time; a leader that was partitioned away stops holding the
//! lease within that margin and its default reads fall back to a quorum check
//! (which fails), instead of serving a value the majority has overwritten, as a
//! Consul leader does during its lease timeout.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LeaderLease {
    /// Per peer: the term and the send time of the newest acknowledged AppendEntries.
    acks: Mutex<HashMap<u64, (u64, Instant)>>,
    duration: Duration,
}

impl LeaderLease {
    /// A lease of two thirds of the minimum election timeout: the rest is margin
    /// for the follower's timer starting after the request arrived.
    pub fn new(election_timeout_min: Duration) -> Self {
        LeaderLease {
            acks: Mutex::new(HashMap::new()),
            duration: election_timeout_min * 2 / 3,
        }
    }

    /// `peer` accepted the AppendEntries of `term` that was sent at `sent`.
    pub fn acknowledged(&self, peer: u64, term: u64, sent: Instant) {
        let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let entry = acks.entry(peer).or_insert((term, sent));
        if (term, sent) > *entry {
            *entry = (term, sent);
        }
    }

    /// Whether `me`, leading in `term`, has heard from a majority of `voters`
    /// (itself included) recently enough that no other leader can exist yet.
    pub fn holds(&self, me: u64, term: u64, voters: &BTreeSet<u64>) -> bool {
        let Some(since) = Instant::now().checked_sub(self.duration) else {
            return false;
        };
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = voters
            .iter()
            .filter(|&&v| {
                v == me
                    || acks
                        .get(&v)
                        .is_some_and(|&(t, sent)| t == term && sent >= since)
            })
            .count();
        fresh * 2 > voters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_of_fresh_acknowledgements_holds_the_lease() {
        let lease = LeaderLease::new(Duration::from_millis(150));
        let voters = BTreeSet::from([1, 2, 3]);
        assert!(!lease.holds(1, 5, &voters), "no acknowledgement yet");
        lease.acknowledged(2, 5, Instant::now());
        assert!(lease.holds(1, 5, &voters));
        assert!(!lease.holds(1, 6, &voters), "acknowledged in an older term");
    }

    #[test]
    fn the_lease_runs_out() {
        let lease = LeaderLease::new(Duration::from_millis(30));
        let voters = BTreeSet::from([1, 2, 3]);
        lease.acknowledged(3, 2, Instant::now());
        std::thread::sleep(Duration::from_millis(25));
        assert!(!lease.holds(1, 2, &voters));
    }

    #[test]
    fn a_single_server_always_holds_it() {
        let lease = LeaderLease::new(Duration::from_millis(150));
        assert!(lease.holds(7, 1, &BTreeSet::from([7])));
    }

    #[test]
    fn an_older_acknowledgement_does_not_replace_a_newer_one() {
        let lease = LeaderLease::new(Duration::from_millis(150));
        let voters = BTreeSet::from([1, 2, 3]);
        let now = Instant::now();
        lease.acknowledged(2, 4, now);
        lease.acknowledged(2, 4, now - Duration::from_secs(5));
        assert!(lease.holds(1, 4, &voters));
    }
}
