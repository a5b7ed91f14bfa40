//! Shared answers: requests for the same read over the same store snapshot are
//! computed (and, for HTTP, rendered) once, and every requester gets the same
//! result: the same bytes for HTTP reads, the same instance list for DNS.
//!
//! When one check flips, every blocking query watching that service wakes at
//! once; without sharing each of them rebuilds and re-encodes the same answer
//! (milliseconds each for a large service). Here the first requester computes,
//! the others wait for it, and later requests reuse the answer until the store
//! changes.
//!
//! Correctness rests on one invariant: the answer kept under snapshot `S` was
//! computed from a snapshot no older than `S`. A requester that saw snapshot `s`
//! is only given an answer kept under some `S >= s`, so it never gets an answer
//! older than the state it observed (a woken watcher always sees the write that
//! woke it). Failed computations are not kept: the next requester tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::blocking::Found;
use super::error::ApiError;
use crate::state::{ReaderRef, Store};

/// How long an answer nobody asked for is kept.
const IDLE: Duration = Duration::from_secs(10);
/// Kept answers beyond this many bytes in all are dropped, least recently used first.
const MAX_BYTES: usize = 64 << 20;
/// Sweeps run at most this often (each one looks at every kept answer).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What a kept answer costs in memory, roughly (for the byte cap).
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl<T> Weigh for Arc<Vec<T>> {
    fn weight(&self) -> usize {
        // Decoded catalog rows: about a kilobyte each with their strings.
        self.len() * 1024
    }
}

type Cell<T> = Arc<OnceCell<Found<T>>>;

struct Slot<T> {
    /// The snapshot the answer is kept under (it was computed from this one or a newer one).
    snapshot: usize,
    cell: Cell<T>,
    used: Instant,
}

pub struct SharedAnswers<T = Bytes> {
    slots: Mutex<Slots<T>>,
}

impl<T> Default for SharedAnswers<T> {
    fn default() -> Self {
        SharedAnswers {
            slots: Mutex::new(Slots {
                by_key: HashMap::new(),
                last_sweep: None,
            }),
        }
    }
}

struct Slots<T> {
    by_key: HashMap<String, Slot<T>>,
    last_sweep: Option<Instant>,
}

impl<T: Clone + Weigh> SharedAnswers<T> {
    /// The answer for `key` at the store's current snapshot: computed by `query`
    /// on a fresh read transaction unless another request already did (or is doing) it.
    pub async fn get(
        &self,
        store: &Store,
        key: &str,
        query: &(dyn Fn(ReaderRef<'_>) -> Result<Found<T>, ApiError> + Sync),
    ) -> Result<Found<T>, ApiError> {
        let seen = store.read()?.snapshot_id();
        let cell = self.cell_for(key, seen);
        let found = cell
            .get_or_try_init(|| async {
                // A transaction opened now sees `seen` or newer: the invariant holds.
                let reader = store.read()?;
                query(reader.view())
            })
            .await?;
        Ok(found.clone())
    }

    /// The cell kept for `key` if it is no older than `seen`, else a new one.
    fn cell_for(&self, key: &str, seen: usize) -> Cell<T> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.by_key.get_mut(key)
            && slot.snapshot >= seen
        {
            slot.used = now;
            return slot.cell.clone();
        }
        let cell = Cell::default();
        slots.by_key.insert(
            key.to_string(),
            Slot {
                snapshot: seen,
                cell: cell.clone(),
                used: now,
            },
        );
        slots.sweep(now);
        cell
    }

    /// How many answers are kept (for tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.slots.lock().unwrap().by_key.len()
    }
}

impl<T: Weigh> Slots<T> {
    /// Drops answers idle for longer than [`IDLE`], then the least recently used
    /// ones until the rest fit in [`MAX_BYTES`].
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.by_key
            .retain(|_, slot| now.duration_since(slot.used) <= IDLE);
        let size = |slot: &Slot<T>| slot.cell.get().map_or(0, |f| f.value.weight());
        let mut total: usize = self.by_key.values().map(size).sum();
        if total <= MAX_BYTES {
            return;
        }
        let mut by_age: Vec<(Instant, String, usize)> = self
            .by_key
            .iter()
            .map(|(k, slot)| (slot.used, k.clone(), size(slot)))
            .collect();
        by_age.sort();
        for (_, key, len) in by_age {
            if total <= MAX_BYTES {
                break;
            }
            self.by_key.remove(&key);
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(counter: &AtomicUsize) -> Result<Found<Bytes>, ApiError> {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Ok(Found::new(n as u64, Bytes::from(format!("answer {n}"))))
    }

    #[tokio::test]
    async fn one_computation_per_snapshot_and_a_new_one_after_a_write() {
        let store = Store::open_scratch().unwrap();
        let shared = SharedAnswers::<Bytes>::default();
        let computed = AtomicUsize::new(0);
        let query = |_: ReaderRef<'_>| answer(&computed);

        let a = shared.get(&store, "k", &query).await.unwrap();
        let b = shared.get(&store, "k", &query).await.unwrap();
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert_eq!(a.value, b.value);

        // Another key is another answer.
        shared.get(&store, "other", &query).await.unwrap();
        assert_eq!(computed.load(Ordering::SeqCst), 2);

        // Any commit makes a new snapshot: the next request computes again.
        let mut batch = store.batch().unwrap();
        batch.put_meta("touch", &1u64).unwrap();
        batch.commit().unwrap();
        let c = shared.get(&store, "k", &query).await.unwrap();
        assert_eq!(computed.load(Ordering::SeqCst), 3);
        assert_ne!(a.value, c.value);
        assert_eq!(shared.kept(), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_computation() {
        let store = Store::open_scratch().unwrap();
        let shared = SharedAnswers::<Bytes>::default();
        let computed = AtomicUsize::new(0);
        let query = |_: ReaderRef<'_>| {
            std::thread::sleep(Duration::from_millis(20));
            answer(&computed)
        };
        let all = futures::future::join_all((0..50).map(|_| shared.get(&store, "k", &query))).await;
        assert!(all.iter().all(|r| r.as_ref().unwrap().value == "answer 0"));
        assert_eq!(computed.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_kept() {
        let store = Store::open_scratch().unwrap();
        let shared = SharedAnswers::<Bytes>::default();
        let calls = AtomicUsize::new(0);
        let query = |_: ReaderRef<'_>| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(ApiError::bad_request("first fails"))
            } else {
                Ok(Found::new(7, Bytes::from_static(b"ok")))
            }
        };
        assert!(shared.get(&store, "k", &query).await.is_err());
        assert_eq!(shared.get(&store, "k", &query).await.unwrap().index, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn sweep_drops_idle_answers_and_then_the_oldest_beyond_the_byte_cap() {
        let now = Instant::now();
        let full = |len: usize| {
            let cell = Cell::default();
            cell.set(Found::new(1, Bytes::from(vec![0u8; len])))
                .unwrap();
            cell
        };
        let mut slots = Slots {
            by_key: HashMap::new(),
            last_sweep: None,
        };
        let slot = |cell: Cell<Bytes>, age: Duration| Slot {
            snapshot: 1,
            cell,
            used: now - age,
        };
        slots
            .by_key
            .insert("idle".into(), slot(full(1), IDLE + Duration::from_secs(1)));
        slots.by_key.insert(
            "old".into(),
            slot(full(MAX_BYTES / 2 + 1), Duration::from_secs(3)),
        );
        slots.by_key.insert(
            "new".into(),
            slot(full(MAX_BYTES / 2), Duration::from_secs(1)),
        );
        slots.sweep(now);
        let mut left: Vec<_> = slots.by_key.keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["new"]);
    }
}
