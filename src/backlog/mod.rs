//! The replication stream: taken from a live master as a replica takes it ([`replica`]: the
//! handshake, `PSYNC`, the snapshot, the command stream and its offsets), kept as a checked,
//! offset-indexed log ([`store`], written by [`capture`]), read back for checks, reports and
//! slices, and the rule by which a master answers a reconnecting replica ([`psync`]). See the
//! format reference, §10.

pub mod capture;
pub mod check;
pub mod master;
pub mod parts;
pub mod psync;
pub mod replica;
pub mod report;
pub mod sizing;
pub mod slice;
mod socket;
pub mod store;
pub mod stream;
pub mod window;
