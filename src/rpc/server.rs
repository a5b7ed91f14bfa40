//! The server RPC listener: one task per connection, requests answered in order.

use std::sync::Arc;

use axum::Router;
use openraft::raft::AppendEntriesResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::wire::{Reply, Request, read_frame, write_frame};
use crate::agent::Agent;

pub async fn serve(
    listener: TcpListener,
    agent: Arc<Agent>,
    app: Router,
    shutdown: CancellationToken,
) {
    loop {
        let conn = tokio::select! {
            _ = shutdown.cancelled() => return,
            conn = listener.accept() => conn,
        };
        match conn {
            Ok((conn, _peer)) => {
                let _ = conn.set_nodelay(true);
                tokio::spawn(connection(
                    conn,
                    agent.clone(),
                    app.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "server RPC accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
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
