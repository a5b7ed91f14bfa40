//! Accepting connections on the agent's TCP ports (HTTP, HTTPS, server RPC): a
//! per-client-IP connection limit (`limits.http_max_conns_per_client`,
//! `limits.rpc_max_conns_per_client`) and an accept loop that backs off when
//! accepting fails (out of file descriptors, say) instead of spinning or giving
//! up, so connections waiting in the backlog are served once descriptors free up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The first pause after a failed accept; it doubles up to [`MAX_BACKOFF`]
/// while accepting keeps failing (the pauses Go's `http.Server` takes).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Open connections per client IP, bounded by a limit (0: unbounded).
pub struct ConnLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees its place.
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, unless it already has the
    /// most it may have open.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnPermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnPermit {
            limiter: self.clone(),
            ip,
        })
    }

    /// How many connections `ip` has open.
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The pause after a failed accept: [`FIRST_BACKOFF`], doubling up to
/// [`MAX_BACKOFF`] while failures continue, back to the start after a success.
#[derive(Default)]
pub struct Backoff(Duration);

impl Backoff {
    /// Logs the failure and waits out the next pause.
    pub async fn failed(&mut self, what: &str, error: &std::io::Error) {
        self.0 = if self.0.is_zero() {
            FIRST_BACKOFF
        } else {
            (self.0 * 2).min(MAX_BACKOFF)
        };
        tracing::warn!(%error, retry_in = ?self.0, "{what} accept failed");
        tokio::time::sleep(self.0).await;
    }

    pub fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

/// Accepts TCP connections, waiting out failures with a [`Backoff`] so that a
/// process out of file descriptors neither spins nor stops listening.
pub struct Acceptor {
    listener: TcpListener,
    backoff: Backoff,
    what: &'static str,
}

impl Acceptor {
    pub fn new(listener: TcpListener, what: &'static str) -> Self {
        Acceptor {
            listener,
            backoff: Backoff::default(),
            what,
        }
    }

    /// The next connection; failures are logged and waited out here.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(conn) => {
                    self.backoff.reset();
                    return conn;
                }
                Err(e) => self.backoff.failed(self.what, &e).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_the_limit_and_closing_frees_a_place() {
        let limiter = ConnLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limiter.acquire(a).unwrap();
        let _second = limiter.acquire(a).unwrap();
        assert!(limiter.acquire(a).is_none());
        // Another client has its own count.
        let _other = limiter.acquire(b).unwrap();
        assert_eq!(limiter.open(a), 2);
        drop(first);
        assert_eq!(limiter.open(a), 1);
        assert!(limiter.acquire(a).is_some());
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = ConnLimiter::new(0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..1000).map(|_| limiter.acquire(ip).unwrap()).collect();
        assert_eq!(limiter.open(ip), 1000);
        drop(held);
        assert_eq!(limiter.open(ip), 0);
        assert!(limiter.open.lock().unwrap().is_empty());
    }
}
