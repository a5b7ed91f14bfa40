//! `consul catalog datacenters|nodes|services` (Consul's `command/catalog`).

use std::collections::BTreeMap;

use clap::{ArgAction, Args, Subcommand};
use serde::Deserialize;

use super::client::{Client, Request};
use super::http_flags::{ClientFlags, ServerFlags};
use super::ui::{self, DELIM, columnize, fail};
use crate::config::flags::parse_go_bool;

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Lists all known datacenters.
    Datacenters(DatacentersArgs),
    /// Lists all nodes in the given datacenter.
    Nodes(NodesArgs),
    /// Lists all registered services in a datacenter.
    Services(ServicesArgs),
}

pub async fn run(cmd: &CatalogCommand) -> i32 {
    match cmd {
        CatalogCommand::Datacenters(a) => datacenters(a).await,
        CatalogCommand::Nodes(a) => nodes(a).await,
        CatalogCommand::Services(a) => services(a).await,
    }
}

/// These commands take no arguments and say so in Consul's words.
fn no_args(extra: &[String]) -> Result<(), i32> {
    if extra.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "Too many arguments (expected 0, got {})",
            extra.len()
        )))
    }
}

fn connect(http: &ClientFlags, server: &ServerFlags) -> Result<Client, i32> {
    Client::new(http, Some(server))
        .map_err(|e| fail(format!("Error connecting to Consul agent: {e}")))
}

/// `-node-meta key=value` pairs as the `node-meta=key:value` parameters.
fn node_meta<'c>(mut req: Request<'c>, pairs: &[String]) -> Result<Request<'c>, i32> {
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(fail(format!("missing \"=\" value in argument: {p}")));
        };
        req = req.add_param("node-meta", format!("{k}:{v}"));
    }
    Ok(req)
}

#[derive(Args, Debug)]
pub struct DatacentersArgs {
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(hide = true)]
    extra: Vec<String>,
}

async fn datacenters(args: &DatacentersArgs) -> i32 {
    if let Err(code) = no_args(&args.extra) {
        return code;
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client
        .get("/v1/catalog/datacenters")
        .json_ok::<Vec<String>>()
        .await
    {
        Ok(dcs) => {
            for dc in dcs {
                ui::output(&dc);
            }
            0
        }
        Err(e) => fail(format!("Error listing datacenters: {e}")),
    }
}

#[derive(Args, Debug)]
pub struct NodesArgs {
    /// Filter expression over the nodes.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    filter: String,
    /// Output the full node IDs, tagged addresses and metadata.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    detailed: bool,
    /// Sort by estimated round-trip time from this node (`_agent` for this agent).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    near: String,
    /// Only nodes with this `key=value` metadata (repeatable).
    #[arg(long = "node-meta", action = ArgAction::Append, value_name = "key=value")]
    node_meta: Vec<String>,
    /// Only nodes providing this service (by name or ID).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "id or name"
    )]
    service: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// A node row's fields, from `/v1/catalog/nodes` or `/v1/catalog/service/:s`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeRow {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    datacenter: String,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, String>>,
    /// `Meta` on a node; `NodeMeta` on a service instance.
    #[serde(default, alias = "NodeMeta")]
    meta: Option<BTreeMap<String, String>>,
}

/// `k=v` pairs sorted by key, joined with ", ".
fn map_to_kv(m: &Option<BTreeMap<String, String>>) -> String {
    m.iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn nodes_table(nodes: &[NodeRow], detailed: bool) -> String {
    let d = DELIM;
    let mut rows = Vec::with_capacity(nodes.len() + 1);
    if detailed {
        rows.push(format!("Node{d}ID{d}Address{d}DC{d}TaggedAddresses{d}Meta"));
        for n in nodes {
            rows.push(format!(
                "{}{d}{}{d}{}{d}{}{d}{}{d}{}",
                n.node,
                n.id,
                n.address,
                n.datacenter,
                map_to_kv(&n.tagged_addresses),
                map_to_kv(&n.meta)
            ));
        }
    } else {
        rows.push(format!("Node{d}ID{d}Address{d}DC"));
        for n in nodes {
            // Only the first group of the ID, as Consul shortens it.
            let id = match n.id.find('-') {
                Some(i) if i > 0 => &n.id[..i],
                _ => &n.id,
            };
            rows.push(format!(
                "{}{d}{id}{d}{}{d}{}",
                n.node, n.address, n.datacenter
            ));
        }
    }
    columnize(&rows)
}

async fn nodes(args: &NodesArgs) -> i32 {
    if let Err(code) = no_args(&args.extra) {
        return code;
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = if args.service.is_empty() {
        "/v1/catalog/nodes".to_string()
    } else {
        format!("/v1/catalog/service/{}", args.service)
    };
    let req = client
        .get(&path)
        .param_if(!args.near.is_empty(), "near", &args.near)
        .param_if(!args.filter.is_empty(), "filter", &args.filter);
    let req = match node_meta(req, &args.node_meta) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let nodes: Vec<NodeRow> = match req.json_ok().await {
        Ok(n) => n,
        Err(e) if args.service.is_empty() => return fail(format!("Error listing nodes: {e}")),
        Err(e) => return fail(format!("Error listing nodes for service: {e}")),
    };
    if nodes.is_empty() {
        ui::error("No nodes match the given query - try expanding your search.");
        return 0;
    }
    ui::output(&nodes_table(&nodes, args.detailed));
    0
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Filter expression over the services.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    filter: String,
    /// Only the services of this node (by name or ID).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "id or name"
    )]
    node: String,
    /// Only services on nodes with this `key=value` metadata (repeatable).
    #[arg(long = "node-meta", action = ArgAction::Append, value_name = "key=value")]
    node_meta: Vec<String>,
    /// Show each service's tags beside it.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    tags: bool,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(hide = true)]
    extra: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CatalogNode {
    #[serde(default)]
    services: Option<BTreeMap<String, NodeService>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeService {
    service: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

async fn services(args: &ServicesArgs) -> i32 {
    if let Err(code) = no_args(&args.extra) {
        return code;
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !args.node.is_empty() {
        let req = client
            .get(&format!("/v1/catalog/node/{}", args.node))
            .param_if(!args.filter.is_empty(), "filter", &args.filter);
        let req = match node_meta(req, &args.node_meta) {
            Ok(r) => r,
            Err(code) => return code,
        };
        match req.json_ok::<Option<CatalogNode>>().await {
            Ok(node) => {
                for s in node
                    .and_then(|n| n.services)
                    .into_iter()
                    .flatten()
                    .map(|(_, s)| s)
                {
                    services
                        .entry(s.service)
                        .or_default()
                        .extend(s.tags.unwrap_or_default());
                }
            }
            Err(e) => return fail(format!("Error listing services for node: {e}")),
        }
    } else {
        let req = client.get("/v1/catalog/services").param_if(
            !args.filter.is_empty(),
            "filter",
            &args.filter,
        );
        let req = match node_meta(req, &args.node_meta) {
            Ok(r) => r,
            Err(code) => return code,
        };
        match req.json_ok::<BTreeMap<String, Option<Vec<String>>>>().await {
            Ok(m) => {
                services = m
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect()
            }
            Err(e) => return fail(format!("Error listing services: {e}")),
        }
    }
    if services.is_empty() {
        ui::error("No services match the given query - try expanding your search.");
        return 0;
    }
    if args.tags {
        ui::output(&tags_table(services));
    } else {
        for name in services.keys() {
            ui::output(name);
        }
    }
    0
}

/// `name   tag1,tag2` lines, aligned by tabwriter, surrounding space trimmed.
fn tags_table(services: BTreeMap<String, Vec<String>>) -> String {
    let mut text = String::new();
    for (name, mut tags) in services {
        tags.sort();
        text.push_str(&format!("{name}\t{}\n", tags.join(",")));
    }
    ui::tabwrite(&text, 0, 6).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_shortened_unless_detailed() {
        let nodes = vec![NodeRow {
            id: "ab12cd34-0000-1111-2222-333344445555".into(),
            node: "n1".into(),
            address: "127.0.0.1".into(),
            datacenter: "dc1".into(),
            tagged_addresses: Some(
                [("lan".to_string(), "127.0.0.1".to_string())]
                    .into_iter()
                    .collect(),
            ),
            meta: Some(
                [
                    ("b".to_string(), "2".to_string()),
                    ("a".to_string(), "1".to_string()),
                ]
                .into_iter()
                .collect(),
            ),
        }];
        assert_eq!(
            nodes_table(&nodes, false),
            "Node  ID        Address    DC\nn1    ab12cd34  127.0.0.1  dc1"
        );
        assert!(nodes_table(&nodes, true).ends_with(
            "n1    ab12cd34-0000-1111-2222-333344445555  127.0.0.1  dc1  lan=127.0.0.1    a=1, b=2"
        ));
    }

    #[test]
    fn tags_are_sorted_and_aligned() {
        let services = [
            ("consul".to_string(), vec![]),
            (
                "web".to_string(),
                vec!["v2".to_string(), "prod".to_string()],
            ),
        ]
        .into_iter()
        .collect();
        // Only the ends of the whole text are trimmed, as in Consul: a service
        // without tags keeps its padding.
        assert_eq!(tags_table(services), "consul      \nweb         prod,v2");
    }
}
