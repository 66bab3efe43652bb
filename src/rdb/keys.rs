//! Finding keys that occur twice in one database (the server refuses such a file) in bounded
//! memory: a 128-bit fingerprint and the offset of every key, compared once at the end.
//! Appending to vectors beats a hash set of millions of random inserts, and needs exactly 24
//! bytes per key. The entries are spread over 256 vectors by their first fingerprint byte as
//! they come, so the final pass works on pieces that fit in a cache, on two threads.

use std::hash::BuildHasher;

/// (fingerprint of db and key as two halves, record offset): 24 bytes, where a u128 field
/// would pad the tuple to 32.
type Entry = (u64, u64, u64);

const BUCKETS: usize = 256;

pub struct KeyIndex {
    seed: u64,
    buckets: Vec<Vec<Entry>>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        // A random seed, so no input can be crafted to collide.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u8);
        KeyIndex {
            seed,
            buckets: vec![Vec::new(); BUCKETS],
        }
    }
}

impl KeyIndex {
    pub fn add(&mut self, db: u64, key: &[u8], offset: u64) {
        let seed = self.seed ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let fp = xxhash_rust::xxh3::xxh3_128_with_seed(key, seed);
        let hi = (fp >> 64) as u64;
        self.buckets[(hi >> 56) as usize].push((hi, fp as u64, offset));
    }

    /// Room for `n` more keys, from a size hint the caller has already bounded.
    pub fn reserve(&mut self, n: usize) {
        // Fingerprints are uniform: a bucket gets n/256, give or take a few standard
        // deviations.
        let each = n / BUCKETS + n / (BUCKETS * 16) + 64;
        for b in &mut self.buckets {
            b.reserve(each);
        }
    }

    /// Pairs of (first offset, repeated offset) for every key seen more than once in its db,
    /// in file order of the repeats.
    pub fn duplicates(self) -> Vec<(u64, u64)> {
        let (a, b) = self.buckets.split_at(BUCKETS / 2);
        let mut out = std::thread::scope(|s| {
            let other = s.spawn(|| repeats(a));
            let mut out = repeats(b);
            out.extend(other.join().unwrap_or_default());
            out
        });
        out.sort_unstable_by_key(|&(_, dup)| dup);
        out
    }
}

/// The repeats within each bucket of keys (see [`repeats_in`]).
fn repeats(buckets: &[Vec<Entry>]) -> Vec<(u64, u64)> {
    let mut table = Vec::new();
    let mut out = Vec::new();
    for bucket in buckets {
        repeats_in(
            bucket,
            |e| (e.0, e.1),
            &mut table,
            |first, repeat| {
                out.push((bucket[first].2, bucket[repeat].2));
            },
        );
    }
    out
}

/// Calls `found(first, repeat)` with the indices of every entry of `bucket` whose 128-bit
/// fingerprint (as `fp` gives it) an earlier entry has, and of that earlier entry. It uses an
/// open-addressing table of entry indices, at most half full, kept in `table` for the next
/// bucket: a bucket of a few thousand entries and its table fit in a core's cache, where
/// sorting the bucket costs twice the time, and one hash set of all the entries misses the
/// cache on most inserts.
pub(super) fn repeats_in<T>(
    bucket: &[T],
    fp: impl Fn(&T) -> (u64, u64),
    table: &mut Vec<u32>,
    mut found: impl FnMut(usize, usize),
) {
    const EMPTY: u32 = u32::MAX;
    // (A bucket of 2^32 entries would take 64 GiB.)
    let mask = (bucket.len() * 2).next_power_of_two().max(16) - 1;
    table.clear();
    table.resize(mask + 1, EMPTY);
    for (i, e) in bucket.iter().enumerate() {
        let key = fp(e);
        let mut slot = key.1 as usize & mask;
        loop {
            let t = table[slot];
            if t == EMPTY {
                table[slot] = i as u32;
                break;
            }
            if fp(&bucket[t as usize]) == key {
                found(t as usize, i);
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_db_only() {
        let mut idx = KeyIndex::default();
        idx.add(0, b"a", 10);
        idx.add(1, b"a", 20);
        idx.add(0, b"b", 30);
        idx.add(0, b"a", 40);
        idx.add(0, b"a", 50);
        assert_eq!(idx.duplicates(), vec![(10, 40), (10, 50)]);
    }

    #[test]
    fn repeats_among_many_keys() {
        // Enough keys that every bucket's table has collisions to probe past.
        let mut idx = KeyIndex::default();
        let key = |i: u64| format!("key:{i}").into_bytes();
        for i in 0..200_000u64 {
            idx.add(i % 2, &key(i), i);
        }
        // Again: 7 in its own db, 8 in the other db (not a repeat), 7 once more.
        idx.add(1, &key(7), 300_000);
        idx.add(1, &key(8), 300_001);
        idx.add(1, &key(7), 300_002);
        idx.add(0, &key(199_998), 300_003);
        assert_eq!(
            idx.duplicates(),
            vec![(7, 300_000), (7, 300_002), (199_998, 300_003)]
        );
    }
}
