//! Working on values on two cores while keeping file order: the thread that walks the records
//! hands each value's bytes (found by framing, see [`super::framing`]) to a second thread in
//! batches, and gets the results back in the order the values appear. When the second thread
//! falls behind (its queue is full), the walking thread does the batch itself.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use super::types::ObjectType;

/// A value's type and where its bytes are.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub ty: ObjectType,
    pub start: u64,
    pub end: u64,
}

/// Batches hold about this many value bytes; at most `QUEUE` wait for the second thread.
const BATCH_BYTES: u64 = 1 << 20;
const QUEUE: usize = 8;

/// Bytes the second thread may still have to read behind the walking thread's position: keep
/// them mapped.
pub const TRAILING_BYTES: u64 = BATCH_BYTES * (2 * QUEUE as u64 + 4);

type Work<'w, R> = dyn Fn(Span) -> R + Sync + 'w;

/// Given to the walking code: push each value with what the consumer needs to know of it.
pub struct Ordered<'c, I, R> {
    work: &'c Work<'c, R>,
    consume: &'c mut dyn FnMut(I, R),
    tx: Option<SyncSender<(u64, Vec<Span>)>>,
    rx: Receiver<(u64, Vec<R>)>,
    batch: Vec<Span>,
    infos: Vec<I>,
    bytes: u64,
    next_seq: u64,
    /// Batches handed out or done, oldest first, waiting for their turn to be consumed.
    waiting: VecDeque<(u64, Vec<Span>, Vec<I>)>,
    done: HashMap<u64, Vec<R>>,
}

impl<I, R: Send> Ordered<'_, I, R> {
    pub fn push(&mut self, span: Span, info: I) {
        self.bytes += span.end - span.start;
        self.batch.push(span);
        self.infos.push(info);
        if self.bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.bytes = 0;
        if self.batch.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.batch);
        let infos = std::mem::take(&mut self.infos);
        let seq = self.next_seq;
        self.next_seq += 1;
        let sent = self.tx.as_ref().map(|tx| tx.try_send((seq, spans.clone())));
        if !matches!(sent, Some(Ok(()))) {
            if let Some(Err(TrySendError::Disconnected(_))) = sent {
                self.tx = None;
            }
            let results = spans.iter().map(|&s| (self.work)(s)).collect();
            self.done.insert(seq, results);
        }
        self.waiting.push_back((seq, spans, infos));
        self.emit(false);
    }

    /// Consumes every batch whose results are in, in order; with `wait`, all of them.
    fn emit(&mut self, wait: bool) {
        while let Some((seq, _, _)) = self.waiting.front() {
            let seq = *seq;
            while !self.done.contains_key(&seq) {
                let got = if wait {
                    self.rx.recv().ok()
                } else {
                    self.rx.try_recv().ok()
                };
                match got {
                    Some((s, results)) => {
                        self.done.insert(s, results);
                    }
                    None if wait => {
                        // The second thread is gone: do its batch here.
                        let spans = &self.waiting[0].1;
                        let results = spans.iter().map(|&s| (self.work)(s)).collect();
                        self.done.insert(seq, results);
                    }
                    None => return,
                }
            }
            let results = self.done.remove(&seq).unwrap_or_default();
            let (_, _, infos) = self.waiting.pop_front().unwrap_or_default();
            for (info, r) in infos.into_iter().zip(results) {
                (self.consume)(info, r);
            }
        }
    }
}

/// Runs `walk`, which pushes values; `work` computes a result from each value's span (on
/// either thread) and `consume` receives (info, result) in push order.
pub fn run<I, R: Send>(
    work: &(dyn Fn(Span) -> R + Sync),
    consume: &mut dyn FnMut(I, R),
    walk: impl FnOnce(&mut Ordered<'_, I, R>),
) {
    let (tx, jobs) = sync_channel::<(u64, Vec<Span>)>(QUEUE);
    let (results_tx, rx) = sync_channel::<(u64, Vec<R>)>(2 * QUEUE + 2);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (seq, spans) in jobs {
                let results = spans.into_iter().map(work).collect();
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
            infos: Vec::new(),
            bytes: 0,
            next_seq: 0,
            waiting: VecDeque::new(),
            done: HashMap::new(),
        };
        walk(&mut ordered);
        ordered.flush();
        ordered.tx = None;
        ordered.emit(true);
    });
}
