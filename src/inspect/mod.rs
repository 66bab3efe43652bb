//! What is in a snapshot and where the memory goes.

pub mod memory;
