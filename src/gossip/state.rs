//! The serf layer's view of the pool: the member table with serf's statuses, member tags,
//! leave intents, the user-event Lamport clock and deduplication, and the events handed to
//! subscribers.
//!
//! foca only says "up", "down" and "renamed" about identities. This table turns that into
//! serf's lifecycle: a member becomes visible (and `MemberJoin` fires) once both foca says
//! it is up and its tags are known; down after a leave intent is `Left`, otherwise
//! `Failed`; `Failed` and `Left` members are reaped after `reconnect_timeout` and
//! `tombstone_timeout`.
//!
//! Name conflicts (a second live process claiming a known name from another address):
//! the member that held the name first keeps it, as a serf pool's majority vote would
//! normally decide. Every other member ignores the newcomer (it is remembered as a
//! "shadow" and takes over if the first one fails or leaves, like memberlist's reclaim of
//! a dead node's name). The newcomer notices that an older life of its name is alive
//! elsewhere, logs the conflict and stops gossiping, as serf's losing node shuts down.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::broadcast::{EventMsg, LeaveIntent, NodeMeta, Refute};
use super::member::{Member, MemberStatus, NodeId};
use super::{GossipEvent, UserEvent};

/// Recent user events kept for push-pull, so a member that missed them (partition, late
/// join) still gets them once. serf's `EventBuffer` default.
const RECENT_EVENTS: usize = 64;
/// How many event ids are remembered for deduplication.
const SEEN_EVENTS: usize = 8192;
/// Events this far behind our Lamport clock are ignored as too old (serf's event buffer
/// window): their ids may already have been forgotten.
const EVENT_WINDOW: u64 = 4096;

/// One other member.
#[derive(Debug, Clone)]
struct Entry {
    id: NodeId,
    status: MemberStatus,
    since: Instant,
    /// Tags known and `MemberJoin` delivered; invisible entries are not listed.
    visible: bool,
    /// The nonce of the `force-leave` that made this live member `Leaving`; its
    /// refutation makes it `Alive` again.
    forced_by: Option<u64>,
}

/// Shared between the foca broadcast handler and the engine; always locked after foca.
pub struct State {
    local: NodeId,
    start_generation: u64,
    self_status: MemberStatus,
    table: BTreeMap<String, Entry>,
    /// Live identities that claim a name already held by another live member.
    shadows: HashMap<String, NodeId>,
    metas: HashMap<String, NodeMeta>,
    leaves: HashMap<LeaveIntent, Instant>,
    /// Force-leaves their target refuted, by (name, nonce).
    refuted: HashMap<(String, u64), Instant>,
    /// Refutations of force-leaves aimed at this member, to be broadcast.
    pending_refutes: Vec<Refute>,
    seen_events: HashSet<u64>,
    seen_order: VecDeque<u64>,
    recent_events: VecDeque<EventMsg>,
    event_clock: u64,
    tx: broadcast::Sender<GossipEvent>,
    conflict: Option<String>,
}

impl State {
    pub fn new(local: NodeId, tx: broadcast::Sender<GossipEvent>) -> State {
        State {
            start_generation: local.generation,
            local,
            self_status: MemberStatus::Alive,
            table: BTreeMap::new(),
            shadows: HashMap::new(),
            metas: HashMap::new(),
            leaves: HashMap::new(),
            refuted: HashMap::new(),
            pending_refutes: Vec::new(),
            seen_events: HashSet::new(),
            seen_order: VecDeque::new(),
            recent_events: VecDeque::new(),
            event_clock: 0,
            tx,
            conflict: None,
        }
    }

    fn emit(&self, event: GossipEvent) {
        // No subscriber is fine: events are a notification, not a queue we must drain.
        let _ = self.tx.send(event);
    }

    fn tags_of(&self, name: &str) -> BTreeMap<String, String> {
        self.metas
            .get(name)
            .map(|m| m.tags.clone())
            .unwrap_or_default()
    }

    fn member_of(&self, name: &str, e: &Entry) -> Member {
        Member::new(name, e.id.addr, self.tags_of(name), e.status)
    }

    fn self_member(&self) -> Member {
        Member::new(
            &self.local.name,
            self.local.addr,
            self.tags_of(&self.local.name),
            self.self_status,
        )
    }

    pub fn local(&self) -> &NodeId {
        &self.local
    }

    pub fn set_local(&mut self, id: NodeId) {
        self.local = id;
    }

    pub fn set_self_status(&mut self, status: MemberStatus) {
        self.self_status = status;
    }

    /// Set once this member lost a name conflict; it stops gossiping.
    pub fn conflict(&self) -> Option<&str> {
        self.conflict.as_deref()
    }

    /// All visible members, self included, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .table
            .iter()
            .filter(|(_, e)| e.visible)
            .map(|(n, e)| self.member_of(n, e))
            .collect();
        out.push(self.self_member());
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Whether some visible member (self included) has the address `ip`.
    pub fn has_member_at(&self, ip: std::net::IpAddr) -> bool {
        self.local.addr.ip() == ip
            || self
                .table
                .values()
                .any(|e| e.visible && e.id.addr.ip() == ip)
    }

    /// The current identity and status of another member.
    pub fn lookup(&self, name: &str) -> Option<(NodeId, MemberStatus)> {
        self.table
            .get(name)
            .filter(|e| e.visible)
            .map(|e| (e.id.clone(), e.status))
    }

    /// Identities of the members we believe alive (not self).
    pub fn alive_ids(&self) -> Vec<NodeId> {
        self.table
            .values()
            .filter(|e| e.visible && e.status == MemberStatus::Alive)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Identities of the members we believe failed, to try reconnecting to.
    pub fn failed_ids(&self) -> Vec<NodeId> {
        self.table
            .values()
            .filter(|e| e.status == MemberStatus::Failed)
            .map(|e| e.id.clone())
            .collect()
    }

    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    /// The tags we currently advertise, with their version.
    pub fn self_meta(&self) -> Option<&NodeMeta> {
        self.metas.get(&self.local.name)
    }

    // ---- foca notifications -------------------------------------------------------------

    pub fn member_up(&mut self, id: NodeId) {
        let now = Instant::now();
        if id.name == self.local.name {
            if id.addr != self.local.addr
                && id.generation < self.start_generation
                && self.conflict.is_none()
            {
                let msg = format!(
                    "gossip: node name {:?} is already used by the member at {}; this member ({}) \
                     stops gossiping. Give every node a unique name (node_name).",
                    id.name, id.addr, self.local.addr
                );
                tracing::error!("{msg}");
                self.conflict = Some(msg);
            }
            return;
        }
        let visible = self.metas.contains_key(&id.name);
        let Some(e) = self.table.get_mut(&id.name) else {
            self.table.insert(
                id.name.clone(),
                Entry {
                    id: id.clone(),
                    status: MemberStatus::Alive,
                    since: now,
                    visible,
                    forced_by: None,
                },
            );
            if visible {
                let m = self.member_of(&id.name, &self.table[&id.name]);
                self.emit(GossipEvent::MemberJoin(m));
            }
            return;
        };
        let live = matches!(e.status, MemberStatus::Alive | MemberStatus::Leaving);
        if e.id == id {
            if !live {
                e.status = MemberStatus::Alive;
                e.forced_by = None;
                e.since = now;
                if e.visible {
                    let m = self.member_of(&id.name, &self.table[&id.name]);
                    self.emit(GossipEvent::MemberJoin(m));
                }
            }
            return;
        }
        let same_addr = e.id.addr == id.addr;
        if same_addr && id.generation < e.id.generation {
            return; // an older life of the member we already track
        }
        if same_addr || !live {
            // A restart (same address, newer life), or a new address taking over the name
            // of a member that failed or left.
            let addr_changed = e.id.addr != id.addr;
            e.id = id.clone();
            e.status = MemberStatus::Alive;
            e.forced_by = None;
            e.since = now;
            self.shadows.remove(&id.name);
            let e = &self.table[&id.name];
            if e.visible {
                let m = self.member_of(&id.name, e);
                if !live {
                    self.emit(GossipEvent::MemberJoin(m));
                } else if addr_changed {
                    self.emit(GossipEvent::MemberUpdate(m));
                }
            }
        } else {
            tracing::warn!(
                node = %id.name,
                known = %e.id.addr,
                claimant = %id.addr,
                "gossip: name conflict: a second member claims this node name; keeping the first"
            );
            self.shadows.insert(id.name.clone(), id);
        }
    }

    pub fn member_down(&mut self, id: &NodeId) {
        if self.shadows.get(&id.name) == Some(id) {
            self.shadows.remove(&id.name);
            return;
        }
        let Some(e) = self.table.get_mut(&id.name) else {
            return;
        };
        if e.id != *id {
            return;
        }
        let event = match e.status {
            MemberStatus::Leaving => {
                e.status = MemberStatus::Left;
                e.since = Instant::now();
                Some(GossipEvent::MemberLeave as fn(Member) -> GossipEvent)
            }
            MemberStatus::Alive => {
                e.status = MemberStatus::Failed;
                e.since = Instant::now();
                Some(GossipEvent::MemberFailed as fn(Member) -> GossipEvent)
            }
            MemberStatus::Left | MemberStatus::Failed => None,
        };
        let e = &self.table[&id.name];
        if let (Some(make), true) = (event, e.visible) {
            self.emit(make(self.member_of(&id.name, e)));
        }
        // The first holder of the name is gone: a waiting claimant takes over.
        if let Some(shadow) = self.shadows.remove(&id.name) {
            self.member_up(shadow);
        }
    }

    pub fn rename(&mut self, old: &NodeId, new: NodeId) {
        if let Some(e) = self.table.get_mut(&old.name)
            && e.id == *old
        {
            e.id = new;
        } else if self.shadows.get(&old.name) == Some(old) {
            self.shadows.insert(new.name.clone(), new);
        }
    }

    // ---- serf messages (broadcasts and push-pull) --------------------------------------

    /// Applies a member's tags; true when they were news.
    pub fn apply_meta(&mut self, meta: NodeMeta) -> bool {
        if let Some(cur) = self.metas.get(&meta.name)
            && cur.version >= meta.version
        {
            return false;
        }
        if meta.name == self.local.name && meta.addr != self.local.addr {
            return false; // about our name, but from a conflicting claimant
        }
        if let Some(e) = self.table.get(&meta.name)
            && matches!(e.status, MemberStatus::Alive | MemberStatus::Leaving)
            && e.id.addr != meta.addr
        {
            return false; // from a claimant the table ignores
        }
        let name = meta.name.clone();
        let previous = self.metas.insert(name.clone(), meta);
        let tags_changed = previous.as_ref().map(|p| &p.tags) != Some(&self.metas[&name].tags);
        if name == self.local.name {
            if previous.is_some() && tags_changed {
                self.emit(GossipEvent::MemberUpdate(self.self_member()));
            }
            return true;
        }
        if let Some(e) = self.table.get_mut(&name) {
            if !e.visible {
                e.visible = true;
                let e = &self.table[&name];
                if matches!(e.status, MemberStatus::Alive | MemberStatus::Leaving) {
                    self.emit(GossipEvent::MemberJoin(self.member_of(&name, e)));
                }
            } else if tags_changed {
                let e = &self.table[&name];
                self.emit(GossipEvent::MemberUpdate(self.member_of(&name, e)));
            }
        }
        true
    }

    /// Applies a leave intent; true when it was news. As in serf, a graceful leave and a
    /// force-leave alike mark a live member `Leaving` (it becomes `Left` once it goes down)
    /// and a failed one `Left`; a force-leave aimed at this member while it runs is
    /// refuted ([`State::take_refutes`]). With `prune`, a forced intent also drops a member
    /// that is leaving or left from the table at once.
    pub fn apply_leave(&mut self, intent: &LeaveIntent) -> bool {
        if self.leaves.contains_key(intent) {
            return false;
        }
        self.leaves.insert(intent.clone(), Instant::now());
        if intent.name == self.local.name {
            // Our own graceful leave is already applied locally.
            if intent.forced && self.self_status == MemberStatus::Alive {
                tracing::debug!("gossip: refuting a force-leave aimed at this member");
                self.pending_refutes.push(Refute {
                    name: intent.name.clone(),
                    generation: self.local.generation,
                    nonce: intent.nonce,
                });
            }
            return true;
        }
        if self
            .refuted
            .contains_key(&(intent.name.clone(), intent.nonce))
        {
            return true; // its target answered it already
        }
        let Some(e) = self.table.get_mut(&intent.name) else {
            return true;
        };
        if e.id.generation > intent.generation {
            return true; // meant for an earlier life of the member
        }
        let mut event = None;
        match e.status {
            MemberStatus::Alive => {
                e.status = MemberStatus::Leaving;
                e.forced_by = intent.forced.then_some(intent.nonce);
            }
            MemberStatus::Failed => {
                e.status = MemberStatus::Left;
                e.since = Instant::now();
                event = Some(GossipEvent::MemberLeave as fn(Member) -> GossipEvent);
            }
            MemberStatus::Leaving | MemberStatus::Left => {}
        }
        let e = &self.table[&intent.name];
        let visible = e.visible;
        if let (Some(make), true) = (event, visible) {
            self.emit(make(self.member_of(&intent.name, e)));
        }
        if intent.forced
            && intent.prune
            && matches!(e.status, MemberStatus::Left | MemberStatus::Leaving)
        {
            let e = self
                .table
                .remove(&intent.name)
                .expect("entry checked above");
            if visible {
                self.emit(GossipEvent::MemberReap(self.member_of(&intent.name, &e)));
            }
            self.metas.remove(&intent.name);
        }
        true
    }

    /// Applies a member's refutation of a force-leave; true when it was news.
    pub fn apply_refute(&mut self, r: &Refute) -> bool {
        let key = (r.name.clone(), r.nonce);
        if self.refuted.contains_key(&key) {
            return false;
        }
        self.refuted.insert(key, Instant::now());
        if let Some(e) = self.table.get_mut(&r.name)
            && e.status == MemberStatus::Leaving
            && e.forced_by == Some(r.nonce)
            && e.id.generation == r.generation
        {
            e.status = MemberStatus::Alive;
            e.forced_by = None;
        }
        true
    }

    /// Refutations this member owes the pool, oldest first.
    pub fn take_refutes(&mut self) -> Vec<Refute> {
        std::mem::take(&mut self.pending_refutes)
    }

    /// Applies a user event; true when it was news (and was delivered to subscribers).
    pub fn apply_event(&mut self, ev: &EventMsg) -> bool {
        if self.seen_events.contains(&ev.id) {
            return false;
        }
        if ev.ltime + EVENT_WINDOW < self.event_clock {
            tracing::debug!(name = %ev.name, ltime = ev.ltime, "gossip: ignoring user event older than the event window");
            return false;
        }
        self.seen_events.insert(ev.id);
        self.seen_order.push_back(ev.id);
        if self.seen_order.len() > SEEN_EVENTS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen_events.remove(&old);
        }
        self.event_clock = self.event_clock.max(ev.ltime + 1);
        self.recent_events.push_back(ev.clone());
        if self.recent_events.len() > RECENT_EVENTS {
            self.recent_events.pop_front();
        }
        self.emit(GossipEvent::UserEvent(UserEvent {
            ltime: ev.ltime,
            name: ev.name.clone(),
            payload: ev.payload.clone(),
            coalesce: ev.coalesce,
            origin: ev.origin.clone(),
        }));
        true
    }

    /// The Lamport time for a new event fired here (serf: take the time, then tick).
    pub fn next_event_ltime(&mut self) -> u64 {
        let t = self.event_clock;
        self.event_clock += 1;
        t
    }

    /// A remote member's event clock, learned by push-pull.
    pub fn witness_event_clock(&mut self, t: u64) {
        self.event_clock = self.event_clock.max(t);
    }

    pub fn event_clock(&self) -> u64 {
        self.event_clock
    }

    // ---- push-pull snapshot ------------------------------------------------------------

    pub fn metas(&self) -> Vec<NodeMeta> {
        self.metas.values().cloned().collect()
    }

    pub fn leaves(&self) -> Vec<LeaveIntent> {
        self.leaves.keys().cloned().collect()
    }

    pub fn recent_events(&self) -> Vec<EventMsg> {
        self.recent_events.iter().cloned().collect()
    }

    // ---- reaping -----------------------------------------------------------------------

    /// Drops failed and left members whose timeout ran out, and old leave intents.
    pub fn reap(&mut self, reconnect_timeout: Duration, tombstone_timeout: Duration) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .table
            .iter()
            .filter(|(_, e)| match e.status {
                MemberStatus::Failed => now.duration_since(e.since) >= reconnect_timeout,
                MemberStatus::Left => now.duration_since(e.since) >= tombstone_timeout,
                MemberStatus::Alive | MemberStatus::Leaving => false,
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            let e = self.table.remove(&name).expect("name listed above");
            tracing::info!(node = %name, status = e.status.as_str(), "gossip: reaping member");
            if e.visible {
                self.emit(GossipEvent::MemberReap(self.member_of(&name, &e)));
            }
            // Forget its tags too, or churn of node names would grow this map forever.
            self.metas.remove(&name);
        }
        let keep = tombstone_timeout.max(Duration::from_secs(60));
        self.leaves.retain(|_, at| now.duration_since(*at) < keep);
        self.refuted.retain(|_, at| now.duration_since(*at) < keep);
    }
}
