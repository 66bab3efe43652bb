//! Subcommands, one file each, and what they share.

pub mod args;
pub mod diff;
pub mod export;
pub mod export_aof;
pub mod files;
pub mod inspect;
pub mod inspect_aof;
pub mod replay;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context;

use rdbtool::rdb::SliceInput;
use rdbtool::scan::mapped::MappedFile;

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

/// The exit status for an input that could not be read as an RDB file: an AOF could not be
/// checked at all (2, as verify and diff say), anything else is a problem found (1).
pub fn rdb_exit(e: &rdbtool::rdb::Error) -> Exit {
    match e.kind {
        rdbtool::rdb::ErrorKind::Aof { .. } => Exit::Error,
        _ => Exit::Problems,
    }
}

/// Files above this size get a progress bar (on a terminal).
pub const PROGRESS_MIN: u64 = 64 << 20;

/// A byte-position progress bar for one file.
pub fn bar(len: u64, path: &std::path::Path) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::new(len)
        .with_style(style)
        .with_message(path.display().to_string())
}

/// Runs `f` over a mapped file (see [`MappedFile::scan`]) with a progress bar on stderr when
/// it is a terminal and the file is big enough to wait for, unless `quiet`. An error if the
/// file changed size meanwhile, whatever `f` made of it.
pub fn scan_file<R>(
    file: &MappedFile,
    path: &std::path::Path,
    quiet: bool,
    f: impl FnOnce(SliceInput<'_>, &mut dyn FnMut(u64)) -> R,
) -> anyhow::Result<R> {
    use std::io::IsTerminal;
    let len = file.data().len() as u64;
    let bar =
        (!quiet && len >= PROGRESS_MIN && std::io::stderr().is_terminal()).then(|| bar(len, path));
    let result = file.scan(|inp, release| {
        f(inp, &mut |pos| {
            release(pos);
            if let Some(b) = &bar {
                b.set_position(pos);
            }
        })
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    file.check_size()
        .with_context(|| path.display().to_string())?;
    Ok(result)
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
}
