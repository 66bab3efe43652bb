//! The command stream rebuilds exactly what the dump holds: each fixture is loaded into a real
//! server A of the version that wrote it; `export --format resp` (native commands, and
//! separately `--restore`) is piped with `redis-cli --pipe` into a fresh server B of the same
//! version; B's `DEBUG DIGEST` must equal A's, with no error replies.

mod common;

use common::server::{Server, build};

fn round_trip(name: &str, fixture: &str, extra: &[&str]) {
    let b = build(name);
    let rdb = common::testdata(fixture);
    let a = Server::start(&b, Some(&rdb));
    let digest_a = a.digest();
    assert_eq!(digest_a.len(), 40, "{name}: DEBUG DIGEST gave {digest_a:?}");
    assert_ne!(digest_a, "0".repeat(40), "{name}: server A loaded nothing");

    let target = b.target();
    let mut args = vec![
        "export",
        "--format",
        "resp",
        "--target-version",
        &target,
        rdb.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = common::rdbtool(&args);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server_b = Server::start(&b, None);
    let (errors, replies, text) = server_b.pipe(&out.stdout);
    assert_eq!(errors, 0, "{name} {extra:?}: {text}");
    assert!(replies > 0);
    assert_eq!(
        server_b.digest(),
        digest_a,
        "{name} {extra:?}: digests differ"
    );
}

fn both_modes(name: &str, fixture: &str) {
    round_trip(name, fixture, &[]);
    round_trip(name, fixture, &["--restore"]);
}

#[test]
fn redis_7_0() {
    both_modes("redis-7.0", "redis-7.0.rdb");
}

#[test]
fn redis_7_0_small_batches_split_big_keys() {
    round_trip(
        "redis-7.0",
        "redis-7.0.rdb",
        &["--batch-elements", "7", "--batch-bytes", "100"],
    );
}

#[test]
fn redis_8_2_with_field_ttls_and_modules() {
    both_modes("redis-8.2", "redis-8.2.rdb");
}

#[test]
fn redis_6_2() {
    both_modes("redis-6.2", "redis-6.2.rdb");
}

#[test]
fn redis_6_0() {
    both_modes("redis-6.0", "redis-6.0.rdb");
}

#[test]
fn redis_5_0() {
    both_modes("redis-5.0", "redis-5.0.rdb");
}

#[test]
fn redis_3_2() {
    both_modes("redis-3.2", "redis-3.2.rdb");
}

#[test]
fn redis_3_0() {
    both_modes("redis-3.0", "redis-3.0.rdb");
}

#[test]
fn valkey_8_1() {
    both_modes("valkey-8.1", "valkey-8.1.rdb");
}

#[test]
fn valkey_9_1_with_field_ttls() {
    both_modes("valkey-9.1", "valkey-9.1.rdb");
}

#[test]
fn the_digest_notices_a_missing_key() {
    // The comparison above is only worth something if one key less shows.
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let a = Server::start(&b, Some(&rdb));
    let out = common::rdbtool(&[
        "export",
        "--format",
        "resp",
        "--key-regex",
        "^(?:[^s]|s[^t])",
        rdb.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let server_b = Server::start(&b, None);
    let (errors, _, text) = server_b.pipe(&out.stdout);
    assert_eq!(errors, 0, "{text}");
    assert_ne!(server_b.digest(), a.digest());
}

#[test]
fn older_target_gets_native_commands_it_understands() {
    // A 7.0 dump into a 6.2 server: RESTORE payloads of RDB 10 would be refused there, so
    // --restore falls back to native commands. Functions (7.0+) and the streams' 7.0 metadata
    // have no place there: left out, and the exit status says so (the streams go with --lossy).
    let rdb = common::testdata("redis-7.0.rdb");
    let a = Server::start(&build("redis-7.0"), Some(&rdb));
    let export = |lossy: bool| {
        let mut args = vec![
            "export",
            "--format",
            "resp",
            "--restore",
            "--target-version",
            "6.2",
            rdb.to_str().unwrap(),
        ];
        if lossy {
            args.push("--lossy");
        }
        common::rdbtool(&args)
    };
    let strict = export(false);
    assert_eq!(strict.status.code(), Some(1));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("function 2") && err.contains("stream-meta 3"),
        "{err}"
    );
    // --lossy writes the streams without it; the libraries cannot be written at all.
    let out = export(true);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot take: stream-meta 3") && err.contains("function 2"),
        "{err}"
    );
    let b = Server::start(&build("redis-6.2"), None);
    let (errors, _, text) = b.pipe(&out.stdout);
    assert_eq!(errors, 0, "{text}");
    assert_eq!(b.digest(), a.digest());
}

#[test]
fn json_stays_valid_with_binary_names_everywhere() {
    // A stream field, hash field and zset member that are not UTF-8, saved by a real server.
    let server = Server::start(&build("redis-7.0"), None);
    let mut commands = Vec::new();
    for args in [
        &[&b"XADD"[..], b"s", b"1-1", b"f\xff", b"v", b"ok", b"w"][..],
        &[b"HSET", b"h", b"k\xfe", b"v", b"ok", b"w"],
        &[b"ZADD", b"z", b"1", b"m\xfd", b"2", b"ok"],
        &[b"SAVE"],
    ] {
        let mut c = rdbtool::resp::Command::new(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            c.arg(a);
        }
        c.write_to(&mut commands).unwrap();
    }
    let (errors, _, text) = server.pipe(&commands);
    assert_eq!(errors, 0, "{text}");
    let rdb = server.dir.path().join("dump.rdb");
    let out = common::rdbtool(&["export", "--format", "json", rdb.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let keys = doc["keys"].as_array().unwrap();
    let by_key = |k: &str| keys.iter().find(|e| e["key"] == k).unwrap().clone();
    let entry = &by_key("s")["value"]["entries"][0];
    assert_eq!(entry["fields"], serde_json::json!({"ok": "w"}));
    assert_eq!(
        entry["binary_fields"],
        serde_json::json!([[{"base64": "Zv8="}, "v"]])
    );
    assert_eq!(
        by_key("h")["binary_fields"],
        serde_json::json!([[{"base64": "a/4="}, "v"]])
    );
    assert_eq!(
        by_key("z")["binary_members"],
        serde_json::json!([[{"base64": "bf0="}, 1.0]])
    );
}
