//! The gRPC probe (Consul's `CheckGRPC` / `GrpcHealthProbe`): calls
//! `grpc.health.v1.Health/Check` on `host:port[/service]` (the service part, possibly
//! empty, goes in the request), over h2c or, with `use_tls`, TLS with ALPN `h2`.
//! SERVING is passing with `gRPC check <target>: success`; any other status is critical
//! with `gRPC <target> serving status: <STATUS>`, and a failed call is critical with
//! grpc-go's error text (`rpc error: code = <Code> desc = <message>`).
//!
//! The connection is dialled here rather than by tonic so that dial and handshake
//! failures can be worded as grpc-go words them.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::time::{Instant, timeout_at};
use tonic::Code;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::net::{Conn, dial_tcp, tls_handshake, tls_name};
use super::support::{Outcome, root_cause_text};
use super::tls;

const DEADLINE_EXCEEDED: &str =
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded";

#[derive(Debug)]
pub(super) struct GrpcProbe {
    /// The configured target, `host:port[/service]`, as it appears in outputs.
    target: String,
    server: String,
    service: String,
    tls: Option<Result<Arc<ClientConfig>, String>>,
}

impl GrpcProbe {
    pub(super) fn new(target: &str, use_tls: bool, tls_skip_verify: bool) -> Self {
        let (server, service) = match target.split_once('/') {
            Some((server, service)) => (server.to_string(), service.to_string()),
            None => (target.to_string(), String::new()),
        };
        let tls = use_tls.then(|| tls::client_config(tls_skip_verify, None, &[b"h2"]));
        GrpcProbe {
            target: target.to_string(),
            server,
            service,
            tls,
        }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        match self.call(Instant::now() + timeout).await {
            Ok(ServingStatus::Serving) => {
                Outcome::passing(format!("gRPC check {}: success", self.target))
            }
            Ok(other) => Outcome::critical(format!(
                "gRPC {} serving status: {}",
                self.target,
                other.as_str_name()
            )),
            Err(e) => Outcome::critical(e),
        }
    }

    async fn call(&self, deadline: Instant) -> Result<ServingStatus, String> {
        let unavailable = |why: String| {
            format!("rpc error: code = Unavailable desc = connection error: desc = {why:?}")
        };
        let tcp = dial_tcp(&self.server, deadline)
            .await
            .map_err(|e| unavailable(format!("transport: Error while dialing: {e}")))?;
        let conn = match &self.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let config = config
                    .clone()
                    .map_err(|e| unavailable(format!("transport: {e}")))?;
                let name = tls_name(&self.server, None)
                    .map_err(|e| unavailable(format!("transport: {e}")))?;
                let stream = tls_handshake(tcp, config, name, deadline)
                    .await
                    .map_err(|e| {
                        unavailable(format!("transport: authentication handshake failed: {e}"))
                    })?;
                Conn::Tls(Box::new(stream))
            }
        };

        // tonic asks its connector for a stream; hand it the one dialled above.
        let endpoint = Endpoint::from_shared(format!("http://{}", self.server))
            .map_err(|e| unavailable(format!("transport: {}", root_cause_text(&e))))?;
        let slot = Arc::new(Mutex::new(Some(conn)));
        let connector = tower::service_fn(move |_: Uri| {
            let conn = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            async move {
                conn.map(TokioIo::new)
                    .ok_or_else(|| io::Error::other("the probe's connection was already used"))
            }
        });
        let channel = match timeout_at(deadline, endpoint.connect_with_connector(connector)).await {
            Err(_) => return Err(DEADLINE_EXCEEDED.into()),
            Ok(Err(e)) => return Err(unavailable(format!("transport: {}", root_cause_text(&e)))),
            Ok(Ok(channel)) => channel,
        };

        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.service.clone(),
        });
        // Tell the server the deadline, as grpc-go does from the context.
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        match timeout_at(deadline, HealthClient::new(channel).check(request)).await {
            Err(_) => Err(DEADLINE_EXCEEDED.into()),
            // tonic enforces the grpc-timeout it sent itself and reports it this way.
            Ok(Err(status))
                if status.code() == Code::Cancelled && status.message() == "Timeout expired" =>
            {
                Err(DEADLINE_EXCEEDED.into())
            }
            Ok(Err(status)) => Err(format!(
                "rpc error: code = {} desc = {}",
                go_code_name(status.code()),
                status.message()
            )),
            Ok(Ok(response)) => Ok(response.into_inner().status()),
        }
    }
}

/// grpc-go's names for status codes (`codes.Code.String`).
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hyper_util::rt::TokioExecutor;
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tonic_health::server::HealthReporter;

    use super::super::support::Health;
    use super::*;

    /// A grpc.health.v1 server on 127.0.0.1 (tonic's own server feature is not
    /// enabled in this crate, so hyper serves tonic-health's service directly).
    async fn health_server(tls: Option<TlsAcceptor>) -> (SocketAddr, HealthReporter) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = TowerToHyperService::new(service.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new()).http2_only();
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        (addr, reporter)
    }

    #[tokio::test]
    async fn serving_not_serving_and_unknown_service() {
        let (addr, reporter) = health_server(None).await;
        reporter
            .set_service_status("db", tonic_health::ServingStatus::NotServing)
            .await;

        let out = GrpcProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::passing(format!("gRPC check {addr}: success")));

        let target = format!("{addr}/db");
        let out = GrpcProbe::new(&target, false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!("gRPC {target} serving status: NOT_SERVING"))
        );

        reporter
            .set_service_status("db", tonic_health::ServingStatus::Serving)
            .await;
        let out = GrpcProbe::new(&target, false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out,
            Outcome::passing(format!("gRPC check {target}: success"))
        );

        let out = GrpcProbe::new(&format!("{addr}/nope"), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out,
            Outcome::critical("rpc error: code = NotFound desc = service not registered")
        );
    }

    #[tokio::test]
    async fn refused_connection_reads_like_grpc_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let out = GrpcProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!(
                "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp {addr}: connect: connection refused\""
            )
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accepts and holds connections without ever speaking HTTP/2.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        let out = GrpcProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_millis(300))
            .await;
        assert_eq!(out, Outcome::critical(DEADLINE_EXCEEDED));
    }

    #[tokio::test]
    async fn tls_with_skip_verify_and_without() {
        let (addr, _reporter) = health_server(Some(tls::testing::acceptor(&[b"h2"]))).await;
        let out = GrpcProbe::new(&addr.to_string(), true, true)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::passing(format!("gRPC check {addr}: success")));

        let out = GrpcProbe::new(&addr.to_string(), true, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out.output,
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""
        );
    }
}
