//! The replication stream: taken from a live master as a replica takes it ([`replica`]: the
//! handshake, `PSYNC`, the snapshot, the command stream and its offsets), kept as a checked,
//! offset-indexed log ([`store`], written by [`capture`]), and read back for checks, reports
//! and slices. See the format reference, §10.

pub mod check;
pub mod replica;
pub mod slice;
mod socket;
pub mod store;
pub mod stream;
