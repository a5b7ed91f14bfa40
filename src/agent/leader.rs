//! Leader duties: when this server becomes leader it registers its own node (with the
//! `serfHealth` check and the `consul` service), restarts session TTL clocks, and then
//! periodically reaps old KV tombstones.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Agent, CONSUL_VERSION};
use crate::connect::{CA_DOC, CaState, generate_root};
use crate::fsm::{Command, Registration};
use crate::state::Table;
use crate::structs::{
    CONSUL_SERVICE, Coordinate, CoordinateEntry, HEALTH_PASSING, HealthCheck, Node, NodeService,
    SERF_CHECK_ALIVE_OUTPUT, SERF_CHECK_ID, SERF_CHECK_NAME,
};

/// How long a KV tombstone lives before it may be reaped (Consul's `tombstone_ttl`).
const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

/// This agent's catalog registration, as Consul's leader makes it for each server.
pub fn self_registration(agent: &Agent) -> Registration {
    let addr = agent.advertise.to_string();
    let wan = agent
        .config
        .advertise_addr_wan
        .map(|a| a.to_string())
        .unwrap_or_else(|| addr.clone());
    let mut tagged = BTreeMap::new();
    let family = if agent.advertise.is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    };
    tagged.insert("lan".to_string(), addr.clone());
    tagged.insert(format!("lan_{family}"), addr.clone());
    tagged.insert("wan".to_string(), wan.clone());
    tagged.insert(format!("wan_{family}"), wan);
    let mut meta = agent.config.node_meta.clone();
    meta.insert("consul-network-segment".into(), String::new());
    meta.insert("consul-version".into(), CONSUL_VERSION.into());
    let node = Node {
        id: agent.node_id().to_string(),
        node: agent.node_name().to_string(),
        address: addr,
        datacenter: agent.config.datacenter.clone(),
        tagged_addresses: tagged.into(),
        meta: meta.into(),
        locality: agent
            .config
            .locality
            .as_ref()
            .map(|l| serde_json::json!({"Region": l.region, "Zone": l.zone})),
        create_index: 0,
        modify_index: 0,
    };
    let serf = HealthCheck {
        node: node.node.clone(),
        check_id: SERF_CHECK_ID.into(),
        name: SERF_CHECK_NAME.into(),
        status: HEALTH_PASSING.into(),
        output: SERF_CHECK_ALIVE_OUTPUT.into(),
        definition: serde_json::json!({}),
        ..Default::default()
    };
    let service = agent.config.server.then(|| {
        let grpc = (agent.config.ports.grpc > 0).then_some(agent.config.ports.grpc);
        consul_service(agent.config.ports.server as i64, CONSUL_VERSION, grpc)
    });
    Registration {
        node,
        skip_node_update: false,
        service,
        checks: vec![serf],
    }
}

/// The `consul` service the leader registers for every server (Consul's meta keys).
pub fn consul_service(port: i64, version: &str, grpc_port: Option<i32>) -> NodeService {
    let mut meta = BTreeMap::new();
    for (k, v) in [
        ("non_voter", "false"),
        ("raft_version", "3"),
        ("read_replica", "false"),
        ("serf_protocol_current", "2"),
        ("serf_protocol_max", "5"),
        ("serf_protocol_min", "1"),
        ("version", version),
    ] {
        meta.insert(k.to_string(), v.to_string());
    }
    if let Some(grpc) = grpc_port {
        meta.insert("grpc_port".into(), grpc.to_string());
    }
    NodeService {
        id: CONSUL_SERVICE.into(),
        service: CONSUL_SERVICE.into(),
        port,
        meta: meta.into(),
        ..Default::default()
    }
}

async fn establish(agent: &Agent) {
    // Retry until it sticks: leadership may be lost and regained meanwhile.
    for attempt in 0..50 {
        if !agent.consensus.is_leader() || agent.shutdown.is_cancelled() {
            return;
        }
        match agent
            .consensus
            .propose(Command::Register(self_registration(agent)))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(attempt, error = %e, "self-registration failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if let Ok(r) = agent.store.read()
        && let Ok((_, sessions)) = r.view().sessions()
    {
        agent.session_timers.reset_all(&sessions);
    }
    let has_coord = agent
        .store
        .read()
        .and_then(|r| r.view().node_coordinates(agent.node_name()))
        .map(|(_, c)| !c.is_empty())
        .unwrap_or(true);
    if !has_coord {
        // Without gossip there are no RTT samples: the origin coordinate stands in.
        let entry = CoordinateEntry {
            node: agent.node_name().to_string(),
            segment: String::new(),
            coord: Coordinate::default(),
        };
        let _ = agent
            .consensus
            .propose(Command::CoordinateUpdate {
                entries: vec![entry],
            })
            .await;
    }
    if agent.config.connect.enabled
        && let Err(e) = initialize_ca(agent).await
    {
        tracing::error!(error = %e, "could not initialize the Connect CA");
    }
}

/// Generates the built-in CA the first time a leader runs with Connect enabled.
async fn initialize_ca(agent: &Agent) -> anyhow::Result<()> {
    let existing = agent.store.read()?.view().system::<CaState>(CA_DOC)?;
    if existing.is_some() {
        return Ok(());
    }
    let cluster_id = agent
        .config
        .connect
        .ca_config
        .get("cluster_id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ca = generate_root(&cluster_id)?;
    agent
        .consensus
        .propose(Command::PutSystem {
            name: CA_DOC.into(),
            table: Table::ConnectCa,
            doc: serde_json::to_value(&ca)?,
        })
        .await?;
    tracing::info!(root = %ca.active_root_id, "initialized the built-in Connect CA");
    Ok(())
}

/// Follows leadership changes and runs the leader's loops while leading.
pub async fn run(agent: Arc<Agent>) {
    let mut leading = agent.consensus.leadership();
    let mut graves: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        if *leading.borrow_and_update() {
            tracing::info!("cluster leadership acquired");
            establish(&agent).await;
        }
        loop {
            tokio::select! {
                _ = agent.shutdown.cancelled() => return,
                changed = leading.changed() => {
                    if changed.is_err() { return; }
                    break;
                }
                _ = tick.tick() => {
                    if agent.consensus.is_leader() {
                        reap_tombstones(&agent, &mut graves).await;
                    }
                }
            }
        }
    }
}

/// Remembers the tombstone index every tick and reaps those older than the TTL.
async fn reap_tombstones(agent: &Agent, graves: &mut VecDeque<(Instant, u64)>) {
    let Ok(current) = agent
        .store
        .read()
        .and_then(|r| r.view().named_index("tombstones"))
    else {
        return;
    };
    if graves.back().is_none_or(|(_, i)| *i != current) {
        graves.push_back((Instant::now(), current));
    }
    let mut reap_to = None;
    while let Some((at, idx)) = graves.front() {
        if at.elapsed() < TOMBSTONE_TTL {
            break;
        }
        reap_to = Some(*idx);
        graves.pop_front();
    }
    if let Some(index) = reap_to
        && let Err(e) = agent
            .consensus
            .propose(Command::KvReapTombstones { index })
            .await
    {
        tracing::warn!(error = %e, "tombstone reap failed");
    }
}
