//! Verify's two parts of the record walk (see [`crate::scan::walk`]): on the walking thread
//! the header and trailer facts, keys counted and indexed for duplicates, strings, and the
//! reader's problems in order; on the workers every other value, with the checks for
//! repeated members.

use super::{ProblemView, Report};
use crate::rdb::error::escape;
use crate::rdb::value::{Checks, ValueReader};
use crate::rdb::{
    self, Input, Located, Problem, ProblemKind, Reader, Record, Severity, SliceInput,
};
use crate::scan::dup_keys::KeyIndex;
use crate::scan::walk::{Job, Key, Take, Walk, Work};

/// Reads every record with `walk`, checking keys for duplicates per database. `data` is the
/// whole input when it is mapped, to name duplicate keys. Returns bytes read.
pub(super) fn scan<'a, I: Input<'a>>(
    inp: I,
    data: Option<&'a [u8]>,
    report: &mut Report,
    walk: impl FnOnce(&mut Reader<'a, I>, &mut Tally<'_, 'a>) -> Result<(), rdb::Error>,
) -> u64 {
    let mut reader = match Reader::new(inp) {
        Ok(r) => r,
        // Not a damaged backup: a file of another kind, which cannot be checked.
        Err(e) if matches!(e.kind, rdb::ErrorKind::Aof { .. }) => {
            report.io_error = Some(e.kind.to_string());
            return 0;
        }
        Err(e) => {
            report.fatal(e);
            return 0;
        }
    };
    report.format = Some(reader.format().to_string());
    let mut tally = Tally {
        report,
        data,
        keys: KeyIndex::new(data),
        db_starts: Vec::new(),
        run: (0, 0),
        found: Vec::new(),
    };
    if let Err(e) = walk(&mut reader, &mut tally) {
        tally.report.fatal(e);
    }
    tally.after(&mut reader);
    tally.conclude();
    reader.pos()
}

/// Verify's part on the walking thread: the facts of the header and the trailer, the keys
/// counted and indexed for duplicates, string values checked, and the problems in order.
pub(super) struct Tally<'r, 'a> {
    report: &'r mut Report,
    data: Option<&'a [u8]>,
    keys: KeyIndex<'a>,
    /// Where each database's records begin, to say which db a duplicate is in.
    db_starts: Vec<(u64, u64)>,
    /// (db, keys) of the keys read since the database last changed, so that the map is
    /// updated once per database rather than once per key.
    run: (u64, u64),
    /// What the workers found, in file order.
    found: Vec<Problem>,
}

impl<'a> Walk<'a> for Tally<'_, 'a> {
    type Extra = ();
    type Done = Vec<Problem>;
    type Error = rdb::Error;

    fn record<I: Input<'a>>(
        &mut self,
        rec: Located<'a>,
        reader: &Reader<'a, I>,
    ) -> Result<(), rdb::Error> {
        let report = &mut *self.report;
        match rec.record {
            Record::Aux { key, value } if &key[..] == b"redis-ver" || &key[..] == b"valkey-ver" => {
                report.writer = Some(format!(
                    "{} {}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&value)
                ));
            }
            Record::SelectDb { db } => self.db_starts.push((rec.offset, db)),
            Record::ResizeDb { keys: n, .. } => {
                // A hint from the file: never reserve more than the bytes left could hold.
                let left = reader.input().remaining().unwrap_or(0);
                self.keys.reserve(n.min(left / 4) as usize);
            }
            Record::Eof { checksum } => {
                report.checksum = match checksum {
                    None => "absent",
                    Some(0) => "disabled",
                    Some(_) => "ok",
                };
            }
            _ => {}
        }
        Ok(())
    }

    fn select(&mut self, key: &Key<'a>) -> Take<()> {
        let report = &mut *self.report;
        report.keys += 1;
        if key.db != self.run.0 {
            add_run(&mut report.keys_per_db, self.run);
            self.run = (key.db, 0);
        }
        self.run.1 += 1;
        if key.meta.expire_ms.is_some() {
            report.expires += 1;
        }
        self.keys.add(key.db, &key.name, key.record);
        Take::Work(())
    }

    /// Strings are checked here: all that is left after framing is the control bytes of an
    /// LZF block, a fraction of what handing them to a worker costs. A value the reader had
    /// to read is checked already.
    fn here(&mut self, job: &Job<'a, ()>, framed: bool) -> bool {
        if !framed {
            return true;
        }
        if job.key.ty != rdb::ObjectType::String {
            return false;
        }
        if let Some(p) = self.data.and_then(|data| check_string(data, job)) {
            self.report.push(&p);
        }
        true
    }

    fn after<I: Input<'a>>(&mut self, reader: &mut Reader<'a, I>) {
        for p in reader.take_problems() {
            self.report.push(&p);
        }
    }

    fn consume(&mut self, _: &[Job<'a, ()>], found: Vec<Problem>) -> Result<(), rdb::Error> {
        self.found.extend(found);
        Ok(())
    }
}

impl Tally<'_, '_> {
    /// Once every record is read: keys per database, duplicate keys, what the workers found.
    fn conclude(self) {
        let report = self.report;
        add_run(&mut report.keys_per_db, self.run);
        report.dbs = report.keys_per_db.len() as u64;
        let duplicates = match self.keys.duplicates() {
            Ok(d) => d,
            // The check could not be finished: the file is not said to be good.
            Err(e) => {
                report.io_error = Some(e.to_string());
                Vec::new()
            }
        };
        for (first, dup) in duplicates {
            let key = key_at(self.data, dup).map(|k| escape(&k));
            let db = self
                .db_starts
                .iter()
                .take_while(|(at, _)| *at < dup)
                .last()
                .map(|&(_, db)| db);
            let context = rdb::error::Context {
                phase: Some(rdb::Phase::ReadKey),
                db,
                ..Default::default()
            };
            report.push(&Problem {
                severity: Severity::Error,
                offset: dup,
                kind: ProblemKind::DuplicateKey { key, first },
                context,
            });
        }
        report
            .problems
            .extend(self.found.iter().map(ProblemView::from));
    }
}

/// Counts `n` keys of database `db` (a run of keys read since the database changed).
fn add_run(per_db: &mut std::collections::BTreeMap<u64, u64>, (db, n): (u64, u64)) {
    if n > 0 {
        *per_db.entry(db).or_default() += n;
    }
}

/// The key of the record at `offset` (its type byte), read again from the mapped file.
fn key_at(data: Option<&[u8]>, offset: u64) -> Option<Vec<u8>> {
    let rest = data?.get(offset as usize + 1..)?;
    rdb::primitive::read_bytes(&mut SliceInput::new(rest))
        .ok()
        .map(|k| k.into_owned())
}

/// Checks the string value of `job` where framing found it in `data`.
fn check_string(data: &[u8], job: &Job<'_, ()>) -> Option<Problem> {
    let span = data.get(job.start as usize..job.end as usize)?;
    let e = rdb::primitive::skip_string(&mut SliceInput::new(span)).err()?;
    Some(Problem {
        severity: Severity::Error,
        offset: job.start + e.offset,
        kind: ProblemKind::Error(e.kind),
        context: job.context(),
    })
}

/// Verify's part on the workers: checking values, with the checks for repeated members.
pub(super) struct Checker<'d> {
    pub(super) data: &'d [u8],
}

impl<'a> Work<'a, (), Vec<Problem>> for Checker<'_> {
    const CHECKS: Checks = Checks::Duplicates;

    fn start(&self, _: &[Job<'a, ()>]) -> Vec<Problem> {
        Vec::new()
    }

    /// A value's problems are findings, not failures: the walk goes on.
    fn work(
        &self,
        job: &Job<'a, ()>,
        values: &mut ValueReader,
        found: &mut Vec<Problem>,
    ) -> Result<(), rdb::Error> {
        let mut push = |severity, offset, kind| {
            let context = job.context();
            found.push(Problem {
                severity,
                offset,
                kind,
                context,
            });
        };
        let ty = job.key.ty;
        match values.read_span(self.data, job.start, job.end, ty, &mut rdb::Skip) {
            Ok(n) => {
                if rdb::value::is_empty_key(ty, n) {
                    push(Severity::Warning, job.start, ProblemKind::EmptyKey);
                }
                for note in values.notes() {
                    push(note.severity, note.offset, note.kind.clone());
                }
            }
            Err(e) => push(Severity::Error, e.offset, ProblemKind::Error(e.kind)),
        }
        Ok(())
    }
}
