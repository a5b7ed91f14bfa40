//! Consensus: openraft wired to the durable log ([`log_store`]), the LMDB state
//! machine ([`state_machine`]) and the server network ([`network`]). Every write in
//! concord goes through [`Consensus::propose`], even on a single server, so `-dev`
//! exercises the same path as production.

pub mod batcher;
pub mod contact;
pub mod lease;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod stats;
pub mod transfer;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{Config, Raft, ServerState, SnapshotPolicy};

use crate::fsm::{Command, Response};
use crate::rpc::client::RpcError;
use crate::rpc::{Reply, Request, RpcClient};
use crate::state::Store;
pub use types::{ServerNode, TypeConfig, raft_id};

/// Why a write or a consistent read could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsensusError {
    /// Consul's text for "there is no leader to take this".
    #[error("No cluster leader")]
    NoLeader,
    /// Another server leads (only from [`Consensus::linearize`], which does not forward).
    #[error("rpc error making call: node is not the leader (leader is {0})")]
    NotLeader(String),
    /// A forwarded call failed in a way that leaves its outcome unknown.
    #[error("{0}")]
    Rpc(String),
    #[error("raft: {0}")]
    Fatal(String),
}

/// When to snapshot and how much log to keep behind a snapshot (Consul's
/// `raft_snapshot_threshold` and `raft_trailing_logs`).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSettings {
    pub threshold: u64,
    pub trailing_logs: u64,
}

/// How long a forwarded write may take before its caller gives up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Consul's Raft timing, scaled by `performance.raft_multiplier` as Consul scales
/// it: hashicorp/raft's defaults (heartbeat and election timeout 1s, leader lease
/// 500ms) times the multiplier, which defaults to 5 and is 1 under `-dev`.
/// (Consul's `-dev` also shrinks the base values; a `-dev` agent is the only voter
/// and elects itself at once, so concord does not.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTimings {
    /// How long a follower goes without hearing from the leader before it may
    /// campaign (hashicorp/raft randomises this between 1x and 2x).
    pub heartbeat_timeout: Duration,
    /// How long a candidate waits for votes before trying again.
    pub election_timeout: Duration,
    pub leader_lease_timeout: Duration,
}

/// How often the leader sends heartbeats, whatever the multiplier. Autopilot judges
/// a follower by the time since its last contact with the leader against
/// `last_contact_threshold` (200ms by default), so heartbeats must come well
/// within that or healthy followers would look unhealthy between two of them; on
/// a LAN they cost next to nothing.
const HEARTBEAT_INTERVAL_MS: u64 = 50;

impl RaftTimings {
    pub fn scaled(multiplier: u32) -> RaftTimings {
        let m = multiplier.max(1);
        RaftTimings {
            heartbeat_timeout: Duration::from_millis(1000) * m,
            election_timeout: Duration::from_millis(1000) * m,
            leader_lease_timeout: Duration::from_millis(500) * m,
        }
    }

    /// openraft's heartbeat interval and election timeout range, in ms. A follower
    /// campaigns once its leader lease (`election_timeout_max`) and then a random
    /// `election_timeout_min..max` have passed without a heartbeat, so with the
    /// range `T/2..T` for Consul's heartbeat timeout `T` it campaigns 1.5T to 2T
    /// after the last heartbeat (hashicorp/raft: T to 2T).
    fn openraft_ms(&self) -> (u64, u64, u64) {
        let t = self.heartbeat_timeout.as_millis() as u64;
        let max = t.max(4 * HEARTBEAT_INTERVAL_MS);
        (HEARTBEAT_INTERVAL_MS, max / 2, max)
    }
}

/// Go's `time.Since(time.Time{})` saturates at the largest `time.Duration`
/// (2^63-1 ns); this is that in milliseconds.
pub const NEVER_CONTACTED_MS: u64 = (i64::MAX / 1_000_000) as u64;

pub struct Consensus {
    pub raft: Raft<TypeConfig>,
    pub id: u64,
    pub me: ServerNode,
    /// How long to wait for a leader before answering "No cluster leader".
    pub hold_timeout: Duration,
    /// Proposals queue here to be batched into Raft entries ([`batcher`]).
    proposals: tokio::sync::mpsc::UnboundedSender<batcher::Pending>,
    /// Server RPC connections: Raft traffic and calls forwarded to other servers.
    pub rpc: Arc<RpcClient>,
    /// Whether this agent is a server (a Raft member) or a client agent.
    pub server_mode: bool,
    /// Whether the leader may answer default-mode reads on its own ([`lease`]).
    lease: Arc<lease::LeaderLease>,
    /// Writes and read confirmations hold this shared; a leadership transfer
    /// holds it exclusively, so nothing renews the followers' leases meanwhile.
    write_gate: Arc<tokio::sync::RwLock<()>>,
    /// Generation of election suspensions ([`transfer`]).
    election_generation: Arc<AtomicU64>,
    /// When this server last heard from the leader, and the leader from each server.
    pub contacts: Arc<contact::Contacts>,
    /// Servers a client agent forwards to (its view of the LAN pool's servers).
    known_servers: RwLock<Vec<SocketAddr>>,
    next_server: AtomicUsize,
}

impl Consensus {
    /// Starts Raft with its log in `raft_dir`. `bootstrap` initialises a new cluster
    /// with this server as its only voter (`-dev`, `-bootstrap`,
    /// `-bootstrap-expect=1`) unless it was initialised before.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        raft_dir: &Path,
        durable: bool,
        store: Arc<Store>,
        me: ServerNode,
        server_mode: bool,
        bootstrap: bool,
        hold_timeout: Duration,
        snapshot: SnapshotSettings,
        timings: RaftTimings,
    ) -> anyhow::Result<Consensus> {
        let id = raft_id(&me.node_id);
        let (heartbeat_interval, election_timeout_min, election_timeout_max) =
            timings.openraft_ms();
        let config = Config {
            cluster_name: "concord".into(),
            heartbeat_interval,
            election_timeout_min,
            election_timeout_max,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot.threshold.max(1)),
            max_in_snapshot_log_to_keep: snapshot.trailing_logs,
            purge_batch_size: 256,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()?;
        let log = log_store::LogStore::open(raft_dir, durable)?;
        let snapshot_path = durable.then(|| raft_dir.join("snapshot.json"));
        let sm = state_machine::StateMachine::new(store, snapshot_path)?;
        let rpc = Arc::new(RpcClient::default());
        let lease = Arc::new(lease::LeaderLease::new(Duration::from_millis(
            config.election_timeout_min,
        )));
        let contacts = Arc::new(contact::Contacts::default());
        let network = network::Network {
            rpc: rpc.clone(),
            lease: lease.clone(),
            contacts: contacts.clone(),
        };
        let raft = Raft::new(id, Arc::new(config), network, log, sm).await?;
        if bootstrap && !raft.is_initialized().await? {
            let mut members = BTreeMap::new();
            members.insert(id, me.clone());
            raft.initialize(members).await?;
        }
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        let write_gate = Arc::new(tokio::sync::RwLock::new(()));
        tokio::spawn(batcher::run(raft.clone(), queue, write_gate.clone()));
        Ok(Consensus {
            raft,
            id,
            me,
            hold_timeout,
            proposals,
            rpc,
            server_mode,
            lease,
            write_gate,
            election_generation: Arc::new(AtomicU64::new(0)),
            contacts,
            known_servers: RwLock::new(Vec::new()),
            next_server: AtomicUsize::new(0),
        })
    }

    /// Replaces the servers a client agent forwards to.
    pub fn set_known_servers(&self, servers: Vec<SocketAddr>) {
        *self
            .known_servers
            .write()
            .unwrap_or_else(|e| e.into_inner()) = servers;
    }

    /// Where a request this agent cannot serve goes: the leader (from a server), or
    /// one of the known servers, in turn (from a client agent; that server forwards
    /// on to its leader). `None` while there is nowhere to send it.
    pub fn forward_target(&self) -> Option<SocketAddr> {
        if self.server_mode {
            let leader = self.leader()?;
            if leader.addr == self.me.addr {
                return None;
            }
            return leader.addr.parse().ok();
        }
        let servers = self.known_servers.read().unwrap_or_else(|e| e.into_inner());
        if servers.is_empty() {
            return None;
        }
        let i = self.next_server.fetch_add(1, Ordering::Relaxed);
        Some(servers[i % servers.len()])
    }

    /// How many servers a client agent knows to forward to.
    pub fn known_server_count(&self) -> usize {
        self.known_servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether some server can take writes right now, as far as this agent knows.
    pub fn has_leader(&self) -> bool {
        if self.server_mode {
            self.leader().is_some()
        } else {
            !self
                .known_servers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        }
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// For a default-mode read on the leader: whether its own state may answer
    /// without a quorum round. It may while it holds the read lease ([`lease`]) and
    /// once it has applied an entry of its own term, since only then has it
    /// applied everything earlier leaders committed.
    pub fn lease_read_ok(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader || m.current_leader != Some(self.id) {
            return false;
        }
        let caught_up = m
            .last_applied
            .is_some_and(|applied| applied.leader_id.term == m.current_term);
        let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        caught_up && self.lease.holds(self.id, m.current_term, &voters)
    }

    /// The current leader's record, if one is known.
    pub fn leader(&self) -> Option<ServerNode> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        m.membership_config.membership().get_node(&id).cloned()
    }

    /// Voting members (Consul's "peers").
    pub fn voters(&self) -> Vec<ServerNode> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).cloned())
            .collect()
    }

    /// How long since this server last heard from the leader: zero on the leader,
    /// `None` when no leader has reached it since it started (Consul then reports
    /// the time since the zero time, i.e. the largest duration there is).
    pub fn last_contact(&self) -> Option<Duration> {
        if self.is_leader() {
            return Some(Duration::ZERO);
        }
        self.contacts.since_leader()
    }

    /// [`Self::last_contact`] in whole milliseconds, as `X-Consul-LastContact`
    /// carries it; "never" is Go's largest duration (about 292 years).
    pub fn last_contact_ms(&self) -> u64 {
        match self.last_contact() {
            Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            None => NEVER_CONTACTED_MS,
        }
    }

    /// Waits up to the hold timeout for this server to lead (single server) or for a
    /// leader to be known.
    pub async fn wait_for_leader(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut rx = self.raft.metrics();
        loop {
            if rx.borrow().current_leader.is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if tokio::time::timeout(left, rx.changed()).await.is_err() {
                return rx.borrow().current_leader.is_some();
            }
        }
    }

    /// Proposes a command and waits until it is committed and applied: on the
    /// leader through the batcher, elsewhere forwarded to the leader. Waits up to
    /// the hold timeout for a leader before answering "No cluster leader".
    pub async fn propose(&self, cmd: Command) -> Result<Response, ConsensusError> {
        let deadline = Instant::now() + self.hold_timeout;
        loop {
            if self.is_leader() {
                // Leadership lost before the entry was appended: forward instead.
                match self.propose_local(cmd.clone()).await {
                    Err(ConsensusError::NotLeader(_)) => continue,
                    other => return other,
                }
            }
            let Some(target) = self.forward_target() else {
                if Instant::now() >= deadline {
                    return Err(ConsensusError::NoLeader);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if self.server_mode {
                    self.wait_for_leader(left).await;
                } else {
                    tokio::time::sleep(left.min(Duration::from_millis(100))).await;
                }
                continue;
            };
            let req = Request::Propose(cmd.clone());
            match self.rpc.call(target, &req, FORWARD_TIMEOUT).await {
                Ok(Reply::Propose(Ok(answer))) => return Ok(answer),
                Ok(Reply::Propose(Err(text))) if text == ConsensusError::NoLeader.to_string() => {}
                Ok(Reply::Propose(Err(text))) => return Err(ConsensusError::Rpc(text)),
                Ok(other) => {
                    return Err(ConsensusError::Rpc(format!("unexpected reply: {other:?}")));
                }
                // Nothing was delivered: try again (a new leader, another server).
                Err(RpcError::Unreachable { .. }) => {}
                Err(e) => return Err(ConsensusError::Rpc(e.to_string())),
            }
            if Instant::now() >= deadline {
                return Err(ConsensusError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn propose_local(&self, cmd: Command) -> Result<Response, ConsensusError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.proposals
            .send(batcher::Pending { cmd, reply })
            .map_err(|_| ConsensusError::Fatal("raft is shutting down".into()))?;
        answer
            .await
            .map_err(|_| ConsensusError::Fatal("raft is shutting down".into()))?
    }

    /// Adds a server to the cluster (from the leader; others forward to it): as a
    /// learner until it has caught up, then as a voter. A server already in the
    /// configuration at the same address is left alone.
    pub async fn add_server(&self, node: ServerNode) -> Result<(), ConsensusError> {
        let id = raft_id(&node.node_id);
        if !self.is_leader() {
            let target = self.forward_target().ok_or(ConsensusError::NoLeader)?;
            return match self
                .rpc
                .call(target, &Request::Join(node), FORWARD_TIMEOUT)
                .await
            {
                Ok(Reply::Join(Ok(()))) => Ok(()),
                Ok(Reply::Join(Err(text))) => Err(ConsensusError::Rpc(text)),
                Ok(other) => Err(ConsensusError::Rpc(format!("unexpected reply: {other:?}"))),
                Err(e) => Err(ConsensusError::Rpc(e.to_string())),
            };
        }
        let fatal = |e: &dyn std::fmt::Display| ConsensusError::Fatal(e.to_string());
        let (known, voter) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (
                membership.get_node(&id).cloned(),
                membership.voter_ids().any(|v| v == id),
            )
        };
        if known.as_ref() != Some(&node) {
            tracing::info!(server = %node, "adding server as a learner");
            self.raft
                .add_learner(id, node.clone(), true)
                .await
                .map_err(|e| fatal(&e))?;
        }
        if !voter {
            tracing::info!(server = %node, "promoting server to voter");
            self.raft
                .change_membership(
                    openraft::ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                    false,
                )
                .await
                .map_err(|e| fatal(&e))?;
        }
        Ok(())
    }

    /// Removes a server from the Raft configuration (leader only).
    pub async fn remove_server(&self, id: u64) -> Result<(), ConsensusError> {
        let fatal = |e: &dyn std::fmt::Display| ConsensusError::Fatal(e.to_string());
        self.raft
            .change_membership(
                openraft::ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                false,
            )
            .await
            .map_err(|e| fatal(&e))?;
        self.raft
            .change_membership(
                openraft::ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                false,
            )
            .await
            .map_err(|e| fatal(&e))?;
        Ok(())
    }

    /// Bootstraps a new cluster with `servers` as its voters (`bootstrap_expect`).
    /// A no-op on a server that already has a Raft configuration.
    pub async fn bootstrap(&self, servers: Vec<ServerNode>) -> Result<(), ConsensusError> {
        let fatal = |e: &dyn std::fmt::Display| ConsensusError::Fatal(e.to_string());
        if self.raft.is_initialized().await.map_err(|e| fatal(&e))? {
            return Ok(());
        }
        let members: BTreeMap<u64, ServerNode> = servers
            .into_iter()
            .map(|n| (raft_id(&n.node_id), n))
            .collect();
        self.raft.initialize(members).await.map_err(|e| fatal(&e))
    }

    /// For `?consistent`: confirms leadership with a quorum and waits until the state
    /// machine has caught up with it.
    pub async fn linearize(&self) -> Result<(), ConsensusError> {
        if !self.is_leader() && !self.wait_for_leader(self.hold_timeout).await {
            return Err(ConsensusError::NoLeader);
        }
        // A leader cut off from the majority would wait for acknowledgements
        // until the partition heals; answer as Consul does once the hold runs out.
        let _gate = self.write_gate.read().await;
        let confirmed = tokio::time::timeout(self.hold_timeout, self.raft.ensure_linearizable())
            .await
            .map_err(|_| ConsensusError::NoLeader)?;
        match confirmed {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                match f.leader_node {
                    Some(n) => Err(ConsensusError::NotLeader(n.addr)),
                    None => Err(ConsensusError::NoLeader),
                }
            }
            Err(e) => Err(ConsensusError::Fatal(e.to_string())),
        }
    }

    /// A receiver that sees `true` while this server leads.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        let (tx, rx) = tokio::sync::watch::channel(self.is_leader());
        let mut metrics = self.raft.metrics();
        let id = self.id;
        tokio::spawn(async move {
            loop {
                let leading = {
                    let m = metrics.borrow_and_update();
                    m.state == ServerState::Leader && m.current_leader == Some(id)
                };
                tx.send_if_modified(|cur| {
                    let changed = *cur != leading;
                    *cur = leading;
                    changed
                });
                if metrics.changed().await.is_err() || tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_scale_with_the_multiplier() {
        let t = RaftTimings::scaled(5);
        assert_eq!(t.heartbeat_timeout, Duration::from_secs(5));
        assert_eq!(t.election_timeout, Duration::from_secs(5));
        assert_eq!(t.leader_lease_timeout, Duration::from_millis(2500));
        // A follower campaigns 1.5T..2T after the last heartbeat.
        assert_eq!(t.openraft_ms(), (50, 2500, 5000));
        assert_eq!(RaftTimings::scaled(1).openraft_ms(), (50, 500, 1000));
        assert_eq!(RaftTimings::scaled(10).openraft_ms(), (50, 5000, 10000));
    }

    #[test]
    fn timings_are_valid_for_openraft() {
        for m in 1..=10 {
            let (heartbeat_interval, election_timeout_min, election_timeout_max) =
                RaftTimings::scaled(m).openraft_ms();
            Config {
                heartbeat_interval,
                election_timeout_min,
                election_timeout_max,
                ..Default::default()
            }
            .validate()
            .unwrap();
        }
    }
}
