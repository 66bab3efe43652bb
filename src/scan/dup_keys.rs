//! Finding keys that occur twice in one database (the server refuses such a file) in bounded
//! memory: a fingerprint of every key, compared once at the end. Appending to vectors beats a
//! hash set of millions of random inserts. The entries are spread over 256 vectors by their
//! first fingerprint byte as they come, so the final pass works on pieces that fit in a cache,
//! on two threads.
//!
//! With the file mapped, a key takes 8 bytes: a 64-bit fingerprint alone. The rare fingerprints
//! seen twice are looked up by reading the keys again, which finds their offsets and rules out
//! distinct keys that share a fingerprint. A stream cannot be read again: there a key keeps a
//! 128-bit fingerprint and its offset, 24 bytes. (A mapped file keeps the 8 alone because
//! writing 24 bytes per key to memory is a cost on every key of the walk.)

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use crate::rdb::dup_set::repeats_in;
use crate::rdb::{Reader, Record};
use crate::scan::thread::{Panicked, joined};

const BUCKETS: usize = 256;

pub struct KeyIndex<'d> {
    seed: u64,
    /// The mapped file, whose keys can be read again; None for a stream.
    data: Option<&'d [u8]>,
    /// Per bucket, the high 64 bits of each key's fingerprint.
    high: Vec<Vec<u64>>,
    /// From a stream only: per bucket, the low 64 bits and the record offset of each key.
    located: Vec<Vec<(u64, u64)>>,
}

impl<'d> KeyIndex<'d> {
    /// An index of the keys of `data`, the whole input when it is mapped, or of a stream.
    pub fn new(data: Option<&'d [u8]>) -> Self {
        // A random seed, so no input can be crafted to collide.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u8);
        KeyIndex {
            seed,
            data,
            high: vec![Vec::new(); BUCKETS],
            located: vec![Vec::new(); if data.is_some() { 0 } else { BUCKETS }],
        }
    }

    fn fingerprint(&self, db: u64, key: &[u8]) -> u128 {
        let seed = self.seed ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        xxhash_rust::xxh3::xxh3_128_with_seed(key, seed)
    }

    pub fn add(&mut self, db: u64, key: &[u8], offset: u64) {
        let fp = self.fingerprint(db, key);
        let high = (fp >> 64) as u64;
        let bucket = (high >> 56) as usize;
        self.high[bucket].push(high);
        if self.data.is_none() {
            self.located[bucket].push((fp as u64, offset));
        }
    }

    /// Room for `n` more keys, from a size hint the caller has already bounded.
    pub fn reserve(&mut self, n: usize) {
        // Fingerprints are uniform: a bucket gets n/256, give or take a few standard
        // deviations.
        let each = n / BUCKETS + n / (BUCKETS * 16) + 64;
        self.high.iter_mut().for_each(|b| b.reserve(each));
        self.located.iter_mut().for_each(|b| b.reserve(each));
    }

    /// Pairs of (first offset, repeated offset) for every key seen more than once in its db,
    /// in file order of the repeats; an error if the thread doing half the work panicked.
    pub fn duplicates(self) -> Result<Vec<(u64, u64)>, Panicked> {
        let mid = BUCKETS / 2;
        let mut out = std::thread::scope(|s| {
            let other = s.spawn(|| self.repeats(mid..BUCKETS));
            let mut out = self.repeats(0..mid);
            out.extend(joined(other.join(), "finding duplicate keys")?);
            Ok(out)
        })?;
        if let Some(data) = self.data {
            // `out` holds fingerprints seen twice, not offsets (see `repeats`).
            let candidates: HashSet<u64> = out.iter().map(|&(high, _)| high).collect();
            out = self.confirm(data, &candidates, out.len() + candidates.len());
        }
        out.sort_unstable_by_key(|&(_, dup)| dup);
        Ok(out)
    }

    /// Repeats within the buckets `range`: (first offset, repeated offset) from a stream;
    /// with the file mapped, (fingerprint, 0) for each repeat of a fingerprint.
    fn repeats(&self, range: std::ops::Range<usize>) -> Vec<(u64, u64)> {
        let mut table = Vec::new();
        let mut out = Vec::new();
        for b in range {
            let high = &self.high[b];
            if self.data.is_some() {
                let fp = |i: usize| (high[i], 0);
                repeats_in(high.len(), fp, &mut table, |_, i| out.push((high[i], 0)));
            } else {
                let located = &self.located[b];
                let fp = |i: usize| (high[i], located[i].0);
                repeats_in(high.len(), fp, &mut table, |first, i| {
                    out.push((located[first].1, located[i].1));
                });
            }
        }
        out
    }

    /// Reads the keys of `data` again, up to the `expected` keys whose fingerprints are in
    /// `candidates`, and pairs each with the first earlier key of its db with the same bytes.
    fn confirm(&self, data: &[u8], candidates: &HashSet<u64>, expected: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let Ok(mut reader) = Reader::from_slice(data) else {
            return out;
        };
        let mut first: HashMap<(u64, Vec<u8>), u64> = HashMap::new();
        let mut found = 0;
        while found < expected {
            let Some(Ok(rec)) = reader.next_record() else {
                break;
            };
            let Record::Key { db, key, .. } = rec.record else {
                continue;
            };
            if candidates.contains(&((self.fingerprint(db, &key) >> 64) as u64)) {
                found += 1;
                match first.entry((db, key.into_owned())) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        out.push((*e.get(), rec.offset));
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(rec.offset);
                    }
                }
            }
            if reader.skip_value().is_err() {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_db_only() {
        let mut idx = KeyIndex::new(None);
        idx.add(0, b"a", 10);
        idx.add(1, b"a", 20);
        idx.add(0, b"b", 30);
        idx.add(0, b"a", 40);
        idx.add(0, b"a", 50);
        assert_eq!(idx.duplicates().unwrap(), vec![(10, 40), (10, 50)]);
    }

    fn key(i: u64) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    /// 200,000 keys over two dbs, then (db, key) pairs that repeat some of them or not.
    fn many_keys() -> Vec<(u64, Vec<u8>)> {
        let mut keys: Vec<_> = (0..200_000u64).map(|i| (i % 2, key(i))).collect();
        // 7 again in its own db, 8 in the other db (not a repeat), 7 once more, 199,998.
        keys.extend([(1, key(7)), (1, key(8)), (1, key(7)), (0, key(199_998))]);
        keys
    }

    #[test]
    fn repeats_among_many_keys_of_a_stream() {
        // Enough keys that every bucket's table has collisions to probe past.
        let mut idx = KeyIndex::new(None);
        for (i, (db, key)) in many_keys().iter().enumerate() {
            idx.add(*db, key, 1000 + i as u64);
        }
        assert_eq!(
            idx.duplicates().unwrap(),
            vec![(1007, 201_000), (1007, 201_002), (200_998, 201_003)]
        );
    }

    /// An RDB 9 file of `keys` with one-byte string values, its checksum disabled.
    fn file(keys: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut f = b"REDIS0009".to_vec();
        let mut db = None;
        for (d, k) in keys {
            if db != Some(*d) {
                f.extend([0xfe, *d as u8]);
                db = Some(*d);
            }
            f.extend([0, k.len() as u8]);
            f.extend(k);
            f.extend([1, b'v']);
        }
        f.push(0xff);
        f.extend([0; 8]);
        f
    }

    /// Each key of `data` with its record offset.
    fn keys_of(data: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
        let mut reader = Reader::from_slice(data).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = reader.next_record() {
            let rec = rec.unwrap();
            if let Record::Key { db, key, .. } = rec.record {
                out.push((db, key.into_owned(), rec.offset));
            }
        }
        out
    }

    #[test]
    fn repeats_in_a_mapped_file_are_found_by_reading_their_keys_again() {
        let data = file(&many_keys());
        let keys = keys_of(&data);
        let mut idx = KeyIndex::new(Some(&data));
        for (db, key, offset) in &keys {
            idx.add(*db, key, *offset);
        }
        let at = |i: usize| keys[i].2;
        assert_eq!(
            idx.duplicates().unwrap(),
            vec![
                (at(7), at(200_000)),
                (at(7), at(200_002)),
                (at(199_998), at(200_003))
            ]
        );
    }

    #[test]
    fn keys_that_only_share_a_fingerprint_are_not_repeats() {
        // As if "a" in db 0, "a" in db 1 and "b" had one fingerprint: each occurs once.
        let keys = [(0, b"a".to_vec()), (0, b"b".to_vec()), (1, b"a".to_vec())];
        let data = file(&keys);
        let idx = KeyIndex::new(Some(&data));
        let high = |db, key: &[u8]| (idx.fingerprint(db, key) >> 64) as u64;
        let candidates = HashSet::from([high(0, b"a"), high(0, b"b"), high(1, b"a")]);
        assert_eq!(idx.confirm(&data, &candidates, 3), vec![]);
        // The same file with "b" repeated after the others: found, and only it.
        let mut keys = keys.to_vec();
        keys.push((1, b"c".to_vec()));
        keys.push((0, b"b".to_vec()));
        let data = file(&keys);
        let offsets = keys_of(&data);
        assert_eq!(
            idx.confirm(&data, &candidates, 4),
            vec![(offsets[1].2, offsets[4].2)]
        );
    }

    #[test]
    fn a_panicking_thread_is_an_error_not_fewer_repeats() {
        let mut idx = KeyIndex::new(None);
        idx.add(0, b"a", 10);
        idx.add(0, b"a", 20);
        // A key in the last bucket (the other thread's) without its offset: indexing it panics.
        idx.high[BUCKETS - 1].push(u64::MAX);
        let e = idx.duplicates().unwrap_err();
        assert_eq!(e.what, "finding duplicate keys");
    }
}
