//! Key prefixes (`user:`, `user:42:`) with their key counts, serialized bytes and memory, in
//! bounded memory: at most [`MAX_PER_LEVEL`] prefixes per level are tracked; keys under any
//! other prefix are folded into one "(other)" row per level.

use std::collections::HashMap;

use crate::hash::ShortBuild;
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
type Level = (HashMap<Vec<u8>, Agg, ShortBuild>, Agg);

pub struct Prefixes {
    delimiter: u8,
    depth: usize,
    /// Per level (1-based index - 1): prefix -> totals, and what did not fit.
    levels: Vec<Level>,
}

impl Prefixes {
    pub fn new(delimiter: u8, depth: usize) -> Self {
        // A fast hash: every key looks up `depth` prefixes.
        let empty = (HashMap::with_hasher(ShortBuild::default()), Agg::default());
        Prefixes {
            delimiter,
            depth,
            levels: vec![empty; depth],
        }
    }

    /// Counts the key under its first 1..=depth segments (a key counts at a level only if it
    /// has more segments than that).
    pub fn add(&mut self, row: &KeyRow<'_>) {
        let cuts = memchr::memchr_iter(self.delimiter, row.key).map(|i| i + 1);
        for (level, cut) in cuts.take(self.depth).enumerate() {
            let (map, other) = &mut self.levels[level];
            let prefix = &row.key[..cut];
            let full = map.len() >= MAX_PER_LEVEL;
            match map.get_mut(prefix) {
                Some(agg) => agg.add(row),
                None if full => other.add(row),
                None => map.entry(prefix.to_vec()).or_default().add(row),
            }
        }
    }

    /// Adds the counts of `other` (of other keys, with the same delimiter and depth): a
    /// prefix it has and this one has not is taken in while the level has room.
    pub fn merge(&mut self, other: Prefixes) {
        for ((map, other_agg), (theirs, their_other)) in self.levels.iter_mut().zip(other.levels) {
            other_agg.merge(&their_other);
            for (prefix, agg) in theirs {
                let full = map.len() >= MAX_PER_LEVEL;
                match map.get_mut(&prefix) {
                    Some(mine) => mine.merge(&agg),
                    None if full => other_agg.merge(&agg),
                    None => {
                        map.insert(prefix, agg);
                    }
                }
            }
        }
    }

    /// All prefixes, by level and then memory (largest first), each level's "(other)" last.
    pub fn rows(self) -> Vec<PrefixRow> {
        let mut out = Vec::new();
        for (i, (map, other)) in self.levels.into_iter().enumerate() {
            let mut rows: Vec<PrefixRow> = map
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
