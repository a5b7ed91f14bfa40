//! `consul lock`: runs a child process while holding a lock (`-n=1`) or a slot of
//! a semaphore (`-n` > 1) in the KV store, and stops the child when the lock is
//! lost (Consul's `command/lock`). The lock and the semaphore follow the Go api's
//! `Lock` and `Semaphore`: the same keys, flag values, JSON and session handling,
//! so concord's `lock` and Consul's tools contend for the same locks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{ArgAction, Args};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::child::{exit_text, forward_signals, send_signal, start_child};
use super::client::{ApiError, Client};
use super::http_flags::{ClientFlags, ServerFlags};
use super::kv::{KvPair as Pair, path_clean};
use super::ui::{self, fail, go_os_error, go_quote};
use crate::config::flags::parse_go_bool;
use crate::config::{format_go_duration, parse_go_duration_nanos};

/// The flags value marking a lock key (the Go api's `LockFlagValue`).
const LOCK_FLAG: u64 = 0x2ddccbc058a50c18;
/// The flags value marking a semaphore's keys (`SemaphoreFlagValue`).
const SEMAPHORE_FLAG: u64 = 0xe0f69a2baa414de0;
/// The key under the prefix that coordinates (both lock and semaphore use it, so
/// the two conflict visibly at one prefix).
const COORDINATION_KEY: &str = ".lock";
const SESSION_TTL: Duration = Duration::from_secs(15);
/// How long one blocking read waits while contending.
const WAIT_TIME: Duration = Duration::from_secs(15);
/// The pause after an acquisition refused under a lock delay.
const RETRY_TIME: Duration = Duration::from_secs(5);
/// The pause between the monitor's retries after a server error.
const MONITOR_RETRY_TIME: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL for a child whose lock is gone.
const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct LockArgs {
    /// Exit 2 if the child process exited with an error if this is true,
    /// otherwise this doesn't propagate an error from the child.
    #[arg(long = "child-exit-code", action = ArgAction::Set, default_value = "false",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool, value_name = "BOOL")]
    child_exit_code: bool,
    /// Optional limit on the number of concurrent lock holders. The underlying
    /// implementation switches from a lock to a semaphore when the value is
    /// greater than 1.
    #[arg(
        long = "n",
        default_value = "1",
        value_name = "INT",
        allow_negative_numbers = true
    )]
    limit: i64,
    /// Number of times to retry if Consul returns a 500 error while monitoring
    /// the lock, with a 1s wait between retries. 0 disables retries.
    #[arg(
        long = "monitor-retry",
        default_value = "3",
        value_name = "INT",
        allow_negative_numbers = true
    )]
    monitor_retry: i64,
    /// Optional name to associate with the lock session. If not provided, one is
    /// generated based on the provided child command.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    name: String,
    /// Pass stdin to the child process.
    #[arg(long = "pass-stdin", action = ArgAction::Set, default_value = "false",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool, value_name = "BOOL")]
    pass_stdin: bool,
    /// Use a shell to run the command (can set a custom shell via the SHELL
    /// environment variable).
    #[arg(long, action = ArgAction::Set, default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    shell: bool,
    /// Maximum amount of time to wait to acquire the lock, as a duration like
    /// "1s" or "3h". The default value is 0 (wait forever).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    timeout: Option<String>,
    /// DEPRECATED. Use -timeout instead.
    #[arg(
        long = "try",
        value_name = "DURATION",
        hide = true,
        allow_hyphen_values = true
    )]
    try_timeout: Option<String>,
    /// Enable verbose (debugging) output.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    verbose: bool,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// The key prefix, then the child command.
    #[arg(value_name = "PREFIX CHILD")]
    args: Vec<String>,
}

/// Go's `path.Join` of two elements.
fn path_join(a: &str, b: &str) -> String {
    let joined: Vec<&str> = [a, b].into_iter().filter(|s| !s.is_empty()).collect();
    if joined.is_empty() {
        return String::new();
    }
    path_clean(&joined.join("/"))
}

/// Go's `api.IsRetryableError`: a failed connection or a server error.
fn retryable(e: &ApiError) -> bool {
    match e {
        ApiError::Transport { .. } => true,
        other => other.to_string().contains("Unexpected response code: 500"),
    }
}

/// The KV calls the Go api's lock code makes.
#[derive(Clone)]
struct Kv {
    client: Arc<Client>,
}

impl Kv {
    /// A read, blocking on `index` for up to `wait` when both are given.
    async fn get(
        &self,
        path: &str,
        recurse: bool,
        index: u64,
        wait: Option<Duration>,
        consistent: bool,
    ) -> Result<(Vec<Pair>, u64), ApiError> {
        let resp = self
            .client
            .get(&format!("/v1/kv/{path}"))
            .param_if(recurse, "recurse", "")
            .param_if(index > 0, "index", index.to_string())
            .param_if(
                wait.is_some(),
                "wait",
                format!("{}ms", wait.unwrap_or_default().as_millis()),
            )
            .param_if(consistent, "consistent", "")
            .send()
            .await?;
        let idx = resp.index();
        if resp.status == 404 {
            return Ok((Vec::new(), idx));
        }
        Ok((resp.require_ok()?.decode()?, idx))
    }

    async fn get_one(
        &self,
        key: &str,
        index: u64,
        wait: Option<Duration>,
        consistent: bool,
    ) -> Result<(Option<Pair>, u64), ApiError> {
        let (pairs, idx) = self.get(key, false, index, wait, consistent).await?;
        Ok((pairs.into_iter().next(), idx))
    }

    /// A write that answers `true` or `false`: `op` is `acquire`, `release` or
    /// `cas`, with its value.
    async fn put(
        &self,
        key: &str,
        op: (&str, String),
        flags: u64,
        value: Vec<u8>,
    ) -> Result<bool, ApiError> {
        let resp = self
            .client
            .put(&format!("/v1/kv/{key}"))
            .param(op.0, op.1)
            .param_if(flags != 0, "flags", flags.to_string())
            .bytes(value)
            .send_ok()
            .await?;
        Ok(resp.says_true())
    }

    async fn delete_cas(&self, key: &str, index: u64) -> Result<bool, ApiError> {
        let resp = self
            .client
            .delete(&format!("/v1/kv/{key}"))
            .param("cas", index.to_string())
            .send_ok()
            .await?;
        Ok(resp.says_true())
    }

    async fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.client
            .delete(&format!("/v1/kv/{key}"))
            .send_ok()
            .await
            .map(|_| ())
    }
}

/// A session kept alive by renewing it at half its TTL, destroyed when `done`
/// fires (the Go api's `RenewPeriodic`).
async fn renew_periodic(client: Arc<Client>, id: String, done: CancellationToken) {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "TTL", default)]
        ttl: String,
    }
    let mut ttl = SESSION_TTL;
    let mut wait = ttl / 2;
    let mut last_renew = Instant::now();
    loop {
        if last_renew.elapsed() > ttl {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = done.cancelled() => {
                let _ = client.put(&format!("/v1/session/destroy/{id}")).send().await;
                return;
            }
        }
        match client.put(&format!("/v1/session/renew/{id}")).send().await {
            Ok(r) if r.status == 404 => return,
            Ok(r) => match r.require_ok().and_then(|r| r.decode::<Vec<Entry>>()) {
                Ok(entries) => {
                    let Some(entry) = entries.into_iter().next() else {
                        return;
                    };
                    if let Ok(n) = parse_go_duration_nanos(&entry.ttl)
                        && n > 0
                    {
                        ttl = Duration::from_nanos(n as u64);
                    }
                    wait = ttl / 2;
                    last_renew = Instant::now();
                }
                Err(_) => wait = Duration::from_secs(1),
            },
            Err(_) => wait = Duration::from_secs(1),
        }
    }
}

/// The JSON a semaphore keeps under its coordination key.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct SemaphoreLock {
    #[serde(rename = "Limit")]
    limit: i64,
    #[serde(rename = "Holders", default)]
    holders: Option<BTreeMap<String, bool>>,
}

impl SemaphoreLock {
    fn holders(&mut self) -> &mut BTreeMap<String, bool> {
        self.holders.get_or_insert_with(BTreeMap::new)
    }

    /// The coordination entry's lock, a fresh one when there is no value.
    fn decode(pair: &Pair, limit: i64) -> Result<SemaphoreLock, String> {
        let Some(value) = &pair.value else {
            return Ok(SemaphoreLock {
                limit,
                holders: Some(BTreeMap::new()),
            });
        };
        let bytes = B64.decode(value).unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|e| {
            let e = if bytes.is_empty() {
                "unexpected end of JSON input".to_string()
            } else {
                e.to_string()
            };
            format!("lock decoding failed: {e}")
        })
    }

    /// Drops holders whose session no longer holds any key under the prefix.
    fn prune(&mut self, pairs: &[Pair]) {
        let alive: Vec<&str> = pairs
            .iter()
            .map(Pair::session)
            .filter(|s| !s.is_empty())
            .collect();
        self.holders().retain(|h, _| alive.contains(&h.as_str()));
    }
}

/// Why a cleanup did not delete the coordination key.
enum Cleanup {
    InUse,
    Failed(String),
}

/// A lock at `<prefix>/.lock` or a semaphore over `<prefix>`.
enum Kind {
    Lock { key: String },
    Semaphore { prefix: String, limit: i64 },
}

struct Holder {
    kv: Kv,
    kind: Kind,
    session_name: String,
    monitor_retries: i64,
    /// One attempt bounded by this time (`-timeout`), or keep trying.
    try_once: Option<Duration>,
    session: String,
    renew: Option<(CancellationToken, JoinHandle<()>)>,
    monitor: Option<JoinHandle<()>>,
}

impl Holder {
    fn lock_key(&self) -> String {
        match &self.kind {
            Kind::Lock { key } => key.clone(),
            Kind::Semaphore { prefix, .. } => path_join(prefix, COORDINATION_KEY),
        }
    }

    async fn stop_renewing(&mut self) {
        if let Some((done, task)) = self.renew.take() {
            done.cancel();
            let _ = task.await;
        }
    }

    /// Creates the session, then contends until the lock is held (`Some`, with a
    /// token that fires if it is lost), `stop` fires or the time is up (`None`).
    async fn acquire(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<CancellationToken>, String> {
        let mut body = serde_json::Map::new();
        body.insert("Name".into(), self.session_name.clone().into());
        body.insert("TTL".into(), format_go_duration(SESSION_TTL).into());
        if matches!(self.kind, Kind::Semaphore { .. }) {
            body.insert("Behavior".into(), "delete".into());
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let created: Created = self
            .kv
            .client
            .put("/v1/session/create")
            .json(&body)
            .json_ok()
            .await
            .map_err(|e| format!("failed to create session: {e}"))?;
        self.session = created.id;
        let done = CancellationToken::new();
        let task = tokio::spawn(renew_periodic(
            self.kv.client.clone(),
            self.session.clone(),
            done.clone(),
        ));
        self.renew = Some((done, task));

        let held = match &self.kind {
            Kind::Lock { .. } => self.contend_lock(stop).await,
            Kind::Semaphore { .. } => self.contend_semaphore(stop).await,
        };
        match held {
            Ok(true) => {
                let lost = CancellationToken::new();
                self.monitor = Some(tokio::spawn(monitor(
                    self.kv.clone(),
                    self.lock_key(),
                    match &self.kind {
                        Kind::Lock { .. } => None,
                        Kind::Semaphore { prefix, limit } => Some((prefix.clone(), *limit)),
                    },
                    self.session.clone(),
                    self.monitor_retries,
                    lost.clone(),
                )));
                Ok(Some(lost))
            }
            other => {
                // Not held: the session goes.
                self.stop_renewing().await;
                other.map(|_| None)
            }
        }
    }

    /// The Go api's `Lock.Lock` loop; true once held.
    async fn contend_lock(&self, stop: &CancellationToken) -> Result<bool, String> {
        let key = self.lock_key();
        let limit = self.try_once.unwrap_or(WAIT_TIME);
        let mut wait = limit;
        let start = Instant::now();
        let mut attempts = 0;
        let mut index = 0;
        loop {
            if stop.is_cancelled() {
                return Ok(false);
            }
            if self.try_once.is_some() && attempts > 0 {
                let elapsed = start.elapsed();
                if elapsed > limit {
                    return Ok(false);
                }
                wait = limit - elapsed;
            }
            attempts += 1;
            let read = tokio::select! {
                r = self.kv.get_one(&key, index, Some(wait), false) => r,
                _ = stop.cancelled() => return Ok(false),
            };
            let (pair, idx) = read.map_err(|e| format!("failed to read lock: {e}"))?;
            if let Some(p) = &pair {
                if p.flags != LOCK_FLAG {
                    return Err("Existing key does not match lock use".into());
                }
                if p.session() == self.session {
                    return Ok(true);
                }
                if !p.session().is_empty() {
                    index = idx;
                    continue;
                }
            }
            let locked = self
                .kv
                .put(
                    &key,
                    ("acquire", self.session.clone()),
                    LOCK_FLAG,
                    Vec::new(),
                )
                .await
                .map_err(|e| format!("failed to acquire lock: {e}"))?;
            if locked {
                return Ok(true);
            }
            // Refused: someone else got it first (wait for them), or a lock delay
            // is in effect (wait a while).
            let (pair, idx) = self
                .kv
                .get_one(&key, 0, Some(wait), false)
                .await
                .map_err(|e| e.to_string())?;
            if pair.as_ref().is_some_and(|p| !p.session().is_empty()) {
                index = idx;
                continue;
            }
            index = 0;
            tokio::select! {
                _ = tokio::time::sleep(RETRY_TIME) => {}
                _ = stop.cancelled() => return Ok(false),
            }
        }
    }

    /// The Go api's `Semaphore.Acquire` loop; true once a slot is ours.
    async fn contend_semaphore(&self, stop: &CancellationToken) -> Result<bool, String> {
        let Kind::Semaphore { prefix, limit } = &self.kind else {
            return Ok(false);
        };
        let contender = path_join(prefix, &self.session);
        let made = self
            .kv
            .put(
                &contender,
                ("acquire", self.session.clone()),
                SEMAPHORE_FLAG,
                Vec::new(),
            )
            .await;
        match made {
            Ok(true) => {}
            Ok(false) => return Err("failed to make contender entry: <nil>".into()),
            Err(e) => return Err(format!("failed to make contender entry: {e}")),
        }
        let lock_key = self.lock_key();
        let mut wait = self.try_once.unwrap_or(WAIT_TIME);
        let start = Instant::now();
        let mut attempts = 0;
        let mut index = 0;
        loop {
            if stop.is_cancelled() {
                return Ok(false);
            }
            if self.try_once.is_some() && attempts > 0 {
                // As the Go api: the time spent is taken off the remaining wait
                // on every round.
                let elapsed = start.elapsed();
                if elapsed > wait {
                    return Ok(false);
                }
                wait -= elapsed;
                if wait.is_zero() {
                    return Ok(false);
                }
            }
            attempts += 1;
            let read = tokio::select! {
                r = self.kv.get(prefix, true, index, Some(wait), false) => r,
                _ = stop.cancelled() => return Ok(false),
            };
            let (pairs, idx) = read.map_err(|e| format!("failed to read prefix: {e}"))?;
            let lock_pair = find_lock(&pairs, &lock_key);
            if lock_pair.flags != SEMAPHORE_FLAG {
                return Err("Existing key does not match semaphore use".into());
            }
            let mut lock = SemaphoreLock::decode(&lock_pair, *limit)?;
            if lock.limit != *limit {
                return Err(format!(
                    "semaphore limit conflict (lock: {}, local: {limit})",
                    lock.limit
                ));
            }
            lock.prune(&pairs);
            if lock.holders().len() as i64 >= lock.limit {
                index = idx;
                continue;
            }
            lock.holders().insert(self.session.clone(), true);
            let set = self
                .kv
                .put(
                    &lock_key,
                    ("cas", lock_pair.modify_index.to_string()),
                    SEMAPHORE_FLAG,
                    serde_json::to_vec(&lock).unwrap_or_default(),
                )
                .await
                .map_err(|e| format!("failed to update lock: {e}"))?;
            if set {
                return Ok(true);
            }
        }
    }

    /// Gives the lock or the slot up and ends the session.
    async fn release(&mut self) -> Result<(), String> {
        if let Some(m) = self.monitor.take() {
            m.abort();
        }
        let result = match &self.kind {
            Kind::Lock { key } => self
                .kv
                .put(
                    key,
                    ("release", self.session.clone()),
                    LOCK_FLAG,
                    Vec::new(),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("failed to release lock: {e}")),
            Kind::Semaphore { prefix, limit } => self.release_slot(prefix.clone(), *limit).await,
        };
        self.stop_renewing().await;
        result
    }

    async fn release_slot(&self, prefix: String, limit: i64) -> Result<(), String> {
        let lock_key = self.lock_key();
        loop {
            let (pair, _) = self
                .kv
                .get_one(&lock_key, 0, None, false)
                .await
                .map_err(|e| e.to_string())?;
            let pair = pair.unwrap_or_default();
            let mut lock = SemaphoreLock::decode(&pair, limit)?;
            if lock.holders().remove(&self.session).is_none() {
                break;
            }
            let set = self
                .kv
                .put(
                    &lock_key,
                    ("cas", pair.modify_index.to_string()),
                    SEMAPHORE_FLAG,
                    serde_json::to_vec(&lock).unwrap_or_default(),
                )
                .await
                .map_err(|e| format!("failed to update lock: {e}"))?;
            if set {
                break;
            }
        }
        self.kv
            .delete(&path_join(&prefix, &self.session))
            .await
            .map_err(|e| e.to_string())
    }

    /// Deletes the coordination key unless someone holds it.
    async fn destroy(&self) -> Result<(), Cleanup> {
        match &self.kind {
            Kind::Lock { key } => {
                let (pair, _) = self
                    .kv
                    .get_one(key, 0, None, false)
                    .await
                    .map_err(|e| Cleanup::Failed(format!("failed to read lock: {e}")))?;
                let Some(pair) = pair else { return Ok(()) };
                if pair.flags != LOCK_FLAG {
                    return Err(Cleanup::Failed(
                        "Existing key does not match lock use".into(),
                    ));
                }
                if !pair.session().is_empty() {
                    return Err(Cleanup::InUse);
                }
                let removed = self
                    .kv
                    .delete_cas(key, pair.modify_index)
                    .await
                    .map_err(|e| Cleanup::Failed(format!("failed to remove lock: {e}")))?;
                if removed { Ok(()) } else { Err(Cleanup::InUse) }
            }
            Kind::Semaphore { prefix, limit } => {
                let (pairs, _) = self
                    .kv
                    .get(prefix, true, 0, None, false)
                    .await
                    .map_err(|e| Cleanup::Failed(format!("failed to read prefix: {e}")))?;
                let lock_key = self.lock_key();
                let lock_pair = find_lock(&pairs, &lock_key);
                if lock_pair.modify_index == 0 {
                    return Ok(());
                }
                if lock_pair.flags != SEMAPHORE_FLAG {
                    return Err(Cleanup::Failed(
                        "Existing key does not match semaphore use".into(),
                    ));
                }
                let mut lock =
                    SemaphoreLock::decode(&lock_pair, *limit).map_err(Cleanup::Failed)?;
                lock.prune(&pairs);
                if !lock.holders().is_empty() {
                    return Err(Cleanup::InUse);
                }
                let removed = self
                    .kv
                    .delete_cas(&lock_key, lock_pair.modify_index)
                    .await
                    .map_err(|e| Cleanup::Failed(format!("failed to remove semaphore: {e}")))?;
                if removed { Ok(()) } else { Err(Cleanup::InUse) }
            }
        }
    }
}

/// The coordination entry among a prefix's entries, or a blank one.
fn find_lock(pairs: &[Pair], lock_key: &str) -> Pair {
    pairs
        .iter()
        .find(|p| p.key == lock_key)
        .cloned()
        .unwrap_or(Pair {
            flags: SEMAPHORE_FLAG,
            ..Default::default()
        })
}

/// Watches the lock (or the semaphore over `semaphore`'s prefix) with consistent
/// blocking reads and fires `lost` once `session` no longer holds it, riding out
/// up to `retries` server errors in a row.
async fn monitor(
    kv: Kv,
    lock_key: String,
    semaphore: Option<(String, i64)>,
    session: String,
    retries: i64,
    lost: CancellationToken,
) {
    let mut index = 0;
    'watch: loop {
        let mut left = retries;
        loop {
            let read = match &semaphore {
                None => kv
                    .get_one(&lock_key, index, None, true)
                    .await
                    .map(|(p, i)| (p.into_iter().collect::<Vec<_>>(), i)),
                Some((prefix, _)) => kv.get(prefix, true, index, None, true).await,
            };
            let (pairs, idx) = match read {
                Ok(r) => r,
                Err(e) if left > 0 && retryable(&e) => {
                    tokio::time::sleep(MONITOR_RETRY_TIME).await;
                    left -= 1;
                    index = 0;
                    continue;
                }
                Err(_) => break 'watch,
            };
            let held = match &semaphore {
                None => pairs.first().is_some_and(|p| p.session() == session),
                Some((_, limit)) => {
                    match SemaphoreLock::decode(&find_lock(&pairs, &lock_key), *limit) {
                        Ok(mut lock) => {
                            lock.prune(&pairs);
                            lock.holders().contains_key(&session)
                        }
                        Err(_) => false,
                    }
                }
            };
            if !held {
                break 'watch;
            }
            index = idx;
            continue 'watch;
        }
    }
    lost.cancel();
}

/// SIGTERM, then SIGKILL if the child outlives the grace period.
async fn kill_child(child: &mut tokio::process::Child, verbose: bool) {
    let Some(pid) = child.id() else {
        if verbose {
            ui::output("No child process to kill");
        }
        return;
    };
    if verbose {
        ui::output(&format!("Terminating child pid {pid}"));
    }
    if let Err(e) = send_signal(pid, libc::SIGTERM) {
        ui::error(&format!("Failed to terminate {pid}: {e}"));
        return;
    }
    tokio::select! {
        status = child.wait() => {
            if let Ok(s) = status && !s.success() {
                ui::error(&format!("Error running handler: {}", exit_text(s)));
            }
            if verbose {
                ui::output("Child terminated");
            }
            return;
        }
        _ = tokio::time::sleep(KILL_GRACE) => {
            if verbose {
                ui::output(&format!(
                    "Child did not exit after grace period of {}",
                    format_go_duration(KILL_GRACE)
                ));
            }
        }
    }
    if verbose {
        ui::output(&format!("Killing child pid {pid}"));
    }
    if let Err(e) = send_signal(pid, libc::SIGKILL) {
        ui::error(&format!("Failed to kill {pid}: {e}"));
    }
    let _ = child.wait().await;
}

/// A Go duration flag: `invalid value ... parse error` as the flag package says.
fn duration_flag(name: &str, value: &Option<String>) -> Result<i64, String> {
    match value {
        None => Ok(0),
        Some(v) => parse_go_duration_nanos(v).map_err(|_| {
            format!(
                "invalid value {} for flag -{name}: parse error",
                go_quote(v)
            )
        }),
    }
}

pub async fn run(args: &LockArgs) -> i32 {
    // Go sets -timeout and -try on one variable; the later flag wins there, -timeout here.
    let timeout = match duration_flag("timeout", &args.timeout)
        .and_then(|t| duration_flag("try", &args.try_timeout).map(|t2| (t, t2)))
    {
        Ok((t, t2)) => {
            if args.timeout.is_some() {
                t
            } else {
                t2
            }
        }
        Err(e) => return ui::fail_with_usage(&e, &["lock"]),
    };
    if args.limit <= 0 {
        return fail("Lock holder limit must be positive");
    }
    if args.args.len() < 2 {
        return fail("Key prefix and child command must be specified");
    }
    let prefix = args.args[0]
        .strip_prefix('/')
        .unwrap_or(&args.args[0])
        .to_string();
    let child_args = &args.args[1..];
    if timeout < 0 {
        return fail("Timeout must be positive");
    }
    let name = if args.name.is_empty() {
        format!("Consul lock for '{}' at '{prefix}'", child_args.join(" "))
    } else {
        args.name.clone()
    };
    if args.monitor_retry < 0 {
        return fail("Number for 'monitor-retry' must be >= 0");
    }
    let client = match Client::new(&args.http, Some(&args.server)) {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    if let Err(e) = super::maint::node_name(&client).await {
        return fail(format!("Error querying Consul agent: {e}"));
    }

    // An interrupt or a SIGTERM stops the acquisition or the child; while a child
    // runs it gets the signal too.
    let (shutdown, child_pid) = match forward_signals() {
        Ok(s) => s,
        Err(e) => return fail(format!("Lock setup failed: {e}")),
    };

    let try_once = (timeout > 0).then(|| Duration::from_nanos(timeout as u64));
    let kind = if args.limit == 1 {
        let key = path_join(&prefix, COORDINATION_KEY);
        if args.verbose {
            ui::output(&format!("Setting up lock at path: {key}"));
        }
        Kind::Lock { key }
    } else {
        if args.verbose {
            ui::output(&format!(
                "Setting up semaphore (limit {}) at prefix: {prefix}",
                args.limit
            ));
        }
        if prefix.is_empty() {
            return fail("Lock setup failed: missing prefix");
        }
        Kind::Semaphore {
            prefix: prefix.clone(),
            limit: args.limit,
        }
    };
    let mut holder = Holder {
        kv: Kv {
            client: client.clone(),
        },
        kind,
        session_name: name,
        monitor_retries: args.monitor_retry,
        try_once,
        session: String::new(),
        renew: None,
        monitor: None,
    };

    if args.verbose {
        ui::output("Attempting lock acquisition");
    }
    let lost = match holder.acquire(&shutdown).await {
        Ok(Some(lost)) => lost,
        Ok(None) => return fail("Shutdown triggered or timeout during lock acquisition"),
        Err(e) => return fail(format!("Lock acquisition failed: {e}")),
    };

    let mut child_code = 0;
    if shutdown.is_cancelled() {
        ui::error("Shutdown triggered during lock acquisition");
    } else {
        if args.verbose {
            ui::output("Starting handler");
            if args.pass_stdin {
                ui::output("Stdin passed to handler process");
            }
        }
        let stdin = if args.pass_stdin {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        };
        match start_child(child_args, args.shell, stdin, ("CONSUL_LOCK_HELD", "true")) {
            Err(e) => {
                ui::error(&format!("Error starting handler: {e}"));
                child_code = 2;
                if args.verbose {
                    ui::output("Child terminated, releasing lock");
                }
            }
            Ok(mut child) => {
                if let Ok(mut p) = child_pid.lock() {
                    *p = child.id();
                }
                // A signal or a lost lock wins over the child's exit it causes, so
                // the child is always reaped on the kill path.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {
                        if args.verbose {
                            ui::output("Shutdown triggered, killing child");
                        }
                        kill_child(&mut child, args.verbose).await;
                    }
                    _ = lost.cancelled() => {
                        if args.verbose {
                            ui::output("Lock lost, killing child");
                        }
                        kill_child(&mut child, args.verbose).await;
                    }
                    status = child.wait() => {
                        match status {
                            Ok(s) if s.success() => {}
                            Ok(s) => {
                                ui::error(&format!("Error running handler: {}", exit_text(s)));
                                child_code = 2;
                            }
                            Err(e) => {
                                ui::error(&format!("Error running handler: {}", go_os_error(&e)));
                                child_code = 2;
                            }
                        }
                        if args.verbose {
                            ui::output("Child terminated, releasing lock");
                        }
                    }
                }
                if let Ok(mut p) = child_pid.lock() {
                    *p = None;
                }
            }
        }
    }

    if let Err(e) = holder.release().await {
        return fail(format!("Lock release failed: {e}"));
    }
    match holder.destroy().await {
        Ok(()) => {
            if args.verbose {
                ui::output("Cleanup succeeded");
            }
        }
        Err(Cleanup::InUse) => {
            if args.verbose {
                ui::output("Cleanup aborted, lock in use");
            }
        }
        Err(Cleanup::Failed(e)) => return fail(format!("Lock cleanup failed: {e}")),
    }
    if args.child_exit_code { child_code } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_clean_like_go() {
        assert_eq!(path_join("app/leader", ".lock"), "app/leader/.lock");
        assert_eq!(path_join("app//x/", ".lock"), "app/x/.lock");
        assert_eq!(path_join("", ".lock"), ".lock");
        assert_eq!(path_join("a/../b", "s"), "b/s");
        assert_eq!(path_clean(""), ".");
        assert_eq!(path_clean("/../a"), "/a");
        assert_eq!(path_clean("../a/.."), "..");
    }

    fn pair(key: &str, session: &str, value: Option<&str>) -> Pair {
        Pair {
            key: key.into(),
            flags: SEMAPHORE_FLAG,
            modify_index: 7,
            value: value.map(|v| B64.encode(v)),
            session: Some(session.into()).filter(|s: &String| !s.is_empty()),
            ..Default::default()
        }
    }

    #[test]
    fn semaphore_locks_encode_as_the_go_api_does_and_prune_dead_holders() {
        let mut lock = SemaphoreLock::decode(&pair("p/.lock", "", None), 2).unwrap();
        assert_eq!(lock.limit, 2);
        lock.holders().insert("b".into(), true);
        lock.holders().insert("a".into(), true);
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&lock).unwrap()).unwrap(),
            r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#
        );
        let stored = pair(
            "p/.lock",
            "",
            Some(r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#),
        );
        let mut lock = SemaphoreLock::decode(&stored, 3).unwrap();
        assert_eq!(lock.limit, 2, "the stored limit, for the conflict check");
        lock.prune(&[stored.clone(), pair("p/a", "a", None)]);
        assert_eq!(lock.holders().keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            SemaphoreLock::decode(&pair("p/.lock", "", Some("")), 2).unwrap_err(),
            "lock decoding failed: unexpected end of JSON input"
        );
        let blank = find_lock(&[pair("p/a", "a", None)], "p/.lock");
        assert_eq!((blank.flags, blank.modify_index), (SEMAPHORE_FLAG, 0));
    }

    #[test]
    fn server_errors_and_lost_connections_are_retried() {
        assert!(retryable(&ApiError::Status {
            code: 500,
            body: "x".into()
        }));
        assert!(!retryable(&ApiError::Status {
            code: 403,
            body: "x".into()
        }));
    }
}
