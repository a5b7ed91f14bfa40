//! The watch registry: blocking queries subscribe to the exact things their answer
//! depends on (a KV key, a KV prefix, a service, a node, a table), and a committed write
//! wakes only the subscribers of what it touched.
//!
//! A subscription is taken *before* the query runs, so a write that lands between the
//! query and the wait is never missed (`tokio::sync::watch` remembers the version).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::watch;

/// Tables whose every change wakes table-level watchers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Table {
    Nodes,
    Services,
    Checks,
    Kvs,
    Sessions,
    Coordinates,
    ConnectCa,
    ConfigEntries,
    Autopilot,
}

/// One thing a query can depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKey {
    Table(Table),
    /// An exact KV key.
    Kv(String),
    /// Every KV key starting with this prefix.
    KvPrefix(String),
    /// A service name (lowercased): its instances, their checks and nodes.
    Service(String),
    /// A node name (lowercased): the node, its services and checks.
    Node(String),
    /// The whole store (snapshot restore).
    All,
}

/// What one committed write touched, gathered while the FSM applies it.
#[derive(Debug, Default)]
pub struct Touched {
    pub tables: BTreeSet<Table>,
    pub kv_keys: BTreeSet<String>,
    pub services: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
    pub everything: bool,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.kv_keys.is_empty()
            && self.services.is_empty()
            && self.nodes.is_empty()
            && !self.everything
    }

    pub fn merge(&mut self, other: Touched) {
        self.tables.extend(other.tables);
        self.kv_keys.extend(other.kv_keys);
        self.services.extend(other.services);
        self.nodes.extend(other.nodes);
        self.everything |= other.everything;
    }
}

/// Subscribers by key. Slots without receivers are dropped when next notified and by
/// `sweep`, so idle keys cost nothing once their watchers leave.
#[derive(Default)]
pub struct WatchRegistry {
    slots: Mutex<HashMap<WatchKey, watch::Sender<()>>>,
}

/// A set of subscriptions held by one blocking query.
pub struct WatchSet {
    receivers: Vec<watch::Receiver<()>>,
}

impl WatchSet {
    /// Resolves when any watched key changes after the subscription was taken.
    pub async fn changed(&mut self) {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let futures = self
            .receivers
            .iter_mut()
            .map(|rx| Box::pin(rx.changed()))
            .collect::<Vec<_>>();
        let _ = futures::future::select_all(futures).await;
    }
}

impl WatchRegistry {
    pub fn subscribe(&self, keys: &[WatchKey]) -> WatchSet {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut receivers = Vec::with_capacity(keys.len() + 1);
        for key in keys.iter().chain(std::iter::once(&WatchKey::All)) {
            let tx = slots
                .entry(key.clone())
                .or_insert_with(|| watch::channel(()).0);
            receivers.push(tx.subscribe());
        }
        WatchSet { receivers }
    }

    fn wake(slots: &mut HashMap<WatchKey, watch::Sender<()>>, key: &WatchKey) {
        if let Some(tx) = slots.get(key) {
            if tx.receiver_count() == 0 {
                slots.remove(key);
            } else {
                tx.send_replace(());
            }
        }
    }

    /// Wakes every subscriber whose answer the write may have changed.
    pub fn notify(&self, touched: &Touched) {
        if touched.is_empty() {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if touched.everything {
            for tx in slots.values() {
                tx.send_replace(());
            }
            return;
        }
        for t in &touched.tables {
            Self::wake(&mut slots, &WatchKey::Table(*t));
        }
        for key in &touched.kv_keys {
            Self::wake(&mut slots, &WatchKey::Kv(key.clone()));
            // Every prefix of the key, including the empty one, may be watched.
            let mut boundaries: Vec<usize> = key.char_indices().map(|(i, _)| i).collect();
            boundaries.push(key.len());
            for end in boundaries {
                Self::wake(&mut slots, &WatchKey::KvPrefix(key[..end].to_string()));
            }
        }
        for s in &touched.services {
            Self::wake(&mut slots, &WatchKey::Service(s.clone()));
        }
        for n in &touched.nodes {
            Self::wake(&mut slots, &WatchKey::Node(n.clone()));
        }
    }

    /// Drops slots nobody listens to any more.
    pub fn sweep(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|_, tx| tx.receiver_count() > 0);
    }

    /// How many keys have subscribers (for metrics).
    pub fn slot_count(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_write_wakes_only_its_watchers() {
        let reg = WatchRegistry::default();
        let mut exact = reg.subscribe(&[WatchKey::Kv("a/b".into())]);
        let mut prefix = reg.subscribe(&[WatchKey::KvPrefix("a/".into())]);
        let mut other = reg.subscribe(&[WatchKey::Kv("c".into())]);
        let mut touched = Touched::default();
        touched.kv_keys.insert("a/b".into());
        reg.notify(&touched);
        tokio::time::timeout(Duration::from_millis(100), exact.changed())
            .await
            .expect("exact watcher woken");
        tokio::time::timeout(Duration::from_millis(100), prefix.changed())
            .await
            .expect("prefix watcher woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), other.changed())
                .await
                .is_err(),
            "unrelated watcher must stay asleep"
        );
    }

    #[tokio::test]
    async fn a_write_before_the_wait_is_not_missed() {
        let reg = WatchRegistry::default();
        let mut set = reg.subscribe(&[WatchKey::Table(Table::Nodes)]);
        let mut touched = Touched::default();
        touched.tables.insert(Table::Nodes);
        reg.notify(&touched);
        tokio::time::timeout(Duration::from_millis(100), set.changed())
            .await
            .expect("remembered");
    }
}
