//! Finding keys that occur twice in one database (the server refuses such a file) in bounded
//! memory: a 128-bit fingerprint and the offset of every key, sorted once at the end. Appending
//! to a vector and sorting beats a hash set of millions of random inserts, and needs exactly
//! 24 bytes per key.

use std::hash::BuildHasher;

pub struct KeyIndex {
    seed: u64,
    /// (fingerprint of db and key as two halves, record offset): 24 bytes, where a u128
    /// field would pad the tuple to 32.
    entries: Vec<(u64, u64, u64)>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        // A random seed, so no input can be crafted to collide.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u8);
        KeyIndex {
            seed,
            entries: Vec::new(),
        }
    }
}

impl KeyIndex {
    pub fn add(&mut self, db: u64, key: &[u8], offset: u64) {
        let seed = self.seed ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let fp = xxhash_rust::xxh3::xxh3_128_with_seed(key, seed);
        self.entries.push(((fp >> 64) as u64, fp as u64, offset));
    }

    /// Room for `n` more keys, from a size hint the caller has already bounded.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Pairs of (first offset, repeated offset) for every key seen more than once in its db,
    /// in file order of the repeats.
    pub fn duplicates(mut self) -> Vec<(u64, u64)> {
        self.entries.sort_unstable_by_key(|&(hi, lo, _)| (hi, lo));
        let mut out = Vec::new();
        for group in self
            .entries
            .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
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
