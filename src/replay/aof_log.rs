//! Replaying an append-only log: a single file (RESP, or an RDB preamble then RESP) or the
//! files of an `appendonlydir/` in the server's load order (the base, through the RDB path
//! when it is an RDB, then each incr file). Each file is read with a fresh database (0), as the
//! server loads each with a fresh client. Positions are offsets across the files in that order.
//!
//! Into a standalone target the commands go through [`super::exactly_once`]: after a cut and a
//! `--resume`, no command is applied twice. Into a cluster (or with `--dry-run`) they go as
//! units of the key replay, in order on one connection per node, without that guarantee.

use super::exactly_once::{Mark, Queued, Sender, Sent};
use super::*;
use crate::aof::log::{Kind as LogKind, Log};

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
struct Walk<'a> {
    batch: Batch<'a>,
    /// The open transaction's commands, and where its MULTI is.
    multi: Option<(Vec<Queued<'a>>, u64)>,
    read: u64,
}

impl<'h> Replay<'h> {
    /// The files of `parts` in order: the RDB at the start of the first through the RDB path,
    /// then the commands.
    pub(super) fn run_parts(&mut self, parts: &[LogPart<'_>]) -> Result<(), Error> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        let mut start = 0;
        if first.rdb() {
            self.rdb_end = None;
            self.run_rdb(SliceInput::new(first.data))?;
            start = self.rdb_end.take().unwrap_or(first.data.len());
            if self.halted() {
                return Ok(());
            }
        }
        self.run_log(parts, start)
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
            for (i, part) in parts.iter().enumerate() {
                self.run_aof(part.data, if i == 0 { start } else { 0 })?;
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
        let mut walk = Walk {
            batch: Batch::default(),
            multi: None,
            read: 0,
        };
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
        let mut log = Log::resume(data, at as usize, db);
        loop {
            let (kind, db, offset, len, key) = match log.next() {
                None => break,
                Some(Err(p)) => return Err(Error::Aof(format!("{}{p}", part.at()))),
                Some(Ok(e)) => (
                    e.kind,
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
                LogKind::Select => {}
                LogKind::Multi => walk.multi = Some((Vec::new(), offset)),
                LogKind::Data => match walk.multi.as_mut() {
                    Some((cmds, _)) => cmds.push(q),
                    None => self.step(&mut walk.batch, vec![q], end),
                },
                LogKind::Exec => {
                    let (cmds, _) = walk.multi.take().unwrap_or_default();
                    self.step(&mut walk.batch, cmds, end);
                }
                LogKind::BadSelect | LogKind::NestedMulti | LogKind::LoneExec => {
                    self.notice(format!(
                        "{}offset {offset}: {} skipped, as the server does when it loads the \
                         file (an error reply there)",
                        part.at(),
                        match kind {
                            LogKind::BadSelect => "a SELECT without a valid database",
                            LogKind::NestedMulti => "a MULTI inside MULTI",
                            _ => "an EXEC without MULTI",
                        }
                    ));
                }
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
        Ok(())
    }

    /// Adds an AOF command (or a transaction's commands) to the batch, unless `--db` leaves
    /// its database out.
    fn step<'a>(&mut self, batch: &mut Batch<'a>, mut cmds: Vec<Queued<'a>>, end: Mark) {
        let before = cmds.len();
        cmds.retain(|q| self.opts.filter.db(q.db));
        if cmds.len() < before {
            self.summary.filtered_out += 1;
        }
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

    /// AOF commands are replayed as they are: the key options do not apply to them.
    pub(super) fn aof_notice(&mut self) {
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
    }
}
