//! `inspect` and `export` of AOFs written by real servers after a scripted workload (every
//! data type, MULTI/EXEC, EVAL, functions, expiries): Redis 7.0's appendonlydir (preamble on
//! and off, timestamps on, a base and several incr files) and Valkey 9.1's, Redis 6.2's single
//! file with an RDB preamble. Counts are checked against a RESP reader written here, exports by replaying them
//! into fresh servers and comparing `DEBUG DIGEST`; and the corpus AOFs read without error.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::aof::{failed_rewrite, rewrite};
use common::server::{Build, Server, build};
use rdbtool::resp::encode;
use serde_json::Value;

/// One round of writes; its keys end in `:r`, so a round does not depend on another.
/// `relative`: expiries relative to now (which a server running the round later would set to
/// other times); `functions`: FUNCTION LOAD and FCALL (Redis 7).
fn round(r: u32, relative: bool, functions: bool) -> Vec<Vec<String>> {
    let k = |name: &str| format!("{name}:{r}");
    let mut c: Vec<Vec<String>> = Vec::new();
    let mut add = |args: &[&str]| c.push(args.iter().map(|a| a.to_string()).collect());
    add(&["SELECT", "0"]);
    add(&["SET", &k("str"), "hello"]);
    add(&["APPEND", &k("str"), "world"]);
    for _ in 0..3 {
        add(&["INCR", &k("counter")]);
    }
    add(&["RPUSH", &k("list"), "a", "b", "c"]);
    add(&["LPOP", &k("list")]);
    add(&["SADD", &k("set"), "a", "b", "c"]);
    add(&["SREM", &k("set"), "a"]);
    add(&["ZADD", &k("zset"), "1", "a", "2", "b"]);
    add(&["HSET", &k("hash"), "f1", "v1", "f2", "v2"]);
    add(&["HDEL", &k("hash"), "f1"]);
    add(&["XADD", &k("stream"), "1-1", "f", "v"]);
    add(&["XADD", &k("stream"), "2-1", "f", "v"]);
    add(&["PFADD", &k("hll"), "a", "b", "c"]);
    add(&["SET", &k("big"), &"x".repeat(10_000)]);
    add(&["SELECT", "3"]);
    add(&["SET", &k("db3"), "v"]);
    add(&["LPUSH", &k("db3list"), "x"]);
    add(&["MULTI"]);
    add(&["INCR", &k("tx")]);
    add(&["LPUSH", &k("txl"), "x"]);
    add(&["EXEC"]);
    let script = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])";
    add(&["EVAL", script, "2", &k("lua"), &k("luac"), "v"]);
    add(&["PEXPIREAT", &k("db3"), "4102444800000"]);
    add(&["SET", &k("exp"), "v", "PXAT", "4102444800000"]);
    add(&["SELECT", "0"]);
    if relative {
        add(&["EXPIRE", &k("str"), "100000"]);
        add(&["SETEX", &k("sx"), "100000", "v"]);
        add(&["PSETEX", &k("px"), "100000000", "v"]);
        add(&["SET", &k("ex"), "v", "EX", "100000"]);
        add(&["GETEX", &k("str"), "EX", "200000"]);
    }
    if functions {
        let lib = format!(
            "#!lua name=lib{r}\nredis.register_function('f{r}', function(keys, args) return redis.call('incr', keys[1]) end)"
        );
        add(&["FUNCTION", "LOAD", &lib]);
        add(&["FCALL", &format!("f{r}"), "1", &k("fc")]);
    }
    c
}

/// Commands each round sends that every server writes to its AOF as they are.
const VERBATIM: [(&str, u64); 11] = [
    ("SADD", 1),
    ("SREM", 1),
    ("ZADD", 1),
    ("HSET", 1),
    ("HDEL", 1),
    ("RPUSH", 1),
    ("LPOP", 1),
    ("APPEND", 1),
    ("PFADD", 1),
    ("XADD", 2),
    ("LPUSH", 2),
];

fn send(s: &Server, commands: &[Vec<String>]) {
    let mut bytes = Vec::new();
    for c in commands {
        let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
        bytes.extend_from_slice(&encode(&args));
    }
    let (errors, replies, text) = s.pipe(&bytes);
    assert_eq!((errors, replies), (0, commands.len() as u64), "{text}");
}

/// The server's clock, in unix seconds.
fn server_time(s: &Server) -> u64 {
    s.cli(&["TIME"]).lines().next().unwrap().parse().unwrap()
}

/// Waits until the server's clock is past `t` (and its cached time too).
fn wait_past(s: &Server, t: u64) {
    while server_time(s) <= t {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(250));
}

fn rdbtool_ok(args: &[&str]) -> (Vec<u8>, String) {
    let out = common::rdbtool(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    (out.stdout, err)
}

fn inspect(path: &Path) -> Value {
    let (out, _) = rdbtool_ok(&["inspect", "--format", "json", path.to_str().unwrap()]);
    serde_json::from_slice(&out).unwrap()
}

fn export(path: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["export", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    rdbtool_ok(&args).0
}

/// A fresh server of `b` after piping each of `exports` into it, in order; its digest.
fn replayed(b: &Build, exports: &[Vec<u8>]) -> String {
    let target = Server::start(b, None);
    for e in exports {
        let (errors, _, text) = target.pipe(e);
        assert_eq!(errors, 0, "{text}");
    }
    target.digest()
}

/// The commands of RESP bytes from `start` (annotations skipped), each with the database it
/// runs in: read here, not by the crate's parser.
fn commands(data: &[u8], start: usize) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    let mut i = start;
    let mut db = 0;
    let line = |i: &mut usize| -> String {
        let end = *i + data[*i..].windows(2).position(|w| w == b"\r\n").unwrap();
        let text = String::from_utf8_lossy(&data[*i..end]).into_owned();
        *i = end + 2;
        text
    };
    while i < data.len() {
        let head = line(&mut i);
        if head.starts_with('#') {
            continue;
        }
        let n: usize = head.strip_prefix('*').unwrap().parse().unwrap();
        let mut args = Vec::new();
        for _ in 0..n {
            let len: usize = line(&mut i).strip_prefix('$').unwrap().parse().unwrap();
            args.push(String::from_utf8_lossy(&data[i..i + len]).into_owned());
            i += len + 2;
        }
        if args[0].eq_ignore_ascii_case("select") {
            db = args[1].parse().unwrap();
        }
        out.push((db, args));
    }
    out
}

/// Every command of an AOF's files, read here: the RESP after each file's RDB part (its
/// length from inspect's report).
fn all_commands(files: &[PathBuf], report: &Value) -> Vec<(u64, Vec<String>)> {
    let rows = report["files"].as_array().unwrap();
    assert_eq!(rows.len(), files.len());
    let mut all = Vec::new();
    for (path, row) in files.iter().zip(rows) {
        let data = std::fs::read(path).unwrap();
        let start = row["rdb_bytes"].as_u64().unwrap() as usize;
        all.extend(commands(&data, start));
    }
    all
}

fn by_name(report: &Value) -> BTreeMap<String, u64> {
    report["by_name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn count_names<'a>(cmds: impl Iterator<Item = &'a (u64, Vec<String>)>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (_, args) in cmds {
        *m.entry(args[0].to_uppercase()).or_default() += 1;
    }
    m
}

/// The data commands of a JSON Lines export (base rows and MULTI/EXEC aside), as (db, args).
fn exported_rows(jsonl: &[u8]) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_slice(line).unwrap();
        let Some(name) = row["command"].as_str() else {
            continue;
        };
        if name == "MULTI" || name == "EXEC" {
            continue;
        }
        let mut args = vec![name.to_string()];
        for a in row["args"].as_array().unwrap() {
            args.push(a.as_str().unwrap().to_string());
        }
        out.push((row["db"].as_u64().unwrap(), args));
    }
    out
}

fn is_data(args: &[String]) -> bool {
    !["SELECT", "MULTI", "EXEC"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&args[0]))
}

/// --db and --key keep exactly the commands of that database / naming such a key.
fn check_filters(dir: &Path, all: &[(u64, Vec<String>)]) {
    let upper = |(db, args): &(u64, Vec<String>)| {
        let mut a = args.clone();
        a[0] = a[0].to_uppercase();
        (*db, a)
    };
    let want: Vec<_> = all
        .iter()
        .filter(|(db, a)| *db == 3 && is_data(a))
        .map(upper)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(exported_rows(&export(dir, &["--db", "3"])), want);
    let want: Vec<_> = all
        .iter()
        .filter(|(_, a)| is_data(a) && a.get(1).is_some_and(|k| k.starts_with("str:")))
        .map(upper)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(exported_rows(&export(dir, &["--key", "str:*"])), want);
}

fn aof_files(dir: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    manifest
        .lines()
        .filter(|l| !l.contains("type h"))
        .map(|l| dir.join(l.split(' ').nth(1).unwrap()))
        .collect()
}

fn multi_part(server: &str, preamble: &str) {
    let b = build(server);
    let conf = [
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        preamble,
        "--aof-timestamp-enabled",
        "yes",
        "--appendfsync",
        "always",
    ];
    let src = Server::start_with(&b, None, &conf);
    send(&src, &round(0, true, true));
    rewrite(&src);
    send(&src, &round(1, true, true));
    failed_rewrite(&src);
    send(&src, &round(2, true, false));
    failed_rewrite(&src);
    // Round 3 alone in its seconds: [since, until].
    let before = server_time(&src);
    wait_past(&src, before);
    let since = server_time(&src);
    let r3 = round(3, false, false);
    send(&src, &r3);
    let until = server_time(&src);
    let want_mid = src.digest();
    wait_past(&src, until);
    send(&src, &round(4, false, false));
    let want_end = src.digest();

    let dir = src.dir.path().join("appendonlydir");
    let files = aof_files(&dir);
    let report = inspect(&dir);
    let base = if preamble == "yes" { "RDB" } else { "RESP" };
    let input = format!("AOF: appendonlydir with manifest, base ({base}) + 3 incr files");
    assert_eq!(report["input"], input.as_str());
    assert_eq!(report["base"].is_object(), preamble == "yes");
    let all = all_commands(&files, &report);
    assert_eq!(by_name(&report), count_names(all.iter()), "{preamble}");
    assert!(report["time"]["first"].as_u64().unwrap() <= since);
    assert!(report["time"]["last"].as_u64().unwrap() > until);
    // The incr files hold rounds 1 to 4, each command as sent.
    let mut incr = BTreeMap::new();
    for f in &files[1..] {
        for (name, n) in by_name(&inspect(f)) {
            *incr.entry(name).or_insert(0) += n;
        }
    }
    for (name, n) in VERBATIM {
        assert_eq!(incr.get(name), Some(&(4 * n)), "{preamble}: {name}");
    }
    assert_eq!(incr.get("FUNCTION"), Some(&1), "{preamble}");

    let target = b.target();
    let v70 = ["--format", "resp", "--target-version", target.as_str()];
    assert_eq!(replayed(&b, &[export(&dir, &v70)]), want_end, "{preamble}");
    let to = |extra: &[&str]| export(&dir, &[&v70[..], extra].concat());
    let (since_s, until_s, before_s) = (
        since.to_string(),
        until.to_string(),
        (since - 1).to_string(),
    );
    let slice = to(&["--since", &since_s, "--until", &until_s]);
    assert_eq!(replayed(&b, &[to(&["--until", &until_s])]), want_mid);
    assert_eq!(
        replayed(&b, &[to(&["--until", &before_s]), slice.clone()]),
        want_mid,
        "{preamble}: the slice after the log before it"
    );
    let only = Server::start(&b, None);
    send(&only, &r3);
    assert_eq!(
        replayed(&b, &[slice]),
        only.digest(),
        "{preamble}: the slice alone"
    );
    check_filters(&dir, &all);
    // FILE:N is the global offset of the file's start plus N; rows name their file.
    let row = &report["files"][2];
    let name = row["name"].as_str().unwrap();
    let (global, local) = (
        row["start"].as_u64().unwrap().to_string(),
        format!("{name}:0"),
    );
    let from_local = export(&dir, &["--from-offset", &local]);
    assert_eq!(from_local, export(&dir, &["--from-offset", &global]));
    let first: Value =
        serde_json::from_slice(from_local.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["file"], name);
    let offset = first["offset"].as_u64().unwrap();
    assert_eq!(
        offset - first["file_offset"].as_u64().unwrap(),
        row["start"].as_u64().unwrap()
    );
}

#[test]
fn redis_7_0_appendonlydir_with_rdb_base() {
    multi_part("redis-7.0", "yes");
}

#[test]
fn redis_7_0_appendonlydir_with_aof_base() {
    multi_part("redis-7.0", "no");
}

#[test]
fn valkey_9_1_appendonlydir_with_rdb_base() {
    multi_part("valkey-9.1", "yes");
}

#[test]
fn redis_6_2_single_file_with_preamble() {
    let (b, src) = common::aof::start("redis-6.2", &["--aof-use-rdb-preamble", "yes"]);
    send(&src, &round(0, true, false));
    rewrite(&src);
    send(&src, &round(1, true, false));
    send(&src, &round(2, false, false));
    let want = src.digest();
    let aof = src.dir.path().join("appendonly.aof");
    let report = inspect(&aof);
    assert_eq!(report["input"], "AOF: a single file, RDB preamble + RESP");
    assert!(report["base"]["keys"].as_u64().unwrap() > 10);
    let all = all_commands(std::slice::from_ref(&aof), &report);
    let names = by_name(&report);
    assert_eq!(names, count_names(all.iter()));
    for (name, n) in VERBATIM {
        assert_eq!(names.get(name), Some(&(2 * n)), "{name}");
    }
    assert!(report["expiry"]["PEXPIREAT"].as_u64().unwrap() >= 2);
    let v62 = ["--format", "resp", "--target-version", "6.2"];
    assert_eq!(replayed(&b, &[export(&aof, &v62)]), want);
    // From the end of the preamble on: the log without the base.
    let end = report["files"][0]["rdb_bytes"]
        .as_u64()
        .unwrap()
        .to_string();
    let (rows, err) = rdbtool_ok(&["export", aof.to_str().unwrap(), "--from-offset", &end]);
    assert!(err.contains("the RDB base is left out"), "{err}");
    assert_eq!(
        exported_rows(&rows).len(),
        all.iter().filter(|c| is_data(&c.1)).count()
    );
    check_filters(&aof, &all);
    // A truncated tail: exit 1 naming the file and offset, the report covering what came
    // before, the export ending with the last whole command.
    let cut = src.dir.path().join("cut.aof");
    let bytes = std::fs::read(&aof).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = common::rdbtool(&["inspect", "--format", "json", cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.aof: offset ") && err.contains("ends inside a command"),
        "{err}"
    );
    let partial: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(partial["commands"], all.len() as u64 - 1);
    let out = common::rdbtool(&["export", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let data = all.iter().filter(|c| is_data(&c.1)).count();
    assert_eq!(exported_rows(&out.stdout).len(), data - 1);
}

/// The corpus AOFs (plain, preamble, #TS, RESTORE-bearing) inspect and export without error.
#[test]
fn corpus_aofs_inspect_and_export() {
    if !common::have_corpus() {
        return;
    }
    let mut seen = 0;
    for entry in common::catalog().iter().filter(|e| e["kind"] == "aof") {
        let path = common::corpus()
            .join(entry["source"].as_str().unwrap())
            .join(entry["path"].as_str().unwrap());
        let report = inspect(&path);
        assert!(
            report["commands"].as_u64().unwrap() > 0,
            "{}",
            path.display()
        );
        export(&path, &["--format", "resp"]);
        seen += 1;
    }
    assert!(seen >= 5, "{seen} AOFs in the corpus");
}
