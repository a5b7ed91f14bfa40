//! The blocking-query helper every read endpoint shares: consistency handling,
//! Consul's index rules (`index`/`wait` with the default, maximum and jitter, the
//! not-found rule), and the metadata the response headers carry.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use super::error::ApiError;
use super::query::{Consistency, QueryOptions};
use crate::agent::Agent;
use crate::raft::ConsensusError;
use crate::state::{ReaderRef, WatchKey};

/// What a query function found.
#[derive(Debug, Clone)]
pub struct Found<T> {
    pub index: u64,
    pub value: T,
    /// `false` when the object asked for does not exist (a missing KV key): a
    /// blocking query then keeps waiting until it appears, as Consul's does.
    pub exists: bool,
}

impl<T> Found<T> {
    pub fn new(index: u64, value: T) -> Self {
        Found {
            index,
            value,
            exists: true,
        }
    }

    pub fn missing(index: u64, value: T) -> Self {
        Found {
            index,
            value,
            exists: false,
        }
    }
}

/// Response metadata for the `X-Consul-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct QueryMeta {
    pub index: u64,
    pub known_leader: bool,
    pub last_contact_ms: u64,
    /// `None` where Consul leaves `X-Consul-Effective-Consistency` out (KV, sessions).
    pub consistency: Option<Consistency>,
}

pub struct Answer<T> {
    pub meta: QueryMeta,
    pub value: T,
}

/// How long a blocking query may wait: `wait` clamped to `max_query_time`,
/// `default_query_time` when unset, plus up to wait/16 of jitter.
pub fn wait_budget(agent: &Agent, wait: Duration) -> Duration {
    let max = agent.config.max_query_time;
    let mut wait = if wait.is_zero() {
        agent.config.default_query_time
    } else {
        wait.min(max)
    };
    let jitter_cap = wait.as_nanos() as u64 / 16;
    if jitter_cap > 0 {
        wait += Duration::from_nanos(rand::rng().random_range(0..jitter_cap));
    }
    wait
}

/// Makes sure this server may answer `opts`' read in its consistency mode.
pub async fn check_consistency(agent: &Agent, opts: &QueryOptions) -> Result<(), ApiError> {
    check_mode(agent, opts.consistency, opts.reroutable).await
}

/// Makes sure this server may answer in `mode`. With `reroutable` (the request
/// came here because this server led, and may still be forwarded), a server
/// that finds it no longer leads answers with a [`ApiError::deposed`] error,
/// which the forwarding middleware turns into a forward to the new leader.
pub async fn check_mode(
    agent: &Agent,
    mode: Consistency,
    reroutable: bool,
) -> Result<(), ApiError> {
    let consensus = &agent.consensus;
    let linearize = || async {
        consensus.linearize().await.map_err(|e| {
            let lost = matches!(e, ConsensusError::NotLeader(_)) || !consensus.is_leader();
            let e = ApiError::from(e);
            if reroutable && lost { e.deposed() } else { e }
        })
    };
    match mode {
        Consistency::Stale => Ok(()),
        Consistency::Consistent => linearize().await,
        Consistency::Default => {
            if !consensus.is_leader() && !consensus.wait_for_leader(consensus.hold_timeout).await {
                return Err(ApiError::internal("No cluster leader"));
            }
            if !consensus.is_leader() {
                // Leadership was lost since the request was routed here.
                if reroutable {
                    return Err(ApiError::internal("No cluster leader").deposed());
                }
                // A follower sees a default-mode read only when the hop limit
                // kept it from forwarding: it answers from its own copy.
                return Ok(());
            }
            if consensus.lease_read_ok() {
                return Ok(());
            }
            // A leader that cannot be sure no newer leader exists (or has not yet
            // caught up with the last one) confirms with a quorum rather than
            // answer from a state the majority may have moved past.
            linearize().await
        }
    }
}

pub fn meta(agent: &Agent, index: u64, consistency: Option<Consistency>) -> QueryMeta {
    QueryMeta {
        index: index.max(1),
        known_leader: agent.consensus.leader().is_some(),
        last_contact_ms: agent.consensus.last_contact_ms(),
        consistency,
    }
}

/// Runs `query` once, or — with `?index` — again after every relevant change until the
/// index passes the client's or the wait runs out (answering with what is current).
pub async fn blocking<T>(
    agent: &Agent,
    opts: &QueryOptions,
    watch: &[WatchKey],
    report_consistency: bool,
    mut query: impl FnMut(ReaderRef<'_>) -> crate::state::Result<Found<T>>,
) -> Result<Answer<T>, ApiError> {
    let mut read = || {
        let found = agent
            .store
            .read()
            .map_err(ApiError::from)
            .and_then(|reader| Ok(query(reader.view())?));
        std::future::ready(found)
    };
    block_until_changed(agent, opts, watch, report_consistency, &mut read).await
}

/// [`blocking`] for reads whose whole answer, index and rendered body, follows
/// from the store snapshot and the request: concurrent requests for the same
/// answer share one computation (see [`super::shared`]). `label` names the
/// endpoint and what its path selects (`health/service/web`); the query string,
/// token and agent node complete the key.
pub async fn blocking_shared(
    agent: &Agent,
    opts: &QueryOptions,
    label: &str,
    watch: &[WatchKey],
    report_consistency: bool,
    query: impl Fn(ReaderRef<'_>) -> Result<Found<Bytes>, ApiError> + Sync,
) -> Result<Answer<Bytes>, ApiError> {
    let key = &opts.share_key(label);
    let query = &query;
    let mut read = move || agent.shared_answers.get(&agent.store, key, query);
    block_until_changed(agent, opts, watch, report_consistency, &mut read).await
}

/// The blocking loop both helpers share; `read` runs the query once on the
/// current state.
async fn block_until_changed<T, F>(
    agent: &Agent,
    opts: &QueryOptions,
    watch: &[WatchKey],
    report_consistency: bool,
    read: &mut impl FnMut() -> F,
) -> Result<Answer<T>, ApiError>
where
    F: Future<Output = Result<Found<T>, ApiError>>,
{
    let label = report_consistency.then_some(opts.consistency);
    check_consistency(agent, opts).await?;
    if opts.min_index == 0 {
        let found = read().await?;
        return Ok(Answer {
            meta: meta(agent, found.index, label),
            value: found.value,
        });
    }

    let deadline = Instant::now() + wait_budget(agent, opts.wait);
    let mut min_index = opts.min_index;
    let mut not_found_before = false;
    loop {
        // Subscribe before reading so a write in between is not missed.
        let mut watches = agent.store.watches.subscribe(watch);
        let found = read().await?;
        if !found.exists {
            if not_found_before {
                min_index = found.index;
            }
            not_found_before = true;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if found.index > min_index || remaining.is_zero() {
            return Ok(Answer {
                meta: meta(agent, found.index, label),
                value: found.value,
            });
        }
        // A parked query holds no answer: with thousands of watchers on a large
        // service, keeping stale copies would cost more than the query itself.
        drop(found);
        let woke = tokio::time::timeout(remaining, watches.changed())
            .await
            .is_ok();
        if !woke {
            let found = read().await?;
            return Ok(Answer {
                meta: meta(agent, found.index, label),
                value: found.value,
            });
        }
        if opts.consistency == Consistency::Consistent {
            check_consistency(agent, opts).await?;
        }
    }
}
