//! Multi-member tests of the gossip layer on loopback.
