//! Working on values on two cores while keeping file order: the thread that walks the records
//! hands the values (found by framing, see [`super::framing`]) to a second thread in batches
//! and consumes the results in the order the values appear. When the second thread falls
//! behind (its queue is full), the walking thread does the batch itself.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Batches cover about this many bytes of the input; at most `QUEUE` wait for the second thread.
const BATCH_BYTES: u64 = 1 << 20;
const QUEUE: usize = 8;

/// Bytes the second thread may still have to read behind the walking thread's position: keep
/// them mapped. While the queue is full the walking thread does batches itself, so it runs
/// ahead by up to twice the queue, plus the batches in both threads' hands.
pub const TRAILING_BYTES: u64 = BATCH_BYTES * (2 * QUEUE as u64 + 8);

type Batch<I, R> = Vec<(I, R)>;

/// Given to the walking code: push each value; results reach the consumer in push order.
pub struct Ordered<'c, I, R> {
    work: &'c (dyn Fn(&I) -> R + Sync),
    consume: &'c mut dyn FnMut(I, R),
    tx: Option<SyncSender<(u64, Vec<I>)>>,
    rx: Receiver<(u64, Batch<I, R>)>,
    batch: Vec<I>,
    bytes: u64,
    next_seq: u64,
    next_emit: u64,
    done: BTreeMap<u64, Batch<I, R>>,
}

impl<I, R> Ordered<'_, I, R> {
    /// Queues a job; `bytes` is how far the walk has gone since the previous job (at least the
    /// job's value, and whatever the walk read itself in between), which bounds how far the
    /// other thread may lag behind (see [`TRAILING_BYTES`]).
    pub fn push(&mut self, job: I, bytes: u64) {
        self.bytes += bytes;
        self.batch.push(job);
        if self.bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.bytes = 0;
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
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
            let results = batch.into_iter().map(|job| {
                let r = (self.work)(&job);
                (job, r)
            });
            self.done.insert(seq, results.collect());
        }
        self.emit(false);
    }

    /// Consumes the results that are in, in order; with `wait`, all of them.
    fn emit(&mut self, wait: bool) {
        while self.next_emit < self.next_seq {
            if let Some(results) = self.done.remove(&self.next_emit) {
                self.next_emit += 1;
                for (job, r) in results {
                    (self.consume)(job, r);
                }
                continue;
            }
            let got = if wait {
                self.rx.recv().ok()
            } else {
                self.rx.try_recv().ok()
            };
            match got {
                Some((seq, results)) => {
                    self.done.insert(seq, results);
                }
                // Not in yet; or (waiting) the second thread is gone, and the scope will
                // report its panic.
                None => return,
            }
        }
    }
}

/// Runs `walk`, which pushes jobs; `work` computes each job's result (on either thread) and
/// `consume` receives (job, result) in push order.
pub fn run<I: Send, R: Send>(
    work: &(dyn Fn(&I) -> R + Sync),
    consume: &mut dyn FnMut(I, R),
    walk: impl FnOnce(&mut Ordered<'_, I, R>),
) {
    let (tx, jobs) = sync_channel::<(u64, Vec<I>)>(QUEUE);
    let (results_tx, rx) = sync_channel::<(u64, Batch<I, R>)>(QUEUE + 2);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (seq, batch) in jobs {
                let results = batch
                    .into_iter()
                    .map(|job| {
                        let r = work(&job);
                        (job, r)
                    })
                    .collect();
                if results_tx.send((seq, results)).is_err() {
                    break;
                }
            }
        });
        let mut ordered = Ordered {
            work,
            consume,
            tx: Some(tx),
            rx,
            batch: Vec::new(),
            bytes: 0,
            next_seq: 0,
            next_emit: 0,
            done: BTreeMap::new(),
        };
        walk(&mut ordered);
        ordered.flush();
        ordered.tx = None;
        ordered.emit(true);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_push_order() {
        let mut seen = Vec::new();
        let work = |n: &u64| n * 2;
        run(&work, &mut |n, r| seen.push((n, r)), |o| {
            for n in 0..10_000u64 {
                o.push(n, 300);
            }
        });
        assert_eq!(seen.len(), 10_000);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, &(n, r))| n == i as u64 && r == 2 * n)
        );
    }
}
