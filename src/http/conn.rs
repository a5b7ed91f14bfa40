//! Serving the API on accepted connections, with the bounds every connection
//! gets: at most `limits.http_max_conns_per_client` open connections per client
//! IP (one more is answered with Consul's 429 text and closed, as
//! go-connlimit does), a handshake deadline (`limits.https_handshake_timeout`:
//! the TLS handshake and the first request's headers must arrive within it;
//! Consul applies it to HTTPS, concord to the plain port as well, so a client
//! that opens a connection and dribbles half a request line is dropped) and a
//! keep-alive idle timeout (between requests, the next request's headers must
//! arrive within [`IDLE_TIMEOUT`]). A request being served is never cut short:
//! blocking queries and streams run as long as they need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::listen::{Acceptor, Backoff, ConnLimiter};

/// How long a keep-alive connection may sit idle before the next request's
/// headers are complete: longer than the idle timeout of Go's HTTP clients
/// (90s), so a pooled client closes first and never races the server's close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest request line plus headers served, as Go's HTTP server reads them
/// (`DefaultMaxHeaderBytes`, 1 MiB, plus the 4 KiB its reader may hold past it).
/// The request line itself stops at the 64 KiB an `http::Uri` holds (hyper answers
/// 414 past it).
const MAX_REQUEST_HEAD: usize = (1 << 20) + 4096;

/// go-connlimit's answer to a connection over the per-client limit.
const TOO_MANY_BODY: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n";
/// How long the 429 may take to write; a client that does not read it is dropped.
const REJECT_WRITE: Duration = Duration::from_millis(500);

/// The bounds of one listener.
#[derive(Clone)]
pub struct Limits {
    /// Open connections per client IP; 0 is no limit.
    pub max_conns_per_client: usize,
    /// TLS handshake and first request headers; zero is no deadline.
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &crate::config::RuntimeConfig) -> Self {
        Limits {
            max_conns_per_client: config.http_max_conns_per_client as usize,
            handshake_timeout: config.https_handshake_timeout,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Counts the connections being served; [`Tracker::wait`] returns once all of
/// them have ended.
struct Tracker {
    tx: mpsc::Sender<()>,
    rx: mpsc::Receiver<()>,
}

impl Tracker {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Tracker { tx, rx }
    }

    async fn wait(self) {
        let Tracker { tx, mut rx } = self;
        drop(tx);
        let _ = rx.recv().await;
    }
}

/// Serves `app` on `acceptor` (over TLS with `tls`) until `shutdown`; then lets
/// the requests under way finish and returns when every connection is closed.
pub async fn serve_tcp(
    mut acceptor: Acceptor,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let limiter = ConnLimiter::new(limits.max_conns_per_client);
    let tracker = Tracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            conn = acceptor.accept() => conn,
        };
        let _ = stream.set_nodelay(true);
        let done = tracker.tx.clone();
        let Some(permit) = limiter.acquire(peer.ip()) else {
            tracing::warn!(%peer, "rejecting HTTP connection: http_max_conns_per_client exceeded");
            let (tls, handshake) = (tls.clone(), limits.handshake_timeout);
            tokio::spawn(async move {
                let _done = done;
                match tls {
                    None => reject(stream).await,
                    Some(tls) => {
                        if let Ok(Ok(stream)) = within(handshake, tls.accept(stream)).await {
                            reject(stream).await;
                        }
                    }
                }
            });
            continue;
        };
        let (app, limits, shutdown, tls) =
            (app.clone(), limits.clone(), shutdown.clone(), tls.clone());
        tokio::spawn(async move {
            let _done = done;
            let _permit = permit;
            let start = Instant::now();
            match tls {
                None => serve_io(stream, Some(peer), app, &limits, start, shutdown).await,
                Some(tls) => match within(limits.handshake_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        serve_io(stream, Some(peer), app, &limits, start, shutdown).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                },
            }
        });
    }
    tracker.wait().await;
}

/// Serves `app` on a Unix socket until `shutdown` (no per-client limit: every
/// client is local and has no IP).
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let tracker = Tracker::new();
    let mut backoff = Backoff::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                backoff.failed("HTTP (unix)", &e).await;
                continue;
            }
        };
        backoff.reset();
        let (app, limits, shutdown, done) = (
            app.clone(),
            limits.clone(),
            shutdown.clone(),
            tracker.tx.clone(),
        );
        tokio::spawn(async move {
            let _done = done;
            serve_io(stream, None, app, &limits, Instant::now(), shutdown).await;
        });
    }
    tracker.wait().await;
}

async fn within<F: std::future::Future>(
    limit: Duration,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    if limit.is_zero() {
        Ok(f.await)
    } else {
        tokio::time::timeout(limit, f).await
    }
}

/// Writes go-connlimit's 429 and closes, reading what the client sent meanwhile
/// so that closing does not reset the connection before the answer is read.
async fn reject<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOO_MANY_BODY}",
        TOO_MANY_BODY.len()
    );
    let _ = tokio::time::timeout(REJECT_WRITE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Runs HTTP on one connection: the first request's headers must be in by
/// `start + handshake_timeout`, later ones within the idle timeout of the
/// previous answer. On `shutdown` the connection finishes the request under
/// way and closes.
async fn serve_io<S>(
    stream: S,
    peer: Option<SocketAddr>,
    app: Router,
    limits: &Limits,
    start: Instant,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let first_request = Arc::new(Notify::new());
    let seen = first_request.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        seen.notify_one();
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_REQUEST_HEAD)
        .header_read_timeout(limits.idle_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let handshake = limits.handshake_timeout;
    let deadline = tokio::time::sleep_until(start + handshake);
    tokio::pin!(deadline);
    let (mut started, mut closing) = (handshake.is_zero(), false);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(?peer, error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = first_request.notified(), if !started => started = true,
            _ = &mut deadline, if !started => {
                tracing::debug!(?peer, "no request headers within the handshake timeout; closing");
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::net::{TcpListener, TcpStream};

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_tcp(
            Acceptor::new(listener, "test"),
            None,
            app,
            limits,
            shutdown.clone(),
        ));
        (addr, shutdown)
    }

    async fn ask(conn: &mut TcpStream) -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    }

    /// Reads until the server closes; `None` if it stays open `within`.
    async fn closes_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        match tokio::time::timeout(within, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let (addr, _stop) = start(Limits {
            max_conns_per_client: 0,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_millis(600),
        })
        .await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut conn).await.starts_with("HTTP/1.1 200 OK"));
        // Busy within the idle timeout: still served.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(ask(&mut conn).await.starts_with("HTTP/1.1 200 OK"));
        let closed = closes_within(&mut conn, Duration::from_secs(3)).await;
        assert!(
            closed.is_some_and(|d| d >= Duration::from_millis(500)),
            "{closed:?}"
        );
    }

    #[tokio::test]
    async fn a_stalled_first_request_is_dropped_at_the_handshake_deadline() {
        let (addr, _stop) = start(Limits {
            max_conns_per_client: 0,
            handshake_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
        })
        .await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HT").await.unwrap();
        let closed = closes_within(&mut conn, Duration::from_secs(3)).await;
        assert!(
            closed.is_some_and(|d| d < Duration::from_secs(2)),
            "{closed:?}"
        );
    }

    #[tokio::test]
    async fn over_the_limit_a_connection_gets_429_and_shutdown_closes_idle_ones() {
        let (addr, stop) = start(Limits {
            max_conns_per_client: 1,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        })
        .await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut first).await.starts_with("HTTP/1.1 200 OK"));
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        second.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(answer.ends_with(TOO_MANY_BODY));
        stop.cancel();
        assert!(
            closes_within(&mut first, Duration::from_secs(3))
                .await
                .is_some()
        );
    }
}
