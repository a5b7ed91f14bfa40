//! `consul keyring`: lists and rotates the gossip encryption keys through
//! `/v1/operator/keyring` (Consul's `command/keyring`).

use std::collections::BTreeMap;

use clap::{ArgAction, Args};
use serde::Deserialize;
use serde_json::json;

use super::client::Client;
use super::http_flags::ClientFlags;
use super::ui::{self, fail};
use crate::config::flags::parse_go_bool;

#[derive(Args, Debug)]
pub struct KeyringArgs {
    /// Install a new encryption key, broadcast to all members.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    install: String,
    /// Change the primary encryption key (it must be installed already).
    #[arg(
        long = "use",
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    use_key: String,
    /// Remove the given key; it must not be the primary key.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    remove: String,
    /// List all keys currently in use within the cluster.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    list: bool,
    /// List all primary keys currently in use within the cluster.
    #[arg(long = "list-primary", action = ArgAction::Set, default_value = "false",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool, value_name = "BOOL")]
    list_primary: bool,
    /// Relay each node's answer through this many other nodes (0 to 5).
    #[arg(
        long = "relay-factor",
        default_value = "0",
        value_name = "VALUE",
        allow_negative_numbers = true
    )]
    relay_factor: i64,
    /// Only ask local servers (no WAN traffic); list requests only.
    #[arg(long = "local-only", action = ArgAction::Set, default_value = "false",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool, value_name = "BOOL")]
    local_only: bool,
    #[command(flatten)]
    http: ClientFlags,
}

/// One pool's answer (`KeyringResponse`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoolKeys {
    #[serde(rename = "WAN", default)]
    wan: bool,
    #[serde(default)]
    datacenter: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    partition: String,
    #[serde(default)]
    keys: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    primary_keys: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    num_nodes: i64,
    #[serde(default)]
    messages: Option<BTreeMap<String, String>>,
}

/// Consul prints progress lines with this prefix (a `PrefixedUi`).
fn info(line: &str) {
    ui::output(&format!("==> {line}"));
}

pub async fn run(args: &KeyringArgs) -> i32 {
    let actions = [args.list, args.list_primary]
        .iter()
        .filter(|b| **b)
        .count()
        + [&args.install, &args.use_key, &args.remove]
            .iter()
            .filter(|k| !k.is_empty())
            .count();
    if actions == 0 {
        return fail(super::usage(&["keyring"]));
    }
    if actions > 1 {
        return fail("Only a single action is allowed");
    }
    if !(0..=5).contains(&args.relay_factor) {
        return fail("Error parsing relay factor: Relay factor must be in range: [0, 5]");
    }
    if args.local_only && !args.list {
        return fail("Error validating local-only: local-only can only be set for list requests");
    }
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let relay = args.relay_factor != 0;

    if args.list || args.list_primary {
        info(if args.list {
            "Gathering installed encryption keys..."
        } else {
            "Gathering installed primary encryption keys..."
        });
        let req = client
            .get("/v1/operator/keyring")
            .param_if(relay, "relay-factor", args.relay_factor.to_string())
            .param_if(args.local_only, "local-only", "true");
        let pools: Vec<PoolKeys> = match req.json_ok().await {
            Ok(p) => p,
            Err(e) => return fail(format!("error: {e}")),
        };
        for pool in &pools {
            let keys = if args.list {
                &pool.keys
            } else {
                &pool.primary_keys
            };
            ui::output(&format_pool(pool, keys.as_ref()));
        }
        return 0;
    }

    let (method, key, progress) = if !args.install.is_empty() {
        (
            "POST",
            &args.install,
            "Installing new gossip encryption key...",
        )
    } else if !args.use_key.is_empty() {
        (
            "PUT",
            &args.use_key,
            "Changing primary gossip encryption key...",
        )
    } else {
        ("DELETE", &args.remove, "Removing gossip encryption key...")
    };
    info(progress);
    let path = "/v1/operator/keyring";
    let req = match method {
        "POST" => client.post(path),
        "PUT" => client.put(path),
        _ => client.delete(path),
    };
    let res = req
        .param_if(relay, "relay-factor", args.relay_factor.to_string())
        .json(&json!({ "Key": key }))
        .send_ok()
        .await;
    match res {
        Ok(_) => 0,
        Err(e) => fail(format!("error: {e}")),
    }
}

/// A pool's block: a blank line, the pool's name, node messages, then each key
/// with how many nodes hold it. Keys are sorted (Go prints them in map order).
fn format_pool(pool: &PoolKeys, keys: Option<&BTreeMap<String, i64>>) -> String {
    let mut name = if pool.wan {
        "WAN".to_string()
    } else {
        format!("{} (LAN)", pool.datacenter)
    };
    if !pool.segment.is_empty() {
        name.push_str(&format!(" [{}]", pool.segment));
    } else if !(pool.partition.is_empty() || pool.partition == "default") {
        name.push_str(&format!(" [partition: {}]", pool.partition));
    }
    let mut out = format!("\n{name}:\n");
    for (from, msg) in pool.messages.iter().flatten() {
        out.push_str(&format!("  ===> {from}: {msg}\n"));
    }
    for (key, n) in keys.into_iter().flatten() {
        out.push_str(&format!("  {key} [{n}/{}]\n", pool.num_nodes));
    }
    out.trim_end_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_print_like_consul() {
        let pool: PoolKeys = serde_json::from_value(json!({
            "WAN": false, "Datacenter": "dc1", "Segment": "", "Partition": "",
            "Keys": {"k1=": 3, "k0=": 1}, "PrimaryKeys": {"k1=": 3}, "NumNodes": 3,
            "Messages": {}
        }))
        .unwrap();
        assert_eq!(
            format_pool(&pool, pool.keys.as_ref()),
            "\ndc1 (LAN):\n  k0= [1/3]\n  k1= [3/3]"
        );
    }
}
