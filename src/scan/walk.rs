//! The record walk of every command that reads a whole file. The records are read on this
//! thread; each key the command selects is framed (its value's bytes found, not decoded) and
//! handed, with what the walk knows of it, to worker threads in batches of about a MiB (see
//! [`super::ordered`]); the command gets the results back in file order. The walk names the key
//! of a value that fails to decode, stops at the first failure, and reports its position now
//! and then, so that pages behind it are released and a progress bar moves.
//!
//! A command plays two parts: [`Walk`] on the walking thread (the records, the keys to select,
//! the results in order) and [`Work`] on the workers (one key at a time, into a batch's
//! result). Both are generic parameters, so every call per key is static.

use std::borrow::Cow;

use super::mapped::Ticker;
use super::ordered::{self, TRAILING_BYTES};
use crate::rdb::error::Context;
use crate::rdb::value::{Checks, ValueReader};
use crate::rdb::{self, Input, KeyMeta, Located, ObjectType, Phase, Reader, Record, SliceInput};

/// A key as the walk found it.
pub struct Key<'a> {
    pub db: u64,
    pub name: Cow<'a, [u8]>,
    pub ty: ObjectType,
    pub meta: KeyMeta,
    /// Offset of the key's record (its type byte).
    pub record: u64,
}

/// A key whose value a worker reads at `start..end` of the file; `extra` is what the command
/// added on the walking thread.
pub struct Job<'a, X> {
    pub key: Key<'a>,
    pub start: u64,
    pub end: u64,
    pub extra: X,
}

impl<X> Job<'_, X> {
    /// What a problem in the value is reported with: the key, its type and database.
    pub fn context(&self) -> Context {
        Context {
            phase: Some(Phase::ReadValue),
            db: Some(self.key.db),
            key: Some(self.key.name.to_vec()),
            type_name: Some(self.key.ty.name()),
        }
    }
}

/// What the walk does with a key's value.
pub enum Take<X> {
    /// Frames it and hands it to a worker, with these facts.
    Work(X),
    /// Frames it, that is moves past it unchecked, and goes on.
    Skip,
    /// Leaves it to the reader, which reads and checks it here before the next record.
    Read,
}

/// A command's part on the walking thread.
pub trait Walk<'a> {
    /// What the command adds to a key for the workers.
    type Extra: Send;
    /// What the workers make of a batch of keys (see [`Work`]).
    type Done: Send;
    type Error: From<rdb::Error>;

    /// A record other than a key. An error ends the walk.
    fn record<I: Input<'a>>(
        &mut self,
        rec: Located<'a>,
        reader: &Reader<'a, I>,
    ) -> Result<(), Self::Error>;

    /// What to do with a key's value.
    fn select(&mut self, key: &Key<'a>) -> Take<Self::Extra>;

    /// A key framed for the workers (or, when `framed` is false, whose value the reader had to
    /// read and check itself): true if the command is done with it here instead.
    fn here(&mut self, _job: &Job<'a, Self::Extra>, _framed: bool) -> bool {
        false
    }

    /// After each record that did not end the walk.
    fn after<I: Input<'a>>(&mut self, _reader: &mut Reader<'a, I>) {}

    /// Keys the workers are done with, in file order, and what they made of them. An error
    /// ends the walk.
    fn consume(
        &mut self,
        jobs: &[Job<'a, Self::Extra>],
        done: Self::Done,
    ) -> Result<(), Self::Error>;

    /// Once every key is consumed, unless a value or [`Walk::consume`] failed.
    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A command's part on the workers, `X` being its [`Walk::Extra`] and `D` its [`Walk::Done`].
pub trait Work<'a, X, D>: Sync {
    /// Whether values are read with the checks for repeated members (verify's), or only read.
    const CHECKS: Checks = Checks::None;

    /// The result of the batch `jobs`, before any of them is worked on.
    fn start(&self, jobs: &[Job<'a, X>]) -> D;

    /// Works on one key, reading its value with `values`. An error ends the batch: the walk
    /// names the key in it and reports it once the keys before it are consumed.
    fn work(
        &self,
        job: &Job<'a, X>,
        values: &mut ValueReader,
        done: &mut D,
    ) -> Result<(), rdb::Error>;
}

/// Walks the records of a mapped file from where `reader` is, values worked on by `workers`
/// threads. `progress` is told now and then the position before which nothing will be read
/// again. The first failure ends the walk: a value's or one from [`Walk::consume`] (which
/// concern records already passed), else the reader's or a hook's.
pub fn walk<'a, V, W>(
    reader: &mut Reader<'a, SliceInput<'a>>,
    visit: &mut V,
    work: &W,
    workers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<(), V::Error>
where
    V: Walk<'a>,
    W: Work<'a, V::Extra, V::Done>,
{
    let mut sink = Sink {
        visit,
        failure: None,
    };
    let per_batch = |jobs: &[Job<'a, V::Extra>]| work_on(work, jobs);
    let mut walked = Ok(());
    ordered::run(workers, &per_batch, |batches| {
        let mut push = |sink: &mut Sink<'_, V, V::Error>, job, bytes| {
            batches.push(job, bytes, &mut |jobs, done| sink.consume(jobs, done));
        };
        walked = records(reader, &mut sink, progress, Some(&mut push));
        batches.finish(&mut |jobs, done| sink.consume(jobs, done))
    });
    if let Some(e) = sink.failure {
        return Err(e);
    }
    sink.visit.finish()?;
    walked
}

/// Walks the records of a stream, read once as they come: nothing is framed, every value is
/// read and checked by the reader (a key selected for the workers is too).
pub fn walk_stream<'a, I: Input<'a>, V: Walk<'a>>(
    reader: &mut Reader<'a, I>,
    visit: &mut V,
) -> Result<(), V::Error> {
    let mut sink = Sink {
        visit,
        failure: None,
    };
    records::<I, V, fn(&mut Sink<'_, V, V::Error>, Job<'a, V::Extra>, u64)>(
        reader,
        &mut sink,
        &mut |_| {},
        None,
    )?;
    sink.visit.finish()
}

/// The walking side's command and its first failure in consuming (`E` is its error).
struct Sink<'v, V, E> {
    visit: &'v mut V,
    failure: Option<E>,
}

impl<'a, V: Walk<'a>> Sink<'_, V, V::Error> {
    /// Hands a batch's results to the command, up to the key whose value failed if one did.
    fn consume(
        &mut self,
        jobs: Vec<Job<'a, V::Extra>>,
        (done, failed): (V::Done, Option<(usize, rdb::Error)>),
    ) {
        if self.failure.is_some() {
            return;
        }
        let upto = failed.as_ref().map_or(jobs.len(), |(i, _)| *i);
        let consumed = self.visit.consume(&jobs[..upto], done);
        self.failure = failed.map(|(_, e)| e.into()).or(consumed.err());
    }
}

/// The records from `reader` on, keys selected for the workers given to `push` with the bytes
/// walked since the previous one (without `push`, a stream: left to the reader).
fn records<'a, I, V, P>(
    reader: &mut Reader<'a, I>,
    sink: &mut Sink<'_, V, V::Error>,
    progress: &mut dyn FnMut(u64),
    mut push: Option<&mut P>,
) -> Result<(), V::Error>
where
    I: Input<'a>,
    V: Walk<'a>,
    P: FnMut(&mut Sink<'_, V, V::Error>, Job<'a, V::Extra>, u64),
{
    let mut ticker = Ticker::default();
    // Where the value of the last job pushed ends.
    let mut pushed_upto = 0;
    loop {
        // Before the next record is read (see `Ticker`).
        if ticker.due(reader.pos()) {
            if sink.failure.is_some() {
                return Ok(());
            }
            // Values behind this point may still be read by a worker.
            progress(reader.pos().saturating_sub(TRAILING_BYTES));
        }
        let Some(rec) = reader.next_record() else {
            return Ok(());
        };
        let rec = rec?;
        let Record::Key { db, key, ty, meta } = rec.record else {
            sink.visit.record(rec, reader)?;
            sink.visit.after(reader);
            continue;
        };
        let key = Key {
            db,
            name: key,
            ty,
            meta,
            record: rec.offset,
        };
        match (sink.visit.select(&key), push.as_deref_mut()) {
            (Take::Work(extra), Some(push)) => {
                let framed = reader.skip_value()?;
                let (start, end) = reader.value_span();
                let job = Job {
                    key,
                    start,
                    end,
                    extra,
                };
                if !sink.visit.here(&job, framed) {
                    // The walk's progress since the last job, values dealt with here included,
                    // so that pages are kept for the workers as far back as they may read.
                    push(sink, job, end - pushed_upto);
                    pushed_upto = end;
                }
            }
            (Take::Skip, _) => {
                reader.skip_value()?;
            }
            (Take::Work(_) | Take::Read, _) => {}
        }
        sink.visit.after(reader);
    }
}

/// Works on a batch on this thread with its reusable value reader, up to the first key whose
/// value fails, which is named in the error.
fn work_on<'a, X, D, W: Work<'a, X, D>>(
    work: &W,
    jobs: &[Job<'a, X>],
) -> (D, Option<(usize, rdb::Error)>) {
    let mut done = work.start(jobs);
    let failed = ValueReader::with_thread_reader(W::CHECKS, |values| {
        jobs.iter().enumerate().find_map(|(i, job)| {
            let mut e = work.work(job, values, &mut done).err()?;
            e.context = job.context();
            Some((i, e))
        })
    });
    (done, failed)
}
