//! Subcommands, one file each, and what they share.

pub mod aof;
pub mod args;
pub mod backlog;
pub mod diff;
pub mod export;
pub mod export_aof;
pub mod files;
pub mod inspect;
pub mod inspect_aof;
pub mod progress;
pub mod replay;
pub mod slice;
pub mod sync;
pub mod verify;
pub mod verify_aof;

use std::process::ExitCode;

pub use progress::Progress;

/// Exit status: 0 all good, 1 a problem found in the input, 2 could not do the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok = 0,
    Problems = 1,
    Error = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// How a subcommand ended, short of an error: `main.rs` alone prints its lines (on standard
/// error, after `rdbtool: `, once the output is flushed) and turns it into the exit status. A
/// subcommand that could not start or go on returns an error instead (exit 2, its message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, and nothing wrong found.
    Clean,
    /// A problem found in the input (a damaged file, differences, keys refused): exit 1.
    Problems(Vec<String>),
    /// Could not finish, as these lines (or the output already written) say: exit 2.
    Unfinished(Vec<String>),
}

impl Outcome {
    /// A problem found, said by one line.
    pub fn problem(line: String) -> Self {
        Outcome::Problems(vec![line])
    }

    /// Could not finish, said by one line.
    pub fn unfinished(line: String) -> Self {
        Outcome::Unfinished(vec![line])
    }

    pub fn exit(&self) -> Exit {
        match self {
            Outcome::Clean => Exit::Ok,
            Outcome::Problems(_) => Exit::Problems,
            Outcome::Unfinished(_) => Exit::Error,
        }
    }

    /// What goes to standard error, each line after `rdbtool: `.
    pub fn lines(&self) -> &[String] {
        match self {
            Outcome::Clean => &[],
            Outcome::Problems(lines) | Outcome::Unfinished(lines) => lines,
        }
    }
}

/// An input that could not be read as an RDB file, named in one line: a problem found, except
/// for an AOF, which could not be checked at all (as verify and diff say).
pub fn rdb_failure(path: &std::path::Path, e: &rdbtool::rdb::Error) -> Outcome {
    let line = format!("{}: {e}", path.display());
    match e.kind {
        rdbtool::rdb::ErrorKind::Aof { .. } => Outcome::unfinished(line),
        _ => Outcome::problem(line),
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub use rdbtool::text::{count, thousands};

/// A size in IEC units: 1.0 GiB.
pub fn iec(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(123), "123");
        assert_eq!(iec(512), "512 B");
        assert_eq!(iec(1 << 30), "1.0 GiB");
    }

    #[test]
    fn outcomes_are_exit_statuses_and_lines() {
        use rdbtool::rdb::{Error, ErrorKind};
        let path = std::path::Path::new("dump.rdb");
        let eof = ErrorKind::UnexpectedEof {
            need: 4,
            what: "a length",
        };
        let damaged = rdb_failure(path, &Error::new(9, eof));
        assert_eq!(damaged.exit(), Exit::Problems);
        assert_eq!(damaged.lines().len(), 1);
        assert!(damaged.lines()[0].starts_with("dump.rdb: "), "{damaged:?}");
        let aof = ErrorKind::Aof {
            start: "*2".into(),
            what: "an AOF",
        };
        let aof = rdb_failure(path, &Error::new(0, aof));
        assert_eq!(aof.exit(), Exit::Error);
        assert_eq!(Outcome::Clean.exit(), Exit::Ok);
        assert!(Outcome::Clean.lines().is_empty());
        let left_out = Outcome::Problems(vec!["left out: a".into(), "left out: 1 more".into()]);
        assert_eq!(left_out.lines().len(), 2);
        assert_eq!(Outcome::unfinished("x".into()).exit(), Exit::Error);
    }
}
