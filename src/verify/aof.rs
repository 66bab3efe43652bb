//! Checking an append-only file as the server loads it: a single file (RESP, or an RDB
//! preamble then RESP) or an `appendonlydir/` by its manifest (a base, then incr files). An RDB
//! part goes through the RDB checks of [`super`]; commands through [`crate::aof::check`]. Each
//! file gets `redis-check-aof`'s `ok_up_to` and `ok_up_to_line`, and whether what follows is a
//! truncated tail or damage.

use std::path::Path;

use serde::Serialize;

use super::{Report, Verdict};
use crate::aof::check::{self, Checked, Commands, Ending, Finding};
use crate::aof::files::{AofFiles, OpenError, Part, Sniffed, sniff};
use crate::aof::manifest::Role;
use crate::rdb::Severity;
use crate::scan::mapped::MappedFile;

/// What checking an AOF input found, as `verify --format json` writes it.
#[derive(Serialize, Default)]
pub struct AofReport {
    pub file: String,
    pub status: &'static str,
    /// Always `aof`: tells this report from an RDB file's.
    pub kind: &'static str,
    /// What the input is: `appendonlydir with manifest, base (RDB) + 2 incr files`.
    pub layout: String,
    /// The release whose commands were checked against.
    pub commands_of: String,
    pub commands: u64,
    pub parts: Vec<PartReport>,
    /// Every problem of every file, in load order.
    pub problems: Vec<AofProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_error: Option<String>,
}

/// One file of the input, in load order.
#[derive(Serialize)]
pub struct PartReport {
    pub file: String,
    /// `aof` (a single file), `base` or `incr`.
    pub role: &'static str,
    /// `RESP`, `RDB` or `RDB preamble + RESP`.
    pub format: &'static str,
    pub size: u64,
    pub commands: u64,
    /// As `redis-check-aof` prints them: the start of the last complete command outside a
    /// transaction, and its line count there (run on across the files of a manifest).
    pub ok_up_to: u64,
    pub ok_up_to_line: u64,
    pub diff: u64,
    /// Where a repaired copy of this file ends.
    pub cut: u64,
    pub ending: Ending,
    /// The file ends inside a command or a transaction: what a crash leaves.
    pub truncated_tail: bool,
    /// What ends the file early, or else its first error.
    pub problem: Option<PartProblem>,
    /// The RDB part's own report (a base or a preamble).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdb: Option<Report>,
}

#[derive(Serialize, Clone)]
pub struct PartProblem {
    pub code: &'static str,
    pub offset: u64,
    pub message: String,
}

#[derive(Serialize, Clone)]
pub struct AofProblem {
    pub severity: Severity,
    pub file: String,
    pub code: &'static str,
    pub offset: u64,
    pub message: String,
}

/// How an AOF input is checked.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The release to check commands against when no RDB part names its writer.
    pub release: Option<crate::release::Release>,
    /// Value-checking threads per RDB part.
    pub workers: usize,
}

impl AofReport {
    fn new(file: String) -> AofReport {
        AofReport {
            file,
            kind: "aof",
            ..Default::default()
        }
    }

    pub fn verdict(&self, strict: bool) -> Verdict {
        let severities = self.problems.iter().map(|p| p.severity);
        super::verdict(self.io_error.is_some(), severities, strict)
    }

    fn push(&mut self, severity: Severity, file: &str, f: (&'static str, u64, String)) {
        self.problems.push(AofProblem {
            severity,
            file: file.to_string(),
            code: f.0,
            offset: f.1,
            message: f.2,
        });
    }

    fn finish(mut self) -> AofReport {
        self.status = self.verdict(false).as_str();
        self.commands = self.parts.iter().map(|p| p.commands).sum();
        self
    }
}

/// Checks the AOF at `path` (a file, an `appendonlydir/` or its manifest), named `label`.
pub fn check_path(path: &Path, label: String, opts: Options) -> AofReport {
    let mut report = AofReport::new(label);
    let files = match AofFiles::open(path) {
        Ok(files) => files,
        Err(e) => {
            opened_wrong(&mut report, e);
            return report.finish();
        }
    };
    let mut maps = Vec::new();
    for part in &files.parts {
        match MappedFile::open(&part.path) {
            Ok(map) => maps.push(map),
            Err(e) => {
                report.io_error = Some(format!("{}: {e}", part.path.display()));
                return report.finish();
            }
        }
    }
    if let Some((manifest, m)) = &files.manifest {
        let dir = manifest.parent().unwrap_or(Path::new("."));
        for e in m.entries.iter().filter(|e| e.role == Role::History) {
            if !dir.join(&e.name).exists() {
                let message = format!(
                    "line {}: history file {} is listed but missing (the server never loads history files)",
                    e.line, e.name
                );
                report.push(
                    Severity::Notice,
                    &manifest.display().to_string(),
                    ("history-missing", 0, message),
                );
            }
        }
    }
    let datas: Vec<&[u8]> = maps.iter().map(|m| m.data()).collect();
    let release = datas
        .first()
        .filter(|d| sniff(&d[..d.len().min(16)]) == Sniffed::Rdb)
        .and_then(|d| crate::aof::writer_release(d))
        .or(opts.release);
    let commands = Commands::new(release);
    let checked = check_parts(&files.parts, &maps, commands, opts.workers);
    assemble(&mut report, &files, checked, commands);
    for m in &maps {
        if let Err(e) = m.check_size() {
            report.io_error = Some(e.to_string());
        }
    }
    report.finish()
}

/// A single file already checked as an RDB file whose data ends before the file does, with
/// RESP commands after it: an RDB-preamble AOF.
pub fn from_preamble(label: String, file: &MappedFile, rdb: Report, opts: Options) -> AofReport {
    let mut report = AofReport::new(label.clone());
    let data = file.data();
    let release = crate::aof::writer_release(data).or(opts.release);
    let commands = Commands::new(release);
    let files = AofFiles {
        manifest: None,
        parts: vec![Part {
            path: label.into(),
            entry: None,
        }],
    };
    let checked = vec![part_check(file, Some(rdb), commands)];
    assemble(&mut report, &files, checked, commands);
    report.finish()
}

/// What one part's check gives: its RDB report (if it has an RDB part), its commands'.
struct PartChecked {
    size: u64,
    rdb: Option<Report>,
    resp: Option<Checked>,
    format: &'static str,
}

/// Checks the parts, two at a time where there are cores for it (a base's RDB on one thread
/// while the incr files are read on another).
fn check_parts(
    parts: &[Part],
    maps: &[MappedFile],
    commands: Commands,
    workers: usize,
) -> Vec<PartChecked> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(parts.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, PartChecked)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(map) = maps.get(i) else { break };
                        let rdb = rdb_report(&parts[i], map, workers);
                        done.push((i, part_check(map, rdb, commands)));
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
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, c)| c).collect()
}

/// The RDB checks of a part that starts with an RDB signature.
fn rdb_report(part: &Part, map: &MappedFile, workers: usize) -> Option<Report> {
    let data = map.data();
    if sniff(&data[..data.len().min(16)]) != Sniffed::Rdb {
        return None;
    }
    let mut report = Report::new(part.path.display().to_string());
    super::check_mapped(map, false, workers, &mut report, &mut |_| {});
    Some(report.finish())
}

/// The commands of a part, after its RDB data if it has any.
fn part_check(map: &MappedFile, rdb: Option<Report>, commands: Commands) -> PartChecked {
    let data = map.data();
    let size = data.len() as u64;
    let release = |start, end| map.release(start, end);
    let Some(mut rdb) = rdb else {
        let resp = check::check_split(data, 0, commands, check::SPLIT_MIN, &release);
        return PartChecked {
            size,
            rdb: None,
            resp: Some(resp),
            format: crate::aof::files::kind(false, true),
        };
    };
    // Bytes after the RDB data are the AOF's commands here, not a warning.
    rdb.problems.retain(|p| {
        !(p.phase == Some("trailer") && p.message.ends_with("after the end of the RDB data"))
    });
    let rdb = rdb.finish();
    let split =
        |end: u64| check::check_split(data, end as usize, commands, check::SPLIT_MIN, &release);
    let resp = rdb.rdb_end.map(split);
    let format = crate::aof::files::kind(true, rdb.rdb_end.is_some_and(|end| end < size));
    PartChecked {
        size,
        rdb: Some(rdb),
        resp,
        format,
    }
}

/// The report from each part's findings: ok_up_to_line counted on across the files, the
/// layout, a truncated tail outside the last file named.
fn assemble(
    report: &mut AofReport,
    files: &AofFiles,
    checked: Vec<PartChecked>,
    commands: Commands,
) {
    report.commands_of = commands.describe();
    report.layout = layout(files, &checked);
    let mut lines = 1;
    let last = checked.len().saturating_sub(1);
    for (i, (part, c)) in files.parts.iter().zip(checked).enumerate() {
        let name = part.describe();
        let short = part.entry.as_ref().map_or(name.clone(), |e| e.name.clone());
        let mut problem = None;
        if let Some(rdb) = &c.rdb {
            for p in &rdb.problems {
                let f = ("rdb", p.offset, p.message.clone());
                if p.severity == Severity::Error && problem.is_none() {
                    problem = Some(PartProblem {
                        code: f.0,
                        offset: f.1,
                        message: f.2.clone(),
                    });
                }
                report.push(p.severity, &short, f);
            }
            if let Some(e) = &rdb.io_error {
                report.io_error = Some(format!("{short}: {e}"));
            }
        }
        let resp = c.resp.unwrap_or_else(unread);
        let tail = resp.ending.truncated_tail();
        if problem.is_none() {
            problem = ending_problem(&resp);
        }
        for f in &resp.findings {
            report.push(f.severity, &short, (f.code, f.offset, f.message.clone()));
        }
        if resp.more > 0 {
            let message = format!("{} more problems like these not listed", resp.more);
            report.push(Severity::Notice, &short, ("more", resp.cut, message));
        }
        if tail && i != last {
            let message = "a truncated tail in a file that is not the last: the server refuses to load the AOF (only the last file may be cut)".to_string();
            report.push(
                Severity::Error,
                &short,
                ("truncated-not-last", resp.cut, message),
            );
        }
        report.parts.push(PartReport {
            file: short,
            role: part.entry.as_ref().map_or("aof", |e| e.role.name()),
            format: c.format,
            size: c.size,
            commands: resp.commands,
            ok_up_to: resp.ok_up_to,
            ok_up_to_line: lines + resp.lines,
            diff: c.size - resp.ok_up_to.min(c.size),
            cut: resp.cut,
            ending: resp.ending,
            truncated_tail: tail,
            problem,
            rdb: c.rdb,
        });
        lines += resp.lines;
    }
}

/// A part whose RDB data could not be read to its end: nothing of it is good.
fn unread() -> Checked {
    Checked {
        commands: 0,
        ending: Ending::Damaged,
        cut: 0,
        ok_up_to: 0,
        lines: 0,
        findings: Vec::new(),
        more: 0,
    }
}

/// The finding that ended the file early, else its first error.
fn ending_problem(c: &Checked) -> Option<PartProblem> {
    let ends = |f: &&Finding| {
        matches!(
            f.code,
            "truncated"
                | "malformed"
                | "nested-multi"
                | "exec-without-multi"
                | "eof-in-multi"
                | "long-annotation"
        )
    };
    let first_error = |f: &&Finding| f.severity == Severity::Error;
    let f = c
        .findings
        .iter()
        .find(ends)
        .or_else(|| c.findings.iter().find(first_error))?;
    Some(PartProblem {
        code: f.code,
        offset: f.offset,
        message: f.message.clone(),
    })
}

/// `a single file, RDB preamble + RESP`, `appendonlydir with manifest, base (RDB) + 2 incr files`.
fn layout(files: &AofFiles, checked: &[PartChecked]) -> String {
    files.describe(|i| checked.get(i).map_or("RESP", |c| c.format))
}

/// An input that cannot be opened as an AOF: a broken manifest or a missing file is a problem
/// found; anything else could not be read.
fn opened_wrong(report: &mut AofReport, e: OpenError) {
    let message = e.to_string();
    match e {
        OpenError::Manifest { path, source } => {
            let text = format!("manifest line {}: {}", source.line, source.what);
            report.push(
                Severity::Error,
                &path.display().to_string(),
                ("manifest", 0, text),
            );
        }
        OpenError::Missing { manifest, .. } => {
            report.push(
                Severity::Error,
                &manifest.display().to_string(),
                ("missing-file", 0, message),
            );
        }
        OpenError::NoManifest(dir) => {
            let what = "is a directory without an AOF manifest (*.manifest) in it, not a file";
            let hint = crate::backlog::store::capture_hint(&dir);
            report.io_error = Some(hint.unwrap_or_else(|| what.into()));
        }
        _ => report.io_error = Some(message),
    }
}
