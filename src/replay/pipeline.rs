//! Units on their way: batched per node (at most `--pipeline` commands, ~1 MiB), held to
//! `--max-ops-per-sec`, sent by the nodes' connection threads, and their replies handled: a key
//! acknowledged, existing, refused (counted and named) or sent again (redirected, busy, lost).

use super::*;

impl<'h> Replay<'h> {
    /// Progress, checkpoints, rate limit, and whatever the connections have answered.
    pub(super) fn tick(&mut self) -> Result<(), Error> {
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

    pub(super) fn dispatch(&mut self, unit: Unit) -> Result<(), Error> {
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
        self.summary.sent += u64::from(counts_as_sent(&unit));
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
        let packed = super::batch::Packed::new(&batch, &mut db);
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
    pub(super) fn service(&mut self, wait: Duration) -> Result<(), Error> {
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
                    _ => self.refused(
                        unit.seq,
                        unit.db,
                        &unit.key,
                        "BUSYKEY key exists on the target (see --on-exists)",
                        unit.form == Form::Function,
                    ),
                },
                Outcome::Failed(msg) => {
                    let library = unit.form == Form::Function;
                    self.refused(unit.seq, unit.db, &unit.key, &msg, library);
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

    pub(super) fn fail(&mut self, seq: u64, db: u64, key: &[u8], error: &str) {
        self.refused(seq, db, key, error, false);
    }

    /// A function library the target refused: counted on the libraries' line, not as a key.
    pub(super) fn fail_library(&mut self, seq: u64, name: &[u8], error: &str) {
        self.refused(seq, 0, name, error, true);
    }

    fn refused(&mut self, seq: u64, db: u64, key: &[u8], error: &str, library: bool) {
        if library {
            self.summary.libraries_failed += 1;
        } else {
            let first = error.split_whitespace().next().unwrap_or("ERR");
            // A loss's reason names it first (`field-ttl: ...`).
            let kind = first.trim_end_matches(':').to_string();
            *self.summary.failed.entry(kind).or_default() += 1;
        }
        self.hooks.failure(&Failure {
            library,
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

    /// Sends what is pending and waits until every unit has its answer. Once stopped (Ctrl-C,
    /// `--max-errors`), what is not sent yet stays unsent (the checkpoint is before it), except
    /// the deletions of temporary keys.
    pub(super) fn finish(&mut self) -> Result<(), Error> {
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
                    // Counted as sent when batched: these never go.
                    let unsent = batch.iter().filter(|u| counts_as_sent(u)).count();
                    self.summary.sent -= unsent as u64;
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

/// A key's first attempt (not a retry, a key sent again alone, a library or a cleanup).
fn counts_as_sent(unit: &Unit) -> bool {
    unit.failing_since.is_none()
        && !unit.alone
        && !matches!(unit.form, Form::Cleanup | Form::Function)
}
