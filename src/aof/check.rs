//! Checking the commands of one AOF file as the server loads them: RESP framing, `MULTI`/`EXEC`
//! balance, `SELECT` arguments, command names and arities of a release; where the file is good
//! up to (as `redis-check-aof` says it, see [`super::emulate`]) and whether what follows is a
//! truncated tail (what a crash leaves, loaded with `aof-load-truncated yes`) or damage.
//!
//! One pass over the mapped bytes: the parser hands out ranges, nothing is allocated per
//! command.

use serde::Serialize;

use super::emulate::{self, State};
use super::table::{Lookup, Remembered, Table};
use crate::rdb::Severity;
use crate::rdb::error::escape;
use crate::release::Release;
use crate::resp::parse::{Item, Problem, Slice};

/// The commands a file is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Commands {
    /// Those of one release.
    Release(Table),
    /// Those of any release the table knows (no release named).
    Any(Table),
}

impl Commands {
    /// The commands of `valkey major.minor`, or of any release.
    pub fn new(release: Option<Release>) -> Commands {
        match release {
            Some(r) => Commands::Release(Table::for_release(r)),
            None => Commands::Any(Table::for_release(Release::redis(u16::MAX, 0))),
        }
    }

    /// What the report says the commands were checked against.
    pub fn describe(&self) -> String {
        match self {
            Commands::Release(t) if t.newer => format!("{} (the newest known)", t.release),
            Commands::Release(t) => t.release.to_string(),
            Commands::Any(_) => "any release".to_string(),
        }
    }
}

/// How the commands of a file end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// Every command whole, no transaction open.
    Complete,
    /// The file ends inside a command: what a crash leaves.
    Truncated,
    /// The file ends inside `MULTI … EXEC`: the server drops the open transaction.
    OpenMulti,
    /// Bytes that are not what the server reads, or unbalanced `MULTI`/`EXEC`.
    Damaged,
}

impl Ending {
    /// A tail the server cuts off with `aof-load-truncated yes` (in the last file).
    pub fn truncated_tail(self) -> bool {
        matches!(self, Ending::Truncated | Ending::OpenMulti)
    }
}

/// One thing found, at a byte offset of the file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub offset: u64,
    pub message: String,
}

/// What checking one file's commands found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub commands: u64,
    pub ending: Ending,
    /// Where a repaired copy ends: after the last whole command outside a transaction.
    pub cut: u64,
    /// `redis-check-aof`'s `ok_up_to` and line count (from 0 for this file) where it stops.
    pub ok_up_to: u64,
    pub lines: u64,
    pub findings: Vec<Finding>,
    /// Findings left out past [`MAX_FINDINGS`].
    pub more: u64,
}

/// At most this many findings are kept per file; the rest are counted.
pub const MAX_FINDINGS: usize = 100;

/// Checks the commands of `data[start..]` (after any RDB preamble) against `commands`.
pub fn check(data: &[u8], start: usize, commands: Commands) -> Checked {
    let mut walk = Walk::new(commands, start, &|_, _| {});
    let step = walk.run(data, start, None);
    walk.finish(data, step)
}

/// Told now and then of a range of bytes the walk has passed (a mapped file releases its
/// pages, so that memory stays bounded).
pub type ReleasePages<'r> = &'r (dyn Fn(usize, usize) + Sync);

/// Bytes passed between two calls of a [`ReleasePages`].
const RELEASE_EVERY: usize = 32 << 20;

/// Below this many bytes of commands a file is checked on one thread.
pub const SPLIT_MIN: usize = 64 << 20;

/// [`check`], on two threads when there are cores for it and `data[start..]` holds at least
/// `min` bytes: the second half from a command boundary found near its middle, while the
/// first half is read up to it. If the first thread does not land on that boundary (it was
/// inside an argument) or lands inside a transaction, it reads on alone.
pub fn check_split(
    data: &[u8],
    start: usize,
    commands: Commands,
    min: usize,
    release: ReleasePages<'_>,
) -> Checked {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let len = data.len().saturating_sub(start);
    let boundary = match cores >= 2 && len >= min.max(2) {
        true => boundary_after(data, start + len / 2),
        false => None,
    };
    let Some(boundary) = boundary else {
        let mut walk = Walk::new(commands, start, release);
        let step = walk.run(data, start, None);
        return walk.finish(data, step);
    };
    std::thread::scope(|s| {
        let second = s.spawn(move || {
            let mut walk = Walk::new(commands, boundary, release);
            let step = walk.run(data, boundary, None);
            walk.finish(data, step)
        });
        let mut first = Walk::new(commands, start, release);
        match first.run(data, start, Some(boundary)) {
            Step::Boundary if first.multi.is_none() => match second.join() {
                Ok(second) => first.join(second),
                Err(_) => check(data, start, commands),
            },
            Step::Boundary => {
                let step = first.run(data, boundary, None);
                first.finish(data, step)
            }
            step => first.finish(data, step),
        }
    })
}

/// Where a command seems to start at or after `from`: preferably just after an `EXEC` (so
/// outside a transaction: a boundary inside one makes the first thread read on alone), else
/// after any CRLF followed by `*<digits>\r\n$`. It may be inside an argument; the first
/// thread tells.
pub(crate) fn boundary_after(data: &[u8], from: usize) -> Option<usize> {
    let window = &data[from..data.len().min(from + (1 << 20))];
    let starts_command = |at: usize| {
        let rest = &window[at..];
        let digits = rest
            .iter()
            .skip(1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        rest.first() == Some(&b'*') && digits > 0 && rest[1 + digits..].starts_with(b"\r\n$")
    };
    const EXEC: &[u8] = b"\r\n*1\r\n$4\r\nEXEC\r\n";
    let after_exec = memchr::memmem::find_iter(window, EXEC)
        .map(|at| at + EXEC.len())
        .find(|&at| starts_command(at));
    let any = || {
        memchr::memmem::find_iter(window, b"\r\n*")
            .map(|at| at + 2)
            .find(|&at| starts_command(at))
    };
    after_exec.or_else(any).map(|at| from + at)
}

/// Where a walk stopped.
enum Step {
    /// At the boundary it was told to stop at.
    Boundary,
    /// At the end of the file.
    End,
    /// At the item starting here, with this ending.
    Stop(u64, Ending),
}

struct Walk<'r> {
    commands: Commands,
    /// The table's answers for the names seen.
    table: Remembered,
    release: ReleasePages<'r>,
    checked: Checked,
    /// Where the open MULTI started.
    multi: Option<u64>,
}

impl<'r> Walk<'r> {
    fn new(commands: Commands, start: usize, release: ReleasePages<'r>) -> Walk<'r> {
        let table = match commands {
            Commands::Release(t) | Commands::Any(t) => t,
        };
        Walk {
            commands,
            table: Remembered::new(table),
            release,
            checked: Checked {
                commands: 0,
                ending: Ending::Complete,
                cut: start as u64,
                ok_up_to: start as u64,
                lines: 0,
                findings: Vec::new(),
                more: 0,
            },
            multi: None,
        }
    }

    /// Reads the items from `from` on, to the end, a problem, or `boundary`.
    fn run(&mut self, data: &[u8], from: usize, boundary: Option<usize>) -> Step {
        let mut items = Slice::new(data.get(from..).unwrap_or_default(), from as u64);
        let mut released = from;
        loop {
            let at = items.offset();
            if boundary == Some(at as usize) {
                return Step::Boundary;
            }
            if at as usize >= released + RELEASE_EVERY {
                (self.release)(released, at as usize);
                released = at as usize;
            }
            if self.multi.is_none() {
                self.checked.cut = at;
            }
            let stop = match items.next_item() {
                None => return Step::End,
                Some(Ok(Item::Annotation { offset, text })) => self.annotation(offset, text.len()),
                Some(Ok(Item::Command(cmd))) => self.command(&cmd),
                Some(Err(p)) => Some(self.problem(data, at, p)),
            };
            if let Some(ending) = stop {
                return Step::Stop(at, ending);
            }
        }
    }

    fn finish(self, data: &[u8], step: Step) -> Checked {
        match step {
            Step::Stop(at, ending) => self.stop(data, at, ending),
            Step::End | Step::Boundary => self.end(data.len() as u64),
        }
    }

    /// This walk's findings up to a boundary, then those of the walk from it.
    fn join(self, second: Checked) -> Checked {
        let mut c = self.checked;
        c.commands += second.commands;
        c.lines += second.lines;
        let room = MAX_FINDINGS.saturating_sub(c.findings.len());
        let left = second.findings.len().saturating_sub(room) as u64;
        c.findings.extend(second.findings.into_iter().take(room));
        c.more += second.more + left;
        Checked {
            ending: second.ending,
            cut: second.cut,
            ok_up_to: second.ok_up_to,
            ..c
        }
    }

    fn find(&mut self, severity: Severity, code: &'static str, offset: u64, message: String) {
        if self.checked.findings.len() < MAX_FINDINGS {
            self.checked.findings.push(Finding {
                severity,
                code,
                offset,
                message,
            });
        } else {
            self.checked.more += 1;
        }
    }

    /// An annotation line: the server reads at most 1023 bytes of one, then the rest of it as
    /// what follows.
    fn annotation(&mut self, offset: u64, text: usize) -> Option<Ending> {
        if text + 2 <= 1023 {
            return None;
        }
        let message =
            "an annotation line longer than 1023 bytes: the server reads its rest as a command";
        self.find(Severity::Error, "long-annotation", offset, message.into());
        Some(Ending::Damaged)
    }

    fn command(&mut self, cmd: &crate::resp::parse::Cmd<'_>) -> Option<Ending> {
        let name = cmd.name();
        let at = cmd.offset;
        if name.eq_ignore_ascii_case(b"multi") {
            if let Some(open) = self.multi {
                let message = format!("MULTI inside the MULTI at offset {open}");
                self.find(Severity::Error, "nested-multi", at, message);
                return Some(Ending::Damaged);
            }
            self.multi = Some(at);
        } else if name.eq_ignore_ascii_case(b"exec") {
            if self.multi.take().is_none() {
                let message = "EXEC without MULTI".to_string();
                self.find(Severity::Error, "exec-without-multi", at, message);
                return Some(Ending::Damaged);
            }
        } else if name.eq_ignore_ascii_case(b"select") {
            let db = cmd
                .arg(1)
                .and_then(|a| std::str::from_utf8(a).ok()?.parse::<u32>().ok());
            if cmd.argc() != 2 || db.is_none_or(|db| db > i32::MAX as u32) {
                let message = "SELECT without a database number: the server ignores it, and the commands after it go to the database before".to_string();
                self.find(Severity::Error, "bad-select", at, message);
                return self.counted(cmd, false);
            }
        }
        self.counted(cmd, true)
    }

    /// A whole command counted, its name and arity checked if `known`.
    fn counted(&mut self, cmd: &crate::resp::parse::Cmd<'_>, known: bool) -> Option<Ending> {
        self.checked.commands += 1;
        self.checked.lines += 1 + 2 * cmd.argc() as u64;
        if known {
            self.known(cmd);
        }
        None
    }

    /// The command's name and arity against the release's table.
    fn known(&mut self, cmd: &crate::resp::parse::Cmd<'_>) {
        let any = matches!(self.commands, Commands::Any(_));
        let name = || escape(cmd.name());
        let at = cmd.offset;
        match self.table.lookup(cmd.name(), cmd.args()) {
            Lookup::Known(spec) if !spec.arity_ok(cmd.argc()) => {
                let n = spec.arity.unsigned_abs();
                let takes = match spec.arity < 0 {
                    true => format!("at least {n}"),
                    false => format!("exactly {n}"),
                };
                let message = format!(
                    "\"{}\" with {} arguments: {}'s takes {takes} (its name included)",
                    name(),
                    cmd.argc(),
                    self.table.table.release
                );
                self.find(Severity::Error, "wrong-arity", at, message);
            }
            Lookup::Known(_) => {}
            Lookup::OtherReleases(_) if any => {}
            Lookup::OtherReleases(names) => {
                let message = format!(
                    "\"{}\" is not a command of {} (it is of {names}): the server stops loading here",
                    name(),
                    self.table.table.release
                );
                self.find(Severity::Error, "other-release", at, message);
            }
            Lookup::Unknown if cmd.name().contains(&b'.') => {
                let message = format!(
                    "\"{}\" is a module's command: the server loads it only with that module loaded",
                    name()
                );
                self.find(Severity::Warning, "module-command", at, message);
            }
            Lookup::Unknown if self.table.table.newer && !any => {
                let message = format!(
                    "unknown command \"{}\": perhaps one of a release newer than {}, the newest rdbtool knows",
                    name(),
                    self.table.table.release
                );
                self.find(Severity::Notice, "unknown-command", at, message);
            }
            Lookup::Unknown => {
                let message = format!(
                    "unknown command \"{}\" (of no release rdbtool knows): the server stops loading here",
                    name()
                );
                self.find(Severity::Error, "unknown-command", at, message);
            }
        }
    }

    /// A command the parser could not read, starting at `at`.
    fn problem(&mut self, data: &[u8], at: u64, p: Problem) -> Ending {
        match p {
            Problem::Truncated { offset } if data.get(offset as usize) == Some(&b'#') => {
                let message = "the file ends inside an annotation line (the server skips it)";
                self.find(
                    Severity::Notice,
                    "truncated-annotation",
                    offset,
                    message.into(),
                );
                Ending::Complete
            }
            Problem::Truncated { offset } => {
                let message = "the file ends inside a command: a truncated tail (the server loads the file with aof-load-truncated yes, cutting it before this command or its transaction)";
                self.find(Severity::Error, "truncated", offset, message.into());
                Ending::Truncated
            }
            Problem::Malformed { offset, what } => {
                let message = match offset == at {
                    true => what.to_string(),
                    false => format!("{what} (in the command at offset {at})"),
                };
                self.find(Severity::Error, "malformed", offset, message);
                Ending::Damaged
            }
        }
    }

    /// The walk stopped at the item starting at `at`.
    fn stop(mut self, data: &[u8], at: u64, ending: Ending) -> Checked {
        if ending == Ending::Complete {
            return self.end(data.len() as u64);
        }
        let state = State {
            multi: i64::from(self.multi.is_some()),
            pos: self.checked.cut,
            line: self.checked.lines,
        };
        let end = emulate::run(data, at as usize, state);
        self.checked.ok_up_to = end.pos;
        self.checked.lines = end.line;
        self.checked.ending = ending;
        self.checked
    }

    /// The end of the file.
    fn end(mut self, size: u64) -> Checked {
        match self.multi {
            Some(open) => {
                let message = "the file ends inside this MULTI (no EXEC): the server drops the open transaction (a truncated tail, loaded with aof-load-truncated yes)";
                self.find(Severity::Error, "eof-in-multi", open, message.into());
                self.checked.ending = Ending::OpenMulti;
                self.checked.cut = open;
                self.checked.ok_up_to = open;
            }
            None => {
                self.checked.cut = size;
                self.checked.ok_up_to = size;
            }
        }
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::text as resp;

    fn any() -> Commands {
        Commands::new(None)
    }

    #[test]
    fn a_good_log_and_its_lines() {
        let log = [
            "#TS:1700000000\r\n".to_string(),
            resp(&["SELECT", "0"]),
            resp(&["MULTI"]),
            resp(&["SET", "a", "1"]),
            resp(&["EXEC"]),
        ]
        .concat();
        let c = check(log.as_bytes(), 0, any());
        assert_eq!(c.ending, Ending::Complete);
        assert_eq!((c.commands, c.lines), (4, 5 + 3 + 7 + 3));
        assert_eq!(c.ok_up_to, log.len() as u64);
        assert!(c.findings.is_empty(), "{:?}", c.findings);
    }

    #[test]
    fn a_cut_inside_a_transaction_goes_back_to_its_multi() {
        let head = resp(&["SET", "a", "1"]);
        let log = [head.clone(), resp(&["MULTI"]), resp(&["SET", "b", "2"])].concat();
        let c = check(log.as_bytes(), 0, any());
        assert_eq!(c.ending, Ending::OpenMulti);
        assert_eq!((c.cut, c.ok_up_to), (head.len() as u64, head.len() as u64));
        let cut = &log.as_bytes()[..log.len() - 3];
        let c = check(cut, 0, any());
        assert_eq!(c.ending, Ending::Truncated);
        assert_eq!(c.cut, head.len() as u64);
    }

    #[test]
    fn the_second_thread_starts_after_an_exec_where_there_is_one() {
        let head = [
            resp(&["SET", "a", "1"]),
            resp(&["MULTI"]),
            resp(&["INCR", "n"]),
        ]
        .concat();
        let log = [head.clone(), resp(&["EXEC"]), resp(&["SET", "b", "2"])].concat();
        let after_exec = log.len() - resp(&["SET", "b", "2"]).len();
        assert_eq!(boundary_after(log.as_bytes(), 1), Some(after_exec));
        // Without an EXEC in reach, any command start.
        let plain = [resp(&["SET", "a", "1"]), resp(&["SET", "b", "2"])].concat();
        let second = resp(&["SET", "a", "1"]).len();
        assert_eq!(boundary_after(plain.as_bytes(), 1), Some(second));
    }

    #[test]
    fn two_threads_find_what_one_finds() {
        let mut log = String::new();
        for i in 0..40 {
            log += &resp(&["SET", &format!("k{i}"), "*3\r\n$3"]);
            if i % 7 == 0 {
                log += &[resp(&["MULTI"]), resp(&["INCR", "n"]), resp(&["EXEC"])].concat();
            }
            if i % 11 == 0 {
                log += "#TS:1700000000\r\n";
            }
        }
        let log = log.as_bytes();
        let key = |c: &Checked| {
            let codes: Vec<_> = c.findings.iter().map(|f| (f.code, f.offset)).collect();
            (c.commands, c.lines, c.cut, c.ok_up_to, c.ending, codes)
        };
        for end in (1..log.len()).step_by(7).chain([log.len()]) {
            let data = &log[..end];
            let one = check(data, 0, any());
            assert_eq!(
                key(&check_split(data, 0, any(), 0, &|_, _| {})),
                key(&one),
                "cut at {end}"
            );
            for at in [end / 3, end * 3 / 4] {
                let mut bad = data.to_vec();
                bad[at] = b'!';
                let one = check(&bad, 0, any());
                assert_eq!(
                    key(&check_split(&bad, 0, any(), 0, &|_, _| {})),
                    key(&one),
                    "damage at {at}"
                );
            }
        }
    }

    #[test]
    fn names_arities_and_selects() {
        let log = [
            resp(&["SET", "a"]),
            resp(&["HSETEX", "h", "FIELDS", "1", "f", "v"]),
            resp(&["NOSUCH"]),
            resp(&["SELECT", "x"]),
        ]
        .concat();
        let c = check(log.as_bytes(), 0, Commands::new(Some(Release::redis(7, 0))));
        let codes: Vec<_> = c.findings.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [
                "wrong-arity",
                "other-release",
                "unknown-command",
                "bad-select"
            ]
        );
        assert!(c.findings[1].message.contains("redis-8.2"));
        let newer = check(log.as_bytes(), 0, Commands::new(Some(Release::redis(9, 0))));
        assert_eq!(newer.findings[1].severity, Severity::Notice);
    }
}
