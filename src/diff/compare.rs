//! The join: side B's keys are looked up in side A's index as they come; equal keys are only
//! counted, differing ones are kept (name, both sides' facts) for the second pass. Keys of A
//! that B never matched are the removed ones.

use super::index::{Entry, Index, Seen};
use super::{Print, TtlRule};
use crate::rdb::Kind;

/// How a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    TypeChanged,
    /// Same type, another value (the TTL may have changed too).
    ValueChanged,
    /// Same value, another expiry.
    TtlChanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::TypeChanged => "type-changed",
            Change::ValueChanged => "value-changed",
            Change::TtlChanged => "ttl-changed",
        }
    }
}

/// One side's facts about a differing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySide {
    pub kind: Kind,
    pub expire: Option<i64>,
    /// A file's record offset; a server's payload size.
    pub loc: u64,
    /// Serialized size of the value (filled in for A when the key is located again).
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Diff {
    pub db: u64,
    /// Empty until resolved, for keys only A has.
    pub key: Vec<u8>,
    pub id: u128,
    pub change: Change,
    pub a: Option<KeySide>,
    pub b: Option<KeySide>,
}

impl Diff {
    /// The kind the key has in B, else in A.
    pub fn kind(&self) -> Kind {
        self.b.or(self.a).map_or(Kind::String, |s| s.kind)
    }
}

/// Counts for one type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindTally {
    pub only_a: u64,
    pub only_b: u64,
    pub value_changed: u64,
    pub ttl_changed: u64,
    pub type_changed: u64,
    pub unchanged: u64,
    /// Serialized bytes of the differing keys, on each side.
    pub bytes_a: u64,
    pub bytes_b: u64,
}

impl KindTally {
    pub fn differing(&self) -> u64 {
        self.only_a + self.only_b + self.value_changed + self.ttl_changed + self.type_changed
    }
}

pub const KINDS: [Kind; 7] = [
    Kind::String,
    Kind::List,
    Kind::Set,
    Kind::Zset,
    Kind::Hash,
    Kind::Stream,
    Kind::Module,
];

/// Counts per type (a type change counts under A's type).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub kinds: [KindTally; 7],
    pub keys_a: u64,
    pub keys_b: u64,
}

impl Tally {
    pub fn add(&mut self, d: &Diff) {
        let kind = d.a.or(d.b).map_or(Kind::String, |s| s.kind);
        let t = &mut self.kinds[kind as usize];
        match d.change {
            Change::Added => t.only_b += 1,
            Change::Removed => t.only_a += 1,
            Change::TypeChanged => t.type_changed += 1,
            Change::ValueChanged => t.value_changed += 1,
            Change::TtlChanged => t.ttl_changed += 1,
        }
        t.bytes_a += d.a.map_or(0, |s| s.bytes);
        t.bytes_b += d.b.map_or(0, |s| s.bytes);
    }

    pub fn total(&self) -> KindTally {
        let mut all = KindTally::default();
        for t in &self.kinds {
            all.only_a += t.only_a;
            all.only_b += t.only_b;
            all.value_changed += t.value_changed;
            all.ttl_changed += t.ttl_changed;
            all.type_changed += t.type_changed;
            all.unchanged += t.unchanged;
            all.bytes_a += t.bytes_a;
            all.bytes_b += t.bytes_b;
        }
        all
    }
}

/// B's keys waiting for the join: sorted by identity before they are looked up, so the walk
/// through A's index goes one way (a lookup in key order costs a few nanoseconds; in file
/// order, a cache and TLB miss or three).
const JOIN_BATCH: usize = 1 << 18;

/// One key of B waiting for the join.
struct Pending {
    id: u128,
    value: u128,
    expire: Option<i64>,
    db: u64,
    loc: u64,
    bytes: u64,
    kind: Kind,
    /// Its name in `names`.
    name: (usize, usize),
}

/// The join in progress.
pub struct Comparison {
    ttl: TtlRule,
    /// The prints hash the values' bytes (see [`super::Prints`]): unequal ones are settled
    /// later, by meaning.
    raw: bool,
    seen: Seen,
    diffs: Vec<Diff>,
    undecided: Vec<Diff>,
    unchanged: [u64; 7],
    pending: Vec<Pending>,
    names: Vec<u8>,
    batch: usize,
    repeats: u64,
}

/// What the join found.
pub struct Joined {
    /// Differing keys; those only A has are not named yet.
    pub diffs: Vec<Diff>,
    pub tally: Tally,
    /// Keys whose stored bytes differ (raw prints), to compare by meaning: see
    /// [`Joined::settle`].
    pub undecided: Vec<Diff>,
    /// Keys B gave more than once (a server's SCAN may; a file must not).
    pub repeats: u64,
    ttl: TtlRule,
}

impl Joined {
    /// Classifies the undecided keys given both sides' canonical fingerprints (in the order of
    /// `undecided`).
    pub fn settle(&mut self, canonical: &[(u128, u128)]) {
        for (mut d, &(a, b)) in std::mem::take(&mut self.undecided)
            .into_iter()
            .zip(canonical)
        {
            let (Some(sa), Some(sb)) = (d.a, d.b) else {
                continue;
            };
            d.change = if a != b {
                Change::ValueChanged
            } else if !self.ttl.same(sa.expire, sb.expire) {
                Change::TtlChanged
            } else {
                self.tally.kinds[sb.kind as usize].unchanged += 1;
                continue;
            };
            self.diffs.push(d);
        }
    }
}

impl Comparison {
    /// `raw`: the prints of both sides hash the values' bytes.
    pub fn new(index: &Index, ttl: TtlRule, raw: bool) -> Self {
        Comparison {
            ttl,
            raw,
            seen: Seen::new(index.len()),
            diffs: Vec::new(),
            undecided: Vec::new(),
            unchanged: [0; 7],
            pending: Vec::with_capacity(JOIN_BATCH),
            names: Vec::new(),
            batch: JOIN_BATCH,
            repeats: 0,
        }
    }

    /// One key of B.
    pub fn b_key(&mut self, index: &Index, p: &Print<'_>) {
        let at = self.names.len();
        self.names.extend_from_slice(p.key);
        self.pending.push(Pending {
            id: p.id,
            value: p.value,
            expire: p.expire,
            db: p.db,
            loc: p.loc,
            bytes: p.bytes,
            kind: p.kind,
            name: (at, p.key.len()),
        });
        if self.pending.len() >= self.batch {
            self.join(index);
        }
    }

    /// Looks up the pending keys in key order.
    fn join(&mut self, index: &Index) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|p| p.id);
        for p in pending.drain(..) {
            self.b_joined(&p, index.get(p.id));
        }
        self.pending = pending;
        self.names.clear();
    }

    /// One key of B, with A's entry (and its position in A's index) if A has it.
    fn b_joined(&mut self, p: &Pending, found: Option<(usize, Entry)>) {
        let b = KeySide {
            kind: p.kind,
            expire: p.expire,
            loc: p.loc,
            bytes: p.bytes,
        };
        let (change, a) = match found {
            Some((i, e)) => {
                if !self.seen.mark(i) {
                    self.repeats += 1;
                    return;
                }
                let a = KeySide {
                    kind: e.kind(),
                    expire: e.expire(),
                    loc: e.loc(),
                    bytes: 0,
                };
                let change = if a.kind != b.kind {
                    Change::TypeChanged
                } else if e.value != p.value {
                    Change::ValueChanged
                } else if !self.ttl.same(a.expire, b.expire) {
                    Change::TtlChanged
                } else {
                    self.unchanged[p.kind as usize] += 1;
                    return;
                };
                (change, Some(a))
            }
            None => (Change::Added, None),
        };
        let (at, len) = p.name;
        let d = Diff {
            db: p.db,
            key: self.names.get(at..at + len).unwrap_or_default().to_vec(),
            id: p.id,
            change,
            a,
            b: Some(b),
        };
        if self.raw && change == Change::ValueChanged {
            self.undecided.push(d);
        } else {
            self.diffs.push(d);
        }
    }

    /// Adds the keys B never matched (unresolved: no name, db unknown) and drops repeats of
    /// added keys.
    pub fn finish(mut self, index: &Index) -> Joined {
        self.join(index);
        self.diffs.sort_by_key(|d| d.id);
        let before = self.diffs.len();
        self.diffs.dedup_by_key(|d| d.id);
        self.repeats += (before - self.diffs.len()) as u64;
        let mut tally = Tally::default();
        for (t, n) in tally.kinds.iter_mut().zip(self.unchanged) {
            t.unchanged = n;
        }
        tally.keys_a = index.len() as u64;
        // Every diff so far is a key of B.
        tally.keys_b = self.unchanged.iter().sum::<u64>()
            + self.diffs.len() as u64
            + self.undecided.len() as u64;
        for (i, e) in index.entries().iter().enumerate() {
            if !self.seen.is_marked(i) {
                self.diffs.push(Diff {
                    db: u64::MAX,
                    key: Vec::new(),
                    id: e.key,
                    change: Change::Removed,
                    a: Some(KeySide {
                        kind: e.kind(),
                        expire: e.expire(),
                        loc: e.loc(),
                        bytes: 0,
                    }),
                    b: None,
                });
            }
        }
        Joined {
            diffs: self.diffs,
            tally,
            undecided: self.undecided,
            repeats: self.repeats,
            ttl: self.ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::fingerprint::Seed;

    fn print(
        seed: Seed,
        db: u64,
        key: &[u8],
        value: u128,
        expire: Option<i64>,
    ) -> (u128, Print<'_>) {
        let id = seed.key(db, key);
        let p = Print {
            db,
            key,
            kind: Kind::String,
            expire,
            id,
            value,
            bytes: 1,
            loc: 0,
        };
        (id, p)
    }

    #[test]
    fn join_in_small_batches_finds_every_change_once() {
        let seed = Seed(5);
        let names: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("k{i}").into_bytes()).collect();
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (id, _) = print(seed, 0, n, 0, None);
                Entry::new(
                    id,
                    i as u128,
                    (i % 10 == 0).then_some(1_000_000),
                    Kind::String,
                    0,
                )
            })
            .collect();
        let (index, _) = Index::build(entries);
        let mut cmp = Comparison::new(&index, TtlRule::Tolerance(1000), false);
        cmp.batch = 7;
        for (i, n) in names.iter().enumerate() {
            // Keys 0..100 removed; every 7th value changed; keys 10, 20.. keep their TTL within
            // tolerance except 500, which moves far.
            if i < 100 {
                continue;
            }
            let value = if i % 7 == 0 { 9999 } else { i as u128 };
            let expire = match i {
                500 => Some(9_000_000),
                i if i % 10 == 0 => Some(1_000_900),
                _ => None,
            };
            let (_, p) = print(seed, 0, n, value, expire);
            cmp.b_key(&index, &p);
            if i == 300 {
                cmp.b_key(&index, &p); // SCAN's repeat
            }
        }
        let extra = b"new".to_vec();
        let (_, p) = print(seed, 0, &extra, 1, None);
        cmp.b_key(&index, &p);
        cmp.b_key(&index, &p);
        let Joined {
            diffs,
            tally,
            repeats,
            ..
        } = cmp.finish(&index);
        assert_eq!(repeats, 2);
        let count = |c: Change| diffs.iter().filter(|d| d.change == c).count();
        let changed = (100..1000).filter(|i| i % 7 == 0).count();
        assert_eq!(count(Change::Removed), 100);
        assert_eq!(count(Change::Added), 1);
        assert_eq!(count(Change::ValueChanged), changed);
        assert_eq!(count(Change::TtlChanged), 1);
        assert_eq!(tally.kinds[0].unchanged, 900 - changed as u64 - 1);
        assert_eq!((tally.keys_a, tally.keys_b), (1000, 901));
        let named: Vec<&[u8]> = diffs
            .iter()
            .filter(|d| d.change == Change::TtlChanged)
            .map(|d| d.key.as_slice())
            .collect();
        assert_eq!(named, [b"k500".as_slice()]);
    }
}
