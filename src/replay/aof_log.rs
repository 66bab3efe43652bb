//! Replaying an append-only log: a single file (RESP, or an RDB preamble then RESP) or the
//! files of an `appendonlydir/` in the server's load order (the base, through the RDB path
//! when it is an RDB, then each incr file). Each file is read with a fresh database (0), as the
//! server loads each with a fresh client. Positions are offsets across the files in that order.
//!
//! Into a standalone target the commands go through [`super::exactly_once`]: after a cut and a
//! `--resume`, no command is applied twice. Into a cluster (or with `--dry-run`) they go as
//! units of the key replay, in order on one connection per node, without that guarantee.
//!
//! Either way the commands are those of [`Options::slice`] (as `export` slices an AOF): a
//! transaction goes with its kept commands, as one, or not at all when none is kept; the RDB
//! base or preamble goes only when the slice starts at the log's start
//! ([`Selection::keeps_base`]).

use super::exactly_once::{Mark, Queued, Sender, Sent};
use super::*;
use crate::aof::log::{Kind as LogKind, Log, Logged};
use crate::aof::slice::{KeyFinder, time_at};

/// One file of the log.
pub struct LogPart<'a> {
    /// As messages name it (empty for a single file: the messages name the source).
    pub name: String,
    pub data: &'a [u8],
}

impl LogPart<'_> {
    /// `name: ` before a message about the file (nothing for a single file).
    fn at(&self) -> String {
        match self.name.is_empty() {
            true => String::new(),
            false => format!("{}: ", self.name),
        }
    }

    /// Starts with an RDB (a `.base.rdb`, or an AOF with an RDB preamble).
    fn rdb(&self) -> bool {
        aof::files::sniff(&self.data[..self.data.len().min(16)]) == aof::files::Sniffed::Rdb
    }
}

/// An AOF command (or transaction) of the batch being filled.
struct Step {
    /// Its commands, `cmds[first..]` up to the next step's.
    first: usize,
    end: Mark,
}

#[derive(Default)]
struct Batch<'a> {
    cmds: Vec<Queued<'a>>,
    steps: Vec<Step>,
    bytes: usize,
}

/// The log walk's state across files.
#[derive(Default)]
struct Walk<'a> {
    batch: Batch<'a>,
    /// The open transaction's commands, and where its MULTI is.
    multi: Option<(Vec<Queued<'a>>, u64)>,
    read: u64,
    /// The time before the next file's first `#TS:` (with `--since` or `--until`).
    ts: Option<u64>,
    finder: KeyFinder,
}

impl Walk<'_> {
    /// Starting at global offset `from` of `parts` (whose first file's commands start at
    /// `start`), with the time there when the slice selects by time.
    fn new(sel: &Selection, parts: &[LogPart<'_>], start: usize, from: u64) -> Self {
        let commands: Vec<(&[u8], usize)> = (parts.iter().enumerate())
            .map(|(i, p)| (p.data, if i == 0 { start } else { 0 }))
            .collect();
        Walk {
            ts: sel.by_time().then(|| time_at(&commands, from)).flatten(),
            ..Walk::default()
        }
    }
}

impl<'h> Replay<'h> {
    /// The files of `parts` in order: the RDB at the start of the first through the RDB path,
    /// then the commands.
    pub(super) fn run_parts(&mut self, parts: &[LogPart<'_>]) -> Result<(), Error> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        let mut start = 0;
        if first.rdb() && !self.opts.slice.keeps_base() {
            start = self.skip_base(first.data)?;
        } else if first.rdb() {
            self.rdb_end = None;
            self.run_rdb(SliceInput::new(first.data))?;
            start = self.rdb_end.take().unwrap_or(first.data.len());
            if self.halted() {
                return Ok(());
            }
        }
        self.run_log(parts, start)
    }

    /// Where the commands after the RDB at the start of `data` start, the RDB being left out
    /// of the slice.
    pub(super) fn skip_base(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.notice(
            "the RDB base is left out (the slice does not start at the log's start, or \
             --command is given)"
                .into(),
        );
        Ok(aof::rdb_end(data)?)
    }

    /// The commands of `parts`, from `start` in the first.
    pub(super) fn run_log(&mut self, parts: &[LogPart<'_>], start: usize) -> Result<(), Error> {
        self.summary.log_from = Some(start as u64);
        self.aof_notice();
        if self.cluster || self.opts.dry_run {
            if self.cluster {
                self.notice(
                    "AOF commands into a cluster go without the exactly-once guarantee of a \
                     standalone target: a command in flight when the run is cut may be applied \
                     again by --resume"
                        .into(),
                );
            }
            let mut walk = Walk::new(&self.opts.slice, parts, start, 0);
            let mut base = 0;
            for (i, part) in parts.iter().enumerate() {
                self.run_aof(part, (base, if i == 0 { start } else { 0 }), &mut walk)?;
                if self.halted() {
                    return Ok(());
                }
                base += part.data.len() as u64;
            }
            return Ok(());
        }
        // The RDB's keys are all answered before the first command goes.
        self.finish()?;
        self.exactly_once(parts, start as u64)
    }

    fn exactly_once(&mut self, parts: &[LogPart<'_>], start: u64) -> Result<(), Error> {
        let total: u64 = parts.iter().map(|p| p.data.len() as u64).sum();
        let mut sender = Sender::new(self.endpoint.clone(), self.run_id, self.opts.retry_timeout);
        let found = match self.opts.resume_run {
            Some(_) => sender
                .read(&|| self.hooks.stop())
                .map_err(|e| self.target_error(e))?,
            None => None,
        };
        let hint = self.opts.resume_offset.unwrap_or(0);
        let from = match found {
            Some(mark) => mark,
            // A completed run deleted its key.
            None if hint >= total && total > 0 => {
                self.source_pos = total;
                return Ok(());
            }
            None if hint > start => {
                return Err(Error::Target(format!(
                    "the target has no progress key {} although the checkpoint says the log \
                     was applied up to offset {hint}: it lost those writes (restarted without \
                     its data?); replay into an empty target without --resume",
                    sender.key_name()
                )));
            }
            None => Mark {
                offset: start,
                db: 0,
            },
        };
        if let Some(m) = found {
            self.notice(format!(
                "resumed after offset {} of the log, where the target's progress key {} says \
                 it is applied",
                m.offset,
                sender.key_name()
            ));
        }
        sender.applied = found;
        self.source_pos = from.offset;
        // Before the first batch: a run cut at any point after it has a checkpoint naming the
        // run (and so its progress key) to resume from.
        self.last_checkpoint = Instant::now();
        let done = self.watermark.done();
        self.hooks
            .checkpoint(done, from.offset, &self.summary, false);
        let mut walk = Walk::new(&self.opts.slice, parts, start as usize, from.offset);
        let mut base = 0u64;
        for (i, part) in parts.iter().enumerate() {
            let len = part.data.len() as u64;
            if from.offset >= base + len && !(from.offset == base && len == 0) {
                base += len;
                continue;
            }
            let (at, db) = match from.offset.checked_sub(base) {
                Some(at) if at > 0 => (at, from.db),
                _ => (0, 0),
            };
            let last = i + 1 == parts.len();
            self.walk_part(&mut sender, &mut walk, part, (base, at, db), last)?;
            if self.halted() {
                return Ok(());
            }
            base += len;
        }
        self.send(&mut sender, &mut walk.batch)?;
        if self.halted() {
            return Ok(());
        }
        sender
            .remove(&|| self.hooks.stop())
            .map_err(|e| self.target_error(e))?;
        self.source_pos = total;
        Ok(())
    }

    /// The commands of one file, from `at` (in source database `db`); `base` is where the file
    /// starts in the log.
    fn walk_part<'a>(
        &mut self,
        sender: &mut Sender,
        walk: &mut Walk<'a>,
        part: &LogPart<'a>,
        (base, at, db): (u64, u64, u64),
        last: bool,
    ) -> Result<(), Error> {
        let data = part.data;
        let mut log = Log::resume(data, at as usize, db).with_time(walk.ts);
        loop {
            let (kind, db, offset, len, key) = match log.next() {
                None => break,
                Some(Err(p)) => return Err(Error::Aof(format!("{}{p}", part.at()))),
                Some(Ok(e)) => (
                    match e.kind {
                        LogKind::Data if !self.keeps(&mut walk.finder, base, &e) => None,
                        kind => Some(kind),
                    },
                    e.db,
                    e.cmd.offset,
                    e.cmd.raw.len(),
                    e.cmd.arg_ranges().get(1).cloned(),
                ),
            };
            walk.read += 1;
            if walk.read.is_multiple_of(TICK) {
                self.hooks.progress(base + offset, &self.summary);
                if self.halted() {
                    return Ok(());
                }
            }
            let raw = &data[offset as usize..offset as usize + len];
            let end = Mark {
                offset: base + log.offset(),
                db,
            };
            let q = Queued {
                db: self.target_db(db),
                raw,
                key: key.map_or(&[][..], |r| &raw[r]),
            };
            match kind {
                // Left out of the slice.
                None => {}
                Some(LogKind::Select) => {}
                Some(LogKind::Multi) => walk.multi = Some((Vec::new(), offset)),
                Some(LogKind::Data) => match walk.multi.as_mut() {
                    Some((cmds, _)) => cmds.push(q),
                    None => self.step(&mut walk.batch, vec![q], end),
                },
                Some(LogKind::Exec) => {
                    let (cmds, _) = walk.multi.take().unwrap_or_default();
                    self.step(&mut walk.batch, cmds, end);
                }
                Some(kind) => self.skipped(part, kind, offset),
            }
            let b = &walk.batch;
            if walk.multi.is_none()
                && (b.cmds.len() >= self.opts.pipeline || b.bytes >= BATCH_BYTES)
            {
                self.send(sender, &mut walk.batch)?;
            }
        }
        if let Some((cmds, at)) = walk.multi.take() {
            let server = match last {
                true => "the server reverts it too when it loads the last file",
                false => "the server refuses to load a file that is not the last one and ends so",
            };
            self.notice(format!(
                "{}the log ends inside the MULTI at offset {at}: that transaction ({}) was not \
                 sent ({server})",
                part.at(),
                count(cmds.len() as u64, "command"),
            ));
        }
        walk.ts = log.time();
        Ok(())
    }

    /// Whether a data command (of the file starting at `base` in the log) is in the slice;
    /// counted as filtered out if not.
    fn keeps(&mut self, finder: &mut KeyFinder, base: u64, e: &Logged<'_>) -> bool {
        let keep = (self.opts.slice).keeps_logged(finder, base + e.cmd.offset, e);
        if !keep {
            self.summary.filtered_out += 1;
        }
        keep
    }

    /// A command the server refuses when it loads the file (`kind` says which).
    fn skipped(&mut self, part: &LogPart<'_>, kind: LogKind, offset: u64) {
        self.notice(format!(
            "{}offset {offset}: {} skipped, as the server does when it loads the file (an \
             error reply there)",
            part.at(),
            match kind {
                LogKind::BadSelect => "a SELECT without a valid database",
                LogKind::NestedMulti => "a MULTI inside MULTI",
                _ => "an EXEC without MULTI",
            }
        ));
    }

    /// The commands of one file from `start` as units (into a cluster, or a dry run): SELECT
    /// followed (and mapped), a transaction's kept commands as one unit (in the database of
    /// its first); `base` is where the file starts in the log.
    fn run_aof(
        &mut self,
        part: &LogPart<'_>,
        (base, start): (u64, usize),
        walk: &mut Walk<'_>,
    ) -> Result<(), Error> {
        // An open transaction (MULTI and its kept commands), and where its MULTI is.
        let mut multi: Option<(Unit, u64)> = None;
        let mut log = Log::new(part.data, start).with_time(walk.ts);
        while let Some(item) = log.next() {
            let e = item.map_err(|p| Error::Aof(format!("{}{p}", part.at())))?;
            let (offset, raw) = (e.cmd.offset, e.cmd.raw);
            walk.read += 1;
            self.source_pos = base + offset + raw.len() as u64;
            if walk.read.is_multiple_of(TICK) {
                self.tick()?;
            }
            if self.halted() {
                return Ok(());
            }
            let key = e.cmd.arg(1).unwrap_or_default();
            let unit = |db| {
                Unit::new(
                    0,
                    db,
                    key.to_vec(),
                    slots::key_slot(key),
                    Form::Raw,
                    raw.to_vec(),
                )
            };
            match e.kind {
                LogKind::Data if !self.keeps(&mut walk.finder, base, &e) => {}
                LogKind::Data => match multi.as_mut() {
                    Some((m, _)) if m.key.is_empty() => {
                        let first = unit(self.target_db(e.db));
                        (m.db, m.key, m.slot) = (first.db, first.key, first.slot);
                        m.body.extend_from_slice(raw);
                        m.commands += 1;
                    }
                    Some((m, _)) => {
                        m.body.extend_from_slice(raw);
                        m.commands += 1;
                    }
                    None => self.aof_unit(unit(self.target_db(e.db)), offset)?,
                },
                LogKind::Multi => {
                    let mut m = unit(0);
                    m.key.clear();
                    multi = Some((m, offset));
                }
                LogKind::Exec => match multi.take() {
                    Some((mut m, at)) if m.commands > 1 => {
                        m.body.extend_from_slice(raw);
                        m.commands += 1;
                        self.aof_unit(m, at)?;
                    }
                    _ => {}
                },
                LogKind::Select => {}
                kind => self.skipped(part, kind, offset),
            }
        }
        walk.ts = log.time();
        if multi.is_some() {
            self.notice("the AOF ends inside MULTI: the open transaction was not sent".into());
        }
        Ok(())
    }

    /// One AOF command (or transaction) found at `offset`, as a unit.
    fn aof_unit(&mut self, mut unit: Unit, offset: u64) -> Result<(), Error> {
        let seq = self.watermark.open(offset);
        unit.seq = seq;
        if seq < self.opts.resume_from {
            self.summary.skipped_resumed += 1;
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

    /// Adds an AOF command (or a transaction's kept commands) to the batch.
    fn step<'a>(&mut self, batch: &mut Batch<'a>, cmds: Vec<Queued<'a>>, end: Mark) {
        if cmds.is_empty() {
            return;
        }
        self.summary.keys += 1;
        self.summary.sent += 1;
        self.summary.commands += cmds.len() as u64;
        batch.steps.push(Step {
            first: batch.cmds.len(),
            end,
        });
        batch.bytes += cmds.iter().map(|q| q.raw.len()).sum::<usize>();
        batch.cmds.extend(cmds);
    }

    /// Applies the batch (exactly once) and empties it. A batch the target refuses when queued
    /// goes again one step at a time, so that only the refused step fails.
    fn send(&mut self, sender: &mut Sender, batch: &mut Batch<'_>) -> Result<(), Error> {
        let Some(last) = batch.steps.last() else {
            return Ok(());
        };
        let end = last.end;
        self.hold_rate();
        if self.halted() {
            return Ok(());
        }
        let sent = sender
            .apply(&batch.cmds, end, &|| self.hooks.stop())
            .map_err(|e| self.target_error(e))?;
        let steps = std::mem::take(&mut batch.steps);
        let cmds = std::mem::take(&mut batch.cmds);
        batch.bytes = 0;
        match sent {
            Sent::Aborted(..) if steps.len() > 1 => {
                for (i, s) in steps.iter().enumerate() {
                    let to = steps.get(i + 1).map_or(cmds.len(), |n| n.first);
                    let mut one = Batch {
                        cmds: cmds[s.first..to].to_vec(),
                        steps: vec![Step {
                            first: 0,
                            end: s.end,
                        }],
                        bytes: 0,
                    };
                    self.send(sender, &mut one)?;
                }
            }
            Sent::Aborted(_, why) => {
                // Refused as a whole: nothing of it applied; the marker moves past it.
                self.summary.replies += 1;
                self.summary.error_replies += 1;
                self.step_failed(&cmds[0], &why);
                sender
                    .apply(&[], end, &|| self.hooks.stop())
                    .map_err(|e| self.target_error(e))?;
            }
            Sent::RepliesLost => {
                self.summary.acked += steps.len() as u64;
                self.notice(
                    "a batch was applied but its replies were lost with the connection (the \
                     target's progress key says so): error replies inside it are not counted"
                        .into(),
                );
            }
            Sent::Applied { errors, replies } => {
                self.summary.replies += replies;
                self.summary.error_replies += errors.len() as u64;
                let mut errors = errors.into_iter().peekable();
                for i in 0..steps.len() {
                    let to = steps.get(i + 1).map_or(cmds.len(), |n| n.first);
                    let mut first = None;
                    while let Some((at, why)) = errors.next_if(|(at, _)| *at < to) {
                        first.get_or_insert((at, why));
                    }
                    match first {
                        Some((at, why)) => self.step_failed(&cmds[at], &why),
                        None => self.summary.acked += 1,
                    }
                }
            }
        }
        self.source_pos = end.offset;
        self.hooks.progress(end.offset, &self.summary);
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.last_checkpoint = Instant::now();
            self.hooks
                .checkpoint(self.watermark.done(), end.offset, &self.summary, false);
        }
        Ok(())
    }

    /// `--max-ops-per-sec`: waits until the commands counted so far are due.
    fn hold_rate(&self) {
        let Some(limit) = self.opts.max_ops_per_sec else {
            return;
        };
        let due = Duration::from_secs_f64(self.summary.commands as f64 / limit.max(1) as f64);
        // In short naps, so that Ctrl-C is seen within a tenth of a second at any rate.
        while let Some(wait) = due.checked_sub(self.started.elapsed())
            && !self.halted()
        {
            std::thread::sleep(wait.min(Duration::from_millis(100)));
        }
    }

    /// Why the sender gave up: the user's stop (Ctrl-C), or the target.
    fn target_error(&self, why: String) -> Error {
        match self.hooks.stop() {
            true => Error::Interrupted,
            false => Error::Target(why),
        }
    }

    /// An AOF command (or transaction) with an error reply.
    fn step_failed(&mut self, q: &Queued<'_>, why: &str) {
        self.fail(u64::MAX, q.db, q.key, why);
    }

    /// AOF commands are replayed as they are: the options that change keys do not apply to
    /// them.
    pub(super) fn aof_notice(&mut self) {
        let o = &self.opts;
        let ignored = [
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
                "AOF commands are replayed as they are: {} not applied (--db, --key, \
                 --key-regex and the slice options select them, --db-map maps them)",
                ignored.join(", ")
            ));
        }
    }
}
