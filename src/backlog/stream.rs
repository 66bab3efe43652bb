//! Reading a capture's stream back: the records of an epoch in offset order, across its
//! segments, each checked (framing, checksum, offsets continuing without a gap, segment names
//! that agree with their records), and the commands in them with their offsets and databases.

use std::ops::{ControlFlow, Range};

use super::store::{Epoch, Flaw, Record, Records, Segment};
use crate::aof::log::{Kind, Log, Logged};
use crate::resp::parse::Problem;

/// Where an epoch's stream stopped being readable.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The segment's file name.
    pub segment: String,
    /// A byte position in that file.
    pub at: u64,
    pub what: String,
    /// A torn last record of the open segment: what a kill leaves, cut when the capture is
    /// continued, not damage.
    pub torn: bool,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: byte {}: {}", self.segment, self.at, self.what)
    }
}

/// How far an epoch's stream reads.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The last offset of the last whole record read (`start - 1` if none).
    pub end: u64,
    pub records: u64,
    pub bytes: u64,
    /// What stopped the walk before the last segment's end.
    pub fault: Option<Fault>,
}

/// Calls `f` with each record of `epoch` in offset order, from the record holding `from` (or
/// the start), checking as it goes; `f` may stop the walk.
pub fn records(
    epoch: &Epoch,
    from: Option<u64>,
    f: &mut dyn FnMut(&Segment, &Record<'_>) -> ControlFlow<()>,
) -> std::io::Result<Reach> {
    records_in(epoch, skipped(epoch, from)..epoch.segments.len(), from, f)
}

/// How many segments end before offset `from`.
fn skipped(epoch: &Epoch, from: Option<u64>) -> usize {
    from.map_or(0, |o| {
        let sealed = epoch
            .segments
            .iter()
            .take_while(|s| s.last.is_some_and(|l| l < o));
        sealed.count()
    })
}

/// [`records`] of the segments `range` of `epoch`: the first one is taken to continue what
/// came before it (a caller joining parts checks that with [`gap`]).
pub fn records_in(
    epoch: &Epoch,
    range: Range<usize>,
    from: Option<u64>,
    f: &mut dyn FnMut(&Segment, &Record<'_>) -> ControlFlow<()>,
) -> std::io::Result<Reach> {
    let segments = &epoch.segments[range.clone()];
    let mut reach = Reach {
        end: match range.start {
            0 => epoch.meta.start - 1,
            _ => segments.first().map_or(epoch.meta.start, |s| s.first) - 1,
        },
        records: 0,
        bytes: 0,
        fault: None,
    };
    for seg in segments {
        let fault = |at: u64, what: String, torn: bool| Fault {
            segment: seg.name(),
            at,
            what,
            torn,
        };
        if let Some(gap) = gap(seg, reach.end) {
            reach.fault = Some(gap);
            return Ok(reach);
        }
        let map = seg.map()?;
        let data = map.data();
        let mut walk = Records::new(data, Some(seg.first));
        let mut stopped = false;
        for r in walk.by_ref() {
            match r {
                Ok(r) => {
                    reach.end = r.last();
                    reach.records += 1;
                    reach.bytes += r.payload.len() as u64;
                    let wanted = from.is_none_or(|o| r.last() >= o);
                    if wanted && f(seg, &r).is_break() {
                        stopped = true;
                        break;
                    }
                }
                Err(bad) => {
                    let torn = seg.last.is_none() && bad.is_torn(data);
                    reach.fault = Some(fault(bad.at as u64, bad.flaw.to_string(), torn));
                    return Ok(reach);
                }
            }
        }
        if stopped {
            return Ok(reach);
        }
        if walk.position() == 0 {
            reach.fault = Some(fault(
                0,
                Flaw::Empty.to_string().replace("record", "segment"),
                false,
            ));
            return Ok(reach);
        }
        if let Some(last) = seg.last
            && last != reach.end
        {
            let what = format!(
                "its records end at offset {} but its name says {last}",
                reach.end
            );
            reach.fault = Some(fault(data.len() as u64, what, false));
            return Ok(reach);
        }
    }
    Ok(reach)
}

/// The fault of a segment that does not start right after offset `end`.
pub fn gap(seg: &Segment, end: u64) -> Option<Fault> {
    (seg.first != end + 1).then(|| Fault {
        segment: seg.name(),
        at: 0,
        what: format!(
            "starts at offset {} where {} was expected",
            seg.first,
            end + 1
        ),
        torn: false,
    })
}

/// A command of the stream (its offset is the stream's), when it arrived, and its database
/// when known (`logged.db` says 0 for a database not known).
pub struct StreamCmd<'a, 'l> {
    pub logged: &'l Logged<'a>,
    /// When its record arrived (Unix microseconds).
    pub time_us: u64,
    pub db: Option<u64>,
}

/// Calls `f` with each command of `epoch` from `from` (its first byte's offset, or the start);
/// the database of each is known from the record headers. A record that does not hold whole
/// commands is an error: the offset of the bad bytes and what is wrong.
pub fn commands(
    epoch: &Epoch,
    from: Option<u64>,
    f: &mut dyn FnMut(StreamCmd<'_, '_>) -> ControlFlow<()>,
) -> std::io::Result<(Reach, Option<Problem>)> {
    let w = commands_in(epoch, skipped(epoch, from)..epoch.segments.len(), from, f)?;
    Ok((w.reach, w.problem))
}

/// A walk of some of an epoch's segments by [`commands_in`].
pub struct Walked {
    /// The index of its first segment.
    pub first: usize,
    pub reach: Reach,
    pub problem: Option<Problem>,
    /// The MULTI open at its end, and the one its first record's header said was open (its
    /// place not known: that record's offset).
    pub open_multi: Option<u64>,
    pub inherited: Option<u64>,
}

impl Walked {
    /// Whether the walk stopped before the end of its segments: a fault or bad bytes.
    pub fn stopped(&self) -> bool {
        self.reach.fault.is_some() || self.problem.is_some()
    }

    /// Continues this walk with that of the segments right after it, as one walk over both
    /// would have gone on; false when it would not have (this one stopped, or the next does
    /// not start where this one ended: that gap is then this walk's fault).
    pub fn join(&mut self, epoch: &Epoch, next: Walked) -> bool {
        if self.stopped() {
            return false;
        }
        if let Some(gap) = epoch
            .segments
            .get(next.first)
            .and_then(|s| gap(s, self.reach.end))
        {
            self.reach.fault = Some(gap);
            return false;
        }
        let (r, n) = (&mut self.reach, next.reach);
        (r.end, r.records, r.bytes, r.fault) =
            (n.end, r.records + n.records, r.bytes + n.bytes, n.fault);
        self.problem = next.problem;
        self.open_multi = match next.open_multi {
            Some(_) if next.open_multi == next.inherited => self.open_multi.or(next.open_multi),
            open => open,
        };
        true
    }
}

/// [`commands`] of the segments `range` of `epoch` (see [`records_in`]).
pub fn commands_in(
    epoch: &Epoch,
    range: Range<usize>,
    from: Option<u64>,
    f: &mut dyn FnMut(StreamCmd<'_, '_>) -> ControlFlow<()>,
) -> std::io::Result<Walked> {
    let mut problem = None;
    let mut multi = None;
    let mut inherited = None;
    let mut started = false;
    let first = range.start;
    let reach = records_in(epoch, range, from, &mut |_, r| {
        let db = r.at_start.db.map_or(0, u64::from);
        // A MULTI open before the first record read: its place is not known, the record's
        // start stands for it.
        let open = multi.or(r.at_start.multi.then_some(r.offset));
        if !started {
            (started, inherited) = (true, open);
        }
        let mut log = Log::piece(r.payload, r.offset, db, open);
        let mut known = r.at_start.db.is_some();
        while let Some(item) = log.next() {
            let logged = match item {
                Ok(l) => l,
                Err(p) => {
                    problem = Some(p);
                    return ControlFlow::Break(());
                }
            };
            known |= logged.kind == Kind::Select;
            if from.is_some_and(|o| logged.cmd.offset < o) {
                continue;
            }
            let cmd = StreamCmd {
                logged: &logged,
                time_us: r.time_us,
                db: known.then_some(logged.db),
            };
            f(cmd)?;
        }
        multi = log.open_multi();
        ControlFlow::Continue(())
    })?;
    Ok(Walked {
        first,
        reach,
        problem,
        open_multi: multi,
        inherited,
    })
}

/// Whether a command is the master's own traffic rather than a client's write: the `ping`
/// it sends every `repl-ping-replica-period`, and `REPLCONF GETACK`.
pub fn is_link_traffic(logged: &Logged<'_>) -> bool {
    let name = logged.cmd.name();
    logged.kind == Kind::Data
        && matches!(name.first().map(|b| b | 0x20), Some(b'p' | b'r'))
        && (name.eq_ignore_ascii_case(b"ping") || name.eq_ignore_ascii_case(b"replconf"))
}
