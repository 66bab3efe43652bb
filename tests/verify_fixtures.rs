//! The fixtures in testdata/ were written by real servers (scripts/make_fixtures.py), with the
//! key counts those servers reported at save time beside them. verify must accept each one and
//! count exactly what the server had.

mod common;

use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(common::testdata("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let stated: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.push((
                path.with_extension("rdb").to_string_lossy().into_owned(),
                stated,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_fixture_verifies_with_the_servers_counts() {
    let fixtures = fixtures();
    let magics: Vec<&str> = fixtures
        .iter()
        .map(|(_, s)| s["magic"].as_str().unwrap())
        .collect();
    for magic in [
        "REDIS0006",
        "REDIS0007",
        "REDIS0009",
        "REDIS0010",
        "REDIS0011",
        "REDIS0012",
        "VALKEY080",
    ] {
        assert!(magics.contains(&magic), "no fixture written as {magic}");
    }
    for (rdb, stated) in &fixtures {
        let (code, report) = common::verify_json(&[rdb]);
        assert_eq!(code, 0, "{rdb}: {}", common::messages(&report));
        assert_eq!(report["format"], stated["magic"], "{rdb}");
        assert_eq!(report["keys"], stated["keys"], "{rdb}");
        assert_eq!(report["expires"], stated["expires"], "{rdb}");
        assert_eq!(report["keys_per_db"], stated["dbsize"], "{rdb}");
        assert_eq!(report["checksum"], "ok", "{rdb}");
        assert!(
            report["problems"].as_array().unwrap().is_empty(),
            "{rdb}: {}",
            common::messages(&report)
        );
    }
}

#[test]
fn text_output_is_one_line_per_good_file() {
    let rdb = common::testdata("redis-7.0.rdb");
    let out = common::rdbtool(&["verify", rdb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "OK {}: REDIS0010 (redis-ver 7.0.15), 3 dbs, 55 keys, 19 with TTL, CRC-64 ok, 76.6 KiB\n",
        rdb.display()
    );
    assert_eq!(text, expected);
}

#[test]
fn several_files_worst_status_wins_and_order_is_kept() {
    let good = common::testdata("redis-7.0.rdb");
    // A good file whose header claims a version no server writes.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("future.rdb");
    let mut data = std::fs::read(&good).unwrap();
    data[5..9].copy_from_slice(b"0099");
    std::fs::write(&bad, data).unwrap();
    let missing = common::testdata("no-such-file.rdb");
    let args = |files: &[&std::path::Path]| {
        let mut a = vec!["verify".to_string()];
        a.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
        a
    };
    let run = |files: &[&std::path::Path]| {
        let a = args(files);
        common::rdbtool(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&[&good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK "), "{text}");
    assert!(
        lines[1].starts_with("error ")
            && lines[1].contains("offset 0 (0x0): unsupported RDB format version"),
        "{text}"
    );
    assert!(lines[2].starts_with("FAIL "), "{text}");
    assert_eq!(run(&[&good, &bad, &missing]).status.code(), Some(2));
}

/// A problem's line says where (file, offset in decimal and hex), what was being read, and
/// which db, key and type; `--format json` gives the same facts.
#[test]
fn a_problem_line_and_its_json_name_the_same_place() {
    let mut data = std::fs::read(common::testdata("redis-7.0.rdb")).unwrap();
    let key = b"hash:small";
    let at = data.windows(key.len()).position(|w| w == key).unwrap();
    // Inside the value's listpack header, just after the key.
    data[at + key.len() + 3] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.rdb");
    std::fs::write(&path, &data).unwrap();
    let file = path.to_str().unwrap();
    let text = common::rdbtool(&["verify", file]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8(text.stdout).unwrap();
    let (code, report) = common::verify_json(&[file]);
    assert_eq!(code, 1);
    let p = &report["problems"][0];
    let offset = p["offset"].as_u64().unwrap();
    assert!(offset > at as u64, "{p}");
    assert_eq!(p["key"], "hash:small", "{p}");
    assert_eq!(p["db"], 0, "{p}");
    assert_eq!(p["code"], "corrupt_encoding", "{p}");
    let line = format!(
        "{} {file}: offset {offset} ({offset:#x}): {} (while {}, db 0, key \"hash:small\", type {})",
        p["severity"].as_str().unwrap(),
        p["message"].as_str().unwrap(),
        p["phase"].as_str().unwrap(),
        p["type"].as_str().unwrap(),
    );
    assert_eq!(text.lines().next(), Some(line.as_str()), "{text}\n{p}");
}

/// What Redis loads without a word but a careful operator wants to know (rdb-format.md §6.2):
/// an empty key and a zset out of order are warnings, errors with `--strict`, each with its
/// stable code in `--format json`. The files are made here byte by byte (RDB 9, checksum
/// disabled), with a sorted zset as the control.
#[test]
fn warnings_fail_only_with_strict() {
    fn rdb(ty: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut f = b"REDIS0009\xfe\x00".to_vec();
        f.push(ty);
        f.push(key.len() as u8);
        f.extend_from_slice(key);
        f.extend_from_slice(value);
        f.push(0xff);
        f.extend_from_slice(&[0; 8]);
        f
    }
    /// A zset ziplist of (member, score) pairs, every entry a short string.
    fn zset_ziplist(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let (mut entries, mut prev, mut last) = (Vec::new(), 0u8, 0);
        for s in pairs.iter().flat_map(|&(m, s)| [m, s]) {
            last = entries.len();
            entries.extend_from_slice(&[prev, s.len() as u8]);
            entries.extend_from_slice(s);
            prev = 2 + s.len() as u8;
        }
        let mut zl = ((10 + entries.len() + 1) as u32).to_le_bytes().to_vec();
        zl.extend_from_slice(&((10 + last) as u32).to_le_bytes());
        zl.extend_from_slice(&((2 * pairs.len()) as u16).to_le_bytes());
        zl.extend_from_slice(&entries);
        zl.push(0xff);
        let mut value = vec![zl.len() as u8];
        value.extend_from_slice(&zl);
        value
    }
    /// A file's name, its bytes, and the warning's words and code if it has one.
    type Case = (&'static str, Vec<u8>, Option<(&'static str, &'static str)>);
    let cases: [Case; 3] = [
        (
            "empty",
            rdb(2, b"e", &[0]),
            Some(("empty key", "empty_key")),
        ),
        (
            "unsorted",
            rdb(12, b"z", &zset_ziplist(&[(b"a", b"2"), (b"b", b"1")])),
            Some(("zset not sorted", "zset_unsorted")),
        ),
        (
            "sorted",
            rdb(12, b"z", &zset_ziplist(&[(b"b", b"1"), (b"a", b"2")])),
            None,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, problem) in cases {
        let path = dir.path().join(format!("{name}.rdb"));
        std::fs::write(&path, bytes).unwrap();
        let file = path.to_str().unwrap();
        let plain = common::rdbtool(&["verify", file]);
        let text = String::from_utf8_lossy(&plain.stdout);
        assert_eq!(plain.status.code(), Some(0), "{name}: {text}");
        let strict = common::rdbtool(&["verify", "--strict", file]);
        let strict_text = String::from_utf8_lossy(&strict.stdout);
        match problem {
            Some((p, code)) => {
                let (_, report) = common::verify_json(&[file]);
                assert_eq!(report["problems"][0]["code"], code, "{name}: {report}");
                assert!(
                    text.contains(&format!("warning {file}")) && text.contains(p),
                    "{text}"
                );
                assert_eq!(strict.status.code(), Some(1), "{name}: {strict_text}");
                assert!(
                    strict_text.contains(&format!("error {file}")),
                    "{strict_text}"
                );
            }
            None => {
                assert!(!text.contains("warning"), "{name}: {text}");
                assert_eq!(strict.status.code(), Some(0), "{name}: {strict_text}");
            }
        }
    }
}
