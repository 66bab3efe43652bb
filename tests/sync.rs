//! `rdbtool sync` between real servers under a write load: once the load stops and the target
//! holds the master's whole stream (its progress key says `master_repl_offset`), the target's
//! `DEBUG DIGEST` is the master's. The progress key lives in the target, so the comparison is
//! made after the sync is stopped and the key deleted. Killed (SIGKILL) at random moments and
//! restarted with the same checkpoint, the sync continues by `PSYNC` every time (the master's
//! `sync_partial_ok` counts each restart, `sync_full` stays at 1) and no `INCRBY` or `LPUSH` is
//! applied twice or lost.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::aof::workload;
use common::backlog::{info, master_offset, num, stop, wait_for};
use common::server::{Build, Server, build};

/// A master that starts its snapshot at once and keeps a large backlog.
fn master(build: &Build) -> Server {
    Server::start_with(
        build,
        None,
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--repl-backlog-size",
            "64mb",
        ],
    )
}

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

/// `rdbtool sync` from `source` to `target` in the background.
fn spawn_sync(source: &Server, target: &Server, cp: &Path, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
        .args(["sync", "-q", "--from", &url(source), "--to", &url(target)])
        .arg("--checkpoint")
        .arg(cp)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rdbtool sync")
}

fn checkpoint(cp: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(cp).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The target's progress key, as the checkpoint names it.
fn progress_key(cp: &Path) -> String {
    let run = checkpoint(cp).expect("a checkpoint")["run_id"]
        .as_u64()
        .unwrap();
    format!("rdbtool-progress:{run:x}")
}

/// The offset the target's progress key holds.
fn applied(target: &Server, cp: &Path) -> Option<u64> {
    let text = target.cli(&["GET", &progress_key(cp)]);
    text.split_whitespace().next()?.parse().ok()
}

fn wait_synced(cp: &Path) {
    wait_for("the full sync", || {
        checkpoint(cp).is_some_and(|c| c["synced"] == true)
    });
}

/// Waits until the target holds the master's whole stream, the master quiet.
fn wait_caught_up(source: &Server, target: &Server, cp: &Path) {
    wait_for("the target to catch up with the master", || {
        let want = master_offset(source);
        applied(target, cp) == Some(want) && master_offset(source) == want
    });
}

/// Once the sync is stopped: the target, its progress key deleted, holds the master's data.
fn assert_same(source: &Server, target: &Server, cp: &Path, what: &str) {
    target.cli(&["DEL", &progress_key(cp)]);
    assert_eq!(target.digest(), source.digest(), "{what}");
}

/// Counters, lists and transactions of them until `done`: a doubled or lost write shows in
/// the digest.
fn load(master: &Server, done: &AtomicBool) {
    let mut b = 0u64;
    while !done.load(Ordering::SeqCst) {
        let mut cmds = Vec::new();
        for i in 0..20 {
            let n = format!("n:{i}");
            let v = format!("{b}-{i}");
            cmds.extend(rdbtool::resp::encode(&[b"INCRBY", n.as_bytes(), b"3"]));
            cmds.extend(rdbtool::resp::encode(&[b"LPUSH", b"l", v.as_bytes()]));
        }
        cmds.extend(rdbtool::resp::encode(&[b"MULTI"]));
        cmds.extend(rdbtool::resp::encode(&[b"INCR", b"m:a"]));
        cmds.extend(rdbtool::resp::encode(&[b"RPUSH", b"m:l", b"x"]));
        cmds.extend(rdbtool::resp::encode(&[b"EXEC"]));
        let (errors, _, text) = master.pipe(&cmds);
        assert_eq!(errors, 0, "{text}");
        b += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The load for `secs` seconds while `during` runs; then the load stops.
fn under_load(master: &Server, during: impl FnOnce()) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let loader = s.spawn(|| load(master, &done));
        during();
        done.store(true, Ordering::SeqCst);
        loader.join().unwrap();
    });
}

fn sync_under_load(source_build: &Build, target_build: &Build) {
    let source = master(source_build);
    let target = Server::start(target_build, None);
    let functions = true;
    workload(&source, "before", functions);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let status = tmp.path().join("status.json");
    let child = spawn_sync(
        &source,
        &target,
        &cp,
        &["--status", status.to_str().unwrap()],
    );
    wait_synced(&cp);
    under_load(&source, || {
        workload(&source, "during", functions);
        std::thread::sleep(Duration::from_secs(2));
    });
    wait_caught_up(&source, &target, &cp);
    wait_for("the status file", || {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status).unwrap_or_default()).unwrap_or_default();
        s["offset"].as_u64() == Some(master_offset(&source)) && s["lag_bytes"] == 0
    });
    let out = stop(child);
    assert!(out.contains("started with a full sync"), "{out}");
    assert!(out.contains(", 0 answered with an error"), "{out}");
    let what = format!("{} -> {}", source_build.name, target_build.name);
    assert_same(&source, &target, &cp, &what);
}

#[test]
fn redis_7_0_to_redis_7_0_under_load() {
    sync_under_load(&build("redis-7.0"), &build("redis-7.0"));
}

#[test]
fn valkey_9_1_to_redis_7_0_under_load() {
    sync_under_load(&build("valkey-9.1"), &build("redis-7.0"));
}

/// A small random generator (xorshift), seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn stats(server: &Server, name: &str) -> i64 {
    num(&info(server, "stats"), name)
}

#[test]
fn killed_ten_times_continues_every_time() {
    let b = build("redis-7.0");
    let source = master(&b);
    let target = Server::start(&b, None);
    workload(&source, "before", true);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let mut child = spawn_sync(&source, &target, &cp, &[]);
    wait_synced(&cp);
    assert_eq!(stats(&source, "sync_full"), 1);
    let partial = stats(&source, "sync_partial_ok");
    let mut rng = Rng::new();
    under_load(&source, || {
        for kill in 1..=10 {
            std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn_sync(&source, &target, &cp, &["--no-full-resync"]);
            let started = Instant::now();
            wait_for("the restarted sync's PSYNC", || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the sync restarted after kill {kill} ended with {status}");
                }
                stats(&source, "sync_partial_ok") == partial + kill
            });
            eprintln!("kill {kill}: continued after {:?}", started.elapsed());
        }
    });
    wait_caught_up(&source, &target, &cp);
    let out = stop(child);
    assert!(out.contains("1 link continued by PSYNC"), "{out}");
    assert_eq!(stats(&source, "sync_full"), 1, "{out}");
    assert_eq!(stats(&source, "sync_partial_ok"), partial + 10, "{out}");
    assert_same(&source, &target, &cp, "after 10 kills");
}

/// The target killed (SIGKILL) and restarted three times during the load, from its own AOF
/// (which holds every batch it answered) or from an RDB it saved a moment before (which lacks
/// the last batches: its progress key goes back, and the sync asks the master again from
/// there). The sync waits the restart out and ends with the master's data.
fn target_restarted(extra: &[&str], save_first: bool) {
    let b = build("redis-7.0");
    let source = master(&b);
    let mut target = Some(Server::start_with(&b, None, extra));
    workload(&source, "before", true);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let child = spawn_sync(&source, target.as_ref().unwrap(), &cp, &[]);
    wait_synced(&cp);
    under_load(&source, || {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(1000));
            let t = target.take().unwrap();
            if save_first {
                assert_eq!(t.cli(&["SAVE"]).trim(), "OK");
                std::thread::sleep(Duration::from_millis(300));
            }
            target = Some(t.kill_and_restart(&b, extra));
        }
        std::thread::sleep(Duration::from_secs(1));
    });
    let target = target.unwrap();
    wait_caught_up(&source, &target, &cp);
    let out = stop(child);
    assert_eq!(stats(&source, "sync_full"), 1, "{out}");
    if save_first {
        assert!(out.contains("the target went back to offset"), "{out}");
    }
    assert_same(
        &source,
        &target,
        &cp,
        &format!("after 3 target restarts\n{out}"),
    );
}

#[test]
fn target_killed_and_restarted_from_its_aof() {
    target_restarted(&["--appendonly", "yes", "--appendfsync", "everysec"], false);
}

#[test]
fn target_restarted_from_an_older_snapshot() {
    target_restarted(&[], true);
}

/// A command the target refuses when it is queued (`FUNCTION LOAD` into Redis 6.2) is counted
/// and shown, and only it is left out: the batch it was in goes again step by step. Exit 1.
#[test]
fn a_command_the_target_refuses_is_counted_and_the_rest_applied() {
    let source = master(&build("redis-7.0"));
    let target = Server::start(&build("redis-6.2"), None);
    workload(&source, "before", false);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let child = spawn_sync(&source, &target, &cp, &[]);
    wait_synced(&cp);
    let mut cmds = Vec::new();
    cmds.extend(rdbtool::resp::encode(&[b"SET", b"a", b"1"]));
    cmds.extend(rdbtool::resp::encode(&[
        b"FUNCTION",
        b"LOAD",
        b"#!lua name=lib\nredis.register_function('f', function() return 1 end)",
    ]));
    cmds.extend(rdbtool::resp::encode(&[b"RPUSH", b"b", b"x"]));
    let (errors, _, text) = source.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    wait_caught_up(&source, &target, &cp);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(", 1 answered with an error"), "{text}");
    assert!(text.contains("error: FUNCTION"), "{text}");
    assert_same(&source, &target, &cp, &text);
}

/// Stopped while the master writes more than its backlog holds: a restart is answered
/// `+FULLRESYNC`, explained; with `--no-full-resync` it stops (exit 2), without it syncs in
/// full again.
#[test]
fn a_gap_beyond_the_backlog_is_explained_and_synced_in_full_again() {
    let b = build("redis-7.0");
    let source = Server::start_with(
        &b,
        None,
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--repl-backlog-size",
            "16kb",
        ],
    );
    let target = Server::start(&b, None);
    workload(&source, "before", true);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let child = spawn_sync(&source, &target, &cp, &[]);
    wait_synced(&cp);
    wait_caught_up(&source, &target, &cp);
    stop(child);
    let big = "x".repeat(4096);
    for i in 0..300 {
        source.cli(&["SET", &format!("big:{i}"), &big]);
    }
    let (from, to) = (url(&source), url(&target));
    let cp_arg = cp.to_str().unwrap();
    let args = [
        "sync",
        "-q",
        "--from",
        &from,
        "--to",
        &to,
        "--checkpoint",
        cp_arg,
    ];
    let refused = common::rdbtool(&[&args[..], &["--no-full-resync"]].concat());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the master did not continue from offset"),
        "{err}"
    );
    assert!(err.contains("--no-full-resync"), "{err}");
    // The master counted the refused run's PSYNC as a full sync too.
    let full = stats(&source, "sync_full");
    let child = spawn_sync(&source, &target, &cp, &[]);
    wait_for("the next full sync", || {
        stats(&source, "sync_full") == full + 1
    });
    wait_synced(&cp);
    wait_caught_up(&source, &target, &cp);
    let out = stop(child);
    assert!(out.contains("a new full sync"), "{out}");
    assert_same(&source, &target, &cp, &out);
}

/// The source killed and restarted from its AOF: a new history (replid), so the sync's PSYNC
/// is answered `+FULLRESYNC`, which it explains and does; the target ends with the source's
/// data, the old progress key gone.
#[test]
fn a_restarted_source_is_synced_in_full_again() {
    let b = build("redis-7.0");
    let extra = [
        "--repl-diskless-sync-delay",
        "0",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let source = Server::start_with(&b, None, &extra);
    let target = Server::start(&b, None);
    workload(&source, "before", true);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("sync.json");
    let child = spawn_sync(&source, &target, &cp, &[]);
    wait_synced(&cp);
    under_load(&source, || std::thread::sleep(Duration::from_secs(1)));
    wait_caught_up(&source, &target, &cp);
    let replid = checkpoint(&cp).unwrap()["replid"].clone();
    let source = source.kill_and_restart(&b, &extra);
    wait_for("the full sync from the restarted source", || {
        stats(&source, "sync_full") == 1
            && checkpoint(&cp).is_some_and(|c| c["synced"] == true && c["replid"] != replid)
    });
    workload(&source, "after", true);
    wait_caught_up(&source, &target, &cp);
    let out = stop(child);
    assert!(out.contains("a new full sync"), "{out}");
    assert_same(&source, &target, &cp, &out);
}
