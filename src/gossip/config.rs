//! Gossip configuration: addresses, tags, encryption and the timing knobs of the SWIM
//! protocol, with Consul-LAN-like defaults and a fast profile for tests.
//!
//! The agent maps its own configuration (`serf_lan` port, `bind_addr`, `encrypt`,
//! `reconnect_timeout`, ...) onto [`GossipConfig`]; this module knows nothing about it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything one gossip pool (LAN or WAN) needs to run.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Unique node name in the pool (Consul's `node_name`).
    pub node_name: String,
    /// Address the UDP socket and the TCP state-sync listener bind to. Port 0 picks a free
    /// port (tests); the same port number is used for UDP and TCP, as serf does.
    pub bind: SocketAddr,
    /// Address other members use to reach us. An unspecified IP or port 0 is filled in from
    /// the bound socket.
    pub advertise: Option<SocketAddr>,
    /// Member tags (Consul puts role, dc, port, build, ... here).
    pub tags: BTreeMap<String, String>,
    /// Initial encryption key (16, 24 or 32 raw bytes: AES-128/192/256-GCM). Ignored when a
    /// keyring file already exists, as Consul does.
    pub encrypt_key: Option<Vec<u8>>,
    /// Where the keyring is persisted (a JSON array of base64 keys, primary first, the
    /// format of Consul's `serf/local.keyring`). `None` keeps it in memory only.
    pub keyring_file: Option<PathBuf>,

    /// How often each member probes one random member (memberlist `ProbeInterval`).
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly
    /// (memberlist `ProbeTimeout`).
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (memberlist `IndirectChecks`).
    pub indirect_checks: usize,
    /// How long a suspected member has to refute before it is declared failed.
    pub suspicion_timeout: Duration,
    /// How often pending updates are gossiped (memberlist `GossipInterval`).
    pub gossip_interval: Duration,
    /// Members each gossip round sends to (memberlist `GossipNodes`).
    pub gossip_nodes: usize,
    /// How many times one update is piggy-backed before it is dropped.
    pub retransmit: u8,
    /// Full state exchange with one random member over TCP (memberlist `PushPullInterval`).
    pub push_pull_interval: Duration,
    /// How often failed members are contacted again to heal partitions (serf
    /// `ReconnectInterval`).
    pub reconnect_interval: Duration,
    /// Failed members are reaped after this long (Consul `reconnect_timeout`, 72h).
    pub reconnect_timeout: Duration,
    /// Left members are reaped after this long (serf `TombstoneTimeout`, 24h).
    pub tombstone_timeout: Duration,
    /// How often the reaper looks for members to reap (serf `ReapInterval`).
    pub reap_interval: Duration,
    /// How long `leave` waits for the leave intent to spread before going quiet (serf
    /// `LeavePropagateDelay`).
    pub leave_propagate_delay: Duration,
    /// Timeout for one TCP exchange (join, push-pull, keyring request).
    pub tcp_timeout: Duration,
    /// Maximum `name.len() + payload.len()` of a user event (serf `UserEventSizeLimit`).
    pub user_event_size_limit: usize,
    /// Capacity of the event channel handed out by `subscribe`.
    pub event_buffer: usize,
}

impl GossipConfig {
    /// Consul LAN defaults (memberlist `DefaultLANConfig` + serf + Consul overrides).
    pub fn lan(node_name: impl Into<String>, bind: SocketAddr) -> Self {
        GossipConfig {
            node_name: node_name.into(),
            bind,
            advertise: None,
            tags: BTreeMap::new(),
            encrypt_key: None,
            keyring_file: None,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            // memberlist: SuspicionMult 4 x log10(n) x ProbeInterval, at least 4s for small
            // pools; a fixed 5s sits inside its [min, max] window for up to ~30 nodes.
            suspicion_timeout: Duration::from_secs(5),
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            retransmit: 8,
            push_pull_interval: Duration::from_secs(30),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(72 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            reap_interval: Duration::from_secs(15),
            leave_propagate_delay: Duration::from_secs(1),
            tcp_timeout: Duration::from_secs(10),
            user_event_size_limit: 512,
            event_buffer: 1024,
        }
    }

    /// Consul WAN defaults: slower probes, longer suspicion (memberlist `DefaultWANConfig`).
    pub fn wan(node_name: impl Into<String>, bind: SocketAddr) -> Self {
        GossipConfig {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_timeout: Duration::from_secs(30),
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            push_pull_interval: Duration::from_secs(60),
            ..GossipConfig::lan(node_name, bind)
        }
    }

    // Used by the tests; the agent will use it with tag updates on reload and the WAN pool.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Fast timings for tests on loopback: failures are detected in about two seconds.
    /// Still loose enough for a busy 2-core CI machine running several pools at once.
    pub fn fast(node_name: impl Into<String>, bind: SocketAddr) -> Self {
        GossipConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(100),
            suspicion_timeout: Duration::from_millis(1000),
            gossip_interval: Duration::from_millis(50),
            push_pull_interval: Duration::from_secs(1),
            reconnect_interval: Duration::from_millis(500),
            reconnect_timeout: Duration::from_secs(60),
            tombstone_timeout: Duration::from_secs(60),
            reap_interval: Duration::from_millis(100),
            leave_propagate_delay: Duration::from_millis(300),
            tcp_timeout: Duration::from_secs(3),
            ..GossipConfig::lan(node_name, bind)
        }
    }

    /// Checks the values that would otherwise fail deep inside the protocol.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.node_name.is_empty() {
            anyhow::bail!("gossip: node name must not be empty");
        }
        if self.indirect_checks == 0 || self.gossip_nodes == 0 || self.retransmit == 0 {
            anyhow::bail!(
                "gossip: indirect_checks, gossip_nodes and retransmit must be at least 1"
            );
        }
        if self.probe_timeout >= self.probe_interval {
            anyhow::bail!(
                "gossip: probe_timeout ({:?}) must be shorter than probe_interval ({:?})",
                self.probe_timeout,
                self.probe_interval
            );
        }
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("suspicion_timeout", self.suspicion_timeout),
            ("gossip_interval", self.gossip_interval),
            ("push_pull_interval", self.push_pull_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("reap_interval", self.reap_interval),
            ("tcp_timeout", self.tcp_timeout),
        ] {
            if d.is_zero() {
                anyhow::bail!("gossip: {name} must be greater than zero");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_validate_and_lan_matches_consul() {
        let bind: SocketAddr = "127.0.0.1:8301".parse().unwrap();
        let lan = GossipConfig::lan("n1", bind);
        lan.validate().unwrap();
        assert_eq!(lan.probe_interval, Duration::from_secs(1));
        assert_eq!(lan.reconnect_timeout, Duration::from_secs(72 * 3600));
        assert_eq!(lan.tombstone_timeout, Duration::from_secs(24 * 3600));
        assert_eq!(lan.user_event_size_limit, 512);
        GossipConfig::wan("n1", bind).validate().unwrap();
        GossipConfig::fast("n1", bind).validate().unwrap();

        let mut bad = GossipConfig::fast("", bind);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("node name")
        );
        bad.node_name = "n1".into();
        bad.probe_timeout = bad.probe_interval;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("must be shorter than probe_interval")
        );
    }
}
