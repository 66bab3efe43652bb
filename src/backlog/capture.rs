//! `backlog capture`: a replica link ([`super::replica`]) written into a capture directory
//! ([`super::store`]) record by record, acking the master about once a second with the offset
//! the log holds, and answering its `REPLCONF GETACK` at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::master::{Facts, master_offset};
use super::replica::{Replica, Start};
use super::store::{self, At, Recovery, Writer};
use crate::aof::log::{Kind, Log};
use crate::replay::endpoint::{Endpoint, Tls};
use crate::resp::parse::{self, Problem};

/// What to capture, where, and for how long.
pub struct Options {
    pub url: String,
    pub tls: Tls,
    pub dir: PathBuf,
    /// Go on with the capture in `dir` (`PSYNC <replid> <end + 1>`).
    pub resume: bool,
    /// No snapshot: the stream from the oldest byte of the master's backlog.
    pub from_backlog: bool,
    pub duration: Option<Duration>,
    /// Stop once this many stream bytes were kept in this run.
    pub max_bytes: Option<u64>,
    pub segment_limit: u64,
}

/// How the run went.
#[derive(Debug, Default)]
pub struct Summary {
    pub recovery: Option<Recovery>,
    /// A new epoch this run started: its number and why (on `--continue`: why the master did
    /// not continue).
    pub new_epoch: Option<(u32, String)>,
    /// `+CONTINUE` on `--continue`: the offset the stream went on from.
    pub continued_from: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    /// The offsets kept in this run, and how many commands.
    pub first: u64,
    pub end: u64,
    pub commands: u64,
    /// Why it stopped.
    pub stopped: Stopped,
    /// The master's offset when last asked, and the largest gap seen between it and the log.
    pub master_offset: Option<u64>,
    pub max_lag: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum Stopped {
    #[default]
    Duration,
    MaxBytes,
    Interrupted,
    /// The master closed the link (or it failed): in words.
    Link(String),
}

/// A second's figures, for a status line.
pub struct Status {
    pub offset: u64,
    pub kept: u64,
    pub master_offset: Option<u64>,
}

/// Runs a capture until its duration or byte budget is spent, `stop` says so, or the link
/// fails. Everything kept is in the directory, synced, whatever the ending. `begun` hears at
/// once what the reopening mended and how the master answered the `PSYNC` (before a snapshot
/// arrives), so that a run killed later has said it.
pub fn capture(
    opts: &Options,
    stop: &dyn Fn() -> bool,
    begun: &mut dyn FnMut(&Summary),
    status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    let endpoint = Endpoint::parse(&opts.url, &opts.tls)?;
    let mut control = endpoint.connect().with_context(|| endpoint.redacted())?;
    let mut summary = Summary::default();
    let mut writer = match opts.resume {
        true => {
            let (w, recovery) = Writer::reopen(&opts.dir, opts.segment_limit)?;
            summary.recovery = Some(recovery);
            w
        }
        false => Writer::create(&opts.dir, &endpoint.redacted(), opts.segment_limit)
            .with_context(|| opts.dir.display().to_string())?,
    };
    let facts = Facts::read(&mut control)?;
    let mut replica = Replica::connect(&opts.url, &opts.tls)?;
    replica.poll(Duration::from_millis(100));
    let mut aligned = true;
    let resume_from = writer
        .has_epoch()
        .then(|| (writer.epoch().replid.clone(), writer.next()));
    let asked = match (&resume_from, opts.from_backlog) {
        (Some((id, next)), _) => Some((id.clone(), *next)),
        (None, true) => Some(facts.backlog_start()?),
        (None, false) => None,
    };
    match replica.psync(asked.as_ref().map(|(id, off)| (id.as_str(), *off)))? {
        Start::Full { replid, offset } => {
            let why = match &resume_from {
                Some((id, next)) => facts.why_full(id, *next),
                None => "a new capture".to_string(),
            };
            let epoch =
                writer.start_epoch(facts.epoch_start(store::Start::Full, replid, offset))?;
            summary.new_epoch = Some((epoch, why));
            begun(&summary);
            summary.snapshot_bytes = Some(save_snapshot(&mut replica, &mut writer)?);
            replica.ack(offset)?;
        }
        Start::Continue { replid } => match &resume_from {
            Some((_, next)) => {
                writer.continued(replid)?;
                summary.continued_from = Some(*next);
            }
            None => {
                let (id, first) = asked.expect("a backlog capture asks from an offset");
                let start =
                    facts.epoch_start(store::Start::Backlog, replid.unwrap_or(id), first - 1);
                let epoch = writer.start_epoch(start)?;
                summary.new_epoch =
                    Some((epoch, "the master's backlog, without a snapshot".into()));
                aligned = false;
            }
        },
    }
    if summary.snapshot_bytes.is_none() {
        begun(&summary);
    }
    summary.first = writer.next();
    let mut run = Run {
        replica,
        writer,
        control,
        buf: Vec::with_capacity(BUF),
        aligned,
        commands: 0,
    };
    summary.stopped = run.stream(opts, stop, &mut summary, status)?;
    run.writer.seal()?;
    summary.end = run.writer.next() - 1;
    summary.commands = run.commands;
    Ok(summary)
}

/// How much is read from the link at a time.
const BUF: usize = 1 << 20;

/// The snapshot into its `.part` file, synced, then named.
fn save_snapshot(replica: &mut Replica, writer: &mut Writer) -> Result<u64> {
    let part = writer.snapshot_part();
    let file = std::fs::File::create(&part).with_context(|| part.display().to_string())?;
    let mut out = std::io::BufWriter::with_capacity(BUF, file);
    let len = replica.snapshot(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    writer.snapshot_done()?;
    Ok(len)
}

/// The stream part of a capture.
struct Run {
    replica: Replica,
    writer: Writer,
    control: redis::Connection,
    /// Bytes read and not yet kept: the start of a command still arriving.
    buf: Vec<u8>,
    /// False until the first command boundary of a backlog-only capture is found.
    aligned: bool,
    commands: u64,
}

impl Run {
    fn stream(
        &mut self,
        opts: &Options,
        stop: &dyn Fn() -> bool,
        summary: &mut Summary,
        status: &mut dyn FnMut(&Status),
    ) -> Result<Stopped> {
        let started = Instant::now();
        let mut last_ack = Instant::now();
        let first = self.writer.next();
        loop {
            if stop() {
                return Ok(Stopped::Interrupted);
            }
            if opts.duration.is_some_and(|d| started.elapsed() >= d) {
                return Ok(Stopped::Duration);
            }
            if opts
                .max_bytes
                .is_some_and(|m| self.writer.next() - first >= m)
            {
                return Ok(Stopped::MaxBytes);
            }
            let getack = match self.read() {
                Ok(getack) => getack,
                Err(Failure::Link(e)) => return Ok(Stopped::Link(e.to_string())),
                Err(Failure::Other(e)) => return Err(e),
            };
            if getack || last_ack.elapsed() >= Duration::from_secs(1) {
                self.writer.sync()?;
                let offset = self.writer.next() - 1;
                if let Err(e) = self.replica.ack(offset) {
                    return Ok(Stopped::Link(e.to_string()));
                }
                last_ack = Instant::now();
                let master = master_offset(&mut self.control);
                if let Some(m) = master {
                    summary.max_lag = summary.max_lag.max(m.saturating_sub(offset));
                }
                summary.master_offset = master;
                status(&Status {
                    offset,
                    kept: offset + 1 - first,
                    master_offset: master,
                });
            }
        }
    }

    /// Reads what the link has, keeps its whole commands as one record; true when the master
    /// asked for an ACK (`REPLCONF GETACK`).
    fn read(&mut self) -> Result<bool, Failure> {
        let had = self.buf.len();
        self.buf.resize(had + BUF, 0);
        let got = self.replica.read(&mut self.buf[had..]);
        self.buf.truncate(had + *got.as_ref().unwrap_or(&0));
        got.map_err(|e| Failure::Link(e.into()))?;
        if !self.aligned {
            let Some(skip) = first_command(&self.buf) else {
                if self.buf.len() > 64 << 20 {
                    let msg = "no command boundary in the first 64 MiB of the backlog";
                    return Err(Failure::Other(anyhow::anyhow!(msg)));
                }
                return Ok(false);
            };
            self.writer
                .skip(skip as u64)
                .map_err(|e| Failure::Other(e.into()))?;
            self.buf.drain(..skip);
            self.aligned = true;
        }
        let (whole, after, getack) = self.whole_commands()?;
        if whole > 0 {
            let now = store::now_ms() * 1000;
            self.writer
                .append(&self.buf[..whole], after, now)
                .map_err(|e| Failure::Other(e.into()))?;
            self.buf.drain(..whole);
        }
        Ok(getack)
    }

    /// How many bytes at the start of `buf` are whole commands, the stream's state after them,
    /// and whether one of them is `REPLCONF GETACK`.
    fn whole_commands(&mut self) -> Result<(usize, At, bool), Failure> {
        let at = self.writer.at_end();
        let db = at.db.map_or(0, u64::from);
        let mut log = Log::piece(&self.buf, 0, db, at.multi.then_some(0));
        let mut after = at;
        let mut getack = false;
        let mut whole = self.buf.len();
        while let Some(item) = log.next() {
            match item {
                Ok(c) => {
                    self.commands += 1;
                    if c.kind == Kind::Select {
                        after.db = u32::try_from(c.db).ok();
                    }
                    getack |= super::replica::is_getack(&c.cmd);
                }
                Err(Problem::Truncated { offset }) => {
                    whole = offset as usize;
                    break;
                }
                Err(Problem::Malformed { offset, what }) => {
                    let at = self.writer.next() + offset;
                    let msg = format!(
                        "the master sent bytes that are not a command at stream offset {at}: {what}"
                    );
                    return Err(Failure::Other(anyhow::anyhow!(msg)));
                }
            }
        }
        after.multi = log.open_multi().is_some();
        Ok((whole, after, getack))
    }
}

enum Failure {
    Link(anyhow::Error),
    Other(anyhow::Error),
}

/// Where the first whole command starts in bytes that may begin inside one (the oldest bytes of
/// a backlog that wrapped): the first position from which every following byte reads as
/// commands (a run of at least one, up to a command still arriving).
pub fn first_command(buf: &[u8]) -> Option<usize> {
    let mut args = Vec::new();
    let candidates =
        std::iter::once(0).chain(memchr::memmem::find_iter(buf, b"\r\n*").map(|i| i + 2));
    'next: for start in candidates {
        let mut pos = start;
        let mut whole = 0;
        loop {
            match parse::command(&buf[pos..], &mut args) {
                Ok(len) => {
                    pos += len;
                    whole += 1;
                }
                Err(Problem::Truncated { .. }) if whole > 0 => return Some(start),
                Err(_) => continue 'next,
            }
        }
    }
    None
}
