//! The server RPC port (Consul's 8300): Raft messages between servers, writes
//! forwarded to the leader, servers asking to join, and HTTP requests forwarded
//! by followers and client agents.
//!
//! One request per frame, answered in order on the same TCP connection
//! ([`wire`]); [`client`] pools connections per address, [`server`] accepts them
//! and dispatches to Raft and the agent.

pub mod client;
pub mod server;
pub mod wire;

pub use client::RpcClient;
pub use wire::{ForwardedRequest, ForwardedResponse, Reply, Request};
