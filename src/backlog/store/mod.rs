//! A capture directory: the replication stream kept as a log.
//!
//! ```text
//! DIR/capture.json                    what was captured from where (replaced atomically)
//! DIR/snapshot.<epoch>.rdb            the RDB a full resync sent (".part" while it arrives)
//! DIR/stream.<epoch>.<first>-<last>   a sealed segment: the records of offsets first..=last
//! DIR/stream.<epoch>.<first>-inprogress   the segment being written
//! ```
//!
//! An epoch is one unbroken history: a full resync (snapshot, then the stream from the
//! snapshot's offset + 1) or a backlog-only capture (the stream from the oldest byte the
//! master still held), extended by partial resyncs (`+CONTINUE`) without a gap. A full resync
//! on a later connection starts a new epoch. Each segment holds checked records
//! ([`record`]) of whole commands, so any offset is found from the segment names and a walk
//! over record headers, and a capture killed at any moment leaves at most a torn last record,
//! which [`Writer::reopen`] reports and cuts.

pub mod record;
pub mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use record::{At, Bad, Flaw, Record, Records};
pub use writer::{Recovery, Writer};

use crate::scan::mapped::MappedFile;

pub const META: &str = "capture.json";
const FORMAT: u32 = 1;

/// `capture.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// Its format version (1).
    pub format: u32,
    /// The master, as a URL without credentials.
    pub source: String,
    pub epochs: Vec<EpochMeta>,
}

/// How an epoch's stream began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// `+FULLRESYNC`: a snapshot at `psync_offset`, then the stream.
    Full,
    /// `+CONTINUE` from the oldest byte of the master's backlog: no snapshot.
    Backlog,
}

/// One epoch in `capture.json`. `end` and `updated` are as of the last rewrite; the segments
/// are the truth (a capture killed since wrote more).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMeta {
    pub epoch: u32,
    pub start_kind: Start,
    /// The master's replication id when the epoch began (from `+FULLRESYNC` or INFO).
    pub replid: String,
    /// The master's secondary id and the last offset it is valid for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replid2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_repl_offset: Option<u64>,
    /// The offset the snapshot stands for (`+FULLRESYNC <id> <offset>`), or the offset before
    /// the first byte asked for in a backlog-only capture.
    pub psync_offset: u64,
    /// The offset of the first byte kept: `psync_offset + 1 + skipped`.
    pub start: u64,
    /// Bytes at the start of a backlog-only capture that finish a command begun before the
    /// backlog's oldest byte: not commands, so not kept.
    #[serde(default)]
    pub skipped: u64,
    /// The last offset kept (`start - 1` when none).
    pub end: u64,
    /// The snapshot's file name (full resyncs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The master's version (`INFO server`), and its `repl-backlog-size` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_size: Option<u64>,
    /// Partial resyncs that extended this epoch: the first offset each brought.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continued_at: Vec<u64>,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub updated_ms: u64,
}

/// A segment file.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    pub epoch: u32,
    pub first: u64,
    /// `None` while in progress.
    pub last: Option<u64>,
}

impl Segment {
    pub fn name(&self) -> String {
        name_of(&self.path)
    }

    pub fn map(&self) -> std::io::Result<MappedFile> {
        MappedFile::open(&self.path)
    }
}

/// An epoch's files.
#[derive(Debug, Clone)]
pub struct Epoch {
    pub meta: EpochMeta,
    /// The snapshot, once complete.
    pub snapshot: Option<PathBuf>,
    /// A snapshot that was still arriving when the capture stopped.
    pub partial_snapshot: Option<PathBuf>,
    /// In offset order.
    pub segments: Vec<Segment>,
}

/// A capture directory, opened for reading (nothing is changed).
#[derive(Debug, Clone)]
pub struct Capture {
    pub dir: PathBuf,
    pub source: String,
    pub epochs: Vec<Epoch>,
}

/// Why a directory cannot be read as a capture.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: not a capture directory (no {META})", .0.display())]
    NotCapture(PathBuf),
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    #[error("{}: {}", .0.display(), .1)]
    Meta(PathBuf, String),
    #[error("{}: {}", .0.display(), .1)]
    Files(PathBuf, String),
}

impl Capture {
    pub fn open(dir: &Path) -> Result<Capture, OpenError> {
        let meta_path = dir.join(META);
        let text = match std::fs::read(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::NotCapture(dir.to_owned()));
            }
            Err(e) => return Err(OpenError::Io(meta_path, e)),
        };
        let meta: Meta = serde_json::from_slice(&text)
            .map_err(|e| OpenError::Meta(meta_path.clone(), e.to_string()))?;
        if meta.format != FORMAT {
            let msg = format!("format {} (this rdbtool reads {FORMAT})", meta.format);
            return Err(OpenError::Meta(meta_path, msg));
        }
        let files = list(dir).map_err(|e| OpenError::Io(dir.to_owned(), e))?;
        let epochs = assign(dir, &meta, files).map_err(|e| OpenError::Files(dir.to_owned(), e))?;
        Ok(Capture {
            dir: dir.to_owned(),
            source: meta.source,
            epochs,
        })
    }
}

/// A file of a capture directory, by its name.
#[derive(Debug, PartialEq, Eq)]
enum File {
    Snapshot {
        epoch: u32,
        partial: bool,
    },
    Segment {
        epoch: u32,
        first: u64,
        last: Option<u64>,
    },
    Meta,
}

fn parse_name(name: &str) -> Option<File> {
    if name == META || name == format!("{META}.tmp") {
        return Some(File::Meta);
    }
    if let Some(rest) = name.strip_prefix("snapshot.") {
        let (epoch, partial) = match rest.strip_suffix(".rdb.part") {
            Some(e) => (e, true),
            None => (rest.strip_suffix(".rdb")?, false),
        };
        return Some(File::Snapshot {
            epoch: epoch.parse().ok()?,
            partial,
        });
    }
    let rest = name.strip_prefix("stream.")?;
    let (epoch, range) = rest.split_once('.')?;
    let (first, last) = range.split_once('-')?;
    let last = match last {
        "inprogress" => None,
        l => Some(l.parse().ok()?),
    };
    Some(File::Segment {
        epoch: epoch.parse().ok()?,
        first: first.parse().ok()?,
        last,
    })
}

/// For a command given a capture directory where it wants a file: what to give it instead
/// (None if `dir` is not a capture directory).
pub fn capture_hint(dir: &Path) -> Option<String> {
    if !dir.join(META).is_file() {
        return None;
    }
    let mut snapshots: Vec<String> = list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, f)| matches!(f, File::Snapshot { partial: false, .. }))
        .map(|(p, _)| name_of(&p))
        .collect();
    snapshots.sort();
    let use_ = match snapshots.as_slice() {
        [] => "its snapshot.N.rdb (it has none yet)".to_string(),
        names => format!("its snapshot.N.rdb ({})", names.join(", ")),
    };
    Some(format!(
        "is a capture directory: use {use_} or rdbtool backlog verify|inspect|slice on it \
         (rdbtool replay takes it whole)"
    ))
}

pub fn snapshot_name(epoch: u32) -> String {
    format!("snapshot.{epoch}.rdb")
}

pub fn segment_name(epoch: u32, first: u64, last: Option<u64>) -> String {
    match last {
        Some(l) => format!("stream.{epoch}.{first}-{l}"),
        None => format!("stream.{epoch}.{first}-inprogress"),
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, File)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(f) = parse_name(&name_of(&path)) {
            files.push((path, f));
        }
    }
    Ok(files)
}

/// The files sorted into the epochs `capture.json` names; a file of an epoch it does not name,
/// two open segments, or an open segment anywhere but last, is an error.
fn assign(dir: &Path, meta: &Meta, files: Vec<(PathBuf, File)>) -> Result<Vec<Epoch>, String> {
    let mut epochs: Vec<Epoch> = meta
        .epochs
        .iter()
        .map(|m| Epoch {
            meta: m.clone(),
            snapshot: None,
            partial_snapshot: None,
            segments: Vec::new(),
        })
        .collect();
    for (path, f) in files {
        let n = match f {
            File::Meta => continue,
            File::Snapshot { epoch, .. } | File::Segment { epoch, .. } => epoch,
        };
        let Some(e) = epochs.iter_mut().find(|e| e.meta.epoch == n) else {
            return Err(format!(
                "{} belongs to epoch {n}, which {META} does not list",
                name_of(&path)
            ));
        };
        match f {
            File::Snapshot { partial: false, .. } => e.snapshot = Some(path),
            File::Snapshot { partial: true, .. } => e.partial_snapshot = Some(path),
            File::Segment { first, last, .. } => e.segments.push(Segment {
                path,
                epoch: n,
                first,
                last,
            }),
            File::Meta => {}
        }
    }
    for e in &mut epochs {
        e.segments.sort_by_key(|s| s.first);
    }
    let open: Vec<&Segment> = epochs
        .iter()
        .flat_map(|e| &e.segments)
        .filter(|s| s.last.is_none())
        .collect();
    let last = epochs.last().and_then(|e| e.segments.last());
    if open.len() > 1
        || open
            .first()
            .is_some_and(|s| last.is_none_or(|l| l.path != s.path))
    {
        let names: Vec<String> = open.iter().map(|s| s.name()).collect();
        return Err(format!(
            "open segments other than the last one: {} (in {})",
            names.join(", "),
            dir.display()
        ));
    }
    Ok(epochs)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_back() {
        let seg = segment_name(2, 171, Some(4096));
        assert_eq!(
            parse_name(&seg),
            Some(File::Segment {
                epoch: 2,
                first: 171,
                last: Some(4096)
            })
        );
        assert_eq!(
            parse_name(&segment_name(1, 5, None)),
            Some(File::Segment {
                epoch: 1,
                first: 5,
                last: None
            })
        );
        assert_eq!(
            parse_name("snapshot.3.rdb.part"),
            Some(File::Snapshot {
                epoch: 3,
                partial: true
            })
        );
        assert_eq!(parse_name("stream.1.x-2"), None);
        assert_eq!(parse_name("notes.txt"), None);
    }
}
