//! A full sync: the snapshot the master sends after `+FULLRESYNC`, kept in a temporary file
//! beside the checkpoint, then replayed into the target with the replay engine (RESTORE where
//! the target reads the source's RDB version, native commands otherwise; existing keys
//! replaced). Meanwhile a thread keeps the link: it reads the stream that follows into memory
//! and acks the master with offset 0 (nothing of the stream is applied yet: a `WAIT` on the
//! source must not count this replica), so that a long replay is not cut for silence.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::backlog::replica::Replica;
use crate::filter::Filter;
use crate::replay::endpoint::Endpoint;
use crate::replay::{self, Failure, Hooks, Mode, OnExists, Replay, Source, Summary};
use crate::scan::mapped::MappedFile;

/// What a full sync did.
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot_bytes: u64,
    pub keys: u64,
    /// Keys the target refused, and the first refusals.
    pub failed: u64,
    pub failures: Vec<String>,
    /// The stream bytes that arrived during the replay, to apply first.
    pub spooled: Vec<u8>,
    /// The link failed during the replay (the stream continues by `PSYNC` after it).
    pub link: Option<String>,
}

/// How the snapshot goes into the target.
pub struct Load<'a> {
    pub target: &'a Endpoint,
    /// The sync's run id: temporary keys of a cut full sync of the same run are deleted.
    pub run_id: u64,
    pub retry_timeout: Duration,
    /// Where the snapshot's temporary file goes.
    pub dir: &'a Path,
}

/// Receives the snapshot after `+FULLRESYNC` and replays it into the target.
pub fn full_sync(
    replica: &mut Replica,
    load: &Load<'_>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Loaded> {
    let tmp = tempfile::Builder::new()
        .prefix(".rdbtool-sync-")
        .suffix(".rdb")
        .tempfile_in(load.dir)
        .with_context(|| format!("a temporary file in {}", load.dir.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let snapshot_bytes = replica.snapshot(&mut out)?;
    out.flush()?;
    drop(out);
    let file = MappedFile::open(tmp.path())?;
    // After a diskless transfer the master waits for an ACK before the stream.
    replica.ack(0)?;
    let done = AtomicBool::new(false);
    let ((summary, mut failures), result, (spooled, link)) = std::thread::scope(|s| {
        let pump = s.spawn(|| pump(replica, &done, stop));
        let (summary, result) = replay_snapshot(file.data(), load, stop);
        done.store(true, Ordering::SeqCst);
        let pumped = pump.join().unwrap_or_else(|_| (Vec::new(), None));
        (summary, result, pumped)
    });
    if let Err(e) = result {
        bail!("replaying the snapshot into the target: {e}");
    }
    failures.truncate(FAILURES_SHOWN);
    Ok(Loaded {
        snapshot_bytes,
        keys: summary.keys,
        failed: summary.failed_total() + summary.libraries_failed,
        failures,
        spooled,
        link,
    })
}

/// How many refusals are shown.
pub const FAILURES_SHOWN: usize = 5;

fn replay_snapshot(
    data: &[u8],
    load: &Load<'_>,
    stop: &dyn Fn() -> bool,
) -> ((Summary, Vec<String>), Result<(), replay::Error>) {
    let mut hooks = LoadHooks {
        stop,
        failures: Vec::new(),
    };
    let opts = replay::Options {
        mode: Mode::Auto,
        on_exists: OnExists::Replace,
        filter: Filter::default(),
        db_map: Default::default(),
        ttl_shift_ms: 0,
        no_ttl: false,
        now_ms: crate::backlog::store::now_ms() as i64,
        connections: 2,
        pipeline: 1000,
        max_ops_per_sec: None,
        cluster: false,
        retry_timeout: load.retry_timeout,
        batch_elements: 1000,
        target: None,
        resume_from: 0,
        resume_offset: None,
        resume_run: Some(load.run_id),
        lossy: false,
        functions: true,
        max_errors: None,
        dry_run: false,
        slice: Default::default(),
    };
    let replay = match Replay::connect(load.target.clone(), opts, &mut hooks) {
        Ok(r) => r,
        Err(e) => return ((Summary::default(), Vec::new()), Err(e)),
    };
    let (summary, result) = replay.run(Source::Rdb(crate::rdb::SliceInput::new(data)));
    ((summary, hooks.failures), result)
}

/// The stream that arrives during the replay, kept in memory; an ACK of offset 0 each second.
fn pump(
    replica: &mut Replica,
    done: &AtomicBool,
    stop: &(dyn Fn() -> bool + Sync),
) -> (Vec<u8>, Option<String>) {
    let mut spooled = Vec::new();
    let mut chunk = vec![0; 1 << 16];
    let mut last_ack = Instant::now();
    replica.poll(Duration::from_millis(100));
    while !done.load(Ordering::SeqCst) && !stop() {
        match replica.read(&mut chunk) {
            Ok(n) => spooled.extend_from_slice(&chunk[..n]),
            Err(e) => return (spooled, Some(e.to_string())),
        }
        if last_ack.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = replica.ack(0) {
                return (spooled, Some(e.to_string()));
            }
            last_ack = Instant::now();
        }
    }
    (spooled, None)
}

struct LoadHooks<'a> {
    stop: &'a dyn Fn() -> bool,
    failures: Vec<String>,
}

impl Hooks for LoadHooks<'_> {
    fn progress(&mut self, _pos: u64, _summary: &Summary) {}

    fn failure(&mut self, f: &Failure) {
        if self.failures.len() < FAILURES_SHOWN {
            let what = match f.library {
                true => "library",
                false => "key",
            };
            self.failures.push(format!(
                "{what} {:?} (db {}): {}",
                String::from_utf8_lossy(&f.key),
                f.db,
                f.error
            ));
        }
    }

    fn checkpoint(&mut self, _done: u64, _offset: u64, _summary: &Summary, _complete: bool) {}

    fn stop(&self) -> bool {
        (self.stop)()
    }
}
