//! The patch: the commands that turn A into B, for `redis-cli --pipe`.
//!
//! Removed keys get DEL. Sets, hashes and zsets whose value changed get element commands
//! (SADD/SREM, HSET/HDEL with HPEXPIREAT/HPERSIST for field TTLs, ZADD/ZREM) when those are
//! smaller than the key itself; additions come before removals, so the key never empties on
//! the way. Everything else (added and type-changed keys, strings, lists, streams, modules, and
//! collections where a rewrite is smaller) is rewritten whole: DEL, then native commands as
//! export writes them (or RESTORE with `restore`). Expiry follows: PEXPIREAT or PERSIST.
//! A key the target cannot hold whole is left as it is, or rewritten without what it cannot
//! hold with `lossy` (see [`crate::export::loss`]).

use std::io::Write;

use super::compare::{Change, Diff};
use super::elements::{self, Changes, Section, State};
use super::{Error, Seed, Value};
use crate::export::commands::{Batch, NativeWriter};
use crate::export::loss::{Loss, Losses, Tally};
use crate::rdb::{Kind, ObjectType};
use crate::release::Release;
use crate::resp::Command;

#[derive(Debug, Clone)]
pub struct PatchOptions {
    pub target: Release,
    pub batch: Batch,
    /// Rewrite keys with RESTORE (their payload) rather than native commands.
    pub restore: bool,
    /// Larger values are rewritten with native commands even with `restore`.
    pub restore_max: u64,
    /// For relative TTLs, when the target has no RESTORE ABSTTL.
    pub now_ms: i64,
    pub seed: Seed,
    /// Memory for one key's element comparison (see [`elements`]).
    pub budget: usize,
    /// Rewrite keys without what the target cannot hold instead of leaving them out (see
    /// [`crate::export::loss`]).
    pub lossy: bool,
}

pub struct Patch<'o> {
    out: &'o mut dyn Write,
    opts: PatchOptions,
    db: Option<u64>,
    pub commands: u64,
    /// Keys rewritten whole, and patched element by element.
    pub rewritten: u64,
    pub elementwise: u64,
    /// Keys rewritten without something, or left as they are, by kind of loss.
    pub losses: Tally,
    /// Keys left as they are on the target (the loss policy), named.
    pub refused_keys: Vec<String>,
}

/// Builds batched commands (`SADD key m1 m2 ...`) within the batch limits.
struct Batcher<'p, 'o> {
    patch: &'p mut Patch<'o>,
    name: &'static str,
    key: &'p [u8],
    cmd: Command,
    pending: usize,
}

impl<'p, 'o> Batcher<'p, 'o> {
    fn new(patch: &'p mut Patch<'o>, name: &'static str, key: &'p [u8]) -> Self {
        Batcher {
            patch,
            name,
            key,
            cmd: Command::default(),
            pending: 0,
        }
    }

    /// Adds one element's arguments.
    fn push(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        if self.pending == 0 {
            self.cmd.reset(self.name).arg(self.key);
        }
        for a in args {
            self.cmd.arg(a);
        }
        self.pending += 1;
        let b = self.patch.opts.batch;
        if self.pending >= b.elements || self.cmd.len() >= b.bytes {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending > 0 {
            self.pending = 0;
            self.patch.send(&self.cmd)?;
        }
        Ok(())
    }
}

impl<'o> Patch<'o> {
    pub fn new(out: &'o mut dyn Write, opts: PatchOptions) -> Self {
        Patch {
            out,
            opts,
            db: None,
            commands: 0,
            rewritten: 0,
            elementwise: 0,
            losses: Tally::default(),
            refused_keys: Vec::new(),
        }
    }

    fn send(&mut self, c: &Command) -> std::io::Result<()> {
        self.commands += 1;
        c.write_to(self.out)
    }

    fn simple(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut c = Command::new(std::str::from_utf8(args[0]).unwrap_or("PING"));
        for a in &args[1..] {
            c.arg(a);
        }
        self.send(&c)
    }

    fn select(&mut self, db: u64) -> std::io::Result<()> {
        if self.db != Some(db) {
            self.db = Some(db);
            self.simple(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        Ok(())
    }

    /// The commands for one differing key. `a` / `b` are its values (None: gone from a live
    /// side since the first pass, or not needed).
    pub fn key(
        &mut self,
        d: &Diff,
        a: Option<&Value<'_>>,
        b: Option<&Value<'_>>,
    ) -> Result<(), Error> {
        self.select(d.db)?;
        let key = d.key.as_slice();
        let expire_b = d.b.and_then(|s| s.expire);
        match (d.change, b) {
            (Change::Removed, _) | (_, None) if d.change != Change::TtlChanged => {
                self.simple(&[b"DEL", key])?;
            }
            (Change::TtlChanged, _) => self.expire(key, expire_b)?,
            (Change::ValueChanged, Some(b)) => match (d.kind(), a) {
                // A target without field TTLs, and B's hash may have some: the rewrite finds out
                // whether any are lost.
                (Kind::Hash, _) if !self.opts.target.field_ttl() && field_ttls(b.ty()) => {
                    self.whole(key, b, expire_b)?
                }
                (Kind::Set | Kind::Zset | Kind::Hash, Some(a)) => {
                    self.elementwise(d, a, b)?;
                }
                _ => self.whole(key, b, expire_b)?,
            },
            (_, Some(b)) => self.whole(key, b, expire_b)?,
            _ => {}
        }
        Ok(())
    }

    fn expire(&mut self, key: &[u8], expire: Option<i64>) -> std::io::Result<()> {
        match expire {
            Some(ms) => self.simple(&[b"PEXPIREAT", key, ms.to_string().as_bytes()]),
            None => self.simple(&[b"PERSIST", key]),
        }
    }

    /// DEL, then the value as native commands or RESTORE, then its expiry; nothing when the
    /// target cannot hold the value whole and the loss policy leaves the key as it is.
    fn whole(&mut self, key: &[u8], v: &Value<'_>, expire: Option<i64>) -> Result<(), Error> {
        let kind = v.ty().kind();
        let accepted = self.opts.target.accepts_payload(v.version());
        let mut buf = Vec::new();
        let (commands, losses) = if kind == Kind::Module && !accepted {
            // No native form, and a payload the target refuses.
            (0, Losses::from(Loss::ModuleValue))
        } else if kind == Kind::Module
            || (self.opts.restore && accepted && v.bytes() < self.opts.restore_max)
            // Only a RESTORE carries a Redis 8.6 stream's producers' history.
            || (v.ty() == ObjectType::Stream4 && accepted)
        {
            self.restore(key, v, expire, &mut buf)?;
            (1, Losses::default())
        } else {
            let mut w = NativeWriter::new(&mut buf, self.opts.target, self.opts.batch);
            w.begin_key(key, kind);
            let read = v.visit(&mut w);
            w.end_key(expire);
            if let Some(e) = w.take_error() {
                return Err(e.into());
            }
            read.map_err(|error| Error::rdb("B", error))?;
            (w.commands, w.losses)
        };
        if !self.losses.settle(losses, self.opts.lossy) {
            let name = crate::rdb::error::escape(key);
            let reason = losses.reason(self.opts.target);
            self.refused_keys.push(format!("key \"{name}\": {reason}"));
            return Ok(());
        }
        self.rewritten += 1;
        self.simple(&[b"DEL", key])?;
        self.commands += commands;
        Ok(self.out.write_all(&buf)?)
    }

    fn restore(
        &mut self,
        key: &[u8],
        v: &Value<'_>,
        expire: Option<i64>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let mut c = Command::new("RESTORE");
        c.arg(key);
        let absttl = self.opts.target.restore_absttl();
        match expire {
            Some(ms) if absttl => c.arg_int(ms),
            Some(ms) => c.arg_int((ms - self.opts.now_ms).max(1)),
            None => c.arg(b"0"),
        };
        c.arg(&v.payload());
        if expire.is_some() && absttl {
            c.arg(b"ABSTTL");
        }
        c.write_to(out)
    }

    /// Element commands where they are smaller than a rewrite.
    fn elementwise(&mut self, d: &Diff, a: &Value<'_>, b: &Value<'_>) -> Result<(), Error> {
        let key = d.key.as_slice();
        let kind = d.kind();
        let mut whole_instead = false;
        let (seed, budget) = (self.opts.seed, self.opts.budget);
        let counted = elements::compare(a, b, kind, seed, budget, &mut |c, only| {
            // With the whole key in one partition, a rewrite can be weighed against it.
            if only && cost(&c) >= c.b_bytes {
                whole_instead = true;
                return Ok(());
            }
            self.changes(key, kind, &c)
        })?;
        if let Err(e) = counted {
            return Err(Error::rdb(if e.side_a { "A" } else { "B" }, e.error));
        }
        let (expire_a, expire_b) = (d.a.and_then(|s| s.expire), d.b.and_then(|s| s.expire));
        if whole_instead {
            return self.whole(key, b, expire_b);
        }
        self.elementwise += 1;
        // Restated when B has one: were the key emptied on the way, it would have lost it.
        if expire_b.is_some() || expire_a.is_some() {
            self.expire(key, expire_b)?;
        }
        Ok(())
    }

    /// One partition's changes: additions and changes first, then removals.
    fn changes(&mut self, key: &[u8], kind: Kind, c: &Changes) -> std::io::Result<()> {
        let elems = |v: &'_ [(Section, Vec<u8>, State)]| {
            v.iter()
                .filter(|e| e.0 == Section::Element)
                .map(|e| (e.1.clone(), e.2.clone()))
                .collect::<Vec<_>>()
        };
        let added = elems(&c.added);
        let removed = elems(&c.removed);
        let changed: Vec<(Vec<u8>, State, State)> = c
            .changed
            .iter()
            .filter(|e| e.0 == Section::Element)
            .map(|e| (e.1.clone(), e.2.clone(), e.3.clone()))
            .collect();
        match kind {
            Kind::Set => {
                let mut add = Batcher::new(self, "SADD", key);
                for (m, _) in &added {
                    add.push(&[m])?;
                }
                add.flush()?;
                let mut rem = Batcher::new(self, "SREM", key);
                for (m, _) in &removed {
                    rem.push(&[m])?;
                }
                rem.flush()
            }
            Kind::Zset => {
                let mut add = Batcher::new(self, "ZADD", key);
                let now = added.iter().map(|(m, s)| (m, s));
                for (m, s) in now.chain(changed.iter().map(|(m, _, s)| (m, s))) {
                    if let State::Score(x) = s {
                        add.push(&[score_arg(*x).as_bytes(), m])?;
                    }
                }
                add.flush()?;
                let mut rem = Batcher::new(self, "ZREM", key);
                for (m, _) in &removed {
                    rem.push(&[m])?;
                }
                rem.flush()
            }
            Kind::Hash => self.hash_changes(key, &added, &removed, &changed),
            _ => Ok(()),
        }
    }

    fn hash_changes(
        &mut self,
        key: &[u8],
        added: &[(Vec<u8>, State)],
        removed: &[(Vec<u8>, State)],
        changed: &[(Vec<u8>, State, State)],
    ) -> std::io::Result<()> {
        let hset = if self.opts.target.multi_field_hset() {
            "HSET"
        } else {
            "HMSET"
        };
        // Field TTLs to set, and fields to make persistent, after the values are written.
        let mut ttls: Vec<(u64, &[u8])> = Vec::new();
        let mut persist: Vec<&[u8]> = Vec::new();
        let mut set = Batcher::new(self, hset, key);
        for (f, s) in added {
            if let State::Value { value, ttl } = s {
                set.push(&[f, value])?;
                if let Some(t) = ttl {
                    ttls.push((*t, f));
                }
            }
        }
        for (f, sa, sb) in changed {
            let (State::Value { value: va, ttl: ta }, State::Value { value: vb, ttl: tb }) =
                (sa, sb)
            else {
                continue;
            };
            if va != vb {
                set.push(&[f, vb])?;
            }
            match tb {
                Some(t) => ttls.push((*t, f)),
                None if ta.is_some() => persist.push(f),
                None => {}
            }
        }
        set.flush()?;
        if self.opts.target.field_ttl() {
            ttls.sort();
            for run in ttls.chunk_by(|x, y| x.0 == y.0) {
                let mut c = Command::new("HPEXPIREAT");
                c.arg(key)
                    .arg_uint(run[0].0)
                    .arg(b"FIELDS")
                    .arg_uint(run.len() as u64);
                for (_, f) in run {
                    c.arg(f);
                }
                self.send(&c)?;
            }
            if !persist.is_empty() {
                let mut c = Command::new("HPERSIST");
                c.arg(key).arg(b"FIELDS").arg_uint(persist.len() as u64);
                for f in &persist {
                    c.arg(f);
                }
                self.send(&c)?;
            }
        }
        let mut del = Batcher::new(self, "HDEL", key);
        for (f, _) in removed {
            del.push(&[f])?;
        }
        del.flush()
    }
}

/// Whether a hash of this encoding can hold field TTLs.
fn field_ttls(ty: ObjectType) -> bool {
    use ObjectType::*;
    matches!(
        ty,
        HashMetadataPreGa | HashListpackExPreGa | HashMetadata | HashListpackEx | ValkeyHash2
    )
}

/// A score as ZADD reads it.
fn score_arg(x: f64) -> String {
    match x {
        f64::INFINITY => "+inf".into(),
        f64::NEG_INFINITY => "-inf".into(),
        x => crate::resp::format_score(x),
    }
}

/// Roughly what the element commands of `c` weigh, to compare with a rewrite.
fn cost(c: &Changes) -> u64 {
    let state = |s: &State| match s {
        State::Value { value, .. } => value.len(),
        State::Score(_) => 8,
        _ => 0,
    };
    let each = |name: &[u8], s: &State| (name.len() + state(s)) as u64 + elements::ARG_OVERHEAD;
    c.added.iter().map(|e| each(&e.1, &e.2)).sum::<u64>()
        + c.removed
            .iter()
            .map(|e| each(&e.1, &State::None))
            .sum::<u64>()
        + c.changed.iter().map(|e| each(&e.1, &e.3)).sum::<u64>()
}
