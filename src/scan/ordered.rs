//! Working on values on several cores while keeping file order: the thread that walks the
//! records hands the values (found by framing, see [`crate::rdb::framing`]) to worker threads in
//! batches and consumes the results in the order the values appear. When the workers fall
//! behind (their queue is full), the walking thread does the batch itself.

use std::collections::BTreeMap;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// Batches cover about this many bytes of the input; at most `QUEUE` wait for a worker.
const BATCH_BYTES: u64 = 1 << 20;
const QUEUE: usize = 8;

/// At most this many workers: beyond two or three, the walking thread's own share of the work
/// is the bound, and more would only hold more batches (see [`TRAILING_BYTES`]).
const MAX_WORKERS: usize = 3;

/// Bytes a worker may still have to read behind the walking thread's position: keep them
/// mapped. While the queue is full the walking thread does batches itself, so it runs ahead by
/// up to twice the queue, plus the batches in every thread's hands (room for eight).
pub const TRAILING_BYTES: u64 = BATCH_BYTES * (2 * QUEUE as u64 + IN_HANDS as u64);
const IN_HANDS: usize = 8;
// The workers and the walking thread.
const _: () = assert!(MAX_WORKERS < IN_HANDS);

/// Given to the walking code: push each job; batches of jobs reach the consumer, with the
/// result of working on each batch, in push order.
pub struct Batches<'w, I, R, W: ?Sized> {
    work: &'w W,
    tx: Option<Sender<(u64, Vec<I>)>>,
    rx: Receiver<(u64, Vec<I>, R)>,
    batch: Vec<I>,
    bytes: u64,
    next_seq: u64,
    next_emit: u64,
    done: BTreeMap<u64, (Vec<I>, R)>,
}

/// Proof that the walk called [`Batches::finish`]: every result was consumed.
pub struct Finished(());

impl<I, R, W: Fn(&[I]) -> R + ?Sized> Batches<'_, I, R, W> {
    /// Queues a job; `bytes` is how far the walk has gone since the previous job (at least the
    /// job's value, and whatever the walk read itself in between), which bounds how far the
    /// workers may lag behind (see [`TRAILING_BYTES`]). Batches done by then are consumed.
    pub fn push(&mut self, job: I, bytes: u64, consume: &mut impl FnMut(Vec<I>, R)) {
        self.bytes += bytes;
        self.batch.push(job);
        if self.bytes >= BATCH_BYTES {
            self.flush(consume);
        }
    }

    /// Sends the last batch and consumes every result.
    pub fn finish(&mut self, consume: &mut impl FnMut(Vec<I>, R)) -> Finished {
        self.flush(consume);
        self.tx = None;
        self.emit(true, consume);
        Finished(())
    }

    fn flush(&mut self, consume: &mut impl FnMut(Vec<I>, R)) {
        self.bytes = 0;
        if self.batch.is_empty() {
            return;
        }
        // The next batch is made room for as the last one needed.
        let next = Vec::with_capacity(self.batch.len());
        let batch = std::mem::replace(&mut self.batch, next);
        let seq = self.next_seq;
        self.next_seq += 1;
        let unsent = match &self.tx {
            Some(tx) => match tx.try_send((seq, batch)) {
                Ok(()) => None,
                Err(TrySendError::Full((_, b)) | TrySendError::Disconnected((_, b))) => Some(b),
            },
            None => Some(batch),
        };
        if let Some(batch) = unsent {
            let r = (self.work)(&batch);
            self.done.insert(seq, (batch, r));
        }
        self.emit(false, consume);
    }

    /// Consumes the results that are in, in order; with `wait`, all of them.
    fn emit(&mut self, wait: bool, consume: &mut impl FnMut(Vec<I>, R)) {
        while self.next_emit < self.next_seq {
            if let Some((batch, r)) = self.done.remove(&self.next_emit) {
                self.next_emit += 1;
                consume(batch, r);
                continue;
            }
            let got = if wait {
                self.rx.recv().ok()
            } else {
                self.rx.try_recv().ok()
            };
            match got {
                Some((seq, batch, r)) => {
                    self.done.insert(seq, (batch, r));
                }
                // Not in yet; or (waiting) the workers are gone, and the scope will report
                // a panic.
                None => return,
            }
        }
    }
}

/// Workers for one walk when `walks` run at once: the cores left beside the walking threads
/// (at least one), up to three.
pub fn workers_for(walks: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / walks.max(1))
        .saturating_sub(1)
        .clamp(1, MAX_WORKERS)
}

/// Runs `walk`, which pushes jobs and ends with [`Batches::finish`], with `workers` worker
/// threads (at most three; see [`workers_for`]). `work` computes a batch's result, on a worker
/// or on the walking thread when the workers' queue is full.
pub fn run<I: Send, R: Send, W: Fn(&[I]) -> R + Sync + ?Sized>(
    workers: usize,
    work: &W,
    walk: impl FnOnce(&mut Batches<'_, I, R, W>) -> Finished,
) {
    let workers = workers.clamp(1, MAX_WORKERS);
    let (tx, jobs) = bounded::<(u64, Vec<I>)>(QUEUE);
    let (results_tx, rx) = bounded::<(u64, Vec<I>, R)>(QUEUE + 1 + workers);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (jobs, results_tx) = (jobs.clone(), results_tx.clone());
            s.spawn(move || {
                for (seq, batch) in jobs {
                    let r = work(&batch);
                    if results_tx.send((seq, batch, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((jobs, results_tx));
        let mut ordered = Batches {
            work,
            tx: Some(tx),
            rx,
            batch: Vec::new(),
            bytes: 0,
            next_seq: 0,
            next_emit: 0,
            done: BTreeMap::new(),
        };
        walk(&mut ordered);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_push_order() {
        for workers in 1..=MAX_WORKERS {
            let mut seen = Vec::new();
            // Uneven work, so that batches finish out of order when there are several workers.
            let double = |n: &u64| {
                if n % 7_000 < 50 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                n * 2
            };
            let work = |batch: &[u64]| batch.iter().map(double).collect::<Vec<_>>();
            let mut consume = |batch: Vec<u64>, r: Vec<u64>| seen.extend(batch.into_iter().zip(r));
            run(workers, &work, |o| {
                for n in 0..100_000u64 {
                    o.push(n, 300, &mut consume);
                }
                o.finish(&mut consume)
            });
            assert_eq!(seen.len(), 100_000, "{workers} workers");
            assert!(
                seen.iter()
                    .enumerate()
                    .all(|(i, &(n, r))| n == i as u64 && r == 2 * n),
                "{workers} workers"
            );
        }
    }
}
