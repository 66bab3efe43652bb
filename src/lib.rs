//! rdbtool: read, check, inspect and convert Redis and Valkey persistence files.

pub mod rdb;
