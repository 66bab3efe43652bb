//! Memory-mapped input files, with a sequential scan's pages handed back to the kernel as it
//! goes, so verifying a file larger than RAM keeps a small resident set.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use memmap2::{Mmap, UncheckedAdvice};

use super::crc::PrefixCrc;
use super::input::SliceInput;

/// Pages are released in windows of this size behind the scan.
const WINDOW: usize = 32 << 20;

pub struct MappedFile {
    map: Option<Mmap>,
}

impl MappedFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            // Zero-length maps are refused by the kernel; an empty file is just empty input.
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the map is read-only; if another process truncates the file while we read it,
        // touching the lost pages raises SIGBUS. Backups being verified are not being written.
        let map = unsafe { Mmap::map(&file)? };
        Ok(MappedFile { map: Some(map) })
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
        let data = self.data();
        let crc = Arc::new(Mutex::new(PrefixCrc::default()));
        let mut releaser = Releaser {
            file: self,
            crc: Arc::clone(&crc),
            done: 0,
        };
        f(
            SliceInput::new(data).with_shared_checksum(crc),
            &mut |pos| releaser.advance(pos),
        )
    }
}

/// A multiple of every common page size (4 KiB, 16 KiB, 64 KiB), so ranges are aligned
/// without asking the OS.
const RELEASE_ALIGN: usize = 64 << 10;

/// Follows a sequential reader through a mapped file, summing and releasing what it has passed.
struct Releaser<'m> {
    file: &'m MappedFile,
    crc: Arc<Mutex<PrefixCrc>>,
    done: usize,
}

impl Releaser<'_> {
    #[inline]
    fn advance(&mut self, pos: u64) {
        let pos = pos as usize;
        if pos >= self.done + WINDOW {
            if let Ok(mut crc) = self.crc.lock() {
                crc.upto(self.file.data(), pos);
            }
            self.file.release(self.done, pos);
            self.done = pos;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Input;
    use crate::rdb::crc::Crc64;

    #[test]
    fn checksum_summed_while_releasing_equals_one_pass() {
        // Over two release windows, so pages are summed, released, and the rest summed at
        // the end.
        let len = 2 * WINDOW + 12_345;
        let data: Vec<u8> = (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &data).unwrap();
        let file = MappedFile::open(f.path()).unwrap();
        let end = len - 8;
        let got = file.scan(|mut inp, release| {
            for pos in [WINDOW / 2, WINDOW + 1, 2 * WINDOW + 3] {
                inp.skip(pos as u64 - inp.pos(), "test").unwrap();
                release(pos as u64);
            }
            inp.skip(end as u64 - inp.pos(), "test").unwrap();
            inp.checksum()
        });
        assert_eq!(got, Crc64::checksum(&data[..end]));
    }
}
