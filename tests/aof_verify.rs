//! `rdbtool verify` on AOFs written by real servers (Redis 7.0 multi-part with and without
//! preamble, timestamps, several rewrites; Redis 6.2 single file with preamble; Valkey 8.1 and
//! 9.1), cut at every byte and damaged in the middle, compared with `redis-check-aof`; and on the
//! corpus AOFs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::aof::{self, analyzed, check_aof, failed_rewrite, rewrite, send, workload};
use common::{catalog, corpus, messages, rdbtool, verify_json};
use rdbtool::verify::aof::{AofReport, Options, check_path};
use serde_json::Value;

fn check_lib(path: &Path) -> AofReport {
    let opts = Options {
        release: None,
        workers: 1,
    };
    check_path(path, path.display().to_string(), opts)
}

/// Our ok_up_to and ok_up_to_line for each file `redis-check-aof` analyzed.
fn assert_like_check_aof(tool: &Path, input: &Path, report: &Value) -> bool {
    let (files, valid) = analyzed(tool, input);
    let parts = report["parts"].as_array().unwrap();
    assert!(!files.is_empty(), "{} printed nothing", tool.display());
    for ((name, size, ok, line), part) in files.iter().zip(parts) {
        let ours = (&part["size"], &part["ok_up_to"], &part["ok_up_to_line"]);
        assert_eq!(
            (ours.0.as_u64(), ours.1.as_u64(), ours.2.as_u64()),
            (Some(*size), Some(*ok), Some(*line)),
            "{name} in {}",
            input.display()
        );
    }
    valid
}

/// A 7.0 server's appendonlydir after a workload, a rewrite and two failed rewrites (so the
/// manifest lists a base and three incr files), with timestamps across seconds.
fn multi_part(name: &str, preamble: &str, functions: bool) -> (common::server::Server, usize) {
    let (_, server) = aof::start(
        name,
        &[
            "--aof-use-rdb-preamble",
            preamble,
            "--aof-timestamp-enabled",
            "yes",
        ],
    );
    workload(&server, "a", functions);
    rewrite(&server);
    workload(&server, "b", functions);
    failed_rewrite(&server);
    workload(&server, "c", functions);
    std::thread::sleep(Duration::from_millis(1100));
    failed_rewrite(&server);
    workload(&server, "d", functions);
    (server, 3)
}

#[test]
fn redis_7_0_multi_part_aofs_verify_as_redis_check_aof_reads_them() {
    let tool = check_aof("redis-7.0");
    for (preamble, base) in [("yes", "RDB"), ("no", "RESP")] {
        let (server, incr) = multi_part("redis-7.0", preamble, true);
        let dir = aof::aof_dir(&server);
        let out = rdbtool(&["verify", dir.to_str().unwrap()]);
        let text = common::printed(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let layout = format!("appendonlydir with manifest, base ({base}) + {incr} incr files");
        assert!(text.contains(&layout), "{text}");
        let (code, report) = verify_json(&[dir.to_str().unwrap()]);
        assert_eq!(
            (code, &report["status"]),
            (0, &Value::from("ok")),
            "{report}"
        );
        if preamble == "yes" {
            assert_eq!(report["commands_of"], "redis-7.0");
            assert_eq!(report["parts"][0]["rdb"]["status"], "ok");
        }
        let manifest = dir.join("appendonly.aof.manifest");
        assert!(assert_like_check_aof(&tool, &manifest, &report));
    }
}

#[test]
fn redis_6_2_single_file_with_preamble_verifies() {
    let (_, server) = aof::start("redis-6.2", &["--aof-use-rdb-preamble", "yes"]);
    workload(&server, "a", false);
    rewrite(&server);
    workload(&server, "b", false);
    let file = server.dir.path().join("appendonly.aof");
    let out = rdbtool(&["verify", file.to_str().unwrap()]);
    let text = common::printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("AOF: a single file, RDB preamble + RESP"),
        "{text}"
    );
    let (_, report) = verify_json(&[file.to_str().unwrap()]);
    assert_eq!(report["commands_of"], "redis-6.2", "{report}");
    assert!(report["parts"][0]["commands"].as_u64().unwrap() > 20);
}

#[test]
fn valkey_aofs_verify() {
    for name in ["valkey-8.1", "valkey-9.1"] {
        let (server, incr) = multi_part(name, "yes", true);
        let dir = aof::aof_dir(&server);
        let (code, report) = verify_json(&[dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {report}");
        assert_eq!(report["parts"].as_array().unwrap().len(), incr + 1);
        let release = report["commands_of"].as_str().unwrap();
        assert!(release.starts_with("valkey-"), "{name}: {release}");
    }
}

/// The last incr file of a 7.0 appendonlydir: small, with two MULTI blocks and a timestamp.
fn small_last_incr() -> (common::server::Server, tempfile::TempDir, Vec<u8>) {
    let (_, server) = aof::start(
        "redis-7.0",
        &[
            "--aof-use-rdb-preamble",
            "yes",
            "--aof-timestamp-enabled",
            "yes",
        ],
    );
    workload(&server, "a", true);
    rewrite(&server);
    send(&server, &["SET a 1", "MULTI", "SET b 2", "INCR c", "EXEC"]);
    std::thread::sleep(Duration::from_millis(1100));
    send(
        &server,
        &["SET d 4", "MULTI", "SADD s x", "EXEC", "SET e 5"],
    );
    let copy = aof::copy_dir(&aof::aof_dir(&server));
    let incr = std::fs::read(copy.path().join("appendonly.aof.2.incr.aof")).unwrap();
    assert!(incr.windows(4).any(|w| w == b"#TS:"), "no timestamp");
    (server, copy, incr)
}

/// Our report on `dir` as JSON, with the figures of the last file.
fn last_part(dir: &Path) -> (Value, Value) {
    let report = serde_json::to_value(check_lib(dir)).unwrap();
    let last = report["parts"].as_array().unwrap().last().unwrap().clone();
    (report, last)
}

#[test]
fn every_cut_of_the_last_incr_file_is_a_truncated_tail_where_redis_check_aof_says() {
    let tool = check_aof("redis-7.0");
    let (_server, dir, incr) = small_last_incr();
    let path = dir.path().join("appendonly.aof.2.incr.aof");
    let manifest = dir.path().join("appendonly.aof.manifest");
    let mut tails = 0;
    for cut in 0..=incr.len() {
        std::fs::write(&path, &incr[..cut]).unwrap();
        let (report, last) = last_part(dir.path());
        let ending = last["ending"].as_str().unwrap();
        if cut == 0 {
            assert_eq!(ending, "complete");
            continue;
        }
        let valid = assert_like_check_aof(&tool, &manifest, &report);
        assert_eq!(valid, ending == "complete", "cut at {cut}: {report}");
        assert_ne!(ending, "damaged", "cut at {cut}: {report}");
        assert_eq!(last["truncated_tail"], !valid, "cut at {cut}");
        tails += usize::from(!valid);
    }
    assert!(tails > incr.len() * 3 / 4, "{tails} truncated tails");
}

#[test]
fn damage_in_the_middle_is_damage_where_redis_check_aof_says() {
    let tool = check_aof("redis-7.0");
    let (_server, dir, incr) = small_last_incr();
    let path = dir.path().join("appendonly.aof.2.incr.aof");
    let manifest = dir.path().join("appendonly.aof.manifest");
    // Every byte with its lowest bit flipped: redis-check-aof's figures, whatever it is.
    for at in 0..incr.len() {
        let mut bad = incr.clone();
        bad[at] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let (report, _) = last_part(dir.path());
        assert_like_check_aof(&tool, &manifest, &report);
    }
    // A command's header, a CRLF, an argument's length, in the middle: damage.
    let second = incr.windows(3).position(|w| w == b"\n*1").unwrap() + 1;
    let crlf = second + 2;
    let length = incr[second..].iter().position(|&b| b == b'$').unwrap() + second + 1;
    for (at, what) in [(second, b'+'), (crlf, b'\x0c'), (length, b'4')] {
        let mut bad = incr.clone();
        bad[at] = what;
        std::fs::write(&path, &bad).unwrap();
        let (report, last) = last_part(dir.path());
        assert_eq!(last["ending"], "damaged", "byte {at}: {report}");
        assert_eq!(last["truncated_tail"], false);
        if at != second {
            let context = format!("(in the command at offset {second})");
            assert!(messages(&report).contains(&context), "{report}");
        }
        assert!(!assert_like_check_aof(&tool, &manifest, &report));
        let out = rdbtool(&["verify", manifest.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(common::printed(&out).contains("damaged"));
    }
}

#[test]
fn a_truncated_file_exits_1_and_a_missing_incr_file_is_named() {
    let (_server, dir, incr) = small_last_incr();
    let path = dir.path().join("appendonly.aof.2.incr.aof");
    std::fs::write(&path, &incr[..incr.len() - 3]).unwrap();
    let (code, report) = verify_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    let last = report["parts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["truncated_tail"], true);
    assert_eq!(last["problem"]["code"], "truncated");
    std::fs::remove_file(&path).unwrap();
    let out = rdbtool(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::printed(&out).contains("appendonly.aof.2.incr.aof is listed but missing"),
        "{}",
        common::printed(&out)
    );
}

#[test]
fn corpus_aofs_verify_as_the_catalog_states() {
    if !common::have_corpus() {
        return;
    }
    let mut checked = 0;
    for entry in catalog().iter().filter(|e| e["kind"] == "aof") {
        let path = corpus()
            .join(entry["source"].as_str().unwrap())
            .join(entry["path"].as_str().unwrap());
        let (code, report) = verify_json(&[path.to_str().unwrap()]);
        assert_eq!(entry["parse"], "ok");
        assert_eq!(code, 0, "{}: {}", path.display(), messages(&report));
        assert_eq!(report["kind"], "aof");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} AOFs in the catalog");
}

fn resp(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s += &format!("${}\r\n{a}\r\n", a.len());
    }
    s
}

#[test]
fn commands_are_checked_against_the_release_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.aof");
    let log = [
        resp(&["SET", "k", "v"]),
        resp(&["HSETEX", "h", "FIELDS", "1", "f", "v"]),
    ]
    .concat();
    std::fs::write(&file, &log).unwrap();
    let path = file.to_str().unwrap();
    // Redis 7.0 lacks HSETEX: an error naming the releases that have it.
    let (code, report) = verify_json(&[path, "--target-version", "7.0"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["problems"][0]["code"], "other-release");
    assert!(messages(&report).contains("redis-8.2"), "{report}");
    // Any release knows it.
    assert_eq!(verify_json(&[path]).0, 0);
    // An unknown command is an error, or a notice under a release newer than any known.
    std::fs::write(&file, log + &resp(&["NEWCMD", "x"])).unwrap();
    let (code, report) = verify_json(&[path]);
    assert_eq!(code, 1);
    assert_eq!(report["problems"][0]["code"], "unknown-command");
    let (code, report) = verify_json(&[path, "--target-version", "9.4"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["problems"][0]["severity"], "notice");
}

#[test]
fn a_missing_history_file_is_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.1.base.aof seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
    std::fs::write(dir.path().join("appendonly.aof.manifest"), manifest).unwrap();
    let set = resp(&["SET", "k", "v"]);
    std::fs::write(dir.path().join("appendonly.aof.2.base.aof"), &set).unwrap();
    std::fs::write(dir.path().join("appendonly.aof.2.incr.aof"), &set).unwrap();
    let (code, report) = verify_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["problems"][0]["code"], "history-missing");
    assert_eq!(
        report["layout"],
        "appendonlydir with manifest, base (RESP) + 1 incr file"
    );
}
