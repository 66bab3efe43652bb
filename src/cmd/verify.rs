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
use rdbtool::rdb::{self, Input, Problem, Reader, Record, Severity, SliceInput, StreamInput};
use rdbtool::scan::dup_keys::KeyIndex;
use rdbtool::scan::mapped::Ticker;
use rdbtool::scan::ordered::{self, Ordered};

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
        let mut problems = Vec::new();
        let work = |job: &Job| check_job(job, data);
        ordered::run_with(
            workers,
            &work,
            &mut |_, found: Vec<Problem>| problems.extend(found),
            |jobs| {
                scan(inp, Some(data), &mut report, Some(jobs), |pos| {
                    // Values behind this point may still be checked by a worker.
                    release(pos.saturating_sub(ordered::TRAILING_BYTES));
                    if let Some(b) = &bar {
                        b.set_position(pos);
                    }
                });
            },
        );
        report
            .problems
            .extend(problems.iter().map(ProblemView::from));
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
    report.bytes = scan(&mut inp, None, report, None, |_| {});
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

/// Reads every record, checking keys for duplicates per database. `data` is the whole input
/// when it is mapped, to name duplicate keys. Returns bytes read.
fn scan<'a, I: Input<'a>>(
    inp: I,
    data: Option<&[u8]>,
    report: &mut Report,
    mut jobs: Option<&mut Ordered<'_, '_, '_, Job, Vec<Problem>>>,
    mut progress: impl FnMut(u64),
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
    let mut keys = KeyIndex::new(data);
    // Where each database's records begin, to say which db a duplicate is in.
    let mut db_starts: Vec<(u64, u64)> = Vec::new();
    let mut ticker = Ticker::default();
    // Where the value of the last job ends.
    let mut pushed_upto = 0;
    // (db, keys) of the keys read since the database last changed, so that the map is
    // updated once per database rather than once per key.
    let mut run = (0u64, 0u64);
    let add_run = |per_db: &mut std::collections::BTreeMap<u64, u64>, (db, n): (u64, u64)| {
        if n > 0 {
            *per_db.entry(db).or_default() += n;
        }
    };
    while let Some(rec) = reader.next_record() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                report.fatal(e);
                break;
            }
        };
        match rec.record {
            Record::Aux { key, value } if &key[..] == b"redis-ver" || &key[..] == b"valkey-ver" => {
                report.writer = Some(format!(
                    "{} {}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&value)
                ));
            }
            Record::SelectDb { db } => db_starts.push((rec.offset, db)),
            Record::ResizeDb { keys: n, .. } => {
                // A hint from the file: never reserve more than the bytes left could hold.
                let left = reader.input().remaining().unwrap_or(0);
                keys.reserve(n.min(left / 4) as usize);
            }
            Record::Key { db, key, meta, ty } => {
                report.keys += 1;
                if db != run.0 {
                    add_run(&mut report.keys_per_db, run);
                    run = (db, 0);
                }
                run.1 += 1;
                if meta.expire_ms.is_some() {
                    report.expires += 1;
                }
                keys.add(db, &key, rec.offset);
                if let Some(jobs) = jobs.as_deref_mut() {
                    match reader.skip_value() {
                        Ok(true) if ty == rdb::ObjectType::String && data.is_some() => {
                            let (start, end) = reader.value_span();
                            if let Some(p) = check_string(data, start, end, db, &key) {
                                report.push(&p);
                            }
                        }
                        Ok(true) => {
                            let (start, end) = reader.value_span();
                            let job = Job {
                                ty,
                                db,
                                record: rec.offset,
                                start,
                                end,
                            };
                            // The walk's progress since the last job, strings and streams
                            // checked here included, so that pages are kept for the other
                            // core as far back as it may still read.
                            jobs.push(job, end - pushed_upto);
                            pushed_upto = end;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            report.fatal(e);
                            break;
                        }
                    }
                }
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
        for p in reader.take_problems() {
            report.push(&p);
        }
        if ticker.due(reader.pos()) {
            progress(reader.pos());
        }
    }
    for p in reader.take_problems() {
        report.push(&p);
    }
    add_run(&mut report.keys_per_db, run);
    report.dbs = report.keys_per_db.len() as u64;
    for (first, dup) in keys.duplicates() {
        let name = key_at(data, dup)
            .map(|k| format!(" \"{}\"", escape(&k)))
            .unwrap_or_default();
        let message = format!(
            "duplicate key{name} (first at offset {first}): the server refuses to load this file"
        );
        let db = db_starts
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
    reader.pos()
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

/// A value to check, found by the framing pass: its type, db, the offset of its record (to
/// name the key in a report) and its bytes.
struct Job {
    ty: rdb::ObjectType,
    db: u64,
    record: u64,
    start: u64,
    end: u64,
}

/// Checks the string value at `start..end` of `data` where framing found it. Framing has read
/// its header, so all that is left is the control bytes of its LZF block, if compressed: a
/// fraction of what handing it to a worker costs.
fn check_string(data: Option<&[u8]>, start: u64, end: u64, db: u64, key: &[u8]) -> Option<Problem> {
    let span = data?.get(start as usize..end as usize)?;
    let e = rdb::primitive::skip_string(&mut SliceInput::new(span)).err()?;
    let (key, message) = (Some(key.to_vec()), e.kind.to_string());
    let ty = rdb::ObjectType::String;
    Some(value_problem(
        db,
        key,
        ty,
        Severity::Error,
        start + e.offset,
        message,
    ))
}

/// A problem in the value of the key `key` (of type `ty`, in database `db`).
fn value_problem(
    db: u64,
    key: Option<Vec<u8>>,
    ty: rdb::ObjectType,
    severity: Severity,
    offset: u64,
    message: String,
) -> Problem {
    Problem {
        severity,
        offset,
        message,
        context: rdb::error::Context {
            phase: Some(rdb::Phase::ReadValue),
            db: Some(db),
            key,
            type_name: Some(ty.name()),
        },
    }
}

/// Checks one value (on whichever core `scan::ordered` runs it) and returns its problems.
fn check_job(job: &Job, data: &[u8]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |severity, offset, message| {
        let key = key_at(Some(data), job.record);
        problems.push(value_problem(
            job.db, key, job.ty, severity, offset, message,
        ));
    };
    ValueReader::with_thread_reader(Checks::Duplicates, |values| {
        match values.read_span(data, job.start, job.end, job.ty, &mut rdb::Skip) {
            Ok(n) => {
                if rdb::value::is_empty_key(job.ty, n) {
                    push(
                        Severity::Warning,
                        job.start,
                        "empty key (the server skips it when loading)".into(),
                    );
                }
                for note in values.notes() {
                    push(note.severity, note.offset, note.message.clone());
                }
            }
            Err(e) => push(Severity::Error, e.offset, e.kind.to_string()),
        }
    });
    problems
}
