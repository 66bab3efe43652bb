//! `rdbtool backlog capture --continue` against real masters: a short break gets `+CONTINUE`
//! and the offsets go on without a gap; a break longer than the backlog gets `+FULLRESYNC`, a
//! second epoch in the same directory, as `psync-check` predicted from the master's INFO; a
//! capture killed (SIGKILL) at random moments, twenty times, loses no complete record and goes
//! on; `--from-backlog` keeps exactly the master's stream from its backlog's oldest command.

mod common;

use std::path::Path;
use std::time::Duration;

use common::backlog::{
    capture_json, info, kill, load, load_capture, master_offset, num, slice, spawn_capture, stop,
    syncs, verify, wait_caught_up, wait_for,
};
use common::server::{Build, Server, build};
use serde_json::Value;

fn url(master: &Server) -> String {
    format!("redis://127.0.0.1:{}", master.port)
}

/// A capture of `master` from before `batches` of load to after them, stopped with SIGINT.
fn first_capture(master: &Server, dir: &Path, batches: usize) {
    let child = spawn_capture(&[&url(master), "--out", dir.to_str().unwrap()]);
    wait_for("the snapshot", || dir.join("snapshot.1.rdb").exists());
    load(master, batches);
    wait_caught_up(dir, master);
    stop(child);
}

/// `backlog psync-check` on the master's `INFO replication` saved now, for a replica of the
/// capture in `dir` asking for the byte after its end: exit code and JSON answer.
fn predicted(master: &Server, dir: &Path) -> (i32, Value) {
    let saved = dir.with_extension("info.txt");
    std::fs::write(&saved, info(master, "replication")).unwrap();
    let meta = capture_json(dir);
    let epoch = meta["epochs"].as_array().unwrap().last().unwrap();
    let next = (epoch["end"].as_u64().unwrap() + 1).to_string();
    let out = common::rdbtool(&[
        "backlog",
        "psync-check",
        "--master-info",
        saved.to_str().unwrap(),
        "--replica-replid",
        epoch["replid"].as_str().unwrap(),
        "--psync-offset",
        &next,
        "--format",
        "json",
    ]);
    let answer = serde_json::from_slice(&out.stdout).expect("psync-check JSON");
    (out.status.code().unwrap(), answer)
}

/// `--continue DIR` while `batches` more are written, until caught up; its output.
fn continued(master: &Server, dir: &Path, batches: usize, snapshot: Option<&str>) -> String {
    let child = spawn_capture(&["--continue", dir.to_str().unwrap()]);
    if let Some(name) = snapshot {
        wait_for("the new epoch's snapshot", || dir.join(name).exists());
    }
    load(master, batches);
    wait_caught_up(dir, master);
    stop(child)
}

fn short_break(b: &Build) {
    let master = Server::start(b, None);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    first_capture(&master, &dir, 50);
    let end = master_offset(&master);
    load(&master, 50);

    let (code, answer) = predicted(&master, &dir);
    assert_eq!(
        (code, &answer["answer"]),
        (0, &"CONTINUE".into()),
        "{answer:#}"
    );
    let (full, partial) = syncs(&master);
    let out = continued(&master, &dir, 50, None);
    assert!(
        out.contains(&format!("continued (+CONTINUE) from offset {}", end + 1)),
        "{out}"
    );
    assert_eq!(syncs(&master), (full, partial + 1), "{out}");

    let (code, report) = verify(&dir);
    assert_eq!(code, 0, "{report:#}");
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 1, "{report:#}");
    assert_eq!(epochs[0]["end"].as_u64(), Some(master_offset(&master)));
    let meta = capture_json(&dir);
    assert_eq!(
        meta["epochs"][0]["continued_at"],
        serde_json::json!([end + 1])
    );
    let loaded = load_capture(b, &dir, None, &[]);
    assert_eq!(loaded.digest(), master.digest(), "{}", b.name);
}

#[test]
fn continue_after_a_short_break_redis_7_0_and_valkey_9_1() {
    short_break(&build("redis-7.0"));
    short_break(&build("valkey-9.1"));
}

#[test]
fn a_break_longer_than_the_backlog_starts_epoch_2() {
    let b = build("redis-7.0");
    let master = Server::start_with(&b, None, &["--repl-backlog-size", "16kb"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    first_capture(&master, &dir, 20);
    let before = master_offset(&master);
    load(&master, 200);
    assert!(master_offset(&master) - before > 4 * 16384);

    let (code, answer) = predicted(&master, &dir);
    assert_eq!(code, 1, "{answer:#}");
    assert_eq!(answer["answer"], "FULLRESYNC", "{answer:#}");
    let (full, partial) = syncs(&master);
    let out = continued(&master, &dir, 20, Some("snapshot.2.rdb"));
    assert_eq!(syncs(&master), (full + 1, partial), "{out}");
    let why = format!(
        "epoch 2: the master did not continue from offset {}: rule {}: {}",
        before + 1,
        answer["rule"].as_str().unwrap(),
        answer["reason"].as_str().unwrap()
    );
    assert!(out.contains(&why), "want {why:?} in:\n{out}");

    let (code, report) = verify(&dir);
    assert_eq!(code, 0, "{report:#}");
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2, "{report:#}");
    assert_eq!(epochs[0]["end"].as_u64(), Some(before), "{report:#}");
    assert_eq!(epochs[1]["end"].as_u64(), Some(master_offset(&master)));
    let loaded = load_capture(&b, &dir, None, &[]);
    assert_eq!(loaded.digest(), master.digest());
}

/// The JSON Lines rows of a slice without their arrival times (two captures of one stream
/// differ only there).
fn rows(jsonl: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(jsonl.to_vec()).unwrap();
    text.lines()
        .map(|l| {
            let mut row: Value = serde_json::from_str(l).unwrap();
            row.as_object_mut()
                .unwrap()
                .retain(|k, _| !k.contains("time"));
            row
        })
        .collect()
}

#[test]
fn from_backlog_keeps_the_masters_stream_from_its_oldest_command() {
    let b = build("redis-7.0");
    let master = Server::start_with(&b, None, &["--repl-backlog-size", "16kb"]);
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let child = spawn_capture(&[&url(&master), "--out", full.to_str().unwrap()]);
    wait_for("the snapshot", || full.join("snapshot.1.rdb").exists());
    load(&master, 100);
    wait_caught_up(&full, &master);
    let first = num(
        &info(&master, "replication"),
        "repl_backlog_first_byte_offset",
    ) as u64;

    let part = tmp.path().join("backlog");
    let other = spawn_capture(&[
        &url(&master),
        "--out",
        part.to_str().unwrap(),
        "--from-backlog",
    ]);
    load(&master, 20);
    wait_caught_up(&full, &master);
    wait_caught_up(&part, &master);
    stop(other);
    stop(child);

    let (code, report) = verify(&part);
    assert_eq!(code, 0, "{report:#}");
    let epoch = &capture_json(&part)["epochs"][0];
    assert_eq!(epoch["start_kind"], "backlog", "{epoch:#}");
    assert!(epoch.get("snapshot").is_none(), "{epoch:#}");
    assert!(!part.join("snapshot.1.rdb").exists());
    assert_eq!(epoch["psync_offset"].as_u64(), Some(first - 1), "{epoch:#}");
    let start = epoch["start"].as_u64().unwrap();
    assert_eq!(start, first + epoch["skipped"].as_u64().unwrap());

    // The full capture's first command at or after `first` starts where the backlog's does.
    let at_first = (first - 1).to_string();
    let out = common::rdbtool(&[
        "backlog",
        "slice",
        full.to_str().unwrap(),
        "--from",
        &at_first,
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    match out.status.success() {
        true => assert_eq!(start, first, "{said}"),
        false => assert!(
            said.contains(&format!("the next one starts at {start})")),
            "{said}"
        ),
    }
    let mut whole = rows(&slice(&full, start - 1, None, "jsonl"));
    let kept = rows(&slice(&part, start - 1, None, "jsonl"));
    // No SELECT came since the backlog's oldest byte: the database is not known, not guessed.
    assert!(kept.iter().all(|r| r.get("db").is_none()), "{:#}", kept[0]);
    whole
        .iter_mut()
        .for_each(|r| drop(r.as_object_mut().unwrap().remove("db")));
    assert_eq!(whole[0]["offset"].as_u64(), Some(start), "{:#}", whole[0]);
    assert!(kept.len() > 100);
    let differ = kept.iter().zip(&whole).position(|(k, w)| k != w);
    assert_eq!(
        differ,
        None,
        "kept {:?}, full {:?}",
        differ.map(|i| &kept[i]),
        differ.map(|i| &whole[i])
    );
    assert_eq!(kept.len(), whole.len());
}

/// What verify said of the capture between a kill and the `--continue` after it.
struct Seen {
    /// The last epoch: its number, whether it has its snapshot, its psync offset and end.
    epoch: u64,
    snapshot: bool,
    psync_offset: u64,
    end: u64,
    torn: bool,
    /// The slice of everything it holds (JSON Lines), when it has a snapshot.
    rows: Vec<u8>,
}

fn seen(dir: &Path) -> Option<Seen> {
    let (code, report) = verify(dir);
    assert_eq!(code, 0, "verify after a kill: {report:#}");
    let e = report["epochs"].as_array().unwrap().last()?;
    let snapshot = e["snapshot"]["status"] == "ok";
    let (psync_offset, end) = (e["psync_offset"].as_u64()?, e["end"].as_u64()?);
    let notices = e["notices"].to_string();
    Some(Seen {
        epoch: e["epoch"].as_u64()?,
        snapshot,
        psync_offset,
        end,
        torn: notices.contains("torn"),
        rows: match snapshot {
            true => slice(dir, psync_offset, Some(end), "jsonl"),
            false => Vec::new(),
        },
    })
}

/// A `--continue`'s output (printed as it began) against what verify saw before it.
fn check_continue(out: &str, before: &Option<Seen>, syncs_then: (i64, i64), syncs_now: (i64, i64)) {
    let Some(b) = before else {
        return assert_eq!(syncs_now.0, syncs_then.0 + 1, "{out}");
    };
    if b.torn {
        assert!(out.contains("cut a torn last record"), "{out}");
    }
    match b.snapshot {
        true => {
            let want = format!("continued (+CONTINUE) from offset {}", b.end + 1);
            assert!(out.contains(&want), "want {want:?}:\n{out}");
            assert_eq!(syncs_now, (syncs_then.0, syncs_then.1 + 1), "{out}");
        }
        false => {
            let want = format!("removed epoch {}: its snapshot never finished", b.epoch);
            assert!(out.contains(&want), "want {want:?}:\n{out}");
            assert_eq!(syncs_now, (syncs_then.0 + 1, syncs_then.1), "{out}");
        }
    }
}

/// Nothing complete that verify saw before is gone: the same epoch goes at least as far and
/// holds the same commands at the same offsets.
fn nothing_lost(before: &Option<Seen>, after: &Option<Seen>, dir: &Path) {
    let (Some(b), Some(a)) = (before, after) else {
        return;
    };
    if !b.snapshot {
        return;
    }
    assert_eq!((a.epoch, a.psync_offset), (b.epoch, b.psync_offset));
    assert!(a.end >= b.end, "end {} before, {} after", b.end, a.end);
    let again = slice(dir, b.psync_offset, Some(b.end), "jsonl");
    assert!(
        again == b.rows,
        "the records up to offset {} changed",
        b.end
    );
}

/// Cuts the open segment 3 bytes short, as a kill in the middle of writing its last record
/// leaves it. (Each record is one write(): SIGKILL did not split one here in practice.)
fn tear(dir: &Path) -> bool {
    let open = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-inprogress"));
    let Some(path) = open else {
        return false;
    };
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len.saturating_sub(3)).unwrap();
    len > 3
}

/// A capture started in the background and killed (SIGKILL) `delay` after it said how it
/// began (the master's answer to its PSYNC); all it printed.
fn killed_after(args: &[&str], delay: Duration) -> String {
    use std::io::BufRead;
    let mut child = spawn_capture(args);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    std::thread::sleep(delay);
    let rest = kill(child);
    reader.join().unwrap();
    let first = first.unwrap_or_else(|_| panic!("the capture said nothing:\n{rest}"));
    let lines: Vec<String> = std::iter::once(first).chain(rx.try_iter()).collect();
    format!("{}\n{rest}", lines.join("\n"))
}

/// Pseudo-random delays (no dependency): xorshift seeded from the clock, printed.
struct Delays(u64);

impl Delays {
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(lo + self.0 % (hi - lo))
    }
}

#[test]
fn killed_twenty_times_nothing_is_lost() {
    let b = build("redis-7.0");
    let master = Server::start_with(
        &b,
        None,
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    master.cli(&["DEBUG", "POPULATE", "4000", "pop", "100"]);
    // Each key takes 100 µs to save: a snapshot takes about 0.4 s, long enough to kill in.
    master.cli(&["CONFIG", "SET", "rdb-key-save-delay", "100"]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("delays seeded with {seed}");
    let mut delays = Delays(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let d = dir.to_str().unwrap();
    let loading = std::sync::atomic::AtomicBool::new(true);
    let (mut torn, mut in_snapshot) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while loading.load(std::sync::atomic::Ordering::SeqCst) {
                load(&master, 1);
            }
        });
        let mut before: Option<Seen> = None;
        for round in 0..20 {
            if round == 3 {
                master.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
            }
            let then = syncs(&master);
            let source = url(&master);
            let args: &[&str] = match round {
                0 => &[&source, "--out", d],
                _ => &["--continue", d],
            };
            let out = killed_after(
                args,
                match round {
                    0..=2 => delays.ms(0, 300),
                    _ => delays.ms(0, 600),
                },
            );
            check_continue(&out, &before, then, syncs(&master));
            let mut after = seen(&dir);
            nothing_lost(&before, &after, &dir);
            if round % 6 == 5 && tear(&dir) {
                after = seen(&dir);
                assert!(after.as_ref().is_some_and(|a| a.torn), "the cut is seen");
            }
            torn += after.as_ref().is_some_and(|a| a.torn) as u32;
            in_snapshot += after.as_ref().is_some_and(|a| !a.snapshot) as u32;
            before = after;
        }
        loading.store(false, std::sync::atomic::Ordering::SeqCst);
        let then = syncs(&master);
        let child = spawn_capture(&["--continue", d]);
        wait_caught_up(&dir, &master);
        let out = stop(child);
        check_continue(&out, &before, then, syncs(&master));
        nothing_lost(&before, &seen(&dir), &dir);
    });
    eprintln!("{in_snapshot} kills during a snapshot, {torn} torn tails");
    assert!(in_snapshot >= 3, "{in_snapshot} kills during a snapshot");
    assert!(torn >= 3, "{torn} torn tails");
    let loaded = load_capture(&b, &dir, None, &[]);
    assert_eq!(loaded.digest(), master.digest());
}
