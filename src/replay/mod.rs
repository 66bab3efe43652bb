//! Loading a dump (or an AOF) into a live server or cluster.
//!
//! The source is read in order, one key at a time, into a [`Unit`]: the commands that write
//! that key (a RESTORE of the file's bytes, or native commands). Units are batched per target
//! node and sent over a few pipelined connections per node; each reply is attributed to its
//! unit. A unit with no answer (lost connection) or redirected (MOVED, ASK, TRYAGAIN...) is
//! sent again as a whole with replace semantics, so nothing is lost or applied twice. A
//! [`checkpoint::Watermark`] tracks the first key without an answer: a checkpoint records it,
//! and a resume skips what is before it.

pub mod checkpoint;
mod dbs;
pub mod endpoint;
mod leftovers;
mod node;
pub mod slots;
pub mod unit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::aof;
use crate::export::loss::{Loss, Losses};
use crate::export::{self, KeyInfo, Sent, Target, commands::Batch};
use crate::filter::Filter;
use crate::rdb::value::ValueReader;
use crate::rdb::{self, Item, Kind, Reader, Record, SliceInput, Visitor};
use crate::resp::Command;
use crate::text::count;
use checkpoint::Watermark;
use endpoint::{Endpoint, ServerFacts};
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
    pub target: Option<Target>,
    /// Keys (or AOF commands) before this position were answered in an earlier run.
    pub resume_from: u64,
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
    pub sent: u64,
    pub acked: u64,
    pub skipped_exists: u64,
    pub skipped_expired: u64,
    pub filtered_out: u64,
    /// Keys before the resume position, not sent again.
    pub skipped_resumed: u64,
    /// Failed keys by error kind (the first word of the error).
    pub failed: BTreeMap<String, u64>,
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
}

impl Summary {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// What [`Replay::encode_key`] made of a key.
enum Encoded {
    /// The form, command count and commands of its unit.
    Unit(Form, u64, Vec<u8>),
    /// Nothing: left out by the loss policy (see [`export::loss`]).
    Left(Losses),
}

/// A key the target refused.
#[derive(Debug, Clone)]
pub struct Failure {
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
        let mut conn = endpoint.connect_explained().map_err(Error::Target)?;
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

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    pub fn node_addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Per node: used memory and `maxmemory` (0: no limit), when INFO memory answers.
    pub fn node_memory(&self) -> Vec<(String, Option<(u64, u64)>)> {
        self.nodes
            .iter()
            .map(|n| {
                let memory = split_addr(&n.addr)
                    .and_then(|(host, port)| self.endpoint.at(host, port).ok())
                    .and_then(|e| e.connect().ok())
                    .and_then(|mut c| endpoint::memory(&mut c));
                (n.addr.clone(), memory)
            })
            .collect()
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
            Source::Rdb(inp) => self.run_rdb(inp),
            Source::Aof(data) => self.run_aof(data, 0),
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

    fn export_options(&self, version: u16, resend: bool) -> export::Options {
        let restore = match self.opts.mode {
            Mode::Commands => false,
            Mode::Restore | Mode::Auto => self.facts.target.accepts_payload(version),
        };
        export::Options {
            format: export::Format::Resp,
            restore,
            target: self.facts.target,
            batch: Batch {
                elements: self.opts.batch_elements.max(1),
                bytes: (BATCH_BYTES as u64).min(self.facts.max_bulk / 2).max(1) as usize,
            },
            restore_max: self.facts.max_bulk.saturating_sub(64),
            filter: Filter::default(),
            keep_expired: true,
            now_ms: self.opts.now_ms,
            no_ttl: false,
            restore_replace: self.opts.on_exists == OnExists::Replace || resend,
            lossy: self.opts.lossy,
            functions: self.opts.functions,
        }
    }

    fn run_rdb(&mut self, inp: SliceInput<'_>) -> Result<(), Error> {
        let data = inp.data();
        let mut reader = Reader::new(inp)?;
        let version = reader.format().version;
        if self.opts.mode == Mode::Restore && !self.facts.target.accepts_payload(version) {
            return Err(Error::Target(format!(
                "{} does not read RDB version {version}: use --mode commands or auto",
                self.facts.target
            )));
        }
        let mut esummary = export::Summary::default();
        let result = self.rdb_records(&mut reader, data, version, &mut esummary);
        let losses = esummary.losses.report(self.facts.target);
        for n in esummary.notices.into_iter().chain(losses) {
            self.notice(n);
        }
        self.summary.lost = esummary.losses.lost;
        result
    }

    /// The records of an RDB after its header (and the AOF commands after its end).
    fn rdb_records<'a>(
        &mut self,
        reader: &mut Reader<'a, SliceInput<'a>>,
        data: &'a [u8],
        version: u16,
        esummary: &mut export::Summary,
    ) -> Result<(), Error> {
        let mut records = 0u64;
        while let Some(rec) = reader.next_record() {
            let rec = rec?;
            records += 1;
            self.source_pos = reader.pos();
            if records.is_multiple_of(TICK) {
                self.tick()?;
            }
            if self.halted() {
                return Ok(());
            }
            match rec.record {
                Record::Function { code } => self.function(&code, esummary)?,
                Record::Key { db, key, ty, meta } => {
                    let seq = self.watermark.open(rec.offset);
                    let expire_ms = self.opts.expiry(meta.expire_ms);
                    let skip = if seq < self.opts.resume_from {
                        Some(&mut self.summary.skipped_resumed)
                    } else if !self.opts.filter.key(db, &key, ty.kind()) {
                        Some(&mut self.summary.filtered_out)
                    } else if self.opts.expired(expire_ms) {
                        Some(&mut self.summary.skipped_expired)
                    } else {
                        None
                    };
                    if let Some(counter) = skip {
                        *counter += 1;
                        reader.skip_value()?;
                        self.watermark.close(seq);
                        continue;
                    }
                    self.summary.keys += 1;
                    let target_db = self.target_db(db);
                    if !self.selectable.contains(&target_db) {
                        reader.skip_value()?;
                        self.unselectable(seq, target_db, &key);
                        continue;
                    }
                    let resend = seq >= self.opts.resume_from && self.opts.resume_from > 0;
                    let slot = slots::key_slot(&key);
                    let info = KeyInfo {
                        db: target_db,
                        key: &key,
                        ty,
                        expire_ms,
                        idle: meta.idle,
                        freq: meta.freq,
                        key_meta: !meta.meta_classes.is_empty(),
                    };
                    let encoded = self.encode_key(
                        reader,
                        data,
                        version,
                        info,
                        (slot, seq, resend),
                        esummary,
                    )?;
                    let (form, commands, body) = match encoded {
                        Encoded::Unit(form, commands, body) => (form, commands, body),
                        // Counted as lost by the loss policy: nothing of it can be sent.
                        Encoded::Left(_) if self.opts.lossy => {
                            self.watermark.close(seq);
                            continue;
                        }
                        Encoded::Left(losses) => {
                            let reason = losses.reason(self.facts.target);
                            self.fail(seq, target_db, &key, &reason);
                            continue;
                        }
                    };
                    match form {
                        Form::Restore => self.summary.restored += 1,
                        _ => self.summary.native += 1,
                    }
                    self.dispatch(Unit {
                        commands: commands as u32,
                        resend,
                        ..Unit::new(seq, target_db, key.into_owned(), slot, form, body)
                    })?;
                }
                Record::Eof { .. } => {
                    let end = reader.pos() as usize;
                    if end < data.len() {
                        return self.run_aof(data, end);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The commands for one key, and their form: `SET [NX]` for a string, `RESTORE`, or native
    /// commands (on a temporary key when an existing key must not be overwritten). `at` is the
    /// key's slot, position and whether it is sent with replace semantics.
    fn encode_key<'a>(
        &self,
        reader: &mut Reader<'a, SliceInput<'a>>,
        data: &'a [u8],
        version: u16,
        info: KeyInfo<'_>,
        (slot, seq, resend): (u16, u64, bool),
        esummary: &mut export::Summary,
    ) -> Result<Encoded, Error> {
        let eopts = self.export_options(version, resend);
        let staged = self.opts.on_exists != OnExists::Replace && !resend;
        let key = info.key;
        let t = self.facts.target;
        // A string goes as `SET` (grouped into `MSETNX` when it has no TTL) in every mode: the
        // same value, for about half of what the server spends on a `RESTORE` (checksumming and
        // decoding its payload). Unless the file keeps its LRU/LFU state, which only `RESTORE`
        // sets.
        let access = info.idle.is_some() || info.freq.is_some();
        let string = !(eopts.restore && access && t.restore_absttl())
            && info.ty.kind() == Kind::String
            && (t.valkey || t.major >= 3);
        let mut body = Vec::new();
        if string {
            let value = read_string(reader)?;
            let whole = value.len() <= eopts.batch.bytes;
            // SET, or native commands: its LRU/LFU state is left behind (see `export::loss`; a
            // RESTORE below counts its own), as is key metadata.
            let mut losses = Losses::default();
            if access && (whole || !eopts.restore) {
                losses.add(Loss::LruLfu);
            }
            if info.key_meta && (whole || !eopts.restore) {
                losses.add(Loss::KeyMeta);
            }
            if !esummary.losses.settle(losses, eopts.lossy) {
                return Ok(Encoded::Left(losses));
            }
            if whole {
                let body = self.set_body(key, &value, info.expire_ms, staged);
                return Ok(Encoded::Unit(Form::Set, 1, body));
            }
        }
        let tmp = if staged {
            self.tmp_name(slot, seq)
        } else {
            Vec::new()
        };
        // Written natively under `name`, then the form that makes the key.
        let native = |name: &[u8], n: u64| match name == key {
            true => (Form::Direct, n),
            false => (Form::Staged { tmp: tmp.clone() }, n),
        };
        let name: &[u8] = if staged && !eopts.restore { &tmp } else { key };
        if string && !eopts.restore {
            // Larger than one bulk string may be: SET and APPENDs.
            let (start, end) = reader.value_span();
            let value = &data[start as usize..end as usize];
            let n = native_from_bytes(value, &KeyInfo { key: name, ..info }, &eopts, &mut body)?;
            let (form, n) = native(name, n);
            return Ok(Encoded::Unit(form, n, body));
        }
        let info = KeyInfo { key: name, ..info };
        // A string too large for one SET is restored from its bytes, already read.
        let mut values = None;
        let mut value = match string {
            true => {
                let (start, end) = reader.value_span();
                export::Value::Span {
                    data,
                    start,
                    end,
                    values: values.insert(ValueReader::new()),
                }
            }
            false => export::Value::Reader { reader, data },
        };
        let (form, n) =
            match export::resp_key(&mut value, version, &info, &eopts, esummary, &mut body)? {
                Sent::Left(losses) => return Ok(Encoded::Left(losses)),
                Sent::Restore if name == key => (Form::Restore, 1),
                Sent::Restore => (Form::Staged { tmp: tmp.clone() }, 1),
                Sent::Native(n) if !staged || name != key => native(name, n),
                Sent::Native(_) => {
                    // Too large for RESTORE, so written natively under the key's own name: write
                    // it again under the temporary one.
                    let (start, end) = reader.value_span();
                    body.clear();
                    let value = &data[start as usize..end as usize];
                    let n = native_from_bytes(
                        value,
                        &KeyInfo { key: &tmp, ..info },
                        &eopts,
                        &mut body,
                    )?;
                    native(&tmp, n)
                }
            };
        Ok(Encoded::Unit(form, n, body))
    }

    fn target_db(&self, db: u64) -> u64 {
        dbs::target_db(&self.opts, self.endpoint.db(), db)
    }

    /// A key (or AOF command) of a database not confirmed selectable: refused, never sent.
    fn unselectable(&mut self, seq: u64, db: u64, key: &[u8]) {
        let why = format!("DB database {db} was not confirmed selectable on the target");
        self.fail(seq, db, key, &why);
    }

    /// Ctrl-C, or `--max-errors` reached: read no further.
    fn halted(&self) -> bool {
        self.stopped.is_some() || self.hooks.stop()
    }

    /// `SET key value [NX] [PXAT ms | PX ms]`: a whole string key in one command.
    fn set_body(&self, key: &[u8], value: &[u8], expire_ms: Option<i64>, nx: bool) -> Vec<u8> {
        let mut ms = itoa::Buffer::new();
        let mut args: [&[u8]; 6] = [b"SET", key, value, b"", b"", b""];
        let mut n = 3;
        if nx {
            args[n] = b"NX";
            n += 1;
        }
        let t = self.facts.target;
        if let Some(at) = expire_ms {
            let (name, v) = match t.valkey || (t.major, t.minor) >= (6, 2) {
                true => ("PXAT", at),
                false => ("PX", (at - self.opts.now_ms).max(1)),
            };
            args[n] = name.as_bytes();
            args[n + 1] = ms.format(v).as_bytes();
            n += 2;
        }
        crate::resp::encode(&args[..n])
    }

    fn notice(&mut self, n: String) {
        if !self.summary.notices.contains(&n) {
            self.summary.notices.push(n);
        }
    }

    /// `{tag}rdbtool-tmp:<run>:<seq>`: in the key's slot, unique to this run.
    fn tmp_name(&self, slot: u16, seq: u64) -> Vec<u8> {
        let mut tmp = b"{".to_vec();
        tmp.extend_from_slice(slots::tag_for(slot));
        tmp.push(b'}');
        tmp.extend_from_slice(leftovers::marker(self.run_id).as_bytes());
        tmp.extend_from_slice(seq.to_string().as_bytes());
        tmp
    }

    /// A resumed run: deletes on every node the temporary keys the cut run left (its id is
    /// this run's), and says how many there were.
    fn delete_leftovers(&mut self) -> Result<(), Error> {
        let dbs: Vec<u64> = self.selectable.iter().copied().collect();
        let mut deleted = 0;
        for addr in self.node_addresses() {
            let endpoint = match split_addr(&addr) {
                Some((host, port)) if self.cluster => self.endpoint.at(host, port),
                _ => Ok(self.endpoint.clone()),
            };
            let mut conn = endpoint
                .and_then(|e| e.connect())
                .map_err(|e| Error::Target(format!("{addr}: {e}")))?;
            let dbs = (!self.cluster).then_some(&dbs[..]);
            deleted += leftovers::delete(&mut conn, dbs, self.run_id)
                .map_err(|e| Error::Target(format!("{addr}: deleting temporary keys: {e}")))?;
        }
        if deleted > 0 {
            self.notice(format!(
                "{} of the cut run deleted (values it built aside and had not renamed into place)",
                count(deleted, "temporary key")
            ));
        }
        Ok(())
    }

    /// A function library goes to every master (when key filters let it, and the target has
    /// functions: else the loss policy decides).
    fn function(&mut self, code: &[u8], esummary: &mut export::Summary) -> Result<(), Error> {
        let name = export::function_name(code).to_vec();
        if !self.opts.filter.functions(self.opts.functions) {
            self.notice(
                "function libraries left out: a key filter is given (--functions includes them)"
                    .into(),
            );
            return Ok(());
        }
        if !self.facts.target.functions() {
            let loss = Losses::from(Loss::Function);
            if !esummary.losses.settle(loss, self.opts.lossy) {
                let seq = self.watermark.open(self.source_pos);
                self.summary.libraries += 1;
                self.fail(seq, 0, &name, &loss.reason(self.facts.target));
            }
            return Ok(());
        }
        let mut c = Command::new("FUNCTION");
        c.arg(b"LOAD");
        if self.opts.on_exists == OnExists::Replace || self.opts.resume_from > 0 {
            c.arg(b"REPLACE");
        }
        c.arg(code);
        let mut body = Vec::new();
        let _ = c.write_to(&mut body);
        self.summary.libraries += 1;
        for node in 0..self.nodes.len() {
            let seq = self.watermark.open(self.source_pos);
            self.dispatch(Unit {
                pinned: Some(node),
                ..Unit::new(seq, 0, name.clone(), 0, Form::Function, body.clone())
            })?;
        }
        Ok(())
    }

    /// Replays the RESP commands of `data[start..]`: SELECT is followed (and mapped), MULTI ...
    /// EXEC goes as one unit.
    fn run_aof(&mut self, data: &[u8], start: usize) -> Result<(), Error> {
        let o = &self.opts;
        let ignored = [
            ("--key", !o.filter.globs.is_empty()),
            ("--key-regex", o.filter.regex.is_some()),
            ("--type", !o.filter.kinds.is_empty()),
            ("--no-ttl", o.no_ttl),
            ("--ttl-shift", o.ttl_shift_ms != 0),
            ("--on-exists", o.on_exists != OnExists::Fail),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect::<Vec<_>>();
        if !ignored.is_empty() {
            self.notice(format!(
                "AOF commands are replayed as they are: {} not applied (only --db and --db-map are)",
                ignored.join(", ")
            ));
        }
        let mut db = 0u64;
        // An open transaction, and where its MULTI is.
        let mut multi: Option<(Unit, u64)> = None;
        let mut commands = aof::Commands::new(data, start);
        let mut n = 0u64;
        while let Some(cmd) = commands.next() {
            let cmd = cmd.map_err(Error::Aof)?;
            n += 1;
            self.source_pos = commands.pos();
            if n.is_multiple_of(TICK) {
                self.tick()?;
            }
            if self.halted() {
                return Ok(());
            }
            let name = cmd.args[0].to_ascii_uppercase();
            if name == b"SELECT" {
                db = aof::select_db(&cmd)
                    .ok_or_else(|| Error::Aof(format!("offset {}: bad SELECT", cmd.offset)))?;
                continue;
            }
            if let Some((m, _)) = multi.as_mut() {
                m.body.extend_from_slice(cmd.raw);
                m.commands += 1;
                if m.key.is_empty()
                    && let Some(k) = cmd.args.get(1)
                {
                    m.key = k.to_vec();
                    m.slot = slots::key_slot(k);
                }
                if name == b"EXEC" || name == b"DISCARD" {
                    let (unit, offset) = multi.take().expect("in a transaction");
                    self.aof_unit(unit, offset)?;
                }
                continue;
            }
            let key = cmd.args.get(1).copied().unwrap_or_default();
            let unit = Unit::new(
                0,
                self.target_db(db),
                if name == b"MULTI" {
                    Vec::new()
                } else {
                    key.to_vec()
                },
                slots::key_slot(key),
                Form::Raw,
                cmd.raw.to_vec(),
            );
            if name == b"MULTI" {
                multi = Some((unit, cmd.offset));
            } else {
                self.aof_unit(unit, cmd.offset)?;
            }
        }
        if multi.is_some() {
            self.notice("the AOF ends inside MULTI: the open transaction was not sent".into());
        }
        Ok(())
    }

    /// One AOF command (or transaction) found at `offset`.
    fn aof_unit(&mut self, mut unit: Unit, offset: u64) -> Result<(), Error> {
        let seq = self.watermark.open(offset);
        unit.seq = seq;
        if seq < self.opts.resume_from {
            self.summary.skipped_resumed += 1;
            self.watermark.close(seq);
            return Ok(());
        }
        if !self.opts.filter.db(unit.db) {
            self.summary.filtered_out += 1;
            self.watermark.close(seq);
            return Ok(());
        }
        self.summary.keys += 1;
        if !self.selectable.contains(&unit.db) {
            self.unselectable(seq, unit.db, &unit.key.clone());
            return Ok(());
        }
        self.dispatch(unit)
    }

    /// Progress, checkpoints, rate limit, and whatever the connections have answered.
    fn tick(&mut self) -> Result<(), Error> {
        self.service(Duration::ZERO)?;
        self.hooks.progress(self.source_pos, &self.summary);
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.last_checkpoint = Instant::now();
            let offset = self.watermark.offset(self.source_pos);
            self.hooks
                .checkpoint(self.watermark.done(), offset, &self.summary, false);
        }
        Ok(())
    }

    fn route(&self, unit: &Unit) -> usize {
        match unit.ask.or(unit.pinned) {
            Some(node) => node,
            None if self.cluster => self.slot_map[unit.slot as usize],
            None => 0,
        }
    }

    fn dispatch(&mut self, unit: Unit) -> Result<(), Error> {
        if let Some(limit) = self.opts.max_ops_per_sec {
            let due = Duration::from_secs_f64(self.summary.commands as f64 / limit.max(1) as f64);
            // In short naps, so that Ctrl-C is seen within a tenth of a second at any rate.
            while let Some(wait) = due.checked_sub(self.started.elapsed())
                && !self.halted()
            {
                std::thread::sleep(wait.min(Duration::from_millis(100)));
            }
        }
        let node = self.route(&unit);
        self.summary.commands += u64::from(unit.commands);
        self.summary.sent += u64::from(
            unit.failing_since.is_none()
                && !unit.alone
                && !matches!(unit.form, Form::Cleanup | Form::Function),
        );
        let batch = &mut self.pending[node];
        batch.1 += unit.commands as usize;
        batch.2 += unit.body.len();
        batch.0.push(unit);
        if batch.1 >= self.opts.pipeline
            || batch.2 >= BATCH_BYTES
            || batch.0[batch.0.len() - 1].ask.is_some()
        {
            self.flush(node)?;
        }
        Ok(())
    }

    fn flush(&mut self, node: usize) -> Result<(), Error> {
        let (mut batch, _, _) = std::mem::take(&mut self.pending[node]);
        if self.opts.dry_run {
            self.count_dry(node, batch);
            return Ok(());
        }
        while !batch.is_empty() {
            let n = batch.len();
            match self.nodes[node].tx.try_send(batch) {
                Ok(()) => {
                    self.in_flight += n;
                    break;
                }
                // Stopped while the target does not take more: the batch stays unsent.
                Err(TrySendError::Full(_)) if self.halted() => break,
                Err(TrySendError::Full(b)) => {
                    batch = b;
                    self.service(Duration::from_millis(2))?;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Error::Target("connection threads ended".into()));
                }
            }
        }
        Ok(())
    }

    /// `--dry-run`: the commands a connection would send for `batch`, counted by name; its
    /// units count as answered (for the watermark), not as acknowledged.
    fn count_dry(&mut self, node: usize, batch: Vec<Unit>) {
        let mut db = (!self.cluster).then(|| self.dry_dbs[node]);
        let packed = unit::Packed::new(&batch, &mut db);
        self.dry_dbs[node] = db.unwrap_or(0);
        let counts = self
            .summary
            .would_send
            .entry(self.nodes[node].addr.clone())
            .or_default();
        for cmd in aof::Commands::new(&packed.buf, 0).flatten() {
            let name = String::from_utf8_lossy(cmd.args[0]).to_ascii_uppercase();
            *counts.entry(name).or_default() += 1;
        }
        for u in batch {
            self.watermark.close(u.seq);
        }
    }

    /// Handles answers (waiting up to `wait` for the first) and sends delayed retries whose
    /// time has come.
    fn service(&mut self, wait: Duration) -> Result<(), Error> {
        let first = if wait.is_zero() {
            self.events.try_recv().ok()
        } else {
            self.events.recv_timeout(wait).ok()
        };
        if let Some(ev) = first {
            self.handle(ev)?;
            while let Ok(ev) = self.events.try_recv() {
                self.handle(ev)?;
            }
        }
        if !self.delayed.is_empty() {
            let now = Instant::now();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
                .into_iter()
                .partition(|(t, _)| *t <= now);
            self.delayed = later;
            for (_, unit) in due {
                self.dispatch(unit)?;
            }
            for node in 0..self.nodes.len() {
                if !self.pending[node].0.is_empty() {
                    self.flush(node)?;
                }
            }
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) -> Result<(), Error> {
        let Event::Done(units, outcomes, replies) = ev;
        self.in_flight -= units.len();
        self.summary.replies += replies.replies;
        self.summary.error_replies += replies.errors;
        self.summary.retried_errors += replies.retried;
        for (mut unit, outcome) in units.into_iter().zip(outcomes) {
            if unit.form == Form::Cleanup && !matches!(outcome, Outcome::Retry(_)) {
                continue;
            }
            if let Form::Staged { tmp } = &unit.form {
                match (&outcome, unit.landed) {
                    // The value built aside was not renamed: drop it.
                    (Outcome::Exists | Outcome::Failed(_), false) => self.clean_up(&unit, tmp),
                    // Renamed into place although a command of its value failed: the key is
                    // ours and incomplete, so it goes (the failure is reported).
                    (Outcome::Failed(_), true) => self.clean_up(&unit, &unit.key),
                    _ => {}
                }
            }
            match outcome {
                Outcome::Acked => {
                    match unit.form {
                        Form::Function => self.summary.libraries_loaded += 1,
                        _ => self.summary.acked += 1,
                    }
                    self.watermark.close(unit.seq);
                }
                Outcome::Exists => match self.opts.on_exists {
                    OnExists::Skip => {
                        match unit.form {
                            Form::Function => self.summary.libraries_existing += 1,
                            _ => self.summary.skipped_exists += 1,
                        }
                        self.watermark.close(unit.seq);
                    }
                    _ => self.fail(
                        unit.seq,
                        unit.db,
                        &unit.key,
                        "BUSYKEY key exists on the target (see --on-exists)",
                    ),
                },
                Outcome::Failed(msg) => {
                    self.fail(unit.seq, unit.db, &unit.key, &msg);
                }
                Outcome::Grouped => {
                    unit.alone = true;
                    self.delayed.push((Instant::now(), unit));
                }
                Outcome::Retry(why) => {
                    self.summary.retries += 1;
                    let since = *unit.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.opts.retry_timeout {
                        return Err(Error::Target(format!(
                            "key {:?}: no answer for {:?}: {why:?}",
                            String::from_utf8_lossy(&unit.key),
                            self.opts.retry_timeout
                        )));
                    }
                    // Sent again as it was, still refusing to overwrite (`--on-exists`), when
                    // the redirection shows the key was not made: a staged unit's value is
                    // built afresh (its temporary key deleted first). Made by this attempt, or
                    // unknown (no answer): with replace semantics, so nothing is doubled.
                    let lost = matches!(why, Redirect::Lost(_));
                    // Only keys that were to be refused if they existed (`--on-exists`).
                    let guarded = self.opts.on_exists != OnExists::Replace
                        && matches!(unit.form, Form::Staged { .. } | Form::Set | Form::Restore);
                    self.summary.replaced_after_loss += u64::from(lost && guarded && !unit.resend);
                    unit.resend |= unit.landed || lost;
                    unit.again = true;
                    unit.landed = false;
                    unit.ask = None;
                    let mut delay = Duration::ZERO;
                    match why {
                        Redirect::Moved { slot, addr } => {
                            let node = self.node_index(&addr)?;
                            self.slot_map[slot as usize % slots::SLOTS] = node;
                            self.refresh();
                        }
                        Redirect::Ask { addr } => unit.ask = Some(self.node_index(&addr)?),
                        Redirect::Wait(_) => delay = Duration::from_millis(50),
                        Redirect::Lost(_) => {
                            delay = Duration::from_millis(200);
                            self.refresh();
                        }
                    }
                    self.delayed.push((Instant::now() + delay, unit));
                }
            }
        }
        Ok(())
    }

    /// Deletes `name` (a staged unit's temporary key, or its incomplete key) once the batch
    /// is answered: not a key of the source, so not counted.
    fn clean_up(&mut self, unit: &Unit, name: &[u8]) {
        let mut body = Vec::new();
        let _ = Command::new("DEL").arg(name).write_to(&mut body);
        let cleanup = Unit::new(
            u64::MAX,
            unit.db,
            name.to_vec(),
            unit.slot,
            Form::Cleanup,
            body,
        );
        self.delayed.push((Instant::now(), cleanup));
    }

    fn fail(&mut self, seq: u64, db: u64, key: &[u8], error: &str) {
        let first = error.split_whitespace().next().unwrap_or("ERR");
        // A loss's reason names it first (`field-ttl: ...`).
        let kind = first.trim_end_matches(':').to_string();
        *self.summary.failed.entry(kind).or_default() += 1;
        self.hooks.failure(&Failure {
            db,
            key: key.to_vec(),
            error: error.to_string(),
        });
        self.watermark.close(seq);
        let failed = self.summary.failed_total();
        if let Some(max) = self.opts.max_errors
            && failed >= max
            && self.stopped.is_none()
        {
            self.stopped = Some(format!(
                "{} refused by the target (--max-errors {max})",
                count(failed, "key")
            ));
        }
    }

    /// Re-reads the slot map from any node that answers (at most every 200 ms).
    fn refresh(&mut self) {
        if !self.cluster
            || self
                .last_refresh
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_refresh = Some(Instant::now());
        self.summary.topology_refreshes += 1;
        let mut candidates = vec![self.endpoint.clone()];
        for n in &self.nodes {
            if let Some((host, port)) = split_addr(&n.addr)
                && let Ok(e) = self.endpoint.at(host, port)
            {
                candidates.push(e);
            }
        }
        for e in candidates {
            let Ok(mut conn) = e.connect() else { continue };
            if let Ok(ranges) = node::cluster_slots(&mut conn)
                && !ranges.is_empty()
                && self.apply_slots(ranges).is_ok()
            {
                return;
            }
        }
    }

    fn apply_slots(&mut self, ranges: Vec<(u16, u16, String, u16)>) -> Result<(), Error> {
        for (start, end, host, port) in ranges {
            let host = if host.is_empty() || host == "?" {
                split_addr(&self.endpoint.address()).map_or(host, |(h, _)| h.to_string())
            } else {
                host
            };
            let node = self.node_index(&format!("{host}:{port}"))?;
            for slot in start..=end {
                self.slot_map[slot as usize] = node;
            }
        }
        Ok(())
    }

    /// The node at `addr`, started on first use.
    fn node_index(&mut self, addr: &str) -> Result<usize, Error> {
        if let Some(i) = self.nodes.iter().position(|n| n.addr == addr) {
            return Ok(i);
        }
        let endpoint = if self.nodes.is_empty() && addr == self.endpoint.address() {
            self.endpoint.clone()
        } else {
            let (host, port) = split_addr(addr)
                .ok_or_else(|| Error::Target(format!("bad node address {addr:?}")))?;
            self.endpoint
                .at(host, port)
                .map_err(|e| Error::Target(format!("{addr}: {e}")))?
        };
        self.nodes.push(Node::start(
            &endpoint,
            self.opts.connections.max(1),
            &self.events_tx,
            self.cluster,
        ));
        self.pending.push(Default::default());
        self.dry_dbs.push(self.endpoint.db().max(0) as u64);
        Ok(self.nodes.len() - 1)
    }

    /// Sends what is pending and waits until every unit has its answer. Once stopped (Ctrl-C,
    /// `--max-errors`), what is not sent yet stays unsent (the checkpoint is before it), except
    /// the deletions of temporary keys.
    fn finish(&mut self) -> Result<(), Error> {
        let mut halted_at: Option<Instant> = None;
        loop {
            if self.halted() {
                // Answers normally come within milliseconds; a target that hangs is not waited
                // for (what is in flight stays after the checkpoint).
                if halted_at.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE {
                    return Err(match &self.stopped {
                        Some(why) => Error::Stopped(why.clone()),
                        None => Error::Interrupted,
                    });
                }
                self.delayed.retain(|(_, u)| u.form == Form::Cleanup);
                for (batch, commands, bytes) in &mut self.pending {
                    batch.retain(|u| u.form == Form::Cleanup);
                    *commands = batch.iter().map(|u| u.commands as usize).sum();
                    *bytes = batch.iter().map(|u| u.body.len()).sum();
                }
            }
            for node in 0..self.nodes.len() {
                if !self.pending[node].0.is_empty() {
                    self.flush(node)?;
                }
            }
            if self.in_flight == 0 && self.delayed.is_empty() {
                return Ok(());
            }
            self.service(Duration::from_millis(20))?;
            self.hooks.progress(self.source_pos, &self.summary);
        }
    }
}

fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The value of a string key.
fn read_string<'a>(reader: &mut Reader<'a, SliceInput<'a>>) -> Result<Vec<u8>, Error> {
    struct Capture(Vec<u8>);
    impl Visitor for Capture {
        fn item(&mut self, item: Item<'_>) {
            if let Item::Str(v) = item {
                v.with_bytes(|b| self.0.extend_from_slice(b));
            }
        }
    }
    let mut c = Capture(Vec::new());
    reader.read_value(&mut c)?;
    Ok(c.0)
}

/// Native commands for a value held in `value` (the type byte's value, as in the file).
fn native_from_bytes(
    value: &[u8],
    k: &KeyInfo<'_>,
    opts: &export::Options,
    out: &mut Vec<u8>,
) -> Result<u64, Error> {
    let mut w = export::commands::NativeWriter::new(out, opts.target, opts.batch);
    w.begin_key(k.key, k.ty.kind());
    ValueReader::new().read(&mut SliceInput::new(value), k.ty, &mut w)?;
    w.end_key(k.expire_ms);
    Ok(w.commands)
}
