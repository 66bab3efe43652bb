//! Memory-mapped input files, with a sequential scan's pages handed back to the kernel as it
//! goes, so verifying a file larger than RAM keeps a small resident set.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};

use super::crc::Crc64;
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

    /// Runs `f` over the file as an input whose trailer checksum is summed on another core (a
    /// well-formed file's checksum covers all but its last 8 bytes), releasing pages on both
    /// cores as they are passed. `f` gets a callback to report its position now and then.
    pub fn scan<R>(&self, f: impl FnOnce(SliceInput<'_>, &mut dyn FnMut(u64)) -> R) -> R {
        let data = self.data();
        let crc_end = data.len().saturating_sub(8);
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || tx.send(self.checksum_prefix(crc_end)));
            let mut releaser = Releaser::new(self);
            f(
                SliceInput::new(data).with_checksum_of_prefix(crc_end, rx),
                &mut |pos| releaser.advance(pos),
            )
        })
    }

    /// CRC-64 of `data()[..end]`, releasing pages as it goes.
    fn checksum_prefix(&self, end: usize) -> u64 {
        let data = self.data().get(..end).unwrap_or_default();
        let mut crc = Crc64::new();
        for (i, chunk) in data.chunks(WINDOW).enumerate() {
            crc.update(chunk);
            self.release(i * WINDOW, i * WINDOW + chunk.len());
        }
        crc.value()
    }
}

/// A multiple of every common page size (4 KiB, 16 KiB, 64 KiB), so ranges are aligned
/// without asking the OS.
const RELEASE_ALIGN: usize = 64 << 10;

/// Follows a sequential reader through a mapped file and releases what it has passed.
struct Releaser<'m> {
    file: &'m MappedFile,
    done: usize,
}

impl<'m> Releaser<'m> {
    fn new(file: &'m MappedFile) -> Self {
        Releaser { file, done: 0 }
    }

    #[inline]
    fn advance(&mut self, pos: u64) {
        let pos = pos as usize;
        if pos >= self.done + WINDOW {
            self.file.release(self.done, pos);
            self.done = pos;
        }
    }
}
