//! `rdbtool replay` of a capture directory (`rdbtool backlog capture`): its last epoch's
//! snapshot, then its stream from the snapshot's offset + 1 up to `--to-offset` (or the end).
//!
//! The stream goes through the replay engine's AOF path as a second log part after the
//! snapshot. A segment interleaves record headers with the payloads, so the part is built
//! first: `backlog slice` from the snapshot's offset, written to an unnamed temporary file in
//! `$TMPDIR` and mapped (as standard input is spooled), which bounds the memory it takes and
//! keeps the log walker, its exactly-once marks and `--resume` unchanged. That part is RESP
//! that applies on its own: SELECT first, transactions whole, the master's `ping` and
//! `REPLCONF` left out. Its bytes depend only on the capture's files and the end offset, so
//! the offsets of a checkpoint stay valid across runs; the capture's identity (source,
//! epoch, replid, offsets) is kept in the checkpoint, so a resume refuses another capture.

use std::io::{BufWriter, Seek, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::aof::LogInput;
use crate::cmd::slice::SliceArgs;
use crate::cmd::{count, iec};
use rdbtool::aof::slice::Selection;
use rdbtool::backlog::slice::{SliceError, Sliced, slice};
use rdbtool::backlog::store::{Capture, Epoch, META, Start};
use rdbtool::backlog::stream;
use rdbtool::filter::Filter;
use rdbtool::replay::LogPart;
use rdbtool::replay::checkpoint;
use rdbtool::scan::mapped::MappedFile;

/// A capture, ready to replay: its snapshot and the stream after it, both mapped.
pub struct CaptureInput {
    source: String,
    epoch: u32,
    replid: String,
    snapshot_name: String,
    snapshot: MappedFile,
    /// The snapshot's offset, the end of the stream read, and what the slice wrote.
    psync_offset: u64,
    end: u64,
    sliced: Sliced,
    stream: MappedFile,
}

/// Whether `path` is a capture directory (it holds `capture.json`).
pub fn is_capture(path: &Path) -> bool {
    path.is_dir() && path.join(META).is_file()
}

/// The capture at `path` if it is one (`Err`: the damage found in it, a problem: exit 1;
/// anything else that stops it is an error: exit 2).
pub fn open(path: &Path, slice: &SliceArgs) -> Result<Result<Option<CaptureInput>, String>> {
    if !is_capture(path) {
        return Ok(Ok(None));
    }
    match CaptureInput::open(path, slice) {
        Ok(c) => Ok(Ok(Some(c))),
        Err(OpenError::Damaged(why)) => Ok(Err(why)),
        Err(OpenError::Other(e)) => Err(e),
    }
}

/// What replay selects of a capture: keys by `filter`; `--to-offset` is the capture's own (the
/// stream is built up to it), the AOF-only options are refused.
pub fn selection(filter: &Filter) -> Selection {
    Selection {
        filter: filter.clone(),
        ..Selection::default()
    }
}

/// Why a capture cannot be replayed: damage found in it (exit 1), or anything else (exit 2).
enum OpenError {
    Damaged(String),
    Other(anyhow::Error),
}

fn other(msg: String) -> OpenError {
    OpenError::Other(anyhow::Error::msg(msg))
}

impl From<anyhow::Error> for OpenError {
    fn from(e: anyhow::Error) -> Self {
        OpenError::Other(e)
    }
}

impl CaptureInput {
    /// The capture at `dir` (see [`is_capture`]), with `--to-offset` from `slice` (its other
    /// options are AOF-only and refused).
    fn open(dir: &Path, slice: &SliceArgs) -> Result<CaptureInput, OpenError> {
        let shown = dir.display();
        if let Some(flag) = slice.given().filter(|&f| f != "--to-offset") {
            return Err(other(format!(
                "{flag} slices an AOF; {shown} is a capture directory (it replays from its \
                 snapshot: --to-offset OFFSET stops its stream at that offset)"
            )));
        }
        let to = match slice.to_offset() {
            None => None,
            Some(t) => Some(t.parse::<u64>().map_err(|_| {
                other(format!(
                    "--to-offset {t}: a capture's offsets are numbers (its replication offsets)"
                ))
            })?),
        };
        let capture = Capture::open(dir).map_err(|e| OpenError::Other(e.into()))?;
        let Some(epoch) = capture.epochs.last() else {
            return Err(other(format!(
                "{shown}: the capture has no epoch yet (no snapshot, no stream)"
            )));
        };
        let snapshot = snapshot_of(dir, epoch)?;
        let end = stream_end(epoch)?;
        let p = epoch.meta.psync_offset;
        match to {
            Some(t) if t < p => {
                return Err(other(format!(
                    "--to-offset {t} is before the snapshot of epoch {} (offset {p}): a \
                     capture is replayed from its snapshot",
                    epoch.meta.epoch
                )));
            }
            Some(t) if t > end => {
                return Err(other(format!(
                    "--to-offset {t} is after the end of the capture's stream (offset {end})"
                )));
            }
            _ => {}
        }
        let (sliced, stream) = build_stream(epoch, to)?;
        Ok(CaptureInput {
            source: capture.source,
            epoch: epoch.meta.epoch,
            replid: epoch.meta.replid.clone(),
            snapshot_name: rdbtool::backlog::store::snapshot_name(epoch.meta.epoch),
            snapshot,
            psync_offset: p,
            end: to.unwrap_or(end),
            sliced,
            stream,
        })
    }
}

impl LogInput for CaptureInput {
    /// The snapshot, then the stream as RESP.
    fn parts(&self) -> Vec<LogPart<'_>> {
        vec![
            LogPart {
                name: self.snapshot_name.clone(),
                data: self.snapshot.data(),
            },
            LogPart {
                name: format!("the stream of epoch {}", self.epoch),
                data: self.stream.data(),
            },
        ]
    }

    /// What the checkpoint keeps: a resume refuses another capture, epoch or end offset.
    fn identity(&self) -> Vec<String> {
        vec![
            format!(
                "capture of {} epoch {} replid {}",
                self.source, self.epoch, self.replid
            ),
            format!(
                "{} {} at offset {}",
                self.snapshot_name,
                self.snapshot.data().len(),
                self.psync_offset
            ),
            format!(
                "stream {}..={} as {} of RESP",
                self.psync_offset + 1,
                self.end,
                self.stream.data().len()
            ),
        ]
    }

    /// Total size, and a hash of both parts and the identity.
    fn size_and_hash(&self) -> (u64, String) {
        let parts = [self.snapshot.data(), self.stream.data()];
        let hashes: String = (parts.iter().map(|d| checkpoint::source_hash(d)))
            .chain(self.identity())
            .collect();
        let len = parts.iter().map(|d| d.len() as u64).sum();
        (len, checkpoint::source_hash(hashes.as_bytes()))
    }

    /// The summary's line about what was read.
    fn describe(&self) -> String {
        let s = &self.sliced;
        format!(
            "capture: epoch {} of {} (replid {}): {} at offset {}, then the stream {}..={} \
             ({}, {} of the master's ping/REPLCONF left out; staged as {} of RESP in a \
             temporary file)",
            self.epoch,
            self.source,
            self.replid,
            self.snapshot_name,
            self.psync_offset,
            self.psync_offset + 1,
            s.end,
            count(s.commands, "command"),
            s.link_traffic,
            iec(self.stream.data().len() as u64),
        )
    }

    /// What the replay of the stream leaves out, said as notices.
    fn what(&self) -> &'static str {
        "snapshot keys and stream commands"
    }

    fn notices(&self) -> Vec<String> {
        let mut notices = Vec::new();
        if let Some(at) = self.sliced.open_transaction {
            notices.push(format!(
                "the transaction whose MULTI is at offset {at} of the capture does not end by \
                 offset {}: it was not sent (a replica applies it whole)",
                self.end
            ));
        }
        notices
    }
}

/// The epoch's complete snapshot, mapped.
fn snapshot_of(dir: &Path, epoch: &Epoch) -> Result<MappedFile> {
    let n = epoch.meta.epoch;
    let Some(path) = &epoch.snapshot else {
        let why = match (epoch.meta.start_kind, &epoch.partial_snapshot) {
            (Start::Backlog, _) => "a backlog-only capture, which has no snapshot".to_string(),
            (_, Some(p)) => format!("its snapshot did not arrive whole ({})", p.display()),
            (_, None) => "its snapshot is missing".to_string(),
        };
        bail!(
            "{}: epoch {n} is {why}: replay needs a snapshot to start from (rdbtool backlog \
             slice gives its stream alone)",
            dir.display()
        );
    };
    MappedFile::open(path).with_context(|| path.display().to_string())
}

/// The last offset of the epoch's stream: its last segment's last whole record (a torn tail
/// does not count), read from that segment alone.
fn stream_end(epoch: &Epoch) -> Result<u64, OpenError> {
    let from = epoch.segments.last().map(|s| s.first);
    let reach = stream::records(epoch, from, &mut |_, _| ControlFlow::Continue(()))
        .context("reading the capture's last segment")?;
    match reach.fault.filter(|f| !f.torn) {
        Some(f) => Err(OpenError::Damaged(format!(
            "the capture is damaged: {f} (see backlog verify)"
        ))),
        None => Ok(reach.end),
    }
}

/// The stream after the snapshot up to `to`, as RESP in an unnamed temporary file, mapped.
fn build_stream(epoch: &Epoch, to: Option<u64>) -> Result<(Sliced, MappedFile), OpenError> {
    let tmp = std::env::temp_dir();
    let staging = || format!("staging the capture's stream in {}", tmp.display());
    let file = tempfile::tempfile().with_context(staging)?;
    let mut out = BufWriter::new(file);
    let sliced = match slice(epoch, epoch.meta.psync_offset, to, false, &mut out) {
        Ok(s) => s,
        Err(SliceError::Damaged(why)) => {
            return Err(OpenError::Damaged(format!(
                "the capture is damaged: {why} (see backlog verify)"
            )));
        }
        Err(SliceError::Io(e)) => return Err(anyhow::Error::from(e).context(staging()).into()),
        Err(e) => return Err(other(format!("epoch {}: {e}", epoch.meta.epoch))),
    };
    out.flush().with_context(staging)?;
    let mut file = out
        .into_inner()
        .map_err(|e| other(format!("{}: {e}", staging())))?;
    file.rewind().with_context(staging)?;
    let map = MappedFile::from_file(file, "the capture's staged stream").with_context(staging)?;
    Ok((sliced, map))
}
