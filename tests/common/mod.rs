//! Shared by the integration tests: where the external corpus lives, and running the binary.

#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// The external corpus sits beside the checkout (CI puts it there); its absence is a failure.
pub fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.join("catalog.json").is_file(),
        "corpus missing at {}",
        dir.display()
    );
    dir
}

pub fn catalog() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus().join("catalog.json")).expect("catalog");
    serde_json::from_str::<Value>(&text)
        .expect("catalog json")
        .as_array()
        .expect("catalog array")
        .clone()
}

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

pub fn rdbtool(args: &[&str]) -> Output {
    Command::cargo_bin("rdbtool")
        .expect("binary")
        .args(args)
        .output()
        .expect("run rdbtool")
}

/// Runs `rdbtool replay FILE --to TO EXTRA...`; returns exit code, stdout and stderr.
pub fn replay(file: &Path, to: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["replay", file.to_str().unwrap(), "--to", to];
    args.extend_from_slice(extra);
    let out = rdbtool(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `rdbtool verify --format json ARGS` and returns (exit code, the first file's report).
pub fn verify_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["verify", "--format", "json"];
    all.extend_from_slice(args);
    let out = rdbtool(&all);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (
        out.status.code().expect("exit code"),
        doc["files"][0].clone(),
    )
}

pub fn messages(report: &Value) -> String {
    report["problems"].as_array().map_or(String::new(), |ps| {
        ps.iter()
            .map(|p| p["message"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}
