//! `rdbtool verify` against every RDB file and DUMP payload of the external corpus: files the
//! catalog says parse are accepted with the key count it states; files it marks invalid are
//! rejected with a message naming the problem; payloads Redis rejects are rejected.

mod common;

use common::{catalog, corpus, messages, verify_json};
use serde_json::Value;

fn path_of(entry: &Value) -> String {
    let p = corpus()
        .join(entry["source"].as_str().unwrap())
        .join(entry["path"].as_str().unwrap());
    p.to_string_lossy().into_owned()
}

fn features(entry: &Value) -> Vec<&str> {
    entry["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn rdb_files_verify_as_the_catalog_states() {
    if !common::have_corpus() {
        return;
    }
    let mut checked = 0;
    for entry in catalog().iter().filter(|e| e["kind"] == "rdb") {
        let path = path_of(entry);
        let (code, report) = verify_json(&[&path]);
        let f = features(entry);
        let why = messages(&report);
        if entry["crc"] == "INVALID" && entry["version"] != "REDIS0099" {
            assert_eq!(code, 1, "{path}: {why}");
            assert!(why.contains("CRC-64 mismatch"), "{path}: {why}");
        } else if entry["version"] == "REDIS0099" {
            assert_eq!(code, 1, "{path}: {why}");
            assert!(
                why.contains("unsupported RDB format version"),
                "{path}: {why}"
            );
        } else if f.contains(&"duplicate-keys") {
            assert_eq!(code, 1, "{path}: {why}");
            assert!(why.contains("duplicate key"), "{path}: {why}");
        } else if f.contains(&"corrupt") {
            assert_eq!(code, 1, "{path}: {why}");
            assert!(why.contains("integrity check failed"), "{path}: {why}");
        } else {
            assert_eq!(entry["parse"], "ok", "{path}");
            let keys: u64 = entry["types"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(code, 0, "{path}: {why}");
            assert_eq!(report["keys"], keys, "{path}");
        }
        checked += 1;
    }
    assert!(checked >= 140, "only {checked} RDB files in the catalog");
}

#[test]
fn trailing_bytes_are_a_warning_and_an_error_when_strict() {
    if !common::have_corpus() {
        return;
    }
    let path = corpus().join("redis-rdb-tools/tests/dumps/redis_40_with_module.rdb");
    let path = path.to_str().unwrap();
    let (code, report) = verify_json(&[path]);
    assert_eq!(code, 0);
    assert!(
        messages(&report).contains("40 bytes after the end"),
        "{report}"
    );
    assert_eq!(report["checksum"], "disabled");
    let (code, _) = verify_json(&["--strict", path]);
    assert_eq!(code, 1);
}

#[test]
fn dump_payloads_redis_rejects_are_rejected() {
    if !common::have_corpus() {
        return;
    }
    let index_path = corpus().join("redis-corrupt-payloads/INDEX.json");
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(index_path).unwrap()).unwrap();
    let mut rejected = 0;
    for case in &index {
        let path = corpus()
            .join("redis-corrupt-payloads")
            .join(case["file"].as_str().unwrap());
        let (code, report) = verify_json(&["--dump-payload", path.to_str().unwrap()]);
        // Every payload gets an answer, never a crash; those Redis refuses, we refuse.
        assert!(code == 0 || code == 1, "{}: exit {code}", path.display());
        if case["asserted_error"].is_string() {
            assert_eq!(
                code,
                1,
                "{}: accepted, but Redis rejects it",
                path.display()
            );
            assert!(!messages(&report).is_empty());
            rejected += 1;
        }
    }
    assert!(rejected >= 40, "only {rejected} rejecting cases");
}

#[test]
fn valid_dump_payloads_are_accepted() {
    if !common::have_corpus() {
        return;
    }
    let catalog = catalog();
    let valid: Vec<&Value> = catalog
        .iter()
        .filter(|e| e["kind"] == "dump" && e["source"] != "redis-corrupt-payloads")
        .collect();
    assert!(valid.len() >= 8);
    for entry in valid {
        let path = path_of(entry);
        let (code, report) = verify_json(&["--dump-payload", &path]);
        assert_eq!(code, 0, "{path}: {}", messages(&report));
        assert_eq!(report["checksum"], "ok");
    }
}
