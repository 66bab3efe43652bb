//! Reading an epoch's stream on several threads: its segments cut into parts (each read on
//! its own from its first record's header: offset, database, MULTI state), each part
//! gathering its own tallies, merged in offset order so that the result is the one pass's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::report::Largest;
use super::store::Epoch;

/// The threads to read on: the machine's cores.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Cuts `epoch`'s segments into at most `parts` runs of about equal bytes, in order.
pub fn plan(epoch: &Epoch, parts: usize) -> Vec<Range<usize>> {
    let sizes: Vec<u64> = epoch
        .segments
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(1, |m| m.len().max(1)))
        .collect();
    let total: u64 = sizes.iter().sum();
    let parts = parts.clamp(1, sizes.len().max(1)) as u64;
    let mut ranges = Vec::new();
    let (mut start, mut sum) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        sum += size;
        // The part ends once it holds its share of the bytes.
        if sum * parts >= total * (ranges.len() as u64 + 1) {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < sizes.len() || ranges.is_empty() {
        ranges.push(start..sizes.len());
    }
    ranges
}

/// `work` on each of `parts` on up to `threads` threads; the results in the parts' order.
pub fn run<T: Send>(
    parts: Vec<Range<usize>>,
    threads: usize,
    work: &(dyn Fn(Range<usize>) -> T + Sync),
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<T>>> = Mutex::new(parts.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, parts.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = parts.get(i) else { break };
                    let out = work(range.clone());
                    done.lock().expect("a part's thread panicked")[i] = Some(out);
                }
            });
        }
    });
    let done = done.into_inner().expect("a part's thread panicked");
    done.into_iter()
        .map(|d| d.expect("every part run"))
        .collect()
}

/// The largest commands: the `n` largest (of equal sizes, those a min-heap keeps: the first
/// come while there was room, the later ones pushed out first by the offset order).
///
/// A part keeps, besides its heap, the heap as it was when its smallest size last grew: the
/// first `n` commands of at least that size. Those and its heap are every command of the
/// part that a one-pass heap could keep, so that feeding them in order into the heap of
/// what came before gives what one pass over both would.
#[derive(Debug, Default)]
pub struct Top {
    n: usize,
    heap: BinaryHeap<Reverse<Largest>>,
    firsts: Vec<Largest>,
}

impl Top {
    pub fn new(n: usize) -> Self {
        Top {
            n,
            ..Top::default()
        }
    }

    /// Whether a command of `bytes` gets in.
    pub fn admits(&self, bytes: u64) -> bool {
        self.n > 0
            && (self.heap.len() < self.n
                || self.heap.peek().is_some_and(|Reverse(m)| m.bytes < bytes))
    }

    /// Takes `l` in (when [`Top::admits`] its size).
    pub fn push(&mut self, l: Largest) {
        let before = self.min();
        if self.heap.len() == self.n {
            self.heap.pop();
        }
        self.heap.push(Reverse(l));
        if self.heap.len() == self.n && self.min() != before {
            self.firsts = self.heap.iter().map(|Reverse(l)| l.clone()).collect();
        }
    }

    /// The smallest size kept once full.
    fn min(&self) -> Option<u64> {
        let full = self.heap.len() == self.n;
        full.then(|| self.heap.peek().map(|Reverse(m)| m.bytes))
            .flatten()
    }

    /// Takes in the commands of a part read after the ones taken so far.
    pub fn merge(&mut self, part: Top) {
        let mut kept: Vec<Largest> = part.heap.into_iter().map(|Reverse(l)| l).collect();
        kept.extend(part.firsts);
        kept.sort_by_key(|l| (l.epoch, l.offset));
        kept.dedup_by_key(|l| (l.epoch, l.offset));
        for l in kept {
            if self.admits(l.bytes) {
                self.push(l);
            }
        }
    }

    /// Largest first (then by epoch and offset).
    pub fn rows(self) -> Vec<Largest> {
        let mut rows: Vec<Largest> = self.heap.into_iter().map(|Reverse(l)| l).collect();
        rows.sort_by_key(|l| (Reverse(l.bytes), l.epoch, l.offset));
        rows
    }
}
