//! `Stats` of `/v1/agent/self` (what `consul info` prints): sections of string
//! values as Consul's agent builds them. Every agent has `agent`, `build`,
//! `consul`, `runtime` and `serf_lan`; a server adds `raft` and, with a WAN pool,
//! `serf_wan`.

use serde_json::{Map, Value, json};

use super::{Agent, CONCORD_VERSION, CONSUL_VERSION};
use crate::gossip::Gossip;

fn strings<K: Into<String>>(pairs: impl IntoIterator<Item = (K, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

/// serf's counters of one pool. concord's failure detector has no Lifeguard
/// awareness, so its health score never leaves 0, memberlist's healthy value.
fn serf(pool: &Gossip) -> Value {
    let s = pool.stats();
    strings([
        ("members", s.members.to_string()),
        ("failed", s.failed.to_string()),
        ("left", s.left.to_string()),
        ("health_score", "0".to_string()),
        ("event_time", s.event_time.to_string()),
        ("encrypted", s.encrypted.to_string()),
    ])
}

/// The `consul` section: a server's view of leadership, or a client's servers.
fn consul(agent: &Agent) -> Value {
    let acl = if agent.config.acl.enabled {
        "enabled"
    } else {
        "disabled"
    };
    let c = &agent.consensus;
    if agent.config.server {
        strings([
            ("server", "true".to_string()),
            ("leader", c.is_leader().to_string()),
            (
                "leader_addr",
                c.leader().map(|l| l.addr).unwrap_or_default(),
            ),
            ("bootstrap", agent.config.bootstrap.to_string()),
            (
                "known_datacenters",
                super::wan::datacenters(agent).len().to_string(),
            ),
            ("acl", acl.to_string()),
        ])
    } else {
        strings([
            ("server", "false".to_string()),
            ("known_servers", c.known_server_count().to_string()),
            ("acl", acl.to_string()),
        ])
    }
}

fn runtime() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let tasks = tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_alive_tasks())
        .unwrap_or(0);
    strings([
        ("arch", std::env::consts::ARCH.to_string()),
        ("os", std::env::consts::OS.to_string()),
        ("version", format!("concord {CONCORD_VERSION}")),
        ("cpu_count", cpus.to_string()),
        ("max_procs", cpus.to_string()),
        ("goroutines", tasks.to_string()),
    ])
}

pub fn stats(agent: &Agent) -> Value {
    let checks = agent.local.checks();
    let count = |kind: &str| {
        checks
            .iter()
            .filter(|c| c.check_type.eq_ignore_ascii_case(kind))
            .count()
            .to_string()
    };
    let mut out = json!({
        "agent": strings([
            ("check_monitors", count("script")),
            ("check_ttls", count("ttl")),
            ("checks", checks.len().to_string()),
            ("services", agent.local.services().len().to_string()),
        ]),
        "build": strings([
            ("prerelease", String::new()),
            ("revision", "concord".to_string()),
            ("version", CONSUL_VERSION.to_string()),
            ("version_metadata", String::new()),
        ]),
        "consul": consul(agent),
        "runtime": runtime(),
    });
    if let Some(lan) = &agent.gossip {
        out["serf_lan"] = serf(lan);
    }
    if agent.config.server {
        out["raft"] = strings(agent.consensus.stats());
        if let Some(wan) = &agent.wan {
            out["serf_wan"] = serf(wan);
        }
    }
    out
}
