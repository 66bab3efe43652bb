//! `rdbtool inspect` on the external corpus: for every file that reads, the per-type key
//! counts equal those of the catalog's structural scan, and for files whose stated contents
//! are complete, the per-db and per-type counts equal the stated keys.

mod common;

use std::collections::BTreeMap;

use rdbtool::rdb::{Flavor, Format, ObjectType};
use serde_json::Value;

/// Files the catalog marks as not loadable (bad CRC, future version, duplicate keys, corrupt).
fn invalid(entry: &Value) -> bool {
    let features: Vec<&str> = entry["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    entry["crc"] == "INVALID"
        || features.contains(&"duplicate-keys")
        || features.contains(&"corrupt")
}

fn format_of(version: &str) -> Format {
    match version.strip_prefix("VALKEY") {
        Some(v) => Format {
            flavor: Flavor::Valkey,
            version: v.parse().unwrap(),
        },
        None => Format {
            flavor: Flavor::Redis,
            version: version[5..9].parse().unwrap(),
        },
    }
}

fn inspect(path: &str) -> Value {
    let out = common::rdbtool(&["inspect", "--format", "json", "--top", "0", path]);
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn counts_by_type(report: &Value) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for t in report["types"].as_array().unwrap() {
        *by.entry(t["type"].as_str().unwrap().to_string())
            .or_default() += t["keys"].as_u64().unwrap();
    }
    by
}

#[test]
fn per_type_counts_match_the_catalog() {
    if !common::have_corpus() {
        return;
    }
    let mut compared = 0;
    for entry in common::catalog()
        .iter()
        .filter(|e| e["kind"] == "rdb" && !invalid(e))
    {
        let path = common::corpus()
            .join(entry["source"].as_str().unwrap())
            .join(entry["path"].as_str().unwrap());
        let path = path.to_str().unwrap().to_string();
        let format = format_of(entry["version"].as_str().unwrap());
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for (byte, n) in entry["types"].as_object().unwrap() {
            let ty = ObjectType::from_byte(format, byte.parse().unwrap()).unwrap();
            *want.entry(ty.kind().as_str().to_string()).or_default() += n.as_u64().unwrap();
        }
        let report = inspect(&path);
        assert_eq!(counts_by_type(&report), want, "{path}");
        assert_eq!(report["keys"], want.values().sum::<u64>(), "{path}");
        compared += 1;
    }
    assert!(compared >= 130, "only {compared} files compared");
}

#[test]
fn per_db_and_type_counts_match_complete_stated_contents() {
    if !common::have_corpus() {
        return;
    }
    let mut compared = 0;
    for entry in common::catalog()
        .iter()
        .filter(|e| e["kind"] == "rdb" && !invalid(e))
    {
        if entry["expected_completeness"] != "full" || entry["dup_of"].is_string() {
            continue;
        }
        let expected_path = common::corpus().join(entry["expected_json"].as_str().unwrap());
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(expected_path).unwrap()).unwrap();
        let keys = expected["keys"].as_array().unwrap();
        let path = common::corpus()
            .join(entry["source"].as_str().unwrap())
            .join(entry["path"].as_str().unwrap());
        let report = inspect(path.to_str().unwrap());
        let mut types: BTreeMap<String, u64> = BTreeMap::new();
        let mut dbs: BTreeMap<u64, u64> = BTreeMap::new();
        // Some statements give values without types: those count toward the totals only.
        let mut untyped = 0u64;
        for k in keys {
            match k["type"].as_str().or(k["type_from_scan"].as_str()) {
                Some(t) => *types.entry(t.to_string()).or_default() += 1,
                None => untyped += 1,
            }
            if let Some(db) = k["db"].as_u64() {
                *dbs.entry(db).or_default() += 1;
            }
        }
        // A few "full" statements leave out a key the file has (their notes say so); there the
        // stated keys must be a subset, elsewhere the counts must be equal.
        let scanned: u64 = entry["types"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let exact = keys.len() as u64 == scanned;
        let ours = counts_by_type(&report);
        if exact && untyped == 0 {
            assert_eq!(ours, types, "{}", path.display());
        }
        if exact {
            assert_eq!(report["keys"], keys.len() as u64, "{}", path.display());
        }
        for (t, n) in &types {
            assert!(
                ours.get(t).is_some_and(|m| m >= n),
                "{}: {t}: {ours:?} vs stated {types:?}",
                path.display()
            );
        }
        for (db, n) in dbs {
            let got = report["dbs"][db.to_string()]["keys"].as_u64().unwrap_or(0);
            assert!(
                if exact { got == n } else { got >= n },
                "{} db {db}: {got} vs stated {n}",
                path.display()
            );
        }
        compared += 1;
    }
    assert!(
        compared >= 20,
        "only {compared} files with complete stated contents"
    );
}
