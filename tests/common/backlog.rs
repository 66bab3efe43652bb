//! Replication for the backlog tests: INFO fields of real servers, `rdbtool backlog capture`
//! run as a child process against a real master, and a capture loaded into a fresh server
//! (its snapshot, then its stream applied with `backlog slice`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server::{Build, Server};

pub fn info(server: &Server, section: &str) -> String {
    server.cli(&["INFO", section])
}

pub fn field(text: &str, name: &str) -> String {
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in INFO:\n{text}"))
        .to_string()
}

pub fn num(text: &str, name: &str) -> i64 {
    field(text, name).parse().unwrap()
}

/// The master's `master_repl_offset`.
pub fn master_offset(server: &Server) -> u64 {
    num(&info(server, "replication"), "master_repl_offset") as u64
}

/// Polls until `ok`, for at most a minute.
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rdbtool backlog capture ARGS…` in the background (stop it with [`stop`]).
pub fn spawn_capture(args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
        .args(["backlog", "capture"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rdbtool backlog capture")
}

/// Stops a capture as Ctrl-C does; its output (stdout and stderr), which must say it ended
/// well.
pub fn stop(mut child: Child) -> String {
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child_output(&mut child);
    let status = child.wait().unwrap();
    assert!(status.success(), "capture ended with {status}:\n{out}");
    out
}

fn child_output(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut text).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut text).unwrap();
    }
    text
}

/// `backlog verify --format json` of a capture: exit code and report.
pub fn verify(dir: &Path) -> (i32, Value) {
    let out = super::rdbtool(&[
        "backlog",
        "verify",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "backlog verify gave no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The last offset the capture holds (its last epoch's).
pub fn captured_end(dir: &Path) -> u64 {
    let (_, report) = verify(dir);
    let epochs = report["epochs"].as_array().expect("epochs");
    epochs.last().map_or(0, |e| e["end"].as_u64().unwrap())
}

/// Waits until the capture holds the master's whole stream, the master quiet.
pub fn wait_caught_up(dir: &Path, master: &Server) {
    wait_for("the capture to catch up with the master", || {
        let want = master_offset(master);
        dir.join("capture.json").exists()
            && captured_end(dir) == want
            && master_offset(master) == want
    });
}

/// A fresh server holding the capture's last epoch up to `to` (or its end): the snapshot
/// loaded, then the stream from the snapshot's offset applied with `backlog slice`.
pub fn load_capture(build: &Build, dir: &Path, to: Option<u64>, extra: &[&str]) -> Server {
    let (_, report) = verify(dir);
    let epoch = report["epochs"].as_array().unwrap().last().unwrap().clone();
    let snapshot = dir.join(format!("snapshot.{}.rdb", epoch["epoch"]));
    let server = Server::start_with(build, Some(&snapshot), extra);
    let from = epoch["psync_offset"].as_u64().unwrap();
    let stream = slice(dir, from, to, "resp");
    let (errors, _, text) = server.pipe(&stream);
    assert_eq!(errors, 0, "{text}");
    server
}

/// Writes that are not idempotent (a doubled or lost one shows in the digest), in batches.
pub fn load(master: &Server, batches: usize) {
    for b in 0..batches {
        let mut cmds = Vec::new();
        for i in 0..20 {
            cmds.extend(rdbtool::resp::encode(&[
                b"INCR",
                format!("n:{i}").as_bytes(),
            ]));
            let v = format!("{b}-{i}");
            cmds.extend(rdbtool::resp::encode(&[b"LPUSH", b"l", v.as_bytes()]));
        }
        let (errors, _, text) = master.pipe(&cmds);
        assert_eq!(errors, 0, "{text}");
    }
}

/// The master's `sync_full` and `sync_partial_ok` (INFO stats).
pub fn syncs(master: &Server) -> (i64, i64) {
    let stats = info(master, "stats");
    (num(&stats, "sync_full"), num(&stats, "sync_partial_ok"))
}

/// The capture's `capture.json`.
pub fn capture_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("capture.json")).unwrap()).unwrap()
}

/// `rdbtool backlog slice DIR --from FROM [--to TO] --format FORMAT`'s output, which must
/// succeed.
pub fn slice(dir: &Path, from: u64, to: Option<u64>, format: &str) -> Vec<u8> {
    let (from, to) = (from.to_string(), to.map(|t| t.to_string()));
    let mut args = vec!["backlog", "slice", dir.to_str().unwrap(), "--from", &from];
    if let Some(t) = &to {
        args.extend(["--to", t]);
    }
    args.extend(["--format", format]);
    let out = super::rdbtool(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Kills a capture with SIGKILL; what it had printed.
pub fn kill(mut child: Child) -> String {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    child_output(&mut child)
}
