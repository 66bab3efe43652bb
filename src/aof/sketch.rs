//! The heaviest keys of a stream in bounded memory, by `N` weights at once (writes and bytes):
//! the frequent-items sketch of Misra and Gries with batched purges (as in Apache
//! DataSketches), `k` counters kept per weight, up to `(N+1)k` keys held between purges. A key
//! already held adds its weights; a new key is taken in; when the table is full, a purge cuts
//! each weight's counts by that weight's (k+1)-th largest count and drops the keys left at zero
//! in every weight. Each cut removes at least k+1 times its size from its weight's counts, so a
//! weight's cuts sum to at most its total / (k+1): a count plus that sum is over the true one
//! by at most that sum, and every key heavier than it is held. While no more than `(N+1)k`
//! distinct keys were seen, every count is exact. One lookup per key for all the weights, O(1)
//! amortized, in a flat table.

use xxhash_rust::xxh3::xxh3_64;

/// A key held: the hash of (database, key) it is found by, its counts since it was last taken
/// in (less the cuts since), and what the caller names it by.
#[derive(Debug, Clone)]
struct Entry<T, const N: usize> {
    hash: u64,
    counts: [u64; N],
    item: T,
}

/// A counted key, as [`Frequent::top`] gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heavy<T> {
    pub item: T,
    pub count: u64,
    /// The count is at most this much above the true count.
    pub over: u64,
}

/// The sketch: the keys held, in the order taken in, found through an open-addressed index
/// (linear probing, at most half full) of the hash's top 32 bits and the entry's place. Keys
/// are told apart by their 64-bit hash: two that share one (about one chance in 10^9 over a
/// billion lookups) would share a counter.
pub struct Frequent<T, const N: usize> {
    k: usize,
    entries: Vec<Entry<T, N>>,
    index: Vec<u64>,
    /// The sums of the purges' cuts, and of the weights added.
    cut: [u64; N],
    total: [u64; N],
    scratch: Vec<u64>,
}

const TAG: u64 = !0xFFFF_FFFF;

impl<T: Clone, const N: usize> Frequent<T, N> {
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        Frequent {
            k,
            entries: Vec::with_capacity(Self::held(k)),
            index: vec![0; (2 * Self::held(k)).next_power_of_two()],
            cut: [0; N],
            total: [0; N],
            scratch: Vec::new(),
        }
    }

    /// The most keys held between purges.
    fn held(k: usize) -> usize {
        (N + 1) * k
    }

    /// The number of counters kept per weight.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The sum of weight `w` over all keys.
    pub fn total(&self, w: usize) -> u64 {
        self.total[w]
    }

    /// Most any count of weight `w` may be over the true one: the sum of its cuts, at most
    /// its total / (k+1) (0 while every key has its own counter).
    pub fn bound(&self, w: usize) -> u64 {
        self.cut[w]
    }

    /// The hash [`Frequent::add`] takes.
    pub fn hash(db: u64, key: &[u8]) -> u64 {
        xxh3_64(key) ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Fetches into cache where the key of hash `hash` is looked up, ahead of its
    /// [`Frequent::add`] (the index is larger than a core's cache: a lookup waits for memory).
    pub fn prefetch(&self, hash: u64) {
        let at = (hash as usize) & (self.index.len() - 1);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing (it only hints the cache), and `at` is within the
        // index.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(self.index.as_ptr().add(at).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// Counts `weights` for the key of hash `hash` (see [`Frequent::hash`]), named `item`
    /// (made only when the key is taken in).
    pub fn add(&mut self, hash: u64, weights: [u64; N], item: impl FnOnce() -> T) {
        for (t, w) in self.total.iter_mut().zip(weights) {
            *t += w;
        }
        self.count(hash, weights, item);
    }

    /// Adds `other`'s counts (a sketch of another part of the stream) as mergeable summaries
    /// do: a key held in both adds up its counts, and purges make room as in [`Frequent::add`].
    /// The cuts of both and of those purges add up, and each removes at least k+1 times its
    /// size from its weight's counts, so a weight's bound stays at most its total / (k+1); a
    /// count is over the true one (the sum of both parts') by at most it. While the keys of
    /// both fit in the table, no purge is made: the counts are exact. `rehash` gives an item's
    /// hash (and the item, changed if need be).
    pub fn merge(&mut self, other: Frequent<T, N>, rehash: impl Fn(T) -> (u64, T)) {
        for w in 0..N {
            self.total[w] += other.total[w];
            self.cut[w] += other.cut[w];
        }
        for e in other.entries {
            let (hash, item) = rehash(e.item);
            self.count(hash, e.counts, || item);
        }
    }

    /// Adds `weights` to the counts of the key of hash `hash`, taking it in if not held.
    fn count(&mut self, hash: u64, weights: [u64; N], item: impl FnOnce() -> T) {
        let mut at = self.find(hash);
        if let Some(i) = self.held_at(at) {
            for (c, w) in self.entries[i].counts.iter_mut().zip(weights) {
                *c += w;
            }
            return;
        }
        if self.entries.len() == Self::held(self.k) {
            self.purge();
            at = self.find(hash);
        }
        self.index[at] = (hash & TAG) | (self.entries.len() as u64 + 1);
        self.entries.push(Entry {
            hash,
            counts: weights,
            item: item(),
        });
    }

    /// The entry an index slot holds.
    fn held_at(&self, at: usize) -> Option<usize> {
        let slot = self.index[at];
        (slot != 0).then(|| (slot & !TAG) as usize - 1)
    }

    /// The index slot of `hash`, or the empty one it would go in.
    fn find(&self, hash: u64) -> usize {
        let mask = self.index.len() - 1;
        let mut at = (hash as usize) & mask;
        loop {
            let slot = self.index[at];
            if slot == 0
                || ((slot ^ hash) & TAG == 0
                    && self.entries[(slot & !TAG) as usize - 1].hash == hash)
            {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// Cuts each weight's counts by its (k+1)-th largest and drops the keys left at zero in
    /// every weight: at most `N k` remain.
    fn purge(&mut self) {
        let mut cut = [0; N];
        for (w, c) in cut.iter_mut().enumerate() {
            self.scratch.clear();
            self.scratch
                .extend(self.entries.iter().map(|e| e.counts[w]));
            let n = self.scratch.len();
            *c = *self.scratch.select_nth_unstable(n - self.k - 1).1;
        }
        self.entries.retain_mut(|e| {
            for (count, c) in e.counts.iter_mut().zip(cut) {
                *count = count.saturating_sub(c);
            }
            e.counts.iter().any(|&c| c > 0)
        });
        for (sum, c) in self.cut.iter_mut().zip(cut) {
            *sum += c;
        }
        self.index.fill(0);
        for i in 0..self.entries.len() {
            let hash = self.entries[i].hash;
            let at = self.find(hash);
            self.index[at] = (hash & TAG) | (i as u64 + 1);
        }
    }

    /// The `n` largest counts of weight `w`, largest first (ties by `order`), each raised by
    /// the cuts so that it is never under the true count.
    pub fn top(
        &self,
        w: usize,
        n: usize,
        order: impl Fn(&T, &T) -> std::cmp::Ordering,
    ) -> Vec<Heavy<T>> {
        let counted = |e: &&Entry<T, N>| e.counts[w] > 0 || self.cut[w] == 0;
        let mut all: Vec<&Entry<T, N>> = self.entries.iter().filter(counted).collect();
        all.sort_by(|a, b| {
            b.counts[w]
                .cmp(&a.counts[w])
                .then_with(|| order(&a.item, &b.item))
        });
        all.into_iter()
            .take(n)
            .map(|e| Heavy {
                item: e.item.clone(),
                count: e.counts[w] + self.cut[w],
                over: self.cut[w],
            })
            .collect()
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

    type Sketch = Frequent<(u64, Vec<u8>), 2>;

    fn add(sketch: &mut Sketch, db: u64, key: &[u8], weight: u64) {
        sketch.add(Sketch::hash(db, key), [1, weight], || (db, key.to_vec()));
    }

    fn top(sketch: &Sketch, w: usize, n: usize) -> Vec<Heavy<(u64, Vec<u8>)>> {
        sketch.top(w, n, |a, b| a.cmp(b))
    }

    #[test]
    fn exact_while_the_keys_fit() {
        let s = stream(50, 10_000);
        let mut sketch = Sketch::new(17);
        for &k in &s {
            add(&mut sketch, k as u64 % 3, format!("k{k}").as_bytes(), 2);
        }
        let truth = exact(&s, |_| 1);
        assert_eq!((sketch.bound(0), sketch.bound(1)), (0, 0));
        for w in 0..2 {
            let top = top(&sketch, w, usize::MAX);
            assert_eq!(top.len(), truth.len());
            for h in top {
                let (db, key) = h.item;
                let k: usize = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
                let want = truth[&k] * (w as u64 + 1);
                assert_eq!((h.count, h.over, db), (want, 0, k as u64 % 3));
            }
        }
    }

    #[test]
    fn within_the_stated_bound_otherwise() {
        let s = stream(5_000, 200_000);
        let weight = |k: usize| 1 + (k % 7) as u64 * 10;
        let mut sketch = Sketch::new(100);
        for &k in &s {
            add(&mut sketch, 0, &k.to_le_bytes(), weight(k));
        }
        let key = |h: &Heavy<(u64, Vec<u8>)>| {
            usize::from_le_bytes(h.item.1.as_slice().try_into().unwrap())
        };
        for (w, truth) in [exact(&s, |_| 1), exact(&s, weight)].iter().enumerate() {
            let total: u64 = truth.values().sum();
            let bound = sketch.bound(w);
            assert_eq!(sketch.total(w), total);
            assert!(bound > 0 && bound <= total / 101, "{bound} vs {total}");
            for h in &top(&sketch, w, 20) {
                let t = truth[&key(h)];
                assert!(h.count >= t && h.count - t <= h.over, "{h:?} vs {t}");
                assert_eq!(h.over, bound);
            }
            // Every key heavier than the bound is in the sketch.
            let listed = top(&sketch, w, usize::MAX);
            for (k, &t) in truth {
                if t > bound {
                    assert!(listed.iter().any(|h| key(h) == *k), "{k}: {t}");
                }
            }
        }
    }

    #[test]
    fn two_halves_merged() {
        let rehash = |item: (u64, Vec<u8>)| (Sketch::hash(item.0, &item.1), item);
        let weight = |k: usize| 1 + (k % 7) as u64 * 10;
        // One sketch of the stream, and two of its first third and the rest, merged.
        let halves = |s: &[usize], k: usize| {
            let [mut one, mut first, mut second] = [(); 3].map(|_| Sketch::new(k));
            for (i, &key) in s.iter().enumerate() {
                let half = if i < s.len() / 3 {
                    &mut first
                } else {
                    &mut second
                };
                add(half, 0, &key.to_le_bytes(), weight(key));
                add(&mut one, 0, &key.to_le_bytes(), weight(key));
            }
            first.merge(second, rehash);
            (one, first)
        };
        // While the keys fit: what one sketch counts.
        let (one, merged) = halves(&stream(50, 10_000), 17);
        for w in 0..2 {
            assert_eq!(top(&merged, w, usize::MAX), top(&one, w, usize::MAX));
            assert_eq!((merged.bound(w), merged.total(w)), (0, one.total(w)));
        }
        // Beyond: within the stated bound, every key heavier than it listed.
        let s = stream(5_000, 200_000);
        let (_, merged) = halves(&s, 100);
        let key = |h: &Heavy<(u64, Vec<u8>)>| {
            usize::from_le_bytes(h.item.1.as_slice().try_into().unwrap())
        };
        for (w, truth) in [exact(&s, |_| 1), exact(&s, weight)].iter().enumerate() {
            let total: u64 = truth.values().sum();
            let bound = merged.bound(w);
            assert_eq!(merged.total(w), total);
            assert!(bound > 0 && bound <= total / 101, "{bound} vs {total}");
            let listed = top(&merged, w, usize::MAX);
            for h in &listed {
                let t = truth[&key(h)];
                assert!(h.count >= t && h.count - t <= bound, "{h:?} vs {t}");
            }
            for (k, &t) in truth {
                if t > bound {
                    assert!(listed.iter().any(|h| key(h) == *k), "{k}: {t}");
                }
            }
        }
    }
}
