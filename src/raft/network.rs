//! The Raft network seam. Servers talk over the server RPC port (8300); until the
//! multi-server transport lands, every peer is unreachable, which is exactly right for
//! a single-server cluster (it never sends to anyone).

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::types::{ServerNode, TypeConfig};

#[derive(Clone, Default)]
pub struct Network;

pub struct Peer {
    target: ServerNode,
}

impl Peer {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, ServerNode, E> {
        RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
            "no server RPC transport to {}",
            self.target
        ))))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: u64, node: &ServerNode) -> Peer {
        Peer {
            target: node.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ServerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> {
        Err(self.unreachable())
    }
}
