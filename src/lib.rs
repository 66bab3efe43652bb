//! rdbtool: read, check, inspect and convert Redis and Valkey persistence files.

pub mod aof;
pub mod backlog;
pub mod diff;
pub mod export;
pub mod filter;
pub mod hash;
pub mod inspect;
pub mod rdb;
pub mod release;
pub mod replay;
pub mod resp;
pub mod scan;
pub mod sync;
pub mod text;
pub mod verify;
