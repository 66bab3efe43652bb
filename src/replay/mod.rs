//! Loading a dump (or an AOF) into a live server or cluster.
//!
//! The source is read in order, one key at a time, into a [`Unit`]: the commands that write
//! that key (a RESTORE of the file's bytes, or native commands). Units are batched per target
//! node and sent over a few pipelined connections per node; each reply is attributed to its
//! unit. A unit with no answer (lost connection) or redirected (MOVED, ASK, TRYAGAIN...) is
//! sent again as a whole with replace semantics, so nothing is lost or applied twice. A
//! [`checkpoint::Watermark`] tracks the first key without an answer: a checkpoint records it,
//! and a resume skips what is before it.

mod aof_log;
mod batch;
pub mod checkpoint;
mod dbs;
mod encode;
pub mod endpoint;
pub mod exactly_once;
mod groups;
mod leftovers;
mod node;
mod pipeline;
pub mod slots;
mod topology;
pub mod unit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::aof;
use crate::aof::slice::Selection;
use crate::export::loss::{Loss, Losses};
use crate::export::{self, KeyInfo, Sent, commands::Batch};
use crate::filter::Filter;
use crate::rdb::value::ValueReader;
use crate::rdb::{self, Item, Kind, Reader, Record, SliceInput, Visitor};
use crate::release::Release;
use crate::resp::Command;
use crate::text::count;
pub use aof_log::LogPart;
use checkpoint::Watermark;
use endpoint::{ConnectError, Endpoint, ServerFacts};
use node::{Event, Node};
use unit::{Form, Outcome, Redirect, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Restore,
    Commands,
    /// RESTORE when the target reads the file's RDB version, native commands otherwise.
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExists {
    Fail,
    Replace,
    Skip,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub on_exists: OnExists,
    pub filter: Filter,
    /// Source database → target database.
    pub db_map: HashMap<u64, u64>,
    pub ttl_shift_ms: i64,
    pub no_ttl: bool,
    pub now_ms: i64,
    /// Connections per target node.
    pub connections: usize,
    /// Commands per batch sent on a connection.
    pub pipeline: usize,
    pub max_ops_per_sec: Option<u64>,
    /// Treat the target as a cluster even if it does not say so.
    pub cluster: bool,
    /// How long a key may go without an answer before the replay gives up.
    pub retry_timeout: Duration,
    /// Elements per native command of a large key.
    pub batch_elements: usize,
    /// What the target accepts, when its INFO is not to be trusted.
    pub target: Option<Release>,
    /// Keys (or AOF commands) before this position were answered in an earlier run.
    pub resume_from: u64,
    /// The checkpoint's offset in the log (a hint: the target's progress key says where a
    /// resumed AOF replay continues, see [`exactly_once`]).
    pub resume_offset: Option<u64>,
    /// That run's id (from its checkpoint): its temporary keys are deleted first, and this
    /// run keeps its id.
    pub resume_run: Option<u64>,
    /// Send keys without what the target cannot hold (counted) instead of failing them.
    pub lossy: bool,
    /// Function libraries even with a key filter.
    pub functions: bool,
    /// Stop after this many refused keys.
    pub max_errors: Option<u64>,
    /// Send no write: count what would be sent, per node and command.
    pub dry_run: bool,
    /// The AOF commands replayed (all by default); its filter is `filter`.
    pub slice: Selection,
}

impl Options {
    /// A key's expiry as sent: none with `--no-ttl`, moved by `--ttl-shift`.
    fn expiry(&self, expire_ms: Option<i64>) -> Option<i64> {
        expire_ms
            .filter(|_| !self.no_ttl)
            .map(|ms| ms.saturating_add(self.ttl_shift_ms))
    }

    /// Already expired at `now_ms`: not sent.
    fn expired(&self, expire_ms: Option<i64>) -> bool {
        expire_ms.is_some_and(|ms| ms <= self.now_ms)
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    /// The run's id, which its temporary keys' names carry (kept by the checkpoint).
    pub run_id: u64,
    /// Keys (or AOF commands) read from the source and selected by the filters.
    pub keys: u64,
    /// Function libraries read from the source, loaded (on every master), and found there
    /// already (`--on-exists skip`).
    pub libraries: u64,
    pub libraries_loaded: u64,
    pub libraries_existing: u64,
    /// Function libraries refused by the target (not counted among the failed keys).
    pub libraries_failed: u64,
    pub sent: u64,
    pub acked: u64,
    pub skipped_exists: u64,
    pub skipped_expired: u64,
    pub filtered_out: u64,
    /// Keys before the resume position, not sent again.
    pub skipped_resumed: u64,
    /// Failed keys by error kind (the first word of the error).
    pub failed: BTreeMap<String, u64>,
    /// Keys read but left without an answer when the replay stopped (Ctrl-C, `--max-errors`):
    /// not sent, or sent and not answered in time. Every key read is acknowledged, failed,
    /// skipped as existing, or counted here.
    pub unanswered: u64,
    pub restored: u64,
    pub native: u64,
    /// Commands sent (retries included), replies read and error replies among them, and
    /// among those the ones answered by sending again (MOVED, ASK, TRYAGAIN, LOADING...).
    pub commands: u64,
    pub replies: u64,
    pub error_replies: u64,
    pub retried_errors: u64,
    pub retries: u64,
    /// Keys sent again with replace semantics after their connection was lost (`--on-exists`
    /// fail or skip): an earlier attempt may have made them, so whether they existed before
    /// is not known.
    pub replaced_after_loss: u64,
    pub topology_refreshes: u64,
    /// Target databases written to (all confirmed selectable before anything was sent).
    pub databases: Vec<u64>,
    /// `--dry-run`: per node, the commands that would have been sent, by name.
    pub would_send: BTreeMap<String, BTreeMap<String, u64>>,
    pub notices: Vec<String>,
    /// Keys sent without what the target cannot hold (`--lossy`), by kind of loss.
    pub lost: BTreeMap<&'static str, u64>,
    /// Where the AOF commands of the source start (after an RDB preamble or base), when it
    /// has any.
    pub log_from: Option<u64>,
}

impl Summary {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// A key the target refused.
#[derive(Debug, Clone)]
pub struct Failure {
    /// A function library (named by `key`), not a key.
    pub library: bool,
    pub db: u64,
    pub key: Vec<u8>,
    pub error: String,
}

/// What the caller sees while a replay runs.
pub trait Hooks {
    /// Now and then: source position and the summary so far.
    fn progress(&mut self, pos: u64, summary: &Summary);
    fn failure(&mut self, failure: &Failure);
    /// Every key before `done` (at source offset `offset`) has an answer.
    fn checkpoint(&mut self, done: u64, offset: u64, summary: &Summary, complete: bool);
    /// The user asked to stop (Ctrl-C).
    fn stop(&self) -> bool;
    /// The whole source was read ahead (for the databases it needs): its pages may go.
    fn read_ahead(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rdb(#[from] rdb::Error),
    #[error("{0}")]
    Aof(String),
    #[error("{0}")]
    Target(String),
    #[error("interrupted")]
    Interrupted,
    #[error("stopped: {0}")]
    Stopped(String),
    /// Databases the target cannot select (found before anything was sent).
    #[error("{0}")]
    Databases(String),
}

impl From<export::Error> for Error {
    fn from(e: export::Error) -> Self {
        match e {
            export::Error::Rdb(e) => Error::Rdb(e),
            export::Error::Io(e) => Error::Target(e.to_string()),
        }
    }
}

/// The source's shape.
pub enum Source<'a> {
    /// An RDB, possibly followed by AOF commands (a preamble).
    Rdb(SliceInput<'a>),
    /// RESP commands.
    Aof(&'a [u8]),
    /// The files of a multi-part AOF, in the server's load order.
    Log(Vec<LogPart<'a>>),
}

/// How often (in source records) progress is reported and checkpoints considered.
const TICK: u64 = 1024;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long, once stopped, the answers in flight are waited for.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Bytes per batch before it is sent, whatever its command count.
const BATCH_BYTES: usize = 1 << 20;

pub struct Replay<'h> {
    opts: Options,
    facts: ServerFacts,
    cluster: bool,
    endpoint: Endpoint,
    nodes: Vec<Node>,
    /// Node index serving each slot (cluster).
    slot_map: Vec<usize>,
    pending: Vec<(Vec<Unit>, usize, usize)>,
    delayed: Vec<(Instant, Unit)>,
    in_flight: usize,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    watermark: Watermark,
    summary: Summary,
    last_refresh: Option<Instant>,
    last_checkpoint: Instant,
    started: Instant,
    run_id: u64,
    hooks: &'h mut dyn Hooks,
    source_pos: u64,
    /// A connection for questions (databases, cluster slots), never for writes.
    control: redis::Connection,
    /// Target databases confirmed selectable before anything was sent: the only ones written.
    selectable: BTreeSet<u64>,
    /// Why the replay stopped early (`--max-errors`).
    stopped: Option<String>,
    /// `--dry-run`: the database each node's connection would be in.
    dry_dbs: Vec<u64>,
    /// Where the RDB just read ended (the AOF commands of a preamble file start there).
    rdb_end: Option<usize>,
}

impl<'h> Replay<'h> {
    /// Connects to the target and learns what it is (version, cluster slots).
    pub fn connect(
        endpoint: Endpoint,
        opts: Options,
        hooks: &'h mut dyn Hooks,
    ) -> Result<Self, Error> {
        let explain = endpoint.clone();
        let target_err = |e: redis::RedisError| Error::Target(explain.explain(&e));
        let mut conn = endpoint
            .connect_explained(&|| hooks.stop())
            .map_err(|e| match e {
                ConnectError::Interrupted => Error::Interrupted,
                ConnectError::Failed(why) => {
                    Error::Target(format!("{}: {why}", explain.redacted()))
                }
            })?;
        let mut facts = endpoint::server_facts(&mut conn).map_err(target_err)?;
        if let Some(t) = opts.target {
            facts.target = t;
        }
        let cluster = opts.cluster || facts.cluster;
        let (events_tx, events) = crossbeam_channel::unbounded();
        let run_id = opts.resume_run.unwrap_or_else(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
                & 0xffff_ffff
        });
        let mut r = Replay {
            watermark: Watermark::default(),
            opts,
            facts,
            cluster,
            endpoint,
            nodes: Vec::new(),
            slot_map: vec![0; slots::SLOTS],
            pending: Vec::new(),
            delayed: Vec::new(),
            in_flight: 0,
            events_tx,
            events,
            summary: Summary {
                run_id,
                ..Summary::default()
            },
            last_refresh: None,
            last_checkpoint: Instant::now(),
            started: Instant::now(),
            run_id,
            hooks,
            source_pos: 0,
            control: conn,
            selectable: BTreeSet::new(),
            stopped: None,
            dry_dbs: Vec::new(),
            rdb_end: None,
        };
        if cluster {
            if r.endpoint.db() != 0 {
                return Err(Error::Target("a cluster has only database 0".into()));
            }
            let ranges = node::cluster_slots(&mut r.control).map_err(target_err)?;
            if ranges.is_empty() {
                return Err(Error::Target(format!(
                    "{}: CLUSTER SLOTS lists no slots",
                    r.endpoint.redacted()
                )));
            }
            let mut served = vec![false; slots::SLOTS];
            for &(start, end, _, _) in ranges.iter().filter(|r| r.0 <= r.1) {
                served[start as usize..=end as usize].fill(true);
            }
            let unserved = served.iter().filter(|&&s| !s).count();
            if unserved > 0 {
                r.notice(format!(
                    "the cluster serves no master for {unserved} of {} slots: their keys wait \
                     (CLUSTERDOWN) until --retry-timeout",
                    slots::SLOTS
                ));
            }
            r.apply_slots(ranges)?;
        } else {
            r.node_index(&r.endpoint.address())?;
        }
        Ok(r)
    }

    pub fn facts(&self) -> &ServerFacts {
        &self.facts
    }

    /// Replays a whole source; returns the summary (failed keys are in it, not errors).
    pub fn run(mut self, source: Source<'_>) -> (Summary, Result<(), Error>) {
        let needed = dbs::needed(&source, &self.opts, self.endpoint.db());
        self.hooks.read_ahead();
        let shown = self.endpoint.redacted();
        match dbs::confirm(&mut self.control, &needed, self.cluster, &shown) {
            Ok(dbs) => {
                self.summary.databases = dbs.iter().copied().collect();
                self.selectable = dbs;
            }
            Err(e) => return (self.summary, Err(e)),
        }
        if self.opts.resume_run.is_some()
            && !self.opts.dry_run
            && let Err(e) = self.delete_leftovers()
        {
            return (self.summary, Err(e));
        }
        let result = match source {
            Source::Rdb(inp) => {
                let whole = [LogPart {
                    name: String::new(),
                    data: inp.data(),
                }];
                let base = match self.opts.slice.keeps_base() {
                    true => self.run_rdb(inp),
                    false => self.skip_base(whole[0].data).map(|end| {
                        self.rdb_end = Some(end);
                    }),
                };
                base.and_then(|()| match self.rdb_end.take() {
                    Some(end) if end < whole[0].data.len() && !self.halted() => {
                        self.run_log(&whole, end)
                    }
                    _ => Ok(()),
                })
            }
            Source::Aof(data) => self.run_log(
                &[LogPart {
                    name: "the file".into(),
                    data,
                }],
                0,
            ),
            Source::Log(parts) => self.run_parts(&parts),
        }
        .and_then(|()| {
            if let Some(why) = &self.stopped {
                return Err(Error::Stopped(why.clone()));
            }
            if self.hooks.stop() {
                return Err(Error::Interrupted);
            }
            Ok(())
        });
        let drained = self.finish();
        let result = result.and(drained);
        if matches!(result, Err(Error::Stopped(_) | Error::Interrupted)) {
            let s = &self.summary;
            self.summary.unanswered = s
                .keys
                .saturating_sub(s.acked + s.failed_total() + s.skipped_exists);
        }
        if self.summary.replaced_after_loss > 0 {
            let n = self.summary.replaced_after_loss;
            let n = format!(
                "{} {}",
                count(n, "key"),
                if n == 1 { "was" } else { "were" }
            );
            self.notice(format!(
                "{n} in flight when a connection was lost and were sent again with \
                 replace semantics: any of them that existed on the target before was overwritten"
            ));
        }
        let complete = result.is_ok();
        let end = self.source_pos;
        self.hooks.checkpoint(
            self.watermark.done(),
            self.watermark.offset(end),
            &self.summary,
            complete,
        );
        (self.summary, result)
    }

    /// Ctrl-C, or `--max-errors` reached: read no further.
    fn halted(&self) -> bool {
        self.stopped.is_some() || self.hooks.stop()
    }

    fn notice(&mut self, n: String) {
        if !self.summary.notices.contains(&n) {
            self.summary.notices.push(n);
        }
    }
}
