//! Command names as an AOF or a replication stream writes them (any case), counted under
//! their upper-case name, each looked up by the bytes as written after its first use.

use std::collections::HashMap;

use super::aof::NameRow;
use crate::hash::{ByName, ShortBuild};
use crate::rdb::error::escape;
use crate::resp::parse::Cmd;

/// A name's counts and what kind of expiry command it is.
#[derive(Default)]
pub(crate) struct NameStat {
    pub(crate) count: u64,
    pub(crate) bytes: u64,
    expiry: Option<&'static str>,
    set: bool,
}

impl NameStat {
    /// The kind of expiry `cmd` (a command of this name) sets, if it sets one.
    pub(crate) fn expiry(&self, cmd: &Cmd<'_>) -> Option<&'static str> {
        self.expiry
            .or_else(|| self.set.then(|| set_expiry(cmd)).flatten())
    }
}

/// The counts of the command names (uppercase), found by the name as written.
#[derive(Default)]
pub(crate) struct Names {
    stats: Vec<(Vec<u8>, NameStat)>,
    by_upper: HashMap<Vec<u8>, usize, ShortBuild>,
    by_written: ByName<usize>,
}

impl Names {
    /// The counts of `name`, made on its first use.
    pub(crate) fn get(&mut self, name: &[u8]) -> &mut NameStat {
        let i = self.place(name);
        &mut self.stats[i].1
    }

    /// Where the counts of `name` are (see [`Names::at`]), made on its first use.
    pub(crate) fn place(&mut self, name: &[u8]) -> usize {
        match self.by_written.get(name) {
            Some(i) => i,
            None => {
                let i = self.index(name);
                self.by_written.insert(name, i);
                i
            }
        }
    }

    /// The counts at `place`.
    pub(crate) fn at(&mut self, place: usize) -> &mut NameStat {
        &mut self.stats[place].1
    }

    /// Adds the counts of `other`.
    pub(crate) fn merge(&mut self, other: Names) {
        for (name, theirs) in other.stats {
            let mine = self.get(&name);
            mine.count += theirs.count;
            mine.bytes += theirs.bytes;
        }
    }

    /// The rows, most used first (then by name).
    pub(crate) fn rows(self) -> Vec<NameRow> {
        let mut names: Vec<NameRow> = self
            .stats
            .into_iter()
            .map(|(name, s)| NameRow {
                name: escape(&name),
                count: s.count,
                bytes: s.bytes,
            })
            .collect();
        names.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
        names
    }

    fn index(&mut self, name: &[u8]) -> usize {
        let upper = name.to_ascii_uppercase();
        if let Some(&i) = self.by_upper.get(&upper) {
            return i;
        }
        let stat = NameStat {
            expiry: EXPIRY.iter().find(|e| e.as_bytes() == upper).copied(),
            set: upper == b"SET",
            ..Default::default()
        };
        self.by_upper.insert(upper.clone(), self.stats.len());
        self.stats.push((upper, stat));
        self.stats.len() - 1
    }
}

/// Commands that set a TTL by their name.
const EXPIRY: [&str; 7] = [
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "GETEX",
    "SETEX",
    "PSETEX",
];

/// `SET … EX|PX|EXAT|PXAT …` (counted as one form).
fn set_expiry(cmd: &Cmd<'_>) -> Option<&'static str> {
    cmd.args()
        .skip(3)
        .any(|a| {
            [&b"EX"[..], b"PX", b"EXAT", b"PXAT"]
                .iter()
                .any(|o| o.eq_ignore_ascii_case(a))
        })
        .then_some("SET with EX/PX/EXAT/PXAT")
}
