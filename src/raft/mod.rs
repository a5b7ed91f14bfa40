//! Consensus: openraft wired to the durable log ([`log_store`]), the LMDB state
//! machine ([`state_machine`]) and the server network ([`network`]). Every write in
//! concord goes through [`Consensus::propose`], even on a single server, so `-dev`
//! exercises the same path as production.

pub mod batcher;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{Config, Raft, ServerState, SnapshotPolicy};

use crate::fsm::{Command, Response};
use crate::state::Store;
pub use types::{ServerNode, TypeConfig, raft_id};

/// Why a write or a consistent read could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsensusError {
    /// Consul's text for "there is no leader to take this".
    #[error("No cluster leader")]
    NoLeader,
    /// Another server leads; forwarding to it arrives with the cluster transport.
    #[error("rpc error making call: leader is {0}, and forwarding is not available yet")]
    NotLeader(String),
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

pub struct Consensus {
    pub raft: Raft<TypeConfig>,
    pub id: u64,
    pub me: ServerNode,
    /// How long to wait for a leader before answering "No cluster leader".
    pub hold_timeout: Duration,
    /// Proposals queue here to be batched into Raft entries ([`batcher`]).
    proposals: tokio::sync::mpsc::UnboundedSender<batcher::Pending>,
}

impl Consensus {
    /// Starts Raft with its log in `raft_dir`. `bootstrap` initialises a new cluster
    /// with this server as its only voter (`-dev`, `-bootstrap`,
    /// `-bootstrap-expect=1`) unless it was initialised before.
    pub async fn start(
        raft_dir: &Path,
        durable: bool,
        store: Arc<Store>,
        me: ServerNode,
        bootstrap: bool,
        hold_timeout: Duration,
        snapshot: SnapshotSettings,
    ) -> anyhow::Result<Consensus> {
        let id = raft_id(&me.node_id);
        let config = Config {
            cluster_name: "concord".into(),
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot.threshold.max(1)),
            max_in_snapshot_log_to_keep: snapshot.trailing_logs,
            purge_batch_size: 256,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()?;
        let log = log_store::LogStore::open(raft_dir, durable)?;
        let snapshot_path = durable.then(|| raft_dir.join("snapshot.json"));
        let sm = state_machine::StateMachine::new(store, snapshot_path);
        let raft = Raft::new(id, Arc::new(config), network::Network, log, sm).await?;
        if bootstrap && !raft.is_initialized().await? {
            let mut members = BTreeMap::new();
            members.insert(id, me.clone());
            raft.initialize(members).await?;
        }
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batcher::run(raft.clone(), queue));
        Ok(Consensus {
            raft,
            id,
            me,
            hold_timeout,
            proposals,
        })
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
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

    /// Milliseconds since this server last heard from the leader (0 on the leader).
    pub fn last_contact_ms(&self) -> u64 {
        if self.is_leader() {
            return 0;
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        m.millis_since_quorum_ack.unwrap_or(0)
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

    /// Proposes a command and waits until it is committed and applied.
    pub async fn propose(&self, cmd: Command) -> Result<Response, ConsensusError> {
        if !self.is_leader() && !self.wait_for_leader(self.hold_timeout).await {
            return Err(ConsensusError::NoLeader);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.proposals
            .send(batcher::Pending { cmd, reply })
            .map_err(|_| ConsensusError::Fatal("raft is shutting down".into()))?;
        answer
            .await
            .map_err(|_| ConsensusError::Fatal("raft is shutting down".into()))?
    }

    /// For `?consistent`: confirms leadership with a quorum and waits until the state
    /// machine has caught up with it.
    pub async fn linearize(&self) -> Result<(), ConsensusError> {
        if !self.is_leader() && !self.wait_for_leader(self.hold_timeout).await {
            return Err(ConsensusError::NoLeader);
        }
        match self.raft.ensure_linearizable().await {
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
