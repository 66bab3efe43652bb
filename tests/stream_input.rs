//! The streaming input (stdin, sockets) decodes exactly what the mapped-file input does, even
//! when the stream hands out a few bytes at a time.

mod common;

use std::io::Read;

use rdbtool::rdb::{Input, Item, Reader, Record, SliceInput, StreamInput};

/// Hands out 1..=7 bytes per read call.
struct Trickle<'d> {
    data: &'d [u8],
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.n = self.n % 7 + 1;
        let k = self.n.min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

/// Every record, value item and problem, as text.
fn transcript<'a, I: Input<'a>>(inp: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut reader = Reader::new(inp).expect("header");
    while let Some(rec) = reader.next_record() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("error {e}"));
                break;
            }
        };
        out.push(format!("{} {:?}", rec.offset, rec.record));
        if let Record::Key { .. } = rec.record {
            let mut items = Vec::new();
            reader
                .read_value(&mut |i: Item<'_>| items.push(format!("{i:?}")))
                .expect("value");
            out.extend(items);
        }
        out.extend(
            reader
                .take_problems()
                .iter()
                .map(|p| format!("problem {p}")),
        );
    }
    out
}

#[test]
fn stream_and_map_agree_on_real_files() {
    if !common::have_corpus() {
        return;
    }
    let corpus = common::corpus();
    for name in [
        "redis-rdb-tools/tests/dumps/redis_50_with_streams.rdb",
        "redis-replicator/src/test/resources/dump-ttlhash.rdb",
        "librdb/test/dumps/100_lists.rdb",
        "redis-rdb-tools/tests/dumps/redis_40_with_module.rdb",
    ] {
        let data = std::fs::read(corpus.join(name)).unwrap();
        let mapped = transcript(SliceInput::new(&data));
        let streamed = transcript(StreamInput::new(Trickle { data: &data, n: 0 }));
        assert!(mapped.len() > 3, "{name}");
        // Borrowed and owned bytes print alike, so the transcripts match line for line.
        assert_eq!(mapped, streamed, "{name}");
    }
}

#[test]
fn verify_reads_standard_input() {
    if !common::have_corpus() {
        return;
    }
    let path = common::corpus().join("redis-rdb-tools/tests/dumps/redis_50_with_streams.rdb");
    let out = assert_cmd::Command::cargo_bin("rdbtool")
        .unwrap()
        .args(["verify", "-"])
        .pipe_stdin(&path)
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("OK -: REDIS0009 (redis-ver 999.999.999), 1 db, 14 keys"),
        "{text}"
    );
}

/// Offsets of the duplicate-key problems `verify --format json` reports for the file at `path`
/// given as `input` (its path, or `-` to read it from standard input).
fn duplicate_offsets(path: &std::path::Path, input: &str) -> Vec<u64> {
    let out = assert_cmd::Command::cargo_bin("rdbtool")
        .unwrap()
        .args(["verify", "--format", "json", input])
        .pipe_stdin(path)
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["files"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == "duplicate_key")
        .map(|p| p["offset"].as_u64().unwrap())
        .collect()
}

#[test]
fn duplicate_keys_are_found_in_a_stream_as_in_a_mapped_file() {
    if !common::have_corpus() {
        return;
    }
    // A mapped file's keys are read again to find them; a stream's index keeps their offsets.
    let path = common::corpus().join("redis-rdb-cli/src/test/resources/rdt/12.rdb");
    let mapped = duplicate_offsets(&path, path.to_str().unwrap());
    assert!(!mapped.is_empty());
    assert_eq!(duplicate_offsets(&path, "-"), mapped);
}
