//! Listpack: the packed element sequence behind small hashes, sets and zsets (7.0+), quicklist-2
//! nodes and stream nodes. Walked element by element with Redis's deep integrity rules: header
//! size, entry bounds, back-length of every entry, element count and end marker.

use super::error::{At, BlobResult, corrupt};
use super::primitive::Elem;

const NAME: &str = "listpack";
const HEADER: usize = 6;
const END: u8 = 0xff;
/// `num_elements` saturates here and then means "count them".
const UNKNOWN_COUNT: u16 = u16::MAX;

fn bad(at: usize, detail: &'static str) -> At {
    At(at, corrupt(NAME, detail))
}

/// Iterates the elements of one listpack blob, validating as it goes.
pub struct Listpack<'b> {
    data: &'b [u8],
    pos: usize,
    seen: u64,
    declared: u16,
    done: bool,
}

impl<'b> Listpack<'b> {
    pub fn new(data: &'b [u8]) -> BlobResult<Self> {
        if data.len() < HEADER + 1 {
            return Err(bad(0, "shorter than its header"));
        }
        let total = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if total != data.len() {
            return Err(bad(0, "header length differs from the blob length"));
        }
        if data[data.len() - 1] != END {
            return Err(bad(data.len() - 1, "missing end marker"));
        }
        let declared = u16::from_le_bytes([data[4], data[5]]);
        Ok(Listpack {
            data,
            pos: HEADER,
            seen: 0,
            declared,
            done: false,
        })
    }

    /// Offset of the next entry within the blob.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn next_elem(&mut self) -> BlobResult<Option<Elem<'b>>> {
        if self.done {
            return Ok(None);
        }
        let at = self.pos;
        let d = self.data;
        let b0 = *d.get(at).ok_or_else(|| bad(at, "entry beyond the end"))?;
        if b0 == END {
            if at != d.len() - 1 {
                return Err(bad(at, "end marker before the end of the blob"));
            }
            if self.declared != UNKNOWN_COUNT && u64::from(self.declared) != self.seen {
                return Err(bad(at, "element count differs from the header"));
            }
            self.done = true;
            return Ok(None);
        }
        let (header, len, elem) = self.decode_entry(at, b0)?;
        let size = header + len;
        let (backlen, n) = encode_backlen(size);
        let end = at.checked_add(size).and_then(|e| e.checked_add(n));
        let end = end
            .filter(|&e| e < d.len())
            .ok_or_else(|| bad(at, "entry overruns the blob"))?;
        // Byte by byte: a 1-5 byte slice comparison would otherwise be a memcmp call.
        if d[at + size..end].iter().zip(&backlen).any(|(a, b)| a != b) {
            return Err(bad(at + size, "entry back-length differs from its size"));
        }
        self.pos = end;
        self.seen += 1;
        Ok(Some(elem))
    }

    /// Returns (header bytes, data bytes, element).
    fn decode_entry(&self, at: usize, b0: u8) -> BlobResult<(usize, usize, Elem<'b>)> {
        let d = self.data;
        let byte = |i: usize| {
            d.get(at + i)
                .copied()
                .ok_or_else(|| bad(at, "entry header overruns the blob"))
        };
        let int_le = |n: usize| -> BlobResult<i64> {
            let bytes = d
                .get(at + 1..at + 1 + n)
                .ok_or_else(|| bad(at, "integer overruns the blob"))?;
            let mut v: u64 = 0;
            for (i, &b) in bytes.iter().enumerate() {
                v |= u64::from(b) << (8 * i);
            }
            let shift = 64 - 8 * n as u32;
            Ok(((v << shift) as i64) >> shift)
        };
        let string = |header: usize, len: usize| -> BlobResult<(usize, usize, Elem<'b>)> {
            let s = at
                .checked_add(header)
                .and_then(|s| Some((s, s.checked_add(len)?)));
            let bytes = s
                .and_then(|(s, e)| d.get(s..e))
                .ok_or_else(|| bad(at, "string overruns the blob"))?;
            Ok((header, len, Elem::Bytes(bytes)))
        };
        match b0 {
            0x00..=0x7f => Ok((1, 0, Elem::Int(i64::from(b0)))),
            0x80..=0xbf => string(1, usize::from(b0 & 0x3f)),
            0xc0..=0xdf => {
                let u = (i64::from(b0 & 0x1f) << 8) | i64::from(byte(1)?);
                Ok((2, 0, Elem::Int(if u < 4096 { u } else { u - 8192 })))
            }
            0xe0..=0xef => string(2, (usize::from(b0 & 0x0f) << 8) | usize::from(byte(1)?)),
            0xf0 => {
                let len = u32::from_le_bytes([byte(1)?, byte(2)?, byte(3)?, byte(4)?]) as usize;
                string(5, len)
            }
            0xf1 => Ok((3, 0, Elem::Int(int_le(2)?))),
            0xf2 => Ok((4, 0, Elem::Int(int_le(3)?))),
            0xf3 => Ok((5, 0, Elem::Int(int_le(4)?))),
            0xf4 => Ok((9, 0, Elem::Int(int_le(8)?))),
            _ => Err(bad(at, "invalid entry encoding")),
        }
    }
}

/// The back-length bytes Redis writes after an entry of `size` bytes: 7 bits per byte, most
/// significant first, every byte but the first with bit 7 set.
fn encode_backlen(size: usize) -> ([u8; 5], usize) {
    let n = match size {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    };
    let mut out = [0u8; 5];
    for (i, b) in out.iter_mut().take(n).enumerate() {
        let group = ((size >> (7 * (n - 1 - i))) & 0x7f) as u8;
        *b = if i == 0 { group } else { group | 0x80 };
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a whole listpack.
    pub fn elements(data: &[u8]) -> BlobResult<Vec<Elem<'_>>> {
        let mut lp = Listpack::new(data)?;
        let mut out = Vec::new();
        while let Some(e) = lp.next_elem()? {
            out.push(e);
        }
        Ok(out)
    }

    /// The 7.0 hash `f1=v1, f2=2`.
    const HASH: [u8; 21] = [
        0x15, 0, 0, 0, 0x04, 0, 0x82, b'f', b'1', 3, 0x82, b'v', b'1', 3, 0x82, b'f', b'2', 3,
        0x02, 1, 0xff,
    ];

    #[test]
    fn decodes_documented_example() {
        let e = elements(&HASH).unwrap();
        assert_eq!(
            e,
            vec![
                Elem::Bytes(b"f1"),
                Elem::Bytes(b"v1"),
                Elem::Bytes(b"f2"),
                Elem::Int(2)
            ]
        );
    }

    #[test]
    fn catches_count_and_backlen_corruption() {
        let mut wrong_count = HASH;
        wrong_count[4] = 5;
        assert!(elements(&wrong_count).is_err());
        let mut wrong_backlen = HASH;
        wrong_backlen[9] = 4;
        assert_eq!(elements(&wrong_backlen).unwrap_err().0, 9);
        let mut truncated = HASH.to_vec();
        truncated.truncate(20);
        assert!(Listpack::new(&truncated).is_err());
    }

    #[test]
    fn integer_encodings() {
        assert_eq!(encode_backlen(127), ([127, 0, 0, 0, 0], 1));
        assert_eq!(encode_backlen(500), ([3, 0x80 | 116, 0, 0, 0], 2));
        // int13 -1 is 0xdf 0xff; int16 -300 is f1 d4 fe.
        let lp = [14, 0, 0, 0, 2, 0, 0xdf, 0xff, 2, 0xf1, 0xd4, 0xfe, 3, 0xff];
        assert_eq!(elements(&lp).unwrap(), vec![Elem::Int(-1), Elem::Int(-300)]);
    }
}
