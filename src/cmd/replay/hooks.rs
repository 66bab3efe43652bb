//! What the command line does while a replay runs: its progress (the source's pages released
//! behind the reader, a bar), the refused keys' file, the checkpoint, and Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

use rdbtool::export::json;
use rdbtool::replay::checkpoint::Checkpoint;
use rdbtool::replay::{Failure, Hooks, Summary};
use rdbtool::scan::mapped::{MappedFile, Releaser};

use crate::cmd::progress::{Follower, Progress};
use crate::cmd::{now_ms, thousands};

/// Where and what the checkpoint records of the source.
pub struct CheckpointTo {
    pub path: PathBuf,
    pub source: String,
    pub hash: String,
    pub size: u64,
    /// A multi-part AOF's files (name and size).
    pub parts: Vec<String>,
}

pub struct CliHooks<'f> {
    /// A single-file source, whose pages are dropped once read ahead.
    file: Option<&'f MappedFile>,
    /// The reader's position: the pages behind it released (every key's commands are copied
    /// out of it), the bar moved.
    follower: Follower<'f>,
    stop: Arc<AtomicBool>,
    errors_to: Option<std::io::BufWriter<std::fs::File>>,
    checkpoint: Option<CheckpointTo>,
    started: Instant,
    /// The first write to --errors-to or the checkpoint that failed.
    pub io_error: Option<String>,
}

impl<'f> CliHooks<'f> {
    /// Creates `--errors-to` and hears Ctrl-C from now on; the releaser of a single-file
    /// source follows the reader through its `len` bytes.
    pub fn new(
        file: Option<(&'f MappedFile, Releaser<'f>)>,
        len: u64,
        progress: &Progress,
        errors_to: Option<&PathBuf>,
        checkpoint: Option<CheckpointTo>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            // Without a handler Ctrl-C still ends the process; only the final checkpoint is lost.
            let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
        }
        let errors_to = errors_to
            .map(|p| {
                std::fs::File::create(p)
                    .map(std::io::BufWriter::new)
                    .with_context(|| p.display().to_string())
            })
            .transpose()?;
        let bar = progress.any_bar(len, String::new());
        let (file, releaser) = file.unzip();
        Ok(CliHooks {
            file,
            follower: Follower::new(releaser, bar),
            stop,
            errors_to,
            checkpoint,
            started: Instant::now(),
            io_error: None,
        })
    }

    /// The bar cleared and `--errors-to` written out.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(bar) = self.follower.bar() {
            bar.finish_and_clear();
        }
        if let Some(w) = self.errors_to.as_mut() {
            w.flush()?;
        }
        Ok(())
    }
}

impl Hooks for CliHooks<'_> {
    fn progress(&mut self, pos: u64, s: &Summary) {
        self.follower.advance(pos);
        if let Some(bar) = self.follower.bar() {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} keys/s, {} failed",
                thousands((s.acked as f64 / secs) as u64),
                thousands(s.failed_total())
            ));
        }
    }

    fn failure(&mut self, f: &Failure) {
        let Some(w) = self.errors_to.as_mut() else {
            return;
        };
        let line = (|| -> std::io::Result<()> {
            match f.library {
                true => w.write_all(b"{\"library\":")?,
                false => write!(w, "{{\"db\":{},\"key\":", f.db)?,
            }
            json::write_bytes(w, &f.key)?;
            w.write_all(b",\"error\":")?;
            serde_json::to_writer(&mut *w, &f.error)?;
            w.write_all(b"}\n")
        })();
        if let Err(e) = line {
            self.io_error.get_or_insert(format!("--errors-to: {e}"));
        }
    }

    fn checkpoint(&mut self, done: u64, offset: u64, s: &Summary, complete: bool) {
        let Some(to) = &self.checkpoint else {
            return;
        };
        let cp = Checkpoint {
            source: to.source.clone(),
            source_size: to.size,
            source_hash: to.hash.clone(),
            parts: to.parts.clone(),
            done,
            offset,
            acked: s.acked,
            failed: s.failed_total(),
            run_id: s.run_id,
            complete,
            updated_ms: now_ms(),
        };
        if let Err(e) = cp.save(&to.path) {
            self.io_error
                .get_or_insert(format!("{}: {e}", to.path.display()));
        }
    }

    fn stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn read_ahead(&mut self) {
        if let Some(file) = self.file {
            file.release_all();
        }
    }
}
