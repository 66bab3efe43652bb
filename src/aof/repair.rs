//! What a repaired copy of an AOF keeps: the log cut after its last whole command or
//! transaction (before a truncated tail or damage), or earlier at a time (`#TS:` annotations)
//! or an offset, and chosen commands left out with their emptied `MULTI … EXEC` blocks. The
//! plan is made from the mapped files; [`Fate`] says what to write for each, [`Dropped`] what
//! was left out.

use std::collections::BTreeMap;
use std::ops::Range;

use super::check::{self, Commands, Ending};
use super::log::timestamp;
use crate::resp::parse::{Cmd, Item, Slice};

/// Where the kept log ends, besides before a truncated tail or damage (always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At the end of what can be read.
    Damage,
    /// Before the first `#TS:` annotation later than this Unix time.
    Timestamp(u64),
    /// After the last command ending at or before this offset of this file (load order).
    Offset { part: usize, offset: u64 },
}

/// What to keep.
#[derive(Debug, Clone)]
pub struct Plan {
    pub until: Until,
    /// Commands to leave out (lowercase names).
    pub drop: Vec<String>,
    /// Only those at or after this Unix time (by the last `#TS:` annotation before them).
    pub since: Option<u64>,
}

/// One file of the input, in load order.
pub struct Input<'a> {
    pub name: String,
    pub data: &'a [u8],
    /// Where its RDB data ends (0: none).
    pub rdb_end: usize,
}

/// What becomes of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Kept as it is.
    Copied,
    /// These byte ranges of it, in order.
    Rewritten(Vec<Range<usize>>),
    /// Wholly after the cut: left out (and out of the manifest).
    Dropped,
}

/// What was left out.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Commands by name (uppercase).
    pub commands: BTreeMap<String, u64>,
    pub bytes: u64,
    /// Bytes after a truncated tail or damage that are no commands.
    pub unreadable: u64,
    /// The first and last time (`#TS:`) of a dropped command.
    pub times: Option<(u64, u64)>,
    /// (file, offsets) of each stretch left out.
    pub ranges: Vec<(String, Range<u64>)>,
}

/// The plan's outcome.
#[derive(Debug)]
pub struct Outcome {
    pub fates: Vec<Fate>,
    pub kept_commands: u64,
    /// Where the log was cut: the file, the offset, why.
    pub cut: Option<(String, u64, String)>,
    pub dropped: Dropped,
    /// Whether the kept log had any `#TS:` annotation to go by.
    pub timestamps: bool,
}

/// Works out what a repaired copy of `inputs` keeps under `plan`. An error when the plan
/// cannot be followed (an offset inside RDB data).
pub fn plan(inputs: &[Input<'_>], plan: &Plan) -> Result<Outcome, String> {
    let mut out = Outcome {
        fates: Vec::new(),
        kept_commands: 0,
        cut: None,
        dropped: Dropped::default(),
        timestamps: false,
    };
    let mut ts = None;
    for (i, inp) in inputs.iter().enumerate() {
        if out.cut.is_some() {
            out.dropped.tail(&inp.name, inp.data, 0, &mut ts);
            out.fates.push(Fate::Dropped);
            continue;
        }
        let offset = match plan.until {
            Until::Offset { part, offset } if part == i => Some(offset),
            _ => None,
        };
        if let Some(n) = offset.filter(|&n| n > 0 && (n as usize) < inp.rdb_end) {
            return Err(format!(
                "{}: offset {n} is inside the RDB data (which ends at {}): an RDB cannot be cut",
                inp.name, inp.rdb_end
            ));
        }
        let found = check::check(inp.data, inp.rdb_end, Commands::new(None));
        let (limit, why) = match found.ending {
            Ending::Complete => (inp.data.len(), None),
            Ending::Truncated => (found.cut as usize, Some("a truncated tail")),
            Ending::OpenMulti => (found.cut as usize, Some("a MULTI without EXEC at the end")),
            Ending::Damaged => (found.cut as usize, Some("damage")),
        };
        let mut edit = Edit {
            data: inp.data,
            kept: std::iter::once(0..inp.rdb_end).collect(),
            multi: None,
            ts,
            plan,
            offset,
            out: &mut out,
            name: &inp.name,
        };
        let stop = edit.walk(inp.rdb_end, limit);
        let mut kept = std::mem::take(&mut edit.kept);
        ts = edit.ts;
        let cut = match stop {
            Some((at, why)) => Some((at, why.to_string())),
            None if limit < inp.data.len() => Some((limit, why.unwrap_or_default().to_string())),
            // The offset is at or past this file's end: the files after it are left out.
            None if offset.is_some() && i + 1 < inputs.len() => {
                Some((inp.data.len(), "--until-offset".to_string()))
            }
            None => None,
        };
        if let Some((at, why)) = cut {
            out.dropped.tail(&inp.name, inp.data, at, &mut ts);
            out.cut = Some((inp.name.clone(), at as u64, why));
        }
        kept.retain(|r| !r.is_empty());
        out.fates.push(match kept[..] {
            [ref r] if *r == (0..inp.data.len()) => Fate::Copied,
            [] if inp.data.is_empty() => Fate::Copied,
            _ => Fate::Rewritten(kept),
        });
    }
    Ok(out)
}

/// An open `MULTI`: where it starts, what of it is kept, its commands to drop.
struct Block {
    start: usize,
    /// The MULTI command's end.
    multi_end: usize,
    /// What is kept between MULTI and EXEC.
    ranges: Vec<Range<usize>>,
    kept_data: u64,
    drops: Vec<(Range<usize>, Option<u64>, String)>,
}

/// The walk over one file's commands.
struct Edit<'a, 'p> {
    data: &'a [u8],
    kept: Vec<Range<usize>>,
    multi: Option<Block>,
    ts: Option<u64>,
    plan: &'p Plan,
    offset: Option<u64>,
    out: &'p mut Outcome,
    name: &'p str,
}

impl Edit<'_, '_> {
    /// Walks `data[start..limit]`: where the plan stops it (a time, an offset), if it does.
    fn walk(&mut self, start: usize, limit: usize) -> Option<(usize, &'static str)> {
        let mut items = Slice::new(&self.data[start..limit], start as u64);
        while let Some(Ok(item)) = items.next_item() {
            match item {
                Item::Annotation { offset, text } => {
                    let at = offset as usize;
                    let end = at + items_len_annotation(self.data, at);
                    if let Some(t) = timestamp(text) {
                        self.out.timestamps = true;
                        if matches!(self.plan.until, Until::Timestamp(limit) if t > limit) {
                            return Some((self.stop_at(at), "--until-timestamp"));
                        }
                        self.ts = Some(t);
                    }
                    self.keep(at..end);
                }
                Item::Command(cmd) => {
                    let at = cmd.offset as usize;
                    let end = at + cmd.raw.len();
                    if self.offset.is_some_and(|n| end as u64 > n) {
                        return Some((self.stop_at(at), "--until-offset"));
                    }
                    self.command(&cmd, at..end);
                }
            }
        }
        None
    }

    /// Where a stop at `at` cuts: there, or at the start of the open MULTI.
    fn stop_at(&mut self, at: usize) -> usize {
        match self.multi.take() {
            Some(block) => block.start,
            None => at,
        }
    }

    fn keep(&mut self, r: Range<usize>) {
        let list = match &mut self.multi {
            Some(block) => &mut block.ranges,
            None => &mut self.kept,
        };
        match list.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => list.push(r),
        }
    }

    fn command(&mut self, cmd: &Cmd<'_>, r: Range<usize>) {
        let name = cmd.name();
        if name.eq_ignore_ascii_case(b"multi") && self.multi.is_none() {
            self.multi = Some(Block {
                start: r.start,
                multi_end: r.end,
                ranges: Vec::new(),
                kept_data: 0,
                drops: Vec::new(),
            });
            return;
        }
        if name.eq_ignore_ascii_case(b"exec") && self.multi.is_some() {
            return self.exec(r);
        }
        let dropped = self
            .plan
            .drop
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
            && self
                .plan
                .since
                .is_none_or(|since| self.ts.is_some_and(|t| t >= since));
        let upper = || String::from_utf8_lossy(name).to_ascii_uppercase();
        match (&mut self.multi, dropped) {
            (Some(block), true) => block.drops.push((r, self.ts, upper())),
            (Some(block), false) => {
                block.kept_data += 1;
                self.keep(r);
            }
            (None, true) => self.out.dropped.command(self.name, r, self.ts, upper()),
            (None, false) => {
                self.out.kept_commands += 1;
                self.keep(r);
            }
        }
    }

    /// The end of a MULTI block: kept with what is left of it, or dropped whole if its
    /// commands were all dropped.
    fn exec(&mut self, r: Range<usize>) {
        let Some(mut block) = self.multi.take() else {
            return;
        };
        let emptied = block.kept_data == 0 && !block.drops.is_empty();
        let ts = self.ts;
        for (range, ts, name) in block.drops.drain(..) {
            self.out.dropped.command(self.name, range, ts, name);
        }
        let multi = block.start..block.multi_end;
        if emptied {
            self.out
                .dropped
                .command(self.name, multi, ts, "MULTI".into());
            self.out.dropped.command(self.name, r, ts, "EXEC".into());
            // What else was in it (annotations) stays.
            for range in block.ranges {
                self.keep(range);
            }
            return;
        }
        self.out.kept_commands += block.kept_data + 2;
        self.keep(multi);
        for range in block.ranges {
            self.keep(range);
        }
        self.keep(r);
    }
}

/// The length of the annotation line at `at`, its line end included.
fn items_len_annotation(data: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &data[at..]).map_or(data.len() - at, |nl| nl + 1)
}

impl Dropped {
    fn command(&mut self, file: &str, r: Range<usize>, ts: Option<u64>, name: String) {
        *self.commands.entry(name).or_default() += 1;
        self.bytes += r.len() as u64;
        if let Some(t) = ts {
            self.time(t);
        }
        match self.ranges.last_mut() {
            Some((f, last)) if f == file && last.end == r.start as u64 => last.end = r.end as u64,
            _ => self
                .ranges
                .push((file.to_string(), r.start as u64..r.end as u64)),
        }
    }

    fn time(&mut self, t: u64) {
        self.times = Some(match self.times {
            Some((a, b)) => (a.min(t), b.max(t)),
            None => (t, t),
        });
    }

    /// Everything of `data` from `from` on is left out: its commands counted, what cannot be
    /// read as commands counted as unreadable.
    fn tail(&mut self, file: &str, data: &[u8], from: usize, ts: &mut Option<u64>) {
        let len = data.len();
        if from >= len {
            return;
        }
        self.bytes += (len - from) as u64;
        self.ranges
            .push((file.to_string(), from as u64..len as u64));
        let mut items = Slice::new(&data[from..], from as u64);
        let mut read = from;
        while let Some(Ok(item)) = items.next_item() {
            match item {
                Item::Annotation { offset, text } => {
                    if let Some(t) = timestamp(text) {
                        *ts = Some(t);
                    }
                    read = offset as usize + items_len_annotation(data, offset as usize);
                }
                Item::Command(cmd) => {
                    let name = String::from_utf8_lossy(cmd.name()).to_ascii_uppercase();
                    *self.commands.entry(name).or_default() += 1;
                    if let Some(t) = *ts {
                        self.time(t);
                    }
                    read = cmd.offset as usize + cmd.raw.len();
                }
            }
        }
        self.unreadable += (len - read) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::text as resp;

    fn run(data: &[u8], p: &Plan) -> (Vec<u8>, Outcome) {
        let inputs = [Input {
            name: "a.aof".into(),
            data,
            rdb_end: 0,
        }];
        let out = plan(&inputs, p).unwrap();
        let bytes = match &out.fates[0] {
            Fate::Copied => data.to_vec(),
            Fate::Rewritten(ranges) => ranges
                .iter()
                .flat_map(|r| data[r.clone()].to_vec())
                .collect(),
            Fate::Dropped => Vec::new(),
        };
        (bytes, out)
    }

    const ALL: Plan = Plan {
        until: Until::Damage,
        drop: Vec::new(),
        since: None,
    };

    #[test]
    fn cuts_before_a_truncated_transaction() {
        let head = [resp(&["SET", "a", "1"]), "#TS:100\r\n".into()].concat();
        let log = [
            head.clone(),
            resp(&["MULTI"]),
            resp(&["SET", "b", "2"]),
            "*1\r\n$4\r\nEX".into(),
        ]
        .concat();
        let (kept, out) = run(log.as_bytes(), &ALL);
        assert_eq!(kept, head.as_bytes());
        assert_eq!(out.dropped.commands.get("MULTI"), Some(&1));
        assert_eq!(out.dropped.commands.get("SET"), Some(&1));
        assert_eq!(out.dropped.unreadable, 10);
        assert_eq!(out.cut.unwrap().1, head.len() as u64);
    }

    #[test]
    fn drops_commands_and_emptied_blocks_from_a_time_on() {
        let early = [
            resp(&["FLUSHALL"]),
            "#TS:100\r\n".into(),
            resp(&["SET", "a", "1"]),
        ]
        .concat();
        let log = [
            early.clone(),
            "#TS:200\r\n".into(),
            resp(&["FLUSHALL"]),
            resp(&["MULTI"]),
            resp(&["flushall"]),
            resp(&["EXEC"]),
            resp(&["MULTI"]),
            resp(&["FLUSHALL"]),
            resp(&["SET", "b", "1"]),
            resp(&["EXEC"]),
        ]
        .concat();
        let p = Plan {
            drop: vec!["flushall".into()],
            since: Some(150),
            ..ALL
        };
        let (kept, out) = run(log.as_bytes(), &p);
        let expected = [
            early,
            "#TS:200\r\n".into(),
            resp(&["MULTI"]),
            resp(&["SET", "b", "1"]),
            resp(&["EXEC"]),
        ]
        .concat();
        assert_eq!(String::from_utf8_lossy(&kept), expected);
        let counts: Vec<_> = out
            .dropped
            .commands
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(counts, [("EXEC", 1), ("FLUSHALL", 3), ("MULTI", 1)]);
        assert_eq!(out.dropped.times, Some((200, 200)));
    }

    #[test]
    fn stops_at_a_time_or_an_offset() {
        let first = ["#TS:100\r\n".to_string(), resp(&["SET", "a", "1"])].concat();
        let log = [
            first.clone(),
            "#TS:101\r\n".into(),
            resp(&["SET", "b", "2"]),
        ]
        .concat();
        let p = Plan {
            until: Until::Timestamp(100),
            ..ALL
        };
        assert_eq!(run(log.as_bytes(), &p).0, first.as_bytes());
        let p = Plan {
            until: Until::Offset {
                part: 0,
                offset: first.len() as u64 + 12,
            },
            ..ALL
        };
        let (kept, out) = run(log.as_bytes(), &p);
        assert_eq!(
            String::from_utf8_lossy(&kept),
            [first, "#TS:101\r\n".into()].concat()
        );
        assert_eq!(out.dropped.commands.get("SET"), Some(&1));
    }
}
