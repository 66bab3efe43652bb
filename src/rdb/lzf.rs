//! LZF, the compression Redis applies to strings (and embedded blobs) over 20 bytes.
//!
//! Decompression goes through the `lzf` crate; the claimed output size is bounded first, because
//! it comes from the file: one 3-byte back-reference yields at most 264 bytes, so a valid block
//! never expands more than 88 times.

use std::borrow::Cow;

use super::error::ErrorKind;

pub const MAX_RATIO: u64 = 88;

/// Checks what can be known before decoding; `Ok(true)` means the (empty) result is known.
fn precheck(clen: u64, ulen: u64) -> Result<bool, ErrorKind> {
    if ulen > clen.saturating_mul(MAX_RATIO) {
        return Err(ErrorKind::Lzf(Cow::Owned(format!(
            "claims {ulen} bytes from {clen} compressed (more than {MAX_RATIO}x)"
        ))));
    }
    match (clen, ulen) {
        (0, 0) => Ok(true),
        (0, _) => Err(ErrorKind::Lzf("empty compressed data".into())),
        _ => Ok(false),
    }
}

fn length_mismatch(got: u64, ulen: u64) -> ErrorKind {
    ErrorKind::Lzf(Cow::Owned(format!(
        "decompressed to {got} bytes, header says {ulen}"
    )))
}

fn out_of_bounds() -> ErrorKind {
    ErrorKind::Lzf("back-reference or literal run out of bounds".into())
}

/// Decompresses `compressed` into exactly `ulen` bytes.
pub fn decompress(compressed: &[u8], ulen: u64) -> Result<Vec<u8>, ErrorKind> {
    if precheck(compressed.len() as u64, ulen)? {
        return Ok(Vec::new());
    }
    let ulen =
        usize::try_from(ulen).map_err(|_| ErrorKind::Lzf("size beyond address space".into()))?;
    match lzf::decompress(compressed, ulen) {
        Ok(out) if out.len() == ulen => Ok(out),
        Ok(out) => Err(length_mismatch(out.len() as u64, ulen as u64)),
        Err(lzf::LzfError::BufferTooSmall) => Err(ErrorKind::Lzf(Cow::Owned(format!(
            "output exceeds the declared {ulen} bytes"
        )))),
        Err(_) => Err(out_of_bounds()),
    }
}

/// Accepts exactly what [`decompress`] accepts, without producing the output: only the control
/// bytes are read, so checking a compressed value costs a fraction of decoding it.
pub fn validate(compressed: &[u8], ulen: u64) -> Result<(), ErrorKind> {
    if precheck(compressed.len() as u64, ulen)? {
        return Ok(());
    }
    let (mut ip, mut op) = (0usize, 0u64);
    let byte = |i: usize| compressed.get(i).copied().ok_or_else(out_of_bounds);
    while ip < compressed.len() {
        let ctrl = compressed[ip];
        ip += 1;
        let produced = if ctrl < 32 {
            let run = usize::from(ctrl) + 1;
            if ip + run > compressed.len() {
                return Err(out_of_bounds());
            }
            ip += run;
            run as u64
        } else {
            let mut len = u64::from(ctrl >> 5);
            if len == 7 {
                len += u64::from(byte(ip)?);
                ip += 1;
            }
            let distance = (u64::from(ctrl & 0x1f) << 8) + u64::from(byte(ip)?) + 1;
            ip += 1;
            if distance > op {
                return Err(out_of_bounds());
            }
            len + 2
        };
        op += produced;
        if op > ulen {
            return Err(ErrorKind::Lzf(Cow::Owned(format!(
                "output exceeds the declared {ulen} bytes"
            ))));
        }
    }
    if op != ulen {
        return Err(length_mismatch(op, ulen));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_then_overlapping_copy() {
        // "abc" literal, then a 3-byte copy from distance 3: the RESTORE example from the docs.
        let block = [0x02, b'a', b'b', b'c', 0x20, 0x02];
        assert_eq!(decompress(&block, 6).unwrap(), b"abcabc");
        assert!(validate(&block, 6).is_ok());
        for wrong in [5, 7] {
            assert!(decompress(&block, wrong).is_err());
            assert!(validate(&block, wrong).is_err());
        }
    }

    #[test]
    fn validate_agrees_with_decompress() {
        let text: Vec<u8> = (0..20_000u32)
            .map(|i| b"redis:key:"[(i % 10) as usize] ^ (i / 977) as u8)
            .collect();
        let block = lzf::compress(&text).unwrap();
        assert_eq!(decompress(&block, text.len() as u64).unwrap(), text);
        assert!(validate(&block, text.len() as u64).is_ok());
        // Every truncation and every single-byte change gets the same verdict from both.
        for cut in 0..block.len() {
            let b = &block[..cut];
            assert_eq!(
                decompress(b, text.len() as u64).is_ok(),
                validate(b, text.len() as u64).is_ok(),
                "cut {cut}"
            );
        }
        for pos in (0..block.len()).step_by(7) {
            let mut b = block.clone();
            b[pos] ^= 0x5a;
            assert_eq!(
                decompress(&b, text.len() as u64).is_ok(),
                validate(&b, text.len() as u64).is_ok(),
                "pos {pos}"
            );
        }
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
        assert!(validate(&[0x20, 0x05], 3).is_err());
    }
}
