//! Starts the real `concord` binary on free loopback ports and talks HTTP to it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn index(&self) -> u64 {
        self.header("X-Consul-Index")
            .unwrap_or_else(|| panic!("no X-Consul-Index (status {})", self.status))
            .parse()
            .unwrap()
    }
}

/// A loopback port that is free for both TCP and UDP right now and that this
/// test process has not handed out before. Another process (or a client
/// socket's ephemeral port) can still take it before the agent binds it, so
/// `Agent::start` retries with fresh ports when the agent exits early.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Agent {
    child: Option<Child>,
    pub http: String,
    pub port: u16,
    /// The DNS port (UDP and TCP).
    pub dns: u16,
    /// The server RPC port (0 when the harness did not choose it).
    pub rpc: u16,
    pub data_dir: Option<PathBuf>,
    args: Vec<String>,
    /// Extra environment of the agent process.
    env: Vec<(String, String)>,
    client: reqwest::blocking::Client,
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("concord-it-{tag}-{}", std::process::id()))
        .join(format!("{}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Agent {
    /// A `-dev` agent.
    pub fn dev() -> Agent {
        Agent::start(vec!["-dev".into()], None)
    }

    /// A durable single server in `data_dir`.
    pub fn server(data_dir: &Path) -> Agent {
        Agent::server_with(data_dir, &[])
    }

    /// A durable single server in `data_dir` with more arguments (`-hcl=...`).
    pub fn server_with(data_dir: &Path, extra: &[&str]) -> Agent {
        let mut args = vec![
            "-server".to_string(),
            "-bootstrap-expect=1".to_string(),
            format!("-data-dir={}", data_dir.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Agent::start(args, Some(data_dir.to_path_buf()))
    }

    pub fn scratch(tag: &str) -> PathBuf {
        scratch_dir(tag)
    }

    /// Starts an agent on fresh free ports. A port can be taken between
    /// choosing it and the agent binding it; the agent then exits at once,
    /// and the start is retried on other ports.
    pub fn start(args: Vec<String>, data_dir: Option<PathBuf>) -> Agent {
        Agent::start_env(args, data_dir, &[])
    }

    /// [`Agent::start`] with extra environment variables for the agent process.
    pub fn start_env(args: Vec<String>, data_dir: Option<PathBuf>, env: &[(&str, &str)]) -> Agent {
        // reqwest is built without a default TLS provider (the binary picks ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        for _ in 0..4 {
            let mut agent = Agent::with_fresh_ports(args.clone(), data_dir.clone());
            agent.env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            agent.spawn();
            if agent.wait_ready_or_exit() {
                return agent;
            }
            // Keep the data directory for the next attempt.
            agent.data_dir = None;
        }
        panic!("agent exited at start four times (ports taken?)");
    }

    fn with_fresh_ports(mut args: Vec<String>, data_dir: Option<PathBuf>) -> Agent {
        let port = free_port();
        let dns = free_port();
        let rpc = free_port();
        args.extend([
            "-node=it-node".to_string(),
            "-bind=127.0.0.1".to_string(),
            "-client=127.0.0.1".to_string(),
            format!("-http-port={port}"),
            format!("-dns-port={dns}"),
            format!("-server-port={rpc}"),
            format!("-serf-lan-port={}", free_port()),
            format!("-serf-wan-port={}", free_port()),
            "-grpc-port=-1".to_string(),
            "-log-level=warn".to_string(),
        ]);
        Agent {
            child: None,
            http: format!("http://127.0.0.1:{port}"),
            port,
            dns,
            rpc,
            data_dir,
            args,
            env: Vec::new(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// A cluster member on its own loopback address with Consul's default ports
    /// (HTTP 8500, server RPC 8300, Serf LAN 8301): `args` carry its role and
    /// joins. DNS and the WAN pool are off unless `args` set `-dns-port` or
    /// `-serf-wan-port` (a flag given twice is an error). Returns once its HTTP
    /// API answers; a cluster may still be forming.
    pub fn start_at(ip: &str, name: &str, mut args: Vec<String>, data_dir: PathBuf) -> Agent {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
        let given: Vec<String> = args.iter().map(|a| flag(a)).collect();
        let defaults = [
            format!("-node={name}"),
            format!("-bind={ip}"),
            format!("-client={ip}"),
            format!("-data-dir={}", data_dir.display()),
            "-dns-port=-1".to_string(),
            "-grpc-port=-1".to_string(),
            "-serf-wan-port=-1".to_string(),
            "-retry-interval=1s".to_string(),
            "-log-level=warn".to_string(),
        ];
        args.extend(defaults.into_iter().filter(|d| !given.contains(&flag(d))));
        let dns = args
            .iter()
            .find_map(|a| a.strip_prefix("-dns-port="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut agent = Agent {
            child: None,
            http: format!("http://{ip}:8500"),
            port: 8500,
            dns,
            rpc: 8300,
            data_dir: Some(data_dir),
            args,
            env: Vec::new(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        agent.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent
            .client
            .get(format!("{}/v1/agent/self", agent.http))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "{name} did not start within 30s");
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    /// Starts the process again with the same arguments and data, without waiting.
    pub fn relaunch(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn launch(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .arg("agent")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn concord");
        self.child = Some(child);
    }

    /// Waits until the agent answers catalog reads with a known leader.
    pub fn wait_ready(&mut self) {
        assert!(
            self.wait_ready_or_exit(),
            "agent exited before it was ready"
        );
    }

    /// True once the agent is ready; false if its process exited first.
    fn wait_ready_or_exit(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/v1/catalog/nodes", self.http))
                .send()
            {
                let leader = r
                    .headers()
                    .get("X-Consul-KnownLeader")
                    .is_some_and(|v| v == "true");
                let idx = r
                    .headers()
                    .get("X-Consul-Index")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                if r.status() == 200 && leader && idx >= 2 {
                    return true;
                }
            }
            assert!(Instant::now() < deadline, "agent not ready within 30s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// SIGINT and wait; returns how long the exit took.
    pub fn interrupt(&mut self) -> Duration {
        let start = Instant::now();
        if let Some(mut c) = self.child.take() {
            unsafe_signal(c.id() as i32, 2);
            let _ = c.wait();
        }
        start.elapsed()
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent is running").id()
    }

    /// Sends signal `sig` (e.g. SIGSTOP, SIGCONT, SIGHUP) to the agent's process.
    pub fn signal(&self, sig: i32) {
        unsafe_signal(self.pid() as i32, sig);
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Resp {
        let r = rb.send().expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().unwrap().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A GET that tolerates an agent that is not (yet) listening.
    pub fn try_get(&self, path: &str) -> Option<Resp> {
        let r = self
            .client
            .get(format!("{}{}", self.http, path))
            .send()
            .ok()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().ok()?.to_vec();
        Some(Resp {
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(format!("{}{}", self.http, path)))
    }

    pub fn put(&self, path: &str, body: impl Into<reqwest::blocking::Body>) -> Resp {
        self.send(self.client.put(format!("{}{}", self.http, path)).body(body))
    }

    pub fn post(&self, path: &str, body: impl Into<reqwest::blocking::Body>) -> Resp {
        self.send(
            self.client
                .post(format!("{}{}", self.http, path))
                .body(body),
        )
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send(self.client.delete(format!("{}{}", self.http, path)))
    }

    pub fn request(&self, method: &str, path: &str) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.send(self.client.request(m, format!("{}{}", self.http, path)))
    }
}

fn unsafe_signal(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_signal(c.id() as i32, 2);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
