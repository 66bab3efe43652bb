//! The walks of AOF inspect: a large log's commands are read by two threads, as `verify`
//! reads them (see [`crate::aof::check::check_split`]): the second from a command boundary
//! near the middle of the log (after an `EXEC` where there is one), while the first reads up
//! to it. Each counts what it reads on its own (names, databases, times, keys in its own
//! sketch); the second's counts are merged into the first's once the first stands at the
//! boundary, where the database and time the second started in are known. If the first does
//! not stop there (the boundary was inside an argument, or a transaction is open there), it
//! reads on alone.

use super::Options;
use super::aof::{Tally, UNKNOWN_DB};
use crate::aof::check::{SPLIT_MIN, boundary_after};
use crate::aof::input::{AofInput, Error, Resume};

/// Walks all of `input`'s commands: on two threads when there are cores for it and at least
/// [`SPLIT_MIN`] bytes of commands, else on this one.
pub(super) fn walk(input: &AofInput, opts: &Options) -> (Result<(), Error>, Tally) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match split_point(input).filter(|_| cores >= 2) {
        Some((part, boundary)) => walk_split(input, opts, part, boundary),
        None => {
            let mut tally = Tally::new(input, opts);
            let walked = tally.walk_parts(input, 0..input.parts.len(), None);
            (walked.map(drop), tally)
        }
    }
}

/// A command boundary near the middle of the log's commands: the file it is in, and its
/// offset there. None for a log of fewer than [`SPLIT_MIN`] bytes of commands.
fn split_point(input: &AofInput) -> Option<(usize, usize)> {
    let commands = |p: &crate::aof::input::OpenPart| p.data().len() - p.resp_start;
    let total: usize = input.parts.iter().map(commands).sum();
    if total < SPLIT_MIN {
        return None;
    }
    let mut half = total / 2;
    for (i, part) in input.parts.iter().enumerate() {
        if half < commands(part) {
            return boundary_after(part.data(), part.resp_start + half).map(|b| (i, b));
        }
        half -= commands(part);
    }
    None
}

/// Walks the log on two threads, the second from `boundary` in file `part`.
fn walk_split(
    input: &AofInput,
    opts: &Options,
    part: usize,
    boundary: usize,
) -> (Result<(), Error>, Tally) {
    let last = input.parts.len();
    std::thread::scope(|s| {
        let second = s.spawn(move || {
            let mut tally = Tally::new(input, opts);
            let from = Resume {
                at: boundary,
                db: UNKNOWN_DB,
                ts: None,
            };
            let walked = tally
                .walk_part(input, part, from, None)
                .and_then(|end| tally.walk_parts(input, part + 1..last, end.ts));
            (walked.map(drop), tally)
        });
        let mut first = Tally::new(input, opts);
        let start = input.parts[part].resp_start;
        let here = first.walk_parts(input, 0..part, None).and_then(|ts| {
            let from = Resume {
                at: start,
                db: 0,
                ts,
            };
            first.walk_part(input, part, from, Some(boundary))
        });
        let at = match here {
            Ok(at) if at.at == boundary => at,
            // Read on alone past the boundary: the second walk's counts are not needed.
            Ok(end) => {
                let walked = first.walk_parts(input, part + 1..last, end.ts);
                return (walked.map(drop), first);
            }
            Err(e) => return (Err(e), first),
        };
        let (walked, second) = second.join().expect("the second walk panicked");
        if second.clash {
            // It read a SELECT of the database number it stood for the unknown one with.
            let walked = first
                .walk_part(input, part, at, None)
                .and_then(|end| first.walk_parts(input, part + 1..last, end.ts));
            return (walked.map(drop), first);
        }
        first.merge(second, at);
        (walked, first)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::text as resp;

    fn options() -> Options {
        Options {
            filter: Default::default(),
            top: 5,
            delimiter: b':',
            depth: 2,
            now_ms: 0,
            memory_model: None,
            allocator: Default::default(),
        }
    }

    /// A log of several databases, times and transactions, its keys few enough that the
    /// sketch counts them exactly.
    fn log() -> String {
        let mut log = resp(&["SET", "first", "x"]);
        for i in 0..60 {
            if i % 9 == 4 {
                log += &format!("#TS:{}\r\n", 1_700_000_000 + i * 17);
            }
            if i % 13 == 6 {
                log += &resp(&["SELECT", &(i % 4).to_string()]);
            }
            let key = format!("user:{}:n", i % 7);
            match i % 5 {
                0 => log += &[resp(&["MULTI"]), resp(&["INCR", &key]), resp(&["EXEC"])].concat(),
                1 => log += &resp(&["PEXPIREAT", &key, "1700000000000"]),
                2 => log += &resp(&["SET", &format!("s:{i}"), &"v".repeat(i), "EX", "9"]),
                3 => log += &resp(&["FLUSHALL"]),
                _ => log += &resp(&["MSET", &key, "1", "other:k", "2"]),
            }
        }
        log
    }

    /// What inspect reports, as JSON.
    fn json(tally: Tally) -> String {
        serde_json::to_string(&tally.finish(5)).unwrap()
    }

    #[test]
    fn two_walks_merged_report_what_one_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof");
        let log = log();
        std::fs::write(&path, &log).unwrap();
        let input = AofInput::open(&path).unwrap();
        let opts = options();
        let mut one = Tally::new(&input, &opts);
        one.walk_parts(&input, 0..1, None).unwrap();
        let one = json(one);
        assert!(one.contains("\"writes_bound\":0"), "{one}");
        // Every command start (inside a transaction too) and a place inside an argument.
        let starts = log.match_indices("*").map(|(at, _)| at);
        for boundary in starts.chain([log.find("first").unwrap()]) {
            let (walked, two) = walk_split(&input, &opts, 0, boundary);
            walked.unwrap();
            assert_eq!(json(two), one, "split at {boundary}");
        }
    }
}
