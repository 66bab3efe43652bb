//! `rdbtool aof repair` on AOFs written by a real Redis 7.0: the repaired copy of a truncated
//! AOF loads in redis-server with the data of the commands it keeps and redis-check-aof calls
//! it valid; `--until-timestamp` keeps exactly the commands up to a time (cut where
//! `redis-check-aof --truncate-to-timestamp` cuts); point-in-time recovery drops a FLUSHALL.

mod common;

use std::path::Path;
use std::process::Command;

use common::aof::{
    self, after_second, check_aof, copy_dir, load_dir, now, ran, rewrite, send, workload,
    workload_lines,
};
use common::{printed, rdbtool};

const REDIS: &str = "redis-7.0";

/// A 7.0 server writing a multi-part AOF with an RDB base and timestamps.
fn writer() -> common::server::Server {
    let extra = [
        "--aof-use-rdb-preamble",
        "yes",
        "--aof-timestamp-enabled",
        "yes",
    ];
    aof::start(REDIS, &extra).1
}

/// The data a server holds: its digest and key count.
fn state(server: &common::server::Server) -> (String, String) {
    (server.digest(), server.cli(&["DBSIZE"]))
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn repair(args: &[&str]) -> (i32, String) {
    let mut all = vec!["aof", "repair"];
    all.extend_from_slice(args);
    let out = rdbtool(&all);
    (out.status.code().unwrap(), printed(&out))
}

/// redis-check-aof on a manifest: whether it calls every file valid.
fn check_aof_valid(manifest: &Path) -> bool {
    let out = Command::new(check_aof(REDIS))
        .arg(manifest)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("All AOF files and manifest are valid")
}

#[test]
fn a_truncated_aof_repaired_loads_and_redis_check_aof_calls_it_valid() {
    let server = writer();
    workload(&server, "a", true);
    rewrite(&server);
    workload(&server, "b", true);
    send(
        &server,
        &["MULTI", "SET tx1 1", "SET tx2 2", "EXEC", "SET last v"],
    );
    let input = copy_dir(&aof::aof_dir(&server));
    let incr = input.path().join("appendonly.aof.2.incr.aof");
    let bytes = std::fs::read(&incr).unwrap();
    let inside = bytes.windows(3).rposition(|w| w == b"tx2").unwrap() + 1;
    std::fs::write(&incr, &bytes[..inside]).unwrap();
    let before = snapshot(input.path());
    assert!(!check_aof_valid(
        &input.path().join("appendonly.aof.manifest")
    ));

    let out = tempfile::tempdir().unwrap();
    let repaired = out.path().join("appendonlydir");
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        repaired.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    // The whole SET tx1 and the MULTI before it, the truncated SET tx2 as bytes.
    assert!(text.contains("a truncated tail"), "{text}");
    assert!(text.contains("2 commands (MULTI 1, SET 1)"), "{text}");
    assert!(text.contains("not a whole command"), "{text}");
    assert_eq!(snapshot(input.path()), before, "the input changed");
    assert!(check_aof_valid(&repaired.join("appendonly.aof.manifest")));
    let verify = rdbtool(&["verify", repaired.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", printed(&verify));

    let expected = [workload_lines("a", true), workload_lines("b", true)].concat();
    let loaded = load_dir(REDIS, &repaired);
    assert_eq!(state(&loaded), state(&ran(REDIS, &expected)));

    // The output must be new, and never an input.
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        repaired.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    let manifest = input.path().join("appendonly.aof.manifest");
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("same file as the input"), "{text}");
    assert_eq!(snapshot(input.path()), before, "the input changed");
}

#[test]
fn until_timestamp_keeps_exactly_the_commands_up_to_t() {
    let server = writer();
    workload(&server, "a", true);
    rewrite(&server);
    workload(&server, "b", true);
    let t = now();
    after_second(t);
    workload(&server, "c", true);
    let input = copy_dir(&aof::aof_dir(&server));
    let out = tempfile::tempdir().unwrap();
    let repaired = out.path().join("appendonlydir");
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        repaired.to_str().unwrap(),
        "--until-timestamp",
        &t.to_string(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("--until-timestamp"), "{text}");

    // Where redis-check-aof --truncate-to-timestamp cuts the same (last) file.
    let theirs = copy_dir(input.path());
    let status = Command::new(check_aof(REDIS))
        .args(["--truncate-to-timestamp", &t.to_string()])
        .arg(theirs.path().join("appendonly.aof.manifest"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let name = "appendonly.aof.2.incr.aof";
    assert_eq!(
        std::fs::read(repaired.join(name)).unwrap(),
        std::fs::read(theirs.path().join(name)).unwrap()
    );

    let expected = [workload_lines("a", true), workload_lines("b", true)].concat();
    let loaded = load_dir(REDIS, &repaired);
    assert_eq!(state(&loaded), state(&ran(REDIS, &expected)));
}

#[test]
fn point_in_time_recovery_drops_the_flushall() {
    let server = writer();
    send(&server, &["FLUSHALL"]);
    workload(&server, "a", true);
    let t = now();
    after_second(t);
    let since = now();
    send(&server, &["FLUSHALL"]);
    send(&server, &["MULTI", "FLUSHALL", "FLUSHDB", "EXEC"]);
    workload(&server, "b", true);
    let input = copy_dir(&aof::aof_dir(&server));
    let out = tempfile::tempdir().unwrap();
    let repaired = out.path().join("appendonlydir");
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        repaired.to_str().unwrap(),
        "--drop",
        "FLUSHALL|flushdb",
        "--since",
        &since.to_string(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("5 commands (EXEC 1, FLUSHALL 2, FLUSHDB 1, MULTI 1)"),
        "{text}"
    );
    assert!(check_aof_valid(&repaired.join("appendonly.aof.manifest")));
    let expected = [workload_lines("a", true), workload_lines("b", true)].concat();
    let loaded = load_dir(REDIS, &repaired);
    let want = ran(REDIS, &expected);
    assert_eq!(state(&loaded), state(&want));
    assert_ne!(want.cli(&["DBSIZE"]).trim(), "0");
}

#[test]
fn until_offset_counts_across_the_files_or_in_one() {
    let server = writer();
    workload(&server, "a", true);
    rewrite(&server);
    workload(&server, "b", true);
    send(&server, &["SET x 1", "SET y 2"]);
    let input = copy_dir(&aof::aof_dir(&server));
    let base = std::fs::metadata(input.path().join("appendonly.aof.2.base.rdb"))
        .unwrap()
        .len();
    let incr = std::fs::read(input.path().join("appendonly.aof.2.incr.aof")).unwrap();
    // Inside the last command (SET y 2): only it goes.
    let inside = incr.len() as u64 - 5;
    let out = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for spec in [
        format!("appendonly.aof.2.incr.aof:{inside}"),
        (base + inside).to_string(),
    ] {
        let repaired = out.path().join(&spec);
        let (code, text) = repair(&[
            input.path().to_str().unwrap(),
            "-o",
            repaired.to_str().unwrap(),
            "--until-offset",
            &spec,
        ]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("dropped: 1 command (SET 1)"), "{text}");
        copies.push(snapshot(&repaired));
    }
    assert_eq!(copies[0], copies[1]);
    let expected = [
        workload_lines("a", true),
        workload_lines("b", true),
        vec!["SET x 1".to_string()],
    ]
    .concat();
    let repaired = out
        .path()
        .join(format!("appendonly.aof.2.incr.aof:{inside}"));
    let loaded = load_dir(REDIS, &repaired);
    assert_eq!(state(&loaded), state(&ran(REDIS, &expected)));
    // An offset inside the RDB base cannot be cut.
    let (code, text) = repair(&[
        input.path().to_str().unwrap(),
        "-o",
        out.path().join("x").to_str().unwrap(),
        "--until-offset",
        "10",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("inside the RDB data"), "{text}");
}

#[test]
fn a_truncated_single_file_with_preamble_repaired_loads_in_redis_6_2() {
    let name = "redis-6.2";
    let (_, server) = aof::start(name, &["--aof-use-rdb-preamble", "yes"]);
    workload(&server, "a", false);
    rewrite(&server);
    workload(&server, "b", false);
    send(&server, &["SET last v"]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cut.aof");
    let bytes = std::fs::read(server.dir.path().join("appendonly.aof")).unwrap();
    assert!(bytes.starts_with(b"REDIS"), "no preamble");
    std::fs::write(&input, &bytes[..bytes.len() - 4]).unwrap();
    let repaired = dir.path().join("appendonly.aof");
    let (code, text) = repair(&[input.to_str().unwrap(), "-o", repaired.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("dropped: 0 commands"), "{text}");
    assert!(text.contains("not a whole command"), "{text}");
    let out = Command::new(check_aof(name))
        .arg(&repaired)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    let args = ["--appendonly", "yes", "--dir", dir.path().to_str().unwrap()];
    let loaded = common::server::Server::start_with(&common::server::build(name), None, &args);
    let expected = [workload_lines("a", false), workload_lines("b", false)].concat();
    assert_eq!(state(&loaded), state(&ran(name, &expected)));
}
