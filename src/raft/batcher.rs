//! Group commit above Raft: proposals that arrive while a write is in flight are
//! gathered into one `Command::Batch`, which becomes one log entry and so one fsync.
//! openraft submits the next append only once the previous one is durable, so
//! without this every write would pay a full fsync of its own. Each command in a
//! batch still applies on its own (nested transaction) and gets its own answer.

use std::sync::Arc;

use openraft::Raft;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{RwLock, mpsc, oneshot};

use super::{ConsensusError, TypeConfig};
use crate::fsm::{Command, Response};

/// Most commands in one batch.
const MAX_BATCH: usize = 512;
/// Roughly how many bytes of values one batch may carry.
const MAX_BATCH_BYTES: usize = 4 << 20;

pub struct Pending {
    pub cmd: Command,
    pub reply: oneshot::Sender<Result<Response, ConsensusError>>,
}

async fn write(raft: &Raft<TypeConfig>, cmd: Command) -> Result<Response, ConsensusError> {
    match raft.client_write(cmd).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_node {
            Some(n) => Err(ConsensusError::NotLeader(n.addr)),
            None => Err(ConsensusError::NoLeader),
        },
        Err(e) => Err(ConsensusError::Fatal(e.to_string())),
    }
}

/// Takes proposals off the queue, one Raft write at a time, batching what queued up.
/// Each write holds `gate` shared, so a leadership transfer can stop them.
pub async fn run(
    raft: Raft<TypeConfig>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    gate: Arc<RwLock<()>>,
) {
    while let Some(first) = rx.recv().await {
        let _gate = gate.read().await;
        let mut bytes = first.cmd.approx_size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.cmd.approx_size();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let p = batch.remove(0);
            let _ = p.reply.send(write(&raft, p.cmd).await);
            continue;
        }
        let (cmds, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        match write(&raft, Command::Batch(cmds)).await {
            Ok(Response::Batch(answers)) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Ok(other) => {
                let e = ConsensusError::Fatal(format!("unexpected answer to a batch: {other:?}"));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
