//! Zipmap: the field/value map of RDB 2–3 small hashes (type 9, read-only legacy). Redis always
//! validates it deeply: bounds, end marker, pair count, and at least one pair.

use super::error::{At, BlobResult, corrupt};

const NAME: &str = "zipmap";
const END: u8 = 0xff;
const BIG_LEN: u8 = 0xfe;

fn bad(at: usize, detail: &'static str) -> At {
    At(at, corrupt(NAME, detail))
}

/// Validates the zipmap and returns its (field, value) pairs.
pub fn pairs(data: &[u8]) -> BlobResult<Vec<(&[u8], &[u8])>> {
    if data.len() < 2 || data[data.len() - 1] != END {
        return Err(bad(0, "missing end marker"));
    }
    let declared = data[0];
    let mut pos = 1;
    let mut out = Vec::new();
    loop {
        if data.get(pos) == Some(&END) {
            if pos != data.len() - 1 {
                return Err(bad(pos, "end marker before the end of the blob"));
            }
            break;
        }
        let (field, next) = read_field(data, pos, false)?;
        let (value, next) = read_field(data, next, true)?;
        out.push((field, value));
        pos = next;
    }
    if out.is_empty() {
        return Err(bad(0, "empty zipmap"));
    }
    if declared < 254 && usize::from(declared) != out.len() {
        return Err(bad(0, "pair count differs from the header"));
    }
    Ok(out)
}

/// Reads one length-prefixed string (values carry a `free` byte and that much padding).
fn read_field(d: &[u8], at: usize, is_value: bool) -> BlobResult<(&[u8], usize)> {
    let b = *d.get(at).ok_or_else(|| bad(at, "entry beyond the end"))?;
    let (len, mut pos) = match b {
        BIG_LEN => {
            let l = d
                .get(at + 1..at + 5)
                .ok_or_else(|| bad(at, "length overruns the blob"))?;
            (
                u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
                at + 5,
            )
        }
        END => return Err(bad(at, "end marker inside an entry")),
        _ => (usize::from(b), at + 1),
    };
    let mut free = 0;
    if is_value {
        free = usize::from(
            *d.get(pos)
                .ok_or_else(|| bad(at, "free byte overruns the blob"))?,
        );
        pos += 1;
    }
    let end = pos
        .checked_add(len)
        .filter(|&e| e.saturating_add(free) < d.len());
    let end = end.ok_or_else(|| bad(at, "entry overruns the blob"))?;
    Ok((&d[pos..end], end + free))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_with_free_space() {
        // {"a": "bc"} with 1 byte of free padding after the value.
        let zm = [1, 1, b'a', 2, 1, b'b', b'c', 0, 0xff];
        assert_eq!(pairs(&zm).unwrap(), vec![(&b"a"[..], &b"bc"[..])]);
        assert!(pairs(&[0, 0xff]).is_err());
        assert!(pairs(&[2, 1, b'a', 2, 1, b'b', b'c', 0, 0xff]).is_err());
        assert!(pairs(&[1, 1, b'a', 9, 0, b'b', 0xff]).is_err());
    }
}
