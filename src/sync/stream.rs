//! The stream part of a sync: bytes read from the link, cut into batches ([`super::plan`]),
//! applied exactly once ([`Sender`]); each second (and at once on `REPLCONF GETACK`) the master
//! acked and the checkpoint written with the offset the target holds, and the figures given.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::plan::{Plan, plan};
use super::{Ended, Status, Summary, Syncer};
use crate::backlog::master::master_offset;
use crate::backlog::replica::Replica;
use crate::replay::exactly_once::{Mark, Queued, Sender, Sent};

/// Bytes per batch, whatever its command count (a source transaction may make it larger).
const BATCH_BYTES: usize = 1 << 20;
/// How much is read from the link at a time.
const CHUNK: usize = 1 << 20;
/// How many error replies are kept as samples.
const SAMPLES: usize = 5;

impl Syncer<'_> {
    pub(super) fn stream(
        &mut self,
        replica: &mut Replica,
        status: &mut dyn FnMut(&Status),
    ) -> Result<Ended> {
        replica.poll(Duration::from_millis(100));
        let mut chunk = vec![0; CHUNK];
        let mut tick = Instant::now();
        let mut counted = self.summary.commands;
        let mut getack = false;
        loop {
            if (self.stop)() {
                return Ok(Ended::Stopped);
            }
            // First what a full sync's spool holds, then what each read brings.
            getack |= match self.apply_buffered() {
                Ok(g) => g,
                Err(e) if e.is::<WentBack>() => return Ok(Ended::Link(e.to_string())),
                // Ctrl-C during a batch: the target's key says whether it went.
                Err(_) if (self.stop)() => return Ok(Ended::Stopped),
                Err(e) => return Err(e),
            };
            if getack || tick.elapsed() >= Duration::from_secs(1) {
                getack = false;
                if let Some(ended) = self.tick(replica, &mut tick, &mut counted, status)? {
                    return Ok(ended);
                }
            }
            match replica.read(&mut chunk) {
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Ok(Ended::Link(e.to_string())),
            }
        }
    }

    /// Each second and on `GETACK`: the master acked and the checkpoint written with the
    /// offset the target holds, the figures given.
    fn tick(
        &mut self,
        replica: &mut Replica,
        tick: &mut Instant,
        counted: &mut u64,
        status: &mut dyn FnMut(&Status),
    ) -> Result<Option<Ended>> {
        let applied = self.applied();
        if let Err(e) = replica.ack(applied) {
            return Ok(Some(Ended::Link(e.to_string())));
        }
        if let Some(st) = self.state.as_mut() {
            st.offset = applied;
            st.save(&self.opts.checkpoint)?;
        }
        let secs = tick.elapsed().as_secs_f64().max(1e-3);
        *tick = Instant::now();
        let master = master_offset(&mut self.control);
        let lag = master.map(|m| m.saturating_sub(applied));
        let s = &mut self.summary;
        s.master_offset = master;
        s.max_lag = s.max_lag.max(lag.unwrap_or(0));
        status(&Status {
            offset: applied,
            master_offset: master,
            lag_bytes: lag,
            commands: s.commands,
            commands_per_sec: (s.commands - *counted) as f64 / secs,
            errors: s.errors,
            full_syncs: s.full_syncs,
            continued: s.continued,
            updated_ms: crate::backlog::store::now_ms(),
        });
        *counted = s.commands;
        Ok(None)
    }

    /// Applies the whole steps the buffer holds; true when the master asked for an ACK.
    fn apply_buffered(&mut self) -> Result<bool> {
        let mut getack = false;
        loop {
            let at = self.applied();
            let plan = plan(&self.buf, self.db, self.opts.pipeline, BATCH_BYTES)
                .map_err(|e| anyhow!("the source's stream after offset {at}: {e}"))?;
            getack |= plan.getack;
            if plan.end == 0 {
                return Ok(getack);
            }
            let mut batch = Batch {
                url_db: self.target.db(),
                sender: &mut self.sender,
                buf: &self.buf,
                base: at,
                stop: self.stop,
                summary: &mut self.summary,
            };
            batch.apply(&plan)?;
            self.buf.drain(..plan.end);
            self.db = plan.db;
            self.progressed = true;
        }
    }
}

/// One planned batch on its way to the target.
struct Batch<'a> {
    /// The target URL's database: with one (`/3`), every command goes there, as `replay` puts
    /// every key there.
    url_db: i64,
    sender: &'a mut Sender,
    buf: &'a [u8],
    /// The offset before the buffer's first byte.
    base: u64,
    stop: &'a (dyn Fn() -> bool + Sync),
    summary: &'a mut Summary,
}

impl Batch<'_> {
    fn apply(&mut self, plan: &Plan) -> Result<()> {
        let queued: Vec<Queued<'_>> = (plan.cmds.iter())
            .map(|(db, raw, key)| {
                let raw = &self.buf[raw.clone()];
                Queued {
                    db: u64::try_from(self.url_db)
                        .ok()
                        .filter(|&d| d > 0)
                        .unwrap_or(*db),
                    raw,
                    key: &raw[key.clone()],
                }
            })
            .collect();
        let end = self.mark(plan.end, plan.db);
        self.summary.batches += 1;
        self.summary.commands += queued.len() as u64;
        match self.send(&queued, end)? {
            Sent::Applied { errors, .. } => {
                for (i, why) in errors {
                    self.error(&queued[i], &why);
                }
            }
            Sent::RepliesLost => self.summary.notice(
                "a batch was applied but its replies were lost with the connection (the \
                 target's progress key says so): error replies inside it are not counted"
                    .into(),
            ),
            // Refused when queued: nothing applied. Step by step, so only the refused fails.
            Sent::Aborted(..) => {
                for (i, step) in plan.steps.iter().enumerate() {
                    let to = plan.steps.get(i + 1).map_or(queued.len(), |n| n.first);
                    let cmds = &queued[step.first..to];
                    let mark = self.mark(step.end, step.db);
                    if let Sent::Aborted(at, why) = self.send(cmds, mark)? {
                        self.error(&cmds[at], &format!("{why} (its step not applied)"));
                        self.send(&[], mark)?;
                    }
                }
                if self.sender.applied != Some(end) {
                    self.send(&[], end)?;
                }
            }
        }
        Ok(())
    }

    fn mark(&self, end: usize, db: u64) -> Mark {
        Mark {
            offset: self.base + end as u64,
            db,
        }
    }

    /// Applies a batch. A target whose progress key went back (restarted from persistence that
    /// had not kept the last batches) makes a [`WentBack`]: the stream goes on from its key.
    fn send(&mut self, cmds: &[Queued<'_>], end: Mark) -> Result<Sent> {
        let stop = self.stop;
        let why = match self.sender.apply(cmds, end, &|| stop()) {
            Ok(sent) => return Ok(sent),
            Err(why) => why,
        };
        let applied = self.sender.applied;
        if let Ok(Some(found)) = self.sender.read(&|| stop())
            && applied.is_some_and(|a| found.offset < a.offset)
        {
            self.sender.applied = Some(found);
            return Err(WentBack(found.offset).into());
        }
        Err(anyhow!("the target: {why}"))
    }

    /// A command of the stream the target answered with an error: counted, the first ones
    /// kept as samples.
    fn error(&mut self, q: &Queued<'_>, why: &str) {
        self.summary.errors += 1;
        if self.summary.error_samples.len() < SAMPLES {
            let mut args = Vec::new();
            let name = match crate::resp::parse::command(q.raw, &mut args) {
                Ok(_) => String::from_utf8_lossy(&q.raw[args[0].clone()]).into_owned(),
                Err(_) => "?".into(),
            };
            self.summary.error_samples.push(format!(
                "{} {:?} (db {}): {why}",
                name,
                String::from_utf8_lossy(q.key),
                q.db
            ));
        }
    }
}

/// The target's progress key holds an earlier offset than this run last set (the target
/// restarted from its persistence, which had not kept the last batches): the stream is asked
/// again from there.
#[derive(Debug, thiserror::Error)]
#[error(
    "the target went back to offset {0} (restarted from its persistence?): the stream is asked again from there"
)]
pub struct WentBack(pub u64);
