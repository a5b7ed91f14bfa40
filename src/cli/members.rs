//! Cluster membership commands: `members`, `join`, `leave`, `force-leave`
//! (Consul's `command/members`, `join`, `leave`, `forceleave`).

use std::collections::BTreeMap;

use clap::{ArgAction, Args};
use serde::Deserialize;

use super::client::Client;
use super::http_flags::ClientFlags;
use super::ui::{self, DELIM, columnize, fail};
use crate::config::flags::parse_go_bool;

/// `consul members`: the gossip pool as this agent sees it.
#[derive(Args, Debug)]
pub struct MembersArgs {
    /// Provides detailed information about nodes.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    detailed: bool,
    /// If the agent is in server mode, lists the WAN pool instead.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    wan: bool,
    /// Only members whose status matches this regular expression.
    #[arg(long, default_value = ".*", value_name = "VALUE")]
    status: String,
    /// (Enterprise-only) Only members of this network segment.
    #[arg(long, default_value = "_all", value_name = "VALUE")]
    segment: String,
    /// Filter expression over the members.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    filter: String,
    #[command(flatten)]
    http: ClientFlags,
}

/// The fields of `/v1/agent/members` the table shows.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Member {
    name: String,
    addr: String,
    port: u16,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    status: i64,
}

/// serf's `MemberStatus.String()`.
fn status_name(status: i64) -> String {
    match status {
        0 => "none".to_string(),
        1 => "alive".to_string(),
        2 => "leaving".to_string(),
        3 => "left".to_string(),
        4 => "failed".to_string(),
        n => format!("unknown MemberStatus: {n}"),
    }
}

fn tag<'a>(m: &'a Member, key: &str) -> &'a str {
    m.tags.get(key).map_or("", String::as_str)
}

/// Go's `net.TCPAddr.String()`.
fn host_port(addr: &str, port: u16) -> String {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => format!(":{port}"),
    }
}

fn is_default_partition(p: &str) -> bool {
    p.is_empty() || p == "default"
}

pub async fn members(args: &MembersArgs) -> i32 {
    let status_re = match regex::Regex::new(&args.status) {
        Ok(r) => r,
        Err(e) => return fail(format!("Failed to compile status regexp: {e}")),
    };
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let req = client
        .get("/v1/agent/members")
        .param("segment", &args.segment)
        .param_if(args.wan, "wan", "1")
        .param_if(!args.filter.is_empty(), "filter", &args.filter);
    let mut members: Vec<Member> = match req.json_ok().await {
        Ok(m) => m,
        Err(e) => return fail(format!("Error retrieving members: {e}")),
    };

    // The table shows every member's partition and segment, filled in as Consul
    // does: servers span all segments when no segment was asked for.
    for m in &mut members {
        if tag(m, "ap").is_empty() {
            m.tags.insert("ap".into(), "default".into());
        }
        if is_default_partition(tag(m, "ap")) {
            if args.segment == "_all" && tag(m, "role") == "consul" {
                m.tags.insert("segment".into(), "<all>".into());
            } else if tag(m, "segment").is_empty() {
                m.tags.insert("segment".into(), "<default>".into());
            }
        } else {
            m.tags.insert("segment".into(), String::new());
        }
    }
    members.retain(|m| status_re.is_match(&status_name(m.status)));
    if members.is_empty() {
        return 2;
    }
    // Servers first, then the default partition, then by segment, partition, name.
    members.sort_by(|a, b| {
        let key = |m: &Member| {
            (
                tag(m, "role") != "consul",
                !is_default_partition(tag(m, "ap")),
                tag(m, "segment").to_string(),
                tag(m, "ap").to_string(),
                m.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let rows = if args.detailed {
        detailed_rows(&members)
    } else {
        standard_rows(&members)
    };
    ui::output(&columnize(&rows));
    0
}

fn standard_rows(members: &[Member]) -> Vec<String> {
    let d = DELIM;
    let mut rows = vec![format!(
        "Node{d}Address{d}Status{d}Type{d}Build{d}Protocol{d}DC{d}Partition{d}Segment"
    )];
    for m in members {
        let addr = host_port(&m.addr, m.port);
        let status = status_name(m.status);
        let build = match tag(m, "build") {
            "" => "< 0.3",
            b => b.split(':').next().unwrap_or(b),
        };
        let kind = match tag(m, "role") {
            "node" => "client",
            "consul" => "server",
            _ => {
                rows.push(format!(
                    "{}{d}{addr}{d}{status}{d}unknown{d}{d}{d}{d}{d}",
                    m.name
                ));
                continue;
            }
        };
        rows.push(format!(
            "{}{d}{addr}{d}{status}{d}{kind}{d}{build}{d}{}{d}{}{d}{}{d}{}",
            m.name,
            tag(m, "vsn"),
            tag(m, "dc"),
            tag(m, "ap"),
            tag(m, "segment"),
        ));
    }
    rows
}

fn detailed_rows(members: &[Member]) -> Vec<String> {
    let d = DELIM;
    let mut rows = vec![format!("Node{d}Address{d}Status{d}Tags")];
    for m in members {
        let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(format!(
            "{}{d}{}{d}{}{d}{}",
            m.name,
            host_port(&m.addr, m.port),
            status_name(m.status),
            tags.join(",")
        ));
    }
    rows
}

/// `consul join`: asks the agent to join the members at the given addresses.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Joins a server to another server in the WAN pool.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    wan: bool,
    #[command(flatten)]
    http: ClientFlags,
    /// Addresses of existing members.
    #[arg(value_name = "ADDRESS")]
    addresses: Vec<String>,
}

pub async fn join(args: &JoinArgs) -> i32 {
    if args.addresses.is_empty() {
        return ui::fail_with_usage("At least one address to join must be specified.", &["join"]);
    }
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let mut joined = 0;
    for addr in &args.addresses {
        let res = client
            .put(&format!("/v1/agent/join/{addr}"))
            .param_if(args.wan, "wan", "1")
            .send_ok()
            .await;
        match res {
            Ok(_) => joined += 1,
            Err(e) => ui::error(&format!("Error joining address '{addr}': {e}")),
        }
    }
    if joined == 0 {
        return fail("Failed to join any nodes.");
    }
    ui::output(&format!(
        "Successfully joined cluster by contacting {joined} nodes."
    ));
    0
}

/// `consul leave`: the agent leaves the cluster gracefully and shuts down.
#[derive(Args, Debug)]
pub struct LeaveArgs {
    #[command(flatten)]
    http: ClientFlags,
    #[arg(hide = true)]
    extra: Vec<String>,
}

pub async fn leave(args: &LeaveArgs) -> i32 {
    if !args.extra.is_empty() {
        // Go prints the slice as `[a b]`, then the help on stdout.
        ui::error(&format!(
            "Error found unexpected args: [{}]",
            args.extra.join(" ")
        ));
        ui::output(&super::usage(&["leave"]));
        return 1;
    }
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    if let Err(e) = client.put("/v1/agent/leave").send_ok().await {
        return fail(format!("Error leaving: {e}"));
    }
    ui::output("Graceful leave complete");
    0
}

/// `consul force-leave`: moves a failed member to "left" (or forgets it with -prune).
#[derive(Args, Debug)]
pub struct ForceLeaveArgs {
    /// Remove agent completely from list of members.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    prune: bool,
    /// Exclusively leave the agent from the WAN serf pool.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    wan: bool,
    #[command(flatten)]
    http: ClientFlags,
    /// The member's node name.
    #[arg(value_name = "NAME")]
    nodes: Vec<String>,
}

pub async fn force_leave(args: &ForceLeaveArgs) -> i32 {
    let [node] = args.nodes.as_slice() else {
        return ui::fail_with_usage(
            "A single node name must be specified to force leave.",
            &["force-leave"],
        );
    };
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let res = client
        .put(&format!("/v1/agent/force-leave/{node}"))
        .param_if(args.prune, "prune", "1")
        .param_if(args.wan, "wan", "1")
        .send_ok()
        .await;
    match res {
        Ok(_) => 0,
        Err(e) => fail(format!("Error force leaving: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, status: i64) -> Member {
        Member {
            name: name.into(),
            addr: "10.0.0.1".into(),
            port: 8301,
            tags: [
                ("role".to_string(), role.to_string()),
                ("build".to_string(), "1.21.0:abc".to_string()),
                ("vsn".to_string(), "2".to_string()),
                ("dc".to_string(), "dc1".to_string()),
                ("ap".to_string(), "default".to_string()),
                (
                    "segment".to_string(),
                    if role == "consul" {
                        "<all>"
                    } else {
                        "<default>"
                    }
                    .to_string(),
                ),
            ]
            .into_iter()
            .collect(),
            status,
        }
    }

    #[test]
    fn standard_table_has_consuls_columns() {
        let rows = standard_rows(&[member("s1", "consul", 1), member("c1", "node", 4)]);
        assert_eq!(
            columnize(&rows),
            "Node  Address        Status  Type    Build   Protocol  DC   Partition  Segment\n\
             s1    10.0.0.1:8301  alive   server  1.21.0  2         dc1  default    <all>\n\
             c1    10.0.0.1:8301  failed  client  1.21.0  2         dc1  default    <default>"
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        assert_eq!(host_port("::1", 8301), "[::1]:8301");
        assert_eq!(host_port("bogus", 8301), ":8301");
    }
}
