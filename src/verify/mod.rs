//! Checking RDB files (or DUMP payloads) as deeply as the server does when it loads them, plus
//! what the server misses: every record and value, duplicate keys and members, the CRC-64.
//! The findings go into a [`Report`] per file; `rdbtool verify` renders them.

pub mod aof;
mod check;

use serde::Serialize;

use crate::rdb::error::escape;
use crate::rdb::{self, Problem, ProblemKind, Severity, StreamInput};
use crate::scan::mapped::MappedFile;
use crate::scan::walk;
use check::{Checker, scan};

/// What checking one file found, as `verify --format json` writes it.
#[derive(Serialize, Default)]
pub struct Report {
    pub file: String,
    pub status: &'static str,
    pub format: Option<String>,
    /// `redis-ver` or `valkey-ver` AUX field.
    pub writer: Option<String>,
    /// DUMP payloads: the object type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<&'static str>,
    pub dbs: u64,
    pub keys: u64,
    /// Keys per database number.
    pub keys_per_db: std::collections::BTreeMap<u64, u64>,
    pub expires: u64,
    pub bytes: u64,
    /// ok, disabled (stored as 0), absent (RDB < 5), mismatch, or unchecked (not reached).
    pub checksum: &'static str,
    pub problems: Vec<ProblemView>,
    /// The file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_error: Option<String>,
    /// Where the RDB data ended, once its end (and checksum) was read: what follows is an
    /// AOF's commands when the file is an RDB-preamble AOF.
    #[serde(skip)]
    pub rdb_end: Option<u64>,
}

/// A problem as a report shows it: the key escaped, the phase and the type by name.
#[derive(Serialize)]
pub struct ProblemView {
    pub severity: Severity,
    pub offset: u64,
    /// What was found, as a stable snake_case name to match on (see [`ProblemKind::code`]).
    pub code: &'static str,
    pub message: String,
    pub phase: Option<&'static str>,
    pub db: Option<u64>,
    pub key: Option<String>,
    pub r#type: Option<&'static str>,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView {
            severity: p.severity,
            offset: p.offset,
            code: p.kind.code(),
            message: p.kind.to_string(),
            phase: p.context.phase.map(|ph| ph.as_str()),
            db: p.context.db,
            key: p.context.key.as_deref().map(escape),
            r#type: p.context.type_name,
        }
    }
}

/// How a check ended: unreadable, or a problem that fails it (an error; with `strict`, a
/// warning too), or good.
pub fn verdict(
    unreadable: bool,
    mut severities: impl Iterator<Item = Severity>,
    strict: bool,
) -> Verdict {
    let failing = |s: Severity| s == Severity::Error || (strict && s == Severity::Warning);
    if unreadable {
        Verdict::Unreadable
    } else if severities.any(failing) {
        Verdict::Problems
    } else {
        Verdict::Good
    }
}

impl Report {
    /// The report on `file` (as messages name it), before it is checked.
    pub fn new(file: String) -> Self {
        Report {
            file,
            checksum: "unchecked",
            ..Default::default()
        }
    }

    /// How the check ended; with `strict`, warnings fail it too.
    pub fn verdict(&self, strict: bool) -> Verdict {
        let severities = self.problems.iter().map(|p| p.severity);
        verdict(self.io_error.is_some(), severities, strict)
    }

    pub(crate) fn push(&mut self, p: &Problem) {
        self.problems.push(p.into());
    }

    pub(crate) fn fatal(&mut self, e: rdb::Error) {
        if matches!(e.kind, rdb::ErrorKind::Crc { .. }) {
            self.checksum = "mismatch";
        }
        self.push(&Problem {
            severity: Severity::Error,
            offset: e.offset,
            kind: ProblemKind::Error(e.kind),
            context: e.context,
        });
    }

    /// The report once checked: its status set.
    pub fn finish(mut self) -> Self {
        self.status = self.verdict(false).as_str();
        self
    }
}

/// How checking a file ended, the worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Good,
    /// A problem was found.
    Problems,
    /// The file could not be read.
    Unreadable,
}

impl Verdict {
    /// As a report's `status` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "ok",
            Verdict::Problems => "problems",
            Verdict::Unreadable => "error",
        }
    }
}

/// Checks a mapped file into `report`: an RDB file, its values on `workers` threads beside
/// the one walking it (`progress` is told now and then the position before which nothing is
/// read again), or a DUMP payload with `dump_payload`.
pub fn check_mapped(
    file: &MappedFile,
    dump_payload: bool,
    workers: usize,
    report: &mut Report,
    progress: &mut dyn FnMut(u64),
) {
    let data = file.data();
    report.bytes = data.len() as u64;
    if dump_payload {
        check_payload(data, report);
        return;
    }
    let end = file.scan(|inp, release| {
        let checker = Checker { data };
        let end = scan(inp, Some(data), report, |reader, tally| {
            walk::walk(reader, tally, &checker, workers, &mut |pos| {
                release(pos);
                progress(pos);
            })
        });
        report.problems.sort_by_key(|p| p.offset);
        end
    });
    if matches!(report.checksum, "ok" | "disabled" | "absent") {
        report.rdb_end = Some(end);
    }
    if let Err(e) = file.check_size() {
        report.io_error = Some(e.to_string());
    }
}

/// Checks standard input, a pipe or a device, read once as it comes.
pub fn check_stream(mut stream: impl std::io::Read, dump_payload: bool, report: &mut Report) {
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

/// Checks a DUMP payload (type, value, version, CRC-64) into `report`.
pub fn check_payload(data: &[u8], report: &mut Report) {
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
