//! loadgen: the HTTP load generator of concord's benchmark suite (`bench/run`).
//!
//! Modes:
//! - `get`     N keep-alive connections, each sending `GET <url>` back to back for a fixed duration.
//! - `put`     N concurrent writers on keep-alive connections, each writing distinct keys with a ~100-byte
//!   JSON value, either concord/Consul (`PUT /v1/kv/<key>`, answer `true`) or etcd v3's JSON
//!   gateway (`POST /v3/kv/put` with base64 key and value).
//! - `watch`   pre-writes N keys, parks one blocking query per key (`?index=<current>&wait=60s`, one
//!   connection each), measures the server's RSS and CPU while they sit idle, writes one key and
//!   measures how fast its watcher wakes, and checks that no other watcher returned.
//! - `startup` starts a command (the agent) several times and measures the time from spawn to a leader.
//! - `register` N concurrent clients, each registering a service with a unique ID and deregistering it
//!   again, back to back: the agent API (`/v1/agent/service/register` and `.../deregister/:id`) or the
//!   catalog API (`/v1/catalog/register` and `/v1/catalog/deregister`); both operations are timed apart.
//! - `populate` registers N instances of one service on M nodes through `/v1/catalog/register`, each
//!   with a passing service check (the data set of the health and fan-out measurements).
//! - `fanout`  parks N blocking health queries on one service, flips one instance's check, and times
//!   how long each watcher takes to get its answer; also checks that a change to an unrelated service
//!   wakes none of them.
//! - `dns`     UDP DNS load: many outstanding hand-built queries (e.g. `web.service.consul SRV`) over a few
//!   sockets; a response counts when its RCODE is 0 and it carries at least `--min-answers` answers.
//! - `dns-probe` one query with a timeout: does anything answer DNS on that port?
//!
//! Every mode prints a human-readable report and one machine-readable line starting with `RESULT`
//! (space-separated key=value pairs) that `bench/run` parses. Only loopback targets are accepted.

use std::error::Error;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

mod catalog;
mod dns;

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;
pub(crate) type Sender = SendRequest<Full<Bytes>>;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "HTTP load generator for concord's benchmarks (loopback only)"
)]
struct Cli {
    /// Tokio worker threads (1 = current-thread runtime, the most efficient on a pinned core).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fixed-URL GET load on N keep-alive connections.
    Get(GetArgs),
    /// Concurrent writers of distinct keys (concord/Consul KV or etcd v3 JSON gateway).
    Put(PutArgs),
    /// 10k idle blocking queries: memory, idle CPU, wake latency, wake selectivity.
    Watch(WatchArgs),
    /// Time from process start to an elected leader, median over several starts.
    Startup(StartupArgs),
    /// Service register + deregister with unique IDs (agent or catalog API).
    Register(RegisterArgs),
    /// Register N instances of one service on M nodes (catalog API, passing checks).
    Populate(catalog::PopulateArgs),
    /// Blocking health queries on one service woken by one check flip: wake latency of each.
    Fanout(catalog::FanoutArgs),
    /// UDP DNS query load.
    Dns(dns::DnsArgs),
    /// One DNS query: exit 0 if a DNS answer arrives within the timeout.
    DnsProbe(dns::ProbeArgs),
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Concurrent connections (one request in flight on each).
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Measured duration in seconds.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds before the measured window (requests sent, not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server pid: report its CPU use and RSS over the measured window. Several (`--pid A,B,C`, e.g. the
    /// members of a cluster): their sums.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Per-request timeout in seconds (a timed-out request is an error and its connection is replaced).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(clap::Args)]
struct GetArgs {
    /// Full URL, e.g. http://127.0.0.1:8500/v1/kv/bench/get
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Api {
    /// `PUT /v1/kv/<key>` with the raw value as body; success is a 200 whose body is `true`.
    Consul,
    /// etcd v3 gRPC gateway `POST /v3/kv/put` with `{"key":b64,"value":b64}`; success is a 200.
    Etcd,
}

#[derive(clap::Args)]
struct PutArgs {
    /// Base URL, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value_t = Api::Consul)]
    api: Api,
    /// Key prefix; writer w writes <prefix>/<w>/<seq>.
    #[arg(long, default_value = "bench/put")]
    prefix: String,
    /// Value size in bytes (a JSON document padded to this size).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum RegApi {
    /// `PUT /v1/agent/service/register` (200, empty body), `PUT /v1/agent/service/deregister/<id>` (200).
    Agent,
    /// `PUT /v1/catalog/register` and `PUT /v1/catalog/deregister` (200, body `true`), one node per client.
    Catalog,
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// Base URL, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value_t = RegApi::Agent)]
    api: RegApi,
    /// Service ID prefix (and the service name); client w registers <prefix>-<w>-<n>.
    #[arg(long, default_value = "reg")]
    prefix: String,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(clap::Args)]
struct WatchArgs {
    /// Base URL, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    /// Number of blocking queries (one key and one connection each).
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    #[arg(long, default_value = "w")]
    prefix: String,
    /// The `wait` of each blocking query.
    #[arg(long, default_value = "60s")]
    wait: String,
    /// Seconds to let the server park every query before measuring.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds of idleness over which RSS and CPU are measured.
    #[arg(long, default_value_t = 5.0)]
    idle: f64,
    /// Seconds to wait after the wake-up write for any other watcher to (wrongly) return.
    #[arg(long, default_value_t = 2.0)]
    verify: f64,
    /// The first watcher's key to write.
    #[arg(long, default_value_t = 4242)]
    wake: usize,
    /// How many keys to write, one after another (each should wake exactly its own watcher).
    #[arg(long, default_value_t = 5)]
    wakes: usize,
    /// Connections opened at once while arming the watchers.
    #[arg(long, default_value_t = 256)]
    setup_concurrency: usize,
    /// Server pid (required: RSS and CPU are read from /proc/<pid>).
    #[arg(long)]
    pid: u32,
    /// Baseline: open the connections and do one plain GET on each, but park no blocking query; report
    /// RSS and idle CPU only.
    #[arg(long)]
    no_block: bool,
}

#[derive(clap::Args)]
struct StartupArgs {
    /// Base URL the started agent serves, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Node name expected in /v1/catalog/nodes (reported as an extra, not required).
    #[arg(long, default_value = "bench")]
    node: String,
    /// Give up on one start after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Directory removed and recreated before each start (fresh -data-dir for a durable server).
    #[arg(long)]
    reset_dir: Option<PathBuf>,
    /// The command to start (e.g. taskset -c 0 concord agent -dev ...).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------------
// URLs, connections, /proc

pub(crate) struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

pub(crate) fn parse_url(url: &str) -> Result<Target, BoxError> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = hostport
        .to_socket_addrs()?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| format!("{hostport}: not a loopback address; loadgen only targets 127.0.0.0/8 or ::1"))?;
    Ok(Target {
        addr,
        host: hostport.to_string(),
        path: path.to_string(),
    })
}

pub(crate) async fn connect(addr: SocketAddr) -> Result<Sender, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub(crate) struct Reply {
    status: StatusCode,
    index: Option<u64>,
    known_leader: Option<bool>,
    body: Bytes,
}

pub(crate) async fn send(
    sender: &mut Sender,
    method: Method,
    host: &str,
    path: &str,
    body: Bytes,
    json: bool,
) -> Result<Reply, BoxError> {
    sender.ready().await?;
    let mut req = Request::builder().method(method).uri(path).header(HOST, host);
    if json {
        req = req.header(CONTENT_TYPE, "application/json");
    }
    let resp = sender.send_request(req.body(Full::new(body))?).await?;
    let status = resp.status();
    let hdr = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let index = hdr("X-Consul-Index").and_then(|v| v.parse().ok());
    let known_leader = hdr("X-Consul-KnownLeader").map(|v| v == "true");
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        index,
        known_leader,
        body,
    })
}

/// (utime + stime) in seconds, from /proc/<pid>/stat.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// Busy CPU seconds of the whole machine (all CPUs), from /proc/stat.
pub(crate) fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(busy as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// The sum of `f` over several pids; None without pids or when one cannot be read.
fn sum_over<T: std::iter::Sum<T>>(pids: &[String], f: impl Fn(&str) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(p)).sum()
}

/// VmRSS in KiB, from /proc/<pid>/status.
pub(crate) fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn open_fds(pid: &str) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

pub(crate) fn raise_nofile() {
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------------------
// get / put: closed-loop load

#[derive(Clone)]
enum Work {
    Get { path: String },
    Put { api: Api, prefix: String, value: Bytes },
    Register { api: RegApi, prefix: String },
}

/// Request kinds timed apart (the register mode alternates register and deregister).
const KINDS: usize = 2;

impl Work {
    /// (method, path, body, JSON content type, kind)
    fn request(&self, worker: usize, seq: u64) -> (Method, String, Bytes, bool, usize) {
        if let Work::Register { api, prefix } = self {
            // Even: register <prefix>-<w>-<n>; odd: deregister it again.
            let id = format!("{prefix}-{worker}-{}", seq / 2);
            let kind = (seq % 2) as usize;
            let (path, body) = match (api, kind) {
                (RegApi::Agent, 0) => (
                    "/v1/agent/service/register".to_string(),
                    format!(
                        r#"{{"ID":"{id}","Name":"{prefix}","Port":8080,"Tags":["primary","v1"],"Meta":{{"version":"1.2.3"}}}}"#
                    ),
                ),
                (RegApi::Agent, _) => (format!("/v1/agent/service/deregister/{id}"), String::new()),
                (RegApi::Catalog, 0) => (
                    "/v1/catalog/register".to_string(),
                    format!(
                        r#"{{"Node":"{prefix}-node-{worker}","Address":"127.0.0.2","Service":{{"ID":"{id}","Service":"{prefix}","Port":8080,"Tags":["primary","v1"],"Meta":{{"version":"1.2.3"}}}}}}"#
                    ),
                ),
                (RegApi::Catalog, _) => (
                    "/v1/catalog/deregister".to_string(),
                    format!(r#"{{"Node":"{prefix}-node-{worker}","ServiceID":"{id}"}}"#),
                ),
            };
            let json = !body.is_empty();
            return (Method::PUT, path, Bytes::from(body), json, kind);
        }
        let (m, p, b, j) = self.request1(worker, seq);
        (m, p, b, j, 0)
    }

    fn request1(&self, worker: usize, seq: u64) -> (Method, String, Bytes, bool) {
        match self {
            Work::Register { .. } => unreachable!("handled in request"),
            Work::Get { path } => (Method::GET, path.clone(), Bytes::new(), false),
            Work::Put {
                api: Api::Consul,
                prefix,
                value,
            } => (
                Method::PUT,
                format!("/v1/kv/{prefix}/{worker}/{seq}"),
                value.clone(),
                false,
            ),
            Work::Put {
                api: Api::Etcd,
                prefix,
                value,
            } => {
                let key = format!("{prefix}/{worker}/{seq}");
                let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", b64(key.as_bytes()), b64(value));
                (Method::POST, "/v3/kv/put".to_string(), Bytes::from(body), true)
            }
        }
    }

    fn ok(&self, r: &Reply) -> bool {
        match self {
            Work::Get { .. } => r.status == StatusCode::OK,
            Work::Register { api: RegApi::Agent, .. } => r.status == StatusCode::OK,
            Work::Register {
                api: RegApi::Catalog, ..
            } => r.status == StatusCode::OK && r.body.trim_ascii() == b"true",
            Work::Put { api: Api::Consul, .. } => r.status == StatusCode::OK && r.body.trim_ascii() == b"true",
            Work::Put { api: Api::Etcd, .. } => r.status == StatusCode::OK && r.body.starts_with(b"{\"header\""),
        }
    }
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A JSON document of exactly `size` bytes (at least the fixed part), like a small service config.
fn json_value(size: usize) -> Bytes {
    let head = r#"{"service":"web","port":8080,"tags":["primary","v1"],"meta":{"version":"1.2.3"},"pad":""#;
    let pad = size.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

struct WorkerStats {
    hist: [Histogram<u64>; KINDS],
    ok: [u64; KINDS],
    errors: u64,
    /// Response body bytes of the counted requests.
    bytes: u64,
}

async fn worker(
    id: usize,
    target: Arc<Target>,
    work: Work,
    start: Instant,
    end: Instant,
    timeout: Duration,
) -> WorkerStats {
    let mut st = WorkerStats {
        hist: [new_hist(), new_hist()],
        ok: [0; KINDS],
        errors: 0,
        bytes: 0,
    };
    let mut sender: Option<Sender> = None;
    let mut seq = 0u64;
    while Instant::now() < end {
        if sender.is_none() {
            match tokio::time::timeout(timeout, connect(target.addr)).await {
                Ok(Ok(s)) => sender = Some(s),
                _ => {
                    if Instant::now() >= start {
                        st.errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let s = sender.as_mut().unwrap();
        let (method, path, body, json, kind) = work.request(id, seq);
        seq += 1;
        let t0 = Instant::now();
        let res = tokio::time::timeout(timeout, send(s, method, &target.host, &path, body, json)).await;
        let t1 = Instant::now();
        let counted = t0 >= start && t1 < end;
        match res {
            Ok(Ok(reply)) if work.ok(&reply) => {
                if counted {
                    st.ok[kind] += 1;
                    st.bytes += reply.body.len() as u64;
                    st.hist[kind].saturating_record(t1.duration_since(t0).as_micros() as u64);
                }
            }
            Ok(Ok(_)) => {
                if counted {
                    st.errors += 1;
                }
            }
            _ => {
                // Transport error or timeout: drop the connection and open a new one.
                sender = None;
                if counted {
                    st.errors += 1;
                }
            }
        }
    }
    st
}

enum WorkKind {
    Plain,
    Register,
}

async fn run_load(target: Target, work: Work, args: LoadArgs, label: &str) -> Result<(), BoxError> {
    let work_kind = if matches!(work, Work::Register { .. }) {
        WorkKind::Register
    } else {
        WorkKind::Plain
    };
    let target = Arc::new(target);
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    let timeout = Duration::from_secs_f64(args.timeout);

    // Server, client and everything else's CPU over exactly the measured window.
    let pid: Vec<String> = args.pid.iter().map(|p| p.to_string()).collect();
    let probe = tokio::spawn({
        let pid = pid.clone();
        async move {
            tokio::time::sleep_until(start.into()).await;
            let s0 = sum_over(&pid, cpu_seconds);
            let c0 = cpu_seconds("self");
            let m0 = machine_busy_seconds();
            let w0 = Instant::now();
            tokio::time::sleep_until(end.into()).await;
            let wall = w0.elapsed().as_secs_f64();
            let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
            let srv = delta(s0, sum_over(&pid, cpu_seconds));
            let cli = delta(c0, cpu_seconds("self"));
            let all = delta(m0, machine_busy_seconds());
            // Other work on the machine during the window skews every figure: report it.
            let other = all.map(|t| (t - cli.unwrap_or(0.0) - srv.unwrap_or(0.0)).max(0.0));
            let pct = |v: Option<f64>| v.map(|v| v / wall * 100.0);
            Probe {
                server_pct: pct(srv),
                server_secs: srv,
                client_pct: pct(cli),
                other_pct: pct(other),
                server_rss: sum_over(&pid, rss_kib),
            }
        }
    });

    let mut handles = Vec::with_capacity(args.connections);
    for id in 0..args.connections {
        handles.push(tokio::spawn(worker(
            id,
            target.clone(),
            work.clone(),
            start,
            end,
            timeout,
        )));
    }
    let mut hist = new_hist();
    let mut kind_hist = [new_hist(), new_hist()];
    let (mut ok, mut kind_ok, mut errors, mut bytes) = (0u64, [0u64; KINDS], 0u64, 0u64);
    for h in handles {
        let st = h.await?;
        for k in 0..KINDS {
            hist.add(&st.hist[k])?;
            kind_hist[k].add(&st.hist[k])?;
            kind_ok[k] += st.ok[k];
            ok += st.ok[k];
        }
        errors += st.errors;
        bytes += st.bytes;
    }
    let p = probe.await?;
    let rps = ok as f64 / args.duration;
    // Server CPU time per successful request: robust to other load on the machine, unlike req/s.
    let us_per_req = p.server_secs.filter(|_| ok > 0).map(|s| s * 1e6 / ok as f64);
    let f0 = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "na".into());
    let f1 = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "na".into());
    let (p50, p99, p999, max) = (
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max()),
    );
    println!(
        "{label}: {rps:.0} req/s over {:.1}s, c={}, ok={ok} errors={errors}; latency p50 {p50:.3} ms, \
         p99 {p99:.3} ms, p99.9 {p999:.3} ms, max {max:.3} ms; server CPU {}% ({} µs/req), client CPU {}%, \
         other processes {}%",
        args.duration,
        args.connections,
        f0(p.server_pct),
        f1(us_per_req),
        f0(p.client_pct),
        f0(p.other_pct),
    );
    let resp_bytes = bytes.checked_div(ok).unwrap_or(0);
    // The register mode times registers and deregisters apart.
    let mut per_kind = String::new();
    if matches!(work_kind, WorkKind::Register) {
        for (k, name) in ["reg", "dereg"].iter().enumerate() {
            let (h, n) = (&kind_hist[k], kind_ok[k]);
            println!(
                "  {name}: {:.0} /s, latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                n as f64 / args.duration,
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            );
            per_kind.push_str(&format!(
                " {name}_rps={:.0} {name}_p50_ms={:.3} {name}_p99_ms={:.3} {name}_max_ms={:.3}",
                n as f64 / args.duration,
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            ));
        }
    }
    println!(
        "RESULT mode={label} rps={rps:.0} ok={ok} errors={errors} conns={} p50_ms={p50:.3} p99_ms={p99:.3} \
         p999_ms={p999:.3} max_ms={max:.3} server_cpu_pct={} server_us_per_req={} client_cpu_pct={} \
         other_cpu_pct={} server_rss_kib={} resp_bytes={resp_bytes}{per_kind}",
        args.connections,
        f0(p.server_pct),
        f1(us_per_req),
        f0(p.client_pct),
        f0(p.other_pct),
        p.server_rss.map(|v| v.to_string()).unwrap_or_else(|| "na".into()),
    );
    Ok(())
}

struct Probe {
    server_pct: Option<f64>,
    server_secs: Option<f64>,
    client_pct: Option<f64>,
    other_pct: Option<f64>,
    server_rss: Option<u64>,
}

// ---------------------------------------------------------------------------------------------------------
// watch

struct Woken {
    key: usize,
    at: Instant,
    status: StatusCode,
}

async fn run_watch(a: WatchArgs) -> Result<(), BoxError> {
    raise_nofile();
    let base = parse_url(&a.url)?;
    let target = Arc::new(base);
    let pid = a.pid.to_string();
    let n = a.watchers;
    if a.wake >= n {
        return Err(format!("--wake {} must be below --watchers {n}", a.wake).into());
    }
    let value = json_value(100);

    // 1. Pre-write every key (64 writers); the baseline (--no-block) reads missing keys instead.
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..if a.no_block { 0 } else { 64 } {
        let (target, next, prefix, value) = (target.clone(), next.clone(), a.prefix.clone(), value.clone());
        hs.push(tokio::spawn(async move {
            let mut s = connect(target.addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, BoxError>(());
                }
                let r = send(
                    &mut s,
                    Method::PUT,
                    &target.host,
                    &format!("/v1/kv/{prefix}/{i}"),
                    value.clone(),
                    false,
                )
                .await?;
                if r.status != StatusCode::OK {
                    return Err(format!("pre-write {prefix}/{i}: HTTP {}", r.status).into());
                }
            }
        }));
    }
    for h in hs {
        h.await??;
    }
    if !a.no_block {
        println!("pre-wrote {n} keys in {:.2}s", t.elapsed().as_secs_f64());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(&pid).ok_or("cannot read server RSS")?;

    // 2. Arm one blocking query per key, each on its own connection.
    let t = Instant::now();
    let sem = Arc::new(Semaphore::new(a.setup_concurrency));
    let armed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let max_index = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Woken>();
    for i in 0..n {
        let (target, sem, armed, failed, returned, max_index, tx) = (
            target.clone(),
            sem.clone(),
            armed.clone(),
            failed.clone(),
            returned.clone(),
            max_index.clone(),
            tx.clone(),
        );
        let (prefix, wait, no_block) = (a.prefix.clone(), a.wait.clone(), a.no_block);
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await.expect("semaphore");
            let arm = async {
                let mut s = connect(target.addr).await?;
                let path = format!("/v1/kv/{prefix}/{i}");
                let r = send(&mut s, Method::GET, &target.host, &path, Bytes::new(), false).await?;
                let idx = if no_block {
                    r.index.unwrap_or(0)
                } else {
                    r.index.ok_or("no X-Consul-Index")?
                };
                max_index.fetch_max(idx, Ordering::Relaxed);
                s.ready().await?;
                let req = Request::builder()
                    .uri(format!("{path}?index={idx}&wait={wait}"))
                    .header(HOST, &target.host)
                    .body(Full::new(Bytes::new()))?;
                Ok::<_, BoxError>((s, req))
            };
            let (mut s, req) = match tokio::time::timeout(Duration::from_secs(30), arm).await {
                Ok(Ok(v)) => v,
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if no_block {
                // Baseline: an idle keep-alive connection that has served one GET, nothing parked.
                armed.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                std::future::pending::<()>().await;
                drop((s, req));
                return;
            }
            let fut = s.send_request(req);
            armed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let res = fut.await;
            let at = Instant::now();
            returned.fetch_add(1, Ordering::Relaxed);
            let status = match res {
                Ok(resp) => resp.status(),
                Err(_) => StatusCode::BAD_GATEWAY,
            };
            let _ = tx.send(Woken { key: i, at, status });
            drop(s);
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(45);
    while armed.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let armed_n = armed.load(Ordering::Relaxed);
    let failed_n = failed.load(Ordering::Relaxed);
    println!(
        "armed {armed_n} {} ({failed_n} failed) in {:.2}s; settling {:.1}s",
        if a.no_block {
            "idle connections"
        } else {
            "blocking queries"
        },
        t.elapsed().as_secs_f64(),
        a.settle
    );
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;

    // 3. Idle: RSS and CPU.
    let returned_before_idle = returned.load(Ordering::Relaxed);
    let fds = open_fds(&pid).unwrap_or(0);
    let c0 = cpu_seconds(&pid).ok_or("cannot read server CPU")?;
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.idle)).await;
    let idle_cpu = (cpu_seconds(&pid).ok_or("cannot read server CPU")? - c0) / w0.elapsed().as_secs_f64() * 100.0;
    let rss_with = rss_kib(&pid).ok_or("cannot read server RSS")?;
    let returned_after_idle = returned.load(Ordering::Relaxed);

    if a.no_block {
        let per_conn = (rss_with.saturating_sub(rss_before) as f64 * 1024.0) / armed_n.max(1) as f64;
        println!(
            "server fds {fds}; RSS {:.1} MiB before, {:.1} MiB with {armed_n} idle keep-alive connections \
             ({per_conn:.0} B each); idle CPU {idle_cpu:.2}% over {:.1}s",
            rss_before as f64 / 1024.0,
            rss_with as f64 / 1024.0,
            a.idle,
        );
        println!(
            "RESULT mode=idleconns conns={n} armed={armed_n} failed={failed_n} server_fds={fds} \
             rss_before_kib={rss_before} rss_with_kib={rss_with} bytes_per_conn={per_conn:.0} idle_cpu_pct={idle_cpu:.2}"
        );
        return Ok(());
    }

    // 4. Write `--wakes` keys one after another (a different value: like Consul, a write of an unchanged
    //    entry is a no-op that wakes nobody); time each one's watcher, and collect anything else that returns.
    let mut s = connect(target.addr).await?;
    let new_value = Bytes::from(String::from_utf8_lossy(&value).replace('x', "y"));
    let keys: Vec<usize> = (0..a.wakes).map(|j| (a.wake + j * 997) % n).collect();
    let mut wake_ms: Vec<f64> = Vec::new();
    let mut put_ms: Vec<f64> = Vec::new();
    let mut others: Vec<usize> = Vec::new();
    let mut missed = 0usize;
    let mut bad_status = 0usize;
    let mut classify = |w: Woken, key: usize, t0: Instant, wake_ms: &mut Vec<f64>| -> bool {
        if w.status != StatusCode::OK {
            bad_status += 1;
        }
        if w.key == key && w.at >= t0 {
            wake_ms.push(w.at.duration_since(t0).as_secs_f64() * 1000.0);
            true
        } else {
            others.push(w.key);
            false
        }
    };
    for &key in &keys {
        let t0 = Instant::now();
        let path = format!("/v1/kv/{}/{key}", a.prefix);
        let r = send(&mut s, Method::PUT, &target.host, &path, new_value.clone(), false).await?;
        put_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        if r.status != StatusCode::OK {
            return Err(format!("wake-up write: HTTP {}", r.status).into());
        }
        let mut found = false;
        let deadline = t0 + Duration::from_secs(5);
        while !found {
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), rx.recv()).await {
                Ok(Some(w)) => found = classify(w, key, t0, &mut wake_ms),
                _ => break,
            }
        }
        if !found {
            missed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything else that returns within --verify seconds was woken by a write to another key.
    let verify_end = Instant::now() + Duration::from_secs_f64(a.verify);
    while let Ok(Some(w)) = tokio::time::timeout(verify_end.saturating_duration_since(Instant::now()), rx.recv()).await
    {
        classify(w, usize::MAX, verify_end, &mut wake_ms);
    }
    let woken = wake_ms.len() + others.len();
    let per_watcher = (rss_with.saturating_sub(rss_before) as f64 * 1024.0) / armed_n.max(1) as f64;
    let (wake_med, wake_max) = (
        median(&mut wake_ms.clone()),
        wake_ms.iter().cloned().fold(f64::NAN, f64::max),
    );
    let put_med = median(&mut put_ms.clone());
    let f3 = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "na".into() };
    println!(
        "server fds {fds}; RSS {:.1} MiB before watchers, {:.1} MiB with {armed_n} watchers ({per_watcher:.0} B each); \
         idle CPU {idle_cpu:.2}% over {:.1}s; returned early: {returned_before_idle} before idle, {} during idle",
        rss_before as f64 / 1024.0,
        rss_with as f64 / 1024.0,
        a.idle,
        returned_after_idle - returned_before_idle,
    );
    println!(
        "{} writes to one key each ({}/{:?}): PUT median {} ms; the key's watcher woke after median {} ms, \
         max {} ms ({missed} never woke); watchers woken {woken} (other keys: {}{}), non-200: {bad_status}",
        keys.len(),
        a.prefix,
        keys,
        f3(put_med),
        f3(wake_med),
        f3(wake_max),
        others.len(),
        if others.is_empty() {
            String::new()
        } else {
            format!(" e.g. {:?}", &others[..others.len().min(5)])
        },
    );
    println!(
        "RESULT mode=watch watchers={n} armed={armed_n} failed={failed_n} server_fds={fds} rss_before_kib={rss_before} \
         rss_with_kib={rss_with} bytes_per_watcher={per_watcher:.0} idle_cpu_pct={idle_cpu:.2} \
         early_returns={returned_after_idle} writes={} put_ms={} wake_ms={} wake_max_ms={} missed={missed} \
         woken={woken} others_woken={} non_200={bad_status}",
        keys.len(),
        f3(put_med),
        f3(wake_med),
        f3(wake_max),
        others.len(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// startup

fn stop(child: &mut Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn poll_get(target: &Target, path: &str, sender: &mut Option<Sender>) -> Option<Reply> {
    if sender.is_none() {
        *sender = connect(target.addr).await.ok();
    }
    let s = sender.as_mut()?;
    match tokio::time::timeout(
        Duration::from_secs(2),
        send(s, Method::GET, &target.host, path, Bytes::new(), false),
    )
    .await
    {
        Ok(Ok(r)) => Some(r),
        _ => {
            *sender = None;
            None
        }
    }
}

async fn run_startup(a: StartupArgs) -> Result<(), BoxError> {
    let target = parse_url(&a.url)?;
    let timeout = Duration::from_secs_f64(a.timeout);
    let tick = Duration::from_millis(1);
    let (mut http_v, mut leader_v, mut catalog_v, mut node_v) = (vec![], vec![], vec![], vec![]);
    for run in 1..=a.runs {
        if let Some(dir) = &a.reset_dir {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)?;
        }
        let t0 = Instant::now();
        let mut cmd = Command::new(&a.command[0]);
        cmd.args(&a.command[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // If loadgen dies (e.g. killed by a timeout), the agent it started goes too.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let mut sender = None;
        let (mut t_http, mut t_leader, mut t_catalog, mut t_node) = (None, None, None, None);
        while t0.elapsed() < timeout {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("agent exited during start-up: {st}").into());
            }
            if t_leader.is_none()
                && let Some(r) = poll_get(&target, "/v1/status/leader", &mut sender).await
            {
                t_http.get_or_insert(t0.elapsed());
                let body = String::from_utf8_lossy(&r.body);
                let body = body.trim();
                if r.status == StatusCode::OK && body.len() > 2 && body != "\"\"" {
                    t_leader = Some(t0.elapsed());
                }
            }
            if t_leader.is_some()
                && t_catalog.is_none()
                && let Some(r) = poll_get(&target, "/v1/catalog/nodes", &mut sender).await
                && r.status == StatusCode::OK
                && r.known_leader == Some(true)
            {
                t_catalog = Some(t0.elapsed());
            }
            if let Some(t_cat) = t_catalog {
                // Extra: the node's own catalog entry (Consul's leader registers it); bounded to 3 s.
                if let Some(r) = poll_get(&target, "/v1/catalog/nodes", &mut sender).await {
                    let needle = format!("\"Node\":\"{}\"", a.node);
                    let compact: String = String::from_utf8_lossy(&r.body).split_whitespace().collect();
                    if compact.contains(&needle) {
                        t_node = Some(t0.elapsed());
                        break;
                    }
                }
                if t0.elapsed() > t_cat + Duration::from_secs(3) {
                    break;
                }
            }
            tokio::time::sleep(tick).await;
        }
        drop(sender);
        stop(&mut child);
        let f = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or("TIMEOUT".into())
        };
        println!(
            "start {run}: HTTP up {}, leader {}, catalog/nodes with KnownLeader {}, own node in catalog {}",
            f(t_http),
            f(t_leader),
            f(t_catalog),
            f(t_node)
        );
        let msf = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::INFINITY);
        http_v.push(msf(t_http));
        leader_v.push(msf(t_leader));
        catalog_v.push(msf(t_catalog));
        node_v.push(msf(t_node));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (h, l, c, nd) = (
        median(&mut http_v),
        median(&mut leader_v),
        median(&mut catalog_v),
        median(&mut node_v),
    );
    let ready = l.max(c);
    println!(
        "median of {}: HTTP up {h:.1} ms, leader {l:.1} ms, catalog ready {c:.1} ms, own node {nd:.1} ms => ready {ready:.1} ms",
        a.runs
    );
    let fmt = |v: f64| {
        if v.is_finite() { format!("{v:.1}") } else { "na".into() }
    };
    println!(
        "RESULT mode=startup runs={} http_ms={} leader_ms={} catalog_ms={} node_ms={} ready_ms={}",
        a.runs,
        fmt(h),
        fmt(l),
        fmt(c),
        fmt(nd),
        fmt(ready)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------

fn main() {
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Get(a) => {
                let t = parse_url(&a.url)?;
                let path = t.path.clone();
                run_load(t, Work::Get { path }, a.load, "get").await
            }
            Cmd::Put(a) => {
                let t = parse_url(&a.url)?;
                let work = Work::Put {
                    api: a.api,
                    prefix: a.prefix.clone(),
                    value: json_value(a.value_size),
                };
                run_load(t, work, a.load, "put").await
            }
            Cmd::Register(a) => {
                let t = parse_url(&a.url)?;
                let work = Work::Register {
                    api: a.api,
                    prefix: a.prefix.clone(),
                };
                run_load(t, work, a.load, "register").await
            }
            Cmd::Populate(a) => catalog::run_populate(a).await,
            Cmd::Fanout(a) => catalog::run_fanout(a).await,
            Cmd::Dns(a) => dns::run_dns(a).await,
            Cmd::DnsProbe(a) => dns::run_probe(a).await,
            Cmd::Watch(a) => run_watch(a).await,
            Cmd::Startup(a) => run_startup(a).await,
        }
    });
    // Do not wait for parked tasks (10k watchers) to finish.
    rt.shutdown_background();
    if let Err(e) = res {
        eprintln!("loadgen: error: {e}");
        std::process::exit(1);
    }
}
