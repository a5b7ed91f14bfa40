//! Autopilot, as Consul's leader runs it (hashicorp/raft-autopilot): the health of
//! every server in the Raft configuration, the cluster's failure tolerance, and
//! dead-server cleanup. A server is healthy while gossip says it is alive, it
//! heard from the leader within `LastContactThreshold`, it is on the leader's term
//! and no more than `MaxTrailingLogs` behind. With `CleanupDeadServers`, voters
//! that gossip reports failed (or left) are force-left and removed from the Raft
//! configuration, never more than a minority of the voters at once and never
//! below `MinQuorum` voters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Agent, CONSUL_VERSION};
use crate::config::{format_go_duration, parse_go_duration};
use crate::gossip::{Member, MemberStatus};
use crate::raft::raft_id;
use crate::structs::codec::null_default;

/// The replicated autopilot configuration's document name.
pub const AUTOPILOT_DOC: &str = "autopilot-config";

/// How often the leader refreshes server health (Consul's `ServerHealthInterval`).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the leader looks for dead servers (Consul's `AutopilotInterval`).
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(10);

/// The autopilot configuration, in Consul's JSON shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutopilotConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub cleanup_dead_servers: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub last_contact_threshold: String,
    #[serde(default, deserialize_with = "null_default")]
    pub max_trailing_logs: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub min_quorum: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub server_stabilization_time: String,
    #[serde(default, deserialize_with = "null_default")]
    pub redundancy_zone_tag: String,
    #[serde(default, deserialize_with = "null_default")]
    pub disable_upgrade_migration: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub upgrade_version_tag: String,
    #[serde(default, deserialize_with = "null_default")]
    pub create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub modify_index: u64,
}

impl AutopilotConfig {
    /// The agent's `autopilot` block, in force until an operator stores one.
    pub fn from_agent(agent: &Agent) -> AutopilotConfig {
        let a = &agent.config.autopilot;
        AutopilotConfig {
            cleanup_dead_servers: a.cleanup_dead_servers,
            last_contact_threshold: format_go_duration(a.last_contact_threshold),
            max_trailing_logs: a.max_trailing_logs,
            min_quorum: a.min_quorum,
            server_stabilization_time: format_go_duration(a.server_stabilization_time),
            redundancy_zone_tag: String::new(),
            disable_upgrade_migration: false,
            upgrade_version_tag: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// The configuration in force: the replicated one, else the agent's.
    pub fn current(agent: &Agent) -> AutopilotConfig {
        let stored = agent
            .store
            .read()
            .and_then(|r| r.view().system::<AutopilotConfig>(AUTOPILOT_DOC));
        match stored {
            Ok(Some(conf)) => conf,
            Ok(None) => AutopilotConfig::from_agent(agent),
            Err(e) => {
                tracing::warn!(error = %e, "reading the autopilot configuration failed");
                AutopilotConfig::from_agent(agent)
            }
        }
    }

    fn threshold(&self, agent: &Agent) -> Duration {
        parse_go_duration(&self.last_contact_threshold)
            .unwrap_or(agent.config.autopilot.last_contact_threshold)
    }
}

/// What autopilot knows about one server of the Raft configuration.
#[derive(Debug, Clone)]
pub struct ServerHealth {
    pub id: String,
    pub name: String,
    pub address: String,
    /// Gossip's view: "alive", "failed", "left" (also for a server gossip does not
    /// know, as raft-autopilot reports it).
    pub serf_status: &'static str,
    pub version: String,
    pub leader: bool,
    pub voter: bool,
    /// Since the server last heard from the leader; `None`: not since this leader
    /// took over.
    pub last_contact: Option<Duration>,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    pub stable_since: SystemTime,
}

impl ServerHealth {
    /// Go's duration text for `LastContact` ("never" contacted reads as the
    /// largest duration, as Consul's would).
    pub fn last_contact_text(&self) -> String {
        match self.last_contact {
            Some(d) => format_go_duration(d),
            None => format_go_duration(Duration::from_nanos(i64::MAX as u64)),
        }
    }

    pub fn stable_since_text(&self) -> String {
        time::OffsetDateTime::from(self.stable_since)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// The cluster as autopilot sees it.
#[derive(Debug, Clone)]
pub struct ClusterHealth {
    /// Every server is healthy.
    pub healthy: bool,
    /// How many voters may fail without losing quorum: healthy voters beyond it.
    pub failure_tolerance: usize,
    /// Leader first, then voters, healthy before unhealthy, by ID.
    pub servers: Vec<ServerHealth>,
}

/// Health transitions, for `StableSince` (when each server's health last changed).
#[derive(Default)]
pub struct Autopilot {
    stable: Mutex<HashMap<String, (bool, SystemTime)>>,
}

fn serf_status(member: Option<&Member>) -> &'static str {
    match member.map(|m| m.status) {
        Some(MemberStatus::Alive) => "alive",
        Some(MemberStatus::Failed) => "failed",
        Some(MemberStatus::Leaving) => "leaving",
        Some(MemberStatus::Left) | None => "left",
    }
}

/// This server's view of every server in the Raft configuration. Complete on the
/// leader (it alone hears from every follower); elsewhere the other servers'
/// figures are unknown and they show as unhealthy.
pub fn health(agent: &Agent) -> ClusterHealth {
    let conf = AutopilotConfig::current(agent);
    let threshold = conf.threshold(agent);
    let consensus = &agent.consensus;
    let members: Vec<Member> = agent
        .gossip
        .as_ref()
        .map(|g| g.members())
        .unwrap_or_default();
    let metrics = consensus.raft.metrics().borrow().clone();
    let leader_id = metrics.current_leader;
    let leading = consensus.is_leader();
    let leader_term = metrics.current_term;
    let leader_index = metrics.last_log_index.unwrap_or(0);
    let replication = metrics.replication.clone().unwrap_or_default();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();

    let now = SystemTime::now();
    let mut stable = agent
        .autopilot
        .stable
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut servers = Vec::new();
    for (id, node) in membership.nodes() {
        let member = members
            .iter()
            .find(|m| m.tags.get("id").is_some_and(|i| raft_id(i) == *id) || m.name == node.name);
        let is_self = *id == consensus.id;
        let (last_contact, last_term, last_index) = if is_self {
            // Gossip may lag at startup; this server is alive by definition.
            (
                consensus.last_contact(),
                leader_term,
                metrics.last_log_index.unwrap_or(0),
            )
        } else if leading {
            let matched = replication.get(id).copied().flatten();
            (
                consensus.contacts.since_follower(*id),
                matched.map_or(0, |l| l.leader_id.term),
                matched.map_or(0, |l| l.index),
            )
        } else {
            (None, 0, 0)
        };
        let status = if is_self {
            "alive"
        } else {
            serf_status(member)
        };
        let healthy = leader_index > 0
            && leader_term > 0
            && status == "alive"
            && last_contact.is_some_and(|c| c <= threshold)
            && last_term == leader_term
            && last_index + conf.max_trailing_logs >= leader_index;
        let since = match stable.get(&node.node_id) {
            Some((was, since)) if *was == healthy => *since,
            _ => now,
        };
        stable.insert(node.node_id.clone(), (healthy, since));
        let version = if is_self {
            CONSUL_VERSION.to_string()
        } else {
            member
                .and_then(|m| m.tags.get("build"))
                .and_then(|b| b.split(':').next())
                .unwrap_or_default()
                .to_string()
        };
        servers.push(ServerHealth {
            id: node.node_id.clone(),
            name: node.name.clone(),
            address: node.addr.clone(),
            serf_status: status,
            version,
            leader: leader_id == Some(*id),
            voter: voters.contains(id),
            last_contact,
            last_term,
            last_index,
            healthy,
            stable_since: since,
        });
    }
    // Servers no longer in the configuration start afresh if they come back.
    stable.retain(|id, _| servers.iter().any(|s| &s.id == id));
    drop(stable);

    servers.sort_by(|a, b| {
        (!a.leader, !a.voter, !a.healthy, a.stable_since, &a.id).cmp(&(
            !b.leader,
            !b.voter,
            !b.healthy,
            b.stable_since,
            &b.id,
        ))
    });
    let voter_count = servers.iter().filter(|s| s.voter).count();
    let healthy_voters = servers.iter().filter(|s| s.voter && s.healthy).count();
    ClusterHealth {
        healthy: servers.iter().all(|s| s.healthy) && leader_id.is_some(),
        failure_tolerance: healthy_voters.saturating_sub(voter_count / 2 + 1),
        servers,
    }
}

/// Which of the `failed` voters may go, in order: raft-autopilot removes at most
/// `(voters - 1) / 2` of them (so a majority always remains) and none that would
/// leave fewer than `min_quorum` voters.
pub fn removable(voters: usize, min_quorum: u32, failed: &[String]) -> Vec<String> {
    let mut max_removal = voters.saturating_sub(1) / 2;
    let mut removed = 0usize;
    let mut out = Vec::new();
    for id in failed {
        let remaining = voters.saturating_sub(removed + 1);
        if remaining < min_quorum as usize || max_removal < 1 {
            continue;
        }
        max_removal -= 1;
        removed += 1;
        out.push(id.clone());
    }
    out
}

/// One cleanup pass (leader only): voters gossip reports failed or left are
/// force-left in gossip (so every agent sees them leave and the catalog drops
/// them) and removed from the Raft configuration, within [`removable`]'s limits.
/// Voters gossip does not know at all are left alone: after a restart gossip may
/// not have rejoined yet, and removing live servers would be far worse than
/// keeping a dead one.
pub async fn cleanup_dead_servers(agent: &Agent) {
    let consensus = &agent.consensus;
    if !consensus.is_leader() {
        return;
    }
    let conf = AutopilotConfig::current(agent);
    if !conf.cleanup_dead_servers {
        return;
    }
    let Some(gossip) = agent.gossip.as_ref() else {
        return;
    };
    let members = gossip.members();
    let voters = consensus.voters();
    let mut failed: Vec<(String, String)> = voters
        .iter()
        .filter(|v| raft_id(&v.node_id) != consensus.id)
        .filter_map(|v| {
            let m = members.iter().find(|m| {
                m.tags.get("id").map(String::as_str) == Some(v.node_id.as_str()) || m.name == v.name
            })?;
            matches!(m.status, MemberStatus::Failed | MemberStatus::Left)
                .then(|| (v.node_id.clone(), v.name.clone()))
        })
        .collect();
    failed.sort();
    let ids: Vec<String> = failed.iter().map(|(id, _)| id.clone()).collect();
    for id in removable(voters.len(), conf.min_quorum, &ids) {
        let name = failed
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        tracing::info!(server = %name, id = %id, "autopilot: removing dead server");
        if let Err(e) = gossip.force_leave(&name, false) {
            tracing::debug!(server = %name, error = %e, "force-leave of a dead server failed");
        }
        if let Err(e) = consensus.remove_server(raft_id(&id)).await {
            tracing::warn!(server = %name, error = %e, "autopilot: removing dead server failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn removes_at_most_a_minority() {
        assert_eq!(removable(3, 0, &ids(&["a"])), ids(&["a"]));
        assert_eq!(removable(3, 0, &ids(&["a", "b"])), ids(&["a"]));
        assert_eq!(removable(5, 0, &ids(&["a", "b", "c"])), ids(&["a", "b"]));
        assert!(removable(2, 0, &ids(&["a"])).is_empty());
        assert!(removable(1, 0, &ids(&["a"])).is_empty());
    }

    #[test]
    fn keeps_min_quorum() {
        assert!(removable(3, 3, &ids(&["a"])).is_empty());
        assert_eq!(removable(5, 4, &ids(&["a", "b"])), ids(&["a"]));
        assert_eq!(removable(5, 3, &ids(&["a", "b"])), ids(&["a", "b"]));
    }
}
