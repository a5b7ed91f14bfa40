//! serf-level messages piggy-backed on foca's packets as custom broadcasts: member tags,
//! leave intents, their refutations and user events.
//!
//! foca spreads each item to `retransmit` random members per round and stops once it has
//! been sent often enough or a fresher item replaced it ([`BroadcastKey`]). The handler
//! applies every item to the shared [`State`] the moment it arrives and only passes on
//! items that were news, which is what keeps dissemination finite. Members that miss an
//! item (joined later, were partitioned) get it from the periodic push-pull instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

use super::member::NodeId;
use super::state::State;

/// A member's tags. `version` starts at the process start time in milliseconds and grows by
/// one per tag change, so a restarted member's tags outrank its previous life's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub name: String,
    pub addr: SocketAddr,
    pub version: u64,
    pub tags: BTreeMap<String, String>,
}

/// "This member is leaving" (graceful `leave`) or "consider it gone" (`force-leave`).
/// `generation` pins the intent to one life of the member so it cannot hit a later restart;
/// `nonce` keeps a repeated `force-leave` from being deduplicated against an earlier one
/// that found the member still alive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaveIntent {
    pub name: String,
    pub generation: u64,
    pub forced: bool,
    pub prune: bool,
    pub nonce: u64,
}

/// "I am alive": a member's answer to a `force-leave` aimed at it while it runs (serf's
/// refuting join intent). It names the intent it refutes by its `nonce`, so it undoes that
/// intent only, wherever it arrives first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Refute {
    pub name: String,
    pub generation: u64,
    pub nonce: u64,
}

/// A user event. `id` is random and is what deduplicates; `ltime` is the Lamport time
/// serf reports to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMsg {
    pub id: u64,
    pub ltime: u64,
    pub origin: String,
    pub name: String,
    pub payload: Vec<u8>,
    pub coalesce: bool,
}

/// Everything carried as a foca custom broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Broadcast {
    Meta(NodeMeta),
    Leave(LeaveIntent),
    Event(EventMsg),
    /// Last, so that the encodings of the others stay what they were.
    Refute(Refute),
}

impl Broadcast {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("broadcasts always serialize")
    }

    fn key(&self) -> BroadcastKey {
        match self {
            Broadcast::Meta(m) => BroadcastKey::Meta {
                name: m.name.clone(),
                version: m.version,
            },
            Broadcast::Leave(l) => BroadcastKey::Leave(l.clone()),
            Broadcast::Event(e) => BroadcastKey::Event(e.id),
            Broadcast::Refute(r) => BroadcastKey::Refute(r.clone()),
        }
    }
}

/// What foca uses to drop stale items from its dissemination backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastKey {
    Meta { name: String, version: u64 },
    Leave(LeaveIntent),
    Event(u64),
    Refute(Refute),
}

impl Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            // Newer tags of a member replace older ones still in flight.
            (
                BroadcastKey::Meta {
                    name: a,
                    version: va,
                },
                BroadcastKey::Meta {
                    name: b,
                    version: vb,
                },
            ) => a == b && va >= vb,
            (BroadcastKey::Leave(a), BroadcastKey::Leave(b)) => a == b,
            (BroadcastKey::Event(a), BroadcastKey::Event(b)) => a == b,
            (BroadcastKey::Refute(a), BroadcastKey::Refute(b)) => a == b,
            _ => false,
        }
    }
}

/// A custom broadcast that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("gossip: undecodable broadcast: {0}")]
pub struct BroadcastError(#[from] postcard::Error);

/// foca's hook: decode, apply to the shared state, and say whether to keep spreading it.
pub struct Handler {
    pub state: Arc<Mutex<State>>,
}

impl BroadcastHandler<NodeId> for Handler {
    type Key = BroadcastKey;
    type Error = BroadcastError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<BroadcastKey>, BroadcastError> {
        let msg: Broadcast = postcard::from_bytes(data)?;
        let mut state = self.state.lock().expect("gossip state lock");
        let news = match &msg {
            Broadcast::Meta(m) => state.apply_meta(m.clone()),
            Broadcast::Leave(l) => state.apply_leave(l),
            Broadcast::Event(e) => state.apply_event(e),
            Broadcast::Refute(r) => state.apply_refute(r),
        };
        Ok(news.then(|| msg.key()))
    }
}
