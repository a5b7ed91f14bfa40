//! The Docker probe (Consul's `CheckDocker` and its small Docker Engine client): runs
//! the check's command inside a container through the Engine API — create an exec,
//! start it (attached, with a TTY, so the output is one raw stream), then read its
//! exit code — over the socket named by `DOCKER_HOST` (default
//! `unix:///var/run/docker.sock`; `tcp://host:port` also works). Exit 0 is passing,
//! 1 warning, anything else critical, with the exec's output captured as for scripts.
//! Any API failure is critical with Consul's texts, e.g. for an engine that is not
//! there: `create exec failed for container <id>: Post
//! "http://%2Fvar%2Frun%2Fdocker.sock/containers/<id>/exec": dial unix
//! /var/run/docker.sock: connect: no such file or directory`.
//!
//! Consul runs `args` when given, else `[shell, "-c", script]`; the agent only ever
//! passes `args`, so with none the command is the shell with an empty script.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, timeout_at};

use super::support::{Health, Outcome, TailBuffer, errno_text, go_duration};

const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How much of the engine's JSON answers is kept. Consul caps these with the output
/// limit too, so a small `output_max_size` makes it fail to parse even the exec id;
/// only the command's output is held to that limit here.
const API_ANSWER_MAX: usize = 64 * 1024;

/// Where the Docker engine listens.
#[derive(Debug, Clone)]
enum Engine {
    Unix(PathBuf),
    Tcp(String),
}

impl Engine {
    /// Parses a `DOCKER_HOST` value (empty means the default socket).
    fn parse(host: &str) -> Result<Engine, String> {
        let host = if host.is_empty() {
            DEFAULT_DOCKER_HOST
        } else {
            host
        };
        let Some((proto, addr)) = host.split_once("://") else {
            return Err(format!("unable to parse docker host `{host}`"));
        };
        match proto {
            "unix" => Ok(Engine::Unix(PathBuf::from(addr))),
            // A path after the address is ignored, as Consul's client ignores it.
            "tcp" => Ok(Engine::Tcp(
                addr.split('/').next().unwrap_or_default().to_string(),
            )),
            other => Err(format!(
                "unable to use docker host `{host}`: protocol {other} not supported"
            )),
        }
    }

    /// The host part of the request URL as Go prints it in errors (Go escapes the
    /// socket path's slashes).
    fn url_host(&self) -> String {
        match self {
            Engine::Unix(path) => path.to_string_lossy().replace('/', "%2F"),
            Engine::Tcp(addr) => addr.clone(),
        }
    }

    /// The `Host` header: any meaningful name will do over a socket; Consul sends "docker".
    fn host_header(&self) -> String {
        match self {
            Engine::Unix(_) => "docker".into(),
            Engine::Tcp(addr) => addr.clone(),
        }
    }
}

#[derive(Debug)]
pub(super) struct DockerProbe {
    container_id: String,
    cmd: Vec<String>,
    max_output: usize,
    engine: Result<Engine, String>,
}

impl DockerProbe {
    /// A probe against the engine named by `DOCKER_HOST`.
    pub(super) fn new(
        container_id: String,
        shell: String,
        args: Vec<String>,
        max_output: usize,
    ) -> Self {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        Self::with_host(&host, container_id, shell, args, max_output)
    }

    fn with_host(
        host: &str,
        container_id: String,
        shell: String,
        args: Vec<String>,
        max_output: usize,
    ) -> Self {
        let cmd = if args.is_empty() {
            let shell = if shell.is_empty() {
                std::env::var("SHELL")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "/bin/sh".into())
            } else {
                shell
            };
            vec![shell, "-c".into(), String::new()]
        } else {
            args
        };
        DockerProbe {
            container_id,
            cmd,
            max_output,
            engine: Engine::parse(host),
        }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let engine = match &self.engine {
            Ok(engine) => engine,
            Err(e) => return Outcome::critical(e.clone()),
        };
        // Consul's Docker client sets no deadline; a hung engine must not stall the
        // check forever, so the check's timeout bounds the whole exchange.
        match timeout_at(Instant::now() + timeout, self.run(engine)).await {
            Ok(Ok((health, output))) => Outcome::new(health, output.captured_text()),
            Ok(Err(e)) => Outcome::critical(e),
            Err(_) => Outcome::critical(format!(
                "Timed out ({}) running check",
                go_duration(timeout)
            )),
        }
    }

    async fn run(&self, engine: &Engine) -> Result<(Health, TailBuffer), String> {
        let id = &self.container_id;
        let exec_id = self.create_exec(engine).await?;

        let start = StartExec {
            detach: false,
            tty: true,
        };
        let path = format!("/exec/{exec_id}/start");
        let output = match call(engine, "POST", &path, Some(&start), self.max_output).await {
            Err(e) => return Err(format!("start exec failed for container {id}: {e}")),
            Ok((200, body)) => body,
            Ok((404, _)) => {
                return Err(format!(
                    "start exec failed for container {id}: invalid exec id {exec_id}"
                ));
            }
            Ok((409, _)) => {
                return Err(format!(
                    "start exec failed since container {id} is paused or stopped"
                ));
            }
            Ok((code, body)) => {
                return Err(format!(
                    "start exec failed for container {id} with status {code}: body: {} err: <nil>",
                    body.text()
                ));
            }
        };

        let path = format!("/exec/{exec_id}/json");
        let exit_code = match call::<()>(engine, "GET", &path, None, API_ANSWER_MAX).await {
            Err(e) => return Err(format!("inspect exec failed for container {id}: {e}")),
            Ok((200, body)) => {
                serde_json::from_str::<InspectExec>(&body.text())
                    .map_err(|e| {
                        format!("inspect exec response for container {id} cannot be parsed: {e}")
                    })?
                    .exit_code
            }
            Ok((404, _)) => {
                return Err(format!(
                    "inspect exec failed for container {id}: invalid exec id {exec_id}"
                ));
            }
            Ok((code, body)) => {
                return Err(format!(
                    "inspect exec failed for container {id} with status {code}: {}",
                    body.text()
                ));
            }
        };
        let health = match exit_code {
            0 => Health::Passing,
            1 => Health::Warning,
            _ => Health::Critical,
        };
        Ok((health, output))
    }

    async fn create_exec(&self, engine: &Engine) -> Result<String, String> {
        let id = &self.container_id;
        let request = CreateExec {
            attach_stdin: false,
            attach_stdout: true,
            attach_stderr: true,
            tty: false,
            cmd: &self.cmd,
        };
        let path = format!("/containers/{}/exec", query_escape(id));
        match call(engine, "POST", &path, Some(&request), API_ANSWER_MAX).await {
            Err(e) => Err(format!("create exec failed for container {id}: {e}")),
            Ok((201, body)) => serde_json::from_str::<Created>(&body.text())
                .map(|c| c.id)
                .map_err(|e| {
                    format!("create exec response for container {id} cannot be parsed: {e}")
                }),
            Ok((404, _)) => Err(format!("create exec failed for unknown container {id}")),
            Ok((409, _)) => Err(format!(
                "create exec failed since container {id} is paused or stopped"
            )),
            Ok((code, body)) => Err(format!(
                "create exec failed for container {id} with status {code}: {}",
                body.text()
            )),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateExec<'a> {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StartExec {
    detach: bool,
    tty: bool,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct InspectExec {
    #[serde(rename = "ExitCode")]
    exit_code: i64,
}

/// One request to the engine on a fresh connection. Returns the status code and the
/// body's last `max` bytes; a failure is worded like Go's `url.Error`
/// (`Post "<url>": <cause>`).
async fn call<T: Serialize>(
    engine: &Engine,
    method: &str,
    path: &str,
    body: Option<&T>,
    max: usize,
) -> Result<(u16, TailBuffer), String> {
    let op = if method == "POST" { "Post" } else { "Get" };
    let failed = |why: String| format!("{op} \"http://{}{path}\": {why}", engine.url_host());

    let payload = match body {
        Some(value) => Bytes::from(serde_json::to_vec(value).map_err(|e| failed(e.to_string()))?),
        None => Bytes::new(),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, engine.host_header());
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(payload))
        .map_err(|e| failed(e.to_string()))?;

    let response = match engine {
        Engine::Unix(socket) => {
            let stream = UnixStream::connect(socket).await.map_err(|e| {
                failed(format!(
                    "dial unix {}: connect: {}",
                    socket.display(),
                    errno_text(&e)
                ))
            })?;
            send(stream, request).await
        }
        Engine::Tcp(addr) => {
            let stream = TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| failed(format!("dial tcp {addr}: connect: {}", errno_text(&e))))?;
            send(stream, request).await
        }
    }
    .map_err(failed)?;

    let status = response.status().as_u16();
    let mut captured = TailBuffer::new(max);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    captured.write(data);
                }
            }
            // Consul ignores a reset once status and body have arrived (the engine
            // tends to close the exec stream abruptly).
            Err(e) if e.to_string().contains("connection reset") => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((status, captured))
}

/// HTTP/1.1 over an already connected stream.
async fn send<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends with the exchange (or when this probe is dropped,
    // which drops `sender`).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Go's `url.QueryEscape`, which Consul applies to the container id in the path.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use axum::Json;
    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    use super::*;

    #[tokio::test]
    async fn unreachable_engine_is_critical_with_consuls_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let probe = DockerProbe::with_host(
            &host,
            "web-1".into(),
            String::new(),
            vec!["true".into()],
            4096,
        );
        let out = probe.check(Duration::from_secs(2)).await;
        assert_eq!(out.health, Health::Critical);
        let escaped = socket.display().to_string().replace('/', "%2F");
        assert_eq!(
            out.output,
            format!(
                "create exec failed for container web-1: Post \"http://{escaped}/containers/web-1/exec\": dial unix {}: connect: no such file or directory",
                socket.display()
            )
        );
    }

    #[test]
    fn docker_host_parsing() {
        assert!(
            matches!(Engine::parse(""), Ok(Engine::Unix(p)) if p == std::path::Path::new("/var/run/docker.sock"))
        );
        assert!(
            matches!(Engine::parse("tcp://10.0.0.1:2375/v1"), Ok(Engine::Tcp(a)) if a == "10.0.0.1:2375")
        );
        assert_eq!(
            Engine::parse("nonsense").err(),
            Some("unable to parse docker host `nonsense`".to_string())
        );
        assert_eq!(query_escape("a b/c"), "a+b%2Fc");
    }

    #[derive(Clone)]
    struct Fake {
        exit_code: Arc<AtomicI64>,
        cmd: Arc<std::sync::Mutex<Value>>,
    }

    /// A fake Engine API on a Unix socket: container "app" exists, "gone" does not.
    async fn fake_engine(dir: &std::path::Path) -> (String, Fake) {
        let fake = Fake {
            exit_code: Arc::new(AtomicI64::new(0)),
            cmd: Arc::new(std::sync::Mutex::new(Value::Null)),
        };
        let app = Router::new()
            .route(
                "/containers/{id}/exec",
                post(|State(f): State<Fake>, Path(id): Path<String>, Json(body): Json<Value>| async move {
                    if id != "app" {
                        return (StatusCode::NOT_FOUND, Json(json!({"message": "No such container"})));
                    }
                    *f.cmd.lock().unwrap_or_else(|e| e.into_inner()) = body;
                    (StatusCode::CREATED, Json(json!({"Id": "exec-1"})))
                }),
            )
            .route("/exec/{id}/start", post(|| async { "hello from the container\n" }))
            .route(
                "/exec/{id}/json",
                get(|State(f): State<Fake>| async move { Json(json!({"ExitCode": f.exit_code.load(Ordering::SeqCst)})) }),
            )
            .with_state(fake.clone());
        let socket = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind unix");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("unix://{}", socket.display()), fake)
    }

    #[tokio::test]
    async fn exec_through_a_fake_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (host, fake) = fake_engine(dir.path()).await;
        let args = vec!["/bin/check".to_string(), "--quick".to_string()];
        let probe = DockerProbe::with_host(&host, "app".into(), String::new(), args, 4096);

        let out = probe.check(Duration::from_secs(5)).await;
        assert_eq!(out, Outcome::passing("hello from the container\n"));
        assert_eq!(
            *fake.cmd.lock().unwrap_or_else(|e| e.into_inner()),
            json!({"AttachStdin": false, "AttachStdout": true, "AttachStderr": true, "Tty": false, "Cmd": ["/bin/check", "--quick"]})
        );

        fake.exit_code.store(1, Ordering::SeqCst);
        assert_eq!(
            probe.check(Duration::from_secs(5)).await.health,
            Health::Warning
        );
        fake.exit_code.store(3, Ordering::SeqCst);
        assert_eq!(
            probe.check(Duration::from_secs(5)).await.health,
            Health::Critical
        );

        let gone =
            DockerProbe::with_host(&host, "gone".into(), "/bin/bash".into(), Vec::new(), 4096);
        let out = gone.check(Duration::from_secs(5)).await;
        assert_eq!(
            out,
            Outcome::critical("create exec failed for unknown container gone")
        );
    }

    #[tokio::test]
    async fn output_is_captured_like_scripts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (host, _fake) = fake_engine(dir.path()).await;
        let probe =
            DockerProbe::with_host(&host, "app".into(), String::new(), vec!["x".into()], 10);
        let out = probe.check(Duration::from_secs(5)).await;
        assert_eq!(out.output, "Captured 10 of 25 bytes\n...\ncontainer\n");
    }
}
