//! Finding keys that occur twice in one database (the server refuses such a file) in bounded
//! memory: a 128-bit fingerprint and the offset of every key, sorted once at the end. Appending
//! to vectors and sorting beats a hash set of millions of random inserts, and needs exactly
//! 24 bytes per key. The entries are spread over 256 vectors by their first fingerprint byte as
//! they come, so the final sort works on pieces that fit in a cache, on two threads.

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
    pub fn duplicates(mut self) -> Vec<(u64, u64)> {
        let sort = |buckets: &mut [Vec<Entry>]| {
            for b in buckets {
                b.sort_unstable_by_key(|&(hi, lo, _)| (hi, lo));
            }
        };
        let (a, b) = self.buckets.split_at_mut(BUCKETS / 2);
        std::thread::scope(|s| {
            s.spawn(|| sort(a));
            sort(b);
        });
        let mut out = Vec::new();
        for group in self
            .buckets
            .iter()
            .flat_map(|b| b.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)))
            .filter(|g| g.len() > 1)
        {
            let first = group.iter().map(|e| e.2).min().unwrap_or_default();
            out.extend(
                group
                    .iter()
                    .map(|e| e.2)
                    .filter(|&o| o != first)
                    .map(|o| (first, o)),
            );
        }
        out.sort_unstable_by_key(|&(_, dup)| dup);
        out
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
}
