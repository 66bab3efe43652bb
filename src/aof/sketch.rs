//! The heaviest keys of a stream in bounded memory: Space-Saving (Metwally, Agrawal, El Abbadi
//! 2005) with `k` counters. A key already counted adds its weight; a new key takes the counter
//! of the smallest, starting from that count. So each count is over the true one by at most
//! its `over` (the count it inherited), itself at most total / k; while no more than `k`
//! distinct keys were seen, every count is exact.

use std::collections::HashMap;

use xxhash_rust::xxh3::{Xxh3Builder, xxh3_64};

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
    /// Counter indexes, a min-heap by count; `at[i]` is where counter `i` is in it.
    heap: Vec<u32>,
    at: Vec<u32>,
    by_hash: HashMap<u64, u32, Xxh3Builder>,
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
            by_hash: HashMap::with_capacity_and_hasher(k.min(1 << 16), Xxh3Builder::new()),
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

    /// Counts `weight` for the key `key` of database `db`.
    pub fn add(&mut self, db: u64, key: &[u8], weight: u64) {
        self.total += weight;
        let hash = xxh3_64(key) ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if let Some(&i) = self.by_hash.get(&hash) {
            let c = &mut self.counters[i as usize];
            // Another key with the same 64-bit hash (never seen in practice): left uncounted.
            if c.db == db && c.key == key {
                c.count += weight;
                self.sift_down(self.at[i as usize] as usize);
            }
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
            self.heap.push(i);
            self.by_hash.insert(hash, i);
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Take over the smallest counter, reusing its key's buffer.
        let i = self.heap[0];
        let c = &mut self.counters[i as usize];
        self.by_hash.remove(&c.hash);
        c.db = db;
        c.key.clear();
        c.key.extend_from_slice(key);
        c.hash = hash;
        c.over = c.count;
        c.count += weight;
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

    fn count(&self, heap_pos: usize) -> u64 {
        self.counters[self.heap[heap_pos] as usize].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.at[self.heap[a] as usize] = a as u32;
        self.at[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.count(parent) <= self.count(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < len && self.count(l) < self.count(least) {
                least = l;
            }
            if r < len && self.count(r) < self.count(least) {
                least = r;
            }
            if least == pos {
                return;
            }
            self.swap(pos, least);
            pos = least;
        }
    }
}

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
