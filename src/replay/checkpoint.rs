//! Where a replay can resume: the number of source keys (in file order) before which every key
//! has an answer from the target, with what identifies the source file. Written atomically
//! (a temporary file renamed over the old one).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The source as given on the command line.
    pub source: String,
    /// Size and a hash of the source's first and last MiB: a resume refuses another file.
    pub source_size: u64,
    pub source_hash: String,
    /// A multi-part AOF: its files (name and size) in load order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// Every key (or AOF command) before this position has been answered.
    pub done: u64,
    /// Byte offset in the source of the first key not yet answered; for AOF commands, the
    /// offset in the log (across its files, in load order) up to which they are applied.
    pub offset: u64,
    pub acked: u64,
    pub failed: u64,
    /// The run's id, which the names of its temporary keys carry: a resume deletes those left
    /// behind. (0 in a checkpoint written before it was kept.)
    #[serde(default)]
    pub run_id: u64,
    pub complete: bool,
    pub updated_ms: i64,
}

/// Identifies a source file cheaply: xxh3-128 of its size, first MiB and last MiB.
pub fn source_hash(data: &[u8]) -> String {
    const EDGE: usize = 1 << 20;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(&data[..data.len().min(EDGE)]);
    h.update(&data[data.len().saturating_sub(EDGE)..]);
    format!("{:032x}", h.digest128())
}

impl Checkpoint {
    pub fn load(path: &Path) -> anyhow::Result<Checkpoint> {
        let text = std::fs::read(path)?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Written beside `path` and renamed over it; never over something that is not a regular
    /// file (a device, a FIFO, a symlink: [`prepare`] resolves symlinks first).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        save_json(self, path)
    }
}

/// `value` as JSON written beside `path` (synced) and renamed over it: a reader sees the old
/// file or the new one, never a part; never over something that is not a regular file.
pub fn save_json<T: Serialize>(value: &T, path: &Path) -> std::io::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.is_file()
    {
        return Err(std::io::Error::other(not_regular(&m)));
    }
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp)?;
    serde_json::to_writer_pretty(&mut f, value)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn not_regular(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    let what = match () {
        _ if t.is_dir() => "a directory",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_char_device() || t.is_block_device() => "a device",
        _ if t.is_socket() => "a socket",
        _ if t.is_symlink() => "a symbolic link",
        _ => "not a regular file",
    };
    format!("is {what}, not a regular file: the checkpoint is renamed over its path")
}

/// Checks, before anything is sent, that a checkpoint can be kept at `path`: a symlink is
/// followed (the checkpoint replaces its target, the link stays), what is there must be a
/// regular file, and a file must be creatable in its directory. Returns the path to save to.
pub fn prepare(path: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::{Context, bail};
    let shown = path.display();
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)
            .with_context(|| format!("{shown}: a symbolic link whose target cannot be resolved"))?,
        _ => path.to_path_buf(),
    };
    if let Ok(m) = std::fs::metadata(&resolved)
        && !m.is_file()
    {
        bail!("{shown} {}", not_regular(&m));
    }
    let dir = match resolved.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("{shown}: directory {} does not exist", dir.display());
    }
    let tmp = tmp_path(&resolved);
    if let Ok(m) = std::fs::symlink_metadata(&tmp)
        && !m.is_file()
    {
        bail!("{} {}", tmp.display(), not_regular(&m));
    }
    std::fs::File::create(&tmp)
        .and_then(|_| std::fs::remove_file(&tmp))
        .with_context(|| format!("{shown}: cannot create a file in {}", dir.display()))?;
    Ok(resolved)
}

/// Which positions have an answer, to know the first one that has not.
#[derive(Debug, Default)]
pub struct Watermark {
    /// Every position before `base` is done.
    base: u64,
    /// Done flags of `base..`.
    flags: std::collections::VecDeque<bool>,
    /// Source offsets of the positions in `flags`.
    offsets: std::collections::VecDeque<u64>,
}

impl Watermark {
    /// Registers the next position (at `offset` in the source); returns it.
    pub fn open(&mut self, offset: u64) -> u64 {
        self.flags.push_back(false);
        self.offsets.push_back(offset);
        self.base + self.flags.len() as u64 - 1
    }

    pub fn close(&mut self, pos: u64) {
        if let Some(f) = pos
            .checked_sub(self.base)
            .and_then(|i| self.flags.get_mut(i as usize))
        {
            *f = true;
        }
        while self.flags.front() == Some(&true) {
            self.flags.pop_front();
            self.offsets.pop_front();
            self.base += 1;
        }
    }

    /// The first position without an answer (everything before it is done).
    pub fn done(&self) -> u64 {
        self.base
    }

    /// Its source offset, or `end` when everything registered is done.
    pub fn offset(&self, end: u64) -> u64 {
        self.offsets.front().copied().unwrap_or(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest() {
        let mut w = Watermark::default();
        for i in 0..10 {
            let p = w.open(i);
            w.close(p);
        }
        let a = w.open(100);
        let b = w.open(200);
        let c = w.open(300);
        assert_eq!((a, b, c), (10, 11, 12));
        w.close(b);
        assert_eq!((w.done(), w.offset(999)), (10, 100));
        w.close(a);
        assert_eq!((w.done(), w.offset(999)), (12, 300));
        w.close(c);
        assert_eq!((w.done(), w.offset(999)), (13, 999));
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        let cp = Checkpoint {
            source: "a.rdb".into(),
            source_size: 3,
            source_hash: source_hash(b"abc"),
            parts: Vec::new(),
            done: 7,
            offset: 99,
            acked: 6,
            failed: 1,
            run_id: 0xabc,
            complete: false,
            updated_ms: 1,
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), cp);
        // One written before the run id was kept still loads.
        let old = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"run_id\": 2748,", "");
        std::fs::write(&path, old).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().run_id, 0);
        assert_ne!(source_hash(b"abc"), source_hash(b"abd"));
    }
}
