//! Targets that never answer, or answer in another language: `replay` and `diff` connect the
//! same way, give up within a few seconds with a message that says why (exit 2), and stop at
//! once on Ctrl-C while connecting.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, build};

/// A port that accepts connections and never says a word; open until the test ends.
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    port
}

/// Runs rdbtool ARGS: (exit code, stderr, how long it took); killed after 15 s (no exit code).
fn timed(args: Vec<String>) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbtool"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err, start.elapsed())
}

/// Each command line run at the same time (each waits out the connect timeout).
fn all_timed(runs: Vec<Vec<String>>) -> Vec<(Option<i32>, String, Duration)> {
    let threads: Vec<_> = runs
        .into_iter()
        .map(|args| std::thread::spawn(move || timed(args)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_target_that_never_answers_is_given_up_on_within_seconds() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    let port = silent_port();
    let plain = format!("redis://127.0.0.1:{port}");
    let with_password = format!("redis://:secret@127.0.0.1:{port}");
    let runs = vec![
        args(&["replay", rdb, "--to", &plain]),
        args(&["diff", rdb, &plain]),
        args(&["diff", rdb, &with_password]),
    ];
    for (run, (code, err, took)) in runs.clone().iter().zip(all_timed(runs)) {
        assert_eq!(code, Some(2), "{run:?}: {err}");
        assert!(
            err.contains(&format!("no answer from 127.0.0.1:{port} within 5 s")),
            "{run:?}: {err}"
        );
        assert!(!err.contains("secret"), "{run:?}: {err}");
        assert!(took < Duration::from_secs(8), "{run:?}: {took:?}");
    }
}

#[test]
fn ctrl_c_while_connecting_to_a_stopped_server_stops_at_once() {
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&build("redis-7.0"), None);
    let pid = target
        .cli(&["INFO", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_string();
    let signal = |sig: &str, pid: &str| {
        let ok = Command::new("kill").args([sig, pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    };
    signal("-STOP", &pid);
    let mut child = common::spawn_replay(&rdb, &format!("redis://127.0.0.1:{}", target.port), &[]);
    std::thread::sleep(Duration::from_millis(700));
    signal("-INT", &child.id().to_string());
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() && sent.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = sent.elapsed();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    signal("-CONT", &pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stopped < Duration::from_secs(1), "{stopped:?}: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim(), "rdbtool: interrupted", "{err}");
}

#[test]
fn diff_names_a_target_that_speaks_no_tls_or_no_resp() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    let target = Server::start(&build("redis-7.0"), None);
    let (code, err, took) = timed(args(&[
        "diff",
        rdb,
        &format!("rediss://127.0.0.1:{}", target.port),
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("the TLS handshake failed: the port answers in plain text"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    let http = common::HttpServer::start();
    let port = http.port;
    let (code, err, _) = timed(args(&["diff", rdb, &format!("redis://127.0.0.1:{port}")]));
    drop(http);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the target does not speak RESP"), "{err}");
}
