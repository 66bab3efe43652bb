//! Ziplist: the packed sequence of RDB 2–9 small lists, hashes and zsets and of quicklist-1
//! nodes (read-only legacy since 7.0). Validated deeply, as Redis does whenever it loads one:
//! header, previous-entry lengths, tail offset, entry count and end marker.

use super::error::{At, BlobResult, corrupt};
use super::primitive::Elem;

const NAME: &str = "ziplist";
const HEADER: usize = 10;
const END: u8 = 0xff;
const UNKNOWN_COUNT: u16 = u16::MAX;

fn bad(at: usize, detail: &'static str) -> At {
    At(at, corrupt(NAME, detail))
}

pub struct Ziplist<'b> {
    data: &'b [u8],
    pos: usize,
    prev_size: usize,
    last_start: Option<usize>,
    seen: u64,
    declared: u16,
    tail: usize,
    done: bool,
}

fn u32_at(d: &[u8], at: usize) -> usize {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]) as usize
}

impl<'b> Ziplist<'b> {
    pub fn new(data: &'b [u8]) -> BlobResult<Self> {
        if data.len() < HEADER + 1 {
            return Err(bad(0, "shorter than its header"));
        }
        if u32_at(data, 0) != data.len() {
            return Err(bad(0, "header length differs from the blob length"));
        }
        let tail = u32_at(data, 4);
        if tail > data.len() - 1 {
            return Err(bad(4, "tail offset beyond the blob"));
        }
        if data[data.len() - 1] != END {
            return Err(bad(data.len() - 1, "missing end marker"));
        }
        let declared = u16::from_le_bytes([data[8], data[9]]);
        Ok(Ziplist {
            data,
            pos: HEADER,
            prev_size: 0,
            last_start: None,
            seen: 0,
            declared,
            tail,
            done: false,
        })
    }

    pub fn next_elem(&mut self) -> BlobResult<Option<Elem<'b>>> {
        if self.done {
            return Ok(None);
        }
        let d = self.data;
        let at = self.pos;
        let b0 = *d.get(at).ok_or_else(|| bad(at, "entry beyond the end"))?;
        if b0 == END {
            return self.finish(at).map(|()| None);
        }
        let (prevlen, plen_size) = if b0 < 0xfe {
            (usize::from(b0), 1)
        } else {
            let b = d
                .get(at + 1..at + 5)
                .ok_or_else(|| bad(at, "previous-length overruns the blob"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 5)
        };
        if prevlen != self.prev_size {
            return Err(bad(
                at,
                "previous-entry length differs from the previous entry's size",
            ));
        }
        let enc_at = at + plen_size;
        let (header, len, elem) = decode_entry(d, enc_at)?;
        let end = enc_at.checked_add(header + len).filter(|&e| e < d.len());
        let end = end.ok_or_else(|| bad(at, "entry overruns the blob"))?;
        self.last_start = Some(at);
        self.prev_size = end - at;
        self.pos = end;
        self.seen += 1;
        Ok(Some(elem))
    }

    fn finish(&mut self, at: usize) -> BlobResult<()> {
        if at != self.data.len() - 1 {
            return Err(bad(at, "end marker before the end of the blob"));
        }
        if self.tail != self.last_start.unwrap_or(HEADER) {
            return Err(bad(4, "tail offset does not point at the last entry"));
        }
        if self.declared != UNKNOWN_COUNT && u64::from(self.declared) != self.seen {
            return Err(bad(8, "entry count differs from the header"));
        }
        self.done = true;
        Ok(())
    }
}

/// Returns (encoding header bytes, data bytes, element) for the entry encoding at `at`.
fn decode_entry(d: &[u8], at: usize) -> BlobResult<(usize, usize, Elem<'_>)> {
    let byte = |i: usize| {
        d.get(at + i)
            .copied()
            .ok_or_else(|| bad(at, "entry header overruns the blob"))
    };
    let b0 = byte(0)?;
    let int = |n: usize| -> BlobResult<(usize, usize, Elem<'_>)> {
        let bytes = d
            .get(at + 1..at + 1 + n)
            .ok_or_else(|| bad(at, "integer overruns the blob"))?;
        let mut v: u64 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            v |= u64::from(b) << (8 * i);
        }
        let shift = 64 - 8 * n as u32;
        Ok((1, n, Elem::Int(((v << shift) as i64) >> shift)))
    };
    let string = |header: usize, len: usize| -> BlobResult<(usize, usize, Elem<'_>)> {
        let start = at + header;
        let bytes = start.checked_add(len).and_then(|e| d.get(start..e));
        let bytes = bytes.ok_or_else(|| bad(at, "string overruns the blob"))?;
        Ok((header, len, Elem::Bytes(bytes)))
    };
    match b0 >> 6 {
        0 => string(1, usize::from(b0 & 0x3f)),
        1 => string(2, (usize::from(b0 & 0x3f) << 8) | usize::from(byte(1)?)),
        2 => string(
            5,
            u32::from_be_bytes([byte(1)?, byte(2)?, byte(3)?, byte(4)?]) as usize,
        ),
        _ => match b0 {
            0xc0 => int(2),
            0xd0 => int(4),
            0xe0 => int(8),
            0xf0 => int(3),
            0xfe => int(1),
            0xf1..=0xfd => Ok((1, 0, Elem::Int(i64::from(b0 & 0x0f) - 1))),
            _ => Err(bad(at, "invalid entry encoding")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &[u8]) -> BlobResult<Vec<Elem<'_>>> {
        let mut z = Ziplist::new(d)?;
        let mut v = Vec::new();
        while let Some(e) = z.next_elem()? {
            v.push(e);
        }
        Ok(v)
    }

    #[test]
    fn documented_example() {
        let zl = [
            0x0f, 0, 0, 0, 0x0c, 0, 0, 0, 0x02, 0, 0x00, 0xf3, 0x02, 0xf6, 0xff,
        ];
        assert_eq!(all(&zl).unwrap(), vec![Elem::Int(2), Elem::Int(5)]);
        let mut bad_tail = zl;
        bad_tail[4] = 0x0a;
        assert!(all(&bad_tail).is_err());
        let mut bad_prev = zl;
        bad_prev[12] = 0x03;
        assert_eq!(all(&bad_prev).unwrap_err().0, 12);
    }

    #[test]
    fn strings_and_wide_ints() {
        // "ab", then int16 -2.
        let zl = [
            0x13, 0, 0, 0, 0x0e, 0, 0, 0, 2, 0, 0, 0x02, b'a', b'b', 4, 0xc0, 0xfe, 0xff, 0xff,
        ];
        assert_eq!(all(&zl).unwrap(), vec![Elem::Bytes(b"ab"), Elem::Int(-2)]);
    }
}
