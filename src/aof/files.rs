//! Which files an AOF input is: a single AOF file, or an `appendonlydir/` (given as the
//! directory or as its manifest) whose manifest lists a base and incr files, loaded in the
//! server's order. What each file holds is told by its first bytes, as `redis-check-aof` does.

use std::path::{Path, PathBuf};

use super::manifest::{Entry, Manifest, ManifestError, Role};

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An RDB file, or an AOF that starts with an RDB preamble (`REDIS`, `VALKEY`).
    Rdb,
    /// RESP commands (and `#` annotations), or nothing at all (an empty incr file).
    Resp,
    /// The manifest of a multi-part AOF: its first line that is not a `#` comment is `file …`.
    Manifest,
    /// None of these.
    Other,
}

pub fn sniff(start: &[u8]) -> Sniffed {
    if start.starts_with(b"REDIS") || start.starts_with(b"VALKEY") {
        return Sniffed::Rdb;
    }
    let mut rest = start;
    while rest.first() == Some(&b'#') {
        match memchr::memchr(b'\n', rest) {
            Some(nl) => rest = &rest[nl + 1..],
            None => break,
        }
    }
    if rest.starts_with(b"file ") {
        return Sniffed::Manifest;
    }
    match start.first() {
        None | Some(b'*' | b'#') => Sniffed::Resp,
        Some(_) => Sniffed::Other,
    }
}

/// One file of the log, in load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub path: PathBuf,
    /// Its manifest line; None for a single AOF file.
    pub entry: Option<Entry>,
}

impl Part {
    /// `appendonly.aof.2.incr.aof (incr, seq 2)`, or the path of a single file.
    pub fn describe(&self) -> String {
        match &self.entry {
            Some(e) => format!("{} ({}, seq {})", e.name, e.role.name(), e.seq),
            None => self.path.display().to_string(),
        }
    }
}

/// The files of an AOF input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFiles {
    /// The manifest's path and contents, for a multi-part AOF.
    pub manifest: Option<(PathBuf, Manifest)>,
    /// The files the server loads, in its order (history files are not among them).
    pub parts: Vec<Part>,
}

/// Why an AOF input cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: a directory without an AOF manifest (*.manifest) in it", .0.display())]
    NoManifest(PathBuf),
    #[error("{}: {} manifests in one directory ({})", .dir.display(), .names.len(), .names.join(", "))]
    SeveralManifests { dir: PathBuf, names: Vec<String> },
    #[error("{}: {source}", .path.display())]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("{}: line {}: {} is listed but missing", .manifest.display(), .entry.line, .entry.name)]
    Missing { manifest: PathBuf, entry: Entry },
}

impl AofFiles {
    /// The files of `path`: a directory (its one `*.manifest`), a manifest, or a single file.
    pub fn open(path: &Path) -> Result<AofFiles, OpenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OpenError::Io { path, source }
        };
        if std::fs::metadata(path).map_err(io(path))?.is_dir() {
            return Self::from_manifest(&find_manifest(path)?);
        }
        let mut start = [0u8; 512];
        let n = read_start(path, &mut start).map_err(io(path))?;
        if sniff(&start[..n]) == Sniffed::Manifest {
            return Self::from_manifest(path);
        }
        Ok(AofFiles {
            manifest: None,
            parts: vec![Part {
                path: path.to_path_buf(),
                entry: None,
            }],
        })
    }

    /// The files a manifest lists, each checked to exist beside it.
    pub fn from_manifest(path: &Path) -> Result<AofFiles, OpenError> {
        let text = std::fs::read(path).map_err(|source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest = Manifest::parse(&text).map_err(|source| OpenError::Manifest {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut parts = Vec::new();
        for entry in manifest.loaded() {
            let file = dir.join(&entry.name);
            if !file.is_file() {
                return Err(OpenError::Missing {
                    manifest: path.to_path_buf(),
                    entry: entry.clone(),
                });
            }
            parts.push(Part {
                path: file,
                entry: Some(entry.clone()),
            });
        }
        Ok(AofFiles {
            manifest: Some((path.to_path_buf(), manifest)),
            parts,
        })
    }
}

impl AofFiles {
    /// What the input is, as every command says it: `a single file, RDB preamble + RESP`,
    /// `appendonlydir with manifest, base (RDB) + 3 incr files`; `kind(i)` is what part `i`
    /// holds ([`kind`]).
    pub fn describe(&self, kind: impl Fn(usize) -> &'static str) -> String {
        if self.manifest.is_none() {
            return format!("a single file, {}", kind(0));
        }
        let role = |i: usize, r: Role| self.parts[i].entry.as_ref().is_some_and(|e| e.role == r);
        let incr = (0..self.parts.len())
            .filter(|&i| role(i, Role::Incr))
            .count();
        let incr = crate::text::count(incr as u64, "incr file");
        match (0..self.parts.len()).find(|&i| role(i, Role::Base)) {
            Some(i) => format!("appendonlydir with manifest, base ({}) + {incr}", kind(i)),
            None => format!("appendonlydir with manifest, no base, {incr}"),
        }
    }
}

/// What a file of the log holds: `RESP` commands, an `RDB` (a base), or an `RDB preamble +
/// RESP`, given whether it starts with an RDB and whether commands follow it.
pub fn kind(rdb: bool, commands_after: bool) -> &'static str {
    match (rdb, commands_after) {
        (false, _) => "RESP",
        (true, false) => "RDB",
        (true, true) => "RDB preamble + RESP",
    }
}

fn find_manifest(dir: &Path) -> Result<PathBuf, OpenError> {
    let listing = std::fs::read_dir(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = listing
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".manifest"))
        .collect();
    names.sort();
    match names.len() {
        0 => Err(OpenError::NoManifest(dir.to_path_buf())),
        1 => Ok(dir.join(&names[0])),
        _ => Err(OpenError::SeveralManifests {
            dir: dir.to_path_buf(),
            names,
        }),
    }
}

/// Whether `path` is an AOF input rather than an RDB file (where a command takes either): a
/// directory, a manifest, a file of RESP commands, or an RDB followed by commands (a
/// preamble): named `*.aof`, or with commands after the end of its RDB data (looked for only
/// when the file ends with CRLF, as a whole command does). Standard input, a pipe, an empty
/// file and a directory without a manifest or `.aof` file are not.
pub fn detect(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return false;
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        return std::fs::read_dir(path).is_ok_and(|mut names| {
            names.any(|e| {
                e.is_ok_and(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".manifest") || name.ends_with(".aof")
                })
            })
        });
    }
    // A pipe or a device is read once: never looked at here.
    if !meta.is_file() {
        return false;
    }
    let mut start = [0u8; 512];
    let n = match read_start(path, &mut start) {
        Ok(n) if n > 0 => n,
        _ => return false,
    };
    match sniff(&start[..n]) {
        Sniffed::Resp | Sniffed::Manifest => true,
        Sniffed::Other => false,
        Sniffed::Rdb if path.extension().is_some_and(|e| e == "aof") => true,
        Sniffed::Rdb => commands_after_rdb(path),
    }
}

fn commands_after_rdb(path: &Path) -> bool {
    // The file's last two bytes first, read without mapping it: an RDB file ends with its
    // checksum, an AOF with a command's CRLF.
    let ends_with_crlf = std::fs::File::open(path).is_ok_and(|f| {
        use std::os::unix::fs::FileExt;
        let mut last = [0u8; 2];
        let len = f.metadata().map_or(0, |m| m.len());
        len >= 2 && f.read_exact_at(&mut last, len - 2).is_ok() && &last == b"\r\n"
    });
    if !ends_with_crlf {
        return false;
    }
    let Ok(map) = crate::scan::mapped::MappedFile::open(path) else {
        return false;
    };
    let data = map.data();
    super::rdb_end(data).is_ok_and(|end| matches!(data.get(end), Some(b'*' | b'#')))
}

/// Reads up to `buf.len()` bytes from the start of `path`.
fn read_start(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_like_redis_check_aof() {
        assert_eq!(sniff(b"REDIS0011\xfa"), Sniffed::Rdb);
        assert_eq!(sniff(b"VALKEY080"), Sniffed::Rdb);
        assert_eq!(sniff(b"*2\r\n$6\r\nSELECT"), Sniffed::Resp);
        assert_eq!(sniff(b"#TS:1700000000\r\n*1\r\n"), Sniffed::Resp);
        assert_eq!(sniff(b""), Sniffed::Resp);
        assert_eq!(
            sniff(b"file a.1.base.rdb seq 1 type b\n"),
            Sniffed::Manifest
        );
        assert_eq!(
            sniff(b"# note\nfile a.1.incr.aof seq 1 type i\n"),
            Sniffed::Manifest
        );
        assert_eq!(sniff(b"PK\x03\x04"), Sniffed::Other);
    }

    #[test]
    fn opens_a_directory_by_its_manifest_and_names_a_missing_file() {
        let dir = std::env::temp_dir().join(format!("rdbtool-aof-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("appendonly.aof.manifest");
        std::fs::write(
            &manifest,
            "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        std::fs::write(dir.join("appendonly.aof.1.base.rdb"), b"REDIS0011").unwrap();
        let missing = AofFiles::open(&dir).unwrap_err().to_string();
        assert!(
            missing.ends_with("line 2: appendonly.aof.1.incr.aof is listed but missing"),
            "{missing}"
        );
        std::fs::write(dir.join("appendonly.aof.1.incr.aof"), b"").unwrap();
        for path in [&dir, &manifest] {
            let files = AofFiles::open(path).unwrap();
            assert_eq!(files.parts.len(), 2);
            assert_eq!(
                files.parts[1].describe(),
                "appendonly.aof.1.incr.aof (incr, seq 1)"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
