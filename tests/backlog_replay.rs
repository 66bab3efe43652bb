//! `rdbtool replay DIR` of a capture directory taken from a real master under load: the
//! snapshot, then the stream (to its end, or to `--to-offset`), into a fresh server gives the
//! master's digest (or the state at that offset); a resume refuses another capture's
//! checkpoint; the other commands read the capture's snapshot as the RDB file it is, and say
//! what to do when given the directory itself.

mod common;

use std::path::{Path, PathBuf};

use common::aof::{ran, workload, workload_lines};
use common::backlog::wait_for;
use common::backlog::{load, load_capture, master_offset, spawn_capture, stop, wait_caught_up};
use common::server::{Build, Server, build};

/// A master captured while it ran two workloads and non-idempotent writes; `middle` is its
/// offset between the two workloads.
struct Captured {
    master: Server,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    middle: u64,
}

fn capture(build: &Build) -> Captured {
    let master = Server::start_with(build, None, &["--repl-diskless-sync", "no"]);
    workload(&master, "before", true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let url = format!("redis://127.0.0.1:{}", master.port);
    let args = [
        &url,
        "--out",
        dir.to_str().unwrap(),
        "--segment-size",
        "4096",
    ];
    let child = spawn_capture(&args);
    wait_for("the snapshot", || dir.join("snapshot.1.rdb").exists());
    workload(&master, "during", true);
    let middle = master_offset(&master);
    load(&master, 100);
    wait_caught_up(&dir, &master);
    stop(child);
    Captured {
        master,
        _tmp: tmp,
        dir,
        middle,
    }
}

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

/// `replay DIR --to <fresh server> EXTRA…`: the server, and the output (stdout and stderr).
fn replayed(build: &Build, dir: &Path, extra: &[&str]) -> (Server, String) {
    let target = Server::start(build, None);
    let (code, out, err) = common::replay(dir, &url(&target), extra);
    assert_eq!(code, 0, "{out}{err}");
    (target, format!("{out}{err}"))
}

#[test]
fn replay_of_a_capture_redis_7_0() {
    let b = build("redis-7.0");
    let c = capture(&b);
    let end = master_offset(&c.master);

    let (whole, out) = replayed(&b, &c.dir, &[]);
    assert_eq!(whole.digest(), c.master.digest(), "{out}");
    assert!(
        out.contains("capture: epoch 1 of redis://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains(&format!("..={end} (")), "{out}");
    assert!(out.contains("snapshot keys and stream commands:"), "{out}");

    // The state at the middle offset: what a server that ran only the first part holds.
    let middle = c.middle.to_string();
    let (part, out) = replayed(&b, &c.dir, &["--to-offset", &middle]);
    assert_ne!(part.digest(), c.master.digest());
    let sliced = load_capture(&b, &c.dir, Some(c.middle), &[]);
    assert_eq!(part.digest(), sliced.digest(), "{out}");
    let mut lines = workload_lines("before", true);
    lines.extend(workload_lines("during", true));
    assert_eq!(part.digest(), ran("redis-7.0", &lines).digest(), "{out}");

    // A checkpoint of the replay to the middle is not one of the replay to the end.
    let tmp = tempfile::tempdir().unwrap();
    let cp = tmp.path().join("cp.json");
    let cp_arg = cp.to_str().unwrap();
    let cp_args = ["--to-offset", &middle, "--checkpoint", cp_arg];
    replayed(&b, &c.dir, &cp_args);
    let target = Server::start(&b, None);
    let resume = ["--checkpoint", cp_arg, "--resume"];
    let (code, _, err) = common::replay(&c.dir, &url(&target), &resume);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checkpoint is for another file"), "{err}");
    assert!(err.contains(&format!("..={middle} as")), "{err}");

    // A run killed midway, resumed: the staged stream is the same, each command applied once.
    let cut = tempfile::tempdir().unwrap();
    let cp = cut.path().join("cp.json");
    let cp_arg = cp.to_str().unwrap();
    let target = Server::start(&b, None);
    let slow = [
        "--checkpoint",
        cp_arg,
        "--max-ops-per-sec",
        "1000",
        "--pipeline",
        "50",
    ];
    let mut child = common::spawn_replay(&c.dir, &url(&target), &slow);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(target.digest(), c.master.digest());
    let resume = ["--checkpoint", cp_arg, "--resume"];
    let (code, out, err) = common::replay(&c.dir, &url(&target), &resume);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("resumed after offset"), "{err}");
    assert_eq!(target.digest(), c.master.digest(), "{out}{err}");

    // Offsets outside the capture, and the AOF-only slice options, are refused.
    let after = (end + 1).to_string();
    let (code, _, err) = common::replay(&c.dir, &url(&target), &["--to-offset", &after]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("end of the capture's stream (offset {end})")),
        "{err}"
    );
    let (code, _, err) = common::replay(&c.dir, &url(&target), &["--from-offset", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a capture directory"), "{err}");

    other_commands(&c.dir);
}

/// verify, inspect, export and diff read `DIR/snapshot.1.rdb`; given `DIR` they say to.
fn other_commands(dir: &Path) {
    let snapshot = dir.join("snapshot.1.rdb");
    let snap = snapshot.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["verify"],
        &["inspect"],
        &["export", "--format", "json"],
        &["diff", snap],
    ];
    for args in commands {
        let mut on_snapshot = args.to_vec();
        on_snapshot.insert(1, snap);
        let out = common::rdbtool(&on_snapshot);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{on_snapshot:?}: {err}");

        let mut on_dir = args.to_vec();
        on_dir.insert(1, d);
        let out = common::rdbtool(&on_dir);
        let said = common::printed(&out);
        assert_eq!(out.status.code(), Some(2), "{on_dir:?}: {said}");
        assert!(
            said.contains(
                "is a capture directory: use its snapshot.N.rdb (snapshot.1.rdb) or rdbtool backlog"
            ),
            "{on_dir:?}: {said}"
        );
    }
}

#[test]
fn replay_of_a_capture_valkey_9_1() {
    let b = build("valkey-9.1");
    let c = capture(&b);
    let (whole, out) = replayed(&b, &c.dir, &[]);
    assert_eq!(whole.digest(), c.master.digest(), "{out}");
}
