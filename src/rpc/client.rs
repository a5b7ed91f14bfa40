//! Outgoing RPC: a small pool of TCP connections per server address. A call takes
//! an idle connection (or dials one), sends one request, reads one reply and puts
//! the connection back; a connection that failed mid-call is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;

use super::wire::{Reply, Request, read_frame, write_frame};

/// Idle connections kept per address: enough for every forwarded request a busy
/// follower has in flight, so bursts reuse connections instead of dialling.
const IDLE_PER_ADDR: usize = 256;
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSED: &str = "connection closed";

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Nothing reached the peer: safe to retry elsewhere.
    #[error("rpc error: failed to connect to {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The request may or may not have been handled.
    #[error("rpc error making call to {addr}: {reason}")]
    Failed { addr: SocketAddr, reason: String },
    #[error("rpc error making call to {addr}: timeout after {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
}

#[derive(Default)]
pub struct RpcClient {
    idle: Mutex<HashMap<SocketAddr, Vec<TcpStream>>>,
}

impl RpcClient {
    /// An idle connection to `addr` that the peer has not closed. A peer that
    /// restarted closed its end long ago, so its FIN is already here: reading
    /// without blocking tells a live connection (`WouldBlock`) from a dead one.
    fn checkout(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            let mut probe = [0u8; 1];
            match conn.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                // Closed, failed, or bytes nobody asked for: not reusable.
                _ => continue,
            }
        }
        None
    }

    fn checkin(&self, addr: SocketAddr, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < IDLE_PER_ADDR {
            list.push(conn);
        }
    }

    /// Drops every idle connection to `addr` (after the peer restarted or failed).
    pub fn forget(&self, addr: SocketAddr) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }

    async fn dial(addr: SocketAddr) -> Result<TcpStream, RpcError> {
        let unreachable = |reason: String| RpcError::Unreachable { addr, reason };
        let conn = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable("dial timeout".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = conn.set_nodelay(true);
        Ok(conn)
    }

    /// Sends `req` to `addr` and waits up to `timeout` for the reply.
    pub async fn call(
        &self,
        addr: SocketAddr,
        req: &Request,
        timeout: Duration,
    ) -> Result<Reply, RpcError> {
        // Once a request is written its outcome is unknown until the reply comes:
        // a connection that fails after that is never retried, since the peer
        // may have applied the request before it went away. Only a failed write
        // on a pooled connection (the peer was already gone, nothing was taken)
        // falls through to a fresh dial.
        if let Some(mut conn) = self.checkout(addr) {
            if write_frame(&mut conn, req).await.is_ok() {
                return self.read_reply(addr, conn, timeout).await;
            }
            self.forget(addr);
        }
        let conn = self.dial_and_send(addr, req).await?;
        self.read_reply(addr, conn, timeout).await
    }

    async fn read_reply(
        &self,
        addr: SocketAddr,
        mut conn: TcpStream,
        timeout: Duration,
    ) -> Result<Reply, RpcError> {
        let failed = |reason: String| RpcError::Failed { addr, reason };
        match tokio::time::timeout(timeout, read_frame::<_, Reply>(&mut conn)).await {
            Err(_) => Err(RpcError::Timeout {
                addr,
                after: timeout,
            }),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Ok(Ok(None)) => Err(failed(CLOSED.into())),
            Ok(Ok(Some(reply))) => {
                self.checkin(addr, conn);
                Ok(reply)
            }
        }
    }

    async fn dial_and_send(&self, addr: SocketAddr, req: &Request) -> Result<TcpStream, RpcError> {
        let mut conn = Self::dial(addr).await?;
        write_frame(&mut conn, req)
            .await
            .map_err(|e| RpcError::Unreachable {
                addr,
                reason: e.to_string(),
            })?;
        Ok(conn)
    }
}
