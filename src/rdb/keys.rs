//! Finding keys that occur twice in one database (the server refuses such a file) in bounded
//! memory: a 128-bit fingerprint and the offset of every key, sorted once at the end. Appending
//! to a vector and sorting beats a hash set of millions of random inserts, and needs exactly
//! 24 bytes per key.

use std::hash::BuildHasher;

pub struct KeyIndex {
    seed: u64,
    /// (fingerprint of db and key, record offset)
    entries: Vec<(u128, u64)>,
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
        self.entries
            .push((xxhash_rust::xxh3::xxh3_128_with_seed(key, seed), offset));
    }

    /// Room for `n` more keys, from a size hint the caller has already bounded.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Pairs of (first offset, repeated offset) for every key seen more than once in its db.
    pub fn duplicates(mut self) -> Vec<(u64, u64)> {
        self.entries.sort_unstable();
        let mut out = Vec::new();
        for pair in self.entries.windows(2) {
            if pair[0].0 == pair[1].0 {
                out.push((pair[0].1, pair[1].1));
            }
        }
        // A key repeated three times yields (a, b), (b, c): report each repeat against the first.
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
        assert_eq!(idx.duplicates(), vec![(10, 40), (40, 50)]);
    }
}
