//! The server RPC listener: one task per connection, requests answered in order.
//!
//! A connection must send its first byte within `limits.rpc_handshake_timeout`
//! (Consul's first-byte deadline). Sources that are not members of the
//! cluster's gossip pools may hold at most `limits.rpc_max_conns_per_client`
//! connections each; one more is closed at once, as Consul does. Members are
//! not counted: this protocol carries one request at a time per connection
//! (Consul multiplexes many over one), so an agent forwarding hundreds of
//! blocking queries needs as many connections.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use openraft::raft::AppendEntriesResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::wire::{Reply, Request, read_frame, write_frame};
use crate::agent::Agent;
use crate::listen::{Acceptor, ConnLimiter};

pub async fn serve(
    listener: TcpListener,
    agent: Arc<Agent>,
    app: Router,
    shutdown: CancellationToken,
) {
    let mut acceptor = Acceptor::new(listener, "server RPC");
    let limiter = ConnLimiter::new(agent.config.rpc_max_conns_per_client as usize);
    let handshake = agent.config.rpc_handshake_timeout;
    loop {
        let (conn, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            conn = acceptor.accept() => conn,
        };
        let permit = if is_member(&agent, peer.ip()) {
            None
        } else {
            match limiter.acquire(peer.ip()) {
                Some(permit) => Some(permit),
                None => {
                    tracing::error!(%peer, "rejecting RPC conn because rpc_max_conns_per_client exceeded");
                    continue;
                }
            }
        };
        let _ = conn.set_nodelay(true);
        let (agent, app, shutdown) = (agent.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if !first_byte_within(&conn, handshake).await {
                tracing::debug!(%peer, "RPC connection sent nothing within the handshake timeout");
                return;
            }
            connection(conn, agent, app, shutdown).await;
        });
    }
}

/// Whether `ip` is the address of a member of this agent's LAN or WAN pool.
fn is_member(agent: &Agent, ip: IpAddr) -> bool {
    [&agent.gossip, &agent.wan]
        .into_iter()
        .flatten()
        .any(|pool| pool.has_member_at(ip))
}

/// True once `conn` has a byte to read (or has closed) within `limit`.
async fn first_byte_within(conn: &TcpStream, limit: Duration) -> bool {
    let mut probe = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, conn.peek(&mut probe)).await,
        Ok(Ok(_))
    )
}

async fn connection(
    mut conn: TcpStream,
    agent: Arc<Agent>,
    app: Router,
    shutdown: CancellationToken,
) {
    loop {
        let req = tokio::select! {
            _ = shutdown.cancelled() => return,
            req = read_frame::<_, Request>(&mut conn) => req,
        };
        let req = match req {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                // A malformed frame: say why, then drop the connection (its framing
                // can no longer be trusted).
                let _ = write_frame(&mut conn, &Reply::Error(e.to_string())).await;
                return;
            }
        };
        let reply = handle(&agent, &app, req).await;
        if write_frame(&mut conn, &reply).await.is_err() {
            return;
        }
    }
}

async fn handle(agent: &Agent, app: &Router, req: Request) -> Reply {
    let raft = &agent.consensus.raft;
    let contacts = &agent.consensus.contacts;
    match req {
        Request::AppendEntries(r) => {
            let answer = raft.append_entries(r).await;
            // Anything but "your vote is behind mine" came from the leader of this
            // server's term, heartbeats included (hashicorp/raft's `setLastContact`).
            if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                contacts.heard_from_leader();
            }
            Reply::AppendEntries(answer)
        }
        Request::Vote(r) => Reply::Vote(raft.vote(r).await),
        Request::InstallSnapshot(r) => {
            let sender = r.vote;
            let answer = raft.install_snapshot(r).await;
            // Refused only when this server's vote is ahead of the sender's.
            if matches!(&answer, Ok(a) if a.vote <= sender) {
                contacts.heard_from_leader();
            }
            Reply::InstallSnapshot(answer)
        }
        Request::Propose(cmd) => Reply::Propose(
            agent
                .consensus
                .propose(cmd)
                .await
                .map_err(|e| e.to_string()),
        ),
        Request::Join(node) => Reply::Join(
            agent
                .consensus
                .add_server(node)
                .await
                .map_err(|e| e.to_string()),
        ),
        Request::Http(f) => Reply::Http(crate::http::forward::serve(app.clone(), f).await),
        Request::Elections(control) => Reply::Elections(
            agent
                .consensus
                .control_elections(control)
                .map_err(|e| e.to_string()),
        ),
    }
}
