//! The memory model against real servers: every fixture is loaded into the server version that
//! wrote it, `MEMORY USAGE key SAMPLES 0` is read for every key and compared with
//! `inspect --keys`, whose model is chosen from the file alone (its `redis-ver` / `valkey-ver`)
//! and whose allocator is the one that server build reports. Target for every version: each
//! encoding has at least 90% of its keys within ±10%, and the total is within ±5%.
//!
//! Redis 3.0 and 3.2 are not checked: `MEMORY USAGE` arrived in 4.0. Module values (Redis
//! 8.2's vector sets) are not estimated and not compared.
//!
//! Figures reached (keys within ±10% / keys compared, all encodings together; total estimate
//! vs the sum of `MEMORY USAGE`, as seen over repeated runs):
//!
//! | version    | allocator   | keys within ±10%         | total        |
//! |------------|-------------|--------------------------|--------------|
//! | redis-5.0  | jemalloc    | 54/54, 9 encodings       | within 0.1%  |
//! | redis-6.0  | jemalloc    | 54/54, 9 encodings       | within 0.2%  |
//! | redis-6.2  | libc        | 54/54, 9 encodings       | within 0.1%  |
//! | redis-7.0  | jemalloc-16 | 73/73, 9 encodings (3 files) | within 0.1% |
//! | redis-8.2  | jemalloc    | 58/58, 11 encodings      | within 0.2%  |
//! | valkey-8.1 | libc        | 55/55, 10 encodings      | within 0.3%  |
//! | valkey-9.1 | libc        | 75/76, 10 encodings (3 files); strings 32/33 | within 0.4% |
//!
//! The one miss is Valkey 9.1's `str:empty`: 40 bytes where its object asks for 24. glibc
//! (which these Valkey builds use) can hand out a chunk 16 bytes larger than asked, depending on
//! what was freed before; on a 24-byte object that is 67%. Skiplist levels and Valkey's
//! hashtable child buckets are random; the model uses their expected size, which moves the
//! two-member and 200-member sorted sets by a few percent from run to run.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::server::{Build, Server, build};
use rdbtool::resp::Command;
use serde_json::Value;

fn key_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        _ => base64::engine::general_purpose::STANDARD
            .decode(v["base64"].as_str().unwrap())
            .unwrap(),
    }
}

/// The allocator as the running build reports it: glibc, or jemalloc and its quantum.
fn allocator(server: &Server) -> &'static str {
    if server
        .cli(&["INFO", "memory"])
        .contains("mem_allocator:libc")
    {
        return "libc";
    }
    let stats = server.cli(&["MEMORY", "MALLOC-STATS"]);
    if stats.contains("Quantum size: 16") {
        "jemalloc-16"
    } else {
        assert!(stats.contains("Quantum size: 8"), "unknown allocator");
        "jemalloc"
    }
}

/// `inspect` picks the release from the file: the same one the server is.
fn check_model_choice(build: &Build, rdb: &str, allocator: &str) {
    let out = common::rdbtool(&["inspect", "--format", "json", "--allocator", allocator, rdb]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = &report["memory_model"];
    let expected = match build.target() {
        t if build.valkey => t,
        t => format!("redis-{t}"),
    };
    assert_eq!(model["server"], expected.as_str(), "{rdb}: {model}");
    assert_eq!(model["allocator"], allocator);
    let aux = if build.valkey {
        "valkey-ver "
    } else {
        "redis-ver "
    };
    assert!(
        model["chosen_by"].as_str().unwrap().starts_with(aux),
        "{rdb}: {model}"
    );
}

/// Keys within ±10% and all keys compared, per `type/encoding`.
type Shares = BTreeMap<String, (usize, usize)>;

/// Loads each fixture into `server` and compares every key; returns the shares per encoding
/// and the total estimate and `MEMORY USAGE` sum.
fn compare(name: &str, fixtures: &[&str]) -> (Shares, i64, i64) {
    let build = build(name);
    let mut per_encoding = Shares::new();
    let (mut estimated, mut real) = (0i64, 0i64);
    for fixture in fixtures {
        let rdb = common::testdata(fixture);
        let path = rdb.to_str().unwrap();
        let server = Server::start(&build, Some(&rdb));
        let allocator = allocator(&server);
        check_model_choice(&build, path, allocator);
        let out = common::rdbtool(&["inspect", "--keys", "jsonl", "--allocator", allocator, path]);
        assert!(out.status.success());
        let rows: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|row: &Value| row["type"] != "module")
            .collect();
        assert!(rows.len() >= 9, "{fixture}");
        let mut commands = Vec::new();
        for row in &rows {
            let mut select = Command::new("SELECT");
            select.arg_uint(row["db"].as_u64().unwrap());
            select.write_to(&mut commands).unwrap();
            let mut usage = Command::new("MEMORY");
            usage
                .arg(b"USAGE")
                .arg(&key_bytes(&row["key"]))
                .arg(b"SAMPLES")
                .arg(b"0");
            usage.write_to(&mut commands).unwrap();
        }
        let usages = server.integers(&commands, rows.len());
        for (row, &used) in rows.iter().zip(&usages) {
            let est = row["memory"].as_i64().expect("an estimate");
            estimated += est;
            real += used;
            let within = (est - used).abs() * 10 <= used;
            if !within {
                eprintln!(
                    "{name}: {fixture} {}: estimated {est}, MEMORY USAGE {used}",
                    row["key"]
                );
            }
            let key = format!(
                "{}/{}",
                row["type"].as_str().unwrap(),
                row["encoding"].as_str().unwrap()
            );
            let e = per_encoding.entry(key).or_default();
            e.0 += usize::from(within);
            e.1 += 1;
        }
    }
    eprintln!("{name}: {per_encoding:?}, total estimated {estimated}, MEMORY USAGE {real}");
    (per_encoding, estimated, real)
}

/// The target: `percent`% of each encoding's keys within ±10% (90 everywhere; 100 where that
/// was reached before and must stay so), the total within ±5%, and enough encodings compared.
fn check(server: &str, fixtures: &[&str], percent: usize, min_encodings: usize) {
    let (per_encoding, estimated, real) = compare(server, fixtures);
    for (encoding, (within, all)) in &per_encoding {
        assert!(
            within * 100 >= all * percent,
            "{server} {encoding}: only {within} of {all} keys within 10%"
        );
    }
    assert!(
        per_encoding.len() >= min_encodings,
        "{server}: too few encodings compared: {per_encoding:?}"
    );
    assert!(
        (estimated - real).abs() * 20 <= real,
        "{server}: total estimated {estimated}, MEMORY USAGE {real}"
    );
}

#[test]
fn redis_5_0() {
    check("redis-5.0", &["redis-5.0.rdb"], 90, 9);
}

#[test]
fn redis_6_0() {
    check("redis-6.0", &["redis-6.0.rdb"], 90, 9);
}

#[test]
fn redis_6_2() {
    check("redis-6.2", &["redis-6.2.rdb"], 90, 9);
}

#[test]
fn redis_7_0() {
    let fixtures = ["redis-7.0.rdb", "redis-7.0-lfu.rdb", "redis-7.0-lru.rdb"];
    check("redis-7.0", &fixtures, 100, 9);
}

#[test]
fn redis_8_2() {
    check("redis-8.2", &["redis-8.2.rdb"], 90, 11);
}

#[test]
fn valkey_8_1() {
    check("valkey-8.1", &["valkey-8.1.rdb"], 90, 10);
}

#[test]
fn valkey_9_1() {
    let fixtures = ["valkey-9.1.rdb", "valkey-9.1-lfu.rdb", "valkey-9.1-lru.rdb"];
    check("valkey-9.1", &fixtures, 90, 10);
}
