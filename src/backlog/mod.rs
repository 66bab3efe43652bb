//! The replication stream of a live master: the rule by which a master answers a reconnecting
//! replica's `PSYNC` (partial resync from its backlog, or a full resync), read from the same
//! `INFO replication` fields the server keeps.

pub mod psync;
