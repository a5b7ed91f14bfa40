//! concord: a drop-in, wire-compatible replacement for the Consul agent.

mod fsm;
mod state;
mod structs;

fn main() {}
