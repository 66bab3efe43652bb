//! Key prefixes (`user:`, `user:42:`) with their key counts, serialized bytes and memory, in
//! bounded memory: at most [`MAX_PER_LEVEL`] prefixes per level are tracked; keys under any
//! other prefix are folded into one "(other)" row per level.

use std::collections::HashMap;

use crate::hash::{ByName, ShortBuild};
use serde::Serialize;

use super::KeyRow;

pub const MAX_PER_LEVEL: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct PrefixRow {
    pub level: usize,
    pub prefix: String,
    pub keys: u64,
    pub rdb_bytes: u64,
    pub memory: u64,
}

#[derive(Default, Clone, Copy)]
struct Agg {
    keys: u64,
    rdb_bytes: u64,
    memory: u64,
}

impl Agg {
    fn merge(&mut self, other: &Agg) {
        self.keys += other.keys;
        self.rdb_bytes += other.rdb_bytes;
        self.memory += other.memory;
    }

    fn add(&mut self, row: &KeyRow<'_>) {
        self.keys += 1;
        self.rdb_bytes += row.rdb_bytes;
        self.memory += row.memory.unwrap_or(0);
    }
}

/// One level's prefixes and their totals, and the totals of what did not fit.
#[derive(Default)]
struct Level {
    rows: Vec<(Vec<u8>, Agg)>,
    /// The row of each prefix.
    by_prefix: HashMap<Vec<u8>, usize, ShortBuild>,
    /// The rows of short prefixes, found without hashing while the level holds few (a
    /// miss then means a new prefix or a long one).
    fast: ByName<usize>,
    other: Agg,
}

impl Level {
    /// The totals of `prefix`, taken in while there is room; None when full.
    fn get(&mut self, prefix: &[u8]) -> Option<&mut Agg> {
        let few = self.rows.len() <= ByName::<usize>::MAX;
        let found = few.then(|| self.fast.get(prefix)).flatten();
        let i = match found.or_else(|| self.by_prefix.get(prefix).copied()) {
            Some(i) => i,
            None if self.rows.len() >= MAX_PER_LEVEL => return None,
            None => {
                let i = self.rows.len();
                self.rows.push((prefix.to_vec(), Agg::default()));
                self.by_prefix.insert(prefix.to_vec(), i);
                self.fast.insert(prefix, i);
                i
            }
        };
        Some(&mut self.rows[i].1)
    }
}

pub struct Prefixes {
    delimiter: u8,
    depth: usize,
    /// Per level (1-based index - 1).
    levels: Vec<Level>,
}

impl Prefixes {
    pub fn new(delimiter: u8, depth: usize) -> Self {
        Prefixes {
            delimiter,
            depth,
            levels: (0..depth).map(|_| Level::default()).collect(),
        }
    }

    /// Counts a write of a log (an AOF's, a replication stream's) to `key` in `db`: one key,
    /// `bytes` of the log (in place of its RDB bytes).
    pub fn add_write(&mut self, db: u64, key: &[u8], bytes: u64) {
        self.add(&KeyRow {
            db,
            key,
            r#type: "",
            encoding: "",
            expire_at: None,
            rdb_bytes: bytes,
            elements: 0,
            largest_element: 0,
            memory: Some(1),
        });
    }

    /// Counts the key under its first 1..=depth segments (a key counts at a level only if it
    /// has more segments than that).
    pub fn add(&mut self, row: &KeyRow<'_>) {
        let cuts = memchr::memchr_iter(self.delimiter, row.key).map(|i| i + 1);
        for (level, cut) in cuts.take(self.depth).enumerate() {
            let level = &mut self.levels[level];
            match level.get(&row.key[..cut]) {
                Some(agg) => agg.add(row),
                None => level.other.add(row),
            }
        }
    }

    /// Whether a level was full when a new prefix came (its keys then in "(other)").
    pub fn overflowed(&self) -> bool {
        self.levels.iter().any(|l| l.other.keys > 0)
    }

    /// Adds the counts of `other` (of other keys, with the same delimiter and depth): a
    /// prefix it has and this one has not is taken in while the level has room.
    pub fn merge(&mut self, other: Prefixes) {
        for (level, theirs) in self.levels.iter_mut().zip(other.levels) {
            level.other.merge(&theirs.other);
            for (prefix, agg) in &theirs.rows {
                match level.get(prefix) {
                    Some(mine) => mine.merge(agg),
                    None => level.other.merge(agg),
                }
            }
        }
    }

    /// All prefixes, by level and then memory (largest first), each level's "(other)" last.
    pub fn rows(self) -> Vec<PrefixRow> {
        let mut out = Vec::new();
        for (i, Level { rows, other, .. }) in self.levels.into_iter().enumerate() {
            let mut rows: Vec<PrefixRow> = rows
                .into_iter()
                .map(|(p, a)| PrefixRow {
                    level: i + 1,
                    prefix: crate::rdb::error::escape(&p),
                    keys: a.keys,
                    rdb_bytes: a.rdb_bytes,
                    memory: a.memory,
                })
                .collect();
            rows.sort_by(|a, b| {
                b.memory
                    .cmp(&a.memory)
                    .then(b.rdb_bytes.cmp(&a.rdb_bytes))
                    .then(a.prefix.cmp(&b.prefix))
            });
            out.extend(rows);
            if other.keys > 0 {
                let prefix = "(other)".to_string();
                out.push(PrefixRow {
                    level: i + 1,
                    prefix,
                    keys: other.keys,
                    rdb_bytes: other.rdb_bytes,
                    memory: other.memory,
                });
            }
        }
        out
    }
}
