//! The agent's place in the cluster: the LAN gossip pool (join, retry-join, leave,
//! member tags as Consul sets them), servers found through it (where a client agent
//! forwards; who a server bootstraps with under `bootstrap_expect`), user events
//! arriving by gossip, and the leader's reconciliation of gossip members into the
//! catalog and the Raft configuration (Consul's `leader.go` reconcile loop), with
//! autopilot's periodic passes ([`super::autopilot`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::{Agent, CONCORD_VERSION, CONSUL_VERSION};
use crate::fsm::{Command, Registration};
use crate::gossip::{Gossip, GossipConfig, GossipEvent, Member, MemberStatus};
use crate::raft::{ServerNode, raft_id};
use crate::structs::{
    HEALTH_CRITICAL, HEALTH_PASSING, HealthCheck, Node, SERF_CHECK_ALIVE_OUTPUT, SERF_CHECK_ID,
    SERF_CHECK_NAME,
};

/// Consul's output for the `serfHealth` check of a failed member.
pub const SERF_CHECK_FAILED_OUTPUT: &str = "Agent not live or unreachable";
/// User events travel in gossip under this name prefix (as Consul's do).
pub const USER_EVENT_PREFIX: &str = "consul:event:";
/// How often the leader reconciles even without gossip events.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// The member tags Consul's agents gossip.
pub fn member_tags(
    agent_config: &crate::config::RuntimeConfig,
    node_id: &str,
) -> BTreeMap<String, String> {
    let cfg = agent_config;
    let mut tags = BTreeMap::new();
    let role = if cfg.server { "consul" } else { "node" };
    for (k, v) in [
        ("dc", cfg.datacenter.clone()),
        ("id", node_id.to_string()),
        ("role", role.to_string()),
        ("segment", String::new()),
        ("vsn", "2".to_string()),
        ("vsn_min", "2".to_string()),
        ("vsn_max", "3".to_string()),
        (
            "build",
            format!("{CONSUL_VERSION}:concord-{CONCORD_VERSION}"),
        ),
    ] {
        tags.insert(k.to_string(), v);
    }
    if cfg.server {
        tags.insert("port".into(), cfg.ports.server.to_string());
        tags.insert("raft_vsn".into(), "3".into());
        if cfg.bootstrap {
            tags.insert("bootstrap".into(), "1".into());
        }
        if cfg.bootstrap_expect > 0 {
            tags.insert("expect".into(), cfg.bootstrap_expect.to_string());
        }
    }
    tags
}

/// Starts this agent's LAN gossip member (none when `ports.serf_lan` is -1).
pub async fn start_lan(
    config: &crate::config::RuntimeConfig,
    node_id: &str,
    advertise: IpAddr,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<Option<Gossip>> {
    if config.ports.serf_lan < 0 {
        return Ok(None);
    }
    let port = config.ports.serf_lan as u16;
    let bind_ip = config.serf_lan_bind.unwrap_or(config.bind_addr);
    let mut cfg = GossipConfig::lan(config.node_name.clone(), SocketAddr::new(bind_ip, port));
    cfg.advertise = Some(SocketAddr::new(advertise, port));
    cfg.tags = member_tags(config, node_id);
    // Consul's servers tell their LAN which port their WAN pool listens on.
    if let Some(wan_port) = super::wan::port(config) {
        cfg.tags
            .insert("wan_join_port".into(), wan_port.to_string());
    }
    // Our user events carry Consul's envelope (ID, filters) around the payload.
    cfg.user_event_size_limit = 4096;
    set_encryption(&mut cfg, config, data_dir, "local.keyring")?;
    Ok(Some(Gossip::start(cfg).await?))
}

/// Both pools use the `encrypt` key; each keeps its keyring in its own file under
/// `<data_dir>/serf/` (Consul's `local.keyring` and `remote.keyring`).
pub fn set_encryption(
    cfg: &mut GossipConfig,
    config: &crate::config::RuntimeConfig,
    data_dir: Option<&std::path::Path>,
    keyring_file: &str,
) -> anyhow::Result<()> {
    if let Some(key) = &config.encrypt {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|e| anyhow::anyhow!("encrypt has invalid key: {e}"))?;
        cfg.encrypt_key = Some(key);
    }
    cfg.keyring_file = data_dir.map(|d| d.join("serf").join(keyring_file));
    if let Some(parent) = cfg.keyring_file.as_ref().and_then(|f| f.parent()) {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}

/// Resolves join addresses (`host`, `host:port`, `[v6]:port`) with the pool's port
/// as the default port, as memberlist does: every address found, and for each name
/// that gave none, memberlist's `Failed to resolve <name>: <why>`.
pub async fn resolve_join_addrs(
    targets: &[String],
    default_port: u16,
) -> (Vec<SocketAddr>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for addr in targets {
        if let Ok(sa) = addr.parse::<SocketAddr>() {
            found.push(sa);
            continue;
        }
        if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
            found.push(SocketAddr::new(ip, default_port));
            continue;
        }
        let with_port = if addr
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            addr.clone()
        } else {
            format!("{addr}:{default_port}")
        };
        match tokio::net::lookup_host(with_port).await {
            Ok(it) => {
                let before = found.len();
                found.extend(it);
                if found.len() == before {
                    errors.push(format!("Failed to resolve {addr}: no addresses"));
                }
            }
            Err(e) => errors.push(format!("Failed to resolve {addr}: {e}")),
        }
    }
    (found, errors)
}

fn alive_servers(agent: &Agent, members: &[Member]) -> Vec<(Member, ServerNode)> {
    members
        .iter()
        .filter(|m| m.status == MemberStatus::Alive)
        .filter(|m| m.tags.get("role").map(String::as_str) == Some("consul"))
        .filter(|m| m.tags.get("dc") == Some(&agent.config.datacenter))
        .filter_map(|m| {
            let port: u16 = m.tags.get("port")?.parse().ok()?;
            let node = ServerNode {
                addr: SocketAddr::new(m.addr, port).to_string(),
                name: m.name.clone(),
                node_id: m.tags.get("id").cloned().unwrap_or_default(),
            };
            Some((m.clone(), node))
        })
        .collect()
}

/// Runs the agent's cluster duties until shutdown.
pub async fn run(agent: Arc<Agent>) {
    let Some(gossip) = agent.gossip.clone() else {
        return;
    };
    tokio::spawn(retry_join(agent.clone(), gossip.clone()));
    let mut events = gossip.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_reconcile = Duration::ZERO;
    let mut since_health = Duration::ZERO;
    let mut since_cleanup = Duration::ZERO;
    loop {
        let mut membership_changed = false;
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tick.tick() => {
                since_reconcile += Duration::from_secs(1);
                since_health += Duration::from_secs(1);
                since_cleanup += Duration::from_secs(1);
            }
            ev = events.recv() => match ev {
                Ok(GossipEvent::UserEvent(e)) => {
                    super::events::deliver_from_gossip(&agent, &e.name, &e.payload, e.ltime);
                    continue;
                }
                Ok(_) => membership_changed = true,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => membership_changed = true,
                Err(_) => return,
            },
        }
        let members = gossip.members();
        let servers = alive_servers(&agent, &members);
        let addrs = servers
            .iter()
            .filter_map(|(_, n)| n.addr.parse().ok())
            .collect();
        agent.consensus.set_known_servers(addrs);
        if agent.config.server {
            maybe_bootstrap(&agent, &servers).await;
        }
        if agent.consensus.is_leader()
            && (membership_changed || since_reconcile >= RECONCILE_INTERVAL)
        {
            since_reconcile = Duration::ZERO;
            if let Err(e) = reconcile(&agent, &members, &servers).await {
                tracing::warn!(error = %e, "reconciling members failed; will retry");
            }
        }
        if agent.consensus.is_leader() {
            // Refreshing health keeps each server's StableSince current.
            if since_health >= super::autopilot::HEALTH_INTERVAL {
                since_health = Duration::ZERO;
                super::autopilot::health(&agent);
            }
            if since_cleanup >= super::autopilot::CLEANUP_INTERVAL {
                since_cleanup = Duration::ZERO;
                super::autopilot::cleanup_dead_servers(&agent).await;
            }
        }
    }
}

/// `retry_join`/`-join`: keeps trying every `retry_interval` until one address
/// answers; after `retry_max` failed retries the agent stops with an error, as
/// Consul's does.
async fn retry_join(agent: Arc<Agent>, gossip: Gossip) {
    let cfg = &agent.config;
    let port = cfg.ports.serf_lan.max(0) as u16;
    let (interval, max) = (cfg.retry_interval, cfg.retry_max);
    if let Err(e) =
        join_with_retries(&agent, &gossip, &cfg.retry_join, port, interval, max, "LAN").await
    {
        agent.fail(format!("Retry join failed: {e}"));
    }
}

/// Joins `pool` through `targets`, resolved again on every attempt (names that come
/// up late, as in compose or Kubernetes, still work), retrying every `interval`
/// with a warning each time. Fails once `max` retries (0: no limit) failed too.
pub async fn join_with_retries(
    agent: &Agent,
    pool: &Gossip,
    targets: &[String],
    default_port: u16,
    interval: Duration,
    max: u32,
    label: &str,
) -> Result<(), String> {
    if targets.is_empty() {
        return Ok(());
    }
    tracing::info!("({label}) Joining cluster...");
    let mut attempt = 0u32;
    loop {
        let (addrs, unresolved) = resolve_join_addrs(targets, default_port).await;
        match pool.join_reporting(&addrs, unresolved).await {
            Ok(n) => {
                tracing::info!(
                    num_agents = n,
                    "({label}) Join cluster completed. Synced with initial agents"
                );
                return Ok(());
            }
            Err(e) => {
                attempt += 1;
                if max > 0 && attempt > max {
                    return Err(format!("agent: max join {label} retry exhausted, exiting"));
                }
                tracing::warn!(
                    retry_interval = %crate::config::format_go_duration(interval),
                    error = %e,
                    "({label}) Join cluster failed, will retry"
                );
            }
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// `bootstrap_expect`: once that many servers of this datacenter are alive in the
/// pool and none has a Raft configuration yet, the one with the lowest Raft ID
/// bootstraps the cluster with all of them as voters; the others learn it from
/// its first heartbeat.
async fn maybe_bootstrap(agent: &Agent, servers: &[(Member, ServerNode)]) {
    let expect = agent.config.bootstrap_expect as usize;
    if expect < 2 || servers.len() < expect {
        return;
    }
    if agent.consensus.raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    // A server that was already part of a cluster must not start a new one.
    if agent.consensus.leader().is_some() {
        return;
    }
    let mut nodes: Vec<ServerNode> = servers.iter().map(|(_, n)| n.clone()).collect();
    nodes.sort_by_key(|n| raft_id(&n.node_id));
    if raft_id(&nodes[0].node_id) != agent.consensus.id {
        return;
    }
    tracing::info!(
        servers = nodes.len(),
        "bootstrap_expect reached; bootstrapping the cluster"
    );
    if let Err(e) = agent.consensus.bootstrap(nodes).await {
        tracing::error!(error = %e, "bootstrapping the cluster failed");
    }
}

/// The catalog registration the leader makes for a member other than itself.
fn member_registration(agent: &Agent, m: &Member, status: &str) -> Registration {
    let addr = m.addr.to_string();
    let family = if m.addr.is_ipv4() { "ipv4" } else { "ipv6" };
    let mut tagged = BTreeMap::new();
    for k in [
        "lan".to_string(),
        format!("lan_{family}"),
        "wan".into(),
        format!("wan_{family}"),
    ] {
        tagged.insert(k, addr.clone());
    }
    let mut meta = BTreeMap::new();
    meta.insert("consul-network-segment".into(), String::new());
    let version = m
        .tags
        .get("build")
        .and_then(|b| b.split(':').next())
        .unwrap_or(CONSUL_VERSION);
    meta.insert("consul-version".into(), version.to_string());
    let node = Node {
        id: m.tags.get("id").cloned().unwrap_or_default(),
        node: m.name.clone(),
        address: addr,
        datacenter: agent.config.datacenter.clone(),
        tagged_addresses: tagged.into(),
        meta: meta.into(),
        locality: None,
        create_index: 0,
        modify_index: 0,
    };
    let output = if status == HEALTH_PASSING {
        SERF_CHECK_ALIVE_OUTPUT
    } else {
        SERF_CHECK_FAILED_OUTPUT
    };
    let serf = HealthCheck {
        node: m.name.clone(),
        check_id: SERF_CHECK_ID.into(),
        name: SERF_CHECK_NAME.into(),
        status: status.into(),
        output: output.into(),
        definition: serde_json::json!({}),
        ..Default::default()
    };
    let service = (m.tags.get("role").map(String::as_str) == Some("consul")).then(|| {
        let port = m
            .tags
            .get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(8300);
        super::leader::consul_service(port, version, None)
    });
    Registration {
        node,
        // An existing node keeps the address and meta its own agent syncs.
        skip_node_update: true,
        service,
        checks: vec![serf],
    }
}

/// One reconcile pass (leader only): alive members registered with a passing
/// `serfHealth`, failed ones critical (which invalidates their sessions), left
/// and reaped ones deregistered; alive servers added to Raft, departed ones removed.
async fn reconcile(
    agent: &Agent,
    members: &[Member],
    servers: &[(Member, ServerNode)],
) -> anyhow::Result<()> {
    let me = agent.node_name().to_string();
    let dc = &agent.config.datacenter;
    let (nodes, serf_status) = {
        let r = agent.store.read()?;
        let v = r.view();
        let (_, nodes) = v.nodes()?;
        let mut status = BTreeMap::new();
        for n in &nodes {
            if let Some(c) = v.check(&n.node, SERF_CHECK_ID)? {
                status.insert(n.node.to_lowercase(), c.status);
            }
        }
        (nodes, status)
    };
    let mut writes = Vec::new();
    let mut in_pool = BTreeSet::new();
    for m in members.iter().filter(|m| m.tags.get("dc") == Some(dc)) {
        in_pool.insert(m.name.to_lowercase());
        if m.name == me {
            continue;
        }
        let current = serf_status.get(&m.name.to_lowercase()).map(String::as_str);
        match m.status {
            MemberStatus::Alive if current != Some(HEALTH_PASSING) => {
                writes.push(Command::Register(member_registration(
                    agent,
                    m,
                    HEALTH_PASSING,
                )));
            }
            MemberStatus::Failed if current.is_some() && current != Some(HEALTH_CRITICAL) => {
                writes.push(Command::Register(member_registration(
                    agent,
                    m,
                    HEALTH_CRITICAL,
                )));
            }
            MemberStatus::Left if current.is_some() => {
                writes.push(Command::DeregisterNode {
                    node: m.name.clone(),
                });
            }
            _ => {}
        }
    }
    // Reaped members: nodes gossip once knew (they have serfHealth) and no longer does.
    for n in &nodes {
        let key = n.node.to_lowercase();
        if n.node != me && serf_status.contains_key(&key) && !in_pool.contains(&key) {
            writes.push(Command::DeregisterNode {
                node: n.node.clone(),
            });
        }
    }
    if !writes.is_empty() {
        agent.consensus.propose(Command::Batch(writes)).await?;
    }

    // Raft membership follows the pool's servers.
    if agent.consensus.raft.is_initialized().await.unwrap_or(false) {
        let voters: BTreeSet<u64> = agent
            .consensus
            .voters()
            .iter()
            .map(|v| raft_id(&v.node_id))
            .collect();
        for (_, node) in servers {
            if !voters.contains(&raft_id(&node.node_id)) {
                agent.consensus.add_server(node.clone()).await?;
            }
        }
        for m in members.iter().filter(|m| m.status == MemberStatus::Left) {
            if let Some(id) = m.tags.get("id").map(|id| raft_id(id))
                && id != agent.consensus.id
                && voters.contains(&id)
            {
                tracing::info!(server = %m.name, "removing departed server from the Raft configuration");
                agent.consensus.remove_server(id).await?;
            }
        }
    }
    Ok(())
}

/// `/v1/agent/members` JSON for one member.
pub fn member_json(m: &Member) -> serde_json::Value {
    serde_json::json!({
        "Name": m.name,
        "Addr": m.addr.to_string(),
        "Port": m.port,
        "Tags": m.tags,
        "Status": m.status.code(),
        "ProtocolMin": m.protocol_min,
        "ProtocolMax": m.protocol_max,
        "ProtocolCur": m.protocol_cur,
        "DelegateMin": m.delegate_min,
        "DelegateMax": m.delegate_max,
        "DelegateCur": m.delegate_cur,
    })
}
