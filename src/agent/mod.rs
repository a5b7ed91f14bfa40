//! The agent: owns the configuration, the state store, consensus and the listeners,
//! and runs the leader's duties. Every HTTP handler reaches the rest of concord
//! through [`Agent`].

pub mod alias;
pub mod autopilot;
pub mod checks;
pub mod cluster;
pub mod definition;
pub mod events;
pub mod http;
pub mod leader;
pub mod local;
pub mod maintenance;
pub mod metrics;
pub mod monitor;
pub mod persist;
pub mod scratch;
pub mod session_ttl;
pub mod stats;
pub mod sync;
pub mod wan;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::acl::{Access, Authorizer};
use crate::config::{AgentFlags, RuntimeConfig};
use crate::http::error::ApiError;
use crate::raft::{Consensus, ServerNode};
use crate::state::Store;

/// The Consul version concord answers as (the API surface it matches).
pub const CONSUL_VERSION: &str = "1.22.6";
/// concord's own version.
pub const CONCORD_VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Agent {
    pub config: RuntimeConfig,
    pub store: Arc<Store>,
    pub consensus: Consensus,
    pub authorizer: Authorizer,
    pub session_timers: session_ttl::SessionTimers,
    /// Services and checks registered with this agent.
    pub local: local::LocalState,
    /// Connect leaf certificates issued by this agent.
    pub leaf_cache: crate::connect::http::LeafCache,
    /// Autopilot's memory of server health (when each last changed).
    pub autopilot: autopilot::Autopilot,
    /// Freshness bookkeeping for `?cached` reads.
    pub http_cache: crate::http::cache::AgentCache,
    /// Rendered answers shared by concurrent identical reads.
    pub shared_answers: crate::http::shared::SharedAnswers,
    /// Decoded service instances shared by DNS lookups of one snapshot.
    pub dns_instances:
        crate::http::shared::SharedAnswers<Arc<Vec<crate::structs::CheckServiceNode>>>,
    /// Recent user events.
    pub events: events::EventLog,
    /// Serialises anti-entropy passes.
    pub sync_lock: tokio::sync::Mutex<u64>,
    /// This agent's LAN gossip member (`None` with `ports.serf_lan = -1`).
    pub gossip: Option<crate::gossip::Gossip>,
    /// This server's WAN gossip member (`None` on client agents and with
    /// `ports.serf_wan = -1`).
    pub wan: Option<crate::gossip::Gossip>,
    /// The command line, kept for `reload`.
    pub flags: AgentFlags,
    pub shutdown: CancellationToken,
    /// The address other agents reach this one on (advertise, else bind).
    pub advertise: IpAddr,
    /// Removed at exit (`-dev` keeps its data in a scratch directory).
    scratch: Option<scratch::Scratch>,
    /// Why the agent stopped by itself, if it did ([`Agent::fail`]).
    failure: std::sync::Mutex<Option<String>>,
}

impl Agent {
    pub fn node_name(&self) -> &str {
        &self.config.node_name
    }

    pub fn node_id(&self) -> &str {
        self.config.node_id.as_deref().unwrap_or_default()
    }

    /// The one authorization hook every handler calls.
    pub fn authorize(&self, token: &str, access: Access<'_>) -> Result<(), ApiError> {
        self.authorizer
            .check(token, access)
            .map_err(|e| ApiError::new(axum::http::StatusCode::FORBIDDEN, e.to_string()))
    }

    pub fn server_rpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.advertise, self.config.ports.server.max(0) as u16)
    }

    pub fn serf_lan_addr(&self) -> SocketAddr {
        SocketAddr::new(self.advertise, self.config.ports.serf_lan.max(0) as u16)
    }

    /// Stops the agent because of `reason` (logged, and the process exits 1), as
    /// Consul's stops when `retry_join` runs out of retries.
    pub fn fail(&self, reason: String) {
        tracing::error!("{reason}");
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(reason);
        self.shutdown.cancel();
    }
}

/// Picks the address to advertise: `advertise_addr`, else the bind address, else
/// (bind 0.0.0.0) loopback's stand-in, the first private address we can find.
fn advertise_addr(config: &RuntimeConfig) -> IpAddr {
    if let Some(a) = config.advertise_addr {
        return a;
    }
    if !config.bind_addr.is_unspecified() {
        return config.bind_addr;
    }
    // Ask the kernel which source address it would use; no packet is sent.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Starts everything the configuration asks for and runs until SIGINT/SIGTERM.
pub async fn run(flags: AgentFlags, config: RuntimeConfig) -> anyhow::Result<()> {
    // Taken over first, so a SIGHUP while the agent starts does not end it.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("handling SIGHUP")?;
    let shutdown = CancellationToken::new();
    let (root, durable, scratch) = match (&config.data_dir, config.dev) {
        (Some(dir), false) => (dir.clone(), true, None),
        (Some(dir), true) => (dir.clone(), false, None),
        (None, _) => {
            let scratch =
                scratch::Scratch::create().context("creating the -dev scratch directory")?;
            (scratch.dir.clone(), false, Some(scratch))
        }
    };
    let store = Arc::new(
        Store::open(&root.join("state"), durable)
            .with_context(|| format!("opening the state store in {}", root.display()))?,
    );
    let advertise = advertise_addr(&config);
    let me_id = config.node_id.clone().unwrap_or_default();
    let me = ServerNode {
        addr: SocketAddr::new(advertise, config.ports.server.max(0) as u16).to_string(),
        name: config.node_name.clone(),
        node_id: config.node_id.clone().unwrap_or_default(),
    };
    let bootstrap = config.dev || config.bootstrap || config.bootstrap_expect == 1;
    let consensus = Consensus::start(
        &root.join("raft"),
        durable,
        store.clone(),
        me,
        config.server,
        bootstrap && config.server,
        config.rpc_hold_timeout,
        crate::raft::SnapshotSettings {
            threshold: config.raft_snapshot_threshold,
            trailing_logs: config.raft_trailing_logs,
        },
        crate::raft::RaftTimings::scaled(config.raft_multiplier),
    )
    .await
    .context("starting raft")?;

    let gossip = cluster::start_lan(
        &config,
        &me_id,
        advertise,
        (!config.dev).then_some(root.as_path()),
    )
    .await
    .context("starting gossip")?;
    let wan = wan::start(
        &config,
        &me_id,
        advertise,
        (!config.dev).then_some(root.as_path()),
    )
    .await
    .context("starting WAN gossip")?;

    // Only an agent given a data directory keeps its registrations.
    let disk = persist::Persistence::new(config.data_dir.as_deref());
    let agent = Arc::new(Agent {
        gossip,
        wan,
        authorizer: Authorizer {
            enabled: config.acl.enabled,
        },
        config,
        store,
        consensus,
        session_timers: session_ttl::SessionTimers::default(),
        local: local::LocalState::new(disk),
        leaf_cache: Default::default(),
        autopilot: Default::default(),
        http_cache: Default::default(),
        shared_answers: Default::default(),
        dns_instances: Default::default(),
        events: Default::default(),
        sync_lock: tokio::sync::Mutex::new(0),
        flags,
        shutdown: shutdown.clone(),
        advertise,
        scratch,
        failure: Default::default(),
    });

    agent.local.attach(&agent);
    let (services, checks) = (agent.config.services.clone(), agent.config.checks.clone());
    register_from_config(&agent, &services, &checks)?;
    agent.local.restore(&agent);

    let mut servers = Vec::new();
    servers.extend(listen_http(&agent).await?);
    servers.extend(listen_https(&agent).await?);
    listen_rpc(&agent).await?;
    servers.extend(crate::dns::listen(&agent).await?);
    tokio::spawn(leader::run(agent.clone()));
    tokio::spawn(session_ttl::run(agent.clone()));
    tokio::spawn(sweep_watches(agent.clone()));
    tokio::spawn(sync::run(agent.clone()));
    tokio::spawn(cluster::run(agent.clone()));
    tokio::spawn(wan::run(agent.clone()));
    tracing::info!(
        node = %agent.node_name(),
        datacenter = %agent.config.datacenter,
        server = agent.config.server,
        "concord agent running"
    );

    let signalled = tokio::select! {
        _ = wait_for_signal(&agent, hangup) => { tracing::info!("caught signal, shutting down"); true }
        _ = shutdown.cancelled() => { tracing::info!("leaving, shutting down"); false }
    };
    // Client agents leave the pool gracefully on a signal (Consul's defaults
    // `leave_on_terminate` and `skip_leave_on_interrupt`); servers just stop, and
    // `/v1/agent/leave` has left already.
    if let Some(gossip) = &agent.gossip {
        if signalled && !agent.config.server {
            let _ = tokio::time::timeout(Duration::from_secs(3), gossip.leave()).await;
        }
        gossip.shutdown().await;
    }
    // Servers do not leave the WAN pool on a signal either (Consul leaves it
    // only on `consul leave`).
    if let Some(wan) = &agent.wan {
        wan.shutdown().await;
    }
    shutdown.cancel();
    // Long-polling requests would hold a graceful shutdown open for minutes: give
    // in-flight requests a moment, then stop regardless.
    let _ = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(servers)).await;
    agent.consensus.shutdown().await;
    if let Err(e) = agent.store.close_clean() {
        tracing::warn!(error = %e, "final state sync failed");
    }
    if let Some(scratch) = &agent.scratch {
        scratch.remove();
    }
    match agent
        .failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => Ok(()),
    }
}

/// Registers the `service`/`services`/`check`/`checks` definitions of the config.
fn register_from_config(
    agent: &Agent,
    services: &[serde_json::Value],
    checks: &[serde_json::Value],
) -> anyhow::Result<()> {
    use crate::structs::{CheckDefinition, ServiceDefinition, decode};
    for raw in services {
        let def: ServiceDefinition = decode::from_value(raw.clone())
            .map_err(|e| anyhow::anyhow!("invalid service definition: {e}"))?;
        agent
            .local
            .add_service(agent, def, false, local::Source::Config)
            .map_err(|e| anyhow::anyhow!("Failed to register service: {e}"))?;
    }
    for raw in checks {
        let def: CheckDefinition = decode::from_value(raw.clone())
            .map_err(|e| anyhow::anyhow!("invalid check definition: {e}"))?;
        let check = definition::build_check(
            agent,
            &def,
            local::Source::Config,
            def.name.clone(),
            def.name.clone(),
        )
        .map_err(|e| anyhow::anyhow!("Failed to register check: {e}"))?;
        agent
            .local
            .add_check(agent, check, def, local::Source::Config)
            .map_err(|e| anyhow::anyhow!("Failed to register check: {e}"))?;
    }
    Ok(())
}

/// `consul reload` (and SIGHUP): re-reads the configuration and replaces the
/// services and checks it defines (API registrations are untouched, except checks
/// of a config service that is gone).
pub fn reload(agent: &Agent) -> anyhow::Result<()> {
    let fresh = crate::config::load(&agent.flags)?;
    agent.local.remove_config_sourced();
    let registered = register_from_config(agent, &fresh.services, &fresh.checks);
    agent.local.drop_orphan_checks();
    registered
}

async fn listen_http(agent: &Arc<Agent>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    if agent.config.ports.http < 0 {
        return Ok(handles);
    }
    let app = crate::http::router(agent.clone());
    let port = agent.config.ports.http as u16;
    if let Some(unix) = agent
        .config
        .addresses
        .http
        .as_deref()
        .and_then(|a| a.strip_prefix("unix://"))
    {
        let _ = std::fs::remove_file(unix);
        let listener = tokio::net::UnixListener::bind(unix)
            .with_context(|| format!("binding HTTP on unix socket {unix}"))?;
        let token = agent.shutdown.clone();
        let app = app.clone();
        let limits = crate::http::conn::Limits::from_config(&agent.config);
        handles.push(tokio::spawn(crate::http::conn::serve_unix(
            listener, app, limits, token,
        )));
        return Ok(handles);
    }
    for ip in listen_addrs(agent, agent.config.addresses.http.as_deref()) {
        let addr = SocketAddr::new(ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HTTP on {addr}"))?;
        tracing::info!(%addr, "HTTP API listening");
        let token = agent.shutdown.clone();
        let app = app.clone();
        handles.push(tokio::spawn(crate::http::conn::serve_tcp(
            crate::listen::Acceptor::new(listener, "HTTP"),
            None,
            app,
            crate::http::conn::Limits::from_config(&agent.config),
            token,
        )));
    }
    Ok(handles)
}

/// The HTTPS listeners (`ports.https`, off by default).
async fn listen_https(agent: &Arc<Agent>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    if agent.config.ports.https <= 0 {
        return Ok(handles);
    }
    let tls = &agent.config.tls;
    if tls.cert_file.is_none() || tls.key_file.is_none() {
        // Consul starts with an HTTPS port and no certificate (its test harness
        // always sets one); nothing could complete a handshake there.
        tracing::warn!("ports.https is set but cert_file/key_file are not: HTTPS is off");
        return Ok(handles);
    }
    let tls = crate::http::tls::server_config(tls).context("HTTPS listener")?;
    let app = crate::http::router(agent.clone());
    let port = agent.config.ports.https as u16;
    for ip in listen_addrs(agent, agent.config.addresses.https.as_deref()) {
        let addr = SocketAddr::new(ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HTTPS on {addr}"))?;
        tracing::info!(%addr, "HTTPS API listening");
        handles.push(tokio::spawn(crate::http::conn::serve_tcp(
            crate::listen::Acceptor::new(listener, "HTTPS"),
            Some(tokio_rustls::TlsAcceptor::from(tls.clone())),
            app.clone(),
            crate::http::conn::Limits::from_config(&agent.config),
            agent.shutdown.clone(),
        )));
    }
    Ok(handles)
}

/// `addresses.<interface>` (space-separated IPs), else the client addresses.
fn listen_addrs(agent: &Agent, configured: Option<&str>) -> Vec<IpAddr> {
    match configured {
        Some(a) => a
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
        None => agent.config.client_addrs.clone(),
    }
}

/// Servers accept Raft traffic and forwarded requests on the server RPC port.
async fn listen_rpc(agent: &Arc<Agent>) -> anyhow::Result<()> {
    if !agent.config.server || agent.config.ports.server < 0 {
        return Ok(());
    }
    let addr = SocketAddr::new(agent.config.bind_addr, agent.config.ports.server as u16);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the server RPC port on {addr}"))?;
    tracing::info!(%addr, "server RPC listening");
    tokio::spawn(crate::rpc::server::serve(
        listener,
        agent.clone(),
        crate::http::router(agent.clone()),
        agent.shutdown.clone(),
    ));
    Ok(())
}

/// Drops watch slots nobody listens to.
async fn sweep_watches(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => agent.store.watches.sweep(),
            _ = agent.shutdown.cancelled() => return,
        }
    }
}

/// Returns on SIGINT or SIGTERM. SIGHUP (`systemctl reload`) reloads the
/// configuration, as `consul reload` does, and the agent keeps running.
async fn wait_for_signal(agent: &Agent, mut hup: tokio::signal::unix::Signal) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            _ = &mut interrupt => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                tracing::info!(signal = "hangup", "Caught");
                match reload(agent) {
                    Ok(()) => tracing::info!("Reloaded configuration"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "Reload config failed"),
                }
            }
        }
    }
}
