//! What an AOF holds and what the write load was: commands per name, writes per database,
//! the keys written most (by count and by bytes, with a frequent-items sketch: bounded memory,
//! each count over by at most its stated bound), key prefixes, the time range and writes per
//! minute from `#TS:` annotations, transactions, the largest commands, expiry commands, and
//! the RDB base's (or preamble's) own inspect report. One pass over the mapped files; the RDB
//! part is inspected on its own thread while the commands are read, a large log's commands by
//! two walks (see [`super::aof_walk`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use super::aof_keys::Keys;
use super::names::Names;
use super::{Options, Report};
use crate::aof::input::{AofInput, Error, OpenPart, Resume};
use crate::aof::log::{Kind, Logged};
use crate::aof::slice::{KeyFinder, Pos};
use crate::rdb::SliceInput;
use crate::rdb::error::escape;

/// Counters of the heavy-hitters sketches.
pub const SKETCH_COUNTERS: usize = 10_000;
/// Most minutes listed in `per_minute`.
pub const MAX_MINUTES: usize = 10_080;

#[derive(Debug, Default, Clone, Serialize)]
pub struct AofReport {
    /// What the input is (`AOF: appendonlydir with manifest, base (RDB) + 2 incr files`).
    pub input: String,
    pub files: Vec<FileRow>,
    /// Commands read (SELECT, MULTI and EXEC included) and their bytes.
    pub commands: u64,
    pub bytes: u64,
    pub by_name: Vec<NameRow>,
    pub dbs: BTreeMap<u64, DbRow>,
    pub transactions: Transactions,
    /// Commands that set or change a TTL, by form.
    pub expiry: BTreeMap<&'static str, u64>,
    pub time: TimeRange,
    pub keys: KeysTouched,
    /// Key prefixes of the keys written: writes and bytes.
    pub prefixes: Vec<PrefixRow>,
    /// The largest commands, largest first.
    pub largest: Vec<Largest>,
    /// The RDB base or preamble, as `inspect` reports an RDB file.
    pub base: Option<Report>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct FileRow {
    pub name: String,
    pub bytes: u64,
    /// Its first byte's global offset.
    pub start: u64,
    /// Bytes of RDB (base or preamble) at its start.
    pub rdb_bytes: u64,
    pub commands: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct NameRow {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DbRow {
    /// Commands other than SELECT, MULTI and EXEC run in this database.
    pub writes: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Transactions {
    pub multi: u64,
    pub exec: u64,
    /// Commands inside MULTI … EXEC.
    pub commands: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TimeRange {
    pub first: Option<u64>,
    pub last: Option<u64>,
    /// Writes with a time (after a `#TS:`) and without.
    pub writes_with_time: u64,
    pub writes_without_time: u64,
    /// Writes per minute (the minute's start in unix seconds), at most MAX_MINUTES of them
    /// (the earliest); the writes of later minutes are in `writes_in_minutes_not_listed`.
    pub per_minute: Vec<Minute>,
    pub writes_in_minutes_not_listed: u64,
    /// The busiest minutes, busiest first.
    pub busiest: Vec<Minute>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Minute {
    pub minute: u64,
    pub writes: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct KeysTouched {
    /// Key names written (a command with several keys counts for each).
    pub writes: u64,
    pub bytes: u64,
    /// Writes that name no key (FLUSHALL, FUNCTION LOAD, an EVAL without keys…).
    pub commands_without_keys: u64,
    /// Counters in each sketch; a count in the top lists is over the true one by at most its
    /// `over_by_at_most`, itself at most the bound (0 while no more than three times as many keys
    /// as counters were seen).
    pub sketch_counters: usize,
    pub writes_bound: u64,
    pub bytes_bound: u64,
    pub top_by_writes: Vec<HeavyRow>,
    pub top_by_bytes: Vec<HeavyRow>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct HeavyRow {
    pub db: u64,
    pub key: String,
    pub count: u64,
    pub over_by_at_most: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PrefixRow {
    pub level: usize,
    pub prefix: String,
    pub writes: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Largest {
    pub bytes: u64,
    pub offset: u64,
    pub file: String,
    pub file_offset: u64,
    pub command: String,
    pub key: Option<String>,
}

/// A walk's state over the commands.
pub(super) struct Tally {
    pub(super) report: AofReport,
    names: Names,
    finder: KeyFinder,
    /// The keys written, counted.
    pub(super) keys: Keys,
    minutes: BTreeMap<u64, u64>,
    /// The minute of the last writes and how many, not yet in `minutes` (writes come in runs
    /// of one minute: a map lookup per run, not per write).
    minute: Option<(u64, u64)>,
    largest: BinaryHeap<Reverse<Largest>>,
    top: usize,
    /// A SELECT of [`UNKNOWN_DB`] was read.
    pub(super) clash: bool,
}

/// The database a walk from the middle of a file counts writes in until the file's next
/// SELECT: the one they run in is known when the walk before it gets there.
pub(super) const UNKNOWN_DB: u64 = u64::MAX;

/// Inspects the AOF `input`: the commands on this thread (and a second, for a large log), and
/// the RDB base (or preamble), if any, on another. A problem in the input comes with the
/// report of what came before it; failing to read a file is an error.
pub fn inspect(input: &AofInput, opts: &Options) -> Result<(AofReport, Option<Error>), Error> {
    let base = input.parts.iter().find(|p| p.rdb);
    let (base, (walked, tally)) = std::thread::scope(|s| {
        let base = base.map(|part| {
            s.spawn(move || {
                let data = &part.data()[..part.resp_start];
                let mut release = |pos: u64| part.map.release(0, pos as usize);
                super::inspect(SliceInput::new(data), opts, |_| {}, &mut release).map_err(
                    |source| Error::Rdb {
                        path: part.path.clone(),
                        what: "base",
                        source: Box::new(source),
                    },
                )
            })
        });
        let walked = super::aof_walk::walk(input, opts);
        let base = base.map(|h| h.join().expect("the base's inspection panicked"));
        (base, walked)
    });
    let mut problem = match walked {
        Err(e) if !e.is_problem() => return Err(e),
        walked => walked.err(),
    };
    let mut report = tally.finish(opts.top);
    match base {
        Some(Ok(b)) => report.base = Some(b),
        Some(Err(e)) => problem = problem.or(Some(e)),
        None => {}
    }
    Ok((report, problem))
}

impl Tally {
    pub(super) fn new(input: &AofInput, opts: &Options) -> Tally {
        Tally {
            report: AofReport {
                input: input.describe(),
                ..Default::default()
            },
            names: Names::default(),
            finder: KeyFinder::default(),
            keys: Keys::new(opts.delimiter, opts.depth),
            minutes: BTreeMap::new(),
            minute: None,
            largest: BinaryHeap::new(),
            top: opts.top,
            clash: false,
        }
    }

    /// Walks the files `parts` from their first command, the first with the time `ts`; the
    /// time at the end.
    pub(super) fn walk_parts(
        &mut self,
        input: &AofInput,
        parts: std::ops::Range<usize>,
        mut ts: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        for i in parts {
            let at = input.parts[i].resp_start;
            ts = self.walk_part(input, i, Resume { at, db: 0, ts }, None)?.ts;
        }
        Ok(ts)
    }

    /// Walks file `i` from `from`, to its end or `until` (see [`AofInput::walk_from`]).
    pub(super) fn walk_part(
        &mut self,
        input: &AofInput,
        i: usize,
        from: Resume,
        until: Option<usize>,
    ) -> Result<Resume, Error> {
        let part = &input.parts[i];
        let before = self.report.commands;
        let walked = input.walk_from(i, from, until, |logged, at| {
            self.command(logged, at, &part.name);
            Ok(())
        });
        let commands = self.report.commands - before;
        self.row(part).commands += commands;
        walked
    }

    /// The row of the file `part`, the last one.
    fn row(&mut self, part: &OpenPart) -> &mut FileRow {
        let files = &mut self.report.files;
        if files.last().is_none_or(|r| r.name != part.name) {
            files.push(FileRow {
                name: part.name.clone(),
                bytes: part.data().len() as u64,
                start: part.start,
                rdb_bytes: part.resp_start as u64,
                commands: 0,
            });
        }
        files.last_mut().expect("a row was pushed")
    }

    fn command(&mut self, logged: &Logged<'_>, at: Pos, file: &str) {
        let cmd = &logged.cmd;
        let len = cmd.raw.len() as u64;
        let r = &mut self.report;
        r.commands += 1;
        r.bytes += len;
        let stat = self.names.get(cmd.name());
        stat.count += 1;
        stat.bytes += len;
        let expiry = stat.expiry(cmd);
        match logged.kind {
            Kind::Multi => r.transactions.multi += 1,
            Kind::Exec => r.transactions.exec += 1,
            Kind::Select => self.clash |= logged.db == UNKNOWN_DB,
            _ => {}
        }
        if logged.kind != Kind::Data {
            return;
        }
        r.transactions.commands += u64::from(logged.multi.is_some());
        let db = r.dbs.entry(logged.db).or_default();
        db.writes += 1;
        db.bytes += len;
        if let Some(e) = expiry {
            *r.expiry.entry(e).or_default() += 1;
        }
        self.time(logged.ts);
        self.keys(logged, len);
        self.largest(logged, at, file);
    }

    fn time(&mut self, ts: Option<u64>) {
        let t = &mut self.report.time;
        let Some(ts) = ts else {
            t.writes_without_time += 1;
            return;
        };
        t.writes_with_time += 1;
        t.first = Some(t.first.map_or(ts, |f| f.min(ts)));
        t.last = Some(t.last.map_or(ts, |l| l.max(ts)));
        let minute = ts - ts % 60;
        match &mut self.minute {
            Some((m, n)) if *m == minute => *n += 1,
            _ => {
                self.flush_minute();
                self.minute = Some((minute, 1));
            }
        }
    }

    /// The writes of the last minute into `minutes`.
    pub(super) fn flush_minute(&mut self) {
        if let Some((minute, n)) = self.minute.take() {
            self.add_minute(minute, n);
        }
    }

    /// `n` writes of `minute` into `minutes`, or into those not listed when it is not there
    /// and full.
    pub(super) fn add_minute(&mut self, minute: u64, n: u64) {
        let full = self.minutes.len() >= MAX_MINUTES;
        match self.minutes.get_mut(&minute) {
            Some(count) => *count += n,
            None if full => self.report.time.writes_in_minutes_not_listed += n,
            None => {
                self.minutes.insert(minute, n);
            }
        }
    }

    fn keys(&mut self, logged: &Logged<'_>, len: u64) {
        let cmd = &logged.cmd;
        let positions = self.finder.positions(cmd);
        let n = positions.len() as u64;
        if n == 0 {
            self.report.keys.commands_without_keys += 1;
            return;
        }
        // The command's bytes are shared among its keys.
        let share = if n == 1 { len } else { len / n };
        for i in positions {
            let Some(key) = cmd.arg(i) else { continue };
            self.report.keys.writes += 1;
            self.report.keys.bytes += share;
            self.keys.add(logged.db, key, share);
        }
    }

    fn largest(&mut self, logged: &Logged<'_>, at: Pos, file: &str) {
        let len = logged.cmd.raw.len() as u64;
        if !self.room(len) {
            return;
        }
        let cmd = &logged.cmd;
        let mut positions = self.finder.positions(cmd);
        let key = positions.next().and_then(|i| cmd.arg(i)).map(escape);
        self.largest.push(Reverse(Largest {
            bytes: len,
            offset: at.global,
            file: file.to_string(),
            file_offset: at.offset,
            command: String::from_utf8_lossy(cmd.name()).to_uppercase(),
            key,
        }));
    }

    /// Whether a command of `len` bytes is among the largest so far: if so, room is made.
    pub(super) fn room(&mut self, len: u64) -> bool {
        if self.top == 0 {
            return false;
        }
        if self.largest.len() == self.top {
            match self.largest.peek() {
                Some(Reverse(min)) if min.bytes >= len => return false,
                _ => {
                    self.largest.pop();
                }
            }
        }
        true
    }

    /// Takes in the counts of `later`, a walk of the log from `at`, where this one ended.
    pub(super) fn merge(&mut self, mut later: Tally, at: Resume) {
        self.flush_minute();
        later.flush_minute();
        let (r, l) = (&mut self.report, later.report);
        r.commands += l.commands;
        r.bytes += l.bytes;
        let mut files = l.files.into_iter().peekable();
        if let (Some(last), Some(next)) = (r.files.last_mut(), files.peek())
            && last.name == next.name
        {
            last.commands += next.commands;
            files.next();
        }
        r.files.extend(files);
        for (db, row) in l.dbs {
            let db = r.dbs.entry(if db == UNKNOWN_DB { at.db } else { db });
            let db = db.or_default();
            db.writes += row.writes;
            db.bytes += row.bytes;
        }
        let t = &mut r.transactions;
        t.multi += l.transactions.multi;
        t.exec += l.transactions.exec;
        t.commands += l.transactions.commands;
        for (form, n) in l.expiry {
            *r.expiry.entry(form).or_default() += n;
        }
        let k = &mut r.keys;
        k.writes += l.keys.writes;
        k.bytes += l.keys.bytes;
        k.commands_without_keys += l.keys.commands_without_keys;
        self.merge_time(l.time, at.ts);
        for (minute, n) in later.minutes {
            self.add_minute(minute, n);
        }
        self.merge_largest(later.largest);
        self.names.merge(later.names);
        self.keys.merge(later.keys, UNKNOWN_DB, at.db);
    }

    /// Takes in the times of a later walk, whose writes without a time have `ts`, the time
    /// where it started.
    fn merge_time(&mut self, l: TimeRange, ts: Option<u64>) {
        let t = &mut self.report.time;
        let inherited = ts.filter(|_| l.writes_without_time > 0);
        for at in [l.first, l.last, inherited].into_iter().flatten() {
            t.first = Some(t.first.map_or(at, |f| f.min(at)));
            t.last = Some(t.last.map_or(at, |v| v.max(at)));
        }
        t.writes_with_time += l.writes_with_time;
        t.writes_in_minutes_not_listed += l.writes_in_minutes_not_listed;
        match ts {
            Some(ts) => {
                t.writes_with_time += l.writes_without_time;
                if l.writes_without_time > 0 {
                    self.add_minute(ts - ts % 60, l.writes_without_time);
                }
            }
            None => t.writes_without_time += l.writes_without_time,
        }
    }

    /// Takes in `later`'s largest commands, in the order of the log.
    pub(super) fn merge_largest(&mut self, later: BinaryHeap<Reverse<Largest>>) {
        let mut later: Vec<Largest> = later.into_iter().map(|Reverse(l)| l).collect();
        later.sort_by_key(|l| l.offset);
        for l in later {
            if self.room(l.bytes) {
                self.largest.push(Reverse(l));
            }
        }
    }

    /// The report.
    pub(super) fn finish(mut self, top: usize) -> AofReport {
        self.flush_minute();
        self.report.prefixes = self.keys.finish(top, &mut self.report.keys);
        let r = &mut self.report;
        r.by_name = self.names.rows();
        r.time.per_minute = self
            .minutes
            .into_iter()
            .map(|(minute, writes)| Minute { minute, writes })
            .collect();
        let mut busiest = r.time.per_minute.clone();
        busiest.sort_by_key(|m| (Reverse(m.writes), m.minute));
        busiest.truncate(top.max(1));
        r.time.busiest = busiest;
        let mut largest: Vec<Largest> = self.largest.into_iter().map(|Reverse(l)| l).collect();
        largest.sort_by_key(|l| (Reverse(l.bytes), l.offset));
        r.largest = largest;
        self.report
    }
}
