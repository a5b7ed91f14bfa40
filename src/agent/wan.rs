//! The WAN pool: the servers of every datacenter gossip in one pool of their own
//! (port `serf_wan`), as `<node>.<dc>` with Consul's server tags. It is how a
//! server knows which datacenters exist (`/v1/catalog/datacenters`) and which
//! servers take a request meant for another datacenter (`?dc=` forwarding in
//! `http::forward`, DNS lookups of `<name>.service.<dc>.consul`). Client agents
//! have no WAN pool; they ask their servers.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand::seq::SliceRandom;

use super::Agent;
use crate::config::{GossipTuning, RuntimeConfig};
use crate::gossip::{Gossip, GossipConfig, Member, MemberStatus};

/// memberlist's WAN `SuspicionMult`: with the WAN probe interval of 5s it gives
/// `GossipConfig::wan`'s 30s suspicion timeout.
const WAN_SUSPICION_MULT: u32 = 6;

/// The WAN port this agent gossips on: servers only, unless `ports.serf_wan` is -1.
pub fn port(config: &RuntimeConfig) -> Option<u16> {
    (config.server && config.ports.serf_wan > 0).then_some(config.ports.serf_wan as u16)
}

/// This agent's name in the WAN pool (Consul's `<node>.<dc>`).
pub fn member_name(config: &RuntimeConfig) -> String {
    format!("{}.{}", config.node_name, config.datacenter)
}

/// Starts this server's WAN gossip member; `None` on client agents and with
/// `ports.serf_wan = -1`.
pub async fn start(
    config: &RuntimeConfig,
    node_id: &str,
    advertise: IpAddr,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<Option<Gossip>> {
    let Some(port) = port(config) else {
        return Ok(None);
    };
    let bind_ip = config.serf_wan_bind.unwrap_or(config.bind_addr);
    let mut cfg = GossipConfig::wan(member_name(config), SocketAddr::new(bind_ip, port));
    let advertise = config.advertise_addr_wan.unwrap_or(advertise);
    cfg.advertise = Some(SocketAddr::new(advertise, port));
    cfg.tags = super::cluster::member_tags(config, node_id);
    tune(&mut cfg, &config.gossip_wan);
    super::cluster::set_encryption(&mut cfg, config, data_dir, "remote.keyring")?;
    Ok(Some(Gossip::start(cfg).await?))
}

/// Applies a `gossip_wan` block on top of the WAN defaults.
fn tune(cfg: &mut GossipConfig, t: &GossipTuning) {
    let nonzero = |d: &std::time::Duration| !d.is_zero();
    if let Some(n) = t.gossip_nodes.filter(|n| *n > 0) {
        cfg.gossip_nodes = n as usize;
    }
    if let Some(d) = t.gossip_interval.filter(nonzero) {
        cfg.gossip_interval = d;
    }
    if let Some(d) = t.probe_interval.filter(nonzero) {
        cfg.probe_interval = d;
    }
    if let Some(d) = t.probe_timeout.filter(nonzero) {
        cfg.probe_timeout = d;
    }
    // memberlist accepts an ack timeout as long as the probe interval (`-dev`
    // sets both to 100ms); foca needs time left for indirect probes, so such a
    // timeout is cut to half the interval.
    if cfg.probe_timeout >= cfg.probe_interval {
        cfg.probe_timeout = cfg.probe_interval / 2;
    }
    if t.probe_interval.is_some() || t.suspicion_mult.is_some() {
        // memberlist scales this by log10 of the pool size, which is 1 for the
        // pools of up to ten servers a WAN usually has.
        let mult = t
            .suspicion_mult
            .filter(|m| *m > 0)
            .unwrap_or(WAN_SUSPICION_MULT);
        cfg.suspicion_timeout = cfg.probe_interval * mult;
    }
    if let Some(m) = t.retransmit_mult.filter(|m| *m > 0) {
        cfg.retransmit = m.min(u8::MAX as u32) as u8;
    }
}

/// `retry_join_wan`/`-join-wan`/`start_join_wan`, with `retry_interval_wan` and
/// `retry_max_wan` (exhausted, the agent stops with an error). A client agent only
/// says why it cannot, as Consul does.
pub async fn run(agent: Arc<Agent>) {
    let cfg = &agent.config;
    if cfg.retry_join_wan.is_empty() {
        return;
    }
    let Some(wan) = agent.wan.clone() else {
        let why = if cfg.server {
            "WAN Federation is disabled"
        } else {
            "Must be a server to join WAN cluster"
        };
        tracing::warn!("(WAN) couldn't join: Err: {why}");
        return;
    };
    let port = cfg.ports.serf_wan.max(0) as u16;
    let (interval, max) = (cfg.retry_interval_wan, cfg.retry_max_wan);
    if let Err(e) = super::cluster::join_with_retries(
        &agent,
        &wan,
        &cfg.retry_join_wan,
        port,
        interval,
        max,
        "WAN",
    )
    .await
    {
        agent.fail(format!("Retry join failed: {e}"));
    }
}

/// A WAN member's datacenter, if it is a Consul server.
fn server_dc(m: &Member) -> Option<&str> {
    (m.tags.get("role").map(String::as_str) == Some("consul"))
        .then(|| m.tags.get("dc").map(String::as_str))
        .flatten()
}

/// Every datacenter the WAN pool knows, this one first. Consul sorts them by the
/// median estimated round-trip time to their servers, its own datacenter at zero;
/// concord has no network coordinates, which Consul treats as an equal (infinite)
/// distance, so the others follow in name order, as in Consul without coordinates.
/// Servers that left the pool do not count; failed ones do until they are reaped.
pub fn datacenters(agent: &Agent) -> Vec<String> {
    let own = &agent.config.datacenter;
    let mut others = BTreeSet::new();
    for m in agent.wan.iter().flat_map(Gossip::members) {
        if m.status != MemberStatus::Left
            && let Some(dc) = server_dc(&m)
            && dc != own
        {
            others.insert(dc.to_string());
        }
    }
    std::iter::once(own.clone()).chain(others).collect()
}

/// The server RPC addresses of `dc`'s servers, in the order to try them: alive
/// ones shuffled (Consul picks one at random, which spreads the load), then
/// failed ones, which may only be cut off from the pool and still answer.
/// Empty when the pool knows no server of `dc`.
pub fn servers_in(agent: &Agent, dc: &str) -> Vec<SocketAddr> {
    let Some(wan) = &agent.wan else {
        return Vec::new();
    };
    let rpc_addr = |m: &Member| -> Option<SocketAddr> {
        let port = m.tags.get("port")?.parse().ok()?;
        Some(SocketAddr::new(m.addr, port))
    };
    let (mut alive, mut failed) = (Vec::new(), Vec::new());
    for m in wan.members() {
        if server_dc(&m) != Some(dc) {
            continue;
        }
        match (m.status, rpc_addr(&m)) {
            (MemberStatus::Alive, Some(a)) => alive.push(a),
            (MemberStatus::Failed | MemberStatus::Leaving, Some(a)) => failed.push(a),
            _ => {}
        }
    }
    alive.shuffle(&mut rand::rng());
    alive.extend(failed);
    alive
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tuning_overrides_wan_defaults_and_keeps_probe_timeout_below_interval() {
        let bind: SocketAddr = "127.0.0.1:8302".parse().unwrap();
        let mut cfg = GossipConfig::wan("n.dc1", bind);
        tune(&mut cfg, &GossipTuning::default());
        assert_eq!(cfg.probe_interval, Duration::from_secs(5));
        assert_eq!(cfg.suspicion_timeout, Duration::from_secs(30));

        // `-dev`'s gossip_wan block.
        let dev = GossipTuning {
            gossip_interval: Some(Duration::from_millis(100)),
            probe_interval: Some(Duration::from_millis(100)),
            probe_timeout: Some(Duration::from_millis(100)),
            suspicion_mult: Some(3),
            ..Default::default()
        };
        tune(&mut cfg, &dev);
        assert_eq!(cfg.probe_interval, Duration::from_millis(100));
        assert_eq!(cfg.probe_timeout, Duration::from_millis(50));
        assert_eq!(cfg.suspicion_timeout, Duration::from_millis(300));
        assert_eq!(cfg.gossip_interval, Duration::from_millis(100));
        cfg.validate().unwrap();
    }
}
