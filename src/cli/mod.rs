//! The command line: Consul's subcommands and single-dash flags. Every command but
//! `agent` and `version` is a client of a running agent's HTTP API.
//!
//! Go's flag package accepts `-flag`, `--flag`, `-flag=value` and `-flag value`,
//! and stops at the first argument that is not a flag; clap only knows the
//! double-dash form and takes flags anywhere, so argv is normalised first, using
//! the clap definitions to know which flags take a value.

pub mod catalog;
pub mod child;
pub mod client;
pub mod event;
pub mod http_flags;
pub mod info;
pub mod keygen;
pub mod keyring;
pub mod kv;
pub mod lock;
pub mod maint;
pub mod members;
pub mod monitor;
pub mod operator;
pub mod rtt;
pub mod services;
pub mod snapshot;
pub mod ui;
pub mod validate;
pub mod version;
pub mod watch;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::AgentFlags;

#[derive(Parser)]
#[command(
    name = "concord",
    about = "A drop-in, wire-compatible replacement for the Consul agent",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs an agent (server or client).
    Agent(Box<AgentFlags>),
    /// Prints the version.
    Version(version::VersionArgs),
    /// Lists the members of a Consul cluster.
    Members(members::MembersArgs),
    /// Tell Consul agent to join cluster.
    Join(members::JoinArgs),
    /// Gracefully leaves the Consul cluster and shuts down.
    Leave(members::LeaveArgs),
    /// Forces a member of the cluster to enter the "left" state.
    ForceLeave(members::ForceLeaveArgs),
    /// Fire a new event.
    Event(event::EventArgs),
    /// Manages gossip layer encryption keys.
    Keyring(keyring::KeyringArgs),
    /// Provides debugging information for operators.
    Info(info::InfoArgs),
    /// Triggers the agent to reload configuration files.
    Reload(info::ReloadArgs),
    /// Provides cluster-level tools for Consul operators.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Saves, restores and inspects snapshots of Consul server state.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Interact with the key-value store.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Interact with the catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Interact with services.
    #[command(subcommand)]
    Services(services::ServicesCommand),
    /// Generates a new encryption key.
    Keygen(keygen::KeygenArgs),
    /// Validate config files/directories.
    Validate(validate::ValidateArgs),
    /// Controls node or service maintenance mode.
    Maint(maint::MaintArgs),
    /// Estimates network round trip time between nodes.
    Rtt(rtt::RttArgs),
    /// Stream logs from a Consul agent.
    Monitor(monitor::MonitorArgs),
    /// Execute a command holding a lock.
    Lock(lock::LockArgs),
    /// Watch for changes in Consul.
    Watch(watch::WatchArgs),
}

/// Runs a command other than `agent`; returns the exit code.
pub fn run(command: Command) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return ui::fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        match &command {
            Command::Agent(_) => unreachable!("the agent runs from main"),
            Command::Version(v) => version::run(v),
            Command::Members(a) => members::members(a).await,
            Command::Join(a) => members::join(a).await,
            Command::Leave(a) => members::leave(a).await,
            Command::ForceLeave(a) => members::force_leave(a).await,
            Command::Event(a) => event::run(a).await,
            Command::Keyring(a) => keyring::run(a).await,
            Command::Info(a) => info::info(a).await,
            Command::Reload(a) => info::reload(a).await,
            Command::Operator(c) => operator::run(c).await,
            Command::Snapshot(c) => snapshot::run(c).await,
            Command::Kv(c) => kv::run(c).await,
            Command::Catalog(c) => catalog::run(c).await,
            Command::Services(c) => services::run(c).await,
            Command::Keygen(a) => keygen::run(a),
            Command::Validate(a) => validate::run(a),
            Command::Maint(a) => maint::run(a).await,
            Command::Rtt(a) => rtt::run(a).await,
            Command::Monitor(a) => monitor::run(a).await,
            Command::Lock(a) => lock::run(a).await,
            Command::Watch(a) => watch::run(a).await,
        }
    })
}

/// The help text of a subcommand, for commands that print it on misuse as Consul does.
pub(crate) fn usage(path: &[&str]) -> String {
    let mut cmd = Cli::command();
    cmd.build();
    for name in path {
        match cmd.find_subcommand(name) {
            Some(s) => cmd = s.clone(),
            None => break,
        }
    }
    cmd.render_help().to_string()
}

/// Rewrites Go-style arguments for clap: `-flag` becomes `--flag`, a flag's
/// separate value is attached (`--flag=value`, so a value may start with `-`),
/// and the first non-flag argument of a command that has no subcommands ends
/// flag parsing, as in Go (`--` is inserted; everything after is positional).
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut root = Cli::command();
    root.build();
    normalize_with(&root, args)
}

fn normalize_with(root: &clap::Command, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut args = args.into_iter().peekable();
    let mut out: Vec<String> = args.next().into_iter().collect();
    let mut cmd = root;
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let is_flag = arg.len() > 1 && arg.starts_with('-');
        if !is_flag {
            if let Some(sub) = cmd.find_subcommand(&arg) {
                cmd = sub;
                out.push(arg);
                continue;
            }
            if cmd.has_subcommands() {
                // Unknown command: clap reports it.
                out.push(arg);
                out.extend(args);
                break;
            }
            out.push("--".to_string());
            out.push(arg);
            out.extend(args);
            break;
        }
        let body = arg
            .strip_prefix("--")
            .unwrap_or_else(|| &arg[1..])
            .to_string();
        if body == "h" {
            out.push("-h".to_string());
            continue;
        }
        let name = body.split_once('=').map_or(body.as_str(), |(n, _)| n);
        let def = cmd.get_arguments().find(|a| {
            a.get_long() == Some(name)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        });
        let mut flag = format!("--{body}");
        if !body.contains('=')
            && let Some(def) = def
            && let Some(range) = def.get_num_args()
        {
            // A flag that needs a value takes the next argument whatever it looks
            // like; one whose value is optional (and not `=`-only) takes it unless
            // it looks like a flag.
            let takes_next = if range.min_values() > 0 {
                true
            } else {
                range.max_values() > 0
                    && !def.is_require_equals_set()
                    && args.peek().is_some_and(|v| !v.starts_with('-'))
            };
            if takes_next && let Some(value) = args.next() {
                flag = format!("--{body}={value}");
            }
        }
        out.push(flag);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "concord",
                "agent",
                "-dev",
                "-http-port=8501",
                "-config-file",
                "a.json",
                "-h",
            ]),
            vec![
                "concord",
                "agent",
                "--dev",
                "--http-port=8501",
                "--config-file=a.json",
                "-h",
            ]
        );
    }

    #[test]
    fn flag_values_may_look_like_flags_or_numbers() {
        assert_eq!(
            norm(&["concord", "agent", "-dns-port", "-1"]),
            vec!["concord", "agent", "--dns-port=-1"]
        );
        assert_eq!(
            norm(&["concord", "kv", "get", "-separator", "-", "k"]),
            vec!["concord", "kv", "get", "--separator=-", "--", "k"]
        );
    }

    #[test]
    fn the_first_positional_ends_the_flags() {
        assert_eq!(
            norm(&[
                "concord",
                "kv",
                "put",
                "-cas",
                "-modify-index",
                "5",
                "k",
                "-v",
                "-"
            ]),
            vec![
                "concord",
                "kv",
                "put",
                "--cas",
                "--modify-index=5",
                "--",
                "k",
                "-v",
                "-"
            ]
        );
        assert_eq!(
            norm(&["concord", "operator", "raft", "list-peers", "-stale"]),
            vec!["concord", "operator", "raft", "list-peers", "--stale"]
        );
        assert_eq!(
            norm(&["concord", "event", "-name=x", "--", "-p"]),
            vec!["concord", "event", "--name=x", "--", "-p"]
        );
    }

    #[test]
    fn optional_values_follow_only_when_allowed() {
        // Go-style booleans only take `=value`; set-config's booleans also take
        // the next word, as Consul accepts for that command.
        assert_eq!(
            norm(&["concord", "members", "-detailed", "-wan=false"]),
            vec!["concord", "members", "--detailed", "--wan=false"]
        );
        assert_eq!(
            norm(&[
                "concord",
                "operator",
                "autopilot",
                "set-config",
                "-cleanup-dead-servers",
                "false",
                "-max-trailing-logs",
                "10",
            ]),
            vec![
                "concord",
                "operator",
                "autopilot",
                "set-config",
                "--cleanup-dead-servers=false",
                "--max-trailing-logs=10",
            ]
        );
    }

    #[test]
    fn every_command_parses() {
        for line in [
            "concord members -detailed -status=alive -http-addr=127.0.0.1:1",
            "concord join -wan a b",
            "concord leave",
            "concord force-leave -prune n1",
            "concord event -name=deploy -node=web payload",
            "concord keyring -list -relay-factor=2",
            "concord info -token=x",
            "concord reload",
            "concord operator raft list-peers -stale",
            "concord operator raft remove-peer -id=x",
            "concord operator raft transfer-leader -id=x",
            "concord operator autopilot get-config -datacenter=dc1",
            "concord operator autopilot set-config -min-quorum=3 -server-stabilization-time=5s",
            "concord operator autopilot state -format=json",
            "concord snapshot save -append-filename=dc,version b.snap",
            "concord snapshot restore b.snap",
            "concord snapshot inspect -kvdetails -kvdepth=1 b.snap",
            "concord kv get -recurse -keys -separator= app",
            "concord kv put -flags=3 -base64 k dg==",
            "concord kv delete -recurse app",
            "concord kv export app",
            "concord kv import -prefix=x @f.json",
            "concord catalog datacenters",
            "concord catalog nodes -detailed -node-meta=a=b -node-meta=c=d -near=_agent",
            "concord catalog services -tags -node=n1",
            "concord services register -name=web -port=80 -tag=a -tag=b -meta=k=v",
            "concord services register -id=web-1 web.json db.hcl",
            "concord services deregister -id=web",
            "concord keygen",
            "concord validate -quiet -config-format=hcl a.conf dir",
            "concord maint -enable -reason=upgrade -service=web",
            "concord maint",
            "concord rtt -wan a.dc1 b.dc2",
            "concord rtt n1",
            "concord monitor -log-level=debug -log-json",
            "concord lock -n=3 -timeout=5s -verbose -pass-stdin -shell=false app/x /bin/echo -n hi",
            "concord lock -try 1s -monitor-retry=0 -child-exit-code app/x exit 3",
            "concord watch -type=service -service=web -tag=a -tag=b -passingonly=true -stale",
            "concord watch -type=keyprefix -prefix=app -shell=false /usr/bin/jq .",
        ] {
            let args = norm(&line.split(' ').collect::<Vec<_>>());
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn go_booleans_accept_values() {
        let args = norm(&["concord", "kv", "get", "-recurse=false", "-keys=true"]);
        let Command::Kv(kv::KvCommand::Get(_)) = Cli::try_parse_from(&args).unwrap().command else {
            panic!("not kv get");
        };
        assert!(Cli::try_parse_from(norm(&["concord", "kv", "get", "-recurse=maybe"])).is_err());
    }
}
