//! `NilMap`: a Go `map[string]V` field, which can be nil. Consul keeps a map a
//! client never gave (or gave as `null`) as nil and answers `null` for it, while a
//! map given empty stays `{}`; reads treat nil as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NilMap<V>(pub Option<BTreeMap<String, V>>);

impl<V> Default for NilMap<V> {
    fn default() -> Self {
        NilMap(None)
    }
}

impl<V> NilMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.as_ref()?.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().flatten()
    }

    /// The map, nil read as empty.
    pub fn to_map(&self) -> BTreeMap<String, V>
    where
        V: Clone,
    {
        self.0.clone().unwrap_or_default()
    }
}

impl<V> From<BTreeMap<String, V>> for NilMap<V> {
    fn from(m: BTreeMap<String, V>) -> Self {
        NilMap(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nil_and_empty_stay_apart() {
        let nil: NilMap<String> = serde_json::from_str("null").unwrap();
        let empty: NilMap<String> = serde_json::from_str("{}").unwrap();
        assert_eq!(serde_json::to_string(&nil).unwrap(), "null");
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert_eq!(nil.to_map(), empty.to_map());
        let m: NilMap<String> = BTreeMap::from([("a".to_string(), "b".to_string())]).into();
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert_eq!(nil.get("a"), None);
    }
}
