//! A slice of an AOF: which commands are kept (by database, key, command name, offset and
//! `#TS` time), and how the kept ones make a log of their own: the slice starts with the
//! `SELECT` of the database its first command runs in and selects again whenever the database
//! changes (the source's own `SELECT`s are not copied), a transaction is kept as `MULTI`, its
//! kept commands, `EXEC`, and a transaction none of whose commands is kept is left out.
//!
//! Offsets: a multi-part AOF is one log of its files in load order, and a global offset counts
//! the bytes of the files before (base first, including an RDB base or preamble). A single
//! file's global offsets are its own. `FILE:OFFSET` names an offset inside one file.

use std::collections::HashMap;
use std::iter::StepBy;
use std::ops::Range;

use crate::hash::{ByName, ShortBuild};
use crate::release::Release;

use super::log::{Kind, Log, Logged};
use super::table::{Lookup, Spec, Table};
use crate::filter::Filter;
use crate::resp::parse::{Cmd, Item, Slice};

/// Which commands a slice keeps. A command is kept when it passes every selection given.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Databases (`--db`) and key names (`--key`, `--key-regex`); its types are not used.
    pub filter: Filter,
    /// Command names (`--command`), any case; MULTI, EXEC and SELECT are the slice's own.
    pub commands: Vec<String>,
    /// Commands that start at or after this global offset.
    pub from_offset: Option<u64>,
    /// Commands that start before this global offset.
    pub to_offset: Option<u64>,
    /// Commands whose time (the last `#TS:` before them) is at or after this (unix seconds).
    pub since: Option<u64>,
    /// Commands whose time is at or before this.
    pub until: Option<u64>,
}

impl Selection {
    /// Whether keys are selected by name: then a command is kept only if one of its keys is.
    pub fn by_key(&self) -> bool {
        !self.filter.globs.is_empty() || self.filter.regex.is_some()
    }

    /// Whether an RDB base (or preamble) goes along: it is the state the log starts from, so
    /// only when the slice starts at the log's start (no `--since`, no `--from-offset` past
    /// 0, no `--to-offset 0`) and keeps every command name; its keys are then selected by
    /// `filter`.
    pub fn keeps_base(&self) -> bool {
        self.since.is_none()
            && self.from_offset.unwrap_or(0) == 0
            && self.to_offset != Some(0)
            && self.commands.is_empty()
    }

    /// Whether a command at global offset `at` is kept, its keys being `keys`.
    pub fn keeps<'k>(
        &self,
        at: u64,
        logged: &Logged<'_>,
        mut keys: impl Iterator<Item = &'k [u8]>,
    ) -> bool {
        if self.from_offset.is_some_and(|f| at < f) || self.to_offset.is_some_and(|t| at >= t) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(ts) = logged.ts else { return false };
            if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts > u) {
                return false;
            }
        }
        if !self.filter.db(logged.db) {
            return false;
        }
        let name = logged.cmd.name();
        if !self.commands.is_empty()
            && !self
                .commands
                .iter()
                .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
        {
            return false;
        }
        !self.by_key() || keys.any(|k| self.filter.key_name(k))
    }

    /// [`Selection::keeps`], the keys found by `finder` (looked up only when they select).
    pub fn keeps_logged(&self, finder: &mut KeyFinder, at: u64, logged: &Logged<'_>) -> bool {
        let positions = match self.by_key() {
            true => finder.positions(&logged.cmd),
            false => (1..1).step_by(1),
        };
        self.keeps(at, logged, keys_at(&logged.cmd, positions))
    }

    /// Whether commands are selected by time (then a walk needs [`time_at`]).
    pub fn by_time(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
}

/// The time a walk of the log from global offset `from` starts with: that of the last `#TS:`
/// before it, or, before the log's first annotation, one second before that one (commands
/// before the first `#TS` were written before its second: at the start of an incr file
/// written in the same second as the last annotation of a file since rewritten away).
/// `parts`: each file's bytes and where its commands start (after an RDB base or preamble).
pub fn time_at(parts: &[(&[u8], usize)], from: u64) -> Option<u64> {
    let before = scan_time(parts, |at, _| at >= from);
    before.or_else(|| first_time(parts).map(|t| t.saturating_sub(1)))
}

/// The time of the log's first `#TS:` annotation, found by reading commands up to it (so the
/// whole log when it has none).
pub fn first_time(parts: &[(&[u8], usize)]) -> Option<u64> {
    scan_time(parts, |_, ts| ts.is_some())
}

/// Reads the log's commands until `stop(global offset of a command, time so far)`; the time
/// then.
fn scan_time(parts: &[(&[u8], usize)], stop: impl Fn(u64, Option<u64>) -> bool) -> Option<u64> {
    let (mut base, mut ts) = (0u64, None);
    for &(data, start) in parts {
        let mut log = Log::new(data, start).with_time(ts);
        while let Some(Ok(logged)) = log.next() {
            let at = base + logged.cmd.offset;
            if stop(at, log.time()) {
                return log.time();
            }
        }
        // The file's end (an annotation may be its last line).
        base += data.len() as u64;
        if stop(base, log.time()) {
            return log.time();
        }
        ts = log.time();
    }
    None
}

/// The keys of a command, by the command tables (Redis's newest, then Valkey's newest);
/// EVAL, EVALSHA and FCALL (and their `_RO` forms) by their key count.
pub struct KeyFinder {
    tables: [Table; 2],
    cache: HashMap<Vec<u8>, Option<Spec>, ShortBuild>,
    /// What the cache and [`COUNTED`] say of short names, found without hashing.
    fast: ByName<Found>,
}

/// How a name's keys are found.
#[derive(Debug, Clone, Copy)]
pub enum Found {
    /// After a key count at argument 2.
    Counted,
    Spec(Option<Spec>),
}

impl Default for KeyFinder {
    fn default() -> Self {
        KeyFinder {
            tables: [
                Table::for_release(Release::redis(99, 0)),
                Table::for_release(Release::valkey(99, 0)),
            ],
            cache: HashMap::with_hasher(ShortBuild::default()),
            fast: ByName::default(),
        }
    }
}

/// The names whose keys follow a key count at argument 2.
const COUNTED: [&[u8]; 6] = [
    b"eval",
    b"evalsha",
    b"eval_ro",
    b"evalsha_ro",
    b"fcall",
    b"fcall_ro",
];

impl KeyFinder {
    /// What the tables say of `cmd` (None for a command no release knows).
    pub fn spec(&mut self, cmd: &Cmd<'_>) -> Option<Spec> {
        let name = cmd.name();
        if let Some(Found::Spec(spec)) = self.fast.get(name) {
            return spec;
        }
        if let Some(spec) = self.cache.get(name) {
            return *spec;
        }
        let spec = self.tables.iter().find_map(|t| match t.lookup(cmd.args()) {
            Lookup::Known(spec) => Some(spec),
            _ => None,
        });
        if !self.tables.iter().any(|t| t.has_subcommands(name)) && name.len() <= 64 {
            self.cache.insert(name.to_vec(), spec);
            if !counted(name) {
                self.fast.insert(name, Found::Spec(spec));
            }
        }
        spec
    }

    /// The positions of `cmd`'s keys among its arguments.
    pub fn positions(&mut self, cmd: &Cmd<'_>) -> StepBy<Range<usize>> {
        let name = cmd.name();
        let found = match self.fast.get(name) {
            Some(found) => found,
            None if counted(name) => {
                self.fast.insert(name, Found::Counted);
                Found::Counted
            }
            None => Found::Spec(self.spec(cmd)),
        };
        found.positions(cmd)
    }

    /// How the keys of commands named as `cmd` is are found, when that depends on the name
    /// alone (a caller may then keep it: see [`Found::positions`]).
    pub fn by_name(&mut self, cmd: &Cmd<'_>) -> Option<Found> {
        let _ = self.positions(cmd);
        self.fast.get(cmd.name())
    }
}

impl Found {
    /// The positions of `cmd`'s keys among its arguments.
    pub fn positions(self, cmd: &Cmd<'_>) -> StepBy<Range<usize>> {
        if let Found::Counted = self {
            let n = cmd
                .arg(2)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            return (3..(3 + n).min(cmd.argc())).step_by(1);
        }
        match self {
            Found::Spec(Some(spec)) => spec.keys(cmd.argc()),
            _ => (1..1).step_by(1),
        }
    }
}

/// Whether `name`'s keys follow a key count.
fn counted(name: &[u8]) -> bool {
    COUNTED.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// The keys at `positions` of `cmd`.
pub fn keys_at<'c>(
    cmd: &'c Cmd<'c>,
    positions: StepBy<Range<usize>>,
) -> impl Iterator<Item = &'c [u8]> + 'c {
    positions.filter_map(|i| cmd.arg(i))
}

/// Where a command is: its file (index in load order), offset in it, and global offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub part: usize,
    pub offset: u64,
    pub global: u64,
}

/// What receives a slice, in order.
pub trait Sink {
    type Error;
    /// From now on commands run in `db`.
    fn select(&mut self, db: u64) -> Result<(), Self::Error>;
    /// A kept command (or the MULTI and EXEC around kept ones), with its database, time and
    /// place in the source.
    fn command(
        &mut self,
        cmd: &Cmd<'_>,
        db: u64,
        ts: Option<u64>,
        at: Pos,
    ) -> Result<(), Self::Error>;
}

/// A command held until its transaction's EXEC.
#[derive(Debug, Clone, Copy)]
struct Held {
    at: Pos,
    len: usize,
    db: u64,
    ts: Option<u64>,
}

/// Turns the commands of a log, each with whether it is kept, into a slice written to a
/// [`Sink`].
#[derive(Debug, Default)]
pub struct Slicer {
    /// The database the output is in, once it selected one.
    db: Option<u64>,
    /// The open transaction: its MULTI, and the kept commands in it.
    txn: Option<(Held, Vec<Held>)>,
    held: Vec<Held>,
    /// Transactions left open at the end of a file (not applied by the server either).
    pub open_at_end: u64,
}

impl Slicer {
    /// One command of the log. `data` is its file's bytes (a held transaction is read back
    /// from them at its EXEC); `keep` says whether a data command is kept. SELECT is followed
    /// through `logged.db`; a nested MULTI or an EXEC without MULTI is the caller's to refuse.
    pub fn feed<S: Sink>(
        &mut self,
        data: &[u8],
        logged: &Logged<'_>,
        at: Pos,
        keep: bool,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let held = Held {
            at,
            len: logged.cmd.raw.len(),
            db: logged.db,
            ts: logged.ts,
        };
        match logged.kind {
            Kind::Multi => {
                let mut kept = std::mem::take(&mut self.held);
                kept.clear();
                self.txn = Some((held, kept));
            }
            Kind::Exec => {
                if let Some((multi, kept)) = self.txn.take() {
                    if !kept.is_empty() {
                        self.select(kept[0].db, sink)?;
                        self.replay(data, multi, sink)?;
                        for h in &kept {
                            self.select(h.db, sink)?;
                            self.replay(data, *h, sink)?;
                        }
                        sink.command(&logged.cmd, logged.db, logged.ts, at)?;
                    }
                    self.held = kept;
                }
            }
            Kind::Data if keep => match self.txn.as_mut() {
                Some((_, kept)) => kept.push(held),
                None => {
                    self.select(logged.db, sink)?;
                    sink.command(&logged.cmd, logged.db, logged.ts, at)?;
                }
            },
            _ => {}
        }
        Ok(())
    }

    /// The end of a file: a transaction still open is dropped (the server discards it too).
    pub fn end_part(&mut self) {
        if self.txn.take().is_some() {
            self.open_at_end += 1;
        }
    }

    fn select<S: Sink>(&mut self, db: u64, sink: &mut S) -> Result<(), S::Error> {
        if self.db != Some(db) {
            sink.select(db)?;
            self.db = Some(db);
        }
        Ok(())
    }

    /// A held command, read again from its file's bytes.
    fn replay<S: Sink>(&mut self, data: &[u8], h: Held, sink: &mut S) -> Result<(), S::Error> {
        let start = h.at.offset as usize;
        let mut items = Slice::new(&data[start..start + h.len], h.at.offset);
        if let Some(Ok(Item::Command(cmd))) = items.next_item() {
            sink.command(&cmd, h.db, h.ts, h.at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::text as resp;

    /// Writes the slice as text lines: `SELECT n` and the commands' arguments.
    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Sink for Lines {
        type Error = ();
        fn select(&mut self, db: u64) -> Result<(), ()> {
            self.0.push(format!("SELECT {db}"));
            Ok(())
        }
        fn command(&mut self, cmd: &Cmd<'_>, _: u64, _: Option<u64>, _: Pos) -> Result<(), ()> {
            let args: Vec<_> = cmd.args().map(String::from_utf8_lossy).collect();
            self.0.push(args.join(" "));
            Ok(())
        }
    }

    fn slice(log: &str, sel: &Selection) -> Vec<String> {
        let data = log.as_bytes();
        let mut walk = Log::new(data, 0);
        let mut finder = KeyFinder::default();
        let mut slicer = Slicer::default();
        let mut out = Lines::default();
        while let Some(item) = walk.next() {
            let logged = item.unwrap();
            let at = Pos {
                part: 0,
                offset: logged.cmd.offset,
                global: logged.cmd.offset,
            };
            let positions = finder.positions(&logged.cmd);
            let keep = sel.keeps(at.global, &logged, keys_at(&logged.cmd, positions));
            slicer.feed(data, &logged, at, keep, &mut out).unwrap();
        }
        slicer.end_part();
        out.0
    }

    fn log() -> String {
        [
            "#TS:100\r\n".to_string(),
            resp(&["SELECT", "2"]),
            resp(&["SET", "a:1", "x"]),
            resp(&["MULTI"]),
            resp(&["INCR", "b:1"]),
            resp(&["SET", "a:2", "y"]),
            resp(&["EXEC"]),
            "#TS:200\r\n".to_string(),
            resp(&["SELECT", "0"]),
            resp(&["EVAL", "return 1", "2", "b:2", "a:3", "arg"]),
            resp(&["MULTI"]),
            resp(&["DEL", "b:3"]),
            resp(&["EXEC"]),
            resp(&["FLUSHALL"]),
            resp(&["MULTI"]),
        ]
        .concat()
    }

    #[test]
    fn everything_with_selects_reestablished() {
        let all = slice(&log(), &Selection::default());
        assert_eq!(
            all,
            [
                "SELECT 2",
                "SET a:1 x",
                "MULTI",
                "INCR b:1",
                "SET a:2 y",
                "EXEC",
                "SELECT 0",
                "EVAL return 1 2 b:2 a:3 arg",
                "MULTI",
                "DEL b:3",
                "EXEC",
                "FLUSHALL"
            ]
        );
    }

    #[test]
    fn keys_keep_their_commands_and_empty_transactions_go() {
        let sel = Selection {
            filter: Filter {
                globs: vec![b"a:*".to_vec()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            slice(&log(), &sel),
            [
                "SELECT 2",
                "SET a:1 x",
                "MULTI",
                "SET a:2 y",
                "EXEC",
                "SELECT 0",
                "EVAL return 1 2 b:2 a:3 arg"
            ]
        );
    }

    #[test]
    fn by_time_offset_db_and_name() {
        let log = log();
        let since = Selection {
            since: Some(150),
            commands: vec!["del".into(), "FLUSHALL".into()],
            ..Default::default()
        };
        assert_eq!(
            slice(&log, &since),
            ["SELECT 0", "MULTI", "DEL b:3", "EXEC", "FLUSHALL"]
        );
        let until = Selection {
            until: Some(150),
            filter: Filter {
                dbs: vec![2],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(slice(&log, &until).len(), 6);
        let from = log.find("*2\r\n$4\r\nINCR").unwrap() as u64;
        let offsets = Selection {
            from_offset: Some(from),
            to_offset: Some(log.find("*1\r\n$4\r\nEXEC").unwrap() as u64 + 1),
            ..Default::default()
        };
        assert_eq!(
            slice(&log, &offsets),
            ["SELECT 2", "MULTI", "INCR b:1", "SET a:2 y", "EXEC"]
        );
    }

    /// Where a resumed walk starts: the last `#TS:` before the offset, carried across files;
    /// before the first, one second before it.
    #[test]
    fn time_at_an_offset() {
        let first = [resp(&["SET", "x", "1"]), log()].concat();
        let second = [resp(&["INCR", "n"]), "#TS:300\r\n".into()].concat();
        let parts = [(first.as_bytes(), 0), (second.as_bytes(), 0)];
        let at = |needle: &str| first.find(needle).unwrap() as u64;
        assert_eq!(time_at(&parts, 0), Some(99));
        assert_eq!(
            time_at(&parts, at("*3\r\n$3\r\nSET\r\n$3\r\na:1")),
            Some(100)
        );
        assert_eq!(time_at(&parts, at("*6\r\n$4\r\nEVAL")), Some(200));
        assert_eq!(time_at(&parts, first.len() as u64), Some(200));
        assert_eq!(time_at(&parts[1..], 0), Some(299));
    }
}
