//! The replication stream: captured from a master as a replica would take it, kept as a
//! checked, offset-indexed log ([`store`]), and read back for checks, reports and slices.

pub mod check;
pub mod slice;
pub mod store;
pub mod stream;
