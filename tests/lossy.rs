//! Nothing is lost without saying so: a key the target cannot hold whole (hash field TTLs on
//! Redis 7.0, stream metadata and functions on 6.2) is left out and counted by kind, with exit
//! status 1, unless `--lossy` asks for it without them (counted too) — for replay into real
//! servers, for `export --format resp`, and for diff's patch. And key filters leave function
//! libraries out unless `--functions` asks for them.

mod common;

use std::path::Path;

use common::server::{Server, build};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = common::rdbtool(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port)
}

/// The three hashes of the Valkey 9.1 fixture that have field TTLs.
const FIELD_TTL_KEYS: [&str; 3] = [
    "hash:field-ttl:all",
    "hash:field-ttl:big",
    "hash:field-ttl:small",
];

fn dbsize(s: &Server) -> u64 {
    s.cli(&["DBSIZE"]).trim().parse().unwrap()
}

#[test]
fn replay_into_an_older_server_fails_keys_it_cannot_hold_unless_lossy() {
    let rdb = common::testdata("valkey-9.1.rdb");
    let b = build("redis-7.0");
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");

    let strict = Server::start(&b, None);
    let (code, out, err) = run(&[
        "replay",
        rdb.to_str().unwrap(),
        "--to",
        &url(&strict),
        "--errors-to",
        errors.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("3 failed"), "{out}");
    assert!(out.contains("failed keys by error: field-ttl: 3"), "{out}");
    assert!(err.contains("field-ttl 3 (hash field TTLs)"), "{err}");
    let lines = std::fs::read_to_string(&errors).unwrap();
    let mut named: Vec<String> = lines
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                e["error"].as_str().unwrap().starts_with("field-ttl:"),
                "{e}"
            );
            e["key"].as_str().unwrap().to_string()
        })
        .collect();
    named.sort();
    assert_eq!(named, FIELD_TTL_KEYS);
    for key in FIELD_TTL_KEYS {
        assert_eq!(
            strict.cli(&["EXISTS", key]).trim(),
            "0",
            "{key} was written"
        );
    }

    let lossy = Server::start(&b, None);
    let (code, out, err) = run(&[
        "replay",
        rdb.to_str().unwrap(),
        "--to",
        &url(&lossy),
        "--lossy",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 failed"), "{out}");
    assert!(
        out.contains("sent without what the target cannot hold: field-ttl: 3"),
        "{out}"
    );
    for key in FIELD_TTL_KEYS {
        assert_eq!(lossy.cli(&["EXISTS", key]).trim(), "1", "{key}");
    }
    // Every other key arrived without --lossy.
    assert_eq!(dbsize(&strict) + 3, dbsize(&lossy));
}

/// `export --format resp --target-version X`, and what a real server of X makes of it.
fn export_into(rdb: &Path, server: &Server, target: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "export",
        "--format",
        "resp",
        "--target-version",
        target,
        rdb.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = common::rdbtool(&args);
    let (errors, _, text) = server.pipe(&out.stdout);
    assert_eq!(errors, 0, "{text}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_for_an_older_server_leaves_out_keys_it_cannot_hold_unless_lossy() {
    let rdb = common::testdata("valkey-9.1.rdb");
    let b = build("redis-7.0");
    let strict = Server::start(&b, None);
    let (code, err) = export_into(&rdb, &strict, "7.0", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("left out, holding what cannot be written for target 7.0"));
    assert!(err.contains("field-ttl 3 (hash field TTLs)"), "{err}");
    for key in FIELD_TTL_KEYS {
        assert!(
            err.contains(&format!("left out: db 0 key \"{key}\"")),
            "{err}"
        );
        assert_eq!(strict.cli(&["EXISTS", key]).trim(), "0", "{key}");
    }

    let lossy = Server::start(&b, None);
    let (code, err) = export_into(&rdb, &lossy, "7.0", &["--lossy"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("written without what target 7.0 cannot take: field-ttl 3"));
    assert_eq!(dbsize(&strict) + 3, dbsize(&lossy));
}

#[test]
fn export_for_6_2_counts_stream_metadata_and_functions() {
    // Redis 7.0's streams carry entries-added, max-deleted-id and entries-read, which a 6.2
    // server has no place for; nor has it functions.
    let rdb = common::testdata("redis-7.0.rdb");
    let b = build("redis-6.2");
    let strict = Server::start(&b, None);
    let (code, err) = export_into(&rdb, &strict, "6.2", &["--restore"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stream-meta 3") && err.contains("function 2"),
        "{err}"
    );
    assert!(
        err.contains("left out: function library \"rdbtool\""),
        "{err}"
    );
    assert_eq!(strict.cli(&["EXISTS", "stream:main"]).trim(), "0");
    // --lossy writes the streams without their metadata; the libraries are still left out.
    let (code, err) = export_into(&rdb, &Server::start(&b, None), "6.2", &["--lossy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot take: stream-meta 3"), "{err}");
    assert!(
        err.contains(
            "rdbtool: notice: left out, holding what cannot be written for target 6.2: function 2"
        ),
        "{err}"
    );
}

/// A key or library that is not written at all is never "sent without" something: module
/// values (no native form, a payload 6.2 cannot read) and libraries (no FUNCTION) are failed,
/// named and counted, with exit 1, even with --lossy.
#[test]
fn lossy_never_counts_what_was_not_written_as_sent() {
    let rdb = common::testdata("redis-8.2.rdb");
    let server = Server::start(&build("redis-6.2"), None);
    let (code, out, err) = run(&[
        "replay",
        rdb.to_str().unwrap(),
        "--to",
        &url(&server),
        "--lossy",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let line = |start: &str| {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_default()
            .to_string()
    };
    let sent_without = line("sent without");
    assert!(
        sent_without.contains("field-ttl: 3") && sent_without.contains("stream-meta: 3"),
        "{out}"
    );
    assert!(
        !sent_without.contains("module-value") && !sent_without.contains("function"),
        "{out}"
    );
    assert!(
        line("failed keys by error").contains("module-value: 3"),
        "{out}"
    );
    assert!(line("function libraries").ends_with(", 2 failed"), "{out}");
    assert!(
        err.contains("rdbtool: notice: left out, holding what cannot be written for target 6.2"),
        "{err}"
    );
    for key in ["vset:q8", "vset:noquant", "vset:bin"] {
        assert_eq!(server.cli(&["EXISTS", key]).trim(), "0", "{key}");
    }
}

#[test]
fn diff_patch_for_an_older_server_leaves_keys_unless_lossy() {
    let (a, b) = (
        common::testdata("redis-7.0.rdb"),
        common::testdata("valkey-9.1.rdb"),
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let diff = |extra: &[&str]| {
        let mut args = vec!["diff", a, b, "--format", "resp", "--target-version", "7.0"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (_, patch, err) = diff(&[]);
    assert!(err.contains("field-ttl 3"), "{err}");
    assert!(
        err.contains("left as it is: key \"hash:field-ttl:all\""),
        "{err}"
    );
    assert!(
        !patch.contains("hash:field-ttl:all"),
        "a refused key is not touched"
    );
    let (_, patch, err) = diff(&["--lossy"]);
    assert!(err.contains("cannot take: field-ttl 3"), "{err}");
    assert!(patch.contains("hash:field-ttl:all"));
    assert!(!patch.contains("HPEXPIREAT"), "7.0 has no field TTLs");
}

#[test]
fn key_filters_leave_function_libraries_out_unless_asked() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    let (code, out, err) = run(&["export", "--format", "resp", "--key", "str:*", rdb]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("FUNCTION"), "filtered export loads libraries");
    assert!(err.contains("function libraries left out"), "{err}");
    let (_, out, _) = run(&[
        "export",
        "--format",
        "resp",
        "--key",
        "str:*",
        "--functions",
        rdb,
    ]);
    assert_eq!(out.matches("FUNCTION").count(), 2);
    // JSON's summary lists the libraries by the same rule.
    let summary = |extra: &[&str]| {
        let mut args = vec!["export", "--format", "json", "--type", "hash", rdb];
        args.extend_from_slice(extra);
        let out = common::rdbtool(&args);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["summary"]["functions"].as_array().unwrap().len()
    };
    assert_eq!(summary(&[]), 0);
    assert_eq!(summary(&["--functions"]), 2);

    // Two filtered replays in a row onto one server: the libraries go with the first.
    let server = Server::start(&build("redis-7.0"), None);
    let to = url(&server);
    let (code, out, err) = run(&["replay", rdb, "--to", &to, "--key", "str:*", "--functions"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["replay", rdb, "--to", &to, "--key", "zset:*"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("function libraries left out"), "{err}");
    assert_eq!(
        server
            .cli(&["FUNCTION", "LIST"])
            .matches("library_name")
            .count(),
        2
    );
}

#[test]
fn redis_8_6_key_metadata_is_a_loss_too() {
    // SELECTDB 0, then a string key led by a key-metadata block of one class (two annotated
    // items): no command sets it, and a RESTORE of the value does not carry it.
    let mut f = b"REDIS0013".to_vec();
    f.extend_from_slice(&[0xfe, 0x00, 0xf3, 1]);
    f.extend_from_slice(&0x1234_5605u32.to_le_bytes());
    f.extend_from_slice(&[2, 42, 5, 1, b'x', 0]);
    f.extend_from_slice(&[0, 1, b'k', 1, b'v', 0xff]);
    let crc = rdbtool::rdb::crc::Crc64::checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.rdb");
    std::fs::write(&path, &f).unwrap();
    let path = path.to_str().unwrap();
    for restore in [false, true] {
        let mut args = vec!["export", "--format", "resp", path];
        if restore {
            args.push("--restore");
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{err}");
        assert!(
            out.is_empty() || out.starts_with("*2\r\n$6\r\nSELECT"),
            "{out}"
        );
        assert!(!out.contains("$1\r\nk\r\n"), "{out}");
        assert!(err.contains("key-meta 1 (Redis 8.6 key metadata"), "{err}");
        args.push("--lossy");
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("$1\r\nk\r\n"), "{out}");
        assert!(err.contains("cannot take: key-meta 1"), "{err}");
    }
    // Replay sends a string as SET: the same loss, the same policy.
    let server = Server::start(&build("redis-8.2"), None);
    let (code, out, err) = run(&["replay", path, "--to", &url(&server)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("failed keys by error: key-meta: 1"), "{out}");
    assert_eq!(server.cli(&["EXISTS", "k"]).trim(), "0");
    let (code, out, err) = run(&["replay", path, "--to", &url(&server), "--lossy"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("sent without what the target cannot hold: key-meta: 1"),
        "{out}"
    );
    assert_eq!(server.cli(&["GET", "k"]).trim(), "v");
}

#[test]
fn diff_patch_of_a_changed_hash_keeps_its_field_ttls_or_says_so() {
    // A changed hash with field TTLs: patched field by field, an old target would get the new
    // values without their TTLs.
    let server = Server::start(&build("valkey-9.1"), None);
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str| {
        server.cli(&["SAVE"]);
        let path = dir.path().join(name);
        std::fs::copy(server.dir.path().join("dump.rdb"), &path).unwrap();
        path.to_str().unwrap().to_string()
    };
    server.cli(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    server.cli(&["HSET", "plain", "a", "1", "b", "2"]);
    let a = save("a.rdb");
    server.cli(&["HSET", "h", "a", "10"]);
    server.cli(&["HPEXPIRE", "h", "9000000", "FIELDS", "1", "a"]);
    server.cli(&["HSET", "plain", "a", "10"]);
    let b = save("b.rdb");
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            &a,
            &b,
            "--format",
            "resp",
            "--target-version",
            "7.0",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, patch, err) = diff(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("left as it is: key \"h\""), "{err}");
    assert!(!patch.contains("$1\r\nh\r\n"), "{patch}");
    // A hash that cannot hold field TTLs is still patched field by field.
    assert!(
        patch.contains("HSET\r\n$5\r\nplain\r\n$1\r\na\r\n$2\r\n10"),
        "{patch}"
    );
    assert!(!patch.contains("DEL\r\n$5\r\nplain"), "{patch}");
    let (_, patch, err) = diff(&["--lossy"]);
    assert!(err.contains("cannot take: field-ttl 1"), "{err}");
    assert!(
        patch.contains("DEL\r\n$1\r\nh\r\n"),
        "rewritten whole: {patch}"
    );
}
