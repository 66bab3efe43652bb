//! The stream's bytes cut into batches for the target: whole commands, in order, split only
//! where no transaction of the source is open. The master's own `PING` and `REPLCONF` are not
//! applied (their bytes still count in the offsets); `SELECT` is followed, each command keeping
//! the database it runs in; the source's `MULTI` and `EXEC` are left out, as the batch is itself
//! one transaction on the target (a source transaction is never split across batches).

use std::ops::Range;

use crate::aof::log::{Kind, Log};
use crate::resp::parse::Problem;

/// One batch: commands (ranges of the bytes planned) and where its steps (a command, or a
/// source transaction) end.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each command: the database it runs in, its bytes and its key (within its bytes).
    pub cmds: Vec<(u64, Range<usize>, Range<usize>)>,
    /// Each step: its first command, and the bytes and database after it.
    pub steps: Vec<Step>,
    /// How many bytes the batch covers (whole commands, no transaction left open), and the
    /// database after them.
    pub end: usize,
    pub db: u64,
    /// The master asked for an ACK (`REPLCONF GETACK`) in those bytes.
    pub getack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub first: usize,
    pub end: usize,
    pub db: u64,
}

/// The next batch of `buf` (whose commands run in database `db` at its start): up to about
/// `max_cmds` commands or `max_bytes` bytes, never ending inside a source transaction or a
/// command still arriving. `end` is 0 when `buf` holds no whole step yet.
pub fn plan(buf: &[u8], db: u64, max_cmds: usize, max_bytes: usize) -> Result<Plan, String> {
    let mut plan = Plan {
        db,
        ..Plan::default()
    };
    let mut log = Log::piece(buf, 0, db, None);
    // The open transaction's first command.
    let mut open: Option<usize> = None;
    // The first command not yet in a step.
    let mut step_first = 0;
    while let Some(item) = log.next() {
        let e = match item {
            Ok(e) => e,
            Err(Problem::Truncated { .. }) => break,
            Err(Problem::Malformed { offset, what }) => {
                return Err(format!("bytes that are not a command at +{offset}: {what}"));
            }
        };
        let (offset, len) = (e.cmd.offset as usize, e.cmd.raw.len());
        let name = e.cmd.name();
        let settles = match e.kind {
            Kind::Data if name.eq_ignore_ascii_case(b"ping") => open.is_none(),
            Kind::Data if name.eq_ignore_ascii_case(b"replconf") => {
                plan.getack |= crate::backlog::replica::is_getack(&e.cmd);
                open.is_none()
            }
            Kind::Data => {
                let key = e.cmd.arg_ranges().get(1).cloned().unwrap_or(0..0);
                let raw = offset..offset + len;
                plan.cmds.push((e.db, raw, key));
                open.is_none()
            }
            Kind::Select => open.is_none(),
            Kind::Multi => {
                open = Some(plan.cmds.len());
                false
            }
            Kind::Exec => open.take().is_some(),
            Kind::BadSelect | Kind::NestedMulti | Kind::LoneExec => {
                return Err(format!(
                    "a command the master never sends at +{offset}: {}",
                    String::from_utf8_lossy(name)
                ));
            }
        };
        if !settles {
            continue;
        }
        if plan.cmds.len() > step_first {
            plan.steps.push(Step {
                first: step_first,
                end: offset + len,
                db: e.db,
            });
            step_first = plan.cmds.len();
        }
        (plan.end, plan.db) = (offset + len, e.db);
        if plan.cmds.len() >= max_cmds || plan.end >= max_bytes {
            break;
        }
    }
    plan.cmds.truncate(step_first);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        crate::resp::encode(&args)
    }

    #[test]
    fn cuts_whole_steps_and_keeps_transactions_whole() {
        let mut buf = resp(&["PING"]);
        buf.extend(resp(&["SELECT", "1"]));
        buf.extend(resp(&["SET", "k", "v"]));
        let multi_at = buf.len();
        buf.extend(resp(&["MULTI"]));
        buf.extend(resp(&["INCR", "a"]));
        buf.extend(resp(&["INCR", "b"]));
        buf.extend(resp(&["EXEC"]));
        let whole = buf.len();
        buf.extend(resp(&["REPLCONF", "GETACK", "*"]));
        let after_getack = buf.len();
        buf.extend(&resp(&["SET", "x", "y"])[..7]);
        let p = plan(&buf, 0, 100, 1 << 20).unwrap();
        assert_eq!((p.end, p.db, p.getack), (after_getack, 1, true));
        assert_eq!(p.cmds.len(), 3);
        assert!(p.cmds.iter().all(|c| c.0 == 1));
        let steps: Vec<(usize, usize)> = p.steps.iter().map(|s| (s.first, s.end)).collect();
        assert_eq!(steps, [(0, multi_at), (1, whole)]);
        assert_eq!(&buf[p.cmds[1].1.clone()][p.cmds[1].2.clone()], b"a");
        // A batch full after the first step stops there; an open transaction is left whole.
        let p = plan(&buf, 0, 1, 1 << 20).unwrap();
        assert_eq!((p.end, p.cmds.len()), (multi_at, 1));
        let p = plan(&buf[..whole - 14], 0, 100, 1 << 20).unwrap();
        assert_eq!((p.end, p.cmds.len()), (multi_at, 1));
        // Only pings: the bytes move on, no command.
        let p = plan(&resp(&["PING"]), 3, 100, 1 << 20).unwrap();
        assert_eq!((p.end, p.db, p.cmds.len()), (14, 3, 0));
        assert!(plan(b"*1\r\n$4\r\nPINGxx", 0, 100, 100).is_err());
    }
}
