//! LAN/WAN gossip: membership, failure detection, member tags, user events and the
//! encryption keyring, modelled on HashiCorp serf/memberlist and built on foca (SWIM with
//! infection-style dissemination and suspicion).
//!
//! Behaviour follows serf: members are `alive`, `leaving`, `left` or `failed`; a graceful
//! [`Gossip::leave`] is seen as `left`, a crash as `failed`; failed and left members are
//! reaped after `reconnect_timeout` / `tombstone_timeout`; user events carry a Lamport
//! time and reach every member exactly once, self included; keyring operations run on
//! every member and answer per node like Consul's `/v1/operator/keyring`.
//!
//! The wire protocol is our own (foca's SWIM packets over UDP, a TCP channel for join,
//! push-pull state sync and keyring requests); a concord pool does not mix with Consul
//! agents. Layout: `config` (settings), `member` (public member types and foca identity),
//! `state` (serf's member table, tags, leave intents, event dedup), `broadcast` (messages
//! piggy-backed on foca), `transport` (sockets, timers, push-pull), `crypto` (AES-GCM
//! envelope), `keyring` (cluster-wide key operations and the keyring file).
//!
//! Lifecycle: [`Gossip::start`] binds UDP and TCP on one port and runs alone until
//! [`Gossip::join`]. Always end with [`Gossip::shutdown`] (after [`Gossip::leave`] for a
//! graceful exit): the background tasks hold the sockets until then.
//!
//! Known differences from serf: a member joining late learns alive members and their
//! tags, but not members that already failed or left; queries (serf `Query`) and
//! coalescing of user events are not implemented (`coalesce` is carried, not acted on);
//! `encrypt_verify_incoming/outgoing` (accepting plaintext during a rollout) is not
//! supported: a pool is either fully encrypted or not.

mod broadcast;
mod config;
mod crypto;
mod keyring;
mod member;
mod state;
mod transport;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast as channel;

pub use config::GossipConfig;
pub use keyring::KeyringResponse;
pub use member::{Member, MemberStatus};

use broadcast::{Broadcast, EventMsg, LeaveIntent, NodeMeta};
use crypto::Keyring;
use keyring::KeyOp;
use transport::{Inner, StreamMsg};

/// memberlist's limit on the encoded size of a member's tags (`MetaMaxSize`).
const TAGS_SIZE_LIMIT: usize = 512;

/// A user event as delivered to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// Lamport time of the event in the pool's event clock.
    pub ltime: u64,
    pub name: String,
    pub payload: Vec<u8>,
    pub coalesce: bool,
    /// Name of the member that fired it.
    pub origin: String,
}

/// What subscribers are told (serf's event types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipEvent {
    MemberJoin(Member),
    MemberLeave(Member),
    MemberFailed(Member),
    MemberUpdate(Member),
    MemberReap(Member),
    UserEvent(UserEvent),
}

/// Errors of the gossip API, with the texts Consul/serf show for the same condition.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// No address could be joined; the text lists each failure like Consul's.
    #[error("{0}")]
    Join(String),
    #[error("agent: No node found with name '{0}'")]
    NoSuchNode(String),
    #[error("user event exceeds configured limit of {0} bytes before encoding")]
    UserEventTooLarge(usize),
    #[error("user event exceeds sane limit of {0} bytes after encoding")]
    UserEventEncodedTooLarge(usize),
    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    #[error("Encoded length of tags exceeds limit of {TAGS_SIZE_LIMIT} bytes")]
    TagsTooLarge,
    /// Some members failed the keyring operation; `response` holds the per-node answers.
    #[error("{message}")]
    Keyring {
        message: String,
        response: Box<KeyringResponse>,
    },
    #[error("{0}")]
    InvalidKey(String),
    #[error("gossip: this member has left the pool or was shut down")]
    NotRunning,
    #[error("gossip: {0}")]
    Internal(String),
}

/// The counters of one pool that serf reports in `/v1/agent/self` `Stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Known members, self and failed or left ones included.
    pub members: usize,
    pub failed: usize,
    pub left: usize,
    /// The user-event Lamport clock.
    pub event_time: u64,
    pub encrypted: bool,
}

/// Handle to one running gossip pool member; cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip")
            .field("node", &self.inner.cfg.node_name)
            .field("addr", &self.inner.local_addr)
            .finish()
    }
}

impl Gossip {
    /// Loads the keyring, binds UDP and TCP on `cfg.bind` and starts gossiping (alone until
    /// [`Gossip::join`]).
    pub async fn start(cfg: GossipConfig) -> anyhow::Result<Gossip> {
        cfg.validate()?;
        let keyring = load_keyring(&cfg)?;
        let inner = Inner::start(cfg, keyring).await?;
        Ok(Gossip { inner })
    }

    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The address other members reach us at.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Our node name.
    pub fn node_name(&self) -> &str {
        &self.inner.cfg.node_name
    }

    /// Whether packets are encrypted.
    pub fn encrypted(&self) -> bool {
        self.inner.keyring.read().expect("keyring lock").enabled()
    }

    /// Joins the pool through the given members: a full state exchange with each. Returns
    /// how many answered; fails only when none did, listing every address's error.
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn join(&self, addrs: &[SocketAddr]) -> Result<usize, GossipError> {
        self.join_reporting(addrs, Vec::new()).await
    }

    /// [`Gossip::join`], with `errors` already met on the way (join names that did
    /// not resolve) listed among the failures: it fails when no address answered
    /// and any error was met, as memberlist's join does.
    pub async fn join_reporting(
        &self,
        addrs: &[SocketAddr],
        mut errors: Vec<String>,
    ) -> Result<usize, GossipError> {
        self.ensure_running()?;
        let mut joined = 0;
        for &addr in addrs {
            let request = StreamMsg::PushPull(Box::new(self.inner.local_push_pull()));
            match self.inner.exchange(addr, &request).await {
                Ok(StreamMsg::PushPull(remote)) => {
                    let from = remote.from.clone();
                    self.inner.merge_push_pull(*remote);
                    if from.addr != self.inner.local_addr {
                        self.inner.announce(from);
                    }
                    joined += 1;
                }
                Ok(_) => errors.push(format!("Failed to join {addr}: unexpected reply")),
                Err(e) => errors.push(format!("Failed to join {addr}: {e}")),
            }
        }
        if joined == 0 && !errors.is_empty() {
            tracing::warn!(errors = ?errors, "gossip: join failed");
            return Err(GossipError::Join(multi_error(&errors)));
        }
        tracing::info!(joined, "gossip: joined");
        Ok(joined)
    }

    /// Leaves gracefully: announces the intent (others mark us `leaving`), waits
    /// `leave_propagate_delay` for it to spread, then declares our identity gone (others
    /// mark us `left`) and stops gossiping. Call [`Gossip::shutdown`] afterwards.
    pub async fn leave(&self) -> Result<(), GossipError> {
        self.ensure_running()?;
        let (generation, others) = {
            let mut state = self.inner.state.lock().expect("state lock");
            state.set_self_status(MemberStatus::Leaving);
            (state.local().generation, !state.alive_ids().is_empty())
        };
        if others {
            let intent = LeaveIntent {
                name: self.inner.cfg.node_name.clone(),
                generation,
                forced: false,
                prune: false,
                nonce: rand::random(),
            };
            self.broadcast(Broadcast::Leave(intent))?;
            tokio::time::sleep(self.inner.cfg.leave_propagate_delay).await;
        }
        let res = self.inner.with_foca(|f, fx| f.leave_cluster(fx));
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner
            .state
            .lock()
            .expect("state lock")
            .set_self_status(MemberStatus::Left);
        res.map_err(|e| GossipError::Internal(format!("leave: {e}")))?;
        tracing::info!("gossip: left the pool");
        Ok(())
    }

    /// serf's `Stats()` counters this pool keeps.
    pub fn stats(&self) -> PoolStats {
        let (members, failed, left, event_time) = {
            let state = self.inner.state.lock().expect("state lock");
            let members = state.members();
            let count = |s: MemberStatus| members.iter().filter(|m| m.status == s).count();
            (
                members.len(),
                count(MemberStatus::Failed),
                count(MemberStatus::Left),
                state.event_clock(),
            )
        };
        PoolStats {
            members,
            failed,
            left,
            event_time,
            encrypted: self.encrypted(),
        }
    }

    /// Every known member, self included, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.inner.state.lock().expect("state lock").members()
    }

    /// Whether a known member (self included) has the address `ip`.
    pub fn has_member_at(&self, ip: std::net::IpAddr) -> bool {
        self.inner
            .state
            .lock()
            .expect("state lock")
            .has_member_at(ip)
    }

    /// serf's `RemoveFailedNode`: spreads a forced leave intent. A failed member becomes
    /// left; a live one is `leaving` until it refutes the intent (or, if it cannot, until
    /// it goes down and is `left`); with `prune` a leaving or left member is also dropped
    /// from every member list at once.
    pub fn force_leave(&self, node: &str, prune: bool) -> Result<(), GossipError> {
        self.ensure_running()?;
        if node == self.inner.cfg.node_name {
            return Ok(());
        }
        let (id, _) = self
            .inner
            .state
            .lock()
            .expect("state lock")
            .lookup(node)
            .ok_or_else(|| GossipError::NoSuchNode(node.to_string()))?;
        let intent = LeaveIntent {
            name: node.to_string(),
            generation: id.generation,
            forced: true,
            prune,
            nonce: rand::random(),
        };
        self.broadcast(Broadcast::Leave(intent))
    }

    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Replaces our tags and spreads them (others get `MemberUpdate`).
    pub fn set_tags(&self, tags: BTreeMap<String, String>) -> Result<(), GossipError> {
        self.ensure_running()?;
        let encoded =
            postcard::to_stdvec(&tags).map_err(|e| GossipError::Internal(e.to_string()))?;
        if encoded.len() > TAGS_SIZE_LIMIT {
            return Err(GossipError::TagsTooLarge);
        }
        let version = {
            let state = self.inner.state.lock().expect("state lock");
            state.self_meta().map(|m| m.version).unwrap_or(0) + 1
        };
        let meta = NodeMeta {
            name: self.inner.cfg.node_name.clone(),
            addr: self.inner.local_addr,
            version,
            tags,
        };
        self.broadcast(Broadcast::Meta(meta))
    }

    /// Fires a user event: delivered once to every member, this one included, stamped with
    /// the pool's Lamport time. `name.len() + payload.len()` is limited like serf's.
    pub fn fire_user_event(
        &self,
        name: &str,
        payload: Vec<u8>,
        coalesce: bool,
    ) -> Result<(), GossipError> {
        let limit = self.inner.cfg.user_event_size_limit;
        if name.len() + payload.len() > limit {
            return Err(GossipError::UserEventTooLarge(limit));
        }
        self.ensure_running()?;
        let ltime = self
            .inner
            .state
            .lock()
            .expect("state lock")
            .next_event_ltime();
        let event = EventMsg {
            id: rand::random(),
            ltime,
            origin: self.inner.cfg.node_name.clone(),
            name: name.to_string(),
            payload,
            coalesce,
        };
        self.broadcast_raw(Broadcast::Event(event))
            .map_err(|e| match e {
                foca::Error::DataTooBig => {
                    GossipError::UserEventEncodedTooLarge(transport::MAX_PACKET)
                }
                e => GossipError::Internal(format!("cannot broadcast: {e}")),
            })
    }

    /// Events from now on. A slow subscriber loses the oldest ones (`RecvError::Lagged`).
    pub fn subscribe(&self) -> channel::Receiver<GossipEvent> {
        self.inner.tx.subscribe()
    }

    /// Lists the keys installed on every alive member.
    pub async fn keyring_list(&self) -> Result<KeyringResponse, GossipError> {
        self.keyring_op(KeyOp::List).await
    }

    /// Installs a (base64) key on every alive member as a secondary key.
    pub async fn keyring_install(&self, key: &str) -> Result<KeyringResponse, GossipError> {
        let key = keyring::decode_key(key).map_err(GossipError::InvalidKey)?;
        self.keyring_op(KeyOp::Install(key)).await
    }

    /// Makes an installed (base64) key the primary key on every alive member.
    pub async fn keyring_use(&self, key: &str) -> Result<KeyringResponse, GossipError> {
        let key = keyring::decode_key(key).map_err(GossipError::InvalidKey)?;
        self.keyring_op(KeyOp::Use(key)).await
    }

    /// Removes a (base64) key from every alive member; the primary key cannot be removed.
    pub async fn keyring_remove(&self, key: &str) -> Result<KeyringResponse, GossipError> {
        let key = keyring::decode_key(key).map_err(GossipError::InvalidKey)?;
        self.keyring_op(KeyOp::Remove(key)).await
    }

    /// Stops all gossip at once and closes the sockets, without telling anyone: the pool
    /// will see this member as failed unless [`Gossip::leave`] ran first.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
        tracing::info!(node = %self.inner.cfg.node_name, "gossip: shut down");
    }

    /// Test hook: drop (true) or restore (false) all of this member's traffic.
    #[cfg(test)]
    pub(crate) fn set_partitioned(&self, on: bool) {
        self.inner.partitioned.store(on, Ordering::SeqCst);
    }

    fn ensure_running(&self) -> Result<(), GossipError> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            Err(GossipError::NotRunning)
        } else {
            Ok(())
        }
    }

    /// Queues a serf message for dissemination (applying it here first) and pushes it to a
    /// few members right away instead of waiting for the next gossip round.
    fn broadcast(&self, msg: Broadcast) -> Result<(), GossipError> {
        self.broadcast_raw(msg)
            .map_err(|e| GossipError::Internal(format!("cannot broadcast: {e}")))
    }

    fn broadcast_raw(&self, msg: Broadcast) -> Result<(), foca::Error> {
        let data = msg.encode();
        self.inner.with_foca(|f, fx| {
            f.add_broadcast(&data)?;
            f.broadcast(fx)
        })
    }

    async fn keyring_op(&self, op: KeyOp) -> Result<KeyringResponse, GossipError> {
        self.ensure_running()?;
        let targets = self.inner.state.lock().expect("state lock").alive_ids();
        let local = {
            let mut ring = self.inner.keyring.write().expect("keyring lock");
            keyring::apply_op(&mut ring, &op, self.inner.cfg.keyring_file.as_deref())
        };
        let request = StreamMsg::Key(op);
        let remote = futures::future::join_all(targets.iter().map(|id| {
            let request = &request;
            async move {
                let answer = match self.inner.exchange(id.addr, request).await {
                    Ok(StreamMsg::KeyResp(r)) => Ok(r),
                    Ok(_) => Err("unexpected reply".to_string()),
                    Err(e) => Err(e),
                };
                (id.name.clone(), answer)
            }
        }))
        .await;
        let mut answers = vec![(self.inner.cfg.node_name.clone(), Ok(local))];
        answers.extend(remote);
        let response = KeyringResponse::aggregate(answers);
        match response.error() {
            Some(message) => Err(GossipError::Keyring {
                message,
                response: Box::new(response),
            }),
            None => Ok(response),
        }
    }
}

/// The keyring file wins over `encrypt_key` when both exist, as in Consul; a new keyring
/// from `encrypt_key` is written to the file.
fn load_keyring(cfg: &GossipConfig) -> anyhow::Result<Keyring> {
    if let Some(path) = &cfg.keyring_file
        && let Some(ring) = keyring::read_file(path)?
    {
        if let Some(k) = &cfg.encrypt_key
            && !ring.keys().contains(k)
        {
            tracing::warn!(file = %path.display(), "gossip: encrypt key ignored: the keyring file exists and does not hold it");
        }
        return Ok(ring);
    }
    let Some(key) = &cfg.encrypt_key else {
        return Ok(Keyring::default());
    };
    let ring = Keyring::new(vec![key.clone()])
        .map_err(|e| anyhow::anyhow!("gossip: invalid encrypt key: {e}"))?;
    if let Some(path) = &cfg.keyring_file {
        keyring::write_file(path, &ring).map_err(|e| {
            anyhow::anyhow!("gossip: cannot write keyring file {}: {e}", path.display())
        })?;
    }
    Ok(ring)
}

/// hashicorp/go-multierror's format, which Consul's join errors use.
pub(crate) fn multi_error(errors: &[String]) -> String {
    let head = if errors.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errors.len())
    };
    let body: Vec<String> = errors.iter().map(|e| format!("\t* {e}")).collect();
    format!("{head}\n{}\n\n", body.join("\n"))
}
