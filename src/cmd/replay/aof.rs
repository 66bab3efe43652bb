//! `rdbtool replay` of a multi-part AOF (an `appendonlydir/` or its manifest): its files
//! mapped in the server's load order, what identifies them for a checkpoint, and what kind of
//! AOF an input is, as the summary says it.

use std::path::Path;

use anyhow::Result;

use crate::cmd::slice::SliceArgs;
use rdbtool::aof::slice::Selection;
use rdbtool::filter::Filter;

use rdbtool::aof::files::{self, AofFiles, Part, Sniffed, sniff};
use rdbtool::aof::input::AofInput;
use rdbtool::replay::LogPart;
use rdbtool::replay::checkpoint;

/// A source of several log parts (a multi-part AOF, a capture): what replay reads, keeps in
/// its checkpoint and says of it.
pub trait LogInput {
    fn parts(&self) -> Vec<LogPart<'_>>;
    /// What the checkpoint keeps: a resume refuses another log.
    fn identity(&self) -> Vec<String>;
    /// Total size, and a hash of every part's (as [`checkpoint::source_hash`] takes it).
    fn size_and_hash(&self) -> (u64, String);
    /// The summary's line about what was read.
    fn describe(&self) -> String;
    /// What the summary counts.
    fn what(&self) -> &'static str {
        "AOF commands"
    }
    /// Said after the summary.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What the summary counts: a log's, else an AOF's commands or an RDB's keys.
pub fn what(log: Option<&dyn LogInput>, aof: bool) -> &'static str {
    match (log, aof) {
        (Some(l), _) => l.what(),
        (None, true) => "AOF commands",
        (None, false) => "keys",
    }
}

/// The files of a multi-part AOF, mapped.
pub struct MultiPart(AofInput);

impl MultiPart {
    /// `path` when it is an `appendonlydir/` or a manifest (None for a single file).
    pub fn open(path: &Path) -> Result<Option<MultiPart>> {
        if crate::cmd::files::is_stdin(path) || !path.exists() {
            return Ok(None);
        }
        if AofFiles::open(path)?.manifest.is_none() {
            return Ok(None);
        }
        Ok(Some(MultiPart(AofInput::open(path)?)))
    }
}

impl LogInput for MultiPart {
    fn parts(&self) -> Vec<LogPart<'_>> {
        let described = self.0.files.parts.iter().map(Part::describe);
        described
            .zip(&self.0.parts)
            .map(|(name, p)| LogPart {
                name,
                data: p.data(),
            })
            .collect()
    }

    /// The files' names and sizes, as the checkpoint keeps them: a resume refuses another log.
    fn identity(&self) -> Vec<String> {
        let name = |p: &Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let parts = self.0.parts.iter();
        parts
            .map(|p| format!("{} {}", name(&p.path), p.data().len()))
            .collect()
    }

    /// Total size, and a hash of every file's (as [`checkpoint::source_hash`] takes it).
    fn size_and_hash(&self) -> (u64, String) {
        let hashes: String = (self.0.parts.iter())
            .map(|p| checkpoint::source_hash(p.data()))
            .chain(self.identity())
            .collect();
        (self.0.len(), checkpoint::source_hash(hashes.as_bytes()))
    }

    /// `AOF: appendonlydir with manifest, base (RDB) + 3 incr files`.
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// What a single input file is, once replayed: `log_from` is where its commands started.
pub fn describe_single(data: &[u8], log_from: Option<u64>) -> Option<String> {
    let rdb = sniff(&data[..data.len().min(16)]) == Sniffed::Rdb;
    if rdb && log_from.is_none() {
        return None;
    }
    Some(format!("AOF: a single file, {}", files::kind(rdb, true)))
}

/// The commands of an AOF source to replay (all of an RDB, whose slice options were refused):
/// `--from-offset` and `--to-offset` name offsets of `multi`'s files, or of the single file.
pub fn selection(
    file: &Path,
    slice: &SliceArgs,
    filter: &Filter,
    multi: Option<&MultiPart>,
) -> Result<Selection> {
    let single = match (multi, slice.offsets()) {
        (None, true) => Some(AofInput::open(file)?),
        _ => None,
    };
    let input = multi.map(|m| &m.0).or(single.as_ref());
    let resolve = |text: &str| match input {
        Some(input) => input.resolve_offset(text),
        None => Err(format!("{text}: no offsets without an AOF")),
    };
    slice.selection(&resolve, filter)
}
