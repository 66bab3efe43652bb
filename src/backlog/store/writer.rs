//! Appending to a capture directory: epochs, the snapshot, records, segments that roll at a
//! size, `capture.json` replaced atomically, and the recovery of a capture that was killed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{self, At, HEADER, Records};
use super::{Capture, EpochMeta, META, Meta, Start, now_ms, segment_name, snapshot_name};

/// Appends to a capture directory; one writer per directory at a time.
pub struct Writer {
    dir: PathBuf,
    meta: Meta,
    /// The open segment: its file, first offset and length.
    open: Option<(File, u64, u64)>,
    /// The offset the next record starts at.
    next: u64,
    at_end: At,
    segment_limit: u64,
    buf: Vec<u8>,
}

/// What [`Writer::reopen`] found and mended.
#[derive(Debug, Default)]
pub struct Recovery {
    /// A torn last record cut: the segment, where the cut is, and how many bytes went.
    pub torn: Option<(String, u64, u64)>,
    /// An epoch whose snapshot never finished, removed: its number.
    pub abandoned: Option<u32>,
}

/// The start of an epoch, as the master described it.
pub struct EpochStart {
    pub start_kind: Start,
    pub replid: String,
    pub psync_offset: u64,
    pub server: Option<String>,
    pub backlog_size: Option<u64>,
    pub replid2: Option<(String, u64)>,
}

impl Writer {
    /// A new capture in `dir`, which must not exist or be empty.
    pub fn create(dir: &Path, source: &str, segment_limit: u64) -> std::io::Result<Writer> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not empty", dir.display()),
            ));
        }
        std::fs::create_dir_all(dir)?;
        let w = Writer {
            dir: dir.to_owned(),
            meta: Meta {
                format: super::FORMAT,
                source: source.to_owned(),
                epochs: Vec::new(),
            },
            open: None,
            next: 0,
            at_end: At::default(),
            segment_limit,
            buf: Vec::new(),
        };
        w.write_meta()?;
        Ok(w)
    }

    /// The capture in `dir`, ready to go on: a torn last record is cut (and said), an epoch
    /// whose snapshot never finished is removed (and said). Damage anywhere else is an error.
    pub fn reopen(dir: &Path, segment_limit: u64) -> anyhow::Result<(Writer, Recovery)> {
        let mut capture = Capture::open(dir)?;
        let mut recovery = Recovery::default();
        if let Some(last) = capture.epochs.last()
            && last.meta.start_kind == Start::Full
            && last.snapshot.is_none()
        {
            if let Some(part) = &last.partial_snapshot {
                std::fs::remove_file(part)?;
            }
            recovery.abandoned = Some(last.meta.epoch);
            capture.epochs.pop();
        }
        let mut w = Writer {
            dir: dir.to_owned(),
            meta: Meta {
                format: super::FORMAT,
                source: capture.source.clone(),
                epochs: capture.epochs.iter().map(|e| e.meta.clone()).collect(),
            },
            open: None,
            next: 0,
            at_end: At::default(),
            segment_limit,
            buf: Vec::new(),
        };
        if let Some(epoch) = capture.epochs.last() {
            w.next = epoch.meta.start;
            if let Some(seg) = epoch.segments.last() {
                recovery.torn = w.recover_segment(seg)?;
            }
            if let Some(m) = w.meta.epochs.last_mut() {
                m.end = w.next - 1;
            }
        }
        w.write_meta()?;
        Ok((w, recovery))
    }

    /// Reads the epoch's last segment to its end (cutting a torn tail), to know where the
    /// stream goes on and in which database; reopens it for appending if it was open.
    fn recover_segment(
        &mut self,
        seg: &super::Segment,
    ) -> anyhow::Result<Option<(String, u64, u64)>> {
        let map = seg.map()?;
        let data = map.data();
        let mut last = None;
        let mut bad = None;
        for r in Records::new(data, Some(seg.first)) {
            match r {
                Ok(r) => last = Some((r.next(), r.at_start, r.at, r.payload.len())),
                Err(b) => bad = Some(b),
            }
        }
        let mut torn = None;
        if let Some(b) = bad {
            if seg.last.is_some() || !b.is_torn(data) {
                anyhow::bail!(
                    "{}: {} at byte {}: run `rdbtool backlog verify {}`",
                    seg.path.display(),
                    b.flaw,
                    b.at,
                    self.dir.display()
                );
            }
            torn = Some((seg.name(), b.at as u64, (data.len() - b.at) as u64));
        }
        let kept = last.map_or(0, |(_, _, at, len)| at + HEADER + len);
        if let Some((next, at_start, at, len)) = last {
            self.next = next;
            self.at_end = at_start.after(&data[at + HEADER..at + HEADER + len]);
        } else {
            self.next = seg.first;
        }
        drop(map);
        if seg.last.is_some() {
            return Ok(torn);
        }
        if kept == 0 {
            std::fs::remove_file(&seg.path)?;
        } else {
            let f = OpenOptions::new().append(true).open(&seg.path)?;
            f.set_len(kept as u64)?;
            f.sync_all()?;
            self.open = Some((f, seg.first, kept as u64));
        }
        Ok(torn)
    }

    /// Begins a new epoch (sealing the open segment of the one before).
    pub fn start_epoch(&mut self, start: EpochStart) -> std::io::Result<u32> {
        self.seal()?;
        let epoch = self.meta.epochs.last().map_or(1, |e| e.epoch + 1);
        let now = now_ms();
        let (replid2, second_repl_offset) = start.replid2.unzip();
        self.meta.epochs.push(EpochMeta {
            epoch,
            start_kind: start.start_kind,
            replid: start.replid,
            replid2,
            second_repl_offset,
            psync_offset: start.psync_offset,
            start: start.psync_offset + 1,
            skipped: 0,
            end: start.psync_offset,
            snapshot: None,
            server: start.server,
            backlog_size: start.backlog_size,
            continued_at: Vec::new(),
            started_ms: now,
            updated_ms: now,
        });
        self.next = start.psync_offset + 1;
        self.at_end = At::default();
        self.write_meta()?;
        Ok(epoch)
    }

    /// Where the snapshot of the current epoch is written while it arrives.
    pub fn snapshot_part(&self) -> PathBuf {
        let name = snapshot_name(self.epoch().epoch);
        self.dir.join(format!("{name}.part"))
    }

    /// The snapshot has arrived whole (and was synced by its writer): it takes its name.
    pub fn snapshot_done(&mut self) -> std::io::Result<()> {
        let name = snapshot_name(self.epoch().epoch);
        std::fs::rename(self.snapshot_part(), self.dir.join(&name))?;
        self.epoch_mut().snapshot = Some(name);
        self.write_meta()
    }

    /// A backlog-only capture: the first `n` bytes finished a command begun before the
    /// backlog, and are not kept. Only before the first record.
    pub fn skip(&mut self, n: u64) -> std::io::Result<()> {
        assert!(self.open.is_none() && self.next == self.epoch().start);
        self.next += n;
        let e = self.epoch_mut();
        e.skipped += n;
        e.start += n;
        e.end += n;
        self.write_meta()
    }

    /// A partial resync continues the epoch from [`Writer::next`]; `replid`, the id the
    /// master continued with, becomes the epoch's id if it changed (a failover), the old one its
    /// secondary id.
    pub fn continued(&mut self, replid: Option<String>) -> std::io::Result<()> {
        let at = self.next;
        let e = self.epoch_mut();
        e.continued_at.push(at);
        if let Some(id) = replid.filter(|id| *id != e.replid) {
            e.replid2 = Some(std::mem::replace(&mut e.replid, id));
            e.second_repl_offset = Some(at);
        }
        self.write_meta()
    }

    /// Appends whole commands that start at [`Writer::next`] in the state [`Writer::at_end`],
    /// arrived at `time_us`; `after` is the state after them. Rolls the segment past its limit.
    pub fn append(&mut self, payload: &[u8], after: At, time_us: u64) -> std::io::Result<()> {
        if payload.is_empty() {
            return Ok(());
        }
        if u32::try_from(payload.len()).is_err() {
            let msg = format!(
                "a command of {} bytes at offset {}: a record holds at most 4 GiB",
                payload.len(),
                self.next
            );
            return Err(std::io::Error::other(msg));
        }
        if self.open.is_none() {
            let path = self
                .dir
                .join(segment_name(self.epoch().epoch, self.next, None));
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(path)?;
            self.open = Some((f, self.next, 0));
        }
        self.buf.clear();
        self.buf
            .extend_from_slice(&record::header(self.next, time_us, self.at_end, payload));
        self.buf.extend_from_slice(payload);
        let (f, _, len) = self.open.as_mut().expect("opened above");
        f.write_all(&self.buf)?;
        *len += self.buf.len() as u64;
        let full = *len >= self.segment_limit;
        self.next += payload.len() as u64;
        self.at_end = after;
        if full {
            self.seal()?;
        }
        Ok(())
    }

    /// The offset the next record starts at (the last kept + 1).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The stream's state after the last record.
    pub fn at_end(&self) -> At {
        self.at_end
    }

    pub fn has_epoch(&self) -> bool {
        !self.meta.epochs.is_empty()
    }

    pub fn epoch(&self) -> &EpochMeta {
        self.meta.epochs.last().expect("an epoch was started")
    }

    fn epoch_mut(&mut self) -> &mut EpochMeta {
        self.meta.epochs.last_mut().expect("an epoch was started")
    }

    /// Records reach the disk and `capture.json` says how far the log goes.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some((f, ..)) = &self.open {
            f.sync_data()?;
        }
        if !self.meta.epochs.is_empty() {
            let end = self.next - 1;
            let e = self.epoch_mut();
            e.end = end;
            e.updated_ms = now_ms();
        }
        self.write_meta()
    }

    /// The open segment gets its final name.
    pub fn seal(&mut self) -> std::io::Result<()> {
        if let Some((f, first, _)) = self.open.take() {
            f.sync_all()?;
            let epoch = self.epoch().epoch;
            let from = self.dir.join(segment_name(epoch, first, None));
            let to = self
                .dir
                .join(segment_name(epoch, first, Some(self.next - 1)));
            std::fs::rename(from, to)?;
        }
        self.sync()
    }

    fn write_meta(&self) -> std::io::Result<()> {
        let path = self.dir.join(META);
        let tmp = self.dir.join(format!("{META}.tmp"));
        let mut f = File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, &self.meta)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::backlog::stream;
    use crate::resp::text as resp;

    const DB0: At = At {
        db: Some(0),
        multi: false,
    };

    fn start(w: &mut Writer, psync_offset: u64) {
        let start = EpochStart {
            start_kind: Start::Backlog,
            replid: "a".repeat(40),
            psync_offset,
            server: None,
            backlog_size: None,
            replid2: None,
        };
        w.start_epoch(start).unwrap();
    }

    /// Appends `n` SETs, one record each, returning the stream bytes.
    fn append_sets(w: &mut Writer, n: usize) -> Vec<u8> {
        let mut all = Vec::new();
        for i in 0..n {
            let cmd = resp(&["SET", &format!("k{i}"), "v"]);
            w.append(cmd.as_bytes(), DB0, i as u64).unwrap();
            all.extend_from_slice(cmd.as_bytes());
        }
        all
    }

    fn stream_of(dir: &Path) -> (Vec<u8>, stream::Reach) {
        let capture = Capture::open(dir).unwrap();
        let mut bytes = Vec::new();
        let reach = stream::records(&capture.epochs[0], None, &mut |_, r| {
            bytes.extend_from_slice(r.payload);
            ControlFlow::Continue(())
        })
        .unwrap();
        (bytes, reach)
    }

    #[test]
    fn segments_roll_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap");
        let mut w = Writer::create(&path, "redis://h:1", 100).unwrap();
        start(&mut w, 170);
        let written = append_sets(&mut w, 20);
        w.seal().unwrap();
        let capture = Capture::open(&path).unwrap();
        let segments = &capture.epochs[0].segments;
        assert!(segments.len() > 5, "{segments:?}");
        assert_eq!(segments[0].first, 171);
        let (bytes, reach) = stream_of(&path);
        assert_eq!(bytes, written);
        assert_eq!(reach.end, 170 + written.len() as u64);
        assert!(reach.fault.is_none(), "{:?}", reach.fault);
    }

    #[test]
    fn a_torn_last_record_is_reported_and_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap");
        let mut w = Writer::create(&path, "redis://h:1", 1 << 20).unwrap();
        start(&mut w, 0);
        let written = append_sets(&mut w, 3);
        w.sync().unwrap();
        drop(w);
        let seg = path.join(segment_name(1, 1, None));
        let whole = std::fs::metadata(&seg).unwrap().len();
        // A fourth record, cut 5 bytes short, as a kill in the middle of a write leaves it.
        let fourth = resp(&["SET", "k3", "v"]);
        let mut rec = record::header(written.len() as u64 + 1, 9, DB0, fourth.as_bytes()).to_vec();
        rec.extend_from_slice(fourth.as_bytes());
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&rec[..rec.len() - 5]).unwrap();
        let (_, reach) = stream_of(&path);
        let fault = reach.fault.expect("the torn record is seen");
        assert!(fault.torn && fault.at == whole, "{fault:?}");

        let (mut w, recovery) = Writer::reopen(&path, 1 << 20).unwrap();
        let cut = (rec.len() - 5) as u64;
        assert_eq!(recovery.torn, Some((segment_name(1, 1, None), whole, cut)));
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), whole);
        assert_eq!(w.next(), written.len() as u64 + 1);
        assert_eq!(w.at_end(), DB0);
        w.append(fourth.as_bytes(), DB0, 10).unwrap();
        w.seal().unwrap();
        let (bytes, reach) = stream_of(&path);
        assert_eq!(bytes, [written, fourth.into_bytes()].concat());
        assert!(reach.fault.is_none());
    }

    #[test]
    fn damage_before_the_end_is_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap");
        let mut w = Writer::create(&path, "redis://h:1", 1 << 20).unwrap();
        start(&mut w, 0);
        append_sets(&mut w, 3);
        w.sync().unwrap();
        drop(w);
        let seg = path.join(segment_name(1, 1, None));
        let mut data = std::fs::read(&seg).unwrap();
        data[HEADER + 3] ^= 1;
        std::fs::write(&seg, data).unwrap();
        let (_, reach) = stream_of(&path);
        let fault = reach.fault.expect("the flipped byte is seen");
        assert!(!fault.torn && fault.at == 0, "{fault:?}");
        assert!(Writer::reopen(&path, 1 << 20).is_err());
    }
}
