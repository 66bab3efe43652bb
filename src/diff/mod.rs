//! Comparing two keyspaces, each an RDB file or a live server, by meaning rather than bytes.
//!
//! First pass: every key of side A becomes a 48-byte [`index::Entry`] (identity hash, value
//! fingerprint, expiry, locator); side B is then read against that index, key by key, so only
//! B's differing keys are remembered. Second pass: the differing keys alone are read again (at
//! their file offset, or with DUMP) to count and show their element changes and to write the
//! commands that turn A into B.

mod changes;
mod collect;
pub mod compare;
pub mod elements;
pub mod file;
pub mod fingerprint;
pub mod index;
pub mod jsonl;
pub mod live;
pub mod patch;
pub mod side;

use std::borrow::Cow;

use crate::filter::Filter;
use crate::rdb::{self, Kind, ObjectType, Visitor};

pub use compare::{Change, Comparison, Diff, KeySide, Tally};
pub use fingerprint::Seed;
pub use side::{Outcome, Side, compare};

/// How key TTLs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlRule {
    Ignore,
    /// Expiry times within this many milliseconds are the same.
    Tolerance(u64),
}

impl TtlRule {
    pub fn same(self, a: Option<i64>, b: Option<i64>) -> bool {
        match (self, a, b) {
            (TtlRule::Ignore, _, _) => true,
            (_, None, None) => true,
            (TtlRule::Tolerance(t), Some(a), Some(b)) => a.abs_diff(b) <= t,
            _ => false,
        }
    }
}

/// What a first pass puts in [`Print::value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prints {
    /// The canonical fingerprint ([`fingerprint::Fingerprinter`]): values are decoded.
    Canonical,
    /// A hash of the value's stored bytes, for two files of the same format: equal bytes are
    /// an equal value, so only keys whose bytes differ are decoded and compared by meaning,
    /// afterwards. Hash-table encodings (written in an order a reload changes) are still
    /// fingerprinted canonically; servers are always read canonically.
    Raw,
}

/// What both sides are read with.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: Seed,
    pub filter: Filter,
    pub ttl: TtlRule,
    /// Keep keys of a file whose expiry is before `now_ms` (a server never shows them).
    pub keep_expired: bool,
    /// Decode every value, even where two files of one format store the same bytes.
    pub by_meaning: bool,
    pub now_ms: i64,
}

/// One key as a side's first pass sees it.
#[derive(Debug)]
pub struct Print<'k> {
    pub db: u64,
    pub key: &'k [u8],
    pub kind: Kind,
    pub expire: Option<i64>,
    /// [`Seed::key`] of (db, key).
    pub id: u128,
    /// The value's fingerprint (see [`Prints`]).
    pub value: u128,
    /// Serialized size of the value.
    pub bytes: u64,
    /// A file's record offset; a server's payload size.
    pub loc: u64,
}

/// Called for each key of a side.
pub type Each<'e> = dyn FnMut(&Print<'_>) + 'e;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{side}: {error}")]
    Rdb {
        side: String,
        error: Box<rdb::Error>,
    },
    #[error("{side}: {error}")]
    Redis {
        side: String,
        error: redis::RedisError,
    },
    /// A server replied with something we cannot use.
    #[error("{side}: {message}")]
    Live { side: String, message: String },
    /// A file holding a key twice in one database, which a server refuses to load.
    #[error(
        "{side}: {count} {} twice in one database (a server refuses to load such a file; `rdbtool verify` names them)",
        if *.count == 1 { "key appears" } else { "keys appear" }
    )]
    Duplicates { side: String, count: u64 },
    /// A worker thread panicked: the comparison could not be finished.
    #[error("{side}: {error}")]
    Panicked {
        side: String,
        error: crate::scan::thread::Panicked,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn rdb(side: impl Into<String>, error: rdb::Error) -> Self {
        Error::Rdb {
            side: side.into(),
            error: Box::new(error),
        }
    }
}

/// A value to read again in the second pass: bytes of a mapped file, or a DUMP payload.
pub enum Value<'d> {
    File {
        data: &'d [u8],
        ty: ObjectType,
        start: u64,
        end: u64,
        version: u16,
    },
    Payload {
        payload: Vec<u8>,
        ty: ObjectType,
    },
}

impl Value<'_> {
    pub fn ty(&self) -> ObjectType {
        match self {
            Value::File { ty, .. } | Value::Payload { ty, .. } => *ty,
        }
    }

    /// Serialized size of the value.
    pub fn bytes(&self) -> u64 {
        match self {
            Value::File { start, end, .. } => end - start,
            Value::Payload { payload, .. } => payload.len().saturating_sub(11) as u64,
        }
    }

    /// The value's RDB encoding (without type byte or payload footer).
    pub fn raw(&self) -> &[u8] {
        match self {
            Value::File {
                data, start, end, ..
            } => data.get(*start as usize..*end as usize).unwrap_or_default(),
            Value::Payload { payload, .. } => payload
                .get(1..payload.len().saturating_sub(10))
                .unwrap_or_default(),
        }
    }

    /// Decodes the value into `v`.
    pub fn visit(&self, v: &mut dyn Visitor) -> Result<(), rdb::Error> {
        match self {
            Value::File {
                data,
                ty,
                start,
                end,
                ..
            } => rdb::value::ValueReader::with_thread_reader(rdb::value::Checks::None, |r| {
                r.read_span(data, *start, *end, *ty, v)
            })
            .map(drop),
            Value::Payload { payload, .. } => rdb::payload::read(payload, v).map(drop),
        }
    }

    /// The RDB version of the value's encoding (the file's, or the payload's).
    pub fn version(&self) -> u16 {
        match self {
            Value::File { version, .. } => *version,
            Value::Payload { payload, .. } => {
                let at = payload.len().saturating_sub(10);
                payload
                    .get(at..at + 2)
                    .map_or(0, |v| u16::from_le_bytes([v[0], v[1]]))
            }
        }
    }

    /// The value as a DUMP payload (of its own version).
    pub fn payload(&self) -> Cow<'_, [u8]> {
        match self {
            Value::File { ty, version, .. } => {
                let value = self.raw();
                let mut body = Vec::with_capacity(value.len() + 1);
                body.push(ty.code());
                body.extend_from_slice(value);
                Cow::Owned(rdb::payload::build(&body, *version))
            }
            Value::Payload { payload, .. } => Cow::Borrowed(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TtlRule;

    #[test]
    fn ttl_rules() {
        let t = TtlRule::Tolerance(1000);
        assert!(t.same(None, None));
        assert!(t.same(Some(5000), Some(5999)) && t.same(Some(5999), Some(5000)));
        assert!(!t.same(Some(5000), Some(6001)));
        assert!(!t.same(Some(5000), None) && !t.same(None, Some(1)));
        assert!(TtlRule::Ignore.same(Some(1), None));
        assert!(!TtlRule::Tolerance(0).same(Some(1), Some(2)));
    }
}
