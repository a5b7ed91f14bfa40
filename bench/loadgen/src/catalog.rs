//! Catalog data sets and the blocking health fan-out.
//!
//! `populate`: instance `i` of service `S` is `S-<i>` on node `<S>-node-<i % nodes>`, with one service check
//! `service:S-<i>` (passing). Registering an instance again with the same definition is a no-op for the server,
//! so `populate` can grow a data set in steps.
//!
//! `fanout`: parks `--watchers` blocking queries `GET /v1/health/service/S?index=<current>&wait=5m` (one
//! keep-alive connection each), then
//!   1. changes the check of an unrelated service and verifies that none of them returns (Consul falls back
//!      to a table-wide watch above ~682 instances, hashicorp/consul#4984, so there every check change
//!      anywhere wakes every watcher of a large service);
//!   2. flips the check of one instance of S to critical and times, for every watcher, the arrival of the
//!      response headers and of the complete body;
//!   3. restores the check (after every watcher has returned or the collect timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HOST;
use hyper::{Method, Request, StatusCode};
use tokio::sync::{Semaphore, mpsc};

use crate::{BoxError, Target, connect, cpu_seconds, ms, new_hist, parse_url, raise_nofile, rss_kib, send};

#[derive(clap::Args)]
pub struct PopulateArgs {
    /// Base URL, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "web")]
    service: String,
    /// Number of instances (0..N are registered; existing identical ones are no-ops).
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// Number of nodes the instances are spread over (round robin).
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Concurrent registrations.
    #[arg(short = 'c', long, default_value_t = 16)]
    connections: usize,
}

#[derive(clap::Args)]
pub struct FanoutArgs {
    /// Base URL, e.g. http://127.0.0.1:8500
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "web")]
    service: String,
    /// Instances of the service (registered first, as `populate` does).
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Blocking queries, one connection each.
    #[arg(long, default_value_t = 5000)]
    watchers: usize,
    /// The `wait` of each blocking query.
    #[arg(long, default_value = "5m")]
    wait: String,
    /// Extra query string for every health query (e.g. `passing`).
    #[arg(long, default_value = "")]
    query: String,
    /// The instance whose check is flipped.
    #[arg(long, default_value_t = 0)]
    flip: usize,
    /// Seconds to let the server park every query before the changes.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to wait after the unrelated change for watchers that (wrongly) return.
    #[arg(long, default_value_t = 1.0)]
    verify: f64,
    /// Give up collecting answers this many seconds after the flip.
    #[arg(long, default_value_t = 120.0)]
    collect_timeout: f64,
    /// Connections opened at once while arming the watchers.
    #[arg(long, default_value_t = 256)]
    setup_concurrency: usize,
    /// Server pid (RSS and CPU are read from /proc/<pid>).
    #[arg(long)]
    pid: u32,
}

/// `PUT /v1/catalog/register` body for instance `i` of `service`, its check in `status`.
pub fn instance_body(service: &str, i: usize, nodes: usize, status: &str) -> String {
    let n = i % nodes.max(1);
    format!(
        r#"{{"Node":"{service}-node-{n}","Address":"10.1.{}.{}","NodeMeta":{{"rack":"r{}"}},"Service":{{"ID":"{service}-{i}","Service":"{service}","Address":"10.1.{}.{}","Port":{},"Tags":["primary","v1"],"Meta":{{"version":"1.2.3"}}}},"Check":{{"Node":"{service}-node-{n}","CheckID":"service:{service}-{i}","Name":"Service '{service}' check","Status":"{status}","ServiceID":"{service}-{i}","Output":"HTTP GET http://10.1.{}.{}:{}/health: 200 OK"}}}}"#,
        n / 250,
        n % 250 + 1,
        n % 8,
        n / 250,
        n % 250 + 1,
        20000 + i / nodes.max(1),
        n / 250,
        n % 250 + 1,
        20000 + i / nodes.max(1),
    )
}

async fn register(target: &Target, s: &mut crate::Sender, body: String) -> Result<(), BoxError> {
    let r = send(
        s,
        Method::PUT,
        &target.host,
        "/v1/catalog/register",
        Bytes::from(body),
        true,
    )
    .await?;
    if r.status != StatusCode::OK || r.body.trim_ascii() != b"true" {
        return Err(format!(
            "catalog register: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    Ok(())
}

async fn populate(
    target: Arc<Target>,
    service: &str,
    instances: usize,
    nodes: usize,
    conc: usize,
) -> Result<(), BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..conc.max(1) {
        let (target, next, service) = (target.clone(), next.clone(), service.to_string());
        hs.push(tokio::spawn(async move {
            let mut s = connect(target.addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= instances {
                    return Ok::<_, BoxError>(());
                }
                register(&target, &mut s, instance_body(&service, i, nodes, "passing")).await?;
            }
        }));
    }
    for h in hs {
        h.await??;
    }
    Ok(())
}

pub async fn run_populate(a: PopulateArgs) -> Result<(), BoxError> {
    let target = Arc::new(parse_url(&a.url)?);
    let t = Instant::now();
    populate(target.clone(), &a.service, a.instances, a.nodes, a.connections).await?;
    let mut s = connect(target.addr).await?;
    let path = format!("/v1/health/service/{}", a.service);
    let r = send(&mut s, Method::GET, &target.host, &path, Bytes::new(), false).await?;
    let count = count_instances(&r.body);
    println!(
        "registered {} instances of {} on {} nodes in {:.2}s; {path}: HTTP {}, {} instances, {} bytes",
        a.instances,
        a.service,
        a.nodes,
        t.elapsed().as_secs_f64(),
        r.status,
        count,
        r.body.len()
    );
    println!(
        "RESULT mode=populate instances={} nodes={} listed={count} bytes={} secs={:.2}",
        a.instances,
        a.nodes,
        r.body.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Instances in a health/service answer: one `"Checks"` key per element; compact or pretty-printed JSON.
fn count_instances(body: &[u8]) -> usize {
    let key = b"\"Checks\"";
    (0..body.len().saturating_sub(key.len()))
        .filter(|&i| {
            &body[i..i + key.len()] == key
                && body[i + key.len()..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b':')
        })
        .count()
}

struct Answer {
    at_headers: Instant,
    at_body: Instant,
    bytes: usize,
    status: StatusCode,
}

fn percentile_line(label: &str, v: &[f64]) -> (String, [f64; 3]) {
    let mut h = new_hist();
    for &x in v {
        h.saturating_record((x * 1000.0) as u64);
    }
    let q = |p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            ms(h.value_at_quantile(p))
        }
    };
    let vals = [q(0.5), q(0.99), if v.is_empty() { f64::NAN } else { ms(h.max()) }];
    (
        format!(
            "{label} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            vals[0], vals[1], vals[2]
        ),
        vals,
    )
}

pub async fn run_fanout(a: FanoutArgs) -> Result<(), BoxError> {
    raise_nofile();
    let target = Arc::new(parse_url(&a.url)?);
    let pid = a.pid.to_string();
    let n = a.watchers;
    if a.flip >= a.instances {
        return Err("--flip must be below --instances".into());
    }

    // 1. Data set: the service, plus one instance of an unrelated service for the selectivity check.
    let t = Instant::now();
    populate(target.clone(), &a.service, a.instances, a.nodes, 16).await?;
    let other = format!("{}-other", a.service);
    let mut ctl = connect(target.addr).await?;
    register(&target, &mut ctl, instance_body(&other, 0, 1, "passing")).await?;
    let sep = if a.query.is_empty() { "" } else { "&" };
    let path = format!("/v1/health/service/{}?{}", a.service, a.query);
    let r = send(&mut ctl, Method::GET, &target.host, &path, Bytes::new(), false).await?;
    let index = r.index.ok_or("no X-Consul-Index on the health answer")?;
    let listed = count_instances(&r.body);
    let body_bytes = r.body.len();
    let t_query = Instant::now();
    let r2 = send(&mut ctl, Method::GET, &target.host, &path, Bytes::new(), false).await?;
    let single_ms = t_query.elapsed().as_secs_f64() * 1000.0;
    drop(r2);
    println!(
        "{} instances of {} on {} nodes registered in {:.2}s; {path}: {listed} listed, {body_bytes} bytes, index {index}, \
         one non-blocking query {single_ms:.2} ms",
        a.instances,
        a.service,
        a.nodes,
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(&pid).ok_or("cannot read server RSS")?;

    // 2. Arm the watchers.
    let t = Instant::now();
    let sem = Arc::new(Semaphore::new(a.setup_concurrency));
    let armed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Answer>();
    let bpath = format!(
        "/v1/health/service/{}?{}{sep}index={index}&wait={}",
        a.service, a.query, a.wait
    );
    for _ in 0..n {
        let (target, sem, armed, failed, returned, tx, bpath) = (
            target.clone(),
            sem.clone(),
            armed.clone(),
            failed.clone(),
            returned.clone(),
            tx.clone(),
            bpath.clone(),
        );
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await.expect("semaphore");
            let arm = async {
                let mut s = connect(target.addr).await?;
                s.ready().await?;
                let req = Request::builder()
                    .uri(bpath.as_str())
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
            let fut = s.send_request(req);
            armed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let (status, at_headers, at_body, bytes) = match fut.await {
                Ok(resp) => {
                    let at_headers = Instant::now();
                    let status = resp.status();
                    let mut body = resp.into_body();
                    let mut bytes = 0usize;
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(f) => bytes += f.data_ref().map_or(0, |d| d.len()),
                            Err(_) => break,
                        }
                    }
                    (status, at_headers, Instant::now(), bytes)
                }
                Err(_) => {
                    let now = Instant::now();
                    (StatusCode::BAD_GATEWAY, now, now, 0)
                }
            };
            returned.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Answer {
                at_headers,
                at_body,
                bytes,
                status,
            });
            drop(s);
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    while armed.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let armed_n = armed.load(Ordering::Relaxed);
    let failed_n = failed.load(Ordering::Relaxed);
    println!(
        "armed {armed_n} blocking health queries ({failed_n} failed) in {:.2}s; settling {:.1}s",
        t.elapsed().as_secs_f64(),
        a.settle
    );
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    // Each parked query ran once on arrival; with large answers the server may still be working through
    // them. Wait (bounded) until it is idle, so that the flip finds every watcher parked.
    let idle_from = Instant::now();
    loop {
        let c = cpu_seconds(&pid).ok_or("cannot read server CPU")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy = (cpu_seconds(&pid).ok_or("cannot read server CPU")? - c) / 0.5;
        if busy < 0.05 || idle_from.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let settle_s = t.elapsed().as_secs_f64();
    let early = returned.load(Ordering::Relaxed);
    let rss_with = rss_kib(&pid).ok_or("cannot read server RSS")?;

    // 3. An unrelated service's check changes: nobody should return.
    register(&target, &mut ctl, instance_body(&other, 0, 1, "critical")).await?;
    tokio::time::sleep(Duration::from_secs_f64(a.verify)).await;
    let unrelated = returned.load(Ordering::Relaxed) - early;

    // 4. Flip one instance's check and collect every answer.
    let c0 = cpu_seconds(&pid).ok_or("cannot read server CPU")?;
    let cc0 = cpu_seconds("self").unwrap_or(0.0);
    let t0 = Instant::now();
    register(
        &target,
        &mut ctl,
        instance_body(&a.service, a.flip, a.nodes, "critical"),
    )
    .await?;
    let put_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (mut hdr, mut done, mut bytes, mut bad) = (Vec::new(), Vec::new(), 0usize, 0usize);
    let mut before = 0usize;
    let collect_end = t0 + Duration::from_secs_f64(a.collect_timeout);
    while hdr.len() + before < armed_n {
        match tokio::time::timeout(collect_end.saturating_duration_since(Instant::now()), rx.recv()).await {
            Ok(Some(ans)) => {
                if ans.at_headers < t0 {
                    before += 1;
                    continue;
                }
                if ans.status != StatusCode::OK {
                    bad += 1;
                }
                hdr.push(ans.at_headers.duration_since(t0).as_secs_f64() * 1000.0);
                done.push(ans.at_body.duration_since(t0).as_secs_f64() * 1000.0);
                bytes += ans.bytes;
            }
            _ => break,
        }
    }
    let span = t0.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid).ok_or("cannot read server CPU")? - c0;
    let client_cpu = cpu_seconds("self").unwrap_or(0.0) - cc0;
    let woken = hdr.len();
    // Watchers still parked when the flip was written: each should answer once.
    let expected = armed_n - before;
    let missed = expected - woken;
    let resp_bytes = bytes.checked_div(woken).unwrap_or(0);
    let (hl, hv) = percentile_line("headers", &hdr);
    let (dl, dv) = percentile_line("complete body", &done);
    let server_us_per_answer = if woken > 0 {
        server_cpu * 1e6 / woken as f64
    } else {
        f64::NAN
    };
    println!(
        "server idle {settle_s:.1}s after arming; RSS {:.1} MiB before, {:.1} MiB with {armed_n} watchers; \
         returned before any change: {early}; woken by a change to another service: {unrelated}",
        rss_before as f64 / 1024.0,
        rss_with as f64 / 1024.0
    );
    println!(
        "flip of {}-{}'s check (PUT {put_ms:.2} ms): {woken} of {expected} watchers answered in {span:.2}s \
         ({missed} missed, {bad} non-200); {hl}; {dl}; {resp_bytes} bytes each; server CPU {server_cpu:.2}s \
         ({server_us_per_answer:.0} µs per answer), client CPU {client_cpu:.2}s",
        a.service, a.flip
    );

    // 5. Restore (every watcher has returned or been given up on).
    drop(rx);
    let f = |v: f64| if v.is_finite() { format!("{v:.1}") } else { "na".into() };
    let mut ctl = connect(target.addr).await?;
    register(&target, &mut ctl, instance_body(&a.service, a.flip, a.nodes, "passing")).await?;
    register(&target, &mut ctl, instance_body(&other, 0, 1, "passing")).await?;
    println!(
        "RESULT mode=fanout instances={} nodes={} watchers={n} armed={armed_n} failed={failed_n} early={early} \
         unrelated_woken={unrelated} woken={woken} expected={expected} missed={missed} non_200={bad} \
         put_ms={put_ms:.2} hdr_p50_ms={} hdr_p99_ms={} hdr_max_ms={} p50_ms={} p99_ms={} max_ms={} \
         resp_bytes={resp_bytes} single_query_ms={single_ms:.2} server_cpu_s={server_cpu:.2} \
         server_us_per_answer={} client_cpu_s={client_cpu:.2} rss_before_kib={rss_before} rss_with_kib={rss_with} \
         arm_s={settle_s:.1}",
        a.instances,
        a.nodes,
        f(hv[0]),
        f(hv[1]),
        f(hv[2]),
        f(dv[0]),
        f(dv[1]),
        f(dv[2]),
        f(server_us_per_answer),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_bodies_spread_over_nodes() {
        let b = instance_body("web", 57, 50, "passing");
        assert!(b.contains(r#""Node":"web-node-7""#));
        assert!(b.contains(r#""ID":"web-57""#));
        assert!(b.contains(r#""Port":20001"#));
        assert!(b.contains(r#""Status":"passing""#));
        assert!(b.contains(r#""ServiceID":"web-57""#));
    }

    #[test]
    fn counts_instances_not_checks() {
        let body = br#"[{"Node":{},"Service":{"Service":"web"},"Checks":[{"ServiceName":"web"}]},{"Checks" : []}]"#;
        assert_eq!(count_instances(body), 2);
    }
}
