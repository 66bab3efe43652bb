//! The memory model against a real server: fixtures written by Redis 7.0 are loaded into Redis
//! 7.0, `MEMORY USAGE key SAMPLES 0` is read for every key and compared with `inspect --keys`.
//! Target: each encoding has at least 90% of its keys within ±10%, and the total is within ±5%.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::server::{Server, build};
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

#[test]
fn estimates_match_memory_usage_of_redis_7_0() {
    let mut per_encoding: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut estimated, mut real) = (0i64, 0i64);
    for fixture in ["redis-7.0.rdb", "redis-7.0-lfu.rdb", "redis-7.0-lru.rdb"] {
        let rdb = common::testdata(fixture);
        let out = common::rdbtool(&["inspect", "--keys", "jsonl", rdb.to_str().unwrap()]);
        assert!(out.status.success());
        let rows: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(rows.len() >= 9, "{fixture}");
        let server = Server::start(&build("redis-7.0"), Some(&rdb));
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
            let est = row["memory"]
                .as_i64()
                .expect("7.0 fixtures have no module values");
            estimated += est;
            real += used;
            let within = (est - used).abs() * 10 <= used;
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
    for (encoding, (within, all)) in &per_encoding {
        assert!(
            within * 10 >= all * 9,
            "{encoding}: only {within} of {all} keys within 10%"
        );
    }
    assert!(
        per_encoding.len() >= 9,
        "too few encodings compared: {per_encoding:?}"
    );
    assert!(
        (estimated - real).abs() * 20 <= real,
        "total estimated {estimated}, MEMORY USAGE {real}"
    );
}
