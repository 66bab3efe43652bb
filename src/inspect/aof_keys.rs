//! The keys side of AOF inspect: each walk of the log (one per thread, see `inspect::aof`)
//! counts the keys it reads in its own heavy-hitters sketch and key prefixes, while their
//! bytes are still in cache; the walks' counts are merged at the end.

use super::aof::{HeavyRow, KeysTouched, PrefixRow, SKETCH_COUNTERS};
use super::prefix::Prefixes;
use crate::aof::sketch::{Frequent, Heavy};
use crate::rdb::error::escape;

/// A counted key: its database and name, copied when the sketch takes it in (so that no
/// page of the files is read again to list it).
#[derive(Debug, Clone)]
struct Named {
    db: u64,
    key: KeyBytes,
}

/// A key's bytes, in place when short.
#[derive(Debug, Clone)]
enum KeyBytes {
    Short(u8, [u8; 22]),
    Long(Box<[u8]>),
}

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        KeyBytes::short(key).unwrap_or_else(|| KeyBytes::Long(key.into()))
    }

    /// The bytes of a short key, kept in place.
    fn short(key: &[u8]) -> Option<Self> {
        let mut b = [0u8; 22];
        let to = b.get_mut(..key.len())?;
        to.copy_from_slice(key);
        Some(KeyBytes::Short(key.len() as u8, b))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Short(len, b) => &b[..*len as usize],
            KeyBytes::Long(b) => b,
        }
    }
}

/// The counts of the keys.
pub(super) struct Keys {
    /// Writes and bytes by key.
    sketch: Frequent<Named, 2>,
    /// Keys not yet added to the sketch, their place in it fetched (see [`PENDING`]): their
    /// hash and share of bytes.
    pending: Vec<(u64, u64, Named)>,
    prefixes: Prefixes,
}

/// Keys whose place in the sketch is fetched before they are added: a lookup waits for memory,
/// several of them at once wait about as long as one.
const PENDING: usize = 16;

impl Keys {
    pub(super) fn new(delimiter: u8, depth: usize) -> Keys {
        Keys {
            sketch: Frequent::new(SKETCH_COUNTERS),
            pending: Vec::with_capacity(PENDING),
            prefixes: Prefixes::new(delimiter, depth),
        }
    }

    /// Adds the pending keys to the sketch, in the order written.
    fn flush(&mut self) {
        for (hash, share, named) in self.pending.drain(..) {
            self.sketch.add(hash, [1, share], || named);
        }
    }

    /// Counts a write of `key` in `db`, with its `share` of the command's bytes.
    pub(super) fn add(&mut self, db: u64, key: &[u8], share: u64) {
        let hash = Frequent::<Named, 2>::hash(db, key);
        let named = |key| Named { db, key };
        match KeyBytes::short(key) {
            Some(short) => {
                self.sketch.prefetch(hash);
                self.pending.push((hash, share, named(short)));
                if self.pending.len() == PENDING {
                    self.flush();
                }
            }
            // A long key's bytes are copied only if the sketch takes it in.
            None => {
                self.flush();
                self.sketch
                    .add(hash, [1, share], || named(KeyBytes::new(key)));
            }
        }
        self.prefixes.add_write(db, key, share);
    }

    /// Adds the counts of `later` (a walk of a later part of the log), whose keys in database
    /// `unknown` are in `db` (the walk started where the database was not yet known).
    pub(super) fn merge(&mut self, mut later: Keys, unknown: u64, db: u64) {
        self.flush();
        later.flush();
        self.sketch.merge(later.sketch, |named| {
            let named = match named.db == unknown {
                true => Named { db, ..named },
                false => named,
            };
            (
                Frequent::<Named, 2>::hash(named.db, named.key.bytes()),
                named,
            )
        });
        self.prefixes.merge(later.prefixes);
    }

    /// The top lists and bounds into `touched`; the prefixes, by level and writes.
    pub(super) fn finish(mut self, top: usize, touched: &mut KeysTouched) -> Vec<PrefixRow> {
        self.flush();
        touched.sketch_counters = self.sketch.k();
        touched.writes_bound = self.sketch.bound(0);
        touched.bytes_bound = self.sketch.bound(1);
        touched.top_by_writes = self.heavy_rows(0, top);
        touched.top_by_bytes = self.heavy_rows(1, top);
        write_rows(self.prefixes)
    }
}

impl Keys {
    /// The `top` rows by weight `w` (0 writes, 1 bytes), ties by database and key.
    fn heavy_rows(&self, w: usize, top: usize) -> Vec<HeavyRow> {
        let order = |a: &Named, b: &Named| a.db.cmp(&b.db).then(a.key.bytes().cmp(b.key.bytes()));
        self.sketch
            .top(w, top, order)
            .into_iter()
            .map(|h: Heavy<Named>| HeavyRow {
                db: h.item.db,
                key: escape(h.item.key.bytes()),
                count: h.count,
                over_by_at_most: h.over,
            })
            .collect()
    }
}

/// The prefix rows of a log's key writes (the counter's keys are the writes, its RDB bytes the
/// bytes): by level, then writes (most first), then prefix.
pub(crate) fn write_rows(prefixes: Prefixes) -> Vec<PrefixRow> {
    let mut rows: Vec<PrefixRow> = prefixes
        .rows()
        .into_iter()
        .map(|p| PrefixRow {
            level: p.level,
            prefix: p.prefix,
            writes: p.keys,
            bytes: p.rdb_bytes,
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = |p: &PrefixRow| (p.level, std::cmp::Reverse(p.writes));
        order(a)
            .cmp(&order(b))
            .then_with(|| a.prefix.cmp(&b.prefix))
    });
    rows
}
