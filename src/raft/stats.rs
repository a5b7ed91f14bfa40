//! The `raft` section of `/v1/agent/self` `Stats`: hashicorp/raft's `Stats()`
//! keys, computed from openraft's metrics. openraft does not publish its commit
//! index, so `commit_index` is the applied index (the committed prefix this server
//! has applied); the protocol-version keys of hashicorp/raft are left out, as they
//! describe a wire protocol concord does not speak.

use std::collections::BTreeMap;

use openraft::ServerState;

use super::Consensus;

impl Consensus {
    pub fn stats(&self) -> BTreeMap<&'static str, String> {
        let m = self.raft.metrics().borrow().clone();
        let data = self.raft.data_metrics().borrow().clone();
        let index = |id: Option<super::types::LogId>| id.map(|l| l.index).unwrap_or(0);
        let term = |id: Option<super::types::LogId>| id.map(|l| l.leader_id.term).unwrap_or(0);
        let state = match m.state {
            ServerState::Leader => "Leader",
            ServerState::Candidate => "Candidate",
            ServerState::Follower | ServerState::Learner => "Follower",
            ServerState::Shutdown => "Shutdown",
        };
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let servers: Vec<String> = membership
            .nodes()
            .map(|(id, node)| {
                let suffrage = if voters.contains(id) {
                    "Voter"
                } else {
                    "Nonvoter"
                };
                format!(
                    "{{Suffrage:{suffrage} ID:{} Address:{}}}",
                    node.node_id, node.addr
                )
            })
            .collect();
        // hashicorp/raft counts the other voters, and none when it is not one.
        let num_peers = if voters.contains(&self.id) {
            voters.len() - 1
        } else {
            0
        };
        let last_contact = if m.state == ServerState::Leader {
            "0".to_string()
        } else {
            match self.contacts.since_leader() {
                Some(d) => crate::config::format_go_duration(d),
                None => "never".to_string(),
            }
        };
        BTreeMap::from([
            ("state", state.to_string()),
            ("term", m.current_term.to_string()),
            ("last_log_index", index(data.last_log).to_string()),
            ("last_log_term", term(data.last_log).to_string()),
            ("commit_index", index(m.last_applied).to_string()),
            ("applied_index", index(m.last_applied).to_string()),
            ("last_snapshot_index", index(m.snapshot).to_string()),
            ("last_snapshot_term", term(m.snapshot).to_string()),
            (
                "latest_configuration_index",
                index(m.membership_config.log_id().to_owned()).to_string(),
            ),
            ("latest_configuration", format!("[{}]", servers.join(" "))),
            ("num_peers", num_peers.to_string()),
            ("last_contact", last_contact),
        ])
    }
}
