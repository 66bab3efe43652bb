//! The heaviest keys of a stream in bounded memory: the frequent-items sketch of Misra and
//! Gries with batched purges (as in Apache DataSketches), `k` counters kept, up to `2k` held
//! between purges. A key already counted adds its weight; a new key takes a free counter;
//! when none is free, a purge cuts every count by the (k+1)-th largest and drops those left
//! at zero. Each cut removes at least k+1 times its size from the counts, so the cuts sum to
//! at most total / (k+1): a count plus that sum is over the true one by at most that sum, and
//! every key heavier than it is kept. While no more than `2k` distinct keys were seen, every
//! count is exact. O(1) per key, amortized, in one flat table.

use xxhash_rust::xxh3::xxh3_64;

/// A key's counter: the hash of (database, key) it is found by, its count since it was last
/// taken in (less the cuts since), and what the caller names it by.
#[derive(Debug, Clone)]
struct Counter<T> {
    hash: u64,
    count: u64,
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

/// The sketch: counters in an open-addressed table (linear probing) of twice the most it
/// holds, found by a 64-bit hash of (db, key) (keys that share one, about one chance in
/// 10^9 over a billion lookups, would share a counter).
pub struct Frequent<T> {
    k: usize,
    slots: Vec<Option<Counter<T>>>,
    len: usize,
    /// The sum of the purges' cuts.
    cut: u64,
    total: u64,
    scratch: Vec<u64>,
    /// The table's other buffer, for purges.
    spare: Vec<Option<Counter<T>>>,
}

impl<T: Clone> Frequent<T> {
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        Frequent {
            k,
            slots: vec![None; (3 * k).next_power_of_two()],
            len: 0,
            cut: 0,
            total: 0,
            scratch: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The number of counters kept.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The sum of all weights added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Most any count may be over the true one: the sum of the cuts, at most total / (k+1)
    /// (0 while every key has its own counter).
    pub fn bound(&self) -> u64 {
        self.cut
    }

    /// The hash [`Frequent::add`] takes: compute it once for several sketches.
    pub fn hash(db: u64, key: &[u8]) -> u64 {
        xxh3_64(key) ^ db.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Counts `weight` for the key of hash `hash` (see [`Frequent::hash`]), named `item`
    /// (made only when the key is taken in).
    pub fn add(&mut self, hash: u64, weight: u64, item: impl FnOnce() -> T) {
        self.total += weight;
        let at = self.find(hash);
        if let Some(c) = &mut self.slots[at] {
            c.count += weight;
            return;
        }
        if self.len < 2 * self.k {
            self.slots[at] = Some(Counter {
                hash,
                count: weight,
                item: item(),
            });
            self.len += 1;
            return;
        }
        self.purge();
        let at = self.find(hash);
        self.slots[at] = Some(Counter {
            hash,
            count: weight,
            item: item(),
        });
        self.len += 1;
    }

    /// The slot of `hash`, or the empty one it would go in.
    fn find(&self, hash: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = (hash as usize) & mask;
        loop {
            match &self.slots[at] {
                Some(c) if c.hash != hash => at = (at + 1) & mask,
                _ => return at,
            }
        }
    }

    /// Cuts every count by the (k+1)-th largest and drops the counters left at zero: at most
    /// `k` remain.
    fn purge(&mut self) {
        self.scratch.clear();
        self.scratch
            .extend(self.slots.iter().flatten().map(|c| c.count));
        let n = self.scratch.len();
        let (_, &mut cut, _) = self.scratch.select_nth_unstable(n - self.k - 1);
        self.cut += cut;
        let mut old = std::mem::take(&mut self.spare);
        old.resize(self.slots.len(), None);
        std::mem::swap(&mut self.slots, &mut old);
        self.len = 0;
        for mut c in old.drain(..).flatten() {
            if c.count > cut {
                c.count -= cut;
                let at = self.find(c.hash);
                self.slots[at] = Some(c);
                self.len += 1;
            }
        }
        self.spare = old;
    }

    /// The `n` largest counts, largest first (ties by `order`), each raised by the cuts so
    /// that it is never under the true count.
    pub fn top(&self, n: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<Heavy<T>> {
        let mut all: Vec<&Counter<T>> = self.slots.iter().flatten().collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| order(&a.item, &b.item)));
        all.into_iter()
            .take(n)
            .map(|c| Heavy {
                item: c.item.clone(),
                count: c.count + self.cut,
                over: self.cut,
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

    type Sketch = Frequent<(u64, Vec<u8>)>;

    fn add(sketch: &mut Sketch, db: u64, key: &[u8], weight: u64) {
        sketch.add(Sketch::hash(db, key), weight, || (db, key.to_vec()));
    }

    fn top(sketch: &Sketch, n: usize) -> Vec<Heavy<(u64, Vec<u8>)>> {
        sketch.top(n, |a, b| a.cmp(b))
    }

    #[test]
    fn exact_while_the_keys_fit() {
        let s = stream(50, 10_000);
        let mut sketch = Sketch::new(25);
        for &k in &s {
            add(&mut sketch, k as u64 % 3, format!("k{k}").as_bytes(), 1);
        }
        let truth = exact(&s, |_| 1);
        assert_eq!(sketch.bound(), 0);
        let top = top(&sketch, usize::MAX);
        assert_eq!(top.len(), truth.len());
        for h in top {
            let (db, key) = h.item;
            let k: usize = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
            assert_eq!((h.count, h.over, db), (truth[&k], 0, k as u64 % 3));
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
        let truth = exact(&s, weight);
        let total: u64 = truth.values().sum();
        assert_eq!(sketch.total(), total);
        assert!(sketch.bound() > 0 && sketch.bound() <= total / 101);
        let key = |h: &Heavy<(u64, Vec<u8>)>| {
            usize::from_le_bytes(h.item.1.as_slice().try_into().unwrap())
        };
        for h in &top(&sketch, 20) {
            let t = truth[&key(h)];
            assert!(h.count >= t && h.count - t <= h.over, "{h:?} vs {t}");
            assert!(h.over <= sketch.bound());
        }
        // Every key heavier than the bound is in the sketch.
        let listed = top(&sketch, usize::MAX);
        for (k, &t) in &truth {
            if t > sketch.bound() {
                assert!(listed.iter().any(|h| key(h) == *k), "{k}: {t}");
            }
        }
    }
}
