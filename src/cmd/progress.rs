//! Progress bars on standard error, decided once at start-up (`--quiet`, a terminal or not),
//! and moved by the same position reports that release the pages a reader has passed.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use rdbtool::rdb::SliceInput;
use rdbtool::scan::mapped::{MappedFile, Releaser};

/// Files above this size get a progress bar (on a terminal).
pub const PROGRESS_MIN: u64 = 64 << 20;

/// Where bars go: nowhere with `--quiet` or when standard error is not a terminal, else one
/// line each on standard error, however many files are read at once.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let shown = !quiet && std::io::stderr().is_terminal();
        Progress {
            bars: shown.then(MultiProgress::new),
        }
    }

    /// A byte-position bar for a file of `len` bytes, if it is big enough to wait for.
    pub fn bar(&self, len: u64, path: &Path) -> Option<ProgressBar> {
        (len >= PROGRESS_MIN)
            .then(|| self.any_bar(len, path.display().to_string()))
            .flatten()
    }

    /// A byte-position bar of `len` bytes whatever the size, saying `message`.
    pub fn any_bar(&self, len: u64, message: String) -> Option<ProgressBar> {
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::new(len)
            .with_style(style)
            .with_message(message);
        Some(self.bars.as_ref()?.add(bar))
    }

    /// A line of text that changes (a live status), for work of no known length.
    pub fn line(&self) -> Option<ProgressBar> {
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Some(
            self.bars
                .as_ref()?
                .add(ProgressBar::new_spinner().with_style(style)),
        )
    }

    /// Runs `f` over a mapped file, the pages behind it summed and released (see
    /// [`MappedFile::input`]) and its bar moved as `f` reports its position. An error if the
    /// file changed size meanwhile, whatever `f` made of it.
    pub fn scan_file<R>(
        &self,
        file: &MappedFile,
        path: &Path,
        f: impl FnOnce(SliceInput<'_>, &mut dyn FnMut(u64)) -> R,
    ) -> anyhow::Result<R> {
        let (input, releaser) = file.input();
        let bar = self.bar(file.data().len() as u64, path);
        let mut follower = Follower::new(Some(releaser), bar);
        let result = f(input, &mut |pos| follower.advance(pos));
        drop(follower);
        file.check_size()
            .with_context(|| path.display().to_string())?;
        Ok(result)
    }
}

/// Follows a reader through a mapped file: each position it reports releases the pages
/// behind it and moves its bar (if any), which goes when this does.
pub struct Follower<'m> {
    /// None: a source of several files, whose pages the kernel reclaims unaided.
    releaser: Option<Releaser<'m>>,
    bar: Option<ProgressBar>,
}

impl<'m> Follower<'m> {
    pub fn new(releaser: Option<Releaser<'m>>, bar: Option<ProgressBar>) -> Self {
        Follower { releaser, bar }
    }

    /// Nothing before `pos` will be read again.
    pub fn advance(&mut self, pos: u64) {
        if let Some(r) = &mut self.releaser {
            r.advance(pos);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    pub fn bar(&self) -> Option<&ProgressBar> {
        self.bar.as_ref()
    }
}

impl Drop for Follower<'_> {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
