//! `rdbtool replay` of AOFs written by real servers: a multi-part appendonlydir in load order,
//! single files with an RDB preamble, and exactly once after a cut: the tool or the target
//! killed (-9) in the middle of a load of non-idempotent commands, then `--resume`, gives the
//! source's state exactly (no INCR or LPUSH applied twice, none lost).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::replay;
use common::server::{Build, Server, build};
use rdbtool::resp;

fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port)
}

/// `n` groups of non-idempotent writes (INCR, LPUSH, APPEND, HINCRBY), every 10th group inside
/// MULTI/EXEC and every 100th in database 1; about 4.4 commands per group.
fn workload(n: usize, seed: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cmd = |args: &[&str]| {
        let mut c = resp::Command::new(args[0]);
        for a in &args[1..] {
            c.arg(a.as_bytes());
        }
        c.write_to(&mut out).unwrap();
    };
    for i in seed..seed + n {
        let tx = i % 10 == 0;
        let other_db = i % 100 == 0;
        if other_db {
            cmd(&["SELECT", "1"]);
        }
        if tx {
            cmd(&["MULTI"]);
        }
        cmd(&["INCR", &format!("c:{}", i % 500)]);
        cmd(&["LPUSH", &format!("l:{}", i % 300), &i.to_string()]);
        cmd(&["APPEND", &format!("s:{}", i % 200), "x"]);
        cmd(&[
            "HINCRBY",
            &format!("h:{}", i % 100),
            &format!("f{}", i % 7),
            "1",
        ]);
        if tx {
            cmd(&["EXEC"]);
        }
        if other_db {
            cmd(&["SELECT", "0"]);
        }
    }
    out
}

fn run_workload(source: &Server, n: usize, seed: usize) {
    let (errors, _, text) = source.pipe(&workload(n, seed));
    assert_eq!(errors, 0, "{text}");
}

fn rewrite(source: &Server) {
    source.cli(&["BGREWRITEAOF"]);
    let start = Instant::now();
    loop {
        let info = source.cli(&["INFO", "persistence"]);
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "rewrite: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The source's counters, lists' lengths and strings' lengths, for exact comparison.
fn values(s: &Server) -> String {
    let mut out = String::new();
    for k in [0, 1, 77, 499] {
        out += &s.cli(&["GET", &format!("c:{k}")]);
    }
    for k in [0, 150, 299] {
        out += &s.cli(&["LLEN", &format!("l:{k}")]);
    }
    out += &s.cli(&["STRLEN", "s:3"]);
    out += &s.cli(&["HGET", "h:5", "f5"]);
    out += &s.cli(&["-n", "1", "GET", "c:0"]);
    out
}

/// A Redis 7.0 source with `appendonly yes`, after `groups` groups of the workload.
fn source_aof(b: &Build, groups: usize, preamble: &str) -> (Server, PathBuf) {
    let conf = [
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        preamble,
        "--appendfsync",
        "always",
    ];
    let source = Server::start_with(b, None, &conf);
    run_workload(&source, groups, 0);
    let dir = source.dir.path().join("appendonlydir");
    (source, dir)
}

fn checkpoint(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The tool killed (-9) at three points of a load of ~150k commands, then `--resume`: the
/// target ends exactly as the source, and the progress key is gone.
#[test]
fn killed_tool_resumes_exactly_once() {
    let b = build("redis-7.0");
    let (source, dir) = source_aof(&b, 34_000, "no");
    let (want, want_values) = (source.digest(), values(&source));
    for delay in [1300u64, 400, 2300] {
        // The first time, the incr file alone (the base is empty): a single RESP file.
        let input = match delay {
            1300 => dir.join("appendonly.aof.1.incr.aof"),
            _ => dir.clone(),
        };
        let dir = &input;
        let target = Server::start(&b, None);
        let tmp = tempfile::tempdir().unwrap();
        let cp = tmp.path().join("cp.json");
        let cp_arg = cp.to_str().unwrap();
        let mut child = common::spawn_replay(
            dir,
            &url(&target),
            &[
                "--checkpoint",
                cp_arg,
                "--pipeline",
                "300",
                "--max-ops-per-sec",
                "50000",
            ],
        );
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "{delay} ms: it ended before the kill"
        );
        let mid = target.digest();
        assert_ne!(mid, want, "{delay} ms: already complete when killed");
        let (code, out, err) = replay(dir, &url(&target), &["--checkpoint", cp_arg, "--resume"]);
        assert_eq!(code, 0, "{delay} ms: {out}{err}");
        assert_eq!(values(&target), want_values, "{delay} ms");
        assert_eq!(target.digest(), want, "{delay} ms: {out}{err}");
        assert!(checkpoint(&cp)["complete"] == true);
        let left = target.cli(&["--scan", "--pattern", "rdbtool-progress:*"]);
        assert_eq!(left.trim(), "", "{delay} ms: the progress key stays");
    }
}

/// The target killed (-9) mid-run and restarted from its own AOF (fsync always): the tool
/// gives up, `--resume` reads the progress key the target kept, and nothing is doubled.
#[test]
fn killed_target_resumes_exactly_once() {
    let b = build("redis-7.0");
    let (source, dir) = source_aof(&b, 30_000, "yes");
    let (want, want_values) = (source.digest(), values(&source));
    let durable = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut target = Server::start_with(&b, None, &durable);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("cp.json");
    let cp_arg = cp.to_str().unwrap();
    let child = common::spawn_replay(
        &dir,
        &url(&target),
        &[
            "--checkpoint",
            cp_arg,
            "--retry-timeout",
            "1",
            "--pipeline",
            "200",
            "--max-ops-per-sec",
            "40000",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    target.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let target = target.kill_and_restart(&b, &durable);
    let (code, out, err) = replay(&dir, &url(&target), &["--checkpoint", cp_arg, "--resume"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(values(&target), want_values);
    assert_eq!(target.digest(), want, "{out}{err}");
}

/// An appendonlydir of a base and incr files (after BGREWRITEAOF), given as the directory or
/// its manifest, replays in load order to the source's state; the kind found is said.
#[test]
fn multi_part_replays_in_load_order() {
    let b = build("redis-7.0");
    for preamble in ["yes", "no"] {
        let (source, dir) = source_aof(&b, 3_000, preamble);
        rewrite(&source);
        run_workload(&source, 2_000, 5_000);
        source.cli(&["SET", "after", "the rewrite"]);
        let want = source.digest();
        let manifest = dir.join("appendonly.aof.manifest");
        for input in [&dir, &manifest] {
            let target = Server::start(&b, None);
            let (code, out, err) = replay(input, &url(&target), &[]);
            assert_eq!(code, 0, "{out}{err}");
            let base = if preamble == "yes" { "RDB" } else { "RESP" };
            let kind = format!("AOF: appendonlydir with manifest, base ({base}) + 1 incr file");
            assert!(out.contains(&kind), "{out}");
            assert_eq!(target.digest(), want, "preamble {preamble}: {out}{err}");
        }
    }
}

/// Single files with an RDB preamble: Redis 6.2's appendonly.aof, and a Valkey 9.1
/// appendonlydir into Valkey 9.1.
#[test]
fn preamble_files_of_redis_6_2_and_valkey_9_1() {
    // appendfsync always: a command is in the file before its reply, so the file is whole
    // when the workload's last reply is read.
    let (b, source) = common::aof::start("redis-6.2", &["--aof-use-rdb-preamble", "yes"]);
    run_workload(&source, 2_000, 0);
    rewrite(&source);
    run_workload(&source, 1_000, 7_000);
    let aof = source.dir.path().join("appendonly.aof");
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&aof, &url(&target), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("AOF: a single file, RDB preamble + RESP"),
        "{out}"
    );
    assert_eq!(target.digest(), source.digest(), "{out}{err}");

    let (v, source) = common::aof::start("valkey-9.1", &["--aof-use-rdb-preamble", "yes"]);
    run_workload(&source, 2_000, 0);
    rewrite(&source);
    run_workload(&source, 1_000, 7_000);
    let dir = source.dir.path().join("appendonlydir");
    let target = Server::start(&v, None);
    let (code, out, err) = replay(&dir, &url(&target), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(target.digest(), source.digest(), "{out}{err}");
}

/// Error replies: a command refused when it runs (WRONGTYPE inside EXEC) fails alone and the
/// rest of its batch applies; a command refused when queued (NOPERM: EXECABORT) makes its batch
/// go again one AOF command (or transaction) at a time, so only the refused ones fail.
#[test]
fn error_replies_fail_only_their_commands() {
    let b = build("redis-7.0");
    let (source, dir) = source_aof(&b, 2_000, "no");
    let counter = |s: &Server, k: &str| s.cli(&["GET", k]).trim().to_string();

    // APPEND s:1 (groups 1, 201, ... 1801: outside MULTI) meets a list.
    let target = Server::start(&b, None);
    target.cli(&["RPUSH", "s:1", "list"]);
    let (code, out, err) = replay(&dir, &url(&target), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("failed keys by error: WRONGTYPE: 10"), "{out}");
    for k in ["c:0", "c:1", "l:7", "h:3"] {
        assert_eq!(target.cli(&["DUMP", k]), source.cli(&["DUMP", k]), "{k}");
    }

    // HINCRBY refused to the target's user: 1,800 alone and 200 transactions fail whole.
    let target = Server::start(&b, None);
    target.cli(&["ACL", "SETUSER", "default", "-hincrby"]);
    let (code, out, err) = replay(&dir, &url(&target), &["--pipeline", "500"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("failed keys by error: NOPERM: 2000"), "{out}");
    // c:1 is written outside transactions (groups 1, 501, ...), c:0 only inside them.
    assert_eq!(counter(&target, "c:1"), counter(&source, "c:1"));
    assert_eq!(counter(&target, "c:0"), "");
    assert_eq!(target.cli(&["EXISTS", "h:1"]).trim(), "0");
    let left = target.cli(&["--scan", "--pattern", "rdbtool-progress:*"]);
    assert_eq!(left.trim(), "", "the progress key stays");
}

/// The rewrite child killed: the next rewrite's incr file stays beside the first, so the
/// manifest lists a base and several incr files, replayed in order.
#[test]
fn several_incr_files_replay_in_order() {
    let b = build("redis-7.0");
    let (source, dir) = source_aof(&b, 1_000, "yes");
    source.cli(&["CONFIG", "SET", "rdb-key-save-delay", "100000"]);
    for round in 0..2 {
        source.cli(&["BGREWRITEAOF"]);
        run_workload(&source, 500, 10_000 * (round + 1));
        common::aof::kill_rewrite_child(&source);
        let start = Instant::now();
        while !source
            .cli(&["INFO", "persistence"])
            .contains("aof_rewrite_in_progress:0")
        {
            assert!(start.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    run_workload(&source, 500, 50_000);
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    assert_eq!(manifest.matches("type i").count(), 3, "{manifest}");
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&dir, &url(&target), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("base (RDB) + 3 incr files"), "{out}");
    assert_eq!(target.digest(), source.digest(), "{out}{err}");
}

/// Copies an appendonlydir (the test then cuts its copy).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A log cut inside a transaction (complete commands after its MULTI): the transaction is left
/// out, said; cut inside a command: the replay stops there, naming the file and the offset.
/// A resume against another log, or into a target that lost the progress key, is refused.
#[test]
fn cut_logs_and_refused_resumes() {
    let b = build("redis-7.0");
    let (source, dir) = source_aof(&b, 3_000, "no");
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut");
    copy_dir(&dir, &cut);
    let incr = cut.join("appendonly.aof.1.incr.aof");
    let data = std::fs::read(&incr).unwrap();
    let multi = b"*1\r\n$5\r\nMULTI\r\n";
    let at = data.windows(multi.len()).rposition(|w| w == multi).unwrap();
    // MULTI and its INCR, complete.
    let incr_len = data[at + multi.len()..]
        .windows(multi.len())
        .position(|w| w.starts_with(b"*3\r\n$5\r\nLPUSH"))
        .unwrap();
    std::fs::write(&incr, &data[..at + multi.len() + incr_len]).unwrap();
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&cut, &url(&target), &[]);
    assert_eq!(code, 0, "{out}{err}");
    let said =
        format!("the log ends inside the MULTI at offset {at}: that transaction (1 command) was");
    assert!(err.contains(&said), "{err}");
    assert!(
        err.contains("appendonly.aof.1.incr.aof (incr, seq 1)"),
        "{err}"
    );

    // Cut inside the INCR after MULTI.
    std::fs::write(&incr, &data[..at + multi.len() + 5]).unwrap();
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&cut, &url(&target), &[]);
    assert_eq!(code, 1, "{out}{err}");
    let said = format!(
        "appendonly.aof.1.incr.aof (incr, seq 1): offset {}: the input ends inside a command",
        at + multi.len()
    );
    assert!(err.contains(&said), "{err}");

    // A checkpoint of the whole log: refused for the cut one; and into a target that lost
    // the progress key.
    let cp = tmp.path().join("cp.json");
    let cp_arg = cp.to_str().unwrap();
    let target = Server::start(&b, None);
    let args = ["--checkpoint", cp_arg, "--max-ops-per-sec", "5000"];
    let mut child = common::spawn_replay(&dir, &url(&target), &args);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let resume = ["--checkpoint", cp_arg, "--resume"];
    let (code, _, err) = replay(&cut, &url(&target), &resume);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checkpoint is for another file"), "{err}");
    assert!(checkpoint(&cp)["offset"].as_u64().unwrap() > 0);
    target.cli(&["FLUSHALL"]);
    let (code, _, err) = replay(&dir, &url(&target), &resume);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no progress key"), "{err}");
    drop(source);
}

/// Round `r` of the sliced workload: strings, counters (some inside MULTI/EXEC with keys of
/// both prefixes), and writes in database 1.
fn round(r: u64) -> Vec<String> {
    let lines = "SET a:{r} v{r};INCR a:count;INCR b:count;MULTI;INCR a:count;INCR b:count;EXEC;\
                 MULTI;LPUSH b:list {r};EXEC;SELECT 1;INCR a:count;LPUSH l:{r} x;SELECT 0";
    let r = r.to_string();
    lines.split(';').map(|l| l.replace("{r}", &r)).collect()
}

/// A Redis 7.0 appendonlydir (RDB base, `#TS` annotations) of three rounds, each in its own
/// second: the server, the directory, round 2's second, and the incr file's size before round 3.
fn timed_aof() -> (Server, PathBuf, u64, u64) {
    let conf = [
        "--aof-timestamp-enabled",
        "yes",
        "--aof-use-rdb-preamble",
        "yes",
    ];
    let (_, source) = common::aof::start("redis-7.0", &conf);
    let dir = common::aof::aof_dir(&source);
    let incr = dir.join("appendonly.aof.1.incr.aof");
    let (mut t2, mut size) = (0, 0);
    for r in 1..=3 {
        common::aof::after_second(common::aof::now());
        let t = common::aof::now();
        if r == 3 {
            size = std::fs::metadata(&incr).unwrap().len();
        }
        let lines = round(r);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        common::aof::send(&source, &refs);
        assert_eq!(common::aof::now(), t, "round {r} crossed a second");
        t2 = if r == 2 { t } else { t2 };
    }
    (source, dir, t2, size)
}

/// `replay` of an AOF takes export's slice options: `--since/--until` gives what export's
/// slice piped into a server gives (and what a server that ran that round alone holds, the RDB
/// base left out with a notice); `--db`, `--key`, `--command` and `--from-offset FILE:N` keep
/// exactly their commands; an RDB source refuses them.
#[test]
fn sliced_replay_keeps_exactly_the_selected_commands() {
    let b = build("redis-7.0");
    let (source, dir, t2, size) = timed_aof();
    let sliced = |extra: &[&str]| {
        let target = Server::start(&b, None);
        let (code, out, err) = replay(&dir, &url(&target), extra);
        assert_eq!(code, 0, "{extra:?}: {out}{err}");
        (target, err)
    };
    let t = t2.to_string();
    let (target, err) = sliced(&["--since", &t, "--until", &t]);
    assert!(err.contains("the RDB base is left out"), "{err}");
    let exported = common::rdbtool(&[
        "export",
        dir.to_str().unwrap(),
        "--format",
        "resp",
        "--since",
        &t,
        "--until",
        &t,
    ]);
    assert_eq!(exported.status.code(), Some(0));
    let piped = Server::start(&b, None);
    assert_eq!(piped.pipe(&exported.stdout).0, 0);
    assert_eq!(target.digest(), piped.digest());
    let ran = |r| common::aof::ran("redis-7.0", &round(r)).digest();
    assert_eq!(target.digest(), ran(2));

    let get = |s: &Server, db: &str, cmd: &str, key: &str| {
        let args = ["-n", db, cmd, key];
        let n = if key.is_empty() { 3 } else { 4 };
        s.cli(&args[..n]).trim().to_string()
    };
    let (db1, _) = sliced(&["--db", "1"]);
    assert_eq!(get(&db1, "1", "GET", "a:count"), "3");
    assert_eq!(get(&db1, "1", "LLEN", "l:2"), "1");
    assert_eq!(get(&db1, "0", "DBSIZE", ""), "0");
    let (keys, _) = sliced(&["--key", "a:*"]);
    assert_eq!(get(&keys, "0", "GET", "a:count"), "6");
    assert_eq!(get(&keys, "0", "GET", "a:3"), "v3");
    assert_eq!(get(&keys, "1", "GET", "a:count"), "3");
    assert_eq!(
        get(&keys, "0", "EXISTS", "b:count") + &get(&keys, "0", "EXISTS", "b:list"),
        "00"
    );
    assert_eq!(get(&keys, "1", "DBSIZE", ""), "1");
    let (incr, err) = sliced(&["--command", "INCR"]);
    assert!(err.contains("the RDB base is left out"), "{err}");
    assert_eq!(
        get(&incr, "0", "GET", "a:count") + &get(&incr, "0", "GET", "b:count"),
        "66"
    );
    assert_eq!(
        get(&incr, "0", "DBSIZE", "") + &get(&incr, "1", "DBSIZE", ""),
        "21"
    );
    // The units of a cluster target (here a dry run's) take the same slice.
    let (code, out, err) = replay(&dir, &url(&incr), &["--dry-run", "--command", "INCR"]);
    assert!(
        code == 0 && out.contains("(3 EXEC, 15 INCR, 3 MULTI, "),
        "{out}{err}"
    );
    let from = format!("appendonly.aof.1.incr.aof:{size}");
    let (round3, _) = sliced(&["--from-offset", &from]);
    assert_eq!(round3.digest(), ran(3));
    // One file, the RDB as its preamble: the same slice.
    let one = source.dir.path().join("one.aof");
    let files = ["appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof"];
    std::fs::write(
        &one,
        files.map(|f| std::fs::read(dir.join(f)).unwrap()).concat(),
    )
    .unwrap();
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&one, &url(&target), &["--since", &t, "--until", &t]);
    assert!(
        code == 0 && err.contains("the RDB base is left out"),
        "{out}{err}"
    );
    assert_eq!(target.digest(), ran(2));

    let rdb = common::testdata("redis-6.2.rdb");
    let (code, _, err) = replay(&rdb, &url(&round3), &["--since", &t]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--since slices an AOF; ") && err.contains("is not one"),
        "{err}"
    );
}

/// A sliced replay (INCR and LPUSH of database 0) killed (-9) mid-run, then `--resume` with
/// the same slice: each kept command applied exactly once, as export's slice piped in gives.
#[test]
fn killed_sliced_replay_resumes_exactly_once() {
    let b = build("redis-7.0");
    let (_source, dir) = source_aof(&b, 34_000, "no");
    let slice = ["--command", "INCR,LPUSH", "--db", "0"];
    let mut export = vec!["export", dir.to_str().unwrap(), "--format", "resp"];
    export.extend(slice);
    let piped = Server::start(&b, None);
    assert_eq!(piped.pipe(&common::rdbtool(&export).stdout).0, 0);
    let target = Server::start(&b, None);
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("cp.json");
    let cp_arg = cp.to_str().unwrap();
    let mut args = vec![
        "--checkpoint",
        cp_arg,
        "--pipeline",
        "300",
        "--max-ops-per-sec",
        "30000",
    ];
    args.extend(slice);
    let mut child = common::spawn_replay(&dir, &url(&target), &args);
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    assert!(
        child.wait().unwrap().code().is_none(),
        "it ended before the kill"
    );
    assert_ne!(
        target.digest(),
        piped.digest(),
        "already complete when killed"
    );
    args.push("--resume");
    let (code, out, err) = replay(&dir, &url(&target), &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(target.digest(), piped.digest(), "{out}{err}");
    assert_eq!(target.cli(&["GET", "c:7"]), piped.cli(&["GET", "c:7"]));
    assert_eq!(target.cli(&["EXISTS", "s:3"]).trim(), "0");
}
