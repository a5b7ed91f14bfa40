//! Frames and messages of the server RPC protocol: a 4-byte big-endian length,
//! then the message as JSON (the same encoding as the Raft log, so every type
//! that can be logged can be sent).

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::fsm::{Command, Response};
use crate::raft::transfer::ElectionControl;
use crate::raft::{ServerNode, TypeConfig};

/// Largest frame accepted: snapshot chunks and forwarded bodies stay far below.
pub const MAX_FRAME: usize = 64 << 20;

/// Requests are built once and moved onto the wire, so the size spread between
/// variants costs nothing worth boxing for (as with `Command`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write for the leader's log.
    Propose(Command),
    /// A server asks the leader to be added to the cluster.
    Join(ServerNode),
    /// An HTTP API request to be served by the receiver.
    Http(ForwardedRequest),
    /// From a leader handing over leadership ([`crate::raft::transfer`]).
    Elections(ElectionControl),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The FSM's answer, or the consensus error text (e.g. "No cluster leader").
    Propose(Result<Response, String>),
    Join(Result<(), String>),
    Http(ForwardedResponse),
    Elections(Result<(), String>),
    /// The receiver could not handle the request at all.
    Error(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "crate::structs::codec::base64_bytes")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "crate::structs::codec::base64_bytes")]
    pub body: Vec<u8>,
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let payload = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if payload.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "rpc message of {} bytes exceeds the {MAX_FRAME}-byte limit",
            payload.len()
        )));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("rpc frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_reject_oversized_lengths() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let req = Request::Http(ForwardedRequest {
            method: "GET".into(),
            uri: "/v1/kv/x?stale".into(),
            headers: vec![("x-consul-token".into(), "t".into())],
            body: vec![],
        });
        write_frame(&mut a, &req).await.unwrap();
        let got: Request = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(got, Request::Http(f) if f.uri == "/v1/kv/x?stale"));

        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(read_frame::<_, Request>(&mut b).await.is_err());
        drop(a);
        assert!(read_frame::<_, Request>(&mut b).await.is_ok());
    }
}
