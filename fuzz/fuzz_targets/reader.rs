//! Any bytes given to the record reader end in records or a clean error: no panic, no hang, no
//! allocation sized by a length the input merely claims. Both input kinds are driven, and must
//! agree.
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
});
