//! The first side of a comparison, one compact entry per key (48 bytes): the key's identity
//! hash, its value fingerprint, its expiry and where to find it again. Sorted by identity, with
//! a small directory on top (the hashes are uniform, so the top bits say where to look), a
//! lookup costs a cache miss or two.

use crate::rdb::Kind;

/// What is kept per key of the first side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// [`super::fingerprint::Seed::key`] of (db, key).
    pub key: u128,
    /// [`super::fingerprint::Fingerprinter`] of the value.
    pub value: u128,
    /// Absolute expiry in unix ms, or [`NO_EXPIRE`].
    pub expire: i64,
    /// Low 56 bits: the locator (a file's record offset; a server's payload size); above them,
    /// the kind.
    word: u64,
}

pub const NO_EXPIRE: i64 = i64::MIN;

const LOC_BITS: u32 = 56;
const LOC_MASK: u64 = (1 << LOC_BITS) - 1;

const _: () = assert!(std::mem::size_of::<Entry>() == 48);

pub fn kind_from_u8(k: u8) -> Kind {
    match k {
        0 => Kind::String,
        1 => Kind::List,
        2 => Kind::Set,
        3 => Kind::Zset,
        4 => Kind::Hash,
        5 => Kind::Stream,
        _ => Kind::Module,
    }
}

impl Entry {
    pub fn new(key: u128, value: u128, expire: Option<i64>, kind: Kind, loc: u64) -> Self {
        Entry {
            key,
            value,
            expire: expire.unwrap_or(NO_EXPIRE),
            word: (loc & LOC_MASK) | (u64::from(kind as u8) << LOC_BITS),
        }
    }

    pub fn kind(&self) -> Kind {
        kind_from_u8((self.word >> LOC_BITS) as u8)
    }

    pub fn loc(&self) -> u64 {
        self.word & LOC_MASK
    }

    pub fn expire(&self) -> Option<i64> {
        (self.expire != NO_EXPIRE).then_some(self.expire)
    }
}

/// Entries sorted by key identity, with a directory of where each run of top bits starts.
pub struct Index {
    entries: Vec<Entry>,
    dir: Vec<u32>,
    shift: u32,
}

/// The directory bucket of `key`: its top bits (none when there is one bucket).
fn bucket(key: u128, shift: u32) -> usize {
    key.checked_shr(shift).unwrap_or(0) as usize
}

/// Average entries per directory bucket.
const PER_BUCKET: usize = 4;

impl Index {
    /// Sorts the entries; a key seen twice (a server's SCAN may return a key more than once)
    /// is kept once. Returns the index and how many repeats were dropped.
    pub fn build(mut entries: Vec<Entry>) -> (Index, u64) {
        entries.sort_unstable_by_key(|e| e.key);
        let before = entries.len();
        entries.dedup_by_key(|e| e.key);
        let repeats = (before - entries.len()) as u64;
        entries.shrink_to_fit();
        let bits = (entries.len() / PER_BUCKET)
            .max(1)
            .next_power_of_two()
            .ilog2()
            .min(32);
        let buckets = 1usize << bits;
        let shift = 128 - bits;
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets {
            while i < entries.len() && bucket(entries[i].key, shift) < b {
                i += 1;
            }
            dir.push(i as u32);
        }
        dir.push(entries.len() as u32);
        (
            Index {
                entries,
                dir,
                shift,
            },
            repeats,
        )
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The position of the entry with identity `key`.
    pub fn find(&self, key: u128) -> Option<usize> {
        let b = bucket(key, self.shift);
        let start = *self.dir.get(b)? as usize;
        let end = *self.dir.get(b + 1)? as usize;
        let run = self.entries.get(start..end)?;
        // A handful of neighbours: a linear scan reads them in order.
        run.iter().position(|e| e.key == key).map(|i| start + i)
    }

    /// The entry with identity `key` and its position (the copy travels to whoever compares
    /// it, so the index is touched once per lookup, on the core that looks up).
    pub fn get(&self, key: u128) -> Option<(usize, Entry)> {
        let i = self.find(key)?;
        self.entries.get(i).map(|e| (i, *e))
    }

    /// Bytes held per key, directory included.
    pub fn bytes_per_key(&self) -> f64 {
        let bytes = self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.dir.capacity() * std::mem::size_of::<u32>();
        bytes as f64 / self.entries.len().max(1) as f64
    }
}

/// One bit per index entry: matched by the second side.
pub struct Seen(Vec<u64>);

impl Seen {
    pub fn new(n: usize) -> Self {
        Seen(vec![0; n.div_ceil(64)])
    }

    /// Marks `i`; false if it was marked already.
    pub fn mark(&mut self, i: usize) -> bool {
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        match self.0.get_mut(w) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                true
            }
            _ => false,
        }
    }

    pub fn is_marked(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let seed = super::super::fingerprint::Seed(3);
        let entries: Vec<Entry> = (0..10_000u64)
            .map(|i| {
                let key = seed.key(0, &i.to_le_bytes());
                Entry::new(key, u128::from(i), (i % 2 == 0).then_some(7), Kind::Hash, i)
            })
            .collect();
        let mut doubled = entries.clone();
        doubled.extend_from_slice(&entries[..10]);
        let (index, repeats) = Index::build(doubled);
        assert_eq!(repeats, 10);
        assert_eq!(index.len(), 10_000);
        for e in &entries {
            let at = index.find(e.key).expect("present");
            assert_eq!(index.entries()[at], *e);
            assert_eq!(index.entries()[at].loc(), e.value as u64);
            assert_eq!(index.entries()[at].kind(), Kind::Hash);
        }
        assert_eq!(index.find(seed.key(1, &0u64.to_le_bytes())), None);
        // 48-byte entries and at most 4 bytes per 2 keys of directory.
        assert!(index.bytes_per_key() <= 50.0, "{}", index.bytes_per_key());
        let (empty, _) = Index::build(Vec::new());
        assert_eq!(empty.find(5), None);
        let mut seen = Seen::new(3);
        assert!(seen.mark(2) && !seen.mark(2) && seen.is_marked(2) && !seen.is_marked(1));
    }
}
