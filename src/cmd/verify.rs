//! `rdbtool verify`: checks RDB files (or DUMP payloads) as deeply as the server does when it
//! loads them, plus what the server misses, and exits 0 (good), 1 (problem found) or 2 (could
//! not check).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use rdbtool::rdb::Severity;
use rdbtool::scan::ordered;
use rdbtool::scan::thread::{caught, joined};
use rdbtool::verify::aof::{self as aof_check, AofReport};
use rdbtool::verify::{self, Report, Verdict};

use super::args::CommonArgs;
use super::files::Source;
use super::{Outcome, Progress, count, iec, thousands};

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
    #[command(flatten)]
    common: CommonArgs,
    /// AOF: check command names and arities against this release, e.g. `7.0`, `valkey-8.1`,
    /// when no RDB preamble or base names the release that wrote it (default: any release).
    #[arg(long, value_name = "X.Y")]
    target_version: Option<rdbtool::release::Release>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutFormat {
    Text,
    Json,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    super::files::refuse_stdout_as_input(args.files.iter().map(|f| f.as_path()))?;
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        anyhow::bail!("standard input (-) can be read only once");
    }
    let reports = check_all(&args, &args.common.progress())?;
    let worst = reports
        .iter()
        .map(|r| r.verdict(args.strict))
        .max()
        .unwrap_or(Verdict::Good);
    match args.format {
        OutFormat::Json => {
            let doc = serde_json::json!({ "ok": worst == Verdict::Good, "strict": args.strict, "files": reports });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        OutFormat::Text => {
            for r in &reports {
                match r {
                    Checked::Rdb(r) => write_text(r, args.strict, out)?,
                    Checked::Aof(r) => super::verify_aof::write_text(r, args.strict, out)?,
                }
            }
        }
    }
    // Each file's verdict is in the report.
    Ok(match worst {
        Verdict::Good => Outcome::Clean,
        Verdict::Problems => Outcome::Problems(Vec::new()),
        Verdict::Unreadable => Outcome::Unfinished(Vec::new()),
    })
}

/// One input's report: an RDB file (or DUMP payload), or an AOF.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Checked {
    Rdb(Report),
    Aof(AofReport),
}

impl Checked {
    fn verdict(&self, strict: bool) -> Verdict {
        match self {
            Checked::Rdb(r) => r.verdict(strict),
            Checked::Aof(r) => r.verdict(strict),
        }
    }
}

/// Checks the files on as many threads as there are cores, keeping the given order.
/// A file whose check panicked is reported as one that could not be checked.
fn check_all(args: &Args, progress: &Progress) -> Result<Vec<Checked>> {
    let walks = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(args.files.len());
    let workers = ordered::workers_for(walks);
    let next = AtomicUsize::new(0);
    let mut reports: Vec<(usize, Checked)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..walks)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = args.files.get(i) else { break };
                        let check = || check_file(path, args, workers, progress);
                        let report = caught("checking the file", check).unwrap_or_else(|e| {
                            let mut report = Report::new(path.display().to_string());
                            report.io_error = Some(e.to_string());
                            Checked::Rdb(report.finish())
                        });
                        done.push((i, report));
                    }
                    done
                })
            })
            .collect();
        let done: Result<Vec<_>, _> = handles
            .into_iter()
            .map(|h| joined(h.join(), "checking files"))
            .collect();
        done.map(|d| d.into_iter().flatten().collect())
    })?;
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// Checks one file, its values on `workers` threads beside the one walking it. An AOF (a
/// directory, a manifest, RESP commands, or an RDB followed by commands) is checked as one.
fn check_file(path: &Path, args: &Args, workers: usize, progress: &Progress) -> Checked {
    let dump_payload = args.dump_payload;
    let opts = aof_check::Options {
        release: args.target_version,
        workers,
    };
    let label = path.display().to_string();
    if !dump_payload && super::verify_aof::is_aof(path) {
        return Checked::Aof(aof_check::check_path(path, label, opts));
    }
    let mut report = Report::new(label.clone());
    match super::files::open(path) {
        Ok(Source::Mapped(file)) => {
            let len = file.data().len() as u64;
            let bar = (!dump_payload).then(|| progress.bar(len, path)).flatten();
            let mut progress = |pos| {
                if let Some(b) = &bar {
                    b.set_position(pos);
                }
            };
            verify::check_mapped(&file, dump_payload, workers, &mut report, &mut progress);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if !dump_payload && super::verify_aof::has_commands_after(&file, &report) {
                return Checked::Aof(aof_check::from_preamble(label, &file, report, opts));
            }
        }
        Ok(Source::Stream(stream)) => verify::check_stream(stream, dump_payload, &mut report),
        Err(e) => report.io_error = Some(e.to_string()),
    }
    Checked::Rdb(report.finish())
}

/// How a problem's line starts.
pub(super) fn level(severity: Severity, strict: bool) -> &'static str {
    match severity {
        Severity::Warning if strict => "error",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Notice => "notice",
    }
}

pub(crate) fn write_text(r: &Report, strict: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for p in &r.problems {
        let level = level(p.severity, strict);
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
    let verdict = if r.verdict(strict) == Verdict::Good {
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
