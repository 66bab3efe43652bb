//! Skipping a value by its framing ends exactly where reading it in full ends, on every real
//! file we have: the parallel checker relies on it to cut files into values.

mod common;

use rdbtool::rdb::{Reader, Record, Skip};

fn spans(data: &[u8], framing: bool) -> Vec<(u64, u64)> {
    let mut reader = Reader::from_slice(data).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record() {
        if let Record::Key { .. } = rec.unwrap().record {
            if framing {
                reader.skip_value().unwrap();
            } else {
                reader.read_value(&mut Skip).unwrap();
            }
            out.push(reader.value_span());
        }
    }
    out
}

#[test]
fn framing_and_full_reads_agree() {
    if !common::have_corpus() {
        return;
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(common::testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    for entry in common::catalog() {
        let loadable = entry["kind"] == "rdb"
            && entry["crc"] != "INVALID"
            && !entry["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "corrupt" || f == "duplicate-keys");
        if loadable {
            files.push(
                common::corpus()
                    .join(entry["source"].as_str().unwrap())
                    .join(entry["path"].as_str().unwrap()),
            );
        }
    }
    assert!(files.len() > 140);
    let mut values = 0;
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let full = spans(&data, false);
        assert_eq!(spans(&data, true), full, "{}", path.display());
        values += full.len();
    }
    assert!(values > 2000, "only {values} values compared");
}
