//! LZF, the compression Redis applies to strings (and embedded blobs) over 20 bytes.
//!
//! Decompression goes through the `lzf` crate; the claimed output size is bounded first, because
//! it comes from the file: one 3-byte back-reference yields at most 264 bytes, so a valid block
//! never expands more than 88 times.

use std::borrow::Cow;

use super::error::ErrorKind;

pub const MAX_RATIO: u64 = 88;

/// Decompresses `compressed` into exactly `ulen` bytes.
pub fn decompress(compressed: &[u8], ulen: u64) -> Result<Vec<u8>, ErrorKind> {
    let clen = compressed.len() as u64;
    if ulen > clen.saturating_mul(MAX_RATIO) {
        return Err(ErrorKind::Lzf(Cow::Owned(format!(
            "claims {ulen} bytes from {clen} compressed (more than {MAX_RATIO}x)"
        ))));
    }
    if clen == 0 {
        return if ulen == 0 {
            Ok(Vec::new())
        } else {
            Err(ErrorKind::Lzf("empty compressed data".into()))
        };
    }
    let ulen =
        usize::try_from(ulen).map_err(|_| ErrorKind::Lzf("size beyond address space".into()))?;
    match lzf::decompress(compressed, ulen) {
        Ok(out) if out.len() == ulen => Ok(out),
        Ok(out) => Err(ErrorKind::Lzf(Cow::Owned(format!(
            "decompressed to {} bytes, header says {ulen}",
            out.len()
        )))),
        Err(lzf::LzfError::BufferTooSmall) => Err(ErrorKind::Lzf(Cow::Owned(format!(
            "output exceeds the declared {ulen} bytes"
        )))),
        Err(_) => Err(ErrorKind::Lzf(
            "back-reference or literal run out of bounds".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_then_overlapping_copy() {
        // "abc" literal, then a 3-byte copy from distance 3: the RESTORE example from the docs.
        let block = [0x02, b'a', b'b', b'c', 0x20, 0x02];
        assert_eq!(decompress(&block, 6).unwrap(), b"abcabc");
        assert!(decompress(&block, 7).is_err());
        assert!(decompress(&block, 5).is_err());
    }

    #[test]
    fn absurd_ratio_is_refused_before_allocating() {
        assert!(matches!(
            decompress(&[0; 4], 1 << 40),
            Err(ErrorKind::Lzf(_))
        ));
    }

    #[test]
    fn backreference_before_start_is_corrupt() {
        assert!(decompress(&[0x20, 0x05], 3).is_err());
    }
}
