//! `rdbtool diff` against real servers: a snapshot, a scripted mix of changes, a second
//! snapshot, and the diff must report exactly those changes; the same data saved by several
//! server versions diffs as identical; the RESP patch turns A into B in a server; a live
//! server is compared with the dump it was loaded from.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::server::{Server, build};
use serde_json::{Value, json};

/// RESP for `commands`, each a list of arguments.
fn resp(commands: &[Vec<&[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in commands {
        let mut c = rdbtool::resp::Command::new(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            c.arg(a);
        }
        c.write_to(&mut out).unwrap();
    }
    out
}

/// Splits each line into arguments on spaces (no argument here contains one).
fn script(lines: &[&str]) -> Vec<u8> {
    let commands: Vec<Vec<&[u8]>> = lines
        .iter()
        .map(|l| l.split(' ').map(str::as_bytes).collect())
        .collect();
    resp(&commands)
}

fn run(server: &Server, commands: &[u8]) {
    let (errors, _, text) = server.pipe(commands);
    assert_eq!(errors, 0, "{text}");
}

/// SAVEs and copies the dump to `dir/name`.
fn snapshot(server: &Server, dir: &Path, name: &str) -> PathBuf {
    assert_eq!(server.cli(&["SAVE"]).trim(), "OK");
    let to = dir.join(name);
    std::fs::copy(server.dir.path().join("dump.rdb"), &to).unwrap();
    to
}

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

/// Runs `rdbtool diff --format jsonl ARGS`: exit code, records by (db, key), and the summary.
fn diff_jsonl(args: &[&str]) -> (i32, BTreeMap<(u64, String), Value>, Value) {
    let mut all = vec!["diff", "--format", "jsonl"];
    all.extend_from_slice(args);
    let out = common::rdbtool(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut records = BTreeMap::new();
    let mut summary = Value::Null;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(s) = v.get("summary") {
            summary = s.clone();
            continue;
        }
        let key = (
            v["db"].as_u64().unwrap(),
            v["key"].as_str().unwrap().to_string(),
        );
        assert!(records.insert(key, v).is_none(), "a key reported twice");
    }
    let code = out.status.code().unwrap();
    assert_ne!(code, 2, "diff failed: {stderr}");
    (code, records, summary)
}

/// (kind, counts) of each record, counts as `section: [added, removed, changed]`.
fn kinds(records: &BTreeMap<(u64, String), Value>) -> BTreeMap<(u64, String), Value> {
    records
        .iter()
        .map(|(k, v)| {
            let mut counts = serde_json::Map::new();
            for s in [
                "fields", "members", "elements", "entries", "groups", "metadata",
            ] {
                if let Some(c) = v.get(s) {
                    counts.insert(s.into(), json!([c["added"], c["removed"], c["changed"]]));
                }
            }
            (k.clone(), json!([v["kind"], counts]))
        })
        .collect()
}

/// Records with their detail lists sorted (parts of a key come out part by part).
fn sorted_details(records: &BTreeMap<(u64, String), Value>) -> BTreeMap<(u64, String), Value> {
    let mut out = records.clone();
    for r in out.values_mut() {
        let Some(detail) = r.get_mut("detail").and_then(Value::as_object_mut) else {
            continue;
        };
        for part in detail.values_mut() {
            for list in part.as_object_mut().unwrap().values_mut() {
                list.as_array_mut().unwrap().sort_by_key(|e| e.to_string());
            }
        }
    }
    out
}

/// Dataset A, in db 0 and db 2. Times are absolute and far off (2100).
const A: &[&str] = &[
    "SET s:same v",
    "SET s:edit old",
    "SET s:int 12345",
    "SET s:del gone",
    "SET s:ttl x",
    "PEXPIREAT s:ttl 4102444800000",
    "SET s:persist y",
    "PEXPIREAT s:persist 4102444800000",
    "SET s:ttl-small z",
    "PEXPIREAT s:ttl-small 4102444800000",
    "HSET h:small a 1 b 2 c 3",
    "HSET h:grow a 1",
    "HSET h:conv a 1 b 2",
    "HSET h:del a 1",
    "HSET h:fttl f1 v1 f2 v2",
    "HPEXPIREAT h:fttl 4102444800000 FIELDS 1 f1",
    "SADD st:int 1 2 3",
    "SADD st:edit a b c",
    "ZADD z:edit 1 a 2 b 3 c",
    "ZADD z:conv 1 a 2 b",
    "RPUSH l:edit a b c",
    "RPUSH l:same 1 2 3",
    "XADD x:s 1-1 f v",
    "XADD x:s 1-2 f w",
    "XGROUP CREATE x:s g 0",
    "XREADGROUP GROUP g c COUNT 1 STREAMS x:s >",
    "SET t:change str",
    "SET shared in-db0",
    "SELECT 2",
    "SET shared in-db2",
    "SET d2:same a",
    "SET d2:edit b",
    "SELECT 0",
];

/// The scripted changes from A to B.
fn changes() -> Vec<u8> {
    let long = "x".repeat(100);
    let mut lines: Vec<String> = [
        "SET s:edit new",
        "DEL s:del",
        "PEXPIREAT s:ttl 4102444860000",
        "PERSIST s:persist",
        // Within the default 1 s tolerance: not a change.
        "PEXPIREAT s:ttl-small 4102444800500",
        "HSET h:small c 30 d 4",
        "HDEL h:small a",
        "DEL h:del",
        "HPEXPIREAT h:fttl 4102444900000 FIELDS 1 f1",
        "SADD st:edit d",
        "SREM st:edit a",
        "ZADD z:edit 2.5 b 4 d",
        "ZREM z:edit c",
        "RPUSH l:edit d",
        "XADD x:s 2-1 f x",
        "DEL t:change",
        "RPUSH t:change a",
        "SET n:new new",
        "HSET n:hash x 1",
        "SELECT 2",
        "SET d2:edit c",
        "SELECT 0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Encoding conversions that leave the value as it was.
    lines.push(format!("HSET h:conv big {long}"));
    lines.push("HDEL h:conv big".into());
    lines.push("SADD st:int x".into());
    lines.push("SREM st:int x".into());
    lines.push(format!("ZADD z:conv 3 {long}"));
    lines.push(format!("ZREM z:conv {long}"));
    // A listpack hash growing into a hashtable (past hash-max-listpack-entries, 512 here).
    let mut grow = "HSET h:grow".to_string();
    for i in 0..600 {
        grow.push_str(&format!(" f{i} {i}"));
    }
    lines.push(grow);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    script(&refs)
}

/// A and B saved by Redis 8.2 (field TTLs, listpack sets), with B's encodings checked.
fn scripted_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let server = Server::start(&build("redis-8.2"), None);
    run(&server, &script(A));
    let encoding = |k: &str| server.cli(&["OBJECT", "ENCODING", k]).trim().to_string();
    assert_eq!(encoding("h:grow"), "listpack");
    assert_eq!(encoding("st:int"), "intset");
    let a = snapshot(&server, dir, "a.rdb");
    run(&server, &changes());
    assert_eq!(encoding("h:grow"), "hashtable");
    assert_eq!(encoding("h:conv"), "hashtable");
    assert_ne!(encoding("st:int"), "intset");
    assert_eq!(encoding("z:conv"), "skiplist");
    let b = snapshot(&server, dir, "b.rdb");
    (a, b)
}

fn expected() -> BTreeMap<(u64, String), Value> {
    let k = |db: u64, key: &str| (db, key.to_string());
    BTreeMap::from([
        (k(0, "s:edit"), json!(["value-changed", {}])),
        (k(0, "s:del"), json!(["removed", {}])),
        (k(0, "s:ttl"), json!(["ttl-changed", {}])),
        (k(0, "s:persist"), json!(["ttl-changed", {}])),
        (
            k(0, "h:small"),
            json!(["value-changed", {"fields": [1, 1, 1]}]),
        ),
        (
            k(0, "h:grow"),
            json!(["value-changed", {"fields": [600, 0, 0]}]),
        ),
        (k(0, "h:del"), json!(["removed", {}])),
        (
            k(0, "h:fttl"),
            json!(["value-changed", {"fields": [0, 0, 1]}]),
        ),
        (
            k(0, "st:edit"),
            json!(["value-changed", {"members": [1, 1, 0]}]),
        ),
        (
            k(0, "z:edit"),
            json!(["value-changed", {"members": [1, 1, 1]}]),
        ),
        (
            k(0, "l:edit"),
            json!(["value-changed", {"elements": [1, 0, 0]}]),
        ),
        (
            k(0, "x:s"),
            json!(["value-changed", {"entries": [1, 0, 0], "groups": [0, 0, 0], "metadata": [0, 0, 1]}]),
        ),
        (k(0, "t:change"), json!(["type-changed", {}])),
        (k(0, "n:new"), json!(["added", {}])),
        (k(0, "n:hash"), json!(["added", {}])),
        (k(2, "d2:edit"), json!(["value-changed", {}])),
    ])
}

#[test]
fn scripted_changes_are_reported_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = scripted_pair(dir.path());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let (code, records, summary) = diff_jsonl(&[a, b]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&records), expected());
    assert_eq!(summary["unchanged"], 10, "{summary}");
    assert_eq!(
        (&summary["keys_a"], &summary["keys_b"]),
        (&json!(24), &json!(24))
    );
    assert_eq!(summary["identical"], false);
    let t = &records[&(0, "t:change".to_string())];
    assert_eq!(
        (&t["type_a"], &t["type"]),
        (&json!("string"), &json!("list"))
    );
    let ttl = &records[&(0, "s:ttl".to_string())];
    assert_eq!(
        (&ttl["expire_a"], &ttl["expire_b"]),
        (&json!(4102444800000i64), &json!(4102444860000i64))
    );

    // The differing elements themselves.
    let (_, detailed, _) = diff_jsonl(&["--detail", a, b]);
    assert_eq!(
        detailed[&(0, "h:small".to_string())]["detail"],
        json!({"fields": {"added": [["d", "4"]], "removed": [["a", "1"]], "changed": [["c", "3", "30"]]}})
    );
    assert_eq!(
        detailed[&(0, "z:edit".to_string())]["detail"],
        json!({"members": {"added": [["d", 4.0]], "removed": [["c", 3.0]], "changed": [["b", 2.0, 2.5]]}})
    );
    assert_eq!(
        detailed[&(0, "h:fttl".to_string())]["detail"]["fields"]["changed"],
        json!([["f1", {"value": "v1", "expire_at": 4102444800000i64}, {"value": "v1", "expire_at": 4102444900000i64}]])
    );
    assert_eq!(
        detailed[&(0, "s:edit".to_string())]["a"],
        json!({"value": "old"})
    );
    assert_eq!(
        detailed[&(0, "n:hash".to_string())]["b"],
        json!({"value": {"x": "1"}})
    );
    // Compared in many small parts (a tiny --key-memory), the same elements come out.
    let (_, in_parts, _) = diff_jsonl(&["--detail", "--key-memory", "200", a, b]);
    assert_eq!(sorted_details(&in_parts), sorted_details(&detailed));
    assert_eq!(
        in_parts[&(0, "h:grow".to_string())]["detail"]["fields"]["added"]
            .as_array()
            .unwrap()
            .len(),
        600
    );

    // TTL rules: ignored, or compared exactly.
    let (_, no_ttl, _) = diff_jsonl(&["--ignore-ttl", a, b]);
    let mut want = expected();
    want.remove(&(0, "s:ttl".to_string()));
    want.remove(&(0, "s:persist".to_string()));
    assert_eq!(kinds(&no_ttl), want);
    let (_, exact, _) = diff_jsonl(&["--ttl-tolerance", "0", a, b]);
    assert_eq!(
        exact[&(0, "s:ttl-small".to_string())]["kind"],
        "ttl-changed"
    );

    // Filters select on both sides.
    let (_, only_hashes, _) = diff_jsonl(&["--type", "hash", "--key", "h:*", a, b]);
    let keys: Vec<&str> = only_hashes.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(keys, ["h:del", "h:fttl", "h:grow", "h:small"]);
    let (code, db2, _) = diff_jsonl(&["--db", "2", a, b]);
    assert_eq!((code, db2.len()), (1, 1));

    // The table says the same in totals.
    let out = common::rdbtool(&["diff", a, b]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("16 keys differ"), "{text}");
    let hash_row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("│ hash"))
        .unwrap()
        .split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // type, only in A, only in B, value changed, TTL changed, type changed, unchanged.
    assert_eq!(
        hash_row[..7],
        ["hash", "1", "1", "3", "0", "0", "1"],
        "{text}"
    );

    // A snapshot equals itself.
    let out = common::rdbtool(&["diff", a, a]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .ends_with("identical\n")
    );
}

/// Data every server from 5.0 on takes, with nothing that depends on the clock; `streams` off
/// for older servers.
fn portable_data(streams: bool) -> Vec<u8> {
    let mut lines: Vec<String> = vec![
        "SET str hello".into(),
        "SET int 123456".into(),
        "SET neg -7".into(),
        "SET ttl x".into(),
        "PEXPIREAT ttl 4102444800000".into(),
        "HMSET hsmall a 1 b two c 3".into(),
        "SADD intset 3 1 2 100000".into(),
        "SADD sset a b c".into(),
        "ZADD zsmall 1 a 2.5 b -3 c".into(),
        "RPUSH lsmall a 1 b 2".into(),
        "SELECT 3".into(),
        "SET other db3".into(),
        "SELECT 0".into(),
    ];
    let mut big_hash = "HMSET hbig".to_string();
    let mut big_set = "SADD sbig".to_string();
    let mut big_zset = "ZADD zbig".to_string();
    let mut big_list = "RPUSH lbig".to_string();
    for i in 0..300 {
        big_hash.push_str(&format!(" field{i} value{i}"));
        big_set.push_str(&format!(" member{i}"));
        big_zset.push_str(&format!(" {}.5 m{i}", i % 17));
        big_list.push_str(&format!(" element{i}"));
    }
    lines.extend([big_hash, big_set, big_zset, big_list]);
    lines.push(format!("SET long {}", "abc".repeat(200)));
    if streams {
        lines.extend(
            [
                "XADD st 1-1 a 1 b 2",
                "XADD st 1-2 a 3 b 4",
                "XADD st 2-1 c 5",
                "XADD st 3-1 a 6",
                "XDEL st 2-1",
                "XGROUP CREATE st g 0",
                "XREADGROUP GROUP g c1 COUNT 2 STREAMS st >",
                "XCLAIM st g c1 0 1-1 1-2 TIME 1700000000000 RETRYCOUNT 3 FORCE JUSTID",
                "XCLAIM st g c2 0 3-1 TIME 1700000000001 RETRYCOUNT 1 FORCE JUSTID",
            ]
            .map(String::from),
        );
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    script(&refs)
}

fn saved_by(name: &str, data: &[u8], dir: &Path) -> PathBuf {
    let server = Server::start(&build(name), None);
    run(&server, data);
    snapshot(&server, dir, &format!("{name}.rdb"))
}

#[test]
fn the_same_data_saved_by_other_versions_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = portable_data(true);
    let reference = saved_by("redis-7.0", &data, dir.path());
    for other in ["redis-5.0", "redis-6.2", "redis-8.2", "valkey-9.1"] {
        let file = saved_by(other, &data, dir.path());
        let out = common::rdbtool(&["diff", reference.to_str().unwrap(), file.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "7.0 vs {other}:\n{text}");
        assert!(text.contains("(16 keys)"), "{other}: {text}");
    }
    // Redis 3.2 (ziplists, RDB 7), without streams.
    let data = portable_data(false);
    let (old, new) = (
        saved_by("redis-3.2", &data, dir.path()),
        saved_by("redis-8.2", &data, dir.path()),
    );
    let out = common::rdbtool(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And a real difference between versions still shows.
    let mut more = data.clone();
    more.extend(script(&["SADD sbig one-more"]));
    let changed = saved_by("redis-6.2", &more, dir.path());
    let (code, records, _) = diff_jsonl(&[old.to_str().unwrap(), changed.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        kinds(&records),
        BTreeMap::from([(
            (0, "sbig".to_string()),
            json!(["value-changed", {"members": [1, 0, 0]}])
        )])
    );
}

/// Pipes `diff A B --format resp EXTRA` into a server started on A; then B and the server
/// must diff as identical, and the server's DEBUG DIGEST must equal one started on B.
fn patch_round_trip(a: &Path, b: &Path, extra: &[&str]) {
    let server = Server::start(&build("redis-8.2"), Some(a));
    let mut args = vec![
        "diff",
        "--format",
        "resp",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = common::rdbtool(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
    let (errors, replies, text) = server.pipe(&out.stdout);
    assert_eq!(errors, 0, "{extra:?}: {text}");
    assert!(replies > 10);
    let after = common::rdbtool(&["diff", b.to_str().unwrap(), &url(&server)]);
    assert_eq!(
        after.status.code(),
        Some(0),
        "{extra:?}: {}{}",
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&after.stderr)
    );
    let reference = Server::start(&build("redis-8.2"), Some(b));
    assert_eq!(server.digest(), reference.digest(), "{extra:?}");
}

#[test]
fn the_patch_turns_a_into_b() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = scripted_pair(dir.path());
    patch_round_trip(&a, &b, &[]);
    patch_round_trip(&a, &b, &["--restore"]);
    // Tiny batches, and element comparison in many small parts.
    patch_round_trip(&a, &b, &["--batch-elements", "3", "--key-memory", "200"]);
    // And back.
    patch_round_trip(&b, &a, &[]);
}

#[test]
fn a_tiny_key_memory_gives_the_same_answer_in_proportionate_time() {
    // Every element in a partition of its own: as many passes as elements at most, not one
    // per possible partition (65,536 per key, 31 s on these 78 KB).
    for other in ["redis-6.2.rdb", "redis-8.2.rdb", "valkey-9.1.rdb"] {
        let (a, b) = (common::testdata("redis-7.0.rdb"), common::testdata(other));
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let whole = common::rdbtool(&["diff", "--format", "jsonl", a, b]);
        assert_eq!(whole.status.code(), Some(1), "{other}");
        let started = std::time::Instant::now();
        let tiny = common::rdbtool(&["diff", "--format", "jsonl", "--key-memory", "1", a, b]);
        let took = started.elapsed();
        assert_eq!(
            String::from_utf8_lossy(&tiny.stdout),
            String::from_utf8_lossy(&whole.stdout),
            "{other}"
        );
        assert_eq!(tiny.status.code(), Some(1), "{other}");
        assert!(took.as_secs() < 10, "{other}: {took:?}");
    }
}

/// Big keys with a tiny budget: a key is read at most 64 times, whatever the budget, so a
/// 40,000-element hash and list take seconds, not an hour; the answer is the default's.
#[test]
fn big_keys_with_a_tiny_key_memory_are_compared_in_bounded_passes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&build("redis-7.0"), None);
    let mut lines = Vec::new();
    for chunk in 0..40 {
        let fields: Vec<String> = (0..1000)
            .map(|i| format!("f{} v{}", chunk * 1000 + i, i))
            .collect();
        lines.push(format!("HSET big {}", fields.join(" ")));
        let items: Vec<String> = (0..1000)
            .map(|i| format!("e{}", chunk * 1000 + i))
            .collect();
        lines.push(format!("RPUSH list {}", items.join(" ")));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    run(&server, &script(&lines));
    let a = snapshot(&server, dir.path(), "a.rdb");
    run(
        &server,
        &script(&["HSET big f500 changed", "LSET list 700 changed"]),
    );
    let b = snapshot(&server, dir.path(), "b.rdb");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let sorted = |out: &[u8]| {
        let mut lines: Vec<String> = String::from_utf8_lossy(out)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    for format in [
        &["--format", "resp"][..],
        &["--format", "jsonl", "--detail"],
    ] {
        let whole = common::rdbtool(&[&["diff", a, b], format].concat());
        assert_eq!(whole.status.code(), Some(1), "{format:?}");
        let started = std::time::Instant::now();
        let tiny = common::rdbtool(&[&["diff", a, b, "--key-memory", "1"], format].concat());
        let took = started.elapsed();
        assert_eq!(tiny.status.code(), Some(1), "{format:?}");
        // Parts list their elements in another order.
        assert_eq!(sorted(&tiny.stdout), sorted(&whole.stdout), "{format:?}");
        assert!(took.as_secs() < 20, "{format:?}: {took:?}");
    }
}

#[test]
fn the_patch_keeps_element_commands_small() {
    // One member of a big set changes: the patch is SADD/SREM, not a rewrite of the set.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&build("redis-7.0"), None);
    run(&server, &portable_data(false));
    let a = snapshot(&server, dir.path(), "a.rdb");
    run(
        &server,
        &script(&["SADD sbig new", "SREM sbig member7", "HSET hbig field3 x"]),
    );
    let b = snapshot(&server, dir.path(), "b.rdb");
    let out = common::rdbtool(&[
        "diff",
        "--format",
        "resp",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let patch = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = patch
        .split("\r\n")
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| {
            w[0].starts_with('$')
                && w[1].chars().all(|c| c.is_ascii_uppercase())
                && !w[1].is_empty()
        })
        .map(|w| w[1])
        .collect();
    assert_eq!(commands, ["SELECT", "HSET", "SADD", "SREM"], "{patch:?}");
}

/// Loads `fixture` into a fresh server of `name` with `rdbtool replay`.
fn loaded(name: &str, fixture: &Path) -> Server {
    let server = Server::start(&build(name), None);
    let out = common::rdbtool(&["replay", fixture.to_str().unwrap(), "--to", &url(&server)]);
    assert!(out.status.success(), "{}", common::printed(&out));
    server
}

#[test]
fn a_live_server_equals_the_dump_it_was_loaded_from() {
    for (name, fixture) in [
        ("redis-7.0", "redis-7.0.rdb"),
        ("redis-8.2", "redis-8.2.rdb"),
        ("valkey-9.1", "valkey-9.1.rdb"),
        ("redis-5.0", "redis-5.0.rdb"),
    ] {
        let rdb = common::testdata(fixture);
        let server = loaded(name, &rdb);
        let (code, records, summary) = diff_jsonl(&[rdb.to_str().unwrap(), &url(&server)]);
        // Redis 8's vector sets (a module type) write their elements in another order once
        // reloaded: module values are compared as written, so those may differ.
        let (modules, others): (Vec<_>, Vec<_>) =
            records.values().partition(|r| r["type"] == "module");
        assert!(others.is_empty(), "{name}: {others:?}");
        assert!(
            name == "redis-8.2" || modules.is_empty(),
            "{name}: {modules:?}"
        );
        let expected = if modules.is_empty() { 0 } else { 1 };
        assert_eq!(code, expected, "{name}");
        assert!(
            summary["keys_b"].as_u64().unwrap() > 40,
            "{name}: {summary}"
        );
        assert_eq!(summary["keys_a"], summary["keys_b"]);
    }
}

#[test]
fn a_live_server_shows_exactly_the_field_that_changed() {
    let rdb = common::testdata("redis-7.0.rdb");
    let server = loaded("redis-7.0", &rdb);
    // A hash of the dump, and one of its fields.
    let export = common::rdbtool(&["export", "--type", "hash", rdb.to_str().unwrap()]);
    let first: Value = serde_json::from_str(
        String::from_utf8(export.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let (db, key) = (
        first["db"].as_u64().unwrap(),
        first["key"].as_str().unwrap(),
    );
    let (field, old) = first["value"].as_object().unwrap().iter().next().unwrap();
    let db_arg = db.to_string();
    run(
        &server,
        &resp(&[
            vec![b"SELECT", db_arg.as_bytes()],
            vec![b"HSET", key.as_bytes(), field.as_bytes(), b"changed!"],
        ]),
    );

    let (code, records, _) = diff_jsonl(&["--detail", rdb.to_str().unwrap(), &url(&server)]);
    assert_eq!(code, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[&(db, key.to_string())];
    assert_eq!(r["kind"], "value-changed");
    assert_eq!(r["fields"], json!({"added": 0, "removed": 0, "changed": 1}));
    assert_eq!(
        r["detail"]["fields"],
        json!({"added": [], "removed": [], "changed": [[field, old, "changed!"]]})
    );
}

#[test]
fn live_urls_carry_password_and_database() {
    let rdb = common::testdata("redis-7.0.rdb");
    let server = loaded("redis-7.0", &rdb);
    assert_eq!(
        server
            .cli(&["CONFIG", "SET", "requirepass", "s3cret"])
            .trim(),
        "OK"
    );
    let base = format!("redis://:s3cret@127.0.0.1:{}", server.port);
    let out = common::rdbtool(&["diff", rdb.to_str().unwrap(), &base]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A database in the URL: only that one is read from the server.
    let db0 = format!("{base}/0");
    let (_, all, _) = diff_jsonl(&[rdb.to_str().unwrap(), &db0]);
    assert!(!all.is_empty() && all.values().all(|r| r["kind"] == "removed" && r["db"] != 0));
    let out = common::rdbtool(&["diff", "--db", "0", rdb.to_str().unwrap(), &db0]);
    assert_eq!(out.status.code(), Some(0));
    // A wrong password is an error, and the password is not shown.
    let bad = format!("redis://:wrong@127.0.0.1:{}", server.port);
    let out = common::rdbtool(&["diff", rdb.to_str().unwrap(), &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("redis://:***@127.0.0.1") && !err.contains("wrong"),
        "{err}"
    );
}

#[test]
fn errors_exit_2_with_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::testdata("redis-7.0.rdb");
    let good = good.to_str().unwrap();
    let out = common::rdbtool(&["diff", good, "/nonexistent/b.rdb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/b.rdb"));
    // A truncated copy: the file, the offset and what was being read.
    let data = std::fs::read(good).unwrap();
    let cut = dir.path().join("cut.rdb");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let out = common::rdbtool(&["diff", good, cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cut.rdb: offset ") && err.lines().count() == 1,
        "{err}"
    );
    // No server there.
    let out = common::rdbtool(&["diff", good, "redis://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("rdbtool: redis://127.0.0.1:1"));
    let out = common::rdbtool(&["diff", good, "--ttl-tolerance", "1d", good]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_corpus_file_equals_itself_and_broken_ones_fail_cleanly() {
    if !common::have_corpus() {
        return;
    }
    let reference = common::testdata("redis-7.0.rdb");
    let mut checked = 0;
    for entry in common::catalog().iter().filter(|e| e["kind"] == "rdb") {
        let path = common::corpus()
            .join(entry["source"].as_str().unwrap())
            .join(entry["path"].as_str().unwrap());
        let path = path.to_str().unwrap();
        let features: Vec<&str> = entry["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let broken = entry["parse"] != "ok"
            || entry["crc"] == "INVALID"
            || entry["version"] == "REDIS0099"
            || features.contains(&"corrupt")
            || features.contains(&"duplicate-keys");
        for mode in [&[][..], &["--by-meaning"][..]] {
            let mut args = vec!["diff", "--format", "jsonl", "--expired", "keep"];
            args.extend_from_slice(mode);
            args.extend([path, path]);
            let out = common::rdbtool(&args);
            let code = out.status.code().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if features.contains(&"duplicate-keys") {
                assert_eq!(code, 2, "{path}: {err}");
                assert!(err.contains("keys appear twice"), "{err}");
            } else if broken {
                // A clean refusal or a comparison, never a crash.
                assert!(code == 0 || code == 2, "{path} {mode:?}: {code} {err}");
            } else {
                assert_eq!(code, 0, "{path} {mode:?}: {err}");
                let summary: Value =
                    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
                assert_eq!(summary["summary"]["keys_a"], summary["summary"]["keys_b"]);
            }
            if code == 2 {
                assert!(
                    err.starts_with("rdbtool: ") && err.lines().count() == 1,
                    "{err}"
                );
            }
        }
        // Against a file of another format every value is decoded: corrupt ones are found.
        let out = common::rdbtool(&["diff", path, reference.to_str().unwrap()]);
        let code = out.status.code().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if features.contains(&"corrupt") || entry["crc"] == "INVALID" {
            assert_eq!(code, 2, "{path}: {err}");
            assert!(err.contains(path) && err.contains("offset"), "{err}");
        } else {
            assert!(code == 1 || code == 2, "{path}: {code} {err}");
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}
