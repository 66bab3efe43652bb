//! The replication stream: acting as a replica of a live master (handshake, `PSYNC`, the
//! snapshot, the command stream and its offsets), capturing it into a checked log, and the
//! server's partial-resync rule. See the format reference, §10.

pub mod replica;
mod socket;
