//! Intset: the sorted integer array behind small all-integer sets (type 11).

use super::error::{At, BlobResult, corrupt};

const NAME: &str = "intset";

fn bad(at: usize, detail: &'static str) -> At {
    At(at, corrupt(NAME, detail))
}

/// Validates the whole intset (width, exact size, non-empty, strictly ascending) and returns
/// an iterator over its members.
pub fn members(data: &[u8]) -> BlobResult<impl Iterator<Item = i64> + '_> {
    let header = data
        .get(..8)
        .ok_or_else(|| bad(0, "shorter than its header"))?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(bad(0, "member width is not 2, 4 or 8"));
    }
    if count == 0 {
        return Err(bad(4, "empty intset"));
    }
    if (count as u64) * (width as u64) + 8 != data.len() as u64 {
        return Err(bad(4, "size differs from member count times width"));
    }
    let body = &data[8..];
    let read = move |i: usize| -> i64 {
        let c = &body[i * width..(i + 1) * width];
        match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        }
    };
    for i in 1..count {
        if read(i - 1) >= read(i) {
            return Err(bad(8 + i * width, "members not strictly ascending"));
        }
    }
    Ok((0..count).map(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_order() {
        let set = [2, 0, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 1, 0, 2, 0];
        assert_eq!(members(&set).unwrap().collect::<Vec<_>>(), vec![-1, 1, 2]);
        let unsorted = [2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0];
        assert!(members(&unsorted).is_err());
        assert!(members(&[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(members(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3]).is_err());
    }
}
