//! Problems: what a reader noticed in a file but could read past (an empty key, a repeated
//! key, a stream whose length disagrees with its entries, bytes after the checksum), each of a
//! named [`ProblemKind`] with a stable code for machines.

use std::fmt;

use super::error::{Context, ErrorKind, plural};
use super::visit::StreamId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, never a failure (checksum disabled, a skipped vendor opcode).
    Notice,
    /// Redis would load it, but it is suspicious (an error with `--strict`).
    Warning,
    /// Redis would refuse to load it.
    Error,
}

/// What was found, with the facts its message names (keys and members already escaped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemKind {
    /// An error that ended reading a value or the file, reported beside the other problems.
    #[error("{0}")]
    Error(ErrorKind),
    #[error("empty key (the server skips it when loading)")]
    EmptyKey,
    #[error("empty key (RESTORE refuses it)")]
    EmptyPayload,
    /// A key stored twice in one database; `key` when it could be read again.
    #[error(
        "duplicate key{} (first at offset {first}): the server refuses to load this file",
        key.as_ref().map(|k| format!(" \"{k}\"")).unwrap_or_default()
    )]
    DuplicateKey { key: Option<String>, first: u64 },
    #[error("pre-GA module value (Redis 4.0 release candidates): current servers refuse it")]
    PreGaModule,
    #[error("pre-GA function format (7.0 release candidates): current servers refuse it")]
    PreGaFunction,
    #[error("skipped Redis Enterprise opcode {op} (RAM LRU {value})")]
    EnterpriseOpcode { op: u8, value: u64 },
    #[error("checksum disabled (saved with rdbchecksum no): not checked")]
    ChecksumDisabled,
    #[error("{bytes} {} after the end of the RDB data", plural(*.bytes, "byte"))]
    TrailingBytes { bytes: u64 },
    #[error("zset not sorted by (score, member) at \"{member}\"")]
    ZsetUnsorted { member: String },
    #[error("stream length {length} but {live} live {}", plural(*.live, "entry"))]
    StreamLength { length: u64, live: u64 },
    #[error("stream last ID {last} below entry {max}")]
    StreamLastIdBelow { last: StreamId, max: StreamId },
    #[error("stream entries-added {added} below its length {length}")]
    StreamEntriesAdded { added: u64, length: u64 },
    #[error("stream entry IDs not increasing at {id}")]
    StreamIdsNotIncreasing { id: StreamId },
    #[error("stream entry {id} below its node key {node}")]
    StreamEntryBelowNode { id: StreamId, node: StreamId },
    #[error("group last-delivered ID {group} beyond the stream's last ID {last}")]
    GroupBeyondLastId { group: StreamId, last: StreamId },
    #[error("repeated IDMP ID of one producer (the server keeps the first)")]
    RepeatedIdmpId,
    #[error("IDMP entry {id} beyond the stream's last ID {last}")]
    IdmpBeyondLastId { id: StreamId, last: StreamId },
}

impl ProblemKind {
    /// A stable name of the kind, for machines (`verify --format json`): snake_case, never
    /// changed once released. An error's is its [`ErrorKind::code`].
    pub fn code(&self) -> &'static str {
        match self {
            ProblemKind::Error(e) => e.code(),
            ProblemKind::EmptyKey | ProblemKind::EmptyPayload => "empty_key",
            ProblemKind::DuplicateKey { .. } => "duplicate_key",
            ProblemKind::PreGaModule => "pre_ga_module",
            ProblemKind::PreGaFunction => "pre_ga_function",
            ProblemKind::EnterpriseOpcode { .. } => "skipped_opcode",
            ProblemKind::ChecksumDisabled => "checksum_disabled",
            ProblemKind::TrailingBytes { .. } => "trailing_bytes",
            ProblemKind::ZsetUnsorted { .. } => "zset_unsorted",
            ProblemKind::StreamLength { .. } => "stream_length",
            ProblemKind::StreamLastIdBelow { .. } => "stream_last_id_below_entry",
            ProblemKind::StreamEntriesAdded { .. } => "stream_entries_added_below_length",
            ProblemKind::StreamIdsNotIncreasing { .. } => "stream_ids_not_increasing",
            ProblemKind::StreamEntryBelowNode { .. } => "stream_entry_below_node",
            ProblemKind::GroupBeyondLastId { .. } => "group_beyond_last_id",
            ProblemKind::RepeatedIdmpId => "repeated_idmp_id",
            ProblemKind::IdmpBeyondLastId { .. } => "idmp_beyond_last_id",
        }
    }
}

/// Something found in a file that could be read past.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub severity: Severity,
    pub offset: u64,
    pub kind: ProblemKind,
    pub context: Context,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {} (0x{:x}): {}{}",
            self.offset, self.offset, self.kind, self.context
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_message_and_a_stable_code() {
        let dup = ProblemKind::DuplicateKey {
            key: Some("k".into()),
            first: 9,
        };
        assert_eq!(
            dup.to_string(),
            "duplicate key \"k\" (first at offset 9): the server refuses to load this file"
        );
        assert_eq!(dup.code(), "duplicate_key");
        let unnamed = ProblemKind::DuplicateKey {
            key: None,
            first: 9,
        };
        assert!(
            unnamed
                .to_string()
                .starts_with("duplicate key (first at offset 9)")
        );
        let trailing = ProblemKind::TrailingBytes { bytes: 1 };
        assert_eq!(trailing.to_string(), "1 byte after the end of the RDB data");
        let crc = ProblemKind::Error(ErrorKind::Crc {
            stored: 1,
            computed: 2,
        });
        assert_eq!(crc.code(), "crc_mismatch");
    }
}
