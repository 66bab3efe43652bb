//! Memory-mapped input files, with a sequential scan's pages handed back to the kernel as it
//! goes, so verifying a file larger than RAM keeps a small resident set.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex};

use memmap2::{Mmap, UncheckedAdvice};

use super::sigbus;
use crate::rdb::SliceInput;
use crate::rdb::crc::PrefixCrc;

/// Pages are released in windows of this size behind the scan.
const WINDOW: usize = 32 << 20;

pub struct MappedFile {
    /// Declared before `map`, so that the watch ends before the pages are unmapped.
    _watch: Option<sigbus::Region>,
    map: Option<Mmap>,
    file: File,
}

impl MappedFile {
    /// Maps a regular file (see [`MappedFile::from_file`]).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::from_file(File::open(path)?, &path.display().to_string())
    }

    /// Maps an open regular file; `label` names it in messages. A directory, a pipe or a
    /// device is refused: mapped, a pipe would read as an empty file (see
    /// [`MappedFile::spool`]).
    pub fn from_file(file: File, label: &str) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a file",
            ));
        }
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a pipe or a device): it can only be read as a stream",
            ));
        }
        Self::map(file, label)
    }

    /// Copies a stream (standard input, a pipe) into an unnamed temporary file and maps that,
    /// for the readers that need the whole file at hand.
    pub fn spool(mut stream: impl Read, label: &str) -> std::io::Result<Self> {
        let mut file = tempfile::tempfile()?;
        std::io::copy(&mut stream, &mut file)?;
        file.rewind()?;
        Self::map(file, label)
    }

    /// `label` names the file if it changes size while mapped.
    fn map(file: File, label: &str) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            // Zero-length maps are refused by the kernel; an empty file is just empty input.
            return Ok(MappedFile {
                _watch: None,
                map: None,
                file,
            });
        }
        // SAFETY: the map is read-only; if another process truncates the file while we read it,
        // touching the lost pages raises SIGBUS, which `sigbus` turns into a message naming the
        // file and exit status 2 (once installed). Backups being verified are not being written.
        let map = unsafe { Mmap::map(&file)? };
        let message = format!(
            "rdbtool: {label}: changed size while being read ({} bytes when opened): \
             another process truncated it\n",
            map.len()
        );
        let watch = sigbus::register(map.as_ptr(), map.len(), message.as_bytes());
        Ok(MappedFile {
            _watch: watch,
            map: Some(map),
            file,
        })
    }

    /// An error if the file's size is not what it was when mapped (another process is writing
    /// it): what was read may be neither the old file nor the new one.
    pub fn check_size(&self) -> std::io::Result<()> {
        let was = self.data().len() as u64;
        let now = self.file.metadata()?.len();
        if now == was {
            return Ok(());
        }
        Err(std::io::Error::other(format!(
            "changed size while being read ({was} bytes when opened, {now} now): \
             another process is writing it"
        )))
    }

    pub fn data(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// Reads from now on jump around (a second pass to a few keys): no read-ahead, which would
    /// otherwise bring in 128 KiB around every value touched.
    pub fn random_access(&self) {
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Random);
        }
    }

    /// Drops every resident page (they are read again if touched).
    pub fn release_all(&self) {
        self.release(0, self.data().len());
    }

    /// Drops the resident pages wholly inside `start..end` (read again if touched).
    pub fn release(&self, start: usize, end: usize) {
        let Some(map) = &self.map else { return };
        let page = RELEASE_ALIGN;
        let start = start.div_ceil(page) * page;
        let end = (end / page) * page;
        if end > start {
            // SAFETY: the mapping is private and read-only, so dropping pages only means they are
            // read again from the file if touched later; no data can be lost.
            let _ = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// Runs `f` over the file as an input, releasing pages as `f` passes them: `f` gets a
    /// callback to report, now and then, the position before which nothing will be read again.
    /// The pages are checksummed just before they are released, so the checksum at the
    /// trailer is mostly done when it is asked for.
    pub fn scan<R>(&self, f: impl FnOnce(SliceInput<'_>, &mut dyn FnMut(u64)) -> R) -> R {
        let (inp, mut releaser) = self.input();
        f(inp, &mut |pos| releaser.advance(pos))
    }

    /// What [`MappedFile::scan`] hands its reader, apart: the file as an input, and the
    /// releaser to tell, now and then, the position before which nothing will be read again,
    /// for a reader whose position is reported from elsewhere.
    pub fn input(&self) -> (SliceInput<'_>, Releaser<'_>) {
        let crc = Arc::new(Mutex::new(PrefixCrc::default()));
        let releaser = Releaser {
            file: self,
            crc: Some(Arc::clone(&crc)),
            done: 0,
        };
        (
            SliceInput::new(self.data()).with_shared_checksum(crc),
            releaser,
        )
    }

    /// A releaser for a reader that needs no checksum (of an AOF, say).
    pub fn releaser(&self) -> Releaser<'_> {
        Releaser {
            file: self,
            crc: None,
            done: 0,
        }
    }
}

/// When a walk over a file reports its position (so that pages behind it are summed and
/// released, and a progress bar moves): every [`Ticker::RECORDS`] records, or sooner once it has
/// gone [`Ticker::BYTES`] further, so that a file of a few huge values is released as it goes.
/// Ask before reading the next record, not after: reading the last one sums the checksum to the
/// end of the file, which should find the pages of the values passed already released.
#[derive(Default)]
pub struct Ticker {
    records: u32,
    last: u64,
}

impl Ticker {
    pub const RECORDS: u32 = 4096;
    pub const BYTES: u64 = 8 << 20;

    /// Counts a record read up to `pos`; true when it is time to report `pos`.
    #[inline]
    pub fn due(&mut self, pos: u64) -> bool {
        self.records += 1;
        if self.records < Self::RECORDS && pos < self.last + Self::BYTES {
            return false;
        }
        self.records = 0;
        self.last = pos;
        true
    }
}

/// A multiple of every common page size (4 KiB, 16 KiB, 64 KiB), so ranges are aligned
/// without asking the OS.
const RELEASE_ALIGN: usize = 64 << 10;

/// Follows a sequential reader through a mapped file, releasing what it has passed (summed
/// into the input's checksum first, for an input of [`MappedFile::input`]).
pub struct Releaser<'m> {
    file: &'m MappedFile,
    crc: Option<Arc<Mutex<PrefixCrc>>>,
    done: usize,
}

impl Releaser<'_> {
    /// Nothing before `pos` will be read again. One window at a time, so that a long jump
    /// (past one big string) never has more than a window resident: checksumming touches every
    /// page it passes.
    #[inline]
    pub fn advance(&mut self, pos: u64) {
        let pos = pos as usize;
        while pos >= self.done + WINDOW {
            let next = (self.done + WINDOW).min(pos);
            if let Some(Ok(mut crc)) = self.crc.as_ref().map(|c| c.lock()) {
                crc.upto(self.file.data(), next);
            }
            self.file.release(self.done, next);
            self.done = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Input;
    use crate::rdb::crc::Crc64;

    #[test]
    fn ticker_is_due_every_few_thousand_records_or_megabytes() {
        let mut t = Ticker::default();
        let due: Vec<u32> = (1..=3 * Ticker::RECORDS)
            .filter(|&i| t.due(u64::from(i)))
            .collect();
        assert_eq!(due, [1, 2, 3].map(|k| k * Ticker::RECORDS));
        // One record past a big value is due at once.
        assert!(t.due(u64::from(3 * Ticker::RECORDS) + Ticker::BYTES));
        assert!(!t.due(u64::from(3 * Ticker::RECORDS) + Ticker::BYTES + 1));
    }

    #[test]
    fn an_input_and_its_releaser_apart_sum_as_a_scan_does() {
        let len = 2 * WINDOW + 777;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        let file = MappedFile::open(f.path()).unwrap();
        let (mut inp, mut releaser) = file.input();
        for pos in [WINDOW + 5, 2 * WINDOW + 1] {
            inp.skip(pos as u64 - inp.pos(), "test").unwrap();
            releaser.advance(pos as u64);
        }
        assert_eq!(releaser.done, 2 * WINDOW);
        inp.skip(100, "test").unwrap();
        assert_eq!(inp.checksum(), Crc64::checksum(&data[..2 * WINDOW + 101]));
        // Without a checksum (an AOF's reader): pages released all the same.
        let mut plain = file.releaser();
        plain.advance(len as u64);
        assert_eq!(plain.done, 2 * WINDOW);
        assert!(plain.crc.is_none());
    }

    #[test]
    fn a_size_change_after_mapping_is_an_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &[7; 10_000]).unwrap();
        let file = MappedFile::open(f.path()).unwrap();
        assert!(file.check_size().is_ok());
        f.as_file().set_len(100).unwrap();
        let e = file.check_size().unwrap_err().to_string();
        assert_eq!(
            e,
            "changed size while being read (10000 bytes when opened, 100 now): \
             another process is writing it"
        );
    }

    #[test]
    fn checksum_summed_while_releasing_equals_one_pass() {
        // Over three release windows, so pages are summed, released, and the rest summed at
        // the end; the last jump spans two windows at once (as past one big string).
        let len = 3 * WINDOW + 12_345;
        let data: Vec<u8> = (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        let file = MappedFile::open(f.path()).unwrap();
        let end = len - 8;
        let got = file.scan(|mut inp, release| {
            for pos in [WINDOW / 2, WINDOW + 1, 3 * WINDOW + 3] {
                inp.skip(pos as u64 - inp.pos(), "test").unwrap();
                release(pos as u64);
            }
            inp.skip(end as u64 - inp.pos(), "test").unwrap();
            inp.checksum()
        });
        assert_eq!(got, Crc64::checksum(&data[..end]));
    }
}
