//! Any bytes given to the record reader end in records or a clean error: no panic, no hang, no
//! allocation sized by a length the input merely claims. Both input kinds are driven, and must
//! agree; and framing (how the parallel commands cut a file into values) must end every value
//! where reading it in full does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbtool::rdb::{Input, Item, Reader, Record, SliceInput, StreamInput};

fn transcript<'a, I: Input<'a>>(inp: I) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(mut reader) = Reader::new(inp) else {
        return out;
    };
    while let Some(rec) = reader.next_record() {
        let Ok(rec) = rec else {
            out.push("error".into());
            break;
        };
        out.push(format!("{:?}", rec.record));
        if let Record::Key { .. } = rec.record
            && reader
                .read_value(&mut |i: Item<'_>| out.push(format!("{i:?}")))
                .is_err()
        {
            out.push("error".into());
            break;
        }
    }
    out
}

/// The span of each value until the first error, each read in full or skipped by its framing.
fn spans(data: &[u8], framing: bool) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let Ok(mut reader) = Reader::from_slice(data) else {
        return out;
    };
    while let Some(Ok(rec)) = reader.next_record() {
        if let Record::Key { .. } = rec.record {
            let read = if framing {
                reader.skip_value().map(drop)
            } else {
                reader.read_value(&mut rdbtool::rdb::Skip).map(drop)
            };
            if read.is_err() {
                break;
            }
            out.push(reader.value_span());
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Give the mutator a valid signature most of the time, so it explores the body.
    let mut buf = b"REDIS0011".to_vec();
    let data = if data.first().is_some_and(|b| b & 1 == 0) {
        buf.extend_from_slice(data.get(1..).unwrap_or_default());
        &buf[..]
    } else {
        data
    };
    let mapped = transcript(SliceInput::new(data));
    let streamed = transcript(StreamInput::new(data));
    assert_eq!(mapped, streamed);
    // Framing checks less, so it may go on where a full read stops, never the other way.
    assert!(spans(data, true).starts_with(&spans(data, false)));
});
