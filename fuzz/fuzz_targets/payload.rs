//! Any bytes given to the DUMP payload reader end in a payload or a clean error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdbtool::rdb::{Item, payload};

fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    let _ = payload::read(data, &mut |_: Item<'_>| items += 1);
});
