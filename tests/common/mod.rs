//! Shared by the integration tests: where the external corpus lives, and running the binary.

#![allow(dead_code)]

pub mod aof;
pub mod backlog;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// The external corpus: the directory `RDBTOOL_CORPUS` names, else `../shared/corpus` beside
/// the checkout (where CI puts it).
pub fn corpus() -> PathBuf {
    match std::env::var_os("RDBTOOL_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    }
}

/// Whether the corpus is there. A fresh clone has none: its corpus tests then pass without
/// reading it, and the first of them says so once per test binary, on the terminal (written to
/// stderr directly, past the harness's capture). With `RDBTOOL_REQUIRE_CORPUS` set, as
/// `.ci/run` sets it, a missing corpus fails the test instead.
pub fn have_corpus() -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    let dir = corpus();
    if dir.join("catalog.json").is_file() {
        return true;
    }
    assert!(
        std::env::var_os("RDBTOOL_REQUIRE_CORPUS").is_none(),
        "corpus missing at {} (RDBTOOL_REQUIRE_CORPUS is set)",
        dir.display()
    );
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: tests/{}.rs: corpus tests skipped, no corpus at {} (set RDBTOOL_CORPUS to its path)",
            env!("CARGO_CRATE_NAME"),
            dir.display()
        );
    });
    false
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

/// Starts `rdbtool replay FILE --to TO EXTRA...` in the background, its output piped, for a
/// test that acts on the target (or the process) while it runs.
pub fn spawn_replay(file: &Path, to: &str, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
        .args(["replay", file.to_str().unwrap(), "--to", to])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rdbtool replay")
}

/// A service that is not Redis (Python's HTTP server) on a free loopback port, stopped when
/// dropped.
pub struct HttpServer {
    child: std::process::Child,
    pub port: u16,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        use std::time::{Duration, Instant};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "http.server");
            std::thread::sleep(Duration::from_millis(50));
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished process printed, standard output then standard error, for messages.
pub fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
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
