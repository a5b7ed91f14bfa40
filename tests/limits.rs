//! Connection bounds on the HTTP and server RPC ports: the per-client-IP limits
//! (Consul's 429 on HTTP), the handshake timeout that drops a connection which
//! never completes its first request, and serving on after the process runs out
//! of file descriptors.

mod common;
use common::Agent;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const TOO_MANY: &str = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 81\r\nConnection: close\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n";

/// A TCP connection to `to` from the loopback address `from` (so that the
/// harness's own connections, from 127.0.0.1, are not counted with it).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends one keep-alive GET and reads its answer: the status line and body.
fn get(conn: &mut TcpStream, path: &str) -> (String, String) {
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_answer(conn)
}

fn read_answer(conn: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).expect("read answer");
        assert!(
            n > 0,
            "closed before a full answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return (
                    head.lines().next().unwrap_or("").to_string(),
                    body.to_string(),
                );
            }
        }
    }
}

/// Whether the peer closed `conn` (reading gives end of stream or a reset)
/// within `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

fn http_addr(a: &Agent) -> SocketAddr {
    format!("127.0.0.1:{}", a.port).parse().unwrap()
}

#[test]
fn the_201st_connection_from_one_client_gets_consuls_429() {
    let a = Agent::dev();
    let addr = http_addr(&a);
    let mut open: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = connect_from("127.0.0.2", addr);
            let (status, _) = get(&mut c, "/v1/status/leader");
            assert_eq!(status, "HTTP/1.1 200 OK", "connection {i}");
            c
        })
        .collect();
    let mut extra = connect_from("127.0.0.2", addr);
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, TOO_MANY);
    // Other clients have their own count.
    assert_eq!(a.get("/v1/status/leader").status, 200);
    // A closed connection frees its place.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connect_from("127.0.0.2", addr);
        write!(c, "GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _) = read_answer(&mut c);
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_limit_is_configurable_and_checked() {
    let a = Agent::start(
        vec![
            "-dev".into(),
            "-hcl=limits { http_max_conns_per_client = 3 }".into(),
        ],
        None,
    );
    let addr = http_addr(&a);
    let _held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = connect_from("127.0.0.3", addr);
            assert_eq!(get(&mut c, "/v1/status/leader").0, "HTTP/1.1 200 OK");
            c
        })
        .collect();
    let mut answer = String::new();
    connect_from("127.0.0.3", addr)
        .read_to_string(&mut answer)
        .unwrap();
    assert_eq!(answer, TOO_MANY);

    // A negative limit is refused at start with Consul's style of message.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
        .args([
            "agent",
            "-dev",
            "-hcl=limits { http_max_conns_per_client = -1 }",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent started with a negative connection limit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "limits.http_max_conns_per_client cannot be -1. Must be greater than or equal to zero"
        ),
        "{said}"
    );
}

#[test]
fn a_connection_that_never_finishes_its_request_is_closed() {
    let a = Agent::start(
        vec![
            "-dev".into(),
            "-hcl=limits { https_handshake_timeout = \"1s\" }".into(),
        ],
        None,
    );
    let addr = http_addr(&a);
    // Half a request line, then nothing.
    let mut slow = connect_from("127.0.0.4", addr);
    slow.write_all(b"GET /v1/sta").unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Nothing at all: closed as well.
    let mut silent = connect_from("127.0.0.4", addr);
    assert!(closed_within(&mut silent, Duration::from_secs(5)));

    // The deadline covers the first request only: a keep-alive connection may
    // pause between requests, and a blocking query may run longer.
    let mut c = connect_from("127.0.0.4", addr);
    let (status, _) = get(&mut c, "/v1/kv/k");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let (status, _) = get(&mut c, "/v1/kv/k?index=1000000&wait=2s");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// Open file descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_agent_backs_off_and_keeps_serving() {
    let a = Agent::start(
        vec![
            "-dev".into(),
            "-hcl=limits { http_max_conns_per_client = 0 }".into(),
        ],
        None,
    );
    let pid = a.pid();
    let limit = fds(pid) + 16;
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:{limit}")])
        .status()
        .unwrap();
    assert!(status.success());

    // More connections than descriptors are left: the rest wait in the backlog.
    let addr = http_addr(&a);
    let mut flood: Vec<TcpStream> = (0..60).map(|_| connect_from("127.0.0.5", addr)).collect();
    // The last one asks something while it waits to be accepted.
    let mut waiting = flood.pop().unwrap();
    write!(waiting, "GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - before;
    // 2s are 200 ticks at 100 Hz: a spinning accept loop burns all of them.
    assert!(
        spent < 60,
        "the agent spent {spent} ticks in 2s while out of descriptors"
    );

    // Descriptors come back: the waiting request is answered, new ones too.
    drop(flood);
    let (status, body) = read_answer(&mut waiting);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.starts_with("\"127.0.0.1:"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.try_get("/v1/status/leader").map(|r| r.status) != Some(200) {
        assert!(Instant::now() < deadline, "the agent stopped serving");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One request frame of the server RPC protocol: a forwarded `GET path`.
fn rpc_get(path: &str) -> Vec<u8> {
    let msg =
        serde_json::json!({"Http": {"method": "GET", "uri": path, "headers": [], "body": ""}});
    let payload = serde_json::to_vec(&msg).unwrap();
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

#[test]
fn rpc_connections_from_a_non_member_are_limited_and_must_start_in_time() {
    let a = Agent::start(
        vec![
            "-dev".into(),
            "-hcl=limits {\nrpc_max_conns_per_client = 4\nrpc_handshake_timeout = \"1s\"\n}".into(),
        ],
        None,
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", a.rpc).parse().unwrap();
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect_from("127.0.0.6", addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect_from("127.0.0.6", addr);
    assert!(closed_within(&mut extra, Duration::from_millis(500)));
    // The four sent nothing: the handshake timeout closes them.
    for c in &mut held {
        assert!(closed_within(c, Duration::from_secs(3)));
    }
    // A connection that speaks in time is served, on and on.
    let mut c = connect_from("127.0.0.6", addr);
    for _ in 0..2 {
        c.write_all(&rpc_get("/v1/status/leader")).unwrap();
        let mut len = [0u8; 4];
        c.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut reply).unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["Http"]["status"], 200, "{reply}");
        std::thread::sleep(Duration::from_millis(1200));
    }
}
