//! `rdbtool replay` of a multi-part AOF (an `appendonlydir/` or its manifest): its files
//! mapped in the server's load order, what identifies them for a checkpoint, and what kind of
//! AOF an input is, as the summary says it.

use std::path::Path;

use anyhow::{Context, Result};

use rdbtool::aof::files::{AofFiles, Sniffed, sniff};
use rdbtool::aof::manifest::Role;
use rdbtool::replay::LogPart;
use rdbtool::replay::checkpoint;
use rdbtool::scan::mapped::MappedFile;

/// The files of a multi-part AOF, mapped.
pub struct MultiPart {
    pub files: AofFiles,
    pub maps: Vec<MappedFile>,
}

impl MultiPart {
    /// `path` when it is an `appendonlydir/` or a manifest (None for a single file).
    pub fn open(path: &Path) -> Result<Option<MultiPart>> {
        if crate::cmd::files::is_stdin(path) || !path.exists() {
            return Ok(None);
        }
        let files = AofFiles::open(path)?;
        if files.manifest.is_none() {
            return Ok(None);
        }
        let maps = files
            .parts
            .iter()
            .map(|p| MappedFile::open(&p.path).with_context(|| p.path.display().to_string()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(MultiPart { files, maps }))
    }

    pub fn parts(&self) -> Vec<LogPart<'_>> {
        self.files
            .parts
            .iter()
            .zip(&self.maps)
            .map(|(p, m)| LogPart {
                name: p.describe(),
                data: m.data(),
            })
            .collect()
    }

    /// The files' names and sizes, as the checkpoint keeps them: a resume refuses another log.
    pub fn identity(&self) -> Vec<String> {
        self.files
            .parts
            .iter()
            .zip(&self.maps)
            .map(|(p, m)| {
                let name = p.path.file_name().unwrap_or_default().to_string_lossy();
                format!("{name} {}", m.data().len())
            })
            .collect()
    }

    /// Total size, and a hash of every file's (as [`checkpoint::source_hash`] takes it).
    pub fn size_and_hash(&self) -> (u64, String) {
        let size = self.maps.iter().map(|m| m.data().len() as u64).sum();
        let hashes: String = self
            .maps
            .iter()
            .map(|m| checkpoint::source_hash(m.data()))
            .chain(self.identity())
            .collect();
        (size, checkpoint::source_hash(hashes.as_bytes()))
    }

    /// `AOF: appendonlydir with manifest, base (RDB) + 3 incr files`.
    pub fn describe(&self) -> String {
        let base = self
            .files
            .parts
            .iter()
            .zip(&self.maps)
            .find(|(p, _)| p.entry.as_ref().is_some_and(|e| e.role == Role::Base))
            .map(|(_, m)| match sniff(&m.data()[..m.data().len().min(16)]) {
                Sniffed::Rdb => "base (RDB)",
                _ => "base (RESP)",
            });
        let incr = self
            .files
            .parts
            .iter()
            .filter(|p| p.entry.as_ref().is_some_and(|e| e.role == Role::Incr))
            .count() as u64;
        let incr = crate::cmd::count(incr, "incr file");
        match base {
            Some(base) => format!("AOF: appendonlydir with manifest, {base} + {incr}"),
            None => format!("AOF: appendonlydir with manifest, no base, {incr}"),
        }
    }
}

/// What a single input file is, once replayed: `log_from` is where its commands started.
pub fn describe_single(data: &[u8], log_from: Option<u64>) -> Option<String> {
    match (sniff(&data[..data.len().min(16)]), log_from) {
        (Sniffed::Rdb, Some(at)) => Some(format!(
            "AOF: single file, RDB preamble then commands from offset {at}"
        )),
        (Sniffed::Rdb, None) => None,
        _ => Some("AOF: single file of commands (RESP)".into()),
    }
}
