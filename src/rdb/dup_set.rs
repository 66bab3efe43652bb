//! Finding a repeated member, field or key among many in bounded time: 128-bit fingerprints
//! with a random seed, so no input can be crafted to collide, looked up in a small hash set or,
//! for big collections, spread over buckets and looked through once at the end.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::primitive::Elem;

/// Hashes already fingerprinted with a random seed; the set just takes their low bits.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// 128-bit fingerprints of the members seen in the current collection. A random seed keeps
/// crafted inputs from colliding on purpose.
///
/// A collection that announces more than [`SPREAD_MIN`] members has its fingerprints spread
/// over buckets by their top bits instead, and looked through once it is read (see
/// [`repeats_in`]): random inserts into one big set missed the cache on most
/// members, and cost as much as the rest of checking those collections.
pub(super) struct DupSet {
    seed: u64,
    seen: HashSet<u128, BuildHasherDefault<PreHashed>>,
    /// Whether the collection being read is big; then its buckets, and the shift that picks
    /// one. The buckets, and the table they are looked through in, are kept for the next big
    /// collection (up to [`SPREAD_KEEP`]): allocating them afresh for each one faulted in new
    /// pages every time.
    spreading: bool,
    spread: Vec<Vec<(u64, u64)>>,
    shift: u32,
    table: Vec<u32>,
    /// Never spread: a repeat is found, and named, the moment it is read.
    pub(super) at_once: bool,
}

/// Above this capacity the set is dropped after the key: clearing costs time in proportion to
/// capacity, which a run of small keys after one big key would otherwise pay again and again.
const DUPSET_KEEP: usize = 1024;
/// At most this many members are made room for in advance (16 MiB of fingerprints).
const DUPSET_EXPECT_MAX: u64 = 1 << 20;
/// Collections of more members are spread over buckets of about this many.
pub(super) const SPREAD_MIN: u64 = 4096;
/// Buckets with room for more fingerprints than this (2 MiB) are freed after their collection.
const SPREAD_KEEP: usize = 1 << 17;

impl Default for DupSet {
    fn default() -> Self {
        DupSet {
            seed: std::collections::hash_map::RandomState::new().hash_one(0u8),
            seen: HashSet::default(),
            spreading: false,
            spread: Vec::new(),
            shift: 0,
            table: Vec::new(),
            at_once: false,
        }
    }
}

impl DupSet {
    #[inline]
    fn fingerprint(&self, bytes: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(bytes, self.seed)
    }

    /// True when `e` was not seen before in this collection, as far as is known yet: the
    /// members of a spread collection are looked through by [`Self::spread_repeats`].
    #[inline]
    pub(super) fn insert(&mut self, e: Elem<'_>) -> bool {
        let fp = e.with_bytes(|b| self.fingerprint(b));
        if !self.spreading {
            return self.seen.insert(fp);
        }
        let hi = (fp >> 64) as u64;
        self.spread[(hi >> self.shift) as usize].push((hi, fp as u64));
        true
    }

    /// Room for `n` members claimed by the file, bounded by what `left` bytes can hold (a
    /// member takes at least one byte), so a big collection does not grow the set step by step.
    /// Whether the members are spread depends on the claim alone, so that a mapped file and a
    /// stream (whose remaining bytes are unknown) show a visitor the same members before a
    /// repeat is reported.
    pub(super) fn expect(&mut self, n: u64, left: Option<u64>) {
        let room = n.min(left.unwrap_or(0)).min(DUPSET_EXPECT_MAX);
        if n <= SPREAD_MIN || self.at_once {
            self.seen.reserve(room as usize);
            return;
        }
        // 16 to 4096 buckets; room only for the members the bytes left can hold.
        let bits = (n / SPREAD_MIN)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(4, 12);
        self.shift = 64 - bits;
        self.spreading = true;
        // Fingerprints are uniform: a bucket gets its share, give or take a few standard
        // deviations.
        let each = (room >> bits) as usize;
        let each = each + each / 8 + 16;
        self.spread.resize_with(1 << bits, Vec::new);
        self.spread.iter_mut().for_each(|b| b.reserve(each));
    }

    /// Whether the spread collection just read held a member twice.
    pub(super) fn spread_repeats(&mut self) -> bool {
        let mut found = false;
        if !self.spreading {
            return found;
        }
        for bucket in &self.spread {
            let fp = |i| bucket[i];
            repeats_in(bucket.len(), fp, &mut self.table, |_, _| found = true);
            if found {
                break;
            }
        }
        found
    }

    pub(super) fn reset(&mut self) {
        if self.spreading {
            self.spreading = false;
            if self.spread.iter().map(Vec::capacity).sum::<usize>() > SPREAD_KEEP {
                self.spread = Vec::new();
                self.table = Vec::new();
            } else {
                self.spread.iter_mut().for_each(Vec::clear);
            }
        }
        if self.seen.capacity() > DUPSET_KEEP {
            self.seen = HashSet::default();
        } else {
            self.seen.clear();
        }
    }
}

/// Calls `found(first, repeat)` with the indices of every entry of a bucket of `len` entries
/// whose 128-bit fingerprint (as `fp` gives it for an index) an earlier entry has, and of that
/// earlier entry. It uses an open-addressing table of entry indices, at most half full, kept in
/// `table` for the next bucket: a bucket of a few thousand entries and its table fit in a
/// core's cache, where sorting the bucket costs twice the time, and one hash set of all the
/// entries misses the cache on most inserts.
pub fn repeats_in(
    len: usize,
    fp: impl Fn(usize) -> (u64, u64),
    table: &mut Vec<u32>,
    mut found: impl FnMut(usize, usize),
) {
    const EMPTY: u32 = u32::MAX;
    // (A bucket of 2^32 entries would take 32 GiB.)
    let mask = (len * 2).next_power_of_two().max(16) - 1;
    table.clear();
    table.resize(mask + 1, EMPTY);
    for i in 0..len {
        let key = fp(i);
        let mut slot = (key.0 ^ key.1) as usize & mask;
        loop {
            let t = table[slot];
            if t == EMPTY {
                table[slot] = i as u32;
                break;
            }
            if fp(t as usize) == key {
                found(t as usize, i);
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
}
