//! Tests of backlog inspect's pass (`report`).

use super::*;
use crate::backlog::sizing::tests::writer;
use crate::resp::text as resp;

const S: u64 = 1_000_000;

/// The records of the test capture: arrival and commands.
fn records() -> Vec<(u64, Vec<Vec<&'static str>>)> {
    let big = "x".repeat(100).leak();
    vec![
        (
            10 * S,
            vec![
                vec!["SET", "early", "v"],
                vec!["SELECT", "0"],
                vec!["SET", "user:1", "v"],
                vec!["SET", "user:2", big],
            ],
        ),
        (10 * S + S / 2, vec![vec!["PING"]]),
        (
            11 * S,
            vec![
                vec!["MULTI"],
                vec!["INCR", "cnt"],
                vec!["HSET", "order:9", "f", "v"],
                vec!["EXEC"],
            ],
        ),
        (12 * S, vec![vec!["REPLCONF", "GETACK", "*"]]),
        (
            20 * S,
            vec![vec!["SELECT", "3"], vec!["DEL", "user:3", "session:x:y"]],
        ),
    ]
}

fn len(cmd: &[&str]) -> u64 {
    resp(cmd).len() as u64
}

#[test]
fn one_pass_counts_writes_overhead_prefixes_peaks_and_the_largest() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    for (t, cmds) in records() {
        let payload: String = cmds.iter().map(|c| resp(c)).collect();
        let after = w.at_end().after(payload.as_bytes());
        w.append(payload.as_bytes(), after, t).unwrap();
    }
    w.seal().unwrap();
    let capture = Capture::open(dir.path()).unwrap();
    let opts = Options {
        top: 2,
        delimiter: b':',
        depth: 1,
    };
    let r = inspect(&capture, &opts).unwrap();
    let all: Vec<Vec<&str>> = records().into_iter().flat_map(|(_, c)| c).collect();
    let total: u64 = all.iter().map(|c| len(c)).sum();
    assert_eq!((r.commands, r.bytes), (12, total));
    assert_eq!(r.epochs[0].end, 100 + total);
    assert!(!r.epochs[0].damaged() && r.epochs[0].fault.is_none());
    assert_eq!(
        (r.first_us, r.last_us, r.seconds),
        (Some(10 * S), Some(20 * S), 11)
    );
    let o = &r.overhead;
    assert_eq!((o.ping.count, o.ping.bytes), (1, len(&["PING"])));
    let getack = len(&["REPLCONF", "GETACK", "*"]);
    assert_eq!(
        (o.replconf_getack.count, o.replconf_getack.bytes),
        (1, getack)
    );
    let counts = [o.select.count, o.multi.count, o.exec.count];
    assert_eq!(counts, [2, 1, 1]);
    let overhead = [o.ping, o.replconf_getack, o.select, o.multi, o.exec];
    let overhead: u64 = overhead.iter().map(|t| t.bytes).sum();
    assert_eq!((r.writes.count, r.writes.bytes), (6, total - overhead));
    let dbs: Vec<(Option<u64>, u64)> = r.dbs.iter().map(|d| (d.db, d.writes)).collect();
    assert_eq!(dbs, [(None, 1), (Some(0), 4), (Some(3), 1)]);
    let set = r.by_name.iter().find(|n| n.name == "SET").unwrap();
    assert_eq!(set.count, 3);
    let k = &r.keys;
    assert_eq!(
        (k.writes, k.writes_without_prefix, k.writes_without_keys),
        (7, 2, 0)
    );
    let prefixes: Vec<(&str, u64)> = r
        .prefixes
        .iter()
        .map(|p| (p.prefix.as_str(), p.writes))
        .collect();
    assert_eq!(prefixes, [("user:", 3), ("order:", 1), ("session:", 1)]);
    // Second 10: the first record and the PING; 11: the MULTI block; 20: the DEL.
    let second = |i: usize| -> u64 { records()[i].1.iter().map(|c| len(c)).sum() };
    let (s10, s11, s12, s20) = (second(0) + second(1), second(2), second(3), second(4));
    let peak = |seconds, bytes, commands| Peak {
        seconds,
        bytes,
        bytes_from: Some(10),
        commands,
        commands_from: Some(10),
    };
    let want = [
        peak(1, s10, 3),
        peak(10, s10 + s11 + s12, 5),
        peak(60, total, 6),
    ];
    assert_eq!(r.peaks, want);
    assert!(s20 < s10);
    let largest: Vec<(&str, Option<&str>, u64)> = r
        .largest
        .iter()
        .map(|l| (l.command.as_str(), l.key.as_deref(), l.offset))
        .collect();
    let at_big = 101 + len(&all[0]) + len(&all[1]) + len(&all[2]);
    let at_del = 101 + total - len(&all[11]);
    assert_eq!(
        largest,
        [
            ("SET", Some("user:2"), at_big),
            ("DEL", Some("user:3"), at_del)
        ]
    );
}

#[test]
fn prefixes_past_the_cap_are_counted_apart() {
    let mut p = Prefixes::new(b':', 1);
    let keys: Vec<String> = (0..MAX_PER_LEVEL + 5).map(|i| format!("p{i}:k")).collect();
    for key in &keys {
        p.add_write(0, key.as_bytes(), 1);
    }
    let rows = prefix_rows(p);
    assert_eq!(rows.len(), MAX_PER_LEVEL + 1);
    let last = rows.last().unwrap();
    assert_eq!((last.prefix.as_str(), last.writes), (OTHER, 5));
}
