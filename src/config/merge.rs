//! Merging normalised config sources, following Consul's `Merge` rules:
//! nested blocks merge key by key, lists are concatenated (so `service`,
//! `checks`, `retry_join`, `recursors`, `watches`, ... accumulate across
//! files), maps (`node_meta`, `connect.ca_config`, ...) are replaced by a later
//! non-empty map, and every other value is replaced by the later one.

use serde_json::{Map as JsonMap, Value};

use super::file::schema::{Field, Kind, TOP};

/// Merges `later` into `acc` (both already normalised against `fields`).
pub fn merge_objects(
    acc: &mut JsonMap<String, Value>,
    later: JsonMap<String, Value>,
    fields: &'static [Field],
) {
    for (key, value) in later {
        let kind = fields
            .iter()
            .find(|f| f.0 == key)
            .map_or(Kind::Any, |f| f.1);
        match acc.get_mut(&key) {
            None => {
                acc.insert(key, value);
            }
            Some(existing) => merge_value(existing, value, kind),
        }
    }
}

fn merge_value(existing: &mut Value, later: Value, kind: Kind) {
    match kind {
        Kind::Struct(fields) => match (existing, later) {
            (Value::Object(a), Value::Object(b)) => merge_objects(a, b, fields),
            (slot, other) => *slot = other,
        },
        Kind::List | Kind::StrList => match (existing, later) {
            (Value::Array(a), Value::Array(b)) => a.extend(b),
            (slot, other) => *slot = other,
        },
        Kind::StrMap | Kind::DurMap | Kind::Map => {
            // An empty map does not clear an earlier one.
            let empty = matches!(&later, Value::Object(m) if m.is_empty());
            if !empty {
                *existing = later;
            }
        }
        _ => *existing = later,
    }
}

/// Merges a sequence of top-level sources in order.
pub fn merge_all<'a>(
    sources: impl IntoIterator<Item = &'a JsonMap<String, Value>>,
) -> JsonMap<String, Value> {
    let mut acc = JsonMap::new();
    for src in sources {
        merge_objects(&mut acc, src.clone(), TOP);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonMap<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn structs_merge_lists_append_maps_replace() {
        let a = obj(json!({
            "ports": {"http": 1, "dns": 2},
            "retry_join": ["a"],
            "services": [{"name": "x"}],
            "node_meta": {"k1": "v1"},
            "datacenter": "dc1",
        }));
        let b = obj(json!({
            "ports": {"http": 3},
            "retry_join": ["b"],
            "services": [{"name": "y"}],
            "node_meta": {"k2": "v2"},
            "datacenter": "dc2",
        }));
        let c = obj(json!({"node_meta": {}}));
        let merged = merge_all([&a, &b, &c]);
        assert_eq!(
            Value::Object(merged),
            json!({
                "ports": {"http": 3, "dns": 2},
                "retry_join": ["a", "b"],
                "services": [{"name": "x"}, {"name": "y"}],
                "node_meta": {"k2": "v2"},
                "datacenter": "dc2",
            })
        );
    }

    #[test]
    fn replace_blocks_are_not_merged() {
        let a = obj(
            json!({"locality": {"region": "r", "zone": "z"}, "dns_config": {"soa": {"retry": 1, "expire": 2}}}),
        );
        let b = obj(json!({"locality": {"region": "r2"}, "dns_config": {"soa": {"retry": 5}}}));
        let merged = merge_all([&a, &b]);
        assert_eq!(
            Value::Object(merged),
            json!({"locality": {"region": "r2"}, "dns_config": {"soa": {"retry": 5}}})
        );
    }
}
