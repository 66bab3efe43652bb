//! An AOF input opened for reading: its files mapped in load order, what each holds (an RDB
//! base or preamble, and from where RESP commands follow), and a walk of each file's commands
//! with their place in the whole log ([`Pos`]), pages released as the walk passes them.

use std::path::{Path, PathBuf};

use super::files::{AofFiles, OpenError, Sniffed, sniff};
use super::log::{Kind, Log, Logged};
use super::rdb_end;
use super::slice::Pos;
use crate::rdb;
use crate::resp::parse::Problem;
use crate::scan::mapped::MappedFile;

/// Why an AOF input could not be read through.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an AOF file (it starts with neither RESP, an annotation nor an RDB preamble)", .0.display())]
    NotAof(PathBuf),
    #[error("{}: in the RDB {}: {source}", .path.display(), .what)]
    Rdb {
        path: PathBuf,
        what: &'static str,
        source: Box<rdb::Error>,
    },
    #[error("{}: {problem}", .path.display())]
    Log { path: PathBuf, problem: Problem },
    #[error("{}: offset {offset}: {what}", .path.display())]
    Bad {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Output(std::io::Error),
}

impl Error {
    /// A problem in the input (exit 1), not one of opening or writing (exit 2).
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Error::Rdb { .. } | Error::Log { .. } | Error::Bad { .. } | Error::NotAof(_)
        )
    }
}

/// One file of the input, mapped.
pub struct OpenPart {
    pub path: PathBuf,
    /// `appendonly.aof.2.incr.aof`, or the path of a single file.
    pub name: String,
    pub map: MappedFile,
    /// Where its RESP commands start: 0, or the end of its RDB base or preamble.
    pub resp_start: usize,
    /// It starts with an RDB (a base `.rdb` file or a preamble).
    pub rdb: bool,
    /// Its first byte's global offset.
    pub start: u64,
}

impl OpenPart {
    pub fn data(&self) -> &[u8] {
        self.map.data()
    }
}

/// An AOF input, its files mapped.
pub struct AofInput {
    pub files: AofFiles,
    pub parts: Vec<OpenPart>,
}

impl AofInput {
    pub fn open(path: &Path) -> Result<AofInput, Error> {
        let files = AofFiles::open(path)?;
        let mut parts = Vec::new();
        let mut start = 0u64;
        for part in &files.parts {
            let io = |source| Error::Io {
                path: part.path.clone(),
                source,
            };
            let map = MappedFile::open(&part.path).map_err(io)?;
            let data = map.data();
            let (rdb, resp_start) = match sniff(&data[..data.len().min(512)]) {
                Sniffed::Rdb => (
                    true,
                    rdb_end(data).map_err(|source| Error::Rdb {
                        path: part.path.clone(),
                        what: "part",
                        source: Box::new(source),
                    })?,
                ),
                Sniffed::Resp => (false, 0),
                _ => return Err(Error::NotAof(part.path.clone())),
            };
            let name = match &part.entry {
                Some(e) => e.name.clone(),
                None => part.path.display().to_string(),
            };
            let len = data.len() as u64;
            parts.push(OpenPart {
                path: part.path.clone(),
                name,
                map,
                resp_start,
                rdb,
                start,
            });
            start += len;
        }
        Ok(AofInput { files, parts })
    }

    /// The size of all files together (the end of the global offsets).
    pub fn len(&self) -> u64 {
        self.parts
            .last()
            .map_or(0, |p| p.start + p.data().len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the input is: `AOF: appendonlydir with manifest, base (RDB) + 3 incr files`,
    /// `AOF: a single file, RDB preamble + RESP`.
    pub fn describe(&self) -> String {
        let kind = |i: usize| {
            let p = &self.parts[i];
            super::files::kind(p.rdb, p.resp_start < p.data().len())
        };
        format!("AOF: {}", self.files.describe(kind))
    }

    /// A global offset from `N` (global) or `FILE:N` (in the file named FILE, by its name in
    /// the manifest or its path).
    pub fn resolve_offset(&self, text: &str) -> Result<u64, String> {
        let bad = || format!("{text}: expected OFFSET or FILE:OFFSET (a number of bytes)");
        let Some((file, n)) = text.rsplit_once(':') else {
            return text.parse().map_err(|_| bad());
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        let part = self
            .parts
            .iter()
            .find(|p| p.name == file || p.path == Path::new(file))
            .ok_or_else(|| {
                let names: Vec<&str> = self.parts.iter().map(|p| p.name.as_str()).collect();
                format!("{text}: no file {file} in the AOF ({})", names.join(", "))
            })?;
        if n > part.data().len() as u64 {
            return Err(format!("{text}: past the end of {file}"));
        }
        Ok(part.start + n)
    }

    /// Each file's bytes and where its commands start, as [`super::slice::time_at`] takes
    /// them.
    pub fn commands(&self) -> Vec<(&[u8], usize)> {
        self.parts
            .iter()
            .map(|p| (p.data(), p.resp_start))
            .collect()
    }

    /// Walks the commands of file `i` (after its RDB part), giving each with its place;
    /// a nested MULTI and an EXEC without MULTI end the walk as problems. Commands before the
    /// file's first `#TS:` have the time `ts` (the last of the file before); returns the time
    /// at its end. Pages behind the walk are released.
    pub fn walk(
        &self,
        i: usize,
        ts: Option<u64>,
        each: impl FnMut(&Logged<'_>, Pos) -> std::io::Result<()>,
    ) -> Result<Option<u64>, Error> {
        let start = self.parts[i].resp_start;
        let walked = self.walk_from(
            i,
            Resume {
                at: start,
                db: 0,
                ts,
            },
            None,
            each,
        )?;
        Ok(walked.ts)
    }

    /// [`AofInput::walk`] of file `i` from a command boundary outside a transaction, `from`;
    /// with `until`, the walk stops there if it reaches it between commands and outside a
    /// transaction (else it reads on to the file's end). Where it stopped, and the state there.
    pub fn walk_from(
        &self,
        i: usize,
        from: Resume,
        until: Option<usize>,
        mut each: impl FnMut(&Logged<'_>, Pos) -> std::io::Result<()>,
    ) -> Result<Resume, Error> {
        let part = &self.parts[i];
        let data = part.data();
        let mut log = Log::resume(data, from.at, from.db).with_time(from.ts);
        // The RDB part is released by whoever reads it.
        let mut released = from.at;
        loop {
            log.skip_annotations();
            let stop = until == Some(log.offset() as usize) && log.open_multi().is_none();
            let item = match stop {
                true => None,
                false => log.next(),
            };
            let Some(item) = item else { break };
            let logged = item.map_err(|problem| Error::Log {
                path: part.path.clone(),
                problem,
            })?;
            let offset = logged.cmd.offset;
            let what = match logged.kind {
                Kind::NestedMulti => Some("MULTI inside an open MULTI"),
                Kind::LoneExec => Some("EXEC without MULTI"),
                Kind::BadSelect => Some("SELECT without a database number"),
                _ => None,
            };
            if let Some(what) = what {
                return Err(Error::Bad {
                    path: part.path.clone(),
                    offset,
                    what,
                });
            }
            let at = Pos {
                part: i,
                offset,
                global: part.start + offset,
            };
            each(&logged, at).map_err(Error::Output)?;
            // What the walk passed is read by no one else.
            if offset as usize - released >= RELEASE_EVERY {
                part.map.release(released, offset as usize);
                released = offset as usize;
            }
        }
        Ok(Resume {
            at: log.offset() as usize,
            db: log.db(),
            ts: log.time(),
        })
    }
}

/// A place between commands of a file, outside a transaction, and the log's state there: the
/// database and the time of the last `#TS:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub at: usize,
    pub db: u64,
    pub ts: Option<u64>,
}

/// How far a walk goes between page releases, and how far behind it they are.
const RELEASE_EVERY: usize = 32 << 20;
