//! The engine that drives foca: the UDP socket (SWIM packets), foca's timers, the TCP
//! channel (join and periodic push-pull state sync, keyring requests), the reconnect
//! loop that heals partitions, and the reaper.
//!
//! Locking: `foca` is always taken before `state` (the broadcast handler locks `state`
//! from inside foca calls), never the other way round. Everything foca asks for (packets,
//! timers, notifications) is carried out while its lock is held, so notifications reach
//! the member table in the order foca produced them.

use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use foca::{Foca, Notification, OwnedNotification, PeriodicParams, PostcardCodec, Runtime, Timer};
use rand::seq::IndexedRandom;
use rand_foca::SeedableRng;
use rand_foca::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::GossipEvent;
use super::broadcast::{Broadcast, EventMsg, Handler, LeaveIntent, NodeMeta};
use super::config::GossipConfig;
use super::crypto::Keyring;
use super::keyring::{KeyOp, NodeKeyResponse};
use super::member::NodeId;
use super::state::State;

type FocaT = Foca<NodeId, PostcardCodec, SmallRng, Handler>;

/// Largest SWIM packet foca builds; with the 29-byte encryption envelope it stays below a
/// 1500-byte Ethernet MTU, so datagrams are never fragmented.
pub const MAX_PACKET: usize = 1400;
/// Largest TCP frame accepted (a push-pull of a few thousand members fits easily).
const MAX_FRAME: usize = 32 << 20;

/// Messages on the TCP channel, each in one encrypted frame.
#[derive(Debug, Serialize, Deserialize)]
pub enum StreamMsg {
    PushPull(Box<PushPull>),
    Key(KeyOp),
    KeyResp(NodeKeyResponse),
}

/// A full state exchange (memberlist's push-pull plus serf's part of it).
#[derive(Debug, Serialize, Deserialize)]
pub struct PushPull {
    pub from: NodeId,
    pub members: Vec<foca::Member<NodeId>>,
    pub metas: Vec<NodeMeta>,
    pub leaves: Vec<LeaveIntent>,
    pub event_clock: u64,
    pub events: Vec<EventMsg>,
}

/// The shared core behind every `Gossip` handle.
pub struct Inner {
    pub cfg: GossipConfig,
    me: Weak<Inner>,
    foca: Mutex<FocaT>,
    pub state: Arc<Mutex<State>>,
    pub keyring: RwLock<Keyring>,
    socket: RwLock<Option<Arc<UdpSocket>>>,
    pub local_addr: SocketAddr,
    handle: tokio::runtime::Handle,
    pub cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set after `leave`, after losing a name conflict, and at shutdown: no more traffic.
    pub stopped: AtomicBool,
    conflict_handled: AtomicBool,
    /// Test hook: drop all traffic in and out, as a network partition would.
    pub partitioned: AtomicBool,
    pub tx: broadcast::Sender<GossipEvent>,
}

/// foca's window on the world while one foca call runs.
pub struct Effects<'a> {
    inner: &'a Inner,
    notes: Vec<OwnedNotification<NodeId>>,
}

impl Runtime<NodeId> for Effects<'_> {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        self.inner.send_udp(to.addr, data);
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        self.inner.schedule(event, after);
    }
}

fn foca_config(cfg: &GossipConfig) -> foca::Config {
    let nz = |n: usize| NonZeroUsize::new(n.max(1)).expect("at least one");
    foca::Config {
        probe_period: cfg.probe_interval,
        probe_rtt: cfg.probe_timeout,
        num_indirect_probes: nz(cfg.indirect_checks),
        max_transmissions: NonZeroU8::new(cfg.retransmit.max(1)).expect("at least one"),
        suspect_to_down_after: cfg.suspicion_timeout,
        // foca keeps down identities (and keeps announcing to them) for as long as the
        // member table may still list them.
        remove_down_after: Some(cfg.reconnect_timeout.max(cfg.tombstone_timeout)),
        max_packet_size: nz(MAX_PACKET),
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: cfg.push_pull_interval,
            num_members: nz(1),
        }),
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: cfg.reconnect_interval,
            num_members: nz(1),
        }),
        periodic_gossip: Some(PeriodicParams {
            frequency: cfg.gossip_interval,
            num_members: nz(cfg.gossip_nodes),
        }),
    }
}

/// Binds UDP and TCP on the same port. With port 0 a free port is searched for, since the
/// one the kernel gives the UDP socket may be taken for TCP.
async fn bind_pair(bind: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    if bind.port() != 0 {
        let udp = UdpSocket::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("gossip: cannot bind UDP {bind}: {e}"))?;
        let tcp = TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("gossip: cannot bind TCP {bind}: {e}"))?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("gossip: cannot bind UDP {bind}: {e}"))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(bind.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    anyhow::bail!(
        "gossip: no free port with both UDP and TCP on {}: {}",
        bind.ip(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

impl Inner {
    /// Binds the sockets, builds foca and starts the background tasks.
    pub async fn start(cfg: GossipConfig, keyring: Keyring) -> anyhow::Result<Arc<Inner>> {
        let (udp, tcp) = bind_pair(cfg.bind).await?;
        let bound = udp.local_addr()?;
        let mut advertise = cfg.advertise.unwrap_or(bound);
        if advertise.ip().is_unspecified() {
            if bound.ip().is_unspecified() {
                anyhow::bail!(
                    "gossip: bound to {bound}; set an advertise address other members can reach"
                );
            }
            advertise.set_ip(bound.ip());
        }
        if advertise.port() == 0 {
            advertise.set_port(bound.port());
        }
        let generation = now_millis();
        let id = NodeId {
            name: cfg.node_name.clone(),
            addr: advertise,
            generation,
        };
        let (tx, _) = broadcast::channel(cfg.event_buffer.max(16));
        let state = Arc::new(Mutex::new(State::new(id.clone(), tx.clone())));
        let foca = Foca::with_custom_broadcast(
            id,
            foca_config(&cfg),
            SmallRng::seed_from_u64(rand::random()),
            PostcardCodec,
            Handler {
                state: state.clone(),
            },
        );
        let tags = cfg.tags.clone();
        let inner = Arc::new_cyclic(|me| Inner {
            cfg,
            me: me.clone(),
            foca: Mutex::new(foca),
            state,
            keyring: RwLock::new(keyring),
            socket: RwLock::new(None),
            local_addr: advertise,
            handle: tokio::runtime::Handle::current(),
            cancel: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            conflict_handled: AtomicBool::new(false),
            partitioned: AtomicBool::new(false),
            tx,
        });
        let meta = NodeMeta {
            name: inner.cfg.node_name.clone(),
            addr: advertise,
            version: generation,
            tags,
        };
        // Queued for dissemination; the handler also records it as our own tags.
        inner
            .with_foca(|f, _| f.add_broadcast(&super::broadcast::Broadcast::Meta(meta).encode()))
            .map_err(|e| anyhow::anyhow!("gossip: cannot queue our tags: {e}"))?;

        let udp = Arc::new(udp);
        *inner.socket.write().expect("socket lock") = Some(udp.clone());
        let tasks = vec![
            tokio::spawn(udp_loop(inner.clone(), udp)),
            tokio::spawn(tcp_loop(inner.clone(), tcp)),
            tokio::spawn(periodic_sync(
                inner.clone(),
                inner.cfg.push_pull_interval,
                State::alive_ids,
            )),
            tokio::spawn(periodic_sync(
                inner.clone(),
                inner.cfg.reconnect_interval,
                State::failed_ids,
            )),
            tokio::spawn(reap_loop(inner.clone())),
        ];
        *inner.tasks.lock().expect("tasks lock") = tasks;
        tracing::info!(node = %inner.cfg.node_name, addr = %advertise, encrypted = inner.keyring.read().expect("keyring lock").enabled(), "gossip: started");
        Ok(inner)
    }

    /// Runs one foca call and carries out what it asked for.
    pub fn with_foca<R>(
        &self,
        f: impl FnOnce(&mut FocaT, &mut Effects<'_>) -> Result<R, foca::Error>,
    ) -> Result<R, foca::Error> {
        let mut foca = self.foca.lock().expect("foca lock");
        let mut fx = Effects {
            inner: self,
            notes: Vec::new(),
        };
        let out = f(&mut foca, &mut fx);
        let notes = std::mem::take(&mut fx.notes);
        self.apply_notes(&mut foca, notes);
        // Force-leaves aimed at us that the call brought in: answer them. foca
        // spreads the refutations with its next rounds.
        let refutes = self.state.lock().expect("state lock").take_refutes();
        for r in refutes {
            if let Err(e) = foca.add_broadcast(&Broadcast::Refute(r).encode()) {
                tracing::warn!(error = %e, "gossip: cannot broadcast a refutation");
            }
        }
        out
    }

    fn apply_notes(&self, foca: &mut FocaT, notes: Vec<OwnedNotification<NodeId>>) {
        if notes.is_empty() {
            return;
        }
        let mut state = self.state.lock().expect("state lock");
        for note in notes {
            match note {
                OwnedNotification::MemberUp(id) => state.member_up(id),
                OwnedNotification::MemberDown(id) => state.member_down(&id),
                OwnedNotification::Rename(old, new) => state.rename(&old, new),
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(
                        generation = id.generation,
                        "gossip: the pool declared this member down; rejoined under a new generation"
                    );
                    state.set_local(id);
                }
                OwnedNotification::Defunct => {
                    if !self.stopped.load(Ordering::SeqCst) {
                        tracing::warn!(
                            "gossip: this member was declared down and could not rejoin"
                        );
                    }
                }
                OwnedNotification::Active => tracing::debug!("gossip: connected to the pool"),
                OwnedNotification::Idle => {
                    tracing::debug!("gossip: no other live member known")
                }
            }
        }
        let lost_conflict = state.conflict().is_some();
        drop(state);
        if lost_conflict && !self.conflict_handled.swap(true, Ordering::SeqCst) {
            // Tell the pool our identity is gone, then fall silent (serf shuts down).
            let mut fx = Effects {
                inner: self,
                notes: Vec::new(),
            };
            let _ = foca.leave_cluster(&mut fx);
            self.stopped.store(true, Ordering::SeqCst);
        }
    }

    fn send_udp(&self, to: SocketAddr, data: &[u8]) {
        if self.stopped.load(Ordering::SeqCst) || self.partitioned.load(Ordering::SeqCst) {
            return;
        }
        let Some(socket) = self.socket.read().expect("socket lock").clone() else {
            return;
        };
        let packet = self.keyring.read().expect("keyring lock").seal(data);
        if let Err(e) = socket.try_send_to(&packet, to) {
            tracing::debug!(%to, error = %e, "gossip: UDP send failed");
        }
    }

    fn schedule(&self, event: Timer<NodeId>, after: Duration) {
        let me = self.me.clone();
        let cancel = self.cancel.clone();
        self.handle.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(after) => {
                    if let Some(inner) = me.upgrade() {
                        inner.fire_timer(event);
                    }
                }
            }
        });
    }

    fn fire_timer(&self, event: Timer<NodeId>) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.with_foca(|f, fx| f.handle_timer(event, fx)) {
            tracing::debug!(error = %e, "gossip: timer");
        }
    }

    fn handle_packet(&self, packet: &[u8], from: SocketAddr) {
        if self.stopped.load(Ordering::SeqCst) || self.partitioned.load(Ordering::SeqCst) {
            return;
        }
        let body = match self.keyring.read().expect("keyring lock").open(packet) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%from, error = %e, "gossip: dropped UDP packet");
                return;
            }
        };
        if let Err(e) = self.with_foca(|f, fx| f.handle_data(&body, fx)) {
            tracing::debug!(%from, error = %e, "gossip: packet not applied");
        }
    }

    /// Our full state for a push-pull.
    pub fn local_push_pull(&self) -> PushPull {
        let foca = self.foca.lock().expect("foca lock");
        let from = foca.identity().clone();
        let members = foca.iter_membership_state().cloned().collect();
        drop(foca);
        let state = self.state.lock().expect("state lock");
        PushPull {
            from,
            members,
            metas: state.metas(),
            leaves: state.leaves(),
            event_clock: state.event_clock(),
            events: state.recent_events(),
        }
    }

    /// Merges a remote member's state into ours.
    pub fn merge_push_pull(&self, remote: PushPull) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let res = self.with_foca(|f, fx| {
            {
                // Tags first, so the joins foca reports below already carry them.
                let mut state = self.state.lock().expect("state lock");
                for meta in remote.metas {
                    state.apply_meta(meta);
                }
                state.witness_event_clock(remote.event_clock);
                for ev in &remote.events {
                    state.apply_event(ev);
                }
            }
            // The sender first: our view of it may need to be revived before the rest.
            let mut members = vec![foca::Member::alive(remote.from.clone())];
            members.extend(remote.members);
            f.apply_many(members.into_iter(), true, &mut *fx)?;
            let mut state = self.state.lock().expect("state lock");
            for leave in &remote.leaves {
                state.apply_leave(leave);
            }
            Ok(())
        });
        if let Err(e) = res {
            tracing::debug!(error = %e, "gossip: push-pull state not fully applied");
        }
    }

    /// Sends an announce to a member we just learned about, to get a UDP feed back.
    pub fn announce(&self, to: NodeId) {
        if let Err(e) = self.with_foca(|f, fx| f.announce(to, fx)) {
            tracing::debug!(error = %e, "gossip: announce");
        }
    }

    /// One request/response on the TCP channel.
    pub async fn exchange(&self, to: SocketAddr, msg: &StreamMsg) -> Result<StreamMsg, String> {
        if self.partitioned.load(Ordering::SeqCst) {
            return Err("network unreachable (partitioned)".into());
        }
        let body = postcard::to_stdvec(msg).map_err(|e| e.to_string())?;
        let frame = self.keyring.read().expect("keyring lock").seal(&body);
        let io = async {
            let mut stream = TcpStream::connect(to).await.map_err(|e| e.to_string())?;
            write_frame(&mut stream, &frame).await?;
            read_frame(&mut stream).await.map_err(|e| {
                if e.contains("early eof") || e.contains("closed") {
                    format!("{e} (the remote member refused the request: wrong or missing encryption key?)")
                } else {
                    e
                }
            })
        };
        let reply = tokio::time::timeout(self.cfg.tcp_timeout, io)
            .await
            .map_err(|_| format!("i/o timeout after {:?}", self.cfg.tcp_timeout))??;
        let body = self
            .keyring
            .read()
            .expect("keyring lock")
            .open(&reply)
            .map_err(|e| e.to_string())?;
        postcard::from_bytes(&body).map_err(|e| format!("undecodable reply: {e}"))
    }

    /// Stops every task and closes the sockets.
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        *self.socket.write().expect("socket lock") = None;
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> Result<(), String> {
    let len = u32::try_from(frame.len()).map_err(|_| "frame too large".to_string())?;
    stream
        .write_all(&len.to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(frame).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

async fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("connection closed: {e}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        ));
    }
    let mut buf = vec![0u8; len];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("connection closed: {e}"))?;
    Ok(buf)
}

async fn udp_loop(inner: Arc<Inner>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => inner.handle_packet(&buf[..n], from),
                Err(e) => tracing::debug!(error = %e, "gossip: UDP receive failed"),
            }
        }
    }
}

async fn tcp_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, from)) => {
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let timeout = inner.cfg.tcp_timeout;
                        let cancel = inner.cancel.clone();
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            r = tokio::time::timeout(timeout, serve_conn(&inner, stream)) => match r {
                                Ok(Err(e)) => tracing::warn!(%from, error = %e, "gossip: TCP request refused"),
                                Err(_) => tracing::debug!(%from, "gossip: TCP request timed out"),
                                Ok(Ok(())) => {}
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "gossip: TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn serve_conn(inner: &Arc<Inner>, mut stream: TcpStream) -> Result<(), String> {
    if inner.partitioned.load(Ordering::SeqCst) || inner.stopped.load(Ordering::SeqCst) {
        return Ok(()); // dropping the connection is what an unreachable member looks like
    }
    let frame = read_frame(&mut stream).await?;
    let body = inner
        .keyring
        .read()
        .expect("keyring lock")
        .open(&frame)
        .map_err(|e| e.to_string())?;
    let request: StreamMsg =
        postcard::from_bytes(&body).map_err(|e| format!("undecodable request: {e}"))?;
    let reply = match request {
        StreamMsg::PushPull(remote) => {
            // Merge first: if the remote thinks we are down we renew, and the reply must
            // carry the renewed identity.
            inner.merge_push_pull(*remote);
            StreamMsg::PushPull(Box::new(inner.local_push_pull()))
        }
        StreamMsg::Key(op) => {
            let mut ring = inner.keyring.write().expect("keyring lock");
            let resp = super::keyring::apply_op(&mut ring, &op, inner.cfg.keyring_file.as_deref());
            StreamMsg::KeyResp(resp)
        }
        StreamMsg::KeyResp(_) => return Err("unexpected keyring response as a request".into()),
    };
    let body = postcard::to_stdvec(&reply).map_err(|e| e.to_string())?;
    let frame = inner.keyring.read().expect("keyring lock").seal(&body);
    write_frame(&mut stream, &frame).await
}

/// Every `interval`, a full state exchange (push-pull) with one random member that
/// `pick` offers. With live members this is anti-entropy (tags, leave intents and
/// events a member missed); with failed ones it is serf's reconnect, which heals
/// partitions (foca's own announce-to-down only runs while some member is reachable).
async fn periodic_sync(inner: Arc<Inner>, interval: Duration, pick: fn(&State) -> Vec<NodeId>) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if inner.stopped.load(Ordering::SeqCst) {
            continue;
        }
        let target = {
            let state = inner.state.lock().expect("state lock");
            pick(&state).choose(&mut rand::rng()).cloned()
        };
        if let Some(target) = target {
            sync_with(&inner, target.addr).await;
        }
    }
}

/// One push-pull; failures are expected (the member may be down) and only logged.
pub async fn sync_with(inner: &Arc<Inner>, addr: SocketAddr) -> Option<NodeId> {
    let request = StreamMsg::PushPull(Box::new(inner.local_push_pull()));
    match inner.exchange(addr, &request).await {
        Ok(StreamMsg::PushPull(remote)) => {
            let from = remote.from.clone();
            inner.merge_push_pull(*remote);
            Some(from)
        }
        Ok(_) => {
            tracing::debug!(%addr, "gossip: push-pull answered with the wrong message");
            None
        }
        Err(e) => {
            tracing::debug!(%addr, error = %e, "gossip: push-pull failed");
            None
        }
    }
}

async fn reap_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.reap_interval);
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        inner
            .state
            .lock()
            .expect("state lock")
            .reap(inner.cfg.reconnect_timeout, inner.cfg.tombstone_timeout);
    }
}
