//! `consul rtt`: the round-trip time between two nodes as their network
//! coordinates estimate it, from the LAN coordinates (`/v1/coordinate/nodes`) or,
//! with `-wan`, the servers' WAN coordinates (`/v1/coordinate/datacenters`)
//! (Consul's `command/rtt`).

use std::collections::HashMap;

use clap::{ArgAction, Args};
use serde::Deserialize;

use super::client::Client;
use super::http_flags::ClientFlags;
use super::ui::{self, fail, go_quote};
use crate::config::flags::parse_go_bool;
use crate::structs::Coordinate;

#[derive(Args, Debug)]
pub struct RttArgs {
    /// Use WAN coordinates instead of LAN coordinates.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    wan: bool,
    #[command(flatten)]
    http: ClientFlags,
    /// One or two node names (`node.datacenter` with -wan).
    #[arg(value_name = "NODE")]
    nodes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LanEntry {
    node: String,
    #[serde(default)]
    segment: String,
    coord: Option<Coordinate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WanEntry {
    node: String,
    coord: Option<Coordinate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DatacenterMap {
    datacenter: String,
    #[serde(rename = "AreaID", default)]
    area_id: String,
    #[serde(default)]
    coordinates: Option<Vec<WanEntry>>,
}

#[derive(Deserialize)]
struct SelfConfig {
    #[serde(rename = "NodeName", default)]
    node_name: String,
    #[serde(rename = "Datacenter", default)]
    datacenter: String,
}

#[derive(Deserialize)]
struct AgentSelf {
    #[serde(rename = "Config")]
    config: SelfConfig,
}

/// Go's `strings.EqualFold` for the node names compared here.
fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The estimate in seconds as Serf's `DistanceTo(...).Seconds()` gives it: the
/// Euclidean distance of the vectors plus both heights, plus both adjustments
/// when that keeps it positive, truncated to whole nanoseconds as the
/// `time.Duration` it passes through is. `None` when the coordinates have
/// different dimensions (Serf panics there).
pub fn distance_seconds(a: &Coordinate, b: &Coordinate) -> Option<f64> {
    if a.vec.len() != b.vec.len() {
        return None;
    }
    let raw = a.distance_to(b);
    // A float-to-int conversion saturates in Rust; Go's is unspecified out of range.
    let nanos = (raw * 1.0e9) as i64;
    let (secs, rem) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    Some(secs as f64 + rem as f64 / 1.0e9)
}

/// Consul's output line for a pair of coordinates.
fn rtt_line(a: &str, b: &str, c1: &Coordinate, c2: &Coordinate, source: &str) -> String {
    match distance_seconds(c1, c2) {
        Some(secs) => format!(
            "Estimated {a} <-> {b} rtt: {:.3} ms (using {source} coordinates)",
            secs * 1000.0
        ),
        None => format!(
            "Error computing rtt between {a} and {b}: coordinate dimensionality does not match"
        ),
    }
}

/// Lib's `CoordinateSet.Intersect`: the coordinates of a common segment,
/// preferring the segment of a node that is in only one.
fn intersect<'a>(
    cs1: &'a HashMap<String, Coordinate>,
    cs2: &'a HashMap<String, Coordinate>,
) -> (Option<&'a Coordinate>, Option<&'a Coordinate>) {
    let mut segment = "";
    if cs1.len() == 1
        && let Some(s) = cs1.keys().next()
    {
        segment = s;
    }
    if cs2.len() == 1
        && let Some(s) = cs2.keys().next()
    {
        segment = s;
    }
    (cs1.get(segment), cs2.get(segment))
}

pub async fn run(args: &RttArgs) -> i32 {
    let mut nodes = args.nodes.clone();
    if nodes.is_empty() || nodes.len() > 2 {
        return ui::fail_with_usage("One or two node names must be specified", &["rtt"]);
    }
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };

    let (source, found) = if args.wan {
        if nodes.len() < 2 {
            match client.get("/v1/agent/self").json_ok::<AgentSelf>().await {
                Ok(me) => nodes.push(format!("{}.{}", me.config.node_name, me.config.datacenter)),
                Err(e) => return fail(format!("Unable to look up agent info: {e}")),
            }
        }
        let split = |n: &str| -> Option<(String, String)> {
            let parts: Vec<&str> = n.split('.').collect();
            match parts.as_slice() {
                [node, dc] => Some((node.to_string(), dc.to_string())),
                _ => None,
            }
        };
        let (Some((node1, dc1)), Some((node2, dc2))) = (split(&nodes[0]), split(&nodes[1])) else {
            return fail("Node names must be specified as <node name>.<datacenter> with -wan");
        };
        let dcs: Vec<DatacenterMap> = match client.get("/v1/coordinate/datacenters").json_ok().await
        {
            Ok(d) => d,
            Err(e) => return fail(format!("Error getting coordinates: {e}")),
        };
        // Both coordinates must come from the same network area.
        let (mut area1, mut area2) = (None::<&str>, None::<&str>);
        let (mut coord1, mut coord2) = (None, None);
        let mut found = None;
        'scan: for dc in &dcs {
            for entry in dc.coordinates.iter().flatten() {
                if dc.datacenter == dc1 && same_name(&entry.node, &node1) {
                    area1 = Some(&dc.area_id);
                    coord1 = entry.coord.as_ref();
                }
                if dc.datacenter == dc2 && same_name(&entry.node, &node2) {
                    area2 = Some(&dc.area_id);
                    coord2 = entry.coord.as_ref();
                }
                if area1.unwrap_or_default() == area2.unwrap_or_default()
                    && let (Some(c1), Some(c2)) = (coord1, coord2)
                {
                    found = Some((c1.clone(), c2.clone()));
                    break 'scan;
                }
            }
        }
        ("WAN", found)
    } else {
        if nodes.len() < 2 {
            match super::maint::node_name(&client).await {
                Ok(n) => nodes.push(n),
                Err(e) => return fail(format!("Unable to look up agent info: {e}")),
            }
        }
        let entries: Vec<LanEntry> = match client.get("/v1/coordinate/nodes").json_ok().await {
            Ok(e) => e,
            Err(e) => return fail(format!("Error getting coordinates: {e}")),
        };
        let (mut cs1, mut cs2) = (HashMap::new(), HashMap::new());
        for e in entries {
            let Some(coord) = e.coord else { continue };
            if same_name(&e.node, &nodes[0]) {
                cs1.insert(e.segment.clone(), coord.clone());
            }
            if same_name(&e.node, &nodes[1]) {
                cs2.insert(e.segment, coord);
            }
        }
        let found = match intersect(&cs1, &cs2) {
            (Some(c1), Some(c2)) => (c1.clone(), c2.clone()),
            (None, _) => {
                return fail(format!(
                    "Could not find a coordinate for node {}",
                    go_quote(&nodes[0])
                ));
            }
            (_, None) => {
                return fail(format!(
                    "Could not find a coordinate for node {}",
                    go_quote(&nodes[1])
                ));
            }
        };
        ("LAN", Some(found))
    };

    let Some((c1, c2)) = found else {
        // -wan found no pair in one area: neither coordinate counts.
        return fail(format!(
            "Could not find a coordinate for node {}",
            go_quote(&nodes[0])
        ));
    };
    if distance_seconds(&c1, &c2).is_none() {
        return fail(rtt_line(&nodes[0], &nodes[1], &c1, &c2, source));
    }
    ui::output(&rtt_line(&nodes[0], &nodes[1], &c1, &c2, source));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(vec: &[f64], height: f64, adjustment: f64) -> Coordinate {
        Coordinate {
            vec: vec.to_vec(),
            error: 1.5,
            adjustment,
            height,
        }
    }

    #[test]
    fn distance_is_euclid_plus_heights_plus_adjustments() {
        // |(3,4)| = 5 ms; heights 1 ms + 2 ms; adjustments 0.5 ms + 0.25 ms.
        let a = coord(&[0.003, 0.0], 0.001, 0.0005);
        let b = coord(&[0.0, 0.004], 0.002, 0.00025);
        let d = distance_seconds(&a, &b).unwrap();
        assert!((d - 0.00875).abs() < 1e-12, "{d}");
        assert_eq!(
            rtt_line("a", "b", &a, &b, "LAN"),
            "Estimated a <-> b rtt: 8.750 ms (using LAN coordinates)"
        );
    }

    #[test]
    fn negative_adjustments_apply_only_while_the_result_stays_positive() {
        // Raw 5 ms + 0 + 0; adjustments of -3 ms each would make it -1 ms: ignored.
        let a = coord(&[0.003, 0.0], 0.0, -0.003);
        let b = coord(&[0.0, 0.004], 0.0, -0.003);
        assert!((distance_seconds(&a, &b).unwrap() - 0.005).abs() < 1e-12);
        // -1 ms each leaves 3 ms: applied.
        let a = coord(&[0.003, 0.0], 0.0, -0.001);
        let b = coord(&[0.0, 0.004], 0.0, -0.001);
        assert!((distance_seconds(&a, &b).unwrap() - 0.003).abs() < 1e-12);
    }

    #[test]
    fn the_estimate_is_truncated_to_whole_nanoseconds() {
        // 1.0025009 ms passes through time.Duration as 1002500 ns, whose
        // millisecond value (just under 1.0025 as a float) rounds down, where the
        // untruncated value would round up.
        let a = coord(&[0.0010025009], 0.0, 0.0);
        let b = coord(&[0.0], 0.0, 0.0);
        assert_eq!(distance_seconds(&a, &b).unwrap(), 1_002_500.0 / 1.0e9);
        assert_eq!(
            rtt_line("a", "b", &a, &b, "WAN"),
            "Estimated a <-> b rtt: 1.002 ms (using WAN coordinates)"
        );
    }

    #[test]
    fn the_origin_to_itself_is_both_minimum_heights() {
        let o = Coordinate::default();
        assert_eq!(
            rtt_line("n", "n", &o, &o, "LAN"),
            "Estimated n <-> n rtt: 0.020 ms (using LAN coordinates)"
        );
    }

    #[test]
    fn mismatched_dimensions_are_an_error_not_a_panic() {
        let a = coord(&[0.0, 0.0], 0.0, 0.0);
        let b = coord(&[0.0], 0.0, 0.0);
        assert_eq!(distance_seconds(&a, &b), None);
    }

    #[test]
    fn intersect_prefers_a_single_segment() {
        let c = |x: f64| coord(&[x], 0.0, 0.0);
        let cs1 = HashMap::from([("".to_string(), c(1.0)), ("alpha".to_string(), c(2.0))]);
        let cs2 = HashMap::from([("alpha".to_string(), c(3.0))]);
        let (a, b) = intersect(&cs1, &cs2);
        assert_eq!((a.unwrap().vec[0], b.unwrap().vec[0]), (2.0, 3.0));
        let cs2 = HashMap::from([("beta".to_string(), c(3.0))]);
        let (a, b) = intersect(&cs1, &cs2);
        assert!(a.is_none() && b.is_some());
    }
}
