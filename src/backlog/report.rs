//! What a capture's stream holds and how fast it grew: one pass over every epoch's commands
//! gathering bytes and commands in total and per second (by arrival time), per database, per
//! command name, per key prefix; the master's own traffic (`ping`, `REPLCONF GETACK`) and
//! `SELECT`/`MULTI`/`EXEC` apart from the writes; the peak rates over sliding windows; the
//! largest commands. Memory stays bounded: prefixes are capped per level, and the windows
//! keep at most their own length of seconds.

use std::ops::{ControlFlow, Range};

use serde::Serialize;

use super::parts::{self, Top};
use super::store::{Capture, Epoch};
use super::stream::{self, StreamCmd, Walked};
use super::window::{Peak, Seconds};
use crate::aof::log::{Kind, Logged};
use crate::aof::slice::{Found, KeyFinder};
use crate::hash::ByName;
use crate::inspect::aof::NameRow;
pub use crate::inspect::aof::PrefixRow;
use crate::inspect::aof_keys::write_rows;
use crate::inspect::names::Names;
use crate::inspect::prefix::{MAX_PER_LEVEL, Prefixes};
use crate::rdb::error::escape;
use crate::resp::parse::Problem;

/// The windows of the peak rates, in seconds.
pub const WINDOWS: [u64; 3] = [1, 10, 60];

/// How the report is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How many of the largest commands to list.
    pub top: usize,
    /// Key prefixes: up to the first `depth` delimiters.
    pub delimiter: u8,
    pub depth: usize,
}

/// A count of commands and their bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Traffic {
    pub count: u64,
    pub bytes: u64,
}

impl Traffic {
    fn merge(&mut self, other: Traffic) {
        self.count += other.count;
        self.bytes += other.bytes;
    }

    /// Counts a command of `bytes`; false (it is not a write).
    fn add(&mut self, bytes: u64) -> bool {
        self.count += 1;
        self.bytes += bytes;
        false
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BacklogReport {
    pub source: String,
    pub epochs: Vec<EpochRow>,
    /// Every command of the stream and its bytes (the stream's length).
    pub commands: u64,
    pub bytes: u64,
    /// The first and last records' arrival (Unix microseconds), and the whole seconds from
    /// the first to the last, both counted.
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
    pub seconds: u64,
    pub commands_per_second: f64,
    pub bytes_per_second: f64,
    /// Clients' writes: commands other than the link's own traffic, SELECT, MULTI and EXEC.
    pub writes: Traffic,
    pub overhead: Overhead,
    pub dbs: Vec<DbRow>,
    pub by_name: Vec<NameRow>,
    pub keys: Keys,
    pub prefixes: Vec<PrefixRow>,
    /// Stream bytes (all of them: what the backlog holds) and write commands over each of
    /// [`WINDOWS`].
    pub peaks: Vec<Peak>,
    /// Largest first.
    pub largest: Vec<Largest>,
}

/// What is not a client's write.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Overhead {
    pub ping: Traffic,
    pub replconf_getack: Traffic,
    pub select: Traffic,
    pub multi: Traffic,
    pub exec: Traffic,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochRow {
    pub epoch: u32,
    pub start: u64,
    /// The last offset read.
    pub end: u64,
    pub commands: u64,
    pub bytes: u64,
    /// Where its stream stopped being readable (`torn`: a kill's torn last record, not damage).
    pub fault: Option<String>,
    pub torn: bool,
    /// Bytes that are not whole commands.
    pub problem: Option<String>,
}

impl EpochRow {
    /// Damage (not a torn tail) found in it.
    pub fn damaged(&self) -> bool {
        self.problem.is_some() || (self.fault.is_some() && !self.torn)
    }
}

/// Writes per database (`db` None: before any SELECT of a capture begun mid-stream).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DbRow {
    pub db: Option<u64>,
    pub writes: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Keys {
    /// Key names written (a command with several keys counts for each), and their shares of
    /// the commands' bytes.
    pub writes: u64,
    pub bytes: u64,
    pub writes_without_keys: u64,
    /// Key writes whose key has no delimiter.
    pub writes_without_prefix: u64,
    /// Most prefixes tracked per level; writes under others are in that level's "(other)".
    pub prefixes_per_level: usize,
    pub writes_outside_cap: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Largest {
    pub bytes: u64,
    /// The stream offset of its first byte, and its epoch.
    pub offset: u64,
    pub epoch: u32,
    pub command: String,
    pub key: Option<String>,
}

/// The walk's state.
struct Tally {
    opts: Options,
    report: BacklogReport,
    names: Names,
    finder: KeyFinder,
    prefixes: Prefixes,
    seconds: Seconds,
    largest: Top,
    /// What the names seen say (up to [`ByName::MAX`] short names; others looked up).
    known: ByName<Named>,
    /// The arrival, bytes and writes of the commands not yet in `seconds`.
    pending: Option<(u64, u64, u64)>,
    /// Index in `report.dbs` of the last database written.
    last_db: usize,
    epoch: u32,
}

/// What a command name says: where its counts are, how its keys are found (when by the name
/// alone), whether it is the link's own traffic (as a data command).
#[derive(Clone, Copy)]
struct Named {
    place: usize,
    keys: Option<Found>,
    link: Link,
}

#[derive(Clone, Copy)]
enum Link {
    No,
    Ping,
    Replconf,
}

/// The report of every epoch of `capture`; reading stops at an epoch's first fault (said in
/// its row) and goes on with the next epoch. Each epoch is read on the machine's cores.
pub fn inspect(capture: &Capture, opts: &Options) -> std::io::Result<BacklogReport> {
    inspect_on(capture, opts, parts::threads())
}

/// [`inspect`] on up to `threads` threads.
pub fn inspect_on(
    capture: &Capture,
    opts: &Options,
    threads: usize,
) -> std::io::Result<BacklogReport> {
    let mut t = Tally::new(opts, false);
    t.report.source = capture.source.clone();
    for epoch in &capture.epochs {
        t.epoch = epoch.meta.epoch;
        let (commands, bytes) = (t.report.commands, t.report.bytes);
        let walked = match threads {
            0 | 1 => t.walk(epoch, 0..epoch.segments.len())?,
            _ => match t.walk_parts(epoch, threads)? {
                Some(walked) => walked,
                // A part's prefixes past the cap: not mergeable as one pass would count them.
                None => return inspect_on(capture, opts, 1),
            },
        };
        let (reach, problem) = (walked.reach, walked.problem);
        t.report.epochs.push(EpochRow {
            epoch: epoch.meta.epoch,
            start: epoch.meta.start,
            end: reach.end,
            commands: t.report.commands - commands,
            bytes: t.report.bytes - bytes,
            torn: reach.fault.as_ref().is_some_and(|f| f.torn),
            fault: reach.fault.map(|f| f.to_string()),
            problem: problem.as_ref().map(describe),
        });
    }
    Ok(t.finish())
}

/// A RESP problem in one line, with its offset.
fn describe(p: &Problem) -> String {
    format!("stream offset {}: {p}", p.offset())
}

impl Tally {
    /// A tally to merge into another one (`part`) or the whole report's.
    fn new(opts: &Options, part: bool) -> Self {
        Tally {
            opts: *opts,
            report: BacklogReport::default(),
            names: Names::default(),
            finder: KeyFinder::default(),
            prefixes: Prefixes::new(opts.delimiter, opts.depth),
            seconds: match part {
                true => Seconds::kept(),
                false => Seconds::new(&WINDOWS),
            },
            largest: Top::new(opts.top),
            known: ByName::default(),
            pending: None,
            last_db: 0,
            epoch: 0,
        }
    }

    /// Counts the commands of `epoch`'s segments `range`.
    fn walk(&mut self, epoch: &Epoch, range: Range<usize>) -> std::io::Result<Walked> {
        let walked = stream::commands_in(epoch, range, None, &mut |c| {
            self.command(&c);
            ControlFlow::Continue(())
        });
        if let Some((t, b, c)) = self.pending.take() {
            self.seconds.add(t, b, c);
        }
        walked
    }

    /// Counts the commands of `epoch` in parts on `threads` threads, merged in order; None
    /// when a part's prefixes cannot be merged exactly.
    fn walk_parts(&mut self, epoch: &Epoch, threads: usize) -> std::io::Result<Option<Walked>> {
        let opts = self.opts;
        let work = |range| {
            let mut part = Tally::new(&opts, true);
            part.epoch = epoch.meta.epoch;
            part.walk(epoch, range).map(|w| (w, part))
        };
        parts::walk(epoch, threads, &work, &mut |part: Tally| {
            let prefixed = self.report.keys.writes > self.report.keys.writes_without_prefix;
            let exact = !(prefixed && part.prefixes.overflowed());
            if exact {
                self.merge(part);
            }
            exact
        })
    }

    /// Takes in the tallies of a part read after what this one counted.
    fn merge(&mut self, part: Tally) {
        let (r, p) = (&mut self.report, part.report);
        (r.commands, r.bytes) = (r.commands + p.commands, r.bytes + p.bytes);
        r.writes.merge(p.writes);
        let (o, po) = (&mut r.overhead, p.overhead);
        o.ping.merge(po.ping);
        o.replconf_getack.merge(po.replconf_getack);
        o.select.merge(po.select);
        o.multi.merge(po.multi);
        o.exec.merge(po.exec);
        let (k, pk) = (&mut r.keys, p.keys);
        (k.writes, k.bytes) = (k.writes + pk.writes, k.bytes + pk.bytes);
        k.writes_without_keys += pk.writes_without_keys;
        k.writes_without_prefix += pk.writes_without_prefix;
        for d in p.dbs {
            let row = self.db_row(d.db);
            (row.writes, row.bytes) = (row.writes + d.writes, row.bytes + d.bytes);
        }
        self.names.merge(part.names);
        self.prefixes.merge(part.prefixes);
        self.seconds.merge(part.seconds);
        self.largest.merge(part.largest);
    }

    fn command(&mut self, c: &StreamCmd<'_, '_>) {
        let logged = c.logged;
        let len = logged.cmd.raw.len() as u64;
        let named = match self.known.get(logged.cmd.name()) {
            Some(named) => named,
            None => self.learn(logged),
        };
        let r = &mut self.report;
        r.commands += 1;
        r.bytes += len;
        let stat = self.names.at(named.place);
        stat.count += 1;
        stat.bytes += len;
        let o = &mut r.overhead;
        let is_write = match logged.kind {
            Kind::Select | Kind::BadSelect => o.select.add(len),
            Kind::Multi | Kind::NestedMulti => o.multi.add(len),
            Kind::Exec | Kind::LoneExec => o.exec.add(len),
            Kind::Data => match named.link {
                Link::Ping => o.ping.add(len),
                Link::Replconf => o.replconf_getack.add(len),
                Link::No => true,
            },
        };
        // The commands of a record share its arrival: counted together.
        match &mut self.pending {
            Some(p) if p.0 == c.time_us => (p.1, p.2) = (p.1 + len, p.2 + u64::from(is_write)),
            p => {
                if let Some((t, b, c)) = p.replace((c.time_us, len, u64::from(is_write))) {
                    self.seconds.add(t, b, c);
                }
            }
        }
        if is_write {
            self.write(c.db, logged, len, named.keys);
        }
    }

    /// What `logged`'s name says, remembered for the next commands of that name.
    fn learn(&mut self, logged: &Logged<'_>) -> Named {
        let cmd = &logged.cmd;
        let link = match stream::is_link_traffic(logged) {
            true if cmd.name().eq_ignore_ascii_case(b"ping") => Link::Ping,
            true => Link::Replconf,
            false => Link::No,
        };
        let named = Named {
            place: self.names.place(cmd.name()),
            keys: self.finder.by_name(cmd),
            link,
        };
        self.known.insert(cmd.name(), named);
        named
    }

    fn write(&mut self, db: Option<u64>, logged: &Logged<'_>, len: u64, keys: Option<Found>) {
        let row = self.db_row(db);
        row.writes += 1;
        row.bytes += len;
        self.report.writes.count += 1;
        self.report.writes.bytes += len;
        self.keys(logged, len, keys);
        self.largest(logged, len);
    }

    /// The row of `db`, made on its first use.
    fn db_row(&mut self, db: Option<u64>) -> &mut DbRow {
        let dbs = &mut self.report.dbs;
        if dbs.get(self.last_db).is_none_or(|d| d.db != db) {
            self.last_db = match dbs.iter().position(|d| d.db == db) {
                Some(i) => i,
                None => {
                    dbs.push(DbRow {
                        db,
                        writes: 0,
                        bytes: 0,
                    });
                    dbs.len() - 1
                }
            };
        }
        &mut dbs[self.last_db]
    }

    fn keys(&mut self, logged: &Logged<'_>, len: u64, keys: Option<Found>) {
        let cmd = &logged.cmd;
        let positions = match keys {
            Some(found) => found.positions(cmd),
            None => self.finder.positions(cmd),
        };
        let n = positions.len() as u64;
        let k = &mut self.report.keys;
        if n == 0 {
            k.writes_without_keys += 1;
            return;
        }
        // The command's bytes are shared among its keys.
        let share = len / n;
        for key in positions.filter_map(|i| cmd.arg(i)) {
            k.writes += 1;
            k.bytes += share;
            if memchr::memchr(self.opts.delimiter, key).is_none() {
                k.writes_without_prefix += 1;
                continue;
            }
            self.prefixes.add_write(logged.db, key, share);
        }
    }

    fn largest(&mut self, logged: &Logged<'_>, len: u64) {
        if !self.largest.admits(len) {
            return;
        }
        let cmd = &logged.cmd;
        let key = self.finder.positions(cmd).next().and_then(|i| cmd.arg(i));
        self.largest.push(Largest {
            bytes: len,
            offset: cmd.offset,
            epoch: self.epoch,
            command: escape(&cmd.name().to_ascii_uppercase()),
            key: key.map(escape),
        });
    }

    fn finish(self) -> BacklogReport {
        let mut r = self.report;
        r.by_name = self.names.rows();
        r.dbs.sort_by_key(|d| d.db);
        r.prefixes = prefix_rows(self.prefixes);
        r.keys.prefixes_per_level = MAX_PER_LEVEL;
        r.keys.writes_outside_cap = r
            .prefixes
            .iter()
            .filter(|p| p.prefix == OTHER)
            .map(|p| p.writes)
            .sum();
        (r.first_us, r.last_us) = (self.seconds.first_us, self.seconds.last_us);
        r.seconds = self.seconds.span();
        if r.seconds > 0 {
            r.commands_per_second = r.commands as f64 / r.seconds as f64;
            r.bytes_per_second = r.bytes as f64 / r.seconds as f64;
        }
        r.peaks = self.seconds.finish();
        r.largest = self.largest.rows();
        r
    }
}

/// The row of a level's prefixes past the cap.
pub const OTHER: &str = "(other)";

/// By level, then writes (most first), each level's "(other)" last.
fn prefix_rows(prefixes: Prefixes) -> Vec<PrefixRow> {
    let mut rows = write_rows(prefixes);
    // Stable: within a level the writes order stays.
    rows.sort_by_key(|p| (p.level, p.prefix == OTHER));
    rows
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
