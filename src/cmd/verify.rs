//! `rdbtool verify`: checks RDB files (or DUMP payloads) as deeply as the server does when it
//! loads them, plus what the server misses, and exits 0 (good), 1 (problem found) or 2 (could
//! not check).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use indicatif::MultiProgress;
use serde::Serialize;

use rdbtool::rdb::error::escape;
use rdbtool::rdb::value::{Checks, ValueReader};
use rdbtool::rdb::{
    self, Input, Located, Problem, Reader, Record, Severity, SliceInput, StreamInput,
};
use rdbtool::scan::dup_keys::KeyIndex;
use rdbtool::scan::ordered;
use rdbtool::scan::walk::{self, Job, Key, Take, Walk, Work};

use super::files::Source;
use super::{Exit, PROGRESS_MIN, count, iec, thousands};

/// Check RDB files as deeply as the server does: magic, version, every opcode, length and
/// encoding, duplicate keys and members, and the CRC-64.
///
/// Exit status: 0 every file is good, 1 a problem was found in some file, 2 a file could not
/// be read (or bad usage).
#[derive(clap::Args)]
pub struct Args {
    /// Files to check; `-` reads standard input (e.g. `redis-cli --rdb - | rdbtool verify -`).
    /// Pipes and devices are read as streams.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Text)]
    format: OutFormat,
    /// Each file is a DUMP/RESTORE payload (type, value, version, CRC-64), not an RDB file.
    #[arg(long)]
    dump_payload: bool,
    /// Treat warnings (empty keys, unsorted zsets, stream ID order, trailing bytes) as errors.
    #[arg(long)]
    strict: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutFormat {
    Text,
    Json,
}

#[derive(Serialize, Default)]
struct Report {
    file: String,
    status: &'static str,
    format: Option<String>,
    /// `redis-ver` or `valkey-ver` AUX field.
    writer: Option<String>,
    /// DUMP payloads: the object type.
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    dbs: u64,
    keys: u64,
    /// Keys per database number.
    keys_per_db: std::collections::BTreeMap<u64, u64>,
    expires: u64,
    bytes: u64,
    /// ok, disabled (stored as 0), absent (RDB < 5), mismatch, or unchecked (not reached).
    checksum: &'static str,
    problems: Vec<ProblemView>,
    /// The file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    io_error: Option<String>,
}

#[derive(Serialize)]
struct ProblemView {
    severity: Severity,
    offset: u64,
    message: String,
    phase: Option<&'static str>,
    db: Option<u64>,
    key: Option<String>,
    r#type: Option<&'static str>,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView {
            severity: p.severity,
            offset: p.offset,
            message: p.message.clone(),
            phase: p.context.phase.map(|ph| ph.as_str()),
            db: p.context.db,
            key: p.context.key.as_deref().map(escape),
            r#type: p.context.type_name,
        }
    }
}

impl Report {
    fn new(file: &Path) -> Self {
        Report {
            file: file.display().to_string(),
            checksum: "unchecked",
            ..Default::default()
        }
    }

    fn exit(&self, strict: bool) -> Exit {
        let failing = |p: &ProblemView| {
            p.severity == Severity::Error || (strict && p.severity == Severity::Warning)
        };
        if self.io_error.is_some() {
            Exit::Error
        } else if self.problems.iter().any(failing) {
            Exit::Problems
        } else {
            Exit::Ok
        }
    }

    fn push(&mut self, p: &Problem) {
        self.problems.push(p.into());
    }

    fn fatal(&mut self, e: rdb::Error) {
        if matches!(e.kind, rdb::ErrorKind::Crc { .. }) {
            self.checksum = "mismatch";
        }
        let message = e.kind.to_string();
        self.push(&Problem {
            severity: Severity::Error,
            offset: e.offset,
            message,
            context: e.context,
        });
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Exit> {
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        anyhow::bail!("standard input (-) can be read only once");
    }
    let progress = (!args.quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
    let reports = check_all(&args, progress.as_ref());
    let exit = reports
        .iter()
        .map(|r| r.exit(args.strict))
        .max()
        .unwrap_or(Exit::Ok);
    match args.format {
        OutFormat::Json => {
            let doc = serde_json::json!({ "ok": exit == Exit::Ok, "strict": args.strict, "files": reports });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        OutFormat::Text => {
            for r in &reports {
                write_text(r, args.strict, out)?;
            }
        }
    }
    Ok(exit)
}

/// Checks the files on as many threads as there are cores, keeping the given order.
fn check_all(args: &Args, progress: Option<&MultiProgress>) -> Vec<Report> {
    let walks = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(args.files.len());
    let workers = ordered::workers_for(walks);
    let next = AtomicUsize::new(0);
    let mut reports: Vec<(usize, Report)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..walks)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = args.files.get(i) else { break };
                        done.push((i, check_file(path, args.dump_payload, workers, progress)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// Checks one file, its values on `workers` threads beside the one walking it.
fn check_file(
    path: &Path,
    dump_payload: bool,
    workers: usize,
    progress: Option<&MultiProgress>,
) -> Report {
    let mut report = Report::new(path);
    let file = match super::files::open(path) {
        Ok(Source::Mapped(f)) => f,
        Ok(Source::Stream(stream)) => {
            check_stream(stream, dump_payload, &mut report);
            return finish(report);
        }
        Err(e) => {
            report.io_error = Some(e.to_string());
            return finish(report);
        }
    };
    let data = file.data();
    report.bytes = data.len() as u64;
    if dump_payload {
        check_payload(data, &mut report);
        return finish(report);
    }
    let bar = progress
        .filter(|_| report.bytes >= PROGRESS_MIN)
        .map(|m| m.add(super::bar(report.bytes, path)));
    file.scan(|inp, release| {
        let checker = Checker { data };
        scan(inp, Some(data), &mut report, |reader, tally| {
            walk::walk(reader, tally, &checker, workers, &mut |pos| {
                release(pos);
                if let Some(b) = &bar {
                    b.set_position(pos);
                }
            })
        });
        report.problems.sort_by_key(|p| p.offset);
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Err(e) = file.check_size() {
        report.io_error = Some(e.to_string());
    }
    finish(report)
}

/// Checks standard input, a pipe or a device, read once as it comes.
fn check_stream(mut stream: Box<dyn std::io::Read + '_>, dump_payload: bool, report: &mut Report) {
    if dump_payload {
        let mut data = Vec::new();
        match stream.read_to_end(&mut data) {
            Ok(_) => check_payload(&data, report),
            Err(e) => report.io_error = Some(e.to_string()),
        }
        return;
    }
    let mut inp = StreamInput::new(stream);
    report.bytes = scan(&mut inp, None, report, |reader, tally| {
        walk::walk_stream(reader, tally)
    });
    if let Some(e) = inp.io_error() {
        report.io_error = Some(e.to_string());
    }
}

fn finish(mut report: Report) -> Report {
    report.status = match report.exit(false) {
        Exit::Ok => "ok",
        Exit::Problems => "problems",
        Exit::Error => "error",
    };
    report
}

/// Reads every record with `walk`, checking keys for duplicates per database. `data` is the
/// whole input when it is mapped, to name duplicate keys. Returns bytes read.
fn scan<'a, I: Input<'a>>(
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
struct Tally<'r, 'a> {
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
        for (first, dup) in self.keys.duplicates() {
            let name = key_at(self.data, dup)
                .map(|k| format!(" \"{}\"", escape(&k)))
                .unwrap_or_default();
            let message = format!(
                "duplicate key{name} (first at offset {first}): the server refuses to load this file"
            );
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
                message,
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

fn check_payload(data: &[u8], report: &mut Report) {
    report.bytes = data.len() as u64;
    match rdb::payload::read(data, &mut rdb::Skip) {
        Ok(p) => {
            report.format = Some(format!("DUMP payload v{}", p.format.version));
            report.r#type = Some(p.ty.name());
            report.keys = 1;
            report.checksum = if p.crc_ok { "ok" } else { "mismatch" };
            for prob in &p.problems {
                report.push(prob);
            }
        }
        Err(e) => report.fatal(e),
    }
}

fn write_text(r: &Report, strict: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for p in &r.problems {
        let level = match p.severity {
            Severity::Warning if strict => "error",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        };
        let mut context = Vec::new();
        if let Some(phase) = p.phase {
            context.push(format!("while {phase}"));
        }
        if let Some(db) = p.db {
            context.push(format!("db {db}"));
        }
        if let Some(k) = &p.key {
            context.push(format!("key \"{k}\""));
        }
        if let Some(t) = p.r#type {
            context.push(format!("type {t}"));
        }
        let context = if context.is_empty() {
            String::new()
        } else {
            format!(" ({})", context.join(", "))
        };
        writeln!(
            out,
            "{level} {}: offset {} (0x{:x}): {}{context}",
            r.file, p.offset, p.offset, p.message
        )?;
    }
    if let Some(e) = &r.io_error {
        return writeln!(out, "ERROR {}: {e}", r.file);
    }
    let verdict = if r.exit(strict) == Exit::Ok {
        "OK"
    } else {
        "FAIL"
    };
    let mut facts = vec![match (&r.format, &r.writer) {
        (Some(f), Some(w)) => format!("{f} ({w})"),
        (Some(f), None) => f.clone(),
        _ => "unreadable".to_string(),
    }];
    if let Some(t) = r.r#type {
        facts.push(t.to_string());
    } else {
        facts.push(count(r.dbs, "db"));
        facts.push(count(r.keys, "key"));
        facts.push(format!("{} with TTL", thousands(r.expires)));
    }
    facts.push(match r.checksum {
        "ok" => "CRC-64 ok".to_string(),
        "disabled" => "CRC-64 disabled".to_string(),
        "absent" => "no CRC-64 (RDB < 5)".to_string(),
        other => format!("CRC-64 {other}"),
    });
    facts.push(iec(r.bytes));
    let errors = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .count();
    if errors + warnings > 0 {
        let (errors, warnings) = (errors as u64, warnings as u64);
        facts.push(format!(
            "{}, {}",
            count(errors, "error"),
            count(warnings, "warning")
        ));
    }
    writeln!(out, "{verdict} {}: {}", r.file, facts.join(", "))
}

/// Checks the string value of `job` where framing found it in `data`.
fn check_string(data: &[u8], job: &Job<'_, ()>) -> Option<Problem> {
    let span = data.get(job.start as usize..job.end as usize)?;
    let e = rdb::primitive::skip_string(&mut SliceInput::new(span)).err()?;
    Some(Problem {
        severity: Severity::Error,
        offset: job.start + e.offset,
        message: e.kind.to_string(),
        context: job.context(),
    })
}

/// Verify's part on the workers: checking values, with the checks for repeated members.
struct Checker<'d> {
    data: &'d [u8],
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
        let mut push = |severity, offset, message| {
            let context = job.context();
            found.push(Problem {
                severity,
                offset,
                message,
                context,
            });
        };
        let ty = job.key.ty;
        match values.read_span(self.data, job.start, job.end, ty, &mut rdb::Skip) {
            Ok(n) => {
                if rdb::value::is_empty_key(ty, n) {
                    let message = "empty key (the server skips it when loading)".into();
                    push(Severity::Warning, job.start, message);
                }
                for note in values.notes() {
                    push(note.severity, note.offset, note.message.clone());
                }
            }
            Err(e) => push(Severity::Error, e.offset, e.kind.to_string()),
        }
        Ok(())
    }
}
