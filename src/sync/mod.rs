//! `sync`: keeps a standalone target in step with a master, as a replica of it that writes
//! what it receives into the target.
//!
//! A full sync (the snapshot replayed with the replay engine, [`full`]) is followed by the
//! master's command stream, applied in log order in batches ([`plan`]) through the
//! exactly-once [`Sender`]: each batch is one `MULTI … EXEC` on the target that also sets the
//! run's progress key, `rdbtool-progress:<run>` = `"<offset> <db>"`, the replication offset
//! after the batch's last command and the source database there. The commands and the key move
//! together or not at all, so the key is the truth about how far the stream is applied: a batch
//! whose answer was lost is not sent twice (its key says it was applied), and an `INCRBY` or
//! `LPUSH` is never applied twice across a killed tool, a lost connection or a restarted
//! target (restarted from its own persistence, the key comes back with the writes it covers).
//!
//! Offsets are the contract. The master is acked (`REPLCONF ACK`) only with offsets the
//! target's key holds, so a `WAIT` on the source never counts a write the target lacks; the
//! checkpoint ([`state`], written atomically) keeps the source's replid, the run id (so the
//! key's name) and the last offset acknowledged. A restart reads the key (the truth: the
//! checkpoint's offset is only a hint) and asks `PSYNC <replid> <applied + 1>`: `+CONTINUE`
//! goes on with nothing lost or repeated; `+FULLRESYNC` is explained by the master's own rule
//! applied to its INFO taken just before, and a full sync is done again unless
//! `no_full_resync`.
//!
//! The progress key lives in the target (in the URL's database): a comparison of the source's
//! and the target's data leaves it out. Not yet here: cluster targets, filters, two-way loops.

pub mod full;
pub mod plan;
pub mod state;
mod stream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::backlog::master::Facts;
use crate::backlog::replica::{Replica, Start};
use crate::replay::endpoint::{Endpoint, Tls};
use crate::replay::exactly_once::{Mark, Sender};
use state::State;

/// What to sync, and how.
pub struct Options {
    pub from: String,
    pub to: String,
    pub tls: Tls,
    pub checkpoint: PathBuf,
    /// A restart that the master cannot continue stops (exit 2) instead of syncing in full.
    pub no_full_resync: bool,
    /// How long the target (or the source's link) may fail before the sync gives up.
    pub retry_timeout: Duration,
    /// Commands per batch (a source transaction is never split).
    pub pipeline: usize,
}

/// What the run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub run_id: u64,
    pub replid: String,
    /// The offset the target held when the run started (None: a full sync), and at its end.
    pub resumed_at: Option<u64>,
    pub offset: u64,
    pub full_syncs: u64,
    /// `+CONTINUE` answers to this run's `PSYNC`s.
    pub continued: u64,
    pub snapshot_bytes: u64,
    pub snapshot_keys: u64,
    pub snapshot_failed: u64,
    /// Stream commands applied (in batches), and those the target answered with an error.
    pub commands: u64,
    pub batches: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub master_offset: Option<u64>,
    pub max_lag: u64,
    pub notices: Vec<String>,
}

impl Summary {
    fn notice(&mut self, n: String) {
        if !self.notices.contains(&n) {
            self.notices.push(n);
        }
    }
}

/// A second's figures, for a status line and `--status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub offset: u64,
    pub master_offset: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub commands: u64,
    pub commands_per_sec: f64,
    pub errors: u64,
    pub full_syncs: u64,
    pub continued: u64,
    pub updated_ms: u64,
}

/// Runs the sync until `stop` says so; an error is a sync that cannot go on.
pub fn run(
    opts: &Options,
    stop: &(dyn Fn() -> bool + Sync),
    status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    let mut s = Syncer::new(opts, stop)?;
    let mut failing_since: Option<Instant> = None;
    loop {
        let why = match s.session(status)? {
            Ended::Stopped => break,
            Ended::Link(why) => why,
        };
        if stop() {
            break;
        }
        let since = *failing_since.get_or_insert_with(Instant::now);
        if s.progressed {
            failing_since = Some(Instant::now());
        } else if since.elapsed() > opts.retry_timeout {
            bail!(
                "the link to the source failed for {:?}: {why}",
                opts.retry_timeout
            );
        }
        s.summary.notice(format!(
            "the stream was cut ({why}): continued by a new PSYNC"
        ));
        std::thread::sleep(Duration::from_millis(500));
    }
    s.summary.offset = s.applied();
    s.summary.master_offset = crate::backlog::master::master_offset(&mut s.control);
    if let Some(st) = s.state.as_mut() {
        st.offset = s.summary.offset;
        st.save(&opts.checkpoint)?;
    }
    Ok(s.summary)
}

enum Ended {
    Stopped,
    /// The source's link failed (or could not be made): in words.
    Link(String),
}

struct Syncer<'a> {
    opts: &'a Options,
    target: Endpoint,
    source: String,
    source_endpoint: Endpoint,
    sender: Sender,
    /// The checkpoint's content (None until a first full sync starts).
    state: Option<State>,
    /// The source's control connection (its INFO).
    control: redis::Connection,
    stop: &'a (dyn Fn() -> bool + Sync),
    summary: Summary,
    /// Stream bytes after the applied offset, and the source database there.
    buf: Vec<u8>,
    db: u64,
    /// A batch was applied (or a full sync done) since the last link failure.
    progressed: bool,
}

impl<'a> Syncer<'a> {
    /// The checkpoint read and, when it has synced, the target's progress key: where this run
    /// goes on.
    fn new(opts: &'a Options, stop: &'a (dyn Fn() -> bool + Sync)) -> Result<Syncer<'a>> {
        let target = Endpoint::parse(&opts.to, &opts.tls).context("--to")?;
        let source = Endpoint::parse(&opts.from, &opts.tls).context("--from")?;
        let control = source.connect().with_context(|| source.redacted())?;
        let saved = State::load(&opts.checkpoint)?;
        let run_id = saved.as_ref().map_or_else(new_run_id, |s| s.run_id);
        let mut sender = Sender::new(target.clone(), run_id, opts.retry_timeout);
        let mut summary = Summary {
            run_id,
            ..Summary::default()
        };
        let mut state = None;
        match saved {
            Some(st) if st.synced => match sender.read(stop).map_err(anyhow::Error::msg)? {
                Some(mark) => {
                    sender.applied = Some(mark);
                    summary.resumed_at = Some(mark.offset);
                    summary.replid = st.replid.clone();
                    state = Some(st);
                }
                None => {
                    let why = format!(
                        "the target has no progress key {} although the checkpoint says it \
                         holds the stream up to offset {}: it lost those writes (restarted \
                         without its data?)",
                        sender.key_name(),
                        st.offset
                    );
                    refuse_full(opts, &why)?;
                    summary.notice(format!("{why}: a new full sync"));
                    summary.notice(STALE.into());
                    summary.notice(STALE.into());
                }
            },
            Some(_) => {
                let why = "the last run was cut during its full sync";
                refuse_full(opts, why)?;
                summary.notice(format!("{why}: a new full sync"));
                summary.notice(STALE.into());
            }
            None => {}
        }
        Ok(Syncer {
            opts,
            target,
            source: source.redacted(),
            source_endpoint: source,
            sender,
            state,
            control,
            stop,
            summary,
            buf: Vec::new(),
            db: 0,
            progressed: false,
        })
    }

    /// The offset the target's progress key holds.
    fn applied(&self) -> u64 {
        self.sender.applied.map_or(0, |m| m.offset)
    }

    /// One link to the source: `PSYNC`, a full sync if the master starts one, the stream.
    fn session(&mut self, status: &mut dyn FnMut(&Status)) -> Result<Ended> {
        self.progressed = false;
        let facts = match Facts::read(&mut self.control) {
            Ok(f) => f,
            // The source restarted, or its link broke: a new control connection.
            Err(_) => match self.source_endpoint.connect() {
                Ok(c) => {
                    self.control = c;
                    Facts::read(&mut self.control)?
                }
                Err(e) => return Ok(Ended::Link(format!("{}: {e}", self.source))),
            },
        };
        let mut replica = match Replica::connect(&self.opts.from, &self.opts.tls) {
            Ok(r) => r,
            Err(e) => return Ok(Ended::Link(e.to_string())),
        };
        let ask = self
            .state
            .as_ref()
            .zip(self.sender.applied)
            .map(|(st, m)| (st.replid.clone(), m.offset + 1));
        let start = match replica.psync(ask.as_ref().map(|(id, next)| (id.as_str(), *next))) {
            Ok(s) => s,
            Err(e) => return Ok(Ended::Link(e.to_string())),
        };
        self.buf.clear();
        self.db = self.sender.applied.map_or(0, |m| m.db);
        match start {
            Start::Continue { replid } => {
                self.summary.continued += 1;
                if let (Some(new), Some(st)) = (replid, self.state.as_mut())
                    && new != st.replid
                {
                    // A failover: the new master continues the history under its own id.
                    st.replid = new;
                    st.save(&self.opts.checkpoint)?;
                }
            }
            Start::Full { replid, offset } => {
                if let Some((id, next)) = &ask {
                    let why = facts.why_full(id, *next);
                    refuse_full(self.opts, &why)?;
                    self.summary.notice(format!("{why}: a new full sync"));
                    self.summary.notice(STALE.into());
                }
                match self.full(&mut replica, replid, offset) {
                    Ok(None) => {}
                    Ok(Some(link)) => return Ok(Ended::Link(link)),
                    // The snapshot cut short: the next session starts it again.
                    Err(e) if e.is::<crate::backlog::replica::Error>() => {
                        return Ok(Ended::Link(e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(st) = &self.state {
            self.summary.replid = st.replid.clone();
        }
        self.stream(&mut replica, status)
    }

    /// A full sync at `offset` of history `replid`; Some(why) when the link failed meanwhile.
    fn full(
        &mut self,
        replica: &mut Replica,
        replid: String,
        offset: u64,
    ) -> Result<Option<String>> {
        let stop = self.stop;
        let mut st = State {
            source: self.source.clone(),
            target: self.target.redacted(),
            replid: replid.clone(),
            run_id: self.summary.run_id,
            offset,
            synced: false,
            updated_ms: 0,
        };
        st.save(&self.opts.checkpoint)?;
        self.sender.remove(stop).map_err(anyhow::Error::msg)?;
        self.sender.applied = None;
        let dir = match self.opts.checkpoint.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let load = full::Load {
            target: &self.target,
            run_id: self.summary.run_id,
            retry_timeout: self.opts.retry_timeout,
            dir,
        };
        let loaded = full::full_sync(replica, &load, stop)?;
        let s = &mut self.summary;
        s.full_syncs += 1;
        s.snapshot_bytes += loaded.snapshot_bytes;
        s.snapshot_keys += loaded.keys;
        s.snapshot_failed += loaded.failed;
        for f in &loaded.failures {
            s.notice(format!("the target refused a key of the snapshot: {f}"));
        }
        let mark = Mark { offset, db: 0 };
        self.sender
            .apply(&[], mark, stop)
            .map_err(anyhow::Error::msg)?;
        st.synced = true;
        st.save(&self.opts.checkpoint)?;
        self.state = Some(st);
        self.progressed = true;
        self.buf = loaded.spooled;
        if loaded.link.is_some() {
            return Ok(loaded.link);
        }
        Ok(replica.ack(offset).err().map(|e| e.to_string()))
    }
}

/// What a full sync over an earlier one does not do.
const STALE: &str = "a new full sync replaces the snapshot's keys on the target but deletes \
                     none: keys the source deleted since the last one stay on the target";

/// With `--no-full-resync`, a full sync that is not the first is refused.
fn refuse_full(opts: &Options, why: &str) -> Result<()> {
    if opts.no_full_resync {
        bail!("{why}; --no-full-resync: no new full sync");
    }
    Ok(())
}

fn new_run_id() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((std::process::id(), nanos))
        & 0xffff_ffff
}
