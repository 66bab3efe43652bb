//! Hostile input: every truncation, single-byte corruptions and absurd lengths must end in a
//! clean error, never a panic, a hang or a huge allocation.

mod common;

use rdbtool::rdb::{self, ErrorKind, Item, Reader, Record};

/// Reads every record and value, touching every item, and returns the first error.
fn read_all(data: &[u8]) -> Result<u64, rdb::Error> {
    let mut reader = Reader::from_slice(data)?;
    let mut items = 0u64;
    while let Some(rec) = reader.next_record() {
        if let Record::Key { .. } = rec?.record {
            reader.read_value(&mut |_: Item<'_>| items += 1)?;
        }
    }
    Ok(items)
}

/// Real files of several versions and encodings: our fixtures, and some of the corpus when it
/// is there.
fn samples() -> Vec<Vec<u8>> {
    let corpus = common::corpus();
    let corpus_files: &[&str] = match common::have_corpus() {
        true => &CORPUS_SAMPLES,
        false => &[],
    };
    let fixtures = [
        "redis-3.0.rdb",
        "redis-6.2.rdb",
        "redis-7.0.rdb",
        "redis-8.2.rdb",
        "valkey-9.1.rdb",
        "valkey-9.1-lfu.rdb",
    ];
    let fixtures = fixtures
        .iter()
        .map(|f| std::fs::read(common::testdata(f)).expect(f));
    fixtures
        .chain(
            corpus_files
                .iter()
                .map(|p| std::fs::read(corpus.join(p)).expect(p)),
        )
        .collect()
}

const CORPUS_SAMPLES: [&str; 8] = [
    "redis-rdb-tools/tests/dumps/redis_50_with_streams.rdb",
    "redis-replicator/src/test/resources/dumpV11.rdb",
    "librdb/test/dumps/function2.rdb",
    "librdb/test/dumps/module_aux_v12.rdb",
    "redis-replicator/src/test/resources/dump-ttlhash.rdb",
    "hdt3213-rdb/cases/valkey_hash2_with_hfe.rdb",
    "redis-rdb-tools/tests/dumps/zipmap_that_doesnt_compress.rdb",
    "redis-replicator/src/test/resources/dumpV7.rdb",
];

/// Cut points: every byte of small files; of large ones (the test is quadratic) every byte of
/// the first and last 4 KiB and every 7th byte between.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    const EDGE: usize = 4096;
    (0..len).filter(move |&i| len <= 16 * EDGE || i < EDGE || i + EDGE >= len || i % 7 == 0)
}

#[test]
fn every_truncation_is_an_unexpected_end() {
    for data in samples() {
        assert!(read_all(&data).is_ok());
        for len in cuts(data.len()) {
            let err = read_all(&data[..len]).expect_err("a truncated file must not verify");
            assert!(
                matches!(err.kind, ErrorKind::UnexpectedEof { .. }),
                "prefix of {len}/{} bytes: {err}",
                data.len()
            );
        }
    }
}

#[test]
fn truncated_file_exits_1_naming_unexpected_end() {
    let data = &samples()[0];
    let dir = tempfile::tempdir().unwrap();
    for len in [5, 9, 100, data.len() / 2, data.len() - 1] {
        let path = dir.path().join(format!("cut{len}.rdb"));
        std::fs::write(&path, &data[..len]).unwrap();
        let (code, report) = common::verify_json(&[path.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(
            common::messages(&report).contains("unexpected end"),
            "{report}"
        );
    }
}

#[test]
fn single_byte_corruptions_never_panic() {
    for data in samples() {
        let step = (data.len() / 1500).max(1);
        for pos in (9..data.len()).step_by(step) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[pos] ^= flip;
                let _ = read_all(&bad);
            }
        }
    }
}

/// With the checksum on, damage anywhere after the signature is found: by a check of what was
/// read, or else by the CRC-64. `verify` is given the flipped copies many at a time.
#[test]
fn every_byte_flip_is_detected_when_the_checksum_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (n, data) in samples().iter().enumerate() {
        // Every Valkey format and Redis's from RDB 5 end with a CRC-64 (all zero: not computed).
        let redis_version = std::str::from_utf8(&data[5..9]).map_or(0, |v| v.parse().unwrap_or(0));
        let checksum_on =
            (data.starts_with(b"VALKEY") || redis_version >= 5) && data[data.len() - 8..] != [0; 8];
        if !checksum_on {
            continue;
        }
        let step = (data.len() / 150).max(1);
        for pos in (9..data.len()).step_by(step) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[pos] ^= flip;
                let path = dir.path().join(format!("{n}-{pos}-{flip}.rdb"));
                std::fs::write(&path, bad).unwrap();
                files.push(path.to_string_lossy().into_owned());
            }
        }
    }
    assert!(files.len() > 2000, "{} flipped files", files.len());
    for chunk in files.chunks(500) {
        let mut args = vec!["verify", "--format", "json"];
        args.extend(chunk.iter().map(String::as_str));
        let out = common::rdbtool(&args);
        assert_eq!(out.status.code(), Some(1));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for file in doc["files"].as_array().unwrap() {
            assert_eq!(file["status"], "problems", "{file}");
        }
    }
}

#[test]
fn terabyte_lengths_are_refused_without_allocating() {
    // A string key claiming 2^40 bytes; a set claiming 2^62 members; an LZF blob claiming a
    // 2^40-byte output from 4 bytes; a listpack blob whose header claims 4 GiB.
    let cases: [&[u8]; 4] = [
        b"REDIS0011\xfe\x00\x00\x81\x00\x00\x01\x00\x00\x00\x00\x00",
        b"REDIS0011\xfe\x00\x02\x01k\x81\x40\x00\x00\x00\x00\x00\x00\x00\x01a",
        b"REDIS0011\xfe\x00\x00\x01k\xc3\x04\x81\x00\x00\x01\x00\x00\x00\x00\x00abcd",
        b"REDIS0011\xfe\x00\x10\x01k\x07\xff\xff\xff\xff\x02\x00\xff",
    ];
    for data in cases {
        let err = read_all(data).expect_err("must be refused");
        assert!(
            matches!(
                err.kind,
                ErrorKind::UnexpectedEof { .. } | ErrorKind::Lzf(_) | ErrorKind::Encoding { .. }
            ),
            "{err}"
        );
    }
}

/// Export (JSON and RESP) and inspect over damaged input end in a clean error too: their
/// visitors see whatever a damaged file yields before its error.
#[test]
fn export_and_inspect_survive_damage() {
    use rdbtool::export::{self, Format, Options, commands::Batch};
    use rdbtool::inspect;
    use rdbtool::rdb::SliceInput;
    use rdbtool::release::Release;

    let export_opts = |format| Options {
        format,
        restore: false,
        target: Release::default(),
        batch: Batch {
            elements: 3,
            bytes: 64,
        },
        restore_max: 64,
        filter: Default::default(),
        keep_expired: true,
        now_ms: 0,
        no_ttl: false,
        restore_replace: false,
        lossy: true,
        functions: false,
    };
    let inspect_opts = inspect::Options {
        filter: Default::default(),
        top: 3,
        delimiter: b':',
        depth: 2,
        now_ms: 0,
        memory_model: None,
        allocator: Default::default(),
    };
    let data = std::fs::read(common::testdata("redis-7.0.rdb")).unwrap();
    // Damaged runs whose JSON Lines had keys before the error.
    let partial = std::cell::Cell::new(0);
    let run_all = |bytes: &[u8]| {
        for format in [Format::Json, Format::Jsonl, Format::Resp] {
            let mut out = Vec::new();
            let result = export::export(
                SliceInput::new(bytes),
                &export_opts(format),
                &mut out,
                &mut |_| {},
            );
            if format == Format::Jsonl && result.is_err() {
                // A key is written whole or not at all: every line is a JSON document.
                let text = String::from_utf8(out).unwrap();
                for line in text.lines() {
                    assert!(
                        serde_json::from_str::<serde_json::Value>(line).is_ok(),
                        "{line}"
                    );
                }
                partial.set(partial.get() + u32::from(!text.is_empty()));
            }
        }
        let _ = inspect::inspect(SliceInput::new(bytes), &inspect_opts, |_| {}, &mut |_| {});
    };
    for len in (0..data.len()).step_by(97) {
        run_all(&data[..len]);
    }
    for pos in (9..data.len()).step_by(61) {
        let mut bad = data.clone();
        bad[pos] ^= 0x5a;
        run_all(&bad);
    }
    assert!(
        partial.get() > 10,
        "{} damaged exports had keys",
        partial.get()
    );
    // The complete file exports without error, so the loops above did reach the writers.
    assert!(
        export::export(
            SliceInput::new(&data),
            &export_opts(Format::Resp),
            &mut Vec::new(),
            &mut |_| {}
        )
        .is_ok()
    );
}
