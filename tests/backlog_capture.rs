//! `rdbtool backlog capture` against real masters under a write load: the capture verifies,
//! its end offset is the master's `master_repl_offset`, its snapshot plus its stream loaded
//! into a fresh server give the master's `DEBUG DIGEST`, and `backlog slice --from X` brings a
//! server holding the state at X to the master's state.

mod common;

use std::path::Path;

use common::aof::workload;
use common::backlog::{
    load, load_capture, master_offset, spawn_capture, stop, verify, wait_caught_up, wait_for,
};
use common::server::{Build, Server, build};

/// A master under load captured from before the load to after it; checks all of the above.
fn capture_under_load(build: &Build, diskless: &str, functions: bool) {
    let master = Server::start_with(
        build,
        None,
        &[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    workload(&master, "before", functions);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let url = format!("redis://127.0.0.1:{}", master.port);
    let child = spawn_capture(&[
        &url,
        "--out",
        dir.to_str().unwrap(),
        "--segment-size",
        "4096",
    ]);
    wait_for("the snapshot", || dir.join("snapshot.1.rdb").exists());
    workload(&master, "during", functions);
    let middle = master_offset(&master);
    load(&master, 300);
    wait_caught_up(&dir, &master);
    let out = stop(child);
    let end = master_offset(&master);

    let (code, report) = verify(&dir);
    assert_eq!(code, 0, "{report:#}\n{out}");
    let epoch = &report["epochs"][0];
    assert_eq!(epoch["end"].as_u64(), Some(end), "{report:#}");
    assert_eq!(epoch["snapshot"]["status"], "ok", "{report:#}");
    assert!(epoch["segments"].as_u64().unwrap() > 1, "{report:#}");

    let whole = load_capture(build, &dir, None, &[]);
    assert_eq!(
        whole.digest(),
        master.digest(),
        "snapshot + stream of {}",
        build.name
    );

    // A server holding the state at `middle`, brought up to date by the slice after it.
    let at_middle = load_capture(build, &dir, Some(middle), &[]);
    assert_ne!(at_middle.digest(), master.digest());
    applied_slice(&dir, middle, &at_middle);
    assert_eq!(at_middle.digest(), master.digest(), "slice from {middle}");
}

fn applied_slice(dir: &Path, from: u64, server: &Server) {
    let from = from.to_string();
    let out = common::rdbtool(&["backlog", "slice", dir.to_str().unwrap(), "--from", &from]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (errors, _, text) = server.pipe(&out.stdout);
    assert_eq!(errors, 0, "{text}");
}

#[test]
fn redis_7_0_disk_based() {
    capture_under_load(&build("redis-7.0"), "no", true);
}

#[test]
fn redis_7_0_diskless() {
    capture_under_load(&build("redis-7.0"), "yes", true);
}

#[test]
fn redis_6_2_valkey_8_1_and_9_1() {
    capture_under_load(&build("redis-6.2"), "yes", false);
    capture_under_load(&build("valkey-8.1"), "yes", true);
    capture_under_load(&build("valkey-9.1"), "no", true);
}
