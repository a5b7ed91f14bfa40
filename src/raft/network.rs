//! The Raft network: openraft's RPCs carried over the server RPC port
//! ([`crate::rpc`]). A peer that cannot be dialled is `Unreachable` (openraft
//! backs off); an error the peer's Raft returned comes back as a remote error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::contact::Contacts;
use super::lease::LeaderLease;
use super::types::{ServerNode, TypeConfig};
use crate::rpc::client::RpcError;
use crate::rpc::{Reply, Request, RpcClient};

#[derive(Clone)]
pub struct Network {
    pub rpc: Arc<RpcClient>,
    /// Where accepted AppendEntries are recorded for the leader's read lease.
    pub lease: Arc<LeaderLease>,
    /// Where answers from followers are noted (autopilot's per-server contact).
    pub contacts: Arc<Contacts>,
}

pub struct Peer {
    id: u64,
    target: ServerNode,
    rpc: Arc<RpcClient>,
    lease: Arc<LeaderLease>,
    contacts: Arc<Contacts>,
}

type Failure<E> = RPCError<u64, ServerNode, E>;

impl Peer {
    async fn call<E: std::error::Error>(
        &self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Reply, Failure<E>> {
        let addr: SocketAddr = self.target.addr.parse().map_err(|e| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
                "bad server address {:?}: {e}",
                self.target.addr
            ))))
        })?;
        let timeout = option.hard_ttl().max(Duration::from_millis(100));
        match self.rpc.call(addr, &req, timeout).await {
            Ok(reply) => Ok(reply),
            Err(e @ RpcError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> Failure<E> {
        RPCError::RemoteError(RemoteError::new_with_node(self.id, self.target.clone(), e))
    }

    fn unexpected<E: std::error::Error>(&self, reply: Reply) -> Failure<E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
            "unexpected reply from {}: {reply:?}",
            self.target
        ))))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &ServerNode) -> Peer {
        Peer {
            id: target,
            target: node.clone(),
            rpc: self.rpc.clone(),
            lease: self.lease.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Failure<RaftError<u64>>> {
        let sent = Instant::now();
        let term = rpc.vote.leader_id().get_term();
        let answer = match self.call(Request::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(r) => r.map_err(|e| self.remote(e))?,
            other => return Err(self.unexpected(other)),
        };
        self.contacts.heard_from_follower(self.id);
        // Anything but a higher vote means the peer accepted this leader's term
        // (a conflict is about the log, not about who leads).
        if !matches!(answer, AppendEntriesResponse::HigherVote(_)) {
            self.lease.acknowledged(self.id, term, sent);
        }
        Ok(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Failure<RaftError<u64, InstallSnapshotError>>> {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Reply::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Failure<RaftError<u64>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Reply::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }
}
