//! The records of a dump as [`Reader`](super::Reader) yields them, each with its byte offset.

use std::borrow::Cow;

use super::types::ObjectType;

/// Per-key metadata that precedes the type byte.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyMeta {
    /// Absolute expiry, unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle seconds (written under an LRU maxmemory policy).
    pub idle: Option<u64>,
    /// LFU log counter (written under an LFU maxmemory policy).
    pub freq: Option<u8>,
    /// Redis 8.6 key-metadata classes (4-byte class spec each).
    pub meta_classes: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    Aux {
        key: Cow<'a, [u8]>,
        value: Cow<'a, [u8]>,
    },
    SelectDb {
        db: u64,
    },
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    SlotInfo {
        slot: u64,
        keys: u64,
        expires: u64,
    },
    /// A function library's source (`#!lua name=...`).
    Function {
        code: Cow<'a, [u8]>,
    },
    ModuleAux {
        module_id: u64,
        when: u64,
    },
    /// Valkey 9: an atomic slot import in progress.
    SlotImport {
        job: Cow<'a, [u8]>,
        ranges: Vec<(u64, u64)>,
    },
    /// A key; its value is read next with [`Reader::read_value`], or skipped.
    Key {
        db: u64,
        key: Cow<'a, [u8]>,
        ty: ObjectType,
        meta: KeyMeta,
    },
    /// End of data. `checksum` is the stored trailer (None before RDB 5).
    Eof {
        checksum: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Located<'a> {
    pub offset: u64,
    pub record: Record<'a>,
}
