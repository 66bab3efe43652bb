//! Redis 8.6 streams (type 26, RDB 13): the stream a real Redis 8.2 wrote (type 21, with
//! consumer groups and pending entries), followed by an idempotent-producer (IDMP) block laid
//! out as Redis 8.6 writes it, in an RDB 13 file made here. No Redis 8.6 server installs on
//! this machine; the block is laid out as Redis's own librdb reads it (RDB v13 support) and as
//! the server code of the IDMP change writes it.

mod common;

use rdbtool::rdb::crc::Crc64;
use rdbtool::rdb::{ObjectType, Reader, Record};
use serde_json::Value;

/// An RDB length.
fn len(out: &mut Vec<u8>, n: u64) {
    match n {
        0..64 => out.push(n as u8),
        64..16384 => out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
        16384..=0xffff_ffff => {
            out.push(0x80);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0x81);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// One producer: its pid and its (iid, entry ID) records.
type Producer<'a> = (&'a [u8], Vec<(&'a [u8], (u64, u64))>);

/// An IDMP block: duration (s), max entries, producers, then the two counters.
fn idmp(duration: u64, max: u64, producers: &[Producer<'_>], added: u64, dups: u64) -> Vec<u8> {
    let mut b = Vec::new();
    len(&mut b, duration);
    len(&mut b, max);
    len(&mut b, producers.len() as u64);
    for (pid, entries) in producers {
        string(&mut b, pid);
        len(&mut b, entries.len() as u64);
        for (iid, (ms, seq)) in entries {
            string(&mut b, iid);
            len(&mut b, *ms);
            len(&mut b, *seq);
        }
    }
    len(&mut b, added);
    len(&mut b, dups);
    b
}

/// Key and value bytes of `stream:main` in the Redis 8.2 fixture: 480 entries, 2 groups.
fn real_stream() -> (Vec<u8>, Vec<u8>) {
    let data = std::fs::read(common::testdata("redis-8.2.rdb")).unwrap();
    let mut reader = Reader::from_slice(&data).unwrap();
    while let Some(rec) = reader.next_record() {
        if let Record::Key { key, ty, .. } = rec.unwrap().record {
            let key = key.into_owned();
            reader.skip_value().unwrap();
            if key == b"stream:main" {
                assert_eq!(ty, ObjectType::Stream3);
                let (start, end) = reader.value_span();
                return (key, data[start as usize..end as usize].to_vec());
            }
        }
    }
    panic!("no stream:main in the fixture");
}

/// An RDB 13 file whose one key is the real stream as type 26 with `block` after its groups.
fn file(block: &[u8]) -> Vec<u8> {
    let (key, value) = real_stream();
    let mut f = b"REDIS0013".to_vec();
    f.extend_from_slice(&[0xfe, 0x00, 26]);
    string(&mut f, &key);
    f.extend_from_slice(&value);
    f.extend_from_slice(block);
    f.push(0xff);
    let crc = Crc64::checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// The stream's last ID (set by XSETID beyond its last entry).
const LAST: (u64, u64) = (1_700_000_999_999, 5);

fn history() -> Vec<u8> {
    idmp(
        100,
        1000,
        &[
            (
                b"producer1",
                vec![(b"iid-1", (LAST.0, 1)), (b"iid-2", LAST)],
            ),
            // Binary pids and iids (IDMPAUTO makes 16-byte binary iids).
            (b"p\xff", vec![(b"\x00\x01\xfe", (1_700_000_000_000, 0))]),
        ],
        3,
        1,
    )
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// `export --format resp --target-version TARGET [--lossy]` of `path`: (stdout, stderr), after
/// checking the exit status: 1 when keys are left out for what the target cannot hold.
fn resp(path: &str, target: &str, lossy: bool, code: i32) -> (String, String) {
    let mut args = vec![
        "export",
        "--format",
        "resp",
        "--target-version",
        target,
        "--now",
        "0",
        path,
    ];
    if lossy {
        args.push("--lossy");
    }
    let out = common::rdbtool(&args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_last_stream_id_is_what_the_tests_assume() {
    let fixture = common::testdata("redis-8.2.rdb");
    let out = common::rdbtool(&[
        "export",
        "--format",
        "jsonl",
        "--key",
        "stream:main",
        fixture.to_str().unwrap(),
    ]);
    let line: Value = serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap())
        .expect("json line");
    assert_eq!(line["value"]["last_id"], format!("{}-{}", LAST.0, LAST.1));
}

#[test]
fn a_stream_v4_verifies_and_exports_its_producers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "v4.rdb", &file(&history()));
    let (code, report) = common::verify_json(&[&path]);
    assert_eq!(code, 0, "{}", common::messages(&report));
    assert_eq!(report["keys"], 1);
    assert_eq!(report["format"], "REDIS0013");
    let out = common::rdbtool(&["inspect", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stream:main"));

    let out = common::rdbtool(&["export", "--format", "json", "--now", "0", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let value = &doc["keys"][0]["value"];
    assert_eq!(value["entries"].as_array().unwrap().len(), 480);
    assert_eq!(value["groups"].as_array().unwrap().len(), 2);
    let idmp = &value["idmp"];
    assert_eq!(idmp["duration"], 100);
    assert_eq!(idmp["max_entries"], 1000);
    assert_eq!(idmp["iids_added"], 3);
    assert_eq!(idmp["iids_duplicates"], 1);
    let producers = idmp["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 2);
    assert_eq!(producers[0]["pid"], "producer1");
    assert_eq!(
        producers[0]["entries"],
        serde_json::json!([
            {"iid": "iid-1", "id": "1700000999999-1"},
            {"iid": "iid-2", "id": "1700000999999-5"},
        ])
    );
    // Not UTF-8: marked, never mangled.
    assert_eq!(producers[1]["pid"], serde_json::json!({"base64": "cP8="}));
    assert_eq!(
        producers[1]["entries"][0]["iid"],
        serde_json::json!({"base64": "AAH+"})
    );
}

#[test]
fn a_stream_without_producers_ends_its_json_and_keeps_its_settings_in_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "v4.rdb", &file(&idmp(7200, 1000, &[], 0, 0)));
    let out = common::rdbtool(&["export", "--format", "jsonl", "--now", "0", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap())
        .expect("valid JSON line");
    assert_eq!(
        line["value"]["idmp"],
        serde_json::json!({"duration": 7200, "max_entries": 1000, "producers": [],
                           "iids_added": 0, "iids_duplicates": 0})
    );
    // Native commands: the settings by XCFGSET where the target has it (Redis 8.6); no history
    // to leave out, so no notice and no RESTORE. Elsewhere settings other than the defaults are
    // a loss: the key is left out, or written without them (--lossy).
    let (new, notices) = resp(&path, "8.6", false, 0);
    assert!(
        new.contains("XCFGSET\r\n$11\r\nstream:main\r\n$13\r\nIDMP-DURATION\r\n$4\r\n7200\r\n$12\r\nIDMP-MAXSIZE\r\n$4\r\n1000\r\n"),
        "{new}"
    );
    assert!(
        !new.contains("RESTORE") && !notices.contains("idempotent"),
        "{notices}"
    );
    let (old, notices) = resp(&path, "8.2", false, 1);
    assert!(!old.contains("XGROUP"), "{old}");
    assert!(notices.contains("idmp-settings 1"), "{notices}");
    let (old, notices) = resp(&path, "8.2", true, 0);
    assert!(!old.contains("XCFGSET") && old.contains("XGROUP"));
    assert!(
        notices.contains("cannot take: idmp-settings 1"),
        "{notices}"
    );
    let default = write(&dir, "default.rdb", &file(&idmp(100, 100, &[], 0, 0)));
    let (old, notices) = resp(&default, "8.2", false, 0);
    assert!(old.contains("XGROUP") && notices.is_empty(), "{notices}");
}

#[test]
fn producer_history_goes_by_restore_or_is_left_out_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "v4.rdb", &file(&history()));
    // Redis 8.6 reads RDB 13 payloads: one RESTORE carries everything.
    let (new, notices) = resp(&path, "8.6", false, 0);
    assert!(new.starts_with("*") && new.contains("RESTORE"), "{new}");
    assert!(!new.contains("XADD"));
    assert!(notices.contains("sent as RESTORE"), "{notices}");
    // Redis 8.2 does not: the stream is left out, counted; with --lossy it goes by native
    // commands without its history, counted.
    let (old, notices) = resp(&path, "8.2", false, 1);
    assert!(!old.contains("XADD"), "{old}");
    assert!(notices.contains("idmp-history 1"), "{notices}");
    let (old, notices) = resp(&path, "8.2", true, 0);
    assert!(!old.contains("RESTORE") && old.contains("XADD") && old.contains("XCLAIM"));
    assert!(
        notices.contains("cannot take: idmp-settings 1 ("),
        "{notices}"
    );
    assert!(notices.contains("idmp-history 1 ("), "{notices}");
}

#[test]
fn bad_idmp_blocks_are_problems_with_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let full = idmp(100, 100, &[(b"p", vec![]), (b"q", vec![])], 0, 0);
    // The file ends inside the second producer's pid.
    let cut = file(&full)[..file(&[]).len() - 9 + 7].to_vec();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("zero-duration", idmp(0, 100, &[], 0, 0), "IDMP duration 0"),
        (
            "huge-max",
            idmp(100, 10_001, &[], 0, 0),
            "max entries 10001",
        ),
        (
            "duplicate-pid",
            idmp(
                100,
                100,
                &[(b"p", vec![]), (b"p", vec![(b"i", (1, 0))])],
                1,
                0,
            ),
            "duplicate IDMP producer",
        ),
        ("cut", Vec::new(), "unexpected end"),
    ];
    for (name, block, expect) in cases {
        let bytes = if block.is_empty() {
            cut.clone()
        } else {
            file(&block)
        };
        let path = write(&dir, &format!("{name}.rdb"), &bytes);
        let (code, report) = common::verify_json(&[&path]);
        assert_eq!(code, 1, "{name}");
        let messages = common::messages(&report);
        assert!(messages.contains(expect), "{name}: {messages}");
        let problem = &report["problems"][0];
        assert_eq!(problem["key"], "stream:main", "{name}");
        assert!(
            problem["offset"].as_u64().unwrap() > 1000,
            "{name}: {problem}"
        );
    }
    // Redis keeps the first of a producer's repeated iids, and takes entries beyond the last
    // ID: warnings, errors only with --strict.
    let odd = idmp(
        100,
        100,
        &[(b"p", vec![(b"i", (1, 0)), (b"i", (LAST.0 + 1, 0))])],
        2,
        0,
    );
    let path = write(&dir, "odd.rdb", &file(&odd));
    let (code, report) = common::verify_json(&[&path]);
    assert_eq!(code, 0);
    let messages = common::messages(&report);
    assert!(messages.contains("repeated IDMP ID"), "{messages}");
    assert!(
        messages.contains("beyond the stream's last ID"),
        "{messages}"
    );
    let (code, _) = common::verify_json(&["--strict", &path]);
    assert_eq!(code, 1);
}

#[test]
fn diff_sees_a_changed_producer_entry_but_not_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let one = |iid: &[u8], added: u64| {
        idmp(
            100,
            100,
            &[(b"p", vec![(iid, (1_700_000_000_000, 0))])],
            added,
            0,
        )
    };
    let a = write(&dir, "a.rdb", &file(&one(b"x", 1)));
    let b = write(&dir, "b.rdb", &file(&one(b"y", 1)));
    let c = write(&dir, "c.rdb", &file(&one(b"x", 5)));
    let same = common::rdbtool(&["diff", &a, &c]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let changed = common::rdbtool(&["diff", "--format", "jsonl", "--detail", &a, &b]);
    assert_eq!(changed.status.code(), Some(1));
    let record: Value =
        serde_json::from_slice(changed.stdout.split(|&b| b == b'\n').next().unwrap())
            .expect("a JSON record");
    assert_eq!(record["key"], "stream:main");
    assert_eq!(
        record["detail"]["metadata"]["added"],
        serde_json::json!([["idmp 1:p y", "1700000000000-0"]])
    );
    assert_eq!(
        record["detail"]["metadata"]["removed"],
        serde_json::json!([["idmp 1:p x", "1700000000000-0"]])
    );
}

/// Reads every record and value of `data`; the first error, if any.
fn read_all(data: &[u8]) -> Result<(), rdbtool::rdb::Error> {
    let mut reader = Reader::from_slice(data)?;
    while let Some(rec) = reader.next_record() {
        if let Record::Key { .. } = rec?.record {
            reader.read_value(&mut rdbtool::rdb::Skip)?;
        }
    }
    Ok(())
}

#[test]
fn every_cut_is_an_unexpected_end_and_no_corruption_panics() {
    let f = file(&history());
    read_all(&f).expect("the whole file reads");
    for end in 9..f.len() {
        let e = read_all(&f[..end]).expect_err("a cut file");
        assert!(
            e.to_string().contains("unexpected end"),
            "cut at {end}: {e}"
        );
    }
    // Every byte of the IDMP block (and the EOF after it), changed to a few values.
    let block = history().len() + 1;
    for at in f.len() - 8 - block..f.len() - 8 {
        for b in [0x00, 0x01, 0x3f, 0x40, 0x80, 0x81, 0xc3, 0xff] {
            let mut g = f.clone();
            g[at] = b;
            let _ = read_all(&g);
        }
    }
}
