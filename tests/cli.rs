//! The command line itself: man pages in sync with the clap definitions, completions, usage
//! errors.

mod common;

use std::path::Path;

#[test]
fn man_pages_match_the_command_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::rdbtool(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut generated: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    generated.sort();
    assert!(generated.len() >= 3);
    // Nothing in man/ that the definitions no longer make (a removed subcommand).
    let mut kept: Vec<_> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    kept.sort();
    assert_eq!(
        kept, generated,
        "man/ holds other pages: run `cargo run -- man man`"
    );
    for name in generated {
        let fresh = std::fs::read(dir.path().join(&name)).unwrap();
        let kept = std::fs::read(committed.join(&name)).unwrap_or_else(|_| {
            panic!(
                "man/{} missing: run `cargo run -- man man`",
                name.to_string_lossy()
            )
        });
        assert!(
            fresh == kept,
            "man/{} is stale: run `cargo run -- man man`",
            name.to_string_lossy()
        );
        let page = String::from_utf8(fresh).unwrap();
        for section in [
            ".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR",
            ".SH \"EXAMPLES\"\n.PP",
        ] {
            assert!(page.contains(section), "{name:?} lacks {section}");
        }
    }
    let verify = std::fs::read_to_string(committed.join("rdbtool-verify.1")).unwrap();
    assert!(verify.contains("rdbtool verify [OPTIONS] FILE..."));
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        let out = common::rdbtool(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("verify") && text.contains("dump-payload"),
            "{shell}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(common::rdbtool(&["verify"]).status.code(), Some(2));
    assert_eq!(
        common::rdbtool(&["verify", "--format", "xml", "x.rdb"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        common::rdbtool(&["verify", "-", "-"]).status.code(),
        Some(2)
    );
    let out = common::rdbtool(&["verify", "/nonexistent/dump.rdb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ERROR /nonexistent/dump.rdb: No such file")
    );
}

/// Runs rdbtool ARGS: (exit code, stderr); each line of stderr must start `error:` (clap).
fn usage_error(args: &[&str]) -> (Option<i32>, String) {
    let out = common::rdbtool(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err)
}

#[test]
fn options_that_contradict_each_other_are_usage_errors() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    for (args, names) in [
        (
            &["inspect", "--format", "json", "--keys", "csv"][..],
            ["--format", "--keys"],
        ),
        (
            &["inspect", "--keys", "jsonl", "--top", "3"],
            ["--keys", "--top"],
        ),
        (
            &["diff", "--ttl-tolerance", "5s", "--ignore-ttl"],
            ["--ttl-tolerance", "--ignore-ttl"],
        ),
        (
            &["export", "--format", "json", "--restore"],
            ["--restore", "json"],
        ),
        (
            &["export", "--target-version", "7.0"],
            ["--target-version", "jsonl"],
        ),
        (
            &["export", "--format", "jsonl", "--batch-elements", "5"],
            ["--batch-elements", "jsonl"],
        ),
        (&["diff", "--detail"], ["--detail", "table"]),
        (
            &["diff", "--format", "resp", "--detail"],
            ["--detail", "resp"],
        ),
        (
            &["diff", "--format", "jsonl", "--restore-max", "10"],
            ["--restore-max", "jsonl"],
        ),
        (
            &["export", "--format", "json", "--lossy"],
            ["--lossy", "json"],
        ),
        (&["diff", "--lossy"], ["--lossy", "table"]),
    ] {
        let mut all = args.to_vec();
        all.push(rdb);
        if args[0] == "diff" {
            all.push(rdb);
        }
        let (code, err) = usage_error(&all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("Usage: rdbtool "),
            "{err}"
        );
        assert!(names.iter().all(|n| err.contains(n)), "{args:?}: {err}");
    }
    // Together where they belong.
    for args in [
        &[
            "export",
            "--format",
            "resp",
            "--restore",
            "--batch-bytes",
            "99",
        ][..],
        &["inspect", "--keys", "csv"],
        &["inspect", "--format", "json", "--top", "3"],
    ] {
        let mut all = args.to_vec();
        all.push(rdb);
        assert_eq!(common::rdbtool(&all).status.code(), Some(0), "{args:?}");
    }
    let out = common::rdbtool(&[
        "diff",
        "--format",
        "jsonl",
        "--detail",
        "--ignore-ttl",
        rdb,
        rdb,
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn only_releases_with_a_memory_model_are_accepted() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    for release in [
        "2.0",
        "99.9",
        "valkey-1.0",
        "redis-8.1",
        "redis-3.2",
        "valkey-x",
    ] {
        let (code, err) = usage_error(&["inspect", "--memory-model", release, rdb]);
        assert_eq!(code, Some(2), "{release}: {err}");
        assert!(
            err.contains("no memory model for") && err.contains("redis-4.0, redis-5.0"),
            "{err}"
        );
    }
    for release in ["7.4", "redis-8.6", "valkey-9.0"] {
        let out = common::rdbtool(&["inspect", "--memory-model", release, rdb]);
        assert_eq!(out.status.code(), Some(0), "{release}");
    }
}

/// `--quiet` and `--now` are one group of options, said alike by every subcommand that takes
/// them.
#[test]
fn common_options_read_the_same_everywhere() {
    let help = |sub: &str| {
        let out = common::rdbtool(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let option = |text: &str, name: &str| -> String {
        let start = text
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {text}"));
        let rest = &text[start..];
        let end = rest.find("\n\n").unwrap_or(rest.len());
        rest[..end].to_string()
    };
    let quiet = option(&help("verify"), "-q, --quiet");
    let now = option(&help("inspect"), "--now <MS>");
    for sub in ["inspect", "export", "replay", "diff"] {
        let text = help(sub);
        assert_eq!(option(&text, "-q, --quiet"), quiet, "{sub}");
        assert_eq!(option(&text, "--now <MS>"), now, "{sub}");
    }
}

/// `--target-version` (export, diff, replay) and `--memory-model` (inspect) read a release by
/// the same rules: a version whose minor is not a number is refused by both.
#[test]
fn both_release_options_read_a_release_alike() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    for release in ["7.x", "redis-7.x", "valkey-8.y"] {
        let (code, err) = usage_error(&[
            "export",
            "--format",
            "resp",
            "--target-version",
            release,
            rdb,
        ]);
        assert_eq!(code, Some(2), "{release}: {err}");
        assert!(err.contains(&format!("bad version \"{release}\"")), "{err}");
        let (code, err) = usage_error(&["inspect", "--memory-model", release, rdb]);
        assert_eq!(code, Some(2), "{release}: {err}");
    }
    for release in ["7.0", "redis-7.0.15", "valkey-8.1"] {
        let out = common::rdbtool(&[
            "export",
            "--format",
            "resp",
            "--target-version",
            release,
            rdb,
        ]);
        assert_eq!(out.status.code(), Some(0), "{release}");
        let out = common::rdbtool(&["inspect", "--memory-model", release, rdb]);
        assert_eq!(out.status.code(), Some(0), "{release}");
    }
}

#[test]
fn export_filters_select_keys() {
    let rdb = common::testdata("redis-7.0.rdb");
    let out = common::rdbtool(&[
        "export",
        "--db",
        "5",
        "--type",
        "string",
        rdb.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("\"key\":\"db5:str\""));
    assert!(lines[1].contains("\"keys\":1,\"skipped_expired\":0,\"filtered_out\":54"));
    let out = common::rdbtool(&["export", "--key", "str:ttl:[0-2]", rdb.to_str().unwrap()]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4);
}

#[test]
fn expired_keys_are_skipped_relative_to_now() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    // The fixture's TTLs lie in 2100; from 2101 all 19 keys with a TTL have expired.
    let in_2101 = "4133980800000";
    let count = |args: &[&str]| {
        let out = common::rdbtool(args);
        String::from_utf8(out.stdout).unwrap().lines().count() - 1
    };
    assert_eq!(count(&["export", rdb]), 55);
    assert_eq!(count(&["export", "--now", in_2101, rdb]), 36);
    assert_eq!(
        count(&["export", "--now", in_2101, "--expired", "keep", rdb]),
        55
    );
}

#[test]
fn a_value_too_big_to_render_in_memory_keeps_its_place() {
    // a, then a 9 MiB string (written straight to the output), then z: order must hold.
    let mut rdb = b"REDIS0010\xfe\x00\x00\x01a\x01x".to_vec();
    let big = 9usize << 20;
    rdb.extend_from_slice(b"\x00\x03big\x80");
    rdb.extend_from_slice(&(big as u32).to_be_bytes());
    rdb.extend(std::iter::repeat_n(b'v', big));
    rdb.extend_from_slice(b"\x00\x01z\x01y\xff");
    rdb.extend_from_slice(&[0; 8]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.rdb");
    std::fs::write(&path, &rdb).unwrap();
    let out = common::rdbtool(&["export", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v["key"]
                .as_str()
                .map(|k| format!("{k}:{}", v["value"].as_str().unwrap().len()))
        })
        .collect();
    assert_eq!(keys, ["a:1", format!("big:{big}").as_str(), "z:1"]);
    let out = common::rdbtool(&["export", "--format", "resp", path.to_str().unwrap()]);
    assert!(out.status.success());
    let resp = out.stdout;
    let find = |needle: &[u8]| {
        resp.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    assert!(
        find(b"$1\r\na\r\n") < find(b"$3\r\nbig\r\n")
            && find(b"$3\r\nbig\r\n") < find(b"$1\r\nz\r\n")
    );
}

/// A string whose LZF block is damaged is reported with its key, and the keys after it are
/// still checked (framing knows where each value ends): here two damaged strings out of three.
#[test]
fn damaged_compressed_strings_are_each_reported() {
    let mut rdb = b"REDIS0010\xfe\x00".to_vec();
    // "a": a back-reference before the start of the output; "b": one byte where two are due.
    rdb.extend_from_slice(b"\x00\x01a\xc3\x02\x03\x20\x00");
    rdb.extend_from_slice(b"\x00\x01b\xc3\x02\x02\x00x");
    rdb.extend_from_slice(b"\x00\x01c\x01v\xff\0\0\0\0\0\0\0\0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.rdb");
    std::fs::write(&path, &rdb).unwrap();
    let (code, report) = common::verify_json(&[path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(report["keys"], 3);
    let errors: Vec<_> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "error")
        .map(|p| {
            (
                p["offset"].as_u64().unwrap(),
                p["key"].as_str().unwrap(),
                p["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(errors, [(17, "a", "string"), (25, "b", "string")]);
    assert!(
        common::messages(&report).contains("header says 2"),
        "{report}"
    );
}
