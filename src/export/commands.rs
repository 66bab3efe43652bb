//! Rebuilding a key with native commands, the way Redis's own AOF rewrite does: SET, batched
//! RPUSH/SADD/ZADD/HSET, HPEXPIREAT for field TTLs, XADD/XSETID/XGROUP/XCLAIM for streams, and
//! PEXPIREAT for the key's TTL. Batches are bounded so a huge key never becomes one command.

use std::collections::HashMap;
use std::io::{self, Write};

use super::loss::{Loss, Losses};
use crate::rdb::{Item, Kind, StreamId, Visitor};
use crate::release::Release;
use crate::resp::Command;

/// Upper bounds for one command of a batched key.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    pub elements: usize,
    pub bytes: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            elements: 1000,
            bytes: 1 << 20,
        }
    }
}

/// Writes the commands for one key as its items arrive. I/O errors are kept and end the output.
pub struct NativeWriter<'o> {
    out: &'o mut dyn Write,
    target: Release,
    batch: Batch,
    key: &'o [u8],
    kind: Kind,
    cmd: Command,
    /// Elements in `cmd` so far.
    pending: usize,
    /// Field TTLs of the hash fields in `cmd`: (expiry, field).
    field_ttls: Vec<(u64, Vec<u8>)>,
    /// ZADD: where each (score, member) pair of `cmd` starts, while the scores ascend.
    ascending: Vec<usize>,
    last_score: f64,
    stream: StreamState,
    pub commands: u64,
    /// What the key's commands leave out (see [`super::loss`]).
    pub losses: Losses,
    error: Option<io::Error>,
}

#[derive(Default)]
struct StreamState {
    /// Fields still expected for the XADD being built.
    fields_left: usize,
    entries: u64,
    group: Vec<u8>,
    /// The group's pending entries: delivery time and count by ID.
    pel: HashMap<StreamId, (u64, u64)>,
    consumer: Vec<u8>,
    /// The stream's first ID, last ID and length, when its metadata is what an older server
    /// implies (so that a group's entries-read can be judged too).
    implied: Option<(StreamId, StreamId, u64)>,
}

impl<'o> NativeWriter<'o> {
    pub fn new(out: &'o mut dyn Write, target: Release, batch: Batch) -> Self {
        NativeWriter {
            out,
            target,
            batch,
            key: &[],
            kind: Kind::String,
            cmd: Command::default(),
            pending: 0,
            field_ttls: Vec::new(),
            ascending: Vec::new(),
            last_score: f64::NEG_INFINITY,
            stream: StreamState::default(),
            commands: 0,
            losses: Losses::default(),
            error: None,
        }
    }

    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Writes a command that is complete on its own.
    pub fn send(&mut self, cmd: &Command) {
        Self::write(cmd, self.out, &mut self.commands, &mut self.error);
    }

    fn write(cmd: &Command, out: &mut dyn Write, count: &mut u64, error: &mut Option<io::Error>) {
        if error.is_none() {
            *count += 1;
            if let Err(e) = cmd.write_to(out) {
                *error = Some(e);
            }
        }
    }

    pub fn begin_key(&mut self, key: &'o [u8], kind: Kind) {
        self.key = key;
        self.kind = kind;
        self.stream = StreamState::default();
        self.losses = Losses::default();
    }

    fn lose(&mut self, loss: Loss, lost: bool) {
        if lost {
            self.losses.add(loss);
        }
    }

    /// Flushes the last batch and sets the key's TTL.
    pub fn end_key(&mut self, expire_ms: Option<i64>) {
        self.flush();
        if let Some(ms) = expire_ms {
            self.cmd.reset("PEXPIREAT").arg(self.key).arg_int(ms);
            self.send_cmd();
        }
    }

    /// Sends the command in `self.cmd` (a whole command, not a batch).
    fn send_cmd(&mut self) {
        Self::write(&self.cmd, self.out, &mut self.commands, &mut self.error);
    }

    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        // A small sorted set is a listpack on the server, and each ZADD member is inserted by
        // walking the listpack from its head, parsing every score it passes: members in
        // ascending order (how listpacks are saved) cost a walk over the whole list each,
        // descending ones stop at the head. (Large sorted sets are saved descending already.)
        if self.ascending.len() > 1 && self.ascending.len() == self.pending {
            self.cmd.reverse_runs(&self.ascending);
        }
        self.ascending.clear();
        self.last_score = f64::NEG_INFINITY;
        self.send_cmd();
        self.pending = 0;
        self.flush_field_ttls();
    }

    /// One HPEXPIREAT per run of fields sharing an expiry.
    fn flush_field_ttls(&mut self) {
        let ttls = std::mem::take(&mut self.field_ttls);
        for run in ttls.chunk_by(|a, b| a.0 == b.0) {
            let mut c = Command::new("HPEXPIREAT");
            c.arg(self.key)
                .arg_uint(run[0].0)
                .arg(b"FIELDS")
                .arg_uint(run.len() as u64);
            for (_, f) in run {
                c.arg(f);
            }
            self.send(&c);
        }
    }

    /// Starts (if needed) the batch command `name key`, then counts one element.
    fn batch_arg(&mut self, name: &str) -> &mut Command {
        if self.pending == 0 {
            self.cmd.reset(name).arg(self.key);
        }
        self.pending += 1;
        &mut self.cmd
    }

    fn batch_full(&mut self) {
        if self.pending >= self.batch.elements || self.cmd.len() >= self.batch.bytes {
            self.flush();
        }
    }

    /// SET, then APPEND for the rest of a string larger than a batch (a server refuses a bulk
    /// string over its `proto-max-bulk-len`).
    fn string(&mut self, value: &[u8]) {
        let step = self.batch.bytes.max(1);
        let (first, rest) = value.split_at(value.len().min(step));
        self.cmd.reset("SET").arg(self.key).arg(first);
        self.send_cmd();
        for chunk in rest.chunks(step) {
            self.cmd.reset("APPEND").arg(self.key).arg(chunk);
            self.send_cmd();
        }
    }

    /// Whether a server that loads the stream without its metadata (RDB 9) works out a group's
    /// entries-read as `n` (Redis's `streamEstimateDistanceFromFirstEverEntry`).
    fn entries_read_implied(&self, group_last: StreamId, n: u64) -> bool {
        let Some((first, last, length)) = self.stream.implied else {
            return false;
        };
        if length == 0 || group_last == last {
            n == length
        } else if group_last < first {
            n == 0
        } else {
            group_last == first && n == 1
        }
    }

    fn stream_item(&mut self, item: Item<'_>) {
        let key = self.key;
        match item {
            Item::StreamEntry { id, fields } => {
                self.cmd.reset("XADD").arg(key).arg_id(id);
                self.pending = 1;
                self.stream.fields_left = fields;
                self.stream.entries += 1;
                if fields == 0 {
                    self.flush();
                }
            }
            Item::StreamField { field, value } => {
                self.cmd.arg_elem(field).arg_elem(value);
                self.stream.fields_left = self.stream.fields_left.saturating_sub(1);
                if self.stream.fields_left == 0 {
                    self.flush();
                }
            }
            Item::StreamMeta(meta) => {
                if self.stream.entries == 0 {
                    // The AOF rewrite's way to create an empty stream: add entry 0-1 and trim it
                    // away at once; XSETID below then sets the real last ID (which may be 0-0).
                    let mut c = Command::new("XADD");
                    c.arg(key)
                        .arg(b"MAXLEN")
                        .arg(b"0")
                        .arg(b"0-1")
                        .arg(b"x")
                        .arg(b"y");
                    self.send(&c);
                }
                let mut c = Command::new("XSETID");
                c.arg(key).arg_id(meta.last_id);
                let v2 = self.target.stream_v2_commands();
                if let (Some(added), Some(max_deleted)) = (meta.entries_added, meta.max_deleted_id)
                {
                    // What an older server's stream implies (as many added as there are, none
                    // deleted) is no loss.
                    let implied = added == meta.length && max_deleted == StreamId::default();
                    self.lose(Loss::StreamMeta, !v2 && !implied);
                    self.stream.implied = implied.then(|| {
                        let first = meta.first_id.unwrap_or_default();
                        (first, meta.last_id, meta.length)
                    });
                    if v2 {
                        c.arg(b"ENTRIESADDED").arg_uint(added);
                        c.arg(b"MAXDELETEDID").arg_id(max_deleted);
                    }
                }
                self.send(&c);
            }
            Item::StreamGroup {
                name,
                last_id,
                entries_read,
                ..
            } => {
                self.stream.group = name.to_vec();
                self.stream.pel.clear();
                let mut c = Command::new("XGROUP");
                c.arg(b"CREATE").arg(key).arg(name).arg_id(last_id);
                if let Some(n) = entries_read {
                    let v2 = self.target.stream_v2_commands();
                    self.lose(
                        Loss::StreamMeta,
                        !v2 && !self.entries_read_implied(last_id, n),
                    );
                    if v2 {
                        c.arg(b"ENTRIESREAD").arg_uint(n);
                    }
                }
                self.send(&c);
            }
            Item::StreamPending {
                id,
                delivery_time_ms,
                delivery_count,
            } => {
                self.stream
                    .pel
                    .insert(id, (delivery_time_ms, delivery_count));
            }
            Item::StreamConsumer { name, pending, .. } => {
                self.stream.consumer = name.to_vec();
                // XCLAIM below makes a consumer that has pending entries.
                let create = self.target.create_consumer();
                self.lose(Loss::StreamConsumer, !create && pending == 0);
                if create {
                    let mut c = Command::new("XGROUP");
                    c.arg(b"CREATECONSUMER")
                        .arg(key)
                        .arg(&self.stream.group)
                        .arg(name);
                    self.send(&c);
                }
            }
            Item::StreamConsumerPending { id } => {
                let (time, count) = self.stream.pel.get(&id).copied().unwrap_or_default();
                let mut c = Command::new("XCLAIM");
                c.arg(key)
                    .arg(&self.stream.group)
                    .arg(&self.stream.consumer)
                    .arg(b"0");
                c.arg_id(id)
                    .arg(b"TIME")
                    .arg_uint(time)
                    .arg(b"RETRYCOUNT")
                    .arg_uint(count);
                c.arg(b"FORCE").arg(b"JUSTID");
                self.send(&c);
            }
            // The producers' history has no command (see `export::resp_key`); the settings do.
            Item::StreamIdmp {
                duration_s,
                max_entries,
                producers,
            } => {
                self.lose(Loss::IdmpHistory, producers > 0);
                let settings = self.target.idmp_settings();
                // The servers' defaults (stream-idmp-duration, stream-idmp-maxsize).
                let default = (duration_s, max_entries) == (100, 100);
                self.lose(Loss::IdmpSettings, !settings && !default);
                if !settings {
                    return;
                }
                let mut c = Command::new("XCFGSET");
                c.arg(key)
                    .arg(b"IDMP-DURATION")
                    .arg_uint(duration_s)
                    .arg(b"IDMP-MAXSIZE")
                    .arg_uint(max_entries);
                self.send(&c);
            }
            Item::StreamIdmpTotals { added, duplicates } => {
                self.lose(Loss::IdmpHistory, added > 0 || duplicates > 0);
            }
            _ => {}
        }
    }
}

impl Visitor for NativeWriter<'_> {
    fn item(&mut self, item: Item<'_>) {
        if self.error.is_some() {
            return;
        }
        match (self.kind, item) {
            (_, Item::Str(v)) => v.with_bytes(|b| self.string(b)),
            (Kind::List, Item::Elem(e)) => {
                self.batch_arg("RPUSH").arg_elem(e);
                self.batch_full();
            }
            (_, Item::Elem(e)) => {
                self.batch_arg("SADD").arg_elem(e);
                self.batch_full();
            }
            (_, Item::Scored { member, score }) => {
                let at = self.batch_arg("ZADD").len();
                if score >= self.last_score && (self.ascending.len() + 1 == self.pending) {
                    self.ascending.push(at);
                    self.last_score = score;
                }
                self.cmd.arg_score(score).arg_elem(member);
                self.batch_full();
            }
            (
                _,
                Item::Field {
                    field,
                    value,
                    expire_ms,
                },
            ) => {
                let name = if self.target.multi_field_hset() {
                    "HSET"
                } else {
                    "HMSET"
                };
                self.batch_arg(name).arg_elem(field).arg_elem(value);
                if let Some(ms) = expire_ms {
                    match self.target.field_ttl() {
                        true => self.field_ttls.push((ms, field.to_vec())),
                        false => self.losses.add(Loss::FieldTtl),
                    }
                }
                self.batch_full();
            }
            (Kind::Stream, item) => self.stream_item(item),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Elem;

    fn zadds(scores: &[f64], elements: usize) -> String {
        let mut out = Vec::new();
        let mut w = NativeWriter::new(
            &mut out,
            Release::default(),
            Batch {
                elements,
                bytes: 1 << 20,
            },
        );
        w.begin_key(b"z", Kind::Zset);
        for (i, &score) in scores.iter().enumerate() {
            let member = Elem::Int(i as i64);
            w.item(Item::Scored { member, score });
        }
        w.end_key(None);
        String::from_utf8(out)
            .unwrap()
            .split("*")
            .filter(|c| !c.is_empty())
            .map(|c| {
                let words: Vec<&str> = c.split("\r\n").skip(2).step_by(2).collect();
                words[2..].join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    #[test]
    fn ascending_zadd_batches_are_sent_descending() {
        // Listpack order (ascending) is reversed within each ZADD; members stay with scores.
        assert_eq!(zadds(&[1.0, 2.0, 2.0, 3.5], 10), "3.5 3 2 2 2 1 1 0");
        assert_eq!(zadds(&[1.0, 2.0, 3.0], 2), "2 1 1 0 | 3 2");
        // Any other order (skiplists are saved descending) is left as it is.
        assert_eq!(zadds(&[3.0, 1.0, 2.0], 10), "3 0 1 1 2 2");
        assert_eq!(zadds(&[5.0], 10), "5 0");
    }
}
