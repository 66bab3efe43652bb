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
use super::stream::Walked;

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

/// A part's walk (see [`super::stream::commands_in`]) and what it gathered.
pub type Part<T> = std::io::Result<(Walked, T)>;

/// Walks `epoch`'s commands in parts on `threads` threads: `work` walks the segments of a
/// part, `take` is given what each part gathered, in order, as long as one walk over them
/// all would have gone on (false: it cannot be merged, the result is then None).
pub fn walk<T: Send>(
    epoch: &Epoch,
    threads: usize,
    work: &(dyn Fn(Range<usize>) -> Part<T> + Sync),
    take: &mut dyn FnMut(T) -> bool,
) -> std::io::Result<Option<Walked>> {
    let mut walked: Option<Walked> = None;
    for done in run(plan(epoch, threads * 4), threads, work) {
        if walked.as_ref().is_some_and(Walked::stopped) {
            break;
        }
        let (w, part) = done?;
        match &mut walked {
            None => walked = Some(w),
            Some(all) => {
                if !all.join(epoch, w) {
                    break;
                }
            }
        }
        if !take(part) {
            return Ok(None);
        }
    }
    Ok(walked)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::check;
    use crate::backlog::report::{Options, inspect_on};
    use crate::backlog::store::writer::{EpochStart, Writer};
    use crate::backlog::store::{Capture, Start};
    use crate::resp::text as resp;

    /// Records of a stream: transactions across records (and segments), two databases,
    /// several seconds (one arrival set back), many commands of one size, a few larger.
    fn records() -> Vec<(u64, Vec<Vec<String>>)> {
        let mut out = Vec::new();
        // The last records: a transaction left open, its commands over several segments.
        for i in 0..136u64 {
            let t = 10_000_000 + i * 97_000 - u64::from(i == 50) * 2_000_000;
            let key = format!("p{}:k{i}", i % 7);
            let mut cmds = vec![vec!["SET".to_string(), key.clone(), "v".into()]];
            match i % 10 {
                _ if i > 120 => {}
                0 => cmds.push(vec!["MULTI".into()]),
                1 => cmds.push(vec!["EXEC".into()]),
                3 => cmds.push(vec!["SELECT".into(), (i % 3).to_string()]),
                5 => cmds.push(vec!["PING".into()]),
                7 => cmds.push(vec![
                    "HSET".into(),
                    key,
                    "f".into(),
                    "x".repeat(i as usize % 4),
                ]),
                _ => {}
            }
            out.push((t, cmds));
        }
        out
    }

    /// A capture of [`records`] in segments of a few records each.
    fn capture(dir: &std::path::Path) -> Capture {
        let mut w = Writer::create(dir, "redis://h:1", 300).unwrap();
        w.start_epoch(EpochStart {
            start_kind: Start::Backlog,
            replid: "a".repeat(40),
            psync_offset: 100,
            server: None,
            backlog_size: None,
            replid2: None,
        })
        .unwrap();
        for (t, cmds) in records() {
            let payload: String = cmds
                .iter()
                .map(|c| resp(&c.iter().map(String::as_str).collect::<Vec<_>>()))
                .collect();
            let after = w.at_end().after(payload.as_bytes());
            w.append(payload.as_bytes(), after, t).unwrap();
        }
        w.seal().unwrap();
        Capture::open(dir).unwrap()
    }

    #[test]
    fn a_walk_in_parts_gives_the_one_pass_report_and_check() {
        let dir = tempfile::tempdir().unwrap();
        let capture = capture(dir.path());
        let epoch = &capture.epochs[0];
        assert!(
            epoch.segments.len() >= 10,
            "{} segments",
            epoch.segments.len()
        );
        for top in [0, 3, 50] {
            let opts = Options {
                top,
                delimiter: b':',
                depth: 2,
            };
            let json = |threads| {
                serde_json::to_string(&inspect_on(&capture, &opts, threads).unwrap()).unwrap()
            };
            let one = json(1);
            for threads in [2, 3, 16] {
                assert_eq!(json(threads), one, "top {top}, {threads} threads");
            }
        }
        let summary = |threads| {
            let (w, n) = check::walk(epoch, threads).unwrap();
            let r = &w.reach;
            (
                r.end,
                r.records,
                r.bytes,
                r.fault.is_some(),
                w.open_multi,
                n,
            )
        };
        let one = summary(1);
        assert_eq!(
            one.5,
            records().iter().map(|r| r.1.len() as u64).sum::<u64>()
        );
        assert!(one.4.is_some());
        assert_eq!((summary(2), summary(5)), (one, one));
    }

    fn largest(offset: u64, bytes: u64) -> Largest {
        Largest {
            bytes,
            offset,
            epoch: 1,
            command: "SET".into(),
            key: None,
        }
    }

    /// One min-heap over `sizes` in order, as the one pass keeps it.
    fn one_pass(n: usize, sizes: &[u64]) -> Top {
        let mut top = Top::new(n);
        for (i, &b) in sizes.iter().enumerate() {
            if top.admits(b) {
                top.push(largest(i as u64, b));
            }
        }
        top
    }

    #[test]
    fn the_largest_merged_from_parts_are_the_one_pass_ones() {
        // Sizes from a small generator: many ties, as small writes have.
        let mut x = 7u64;
        for _ in 0..200 {
            let sizes: Vec<u64> = (0..12)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1 + (x >> 61) % 4
                })
                .collect();
            for n in 1..=4 {
                let want = one_pass(n, &sizes).rows();
                for (a, b) in (0..=12).flat_map(|a| (a..=12).map(move |b| (a, b))) {
                    let mut top = Top::new(n);
                    for (from, to) in [(0, a), (a, b), (b, 12)] {
                        let mut part = Top::new(n);
                        for (i, &size) in sizes.iter().enumerate().take(to).skip(from) {
                            if part.admits(size) {
                                part.push(largest(i as u64, size));
                            }
                        }
                        top.merge(part);
                    }
                    assert_eq!(top.rows(), want, "{sizes:?} n {n} parts at {a}, {b}");
                }
            }
        }
    }
}
