//! `backlog verify`: every epoch of a capture checked — its snapshot by the RDB verifier, its
//! stream's records (checksums, offsets continuing across segments, segment names) and the
//! RESP framing of every command in them.

use std::ops::ControlFlow;

use serde::Serialize;

use super::parts;
use super::store::{Capture, Epoch, Start};
use super::stream::{self, Fault, Walked};
use crate::aof::log::Kind;
use crate::scan::mapped::MappedFile;
use crate::verify::{self, Report, Verdict};

/// What checking one epoch found.
#[derive(Serialize)]
pub struct EpochCheck {
    pub epoch: u32,
    pub start_kind: Start,
    pub replid: String,
    pub psync_offset: u64,
    /// The first offset kept and the last one read whole.
    pub start: u64,
    pub end: u64,
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub commands: u64,
    /// The snapshot's own report (full resyncs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Report>,
    /// What is wrong, each a line; the tail a kill leaves is a notice (see `torn`), not one.
    pub problems: Vec<String>,
    /// Notices: a torn last record, a snapshot that never finished, a transaction open at the
    /// end of the capture.
    pub notices: Vec<String>,
}

impl EpochCheck {
    pub fn verdict(&self) -> Verdict {
        let snapshot = self
            .snapshot
            .as_ref()
            .map_or(Verdict::Good, |r| r.verdict(false));
        let stream = match self.problems.is_empty() {
            true => Verdict::Good,
            false => Verdict::Problems,
        };
        snapshot.max(stream)
    }
}

/// Checks every epoch; values of the snapshots on `workers` threads.
pub fn check(capture: &Capture, workers: usize) -> std::io::Result<Vec<EpochCheck>> {
    let last = capture.epochs.len().saturating_sub(1);
    let mut checks = Vec::new();
    for (i, epoch) in capture.epochs.iter().enumerate() {
        checks.push(check_epoch(epoch, i == last, workers)?);
    }
    Ok(checks)
}

fn check_epoch(epoch: &Epoch, last: bool, workers: usize) -> std::io::Result<EpochCheck> {
    let m = &epoch.meta;
    let mut c = EpochCheck {
        epoch: m.epoch,
        start_kind: m.start_kind,
        replid: m.replid.clone(),
        psync_offset: m.psync_offset,
        start: m.start,
        end: m.start - 1,
        segments: epoch.segments.len(),
        records: 0,
        bytes: 0,
        commands: 0,
        snapshot: None,
        problems: Vec::new(),
        notices: Vec::new(),
    };
    check_snapshot(epoch, last, workers, &mut c);
    let (walked, commands) = walk(epoch, parts::threads())?;
    c.commands = commands;
    let (reach, problem, open_multi) = (walked.reach, walked.problem, walked.open_multi);
    (c.end, c.records, c.bytes) = (reach.end, reach.records, reach.bytes);
    match reach.fault {
        Some(f) if f.torn && last => c.notices.push(torn(&f)),
        Some(f) => c.problems.push(f.to_string()),
        None => {}
    }
    if let Some(p) = problem {
        c.problems
            .push(format!("stream offset {}: {}", p.offset(), what(&p)));
    }
    if reach.end < m.end {
        c.problems.push(format!(
            "capture.json says the stream was kept up to offset {} but the segments end at {}",
            m.end, reach.end
        ));
    }
    if let Some(at) = open_multi.filter(|_| last && c.problems.is_empty()) {
        c.notices.push(format!(
            "the capture ends inside a transaction (MULTI at offset {at}): its commands are kept, and a replay leaves them out"
        ));
    }
    Ok(c)
}

/// Walks the commands of `epoch` on `threads` threads: the walk (its open MULTI that of the
/// last command) and the number of commands.
pub(crate) fn walk(epoch: &Epoch, threads: usize) -> std::io::Result<(Walked, u64)> {
    let work = |range| {
        let (mut commands, mut open) = (0, None);
        let w = stream::commands_in(epoch, range, None, &mut |cmd| {
            commands += 1;
            open = cmd.logged.multi.filter(|_| cmd.logged.kind != Kind::Exec);
            ControlFlow::Continue(())
        })?;
        Ok((
            Walked {
                open_multi: open,
                ..w
            },
            commands,
        ))
    };
    let mut all = 0;
    let walked = parts::walk(epoch, threads, &work, &mut |n| {
        all += n;
        true
    })?;
    Ok((walked.expect("every part taken"), all))
}

fn what(p: &crate::resp::parse::Problem) -> String {
    match p {
        crate::resp::parse::Problem::Truncated { .. } => "a record ends inside a command".into(),
        crate::resp::parse::Problem::Malformed { what, .. } => what.to_string(),
    }
}

fn torn(f: &Fault) -> String {
    format!(
        "{f}: a torn last record, what a capture killed while writing leaves; `backlog capture --continue` cuts it"
    )
}

fn check_snapshot(epoch: &Epoch, last: bool, workers: usize, c: &mut EpochCheck) {
    if epoch.meta.start_kind != Start::Full {
        return;
    }
    let Some(path) = &epoch.snapshot else {
        // A capture killed after the master's +FULLRESYNC, before its snapshot was whole,
        // leaves the epoch with a `.part` file or, killed before it was made (or while
        // `--continue` was removing it), with none.
        match last && epoch.segments.is_empty() {
            true => c.notices.push(
                "the snapshot never finished arriving (the capture stopped during the full resync); `--continue` starts over".into(),
            ),
            false => c.problems.push(format!("the snapshot of epoch {} is missing", epoch.meta.epoch)),
        }
        return;
    };
    let mut report = Report::new(path.display().to_string());
    match MappedFile::open(path) {
        Ok(file) => verify::check_mapped(&file, false, workers, &mut report, &mut |_| {}),
        Err(e) => report.io_error = Some(e.to_string()),
    }
    c.snapshot = Some(report.finish());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::store::Writer;
    use crate::backlog::store::writer::EpochStart;

    /// A capture killed between the master's +FULLRESYNC and the snapshot's first byte.
    #[test]
    fn an_epoch_killed_before_its_snapshot_began_is_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap");
        let mut w = Writer::create(&path, "redis://h:1", 1 << 20).unwrap();
        let start = EpochStart {
            start_kind: Start::Full,
            replid: "a".repeat(40),
            psync_offset: 0,
            server: None,
            backlog_size: None,
            replid2: None,
        };
        w.start_epoch(start).unwrap();
        drop(w);
        let checks = check(&Capture::open(&path).unwrap(), 1).unwrap();
        assert!(checks[0].problems.is_empty(), "{:?}", checks[0].problems);
        assert_eq!(checks[0].verdict(), Verdict::Good);
        assert!(checks[0].notices[0].contains("starts over"));
        let (w, recovery) = Writer::reopen(&path, 1 << 20).unwrap();
        assert_eq!(recovery.abandoned, Some(1));
        assert!(!w.has_epoch());
    }
}
