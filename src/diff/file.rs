//! An RDB file as one side of a comparison: fingerprinted on worker threads in file order (as
//! `verify` and `inspect` read), then read again at the offsets of the keys that differ.

use super::fingerprint::Fingerprinter;
use super::{Each, Error, Options, Print, Prints, Value};
use crate::rdb::value::{ValueReader, is_empty_key};
use crate::rdb::{self, Format, Input, Located, ObjectType, Reader, Record, SliceInput, framing};
use crate::scan::mapped::MappedFile;
use crate::scan::ordered;
use crate::scan::thread::joined;
use crate::scan::walk::{self, Job, Key, Take, Walk, Work};

pub struct FileSide<'m> {
    label: String,
    file: &'m MappedFile,
    /// Values read out of order since the mapping's pages were last released.
    touched: std::cell::Cell<usize>,
    format: Option<Format>,
    /// Where each database's records begin: (offset, db), in file order.
    db_starts: Vec<(u64, u64)>,
}

/// The second pass releases the pages of the values it read after this many. A read maps
/// more than its value: the kernel maps whole page-cache folios around a fault (up to
/// hundreds of KiB a value).
const RELEASE_EVERY: usize = 64;

impl<'m> FileSide<'m> {
    pub fn new(label: String, file: &'m MappedFile) -> Self {
        FileSide {
            label,
            file,
            touched: std::cell::Cell::new(0),
            format: None,
            db_starts: Vec::new(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The format its signature announces, before it is read.
    pub fn peek_format(&self) -> Option<Format> {
        let magic: &[u8; 9] = self.file.data().get(..9)?.try_into().ok()?;
        rdb::magic::parse_magic(magic).ok()
    }

    fn error(&self, error: rdb::Error) -> Error {
        Error::rdb(self.label.clone(), error)
    }

    /// Reads every selected key, fingerprinting values on the workers; `each` sees them in file
    /// order. `progress` is told the position now and then.
    pub fn scan(
        &mut self,
        opts: &Options,
        prints: Prints,
        each: &mut Each<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let (format, db_starts, error) = self.file.scan(|inp, release| {
            let mut progress = |pos: u64| {
                release(pos);
                progress(pos);
            };
            first_pass(inp, opts, prints, each, &mut progress)
        });
        self.format = format;
        self.db_starts = db_starts;
        // What follows reads a few values here and there.
        self.file.release_all();
        self.file.random_access();
        match error {
            Some(e) => Err(self.error(e)),
            None => Ok(()),
        }
    }

    /// Pages of values read out of order are dropped now and then (the map stays valid: they
    /// are read again if touched), so memory does not grow with the number of keys read.
    /// Dropping the whole map at once is one cheap call, where one per value (with two
    /// threads, each a TLB shootdown) is not.
    fn touched(&self) {
        let n = self.touched.get() + 1;
        self.touched.set(n % RELEASE_EVERY);
        if n == RELEASE_EVERY {
            self.file.release_all();
        }
    }

    /// The canonical fingerprints of the values of the records at `offsets`, worked out on
    /// two threads, half each (in offset order: give them sorted).
    pub fn fingerprints(&self, seed: super::Seed, offsets: &[u64]) -> Result<Vec<u128>, Error> {
        let format = self.read_format(offsets.first().copied().unwrap_or(0))?;
        let data = self.file.data();
        let file = self.file;
        // One thread's share: pages are released as it goes (see `touched`).
        let share = |offsets: &[u64]| -> Result<Vec<u128>, rdb::Error> {
            let mut prints = Vec::with_capacity(offsets.len());
            for chunk in offsets.chunks(RELEASE_EVERY) {
                for &offset in chunk {
                    let (_, value) = locate_in(data, format, offset)?;
                    prints.push(Fingerprinter::with_thread(seed, value.ty().kind(), |fp| {
                        value.visit(fp).map(|()| fp.finish())
                    })?);
                }
                file.release_all();
            }
            Ok(prints)
        };
        let (first, second) = offsets.split_at(offsets.len() / 2);
        let (one, two) = std::thread::scope(|s| {
            let other = s.spawn(|| share(second));
            (share(first), other.join())
        });
        let mut prints = one.map_err(|e| self.error(e))?;
        let two = joined(two, "fingerprinting values").map_err(|error| Error::Panicked {
            side: self.label.clone(),
            error,
        })?;
        prints.extend(two.map_err(|e| self.error(e))?);
        Ok(prints)
    }

    fn read_format(&self, offset: u64) -> Result<Format, Error> {
        self.format.ok_or_else(|| {
            let why = rdb::ErrorKind::OutOfOrder("read by offset before the first pass");
            self.error(rdb::Error::new(offset, why))
        })
    }

    /// The database of the key whose record is at `offset`.
    pub fn db_at(&self, offset: u64) -> u64 {
        self.db_starts
            .iter()
            .take_while(|(at, _)| *at < offset)
            .last()
            .map_or(0, |&(_, db)| db)
    }

    /// The key and value of the record at `offset` (found by the first pass).
    pub fn locate(&self, offset: u64) -> Result<(Vec<u8>, Value<'m>), Error> {
        let format = self.read_format(offset)?;
        let located = locate_in(self.file.data(), format, offset).map_err(|e| self.error(e))?;
        self.touched();
        Ok(located)
    }
}

/// The key and value of the record at `offset` of `data`.
fn locate_in(data: &[u8], format: Format, offset: u64) -> Result<(Vec<u8>, Value<'_>), rdb::Error> {
    let mut inp = SliceInput::new(data);
    rdb::Input::skip(&mut inp, offset, "record")?;
    let b = rdb::Input::read_u8(&mut inp, "type")?;
    let ty = ObjectType::from_byte(format, b)
        .ok_or_else(|| rdb::Error::new(offset, rdb::ErrorKind::UnknownType(b)))?;
    let key = rdb::primitive::read_bytes(&mut inp)?.into_owned();
    let start = rdb::Input::pos(&inp);
    if !framing::skip_value(&mut inp, ty)? {
        ValueReader::new().read(&mut inp, ty, &mut rdb::Skip)?;
    }
    let end = rdb::Input::pos(&inp);
    let value = Value::File {
        data,
        ty,
        start,
        end,
        version: format.version,
    };
    Ok((key, value))
}

/// Encodings a server writes in hash-table order, which a reload changes: their bytes say
/// little, so they are fingerprinted by meaning even when raw prints are asked for (a raw
/// and a canonical print never match, and such a pair is then compared by meaning).
fn reordered_on_save(ty: ObjectType) -> bool {
    use ObjectType::*;
    matches!(
        ty,
        Set | Hash | ZsetText | Zset2 | HashMetadata | HashMetadataPreGa | ValkeyHash2
    )
}

/// A selected key's identity and fingerprint; None for an empty key (which the server drops
/// when loading).
type Printed = Option<(u128, u128)>;

/// The first pass's part on the workers: fingerprints.
struct Printer<'d> {
    data: &'d [u8],
    seed: super::Seed,
    prints: Prints,
}

impl<'a> Work<'a, (), Vec<Printed>> for Printer<'_> {
    fn start(&self, jobs: &[Job<'a, ()>]) -> Vec<Printed> {
        Vec::with_capacity(jobs.len())
    }

    fn work(
        &self,
        job: &Job<'a, ()>,
        values: &mut ValueReader,
        done: &mut Vec<Printed>,
    ) -> Result<(), rdb::Error> {
        let (key, seed) = (&job.key, self.seed);
        let id = seed.key(key.db, &key.name);
        if self.prints == Prints::Raw && !reordered_on_save(key.ty) {
            let value = self
                .data
                .get(job.start as usize..job.end as usize)
                .unwrap_or_default();
            done.push(Some((id, seed.raw(key.ty.code(), value))));
            return Ok(());
        }
        let (n, value) = Fingerprinter::with_thread(seed, key.ty.kind(), |fp| {
            let n = values.read_span(self.data, job.start, job.end, key.ty, fp)?;
            Ok::<_, rdb::Error>((n, fp.finish()))
        })?;
        done.push((!is_empty_key(key.ty, n)).then_some((id, value)));
        Ok(())
    }
}

/// The first pass's part on the walking thread: the keys selected, their prints handed to
/// `each` in file order, and where each database starts.
struct FirstPass<'o, 'e, 'f> {
    opts: &'o Options,
    each: &'e mut Each<'f>,
    db_starts: Vec<(u64, u64)>,
}

impl<'a> Walk<'a> for FirstPass<'_, '_, '_> {
    type Extra = ();
    type Done = Vec<Printed>;
    type Error = rdb::Error;

    fn record<I: Input<'a>>(
        &mut self,
        rec: Located<'a>,
        _: &Reader<'a, I>,
    ) -> Result<(), rdb::Error> {
        if let Record::SelectDb { db } = rec.record {
            self.db_starts.push((rec.offset, db));
        }
        Ok(())
    }

    fn select(&mut self, key: &Key<'a>) -> Take<()> {
        let opts = self.opts;
        let expired = key.meta.expire_ms.is_some_and(|ms| ms <= opts.now_ms);
        if !opts.filter.key(key.db, &key.name, key.ty.kind()) || (expired && !opts.keep_expired) {
            return Take::Read;
        }
        Take::Work(())
    }

    fn consume(&mut self, jobs: &[Job<'a, ()>], done: Vec<Printed>) -> Result<(), rdb::Error> {
        for (job, printed) in jobs.iter().zip(done) {
            let Some((id, value)) = printed else {
                continue;
            };
            let key = &job.key;
            let print = Print {
                db: key.db,
                key: &key.name,
                kind: key.ty.kind(),
                expire: key.meta.expire_ms,
                id,
                value,
                bytes: job.end - job.start,
                loc: key.record,
            };
            (self.each)(&print);
        }
        Ok(())
    }
}

/// The record walk: framing on this thread, fingerprints on the workers (see [`walk`]).
/// Returns the format, where each database starts, and the first error in file order.
fn first_pass<'a>(
    inp: SliceInput<'a>,
    opts: &Options,
    prints: Prints,
    each: &mut Each<'_>,
    progress: &mut dyn FnMut(u64),
) -> (Option<Format>, Vec<(u64, u64)>, Option<rdb::Error>) {
    let data = inp.data();
    let mut reader = match Reader::new(inp) {
        Ok(r) => r,
        Err(e) => return (None, Vec::new(), Some(e)),
    };
    let printer = Printer {
        data,
        seed: opts.seed,
        prints,
    };
    let mut pass = FirstPass {
        opts,
        each,
        db_starts: Vec::new(),
    };
    let workers = ordered::workers_for(1);
    let walked = walk::walk(&mut reader, &mut pass, &printer, workers, progress);
    (Some(reader.format()), pass.db_starts, walked.err())
}
