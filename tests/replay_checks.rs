//! `rdbtool replay` refusing to do harm, against real servers: databases the target lacks
//! (found before anything is sent, or refused by a target restarted with fewer), `--dry-run`,
//! `--max-errors`, Ctrl-C at any rate, what the summary calls each count, targets that do not
//! speak TLS or RESP, and a dump read from standard input.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::replay;
use common::server::{Server, build};
use rdbtool::resp;

fn rdbtool_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rdbtool"))
}

fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port)
}

/// Runs `commands` (each a list of arguments) on `s` in database `db`.
fn write_keys(s: &Server, db: u64, commands: &[&[&str]]) {
    let mut buf = Vec::new();
    let mut select = resp::Command::new("SELECT");
    select.arg_uint(db);
    select.write_to(&mut buf).unwrap();
    for args in commands {
        let mut c = resp::Command::new(args[0]);
        for a in &args[1..] {
            c.arg(a.as_bytes());
        }
        c.write_to(&mut buf).unwrap();
    }
    let (errors, _, text) = s.pipe(&buf);
    assert_eq!(errors, 0, "{text}");
}

/// Every key of every database 0..16 of `s`, as `db:key`, sorted.
fn all_keys(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..16 {
        let keys = s.cli(&["-n", &db.to_string(), "KEYS", "*"]);
        out.extend(keys.lines().map(|k| format!("{db}:{k}")));
    }
    out.sort();
    out
}

/// A dump made by a server with 32 databases: keys in 0, 3 and 20, where db 20 holds names
/// that also exist in other databases.
fn dump_with_db20(dir: &Path) -> PathBuf {
    let b = build("redis-7.0");
    let source = Server::start_with(&b, None, &["--databases", "32"]);
    write_keys(
        &source,
        0,
        &[&["SET", "a", "src0"], &["RPUSH", "list", "x"]],
    );
    write_keys(&source, 3, &[&["SET", "shared", "src3"]]);
    write_keys(
        &source,
        20,
        &[
            &["SET", "shared", "src20"],
            &["SET", "str:int64", "20"],
            &["HSET", "h20", "f", "v"],
        ],
    );
    source.cli(&["SAVE"]);
    let rdb = dir.join("db20.rdb");
    std::fs::copy(source.dir.path().join("dump.rdb"), &rdb).unwrap();
    rdb
}

/// A 16-database target holding keys in databases 0, 3 and 5.
fn target_16(extra: &[&str]) -> Server {
    let t = Server::start_with(&build("redis-7.0"), None, extra);
    write_keys(&t, 0, &[&["SET", "a", "mine"]]);
    write_keys(&t, 3, &[&["SET", "shared", "mine"]]);
    write_keys(&t, 5, &[&["SET", "str:int64", "mine"]]);
    t
}

/// Keys of a database the target cannot select stop the replay before anything is sent, with
/// each `--on-exists`, through `--db-map`, when CONFIG is refused (SELECT probes), and for an
/// AOF; the target's databases stay as they were.
#[test]
fn a_database_the_target_lacks_stops_the_replay_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let rdb = dump_with_db20(dir.path());
    let aof_path = dir.path().join("db20.aof");
    let mut aof = Vec::new();
    for args in [
        &["SELECT", "0"][..],
        &["SET", "a", "aof0"],
        &["SELECT", "20"],
        &["SET", "shared", "aof20"],
    ] {
        aof.extend_from_slice(&resp::encode(
            &args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
        ));
    }
    std::fs::write(&aof_path, &aof).unwrap();
    let errors = dir.path().join("errors.jsonl");
    let errors_arg = errors.to_str().unwrap();
    let cases: [(&Path, &[&str], &str); 5] = [
        (&rdb, &["--on-exists", "fail"], "database 20"),
        (&rdb, &["--on-exists", "replace"], "database 20"),
        (
            &rdb,
            &["--db-map", "0=99,20=2", "--on-exists", "replace"],
            "database 99 (from source database 0)",
        ),
        (&aof_path, &[], "database 20"),
        (&aof_path, &["--db-map", "20=3"], ""),
    ];
    for config in [&[][..], &["--rename-command", "CONFIG", ""]] {
        let target = target_16(config);
        let before = (target.digest(), all_keys(&target));
        for (file, extra, names) in cases {
            let mut args = vec!["--errors-to", errors_arg];
            args.extend_from_slice(extra);
            let (code, out, err) = replay(file, &url(&target), &args);
            let what = format!("{config:?} {extra:?}: {out}{err}");
            if names.is_empty() {
                // Mapped into a database the target has: AOF commands run as they are.
                assert_eq!(code, 0, "{what}");
                assert_eq!(target.cli(&["-n", "3", "GET", "shared"]).trim(), "aof20");
                assert_eq!(target.cli(&["GET", "a"]).trim(), "aof0");
                continue;
            }
            assert_eq!(code, 2, "{what}");
            assert!(err.contains(&format!("cannot select {names}")), "{what}");
            assert!(err.contains("nothing was sent"), "{what}");
            if config.is_empty() {
                assert!(err.contains("it has 16 databases (0 to 15)"), "{what}");
            } else {
                assert!(err.contains("(SELECT "), "{what}");
            }
            assert_eq!((target.digest(), all_keys(&target)), before, "{what}");
        }
        // Without the keys of db 20 (--db), nothing stands in the way.
        let (code, out, err) = replay(&rdb, &url(&target), &["--db", "0", "--db", "3"]);
        assert_eq!(code, 1, "a and shared exist: {out}{err}");
        assert!(out.contains("keys: 3 read"), "{out}");
    }
}

/// A target restarted with 16 databases in the middle of a replay that began with 32: the keys
/// of database 20 are refused (counted, written to --errors-to), and none is written into
/// another database.
#[test]
fn keys_of_a_database_the_restarted_target_lacks_are_refused_not_misplaced() {
    let b = build("redis-7.0");
    let dir = tempfile::tempdir().unwrap();
    let source = Server::start_with(&b, None, &["--databases", "32"]);
    source.cli(&["DEBUG", "POPULATE", "3000", "k", "10"]);
    source.cli(&["-n", "20", "DEBUG", "POPULATE", "300", "db20", "10"]);
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let errors = dir.path().join("errors.jsonl");
    let target = Server::start_with(&b, None, &["--databases", "32"]);
    // Database 0 first, at 1,000 commands a second: the restart comes before database 20.
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &[
            "--max-ops-per-sec",
            "1000",
            "--pipeline",
            "50",
            "--errors-to",
            errors.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    let target = target.kill_and_restart(&b, &["--databases", "16"]);
    let out = child.wait_with_output().unwrap();
    let text = common::printed(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(", 300 failed"), "{text}");
    assert!(text.contains("DB: 300"), "{text}");
    let lines = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(lines.lines().count(), 300, "{lines}");
    assert!(lines.lines().all(|l| l.contains("\"db\":20,")), "{lines}");
    let misplaced: Vec<String> = all_keys(&target)
        .into_iter()
        .filter(|k| k.contains("db20"))
        .collect();
    assert!(misplaced.is_empty(), "{misplaced:?}\n{text}");
}

/// `--max-ops-per-sec 0` is a usage error; Ctrl-C at one command a second stops within a
/// second or so, with the checkpoint written.
/// A connection's first SELECT of a database answered BUSY (a long script runs): the keys go
/// again once the target is free, not refused as if the database did not exist.
#[test]
fn a_busy_answer_to_select_is_waited_out() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    source.cli(&["DEBUG", "POPULATE", "2000", "k", "10"]);
    source.cli(&["-n", "1", "DEBUG", "POPULATE", "300", "one", "10"]);
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let want = source.digest();
    let target = Server::start(&b, None);
    target.cli(&["CONFIG", "SET", "busy-reply-threshold", "20"]);
    // Database 0 first, at 1,000 keys a second: database 1 comes while the script runs.
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &["--max-ops-per-sec", "1000", "--pipeline", "50"],
    );
    std::thread::sleep(Duration::from_millis(1000));
    let script = "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
                  while true do local t = redis.call('TIME') \
                  if t[1] * 1000000 + t[2] - t0 > 2500000 then break end end return 1";
    let busy = target.cli(&["EVAL", script, "0"]);
    assert_eq!(busy.trim(), "1");
    let out = child.wait_with_output().unwrap();
    let text = common::printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("2,300 acknowledged, 0 failed"), "{text}");
    assert_eq!(target.digest(), want, "{text}");
}

#[test]
fn ctrl_c_stops_at_any_rate_and_a_rate_of_zero_is_refused() {
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&build("redis-7.0"), None);
    let (code, _, err) = replay(&rdb, &url(&target), &["--max-ops-per-sec", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-ops-per-sec"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &[
            "--max-ops-per-sec",
            "1",
            "--checkpoint",
            cp.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = wait_at_most(child, Duration::from_secs(3));
    assert!(sent.elapsed() < Duration::from_secs(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    assert_eq!(checkpoint["complete"], false, "{checkpoint}");
}

/// Ctrl-C while the target hangs (SIGSTOP): the answers in flight are not waited for, the
/// checkpoint stays before them.
#[test]
fn ctrl_c_stops_while_the_target_hangs() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    source.cli(&["DEBUG", "POPULATE", "50000", "k", "10"]);
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let target = Server::start(&b, None);
    let pid = target
        .cli(&["INFO", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &[
            "--max-ops-per-sec",
            "20000",
            "--checkpoint",
            cp.to_str().unwrap(),
        ],
    );
    let signal = |sig: &str, pid: &str| {
        let ok = Command::new("kill").args([sig, pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    };
    std::thread::sleep(Duration::from_millis(500));
    signal("-STOP", &pid);
    std::thread::sleep(Duration::from_millis(500));
    signal("-INT", &child.id().to_string());
    let out = wait_at_most(child, Duration::from_secs(3));
    signal("-CONT", &pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let done = checkpoint["done"].as_u64().unwrap();
    assert!(done < 50_000, "{checkpoint}");
    let on_target: u64 = target.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(on_target >= done, "{on_target} < {done}: {checkpoint}");
}

/// The child's output once it exits; killed (and the test failed) after `limit`.
fn wait_at_most(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `--dry-run` writes nothing and says what it would send where; it finds a file larger than
/// what maxmemory leaves.
#[test]
fn dry_run_sends_no_write() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&b, None);
    target.cli(&["SET", "mine", "1"]);
    let before = target.digest();
    target.cli(&["CONFIG", "RESETSTAT"]);
    let (code, out, err) = replay(&rdb, &url(&target), &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(out.contains("keys: 55 read, 55 to send"), "{out}");
    assert!(out.contains("databases: 0, 1, 5"), "{out}");
    let node = format!("would send to 127.0.0.1:{}: ", target.port);
    assert!(out.contains(&node) && out.contains(" RESTORE"), "{out}");
    // Named apart from the run's count, which includes retries and keys sent again alone.
    assert!(out.contains(" at first attempt ("), "{out}");
    assert!(out.contains("no maxmemory"), "{out}");
    assert_eq!(target.digest(), before, "{out}");
    assert_eq!(target.cli(&["DBSIZE"]).trim(), "1");
    let stats = target.cli(&["INFO", "commandstats"]);
    for write in ["restore", "set:", "msetnx", "function", "rpush", "renamenx"] {
        assert!(!stats.contains(&format!("cmdstat_{write}")), "{stats}");
    }
    target.cli(&["CONFIG", "SET", "maxmemory", "1mb"]);
    let (code, out, err) = replay(&rdb, &url(&target), &["--dry-run"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("it will not fit"), "{out}");
    assert_eq!(target.digest(), before);
}

/// `--max-errors`: a target refusing every key (they all exist) stops the replay after a
/// few thousand of 50,000, with the checkpoint written and the reason said.
#[test]
fn max_errors_stops_the_replay_early() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    source.cli(&["DEBUG", "POPULATE", "50000", "k", "20"]);
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let target = Server::start(&b, Some(&rdb));
    target.cli(&["CONFIG", "RESETSTAT"]);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let (code, out, err) = replay(
        &rdb,
        &url(&target),
        &["--max-errors", "1", "--checkpoint", cp.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}{err}");
    // Stopped as the first key was refused: "1 key".
    assert!(
        err.contains("stopped: 1 key refused by the target (--max-errors 1)"),
        "{err}"
    );
    let sets: u64 = target
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_set:") || l.starts_with("cmdstat_msetnx:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(sets > 0 && sets < 20_000, "{sets} commands\n{out}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    assert_eq!(checkpoint["complete"], false, "{checkpoint}");
    assert!(
        checkpoint["done"].as_u64().unwrap() < 20_000,
        "{checkpoint}"
    );
}

/// The summary names what it counts: keys apart from function libraries, and error replies
/// apart from refused keys.
#[test]
fn the_summary_counts_keys_and_libraries_apart() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&b, None);
    let (code, out, err) = replay(&rdb, &url(&target), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("keys: 55 read, 55 sent, 55 acknowledged, 0 failed"),
        "{out}"
    );
    assert!(
        out.contains("function libraries: 2 read, 2 loaded"),
        "{out}"
    );
    assert!(
        out.contains("error replies: 0, of which 0 retried"),
        "{out}"
    );
    // Again, keys gone (FLUSHALL leaves functions): the libraries are there now and fail as
    // libraries, not as keys, and are named as libraries in --errors-to.
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");
    target.cli(&["FLUSHALL"]);
    let (code, out2, err2) = replay(
        &rdb,
        &url(&target),
        &["--errors-to", errors.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out2}{err2}");
    assert!(
        out2.contains("keys: 55 read, 55 sent, 55 acknowledged, 0 failed"),
        "{out2}"
    );
    assert!(
        out2.contains("function libraries: 2 read, 0 loaded, 0 already there, 2 failed"),
        "{out2}"
    );
    let rows = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(rows.lines().count(), 2, "{rows}");
    for row in rows.lines() {
        let v: serde_json::Value = serde_json::from_str(row).unwrap();
        assert!(v["library"].is_string() && v.get("key").is_none(), "{row}");
    }
}

/// Stopped by `--max-errors`, every key read is in exactly one bucket: acknowledged, failed,
/// skipped as existing, or without an answer.
#[test]
fn a_stopped_replay_accounts_for_every_key_read() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    source.cli(&["DEBUG", "POPULATE", "100000", "k", "20"]);
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let target = Server::start(&b, None);
    target.cli(&["SET", "k:15000", "mine"]);
    target.cli(&["CONFIG", "SET", "maxmemory", "3mb"]);
    let (code, out, err) = replay(&rdb, &url(&target), &["--max-errors", "10"]);
    // 2 when stopped while reading; 1 when every key was read before the answers came.
    assert!(code == 2 || code == 1, "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("keys: ")).unwrap();
    let num = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        let digits: String = line[..at]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .replace(',', "");
        digits.parse().unwrap()
    };
    let skipped = out
        .lines()
        .find(|l| l.starts_with("skipped keys: "))
        .unwrap();
    let existing: u64 = skipped["skipped keys: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    let (read, sent, acked, failed) = (
        num(" read"),
        num(" sent"),
        num(" acknowledged"),
        num(" failed"),
    );
    let unanswered = if line.contains("without an answer") {
        num(" without an answer")
    } else {
        0
    };
    assert!(read <= 100_000 && sent <= read, "{out}");
    assert_eq!(read, acked + failed + existing + unanswered, "{out}");
    assert!(failed >= 10, "{out}");
}

/// `rediss://` to a plain-text port says the TLS handshake failed, within a few seconds; a service that is not
/// Redis (an HTTP server) is said not to speak RESP.
#[test]
fn a_target_that_speaks_no_tls_or_no_resp_is_named_so() {
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&build("redis-7.0"), None);
    let to = format!("rediss://127.0.0.1:{}", target.port);
    let start = Instant::now();
    let (code, out, err) = replay(&rdb, &to, &["--insecure"]);
    // Not at the 5 s connect timeout: a plain-text port is looked into after a second.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the TLS handshake failed: the port answers in plain text"),
        "{err}"
    );
    assert_eq!(target.cli(&["DBSIZE"]).trim(), "0");

    let http = common::HttpServer::start();
    let port = http.port;
    let (code, out, err) = replay(&rdb, &format!("redis://127.0.0.1:{port}"), &[]);
    drop(http);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("the target does not speak RESP"), "{err}");
}

/// `replay -` reads the dump from standard input, to the same data as from the file;
/// `--resume` needs the file.
#[test]
fn a_dump_on_standard_input_replays_like_the_file() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let want = Server::start(&b, Some(&rdb)).digest();
    let target = Server::start(&b, None);
    let mut child = Command::new(rdbtool_bin())
        .args(["replay", "-", "--to", &url(&target)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(&rdb).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("replay standard input ->"), "{text}");
    assert_eq!(target.digest(), want);

    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let out = Command::new(rdbtool_bin())
        .args(["replay", "-", "--to", &url(&target), "--resume"])
        .args(["--checkpoint", cp.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--resume needs a regular file"), "{err}");
}

/// Options that cannot work together or are out of range are usage errors (exit 2, one line),
/// caught before any connection: the target here is a port nothing listens on.
#[test]
fn impossible_replay_options_are_usage_errors() {
    let rdb = common::testdata("redis-7.0.rdb");
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "redis://127.0.0.1:1",
            &["--connections", "100000"],
            "--connections",
        ),
        (
            "redis://127.0.0.1:1",
            &["--connections", "0"],
            "--connections",
        ),
        ("redis://127.0.0.1:1", &["--pipeline", "0"], "--pipeline"),
        (
            "redis://127.0.0.1:1",
            &["--batch-elements", "0"],
            "--batch-elements",
        ),
        (
            "redis://127.0.0.1:1",
            &["--no-ttl", "--ttl-shift", "60"],
            "--ttl-shift",
        ),
        (
            "redis://127.0.0.1:1",
            &["--insecure"],
            "--insecure applies to rediss://",
        ),
        (
            "redis://127.0.0.1:1",
            &["--cacert", "/nonexistent.pem"],
            "--cacert applies to rediss://",
        ),
        (
            "redis://127.0.0.1:1",
            &["--db-map", "20=10,20=11"],
            "mapped twice",
        ),
        (
            "REDIS://127.0.0.1:1",
            &["--insecure"],
            "--insecure applies to rediss://",
        ),
    ];
    for (to, extra, want) in cases {
        let (code, out, err) = replay(&rdb, to, extra);
        assert_eq!(code, 2, "{extra:?}: {out}{err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
}

/// `--checkpoint` never replaces what is not a regular file: a FIFO is refused, a symlink is
/// followed (its target gets the checkpoint, the link stays), and a missing directory (for
/// `--errors-to` too) stops the replay before any key is sent.
#[test]
fn a_checkpoint_path_that_is_no_regular_file_is_refused_before_sending() {
    use std::os::unix::fs::FileTypeExt;
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&build("redis-7.0"), None);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let missing = dir.path().join("nonexist/ck");
    let refused: [(&[&str], &str); 4] = [
        (&["--checkpoint", fifo.to_str().unwrap()], "is a FIFO"),
        (
            &["--checkpoint", dir.path().to_str().unwrap()],
            "is a directory",
        ),
        (
            &["--checkpoint", missing.to_str().unwrap()],
            "does not exist",
        ),
        (&["--errors-to", missing.to_str().unwrap()], "nonexist/ck"),
    ];
    for (extra, want) in refused {
        let (code, out, err) = replay(&rdb, &url(&target), extra);
        assert_eq!(code, 2, "{extra:?}: {out}{err}");
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{extra:?}: {err}"
        );
        assert_eq!(target.cli(&["DBSIZE"]).trim(), "0", "{extra:?}: {out}");
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let real = dir.path().join("real.json");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, out, err) = replay(
        &rdb,
        &url(&target),
        &["--checkpoint", link.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    assert_eq!(cp["complete"], true, "{cp}");
}
