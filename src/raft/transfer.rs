//! Leadership transfer (`/v1/operator/raft/transfer-leader`).
//!
//! openraft 0.9 has no TimeoutNow message, so the leader stages the hand-over
//! itself: it stops taking writes, waits until the chosen server has every
//! entry, stops heartbeats and keeps every other server from standing for
//! election, waits out the followers' vote leases, and then tells the chosen
//! server to campaign. It is the only candidate and has the whole log, so it
//! wins. Suspended elections resume on their own after a while, so a leader
//! that dies half-way through cannot leave the cluster without elections.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Consensus, ConsensusError, ServerNode};
use crate::rpc::{Reply, Request};

/// What a server is told about elections during a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionControl {
    /// Do not stand for election for this long.
    Suspend { millis: u64 },
    /// Stand for election on the usual timeout again.
    Resume,
    /// Stand for election now.
    Campaign,
}

/// How long the target may take to catch up before the transfer is refused.
const CATCH_UP: Duration = Duration::from_secs(3);
/// How many times the target is asked to campaign.
const CAMPAIGNS: usize = 3;
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

impl Consensus {
    /// Applies an election control message to this server.
    pub fn control_elections(&self, control: ElectionControl) -> Result<(), ConsensusError> {
        // Every Suspend or Resume starts a new generation, so only the newest
        // suspension's timer may turn elections back on.
        let generation = self.election_generation.fetch_add(1, Ordering::SeqCst) + 1;
        match control {
            ElectionControl::Suspend { millis } => {
                self.raft.runtime_config().elect(false);
                let raft = self.raft.clone();
                let counter = self.election_generation.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    if counter.load(Ordering::SeqCst) == generation {
                        raft.runtime_config().elect(true);
                    }
                });
            }
            ElectionControl::Resume => self.raft.runtime_config().elect(true),
            ElectionControl::Campaign => {
                self.raft.runtime_config().elect(true);
                let raft = self.raft.clone();
                tokio::spawn(async move {
                    if let Err(e) = raft.trigger().elect().await {
                        tracing::warn!(error = %e, "could not start an election");
                    }
                });
            }
        }
        Ok(())
    }

    /// Hands leadership to `to` (a Raft id), or to the most up-to-date other
    /// voter. Returns the new leader.
    pub async fn transfer_leadership(&self, to: Option<u64>) -> Result<ServerNode, ConsensusError> {
        if !self.is_leader() {
            return Err(ConsensusError::Rpc(
                "cannot transfer leadership: this server is not the leader".into(),
            ));
        }
        let target = self.transfer_target(to)?;
        let target_id = super::raft_id(&target.node_id);
        let others: Vec<ServerNode> = self
            .voters()
            .into_iter()
            .filter(|n| n.node_id != target.node_id && n.node_id != self.me.node_id)
            .collect();

        // No new entries (and no read confirmations, which are heartbeats) until
        // the hand-over is done: either would renew the followers' leases.
        let _quiet = self.write_gate.write().await;
        self.wait_caught_up(target_id).await?;

        let config = self.raft.config().clone();
        let lease = Duration::from_millis(config.election_timeout_max);
        let suspend = ElectionControl::Suspend {
            millis: (lease * 10).as_millis() as u64,
        };
        self.raft.runtime_config().heartbeat(false);
        self.control_elections(suspend)?;
        for other in &others {
            // A server that cannot be told may stand for election itself; the
            // target still has the newest log and campaigns first.
            let _ = self.tell(other, suspend).await;
        }

        let outcome = self.campaign(&target, target_id, lease).await;

        self.raft.runtime_config().heartbeat(true);
        let _ = self.control_elections(ElectionControl::Resume);
        for other in &others {
            let _ = self.tell(other, ElectionControl::Resume).await;
        }
        outcome.map(|()| target)
    }

    fn transfer_target(&self, to: Option<u64>) -> Result<ServerNode, ConsensusError> {
        let not_found = || ConsensusError::Rpc("raft: cannot find peer".into());
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let candidates: BTreeSet<u64> = membership.voter_ids().filter(|&v| v != self.id).collect();
        let id = match to {
            Some(id) => candidates
                .contains(&id)
                .then_some(id)
                .ok_or_else(not_found)?,
            // The voter with the most of the log needs the least catching up.
            None => candidates
                .iter()
                .copied()
                .max_by_key(|v| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(v).cloned().flatten())
                        .map(|l| l.index)
                })
                .ok_or_else(not_found)?,
        };
        membership.get_node(&id).cloned().ok_or_else(not_found)
    }

    async fn wait_caught_up(&self, target: u64) -> Result<(), ConsensusError> {
        let deadline = Instant::now() + CATCH_UP;
        let mut rx = self.raft.metrics();
        loop {
            {
                let m = rx.borrow_and_update();
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .map(|l| l.index);
                if matched.is_some() && matched == m.last_log_index {
                    return Ok(());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return Err(ConsensusError::Rpc(
                    "cannot transfer leadership: the target server did not catch up with the log"
                        .into(),
                ));
            }
        }
    }

    /// Waits out the vote leases, then has the target campaign until it leads.
    async fn campaign(
        &self,
        target: &ServerNode,
        target_id: u64,
        lease: Duration,
    ) -> Result<(), ConsensusError> {
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        let mut rx = self.raft.metrics();
        for _ in 0..CAMPAIGNS {
            self.tell(target, ElectionControl::Campaign).await?;
            let deadline = Instant::now() + lease * 2;
            loop {
                if rx.borrow_and_update().current_leader == Some(target_id) {
                    return Ok(());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                    break;
                }
            }
        }
        Err(ConsensusError::Rpc(format!(
            "cannot transfer leadership: {} did not win an election",
            target.node_id
        )))
    }

    async fn tell(
        &self,
        server: &ServerNode,
        control: ElectionControl,
    ) -> Result<(), ConsensusError> {
        let addr: SocketAddr = server
            .addr
            .parse()
            .map_err(|e| ConsensusError::Rpc(format!("bad server address {}: {e}", server.addr)))?;
        match self
            .rpc
            .call(addr, &Request::Elections(control), RPC_TIMEOUT)
            .await
        {
            Ok(Reply::Elections(Ok(()))) => Ok(()),
            Ok(Reply::Elections(Err(text))) => Err(ConsensusError::Rpc(text)),
            Ok(other) => Err(ConsensusError::Rpc(format!("unexpected reply: {other:?}"))),
            Err(e) => Err(ConsensusError::Rpc(e.to_string())),
        }
    }
}
