//! UDP DNS load: hand-built queries, minimal response parsing (header, question, answer types).
//!
//! `dns`: `--sockets` UDP sockets, each keeping `--window` queries in flight (a query's ID is its slot); a
//! response is good when its ID matches an outstanding query, QR is set, RCODE is 0, TC is clear, and it
//! carries at least `--min-answers` answers of the asked type. A query unanswered after `--timeout` seconds
//! is counted lost and replaced.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::{BoxError, cpu_seconds, machine_busy_seconds, ms, new_hist};

pub const TYPE_A: u16 = 1;
pub const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;

#[derive(clap::Args)]
pub struct DnsArgs {
    /// Server address, e.g. 127.0.0.1:8600 (loopback only).
    #[arg(long)]
    server: String,
    #[arg(long, default_value = "web.service.consul")]
    name: String,
    /// Query type: SRV or A.
    #[arg(long, default_value = "SRV")]
    qtype: String,
    /// A response counts as good with at least this many answers of the asked type.
    #[arg(long, default_value_t = 10)]
    min_answers: usize,
    /// UDP sockets.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Outstanding queries per socket.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// EDNS0 UDP payload size to advertise (0 = no OPT record, classic 512-byte limit).
    #[arg(long, default_value_t = 4096)]
    edns: u16,
    /// Measured duration in seconds.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds after which an unanswered query is counted lost and replaced.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
    /// Server pid: report its CPU use over the measured window.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(clap::Args)]
pub struct ProbeArgs {
    #[arg(long)]
    server: String,
    #[arg(long, default_value = "web.service.consul")]
    name: String,
    #[arg(long, default_value = "SRV")]
    qtype: String,
    #[arg(long, default_value_t = 4096)]
    edns: u16,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
}

fn parse_qtype(s: &str) -> Result<u16, BoxError> {
    match s.to_ascii_uppercase().as_str() {
        "SRV" => Ok(TYPE_SRV),
        "A" => Ok(TYPE_A),
        _ => Err(format!("unsupported query type {s} (SRV or A)").into()),
    }
}

fn loopback(server: &str) -> Result<SocketAddr, BoxError> {
    let addr: SocketAddr = server.parse().map_err(|e| format!("{server}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{server}: not a loopback address; loadgen only targets 127.0.0.0/8 or ::1").into());
    }
    Ok(addr)
}

/// A standard query (RD set) for `name`/`qtype`, class IN, with an EDNS0 OPT record if `edns` > 0.
pub fn build_query(id: u16, name: &str, qtype: u16, edns: u16) -> Result<Vec<u8>, BoxError> {
    let mut q = Vec::with_capacity(12 + name.len() + 2 + 4 + 11);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0, 0, 0, 0]); // ANCOUNT, NSCOUNT
    q.extend_from_slice(&u16::from(edns > 0).to_be_bytes()); // ARCOUNT
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad DNS name {name:?}").into());
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    if edns > 0 {
        q.push(0); // root
        q.extend_from_slice(&TYPE_OPT.to_be_bytes());
        q.extend_from_slice(&edns.to_be_bytes()); // "class" = UDP payload size
        q.extend_from_slice(&[0, 0, 0, 0]); // extended RCODE, version, flags
        q.extend_from_slice(&[0, 0]); // RDLEN
    }
    Ok(q)
}

/// What a response says, as far as the benchmark cares.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    pub answers: usize,
    /// Answers whose type is the one asked for.
    pub typed_answers: usize,
    pub additionals: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Skips a (possibly compressed) name, returning the offset after it.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(i + 1),
            0x00 => i += 1 + len,
            0xC0 => {
                b.get(i + 1)?;
                return Some(i + 2);
            }
            _ => return None,
        }
    }
}

/// Parses a response (QR must be set); `None` if it is not a well-formed DNS response.
pub fn parse_response(b: &[u8], qtype: u16) -> Option<Parsed> {
    let id = u16_at(b, 0)?;
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return None;
    }
    let (qd, an, ns, ar) = (u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    let mut typed = 0;
    for _ in 0..an {
        i = skip_name(b, i)?;
        let t = u16_at(b, i)?;
        let rdlen = u16_at(b, i + 8)? as usize;
        i += 10 + rdlen;
        if i > b.len() {
            return None;
        }
        if t == qtype {
            typed += 1;
        }
    }
    let _ = ns;
    Some(Parsed {
        id,
        rcode: (flags & 0x000F) as u8,
        truncated: flags & 0x0200 != 0,
        answers: an as usize,
        typed_answers: typed,
        additionals: ar as usize,
    })
}

pub async fn run_probe(a: ProbeArgs) -> Result<(), BoxError> {
    let server = loopback(&a.server)?;
    let qtype = parse_qtype(&a.qtype)?;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(server).await?;
    let id = 0x4242;
    let q = build_query(id, &a.name, qtype, a.edns)?;
    let t0 = Instant::now();
    sock.send(&q).await?;
    let mut buf = vec![0u8; 65536];
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    loop {
        let n =
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), sock.recv(&mut buf)).await {
                Err(_) => {
                    println!("no DNS answer from {server} within {:.1}s", a.timeout);
                    println!("RESULT mode=dns-probe answered=0 reason=timeout");
                    std::process::exit(2);
                }
                Ok(Err(e)) => {
                    println!("no DNS answer from {server}: {e}");
                    println!("RESULT mode=dns-probe answered=0 reason=refused");
                    std::process::exit(2);
                }
                Ok(Ok(n)) => n,
            };
        match parse_response(&buf[..n], qtype) {
            Some(p) if p.id == id => {
                println!(
                    "{server} answered {} {} in {:.2} ms: rcode {}, {} answers ({} {}), {} additional, {n} bytes{}",
                    a.name,
                    a.qtype,
                    t0.elapsed().as_secs_f64() * 1000.0,
                    p.rcode,
                    p.answers,
                    p.typed_answers,
                    a.qtype,
                    p.additionals,
                    if p.truncated { ", truncated" } else { "" }
                );
                println!(
                    "RESULT mode=dns-probe answered=1 rcode={} answers={} typed_answers={} additionals={} bytes={n} \
                     truncated={}",
                    p.rcode,
                    p.answers,
                    p.typed_answers,
                    p.additionals,
                    u8::from(p.truncated)
                );
                return Ok(());
            }
            _ => continue,
        }
    }
}

struct SocketStats {
    hist: hdrhistogram::Histogram<u64>,
    good: u64,
    bad: u64,
    lost: u64,
    errors: u64,
    bytes: u64,
}

#[allow(clippy::too_many_arguments)]
async fn socket_loop(
    server: SocketAddr,
    query: Vec<u8>,
    qtype: u16,
    window: usize,
    min_answers: usize,
    start: Instant,
    end: Instant,
    timeout: Duration,
) -> Result<SocketStats, BoxError> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(server).await?;
    let mut st = SocketStats {
        hist: new_hist(),
        good: 0,
        bad: 0,
        lost: 0,
        errors: 0,
        bytes: 0,
    };
    // Slot i uses IDs i, i + window, i + 2*window, ... so a late answer to a replaced query is recognised.
    let window = window.clamp(1, 4096);
    let mut sent: Vec<Option<(u16, Instant)>> = vec![None; window];
    let mut generation: Vec<u32> = vec![0; window];
    let mut q = query;
    let id_of = |slot: usize, g: u32| -> u16 { ((slot as u32 + g * window as u32) % 65536) as u16 };
    let max_gen = 65536 / window as u32;
    async fn fire(sock: &UdpSocket, q: &mut [u8], id: u16) -> std::io::Result<usize> {
        q[..2].copy_from_slice(&id.to_be_bytes());
        sock.send(q).await
    }
    for (slot, entry) in sent.iter_mut().enumerate() {
        let id = id_of(slot, 0);
        if fire(&sock, &mut q, id).await.is_ok() {
            *entry = Some((id, Instant::now()));
        }
    }
    let mut buf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::select! {
            r = sock.recv(&mut buf) => {
                let now = Instant::now();
                let n = match r {
                    Ok(n) => n,
                    Err(_) => {
                        // e.g. ECONNREFUSED (nothing listening): count it, do not spin.
                        if now >= start { st.errors += 1; }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Some(p) = parse_response(&buf[..n], qtype) else {
                    if now >= start { st.bad += 1; }
                    continue;
                };
                let slot = p.id as usize % window;
                let Some((id, t0)) = sent[slot] else { continue };
                if id != p.id {
                    continue; // an answer to a query already given up on
                }
                if t0 >= start && now < end {
                    if p.rcode == 0 && !p.truncated && p.typed_answers >= min_answers {
                        st.good += 1;
                        st.bytes += n as u64;
                        st.hist.saturating_record(now.duration_since(t0).as_micros() as u64);
                    } else {
                        st.bad += 1;
                    }
                }
                generation[slot] = (generation[slot] + 1) % max_gen;
                let id = id_of(slot, generation[slot]);
                sent[slot] = fire(&sock, &mut q, id).await.ok().map(|_| (id, Instant::now()));
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for slot in 0..window {
                    let expired = match sent[slot] {
                        Some((_, t0)) => now.duration_since(t0) >= timeout,
                        None => true,
                    };
                    if expired {
                        if sent[slot].is_some_and(|(_, t0)| t0 >= start) && now < end {
                            st.lost += 1;
                        }
                        generation[slot] = (generation[slot] + 1) % max_gen;
                        let id = id_of(slot, generation[slot]);
                        sent[slot] = fire(&sock, &mut q, id).await.ok().map(|_| (id, Instant::now()));
                    }
                }
            }
        }
    }
    Ok(st)
}

pub async fn run_dns(a: DnsArgs) -> Result<(), BoxError> {
    let server = loopback(&a.server)?;
    let qtype = parse_qtype(&a.qtype)?;
    let query = build_query(0, &a.name, qtype, a.edns)?;
    let start = Instant::now() + Duration::from_secs_f64(a.warmup);
    let end = start + Duration::from_secs_f64(a.duration);
    let timeout = Duration::from_secs_f64(a.timeout);

    let pid = a.pid.map(|p| p.to_string());
    let probe = tokio::spawn({
        let pid = pid.clone();
        async move {
            tokio::time::sleep_until(start.into()).await;
            let s0 = pid.as_deref().and_then(cpu_seconds);
            let c0 = cpu_seconds("self");
            let m0 = machine_busy_seconds();
            let w0 = Instant::now();
            tokio::time::sleep_until(end.into()).await;
            let wall = w0.elapsed().as_secs_f64();
            let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
            let srv = delta(s0, pid.as_deref().and_then(cpu_seconds));
            let cli = delta(c0, cpu_seconds("self"));
            let all = delta(m0, machine_busy_seconds());
            let other = all.map(|t| (t - cli.unwrap_or(0.0) - srv.unwrap_or(0.0)).max(0.0));
            (
                srv,
                cli.map(|v| v / wall * 100.0),
                other.map(|v| v / wall * 100.0),
                wall,
            )
        }
    });
    let mut hs = Vec::new();
    for _ in 0..a.sockets.max(1) {
        hs.push(tokio::spawn(socket_loop(
            server,
            query.clone(),
            qtype,
            a.window,
            a.min_answers,
            start,
            end,
            timeout,
        )));
    }
    let mut hist = new_hist();
    let (mut good, mut bad, mut lost, mut errors, mut bytes) = (0, 0, 0, 0, 0);
    for h in hs {
        let st = h.await??;
        hist.add(&st.hist)?;
        good += st.good;
        bad += st.bad;
        lost += st.lost;
        errors += st.errors;
        bytes += st.bytes;
    }
    let (srv, cli_pct, other_pct, wall) = probe.await?;
    let qps = good as f64 / a.duration;
    let f0 = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "na".into());
    let f1 = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "na".into());
    let srv_pct = srv.map(|s| s / wall * 100.0);
    let us_per_q = srv.filter(|_| good > 0).map(|s| s * 1e6 / good as f64);
    let resp_bytes = bytes.checked_div(good).unwrap_or(0);
    let (p50, p99, max) = (
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.max()),
    );
    println!(
        "dns: {qps:.0} good answers/s over {:.1}s ({} sockets × {} outstanding), good={good} bad={bad} lost={lost} \
         errors={errors}; latency p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms; {resp_bytes} bytes per answer; \
         server CPU {}% ({} µs/query), client CPU {}%, other processes {}%",
        a.duration,
        a.sockets,
        a.window,
        f0(srv_pct),
        f1(us_per_q),
        f0(cli_pct),
        f0(other_pct),
    );
    println!(
        "RESULT mode=dns rps={qps:.0} ok={good} bad={bad} lost={lost} errors={errors} sockets={} window={} \
         p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3} resp_bytes={resp_bytes} server_cpu_pct={} \
         server_us_per_req={} client_cpu_pct={} other_cpu_pct={}",
        a.sockets,
        a.window,
        f0(srv_pct),
        f1(us_per_q),
        f0(cli_pct),
        f0(other_pct),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wire_format() {
        let q = build_query(0xBEEF, "web.service.consul", TYPE_SRV, 0).unwrap();
        let mut want = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x03web\x07service\x06consul\x00");
        want.extend_from_slice(&[0, 33, 0, 1]);
        assert_eq!(q, want);
    }

    #[test]
    fn query_with_edns() {
        let q = build_query(1, "web.service.consul.", TYPE_SRV, 4096).unwrap();
        assert_eq!(&q[10..12], &[0, 1]); // ARCOUNT
        assert_eq!(&q[q.len() - 11..], &[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0]);
        assert!(build_query(1, "a..b", TYPE_A, 0).is_err());
    }

    /// A response like Consul's: the question, `n` SRV answers (name compressed to the question), and one A
    /// record per target in the additional section.
    fn srv_response(id: u16, n: usize, flags: u16) -> Vec<u8> {
        let q = build_query(id, "web.service.consul", TYPE_SRV, 0).unwrap();
        let mut r = q.clone();
        r[2..4].copy_from_slice(&flags.to_be_bytes());
        r[6..8].copy_from_slice(&(n as u16).to_be_bytes());
        r[10..12].copy_from_slice(&(n as u16).to_be_bytes());
        let mut targets = Vec::new();
        for i in 0..n {
            r.extend_from_slice(&[0xC0, 0x0C, 0, 33, 0, 1, 0, 0, 0, 0]);
            let mut target = Vec::new();
            target.push(format!("node-{i}").len() as u8);
            target.extend_from_slice(format!("node-{i}").as_bytes());
            target.extend_from_slice(b"\x04node\x03dc1\x06consul\x00");
            r.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 1]);
            r.extend_from_slice(&(8000 + i as u16).to_be_bytes());
            targets.push(r.len());
            r.extend_from_slice(&target);
        }
        for (i, off) in targets.into_iter().enumerate() {
            r.extend_from_slice(&[
                0xC0 | (off >> 8) as u8,
                off as u8,
                0,
                1,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                4,
                10,
                1,
                0,
            ]);
            r.push(i as u8);
        }
        r
    }

    #[test]
    fn parses_srv_answers() {
        let r = srv_response(7, 10, 0x8580);
        let p = parse_response(&r, TYPE_SRV).unwrap();
        assert_eq!(
            p,
            Parsed {
                id: 7,
                rcode: 0,
                truncated: false,
                answers: 10,
                typed_answers: 10,
                additionals: 10
            }
        );
        assert_eq!(parse_response(&r, TYPE_A).unwrap().typed_answers, 0);
    }

    #[test]
    fn rcode_truncation_and_garbage() {
        let nx = srv_response(9, 0, 0x8583);
        let p = parse_response(&nx, TYPE_SRV).unwrap();
        assert_eq!((p.rcode, p.answers), (3, 0));
        let tc = srv_response(9, 3, 0x8780);
        assert!(parse_response(&tc, TYPE_SRV).unwrap().truncated);
        // A query (QR clear) is not a response; a cut-off answer section is rejected.
        let q = build_query(1, "web.service.consul", TYPE_SRV, 0).unwrap();
        assert!(parse_response(&q, TYPE_SRV).is_none());
        let r = srv_response(7, 10, 0x8580);
        assert!(parse_response(&r[..r.len() - 200], TYPE_SRV).is_none());
        assert!(parse_response(&[0x12], TYPE_SRV).is_none());
    }
}
