//! The heaviest keys of a stream in bounded memory: Space-Saving (Metwally, Agrawal, El Abbadi
//! 2005) with `k` counters. A key already counted adds its weight; a new key takes the counter
//! of the smallest, starting from that count. So each count is over the true one by at most
//! its `over` (the count it inherited), itself at most total / k; while no more than `k`
//! distinct keys were seen, every count is exact.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_64;

/// Hashes a key that is already a hash (a u64) as itself.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A key's counter: its name (database and key), count and how much of it may be another
/// key's.
#[derive(Debug, Clone)]
struct Counter {
    db: u64,
    key: Vec<u8>,
    hash: u64,
    count: u64,
    over: u64,
}

/// A counted key, as [`SpaceSaving::top`] gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heavy {
    pub db: u64,
    pub key: Vec<u8>,
    pub count: u64,
    /// The count is at most this much above the true count.
    pub over: u64,
}

/// Space-Saving with `k` counters in a min-heap (by count), found by the hash of (db, key).
pub struct SpaceSaving {
    k: usize,
    counters: Vec<Counter>,
    /// (count, counter index), a min-heap by count (the count kept here too, so that the
    /// heap is walked without reaching into the counters); `at[i]` is where counter `i` is.
    heap: Vec<(u64, u32)>,
    at: Vec<u32>,
    by_hash: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    total: u64,
}

impl SpaceSaving {
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        SpaceSaving {
            k,
            counters: Vec::new(),
            heap: Vec::new(),
            at: Vec::new(),
            by_hash: HashMap::with_capacity_and_hasher(k.min(1 << 16), Default::default()),
            total: 0,
        }
    }

    /// The number of counters.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The sum of all weights added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Most any count may be over the true one: total / k (0 while every key has its own
    /// counter).
    pub fn bound(&self) -> u64 {
        if self.counters.len() < self.k {
            0
        } else {
            self.total / self.k as u64
        }
    }

    /// The hash [`SpaceSaving::add_hashed`] takes: compute it once for several sketches.
    pub fn hash(db: u64, key: &[u8]) -> u64 {
        xxh3_64(key) ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Counts `weight` for the key `key` of database `db`.
    pub fn add(&mut self, db: u64, key: &[u8], weight: u64) {
        self.add_hashed(Self::hash(db, key), db, key, weight);
    }

    /// [`SpaceSaving::add`] with the key's [`SpaceSaving::hash`].
    pub fn add_hashed(&mut self, hash: u64, db: u64, key: &[u8], weight: u64) {
        self.total += weight;
        if let Some(&i) = self.by_hash.get(&hash) {
            // Keys are told apart by their 64-bit hash: two that share one (about one chance
            // in 10^9 over a billion lookups) would share a counter.
            let c = &mut self.counters[i as usize];
            c.count += weight;
            let at = self.at[i as usize] as usize;
            self.heap[at].0 = c.count;
            self.sift_down(at);
            return;
        }
        if self.counters.len() < self.k {
            let i = self.counters.len() as u32;
            self.counters.push(Counter {
                db,
                key: key.to_vec(),
                hash,
                count: weight,
                over: 0,
            });
            self.at.push(self.heap.len() as u32);
            self.heap.push((weight, i));
            self.by_hash.insert(hash, i);
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Take over the smallest counter, reusing its key's buffer.
        let i = self.heap[0].1;
        let c = &mut self.counters[i as usize];
        self.by_hash.remove(&c.hash);
        c.db = db;
        c.key.clear();
        c.key.extend_from_slice(key);
        c.hash = hash;
        c.over = c.count;
        c.count += weight;
        self.heap[0].0 = c.count;
        self.by_hash.insert(hash, i);
        self.sift_down(0);
    }

    /// The `n` largest counts, largest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<Heavy> {
        let mut all: Vec<&Counter> = self.counters.iter().collect();
        all.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.db.cmp(&b.db))
                .then(a.key.cmp(&b.key))
        });
        all.into_iter()
            .take(n)
            .map(|c| Heavy {
                db: c.db,
                key: c.key.clone(),
                count: c.count,
                over: c.over,
            })
            .collect()
    }

    /// Moves the entry at `pos` up while it is smaller than its parent.
    fn sift_up(&mut self, mut pos: usize) {
        let item = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            if self.heap[parent].0 <= item.0 {
                break;
            }
            self.place(pos, self.heap[parent]);
            pos = parent;
        }
        self.place(pos, item);
    }

    /// Moves the entry at `pos` down while a child is smaller.
    fn sift_down(&mut self, mut pos: usize) {
        let item = self.heap[pos];
        let len = self.heap.len();
        loop {
            let first = pos * ARITY + 1;
            if first >= len {
                break;
            }
            let mut least = first;
            for c in first + 1..(first + ARITY).min(len) {
                if self.heap[c].0 < self.heap[least].0 {
                    least = c;
                }
            }
            if self.heap[least].0 >= item.0 {
                break;
            }
            self.place(pos, self.heap[least]);
            pos = least;
        }
        self.place(pos, item);
    }

    fn place(&mut self, pos: usize, item: (u64, u32)) {
        self.heap[pos] = item;
        self.at[item.1 as usize] = pos as u32;
    }
}

/// Children per heap node: four entries of 16 bytes share a cache line, and the heap is half
/// as deep as a binary one.
const ARITY: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A skewed stream: key i appears about 1/(i+1) as often as key 0 (a Zipf-like mix).
    fn stream(keys: usize, len: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(len);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 1_000_000) as f64 / 1_000_000.0;
            out.push(((keys as f64).powf(u) - 1.0) as usize);
        }
        out
    }

    fn exact(s: &[usize], weight: impl Fn(usize) -> u64) -> BTreeMap<usize, u64> {
        let mut m = BTreeMap::new();
        for &k in s {
            *m.entry(k).or_default() += weight(k);
        }
        m
    }

    #[test]
    fn exact_while_the_keys_fit() {
        let s = stream(50, 10_000);
        let mut sketch = SpaceSaving::new(64);
        for &k in &s {
            sketch.add(k as u64 % 3, format!("k{k}").as_bytes(), 1);
        }
        let truth = exact(&s, |_| 1);
        assert_eq!(sketch.bound(), 0);
        let top = sketch.top(usize::MAX);
        assert_eq!(top.len(), truth.len());
        for h in top {
            let k: usize = std::str::from_utf8(&h.key[1..]).unwrap().parse().unwrap();
            assert_eq!((h.count, h.over, h.db), (truth[&k], 0, k as u64 % 3));
        }
    }

    #[test]
    fn within_the_stated_bound_otherwise() {
        let s = stream(5_000, 200_000);
        let weight = |k: usize| 1 + (k % 7) as u64 * 10;
        let mut sketch = SpaceSaving::new(100);
        for &k in &s {
            sketch.add(0, &k.to_le_bytes(), weight(k));
        }
        let truth = exact(&s, weight);
        let total: u64 = truth.values().sum();
        assert_eq!(sketch.total(), total);
        assert_eq!(sketch.bound(), total / 100);
        let top = sketch.top(20);
        for h in &top {
            let k = usize::from_le_bytes(h.key.as_slice().try_into().unwrap());
            let t = truth[&k];
            assert!(h.count >= t && h.count - t <= h.over, "{k}: {h:?} vs {t}");
            assert!(h.over <= sketch.bound());
        }
        // Every key heavier than the bound is in the sketch.
        let listed = sketch.top(usize::MAX);
        for (k, &t) in &truth {
            if t > sketch.bound() {
                assert!(listed.iter().any(|h| h.key == k.to_le_bytes()), "{k}: {t}");
            }
        }
    }
}
