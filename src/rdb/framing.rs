//! Finding where a value ends without checking what is inside: string headers and lengths
//! only, no decompression, no element decoding. Lets one thread cut a file into values while
//! others validate them.

use super::error::{Error, ErrorKind, Result};
use super::input::Input;
use super::primitive::{Len, read_len, read_len_or_special};
use super::types::ObjectType;

/// Skips one RDB string (plain, int-encoded or LZF) by its header.
fn skip_string<'a, I: Input<'a>>(inp: &mut I) -> Result<()> {
    let at = inp.pos();
    match read_len_or_special(inp)? {
        Len::Plain(n) => inp.skip(n, "string"),
        Len::Special(0) => inp.skip(1, "int8 string"),
        Len::Special(1) => inp.skip(2, "int16 string"),
        Len::Special(2) => inp.skip(4, "int32 string"),
        Len::Special(3) => {
            let clen = read_len(inp)?;
            read_len(inp)?;
            inp.skip(clen, "LZF data")
        }
        Len::Special(s) => Err(Error::new(at, ErrorKind::BadStringEncoding(s))),
    }
}

fn skip_strings<'a, I: Input<'a>>(inp: &mut I, n: u64) -> Result<()> {
    (0..n).try_for_each(|_| skip_string(inp))
}

/// Skips the value of type `ty`. Returns false, having read nothing, for module values, whose
/// framing needs the reader's opcode parsing: read those in full.
pub fn skip_value<'a, I: Input<'a>>(inp: &mut I, ty: ObjectType) -> Result<bool> {
    use ObjectType::*;
    match ty {
        String | HashZipmap | ListZiplist | SetIntset | ZsetZiplist | HashZiplist
        | HashListpack | ZsetListpack | SetListpack => skip_string(inp)?,
        ListLinked | Set | ListQuicklist => {
            let n = read_len(inp)?;
            skip_strings(inp, n)?;
        }
        Hash => {
            let n = read_len(inp)?;
            skip_strings(inp, n.saturating_mul(2))?;
        }
        ZsetText => {
            for _ in 0..read_len(inp)? {
                skip_string(inp)?;
                let n = inp.read_u8("double length")?;
                if n < 253 {
                    inp.skip(u64::from(n), "double")?;
                }
            }
        }
        Zset2 => {
            for _ in 0..read_len(inp)? {
                skip_string(inp)?;
                inp.skip(8, "double")?;
            }
        }
        ListQuicklist2 => {
            for _ in 0..read_len(inp)? {
                read_len(inp)?;
                skip_string(inp)?;
            }
        }
        HashMetadata | HashMetadataPreGa => {
            if ty == HashMetadata {
                inp.skip(8, "min expire")?;
            }
            for _ in 0..read_len(inp)? {
                read_len(inp)?;
                skip_strings(inp, 2)?;
            }
        }
        HashListpackEx | HashListpackExPreGa => {
            if ty == HashListpackEx {
                inp.skip(8, "min expire")?;
            }
            skip_string(inp)?;
        }
        ValkeyHash2 => {
            for _ in 0..read_len(inp)? {
                skip_strings(inp, 2)?;
                inp.skip(8, "field expiry")?;
            }
        }
        Stream1 | Stream2 | Stream3 | Stream4 => skip_stream(inp, ty)?,
        ModulePreGa | Module2 => return Ok(false),
    }
    Ok(true)
}

/// Skips `n` lengths (stream IDs and counters are written as lengths).
fn skip_lens<'a, I: Input<'a>>(inp: &mut I, n: u64) -> Result<()> {
    (0..n).try_for_each(|_| read_len(inp).map(drop))
}

/// Skips a stream: its nodes (key and listpack strings), its metadata, its consumer groups with
/// their pending lists and consumers, and (type 26) its idempotent-producer state. The layout is
/// that of [`super::stream`], which checks what is inside.
fn skip_stream<'a, I: Input<'a>>(inp: &mut I, ty: ObjectType) -> Result<()> {
    use ObjectType::*;
    let (v1, v3) = (ty == Stream1, matches!(ty, Stream3 | Stream4));
    // Length and last ID; from version 2 also the first and max-deleted IDs and entries added.
    let meta_lens = if v1 { 3 } else { 8 };
    // A group's last delivered ID; from version 2 also its entries read.
    let group_lens = if v1 { 2 } else { 3 };
    // A consumer's seen time; from version 3 also its active time.
    let consumer_times = if v3 { 16 } else { 8 };
    let nodes = read_len(inp)?;
    skip_strings(inp, nodes.saturating_mul(2))?;
    skip_lens(inp, meta_lens)?;
    for _ in 0..read_len(inp)? {
        skip_string(inp)?;
        skip_lens(inp, group_lens)?;
        for _ in 0..read_len(inp)? {
            inp.skip(16 + 8, "pending entry")?;
            read_len(inp)?;
        }
        for _ in 0..read_len(inp)? {
            skip_string(inp)?;
            inp.skip(consumer_times, "consumer times")?;
            let pending = read_len(inp)?;
            inp.skip(pending.saturating_mul(16), "consumer pending IDs")?;
        }
    }
    if ty == Stream4 {
        // Duration and max entries; per producer its ID and (idempotency ID, stream ID)
        // pairs; then the added and duplicate counters.
        skip_lens(inp, 2)?;
        for _ in 0..read_len(inp)? {
            skip_string(inp)?;
            for _ in 0..read_len(inp)? {
                skip_string(inp)?;
                skip_lens(inp, 2)?;
            }
        }
        skip_lens(inp, 2)?;
    }
    Ok(())
}
