//! The commands of one AOF file with what the server knows while loading them: the database a
//! command writes to (after the last `SELECT`; each file starts in db 0, as the server loads
//! each with a fresh client), the time of the last `#TS:` annotation, and whether it is inside
//! a `MULTI … EXEC` block.

use crate::resp::parse::{Cmd, Item, Problem, Slice};

/// A command as the loader sees it.
#[derive(Debug)]
pub struct Logged<'a> {
    pub cmd: Cmd<'a>,
    /// The database it runs in (for `SELECT`, the one it selects).
    pub db: u64,
    /// The Unix time of the last `#TS:` annotation before it, if any.
    pub ts: Option<u64>,
    /// Where the open `MULTI` started (for `MULTI` and `EXEC` too).
    pub multi: Option<u64>,
    pub kind: Kind,
}

/// What a command does to the loader's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Select,
    Multi,
    Exec,
    /// Any other command.
    Data,
    /// `SELECT` without a database number the server accepts.
    BadSelect,
    /// `MULTI` inside an open MULTI.
    NestedMulti,
    /// `EXEC` with no open MULTI.
    LoneExec,
}

/// Reads the commands of `data[start..]` (a file's RESP part, after any RDB preamble).
pub struct Log<'a> {
    items: Slice<'a>,
    db: u64,
    ts: Option<u64>,
    multi: Option<u64>,
}

impl<'a> Log<'a> {
    /// The commands of `data` from `start` (offsets stay those of `data`).
    pub fn new(data: &'a [u8], start: usize) -> Self {
        Log {
            items: Slice::new(data.get(start..).unwrap_or_default(), start as u64),
            db: 0,
            ts: None,
            multi: None,
        }
    }

    /// The commands of `data` from `start`, where the log is in database `db` (a position
    /// between commands, outside a transaction: where an earlier walk stopped).
    pub fn resume(data: &'a [u8], start: usize, db: u64) -> Self {
        Log {
            db,
            ..Log::new(data, start)
        }
    }

    /// The commands of `data`, a piece of a longer log whose first byte is at offset `base`
    /// there, where the log is in database `db` with a MULTI open since `multi` (offsets are
    /// the longer log's).
    pub fn piece(data: &'a [u8], base: u64, db: u64, multi: Option<u64>) -> Self {
        Log {
            items: Slice::new(data, base),
            db,
            ts: None,
            multi,
        }
    }

    /// Commands before the file's first `#TS:` take this time (the last one of the file
    /// before, in a multi-part AOF).
    pub fn with_time(mut self, ts: Option<u64>) -> Self {
        self.ts = ts;
        self
    }

    /// The time of the last `#TS:` read.
    pub fn time(&self) -> Option<u64> {
        self.ts
    }

    /// Where the next item starts.
    pub fn offset(&self) -> u64 {
        self.items.offset()
    }

    /// Where the open MULTI started, if one is open.
    pub fn open_multi(&self) -> Option<u64> {
        self.multi
    }

    /// The database the next command runs in.
    pub fn db(&self) -> u64 {
        self.db
    }

    /// Reads the annotation lines at the current position (their times taken in).
    pub fn skip_annotations(&mut self) {
        while let Some(text) = self.items.next_annotation() {
            if let Some(ts) = timestamp(text) {
                self.ts = Some(ts);
            }
        }
    }

    /// The next command, None at the end; after a problem the walk is over.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Logged<'_>, Problem>> {
        self.skip_annotations();
        let cmd = match self.items.next_item()? {
            Ok(Item::Command(cmd)) => cmd,
            // What next_annotation left is an annotation without its line end.
            Ok(Item::Annotation { offset, .. }) => return Some(Err(Problem::Truncated { offset })),
            Err(problem) => return Some(Err(problem)),
        };
        let name = cmd.name();
        let mut multi = self.multi;
        let kind = if name.eq_ignore_ascii_case(b"select") {
            match cmd.arg(1).and_then(number).filter(|_| cmd.argc() == 2) {
                Some(db) => {
                    self.db = db;
                    Kind::Select
                }
                None => Kind::BadSelect,
            }
        } else if name.eq_ignore_ascii_case(b"multi") {
            if self.multi.is_some() {
                Kind::NestedMulti
            } else {
                self.multi = Some(cmd.offset);
                multi = self.multi;
                Kind::Multi
            }
        } else if name.eq_ignore_ascii_case(b"exec") {
            match self.multi.take() {
                Some(_) => Kind::Exec,
                None => Kind::LoneExec,
            }
        } else {
            Kind::Data
        };
        Some(Ok(Logged {
            cmd,
            db: self.db,
            ts: self.ts,
            multi,
            kind,
        }))
    }
}

/// The time of a `TS:<unix seconds>` annotation.
pub fn timestamp(text: &[u8]) -> Option<u64> {
    number(text.strip_prefix(b"#TS:")?)
}

fn number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::text as resp;

    #[test]
    fn tracks_database_time_and_transactions() {
        let log = [
            "#TS:1700000000\r\n".to_string(),
            resp(&["SELECT", "3"]),
            resp(&["MULTI"]),
            resp(&["SET", "a", "1"]),
            "#TS:1700000005\r\n".to_string(),
            resp(&["EXEC"]),
            resp(&["EXEC"]),
            resp(&["select", "x"]),
        ]
        .concat();
        let mut walk = Log::new(log.as_bytes(), 0);
        let mut seen = Vec::new();
        while let Some(entry) = walk.next() {
            let e = entry.unwrap();
            seen.push((e.kind, e.db, e.ts, e.multi.is_some()));
        }
        let ts = Some(1_700_000_000);
        let later = Some(1_700_000_005);
        assert_eq!(
            seen,
            [
                (Kind::Select, 3, ts, false),
                (Kind::Multi, 3, ts, true),
                (Kind::Data, 3, ts, true),
                (Kind::Exec, 3, later, true),
                (Kind::LoneExec, 3, later, false),
                (Kind::BadSelect, 3, later, false),
            ]
        );
    }
}
