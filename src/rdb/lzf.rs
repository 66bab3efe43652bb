//! LZF, the compression Redis applies to strings (and embedded blobs) over 20 bytes.
//!
//! Decompression is the safe decoder below, not the `lzf` crate, which is the slower of the two
//! on blobs from real files (`benches/lzf.rs` compares them; the crate stays as the tests'
//! reference compressor).
//! The claimed output size is bounded first, because it comes from the file: one 3-byte
//! back-reference yields at most 264 bytes, so a valid block never expands more than 88 times.

use std::borrow::Cow;

use super::error::{ErrorKind, plural};

pub const MAX_RATIO: u64 = 88;

/// Checks what can be known before decoding; `Ok(true)` means the (empty) result is known.
fn precheck(clen: u64, ulen: u64) -> Result<bool, ErrorKind> {
    if ulen > clen.saturating_mul(MAX_RATIO) {
        return Err(ErrorKind::Lzf(Cow::Owned(format!(
            "claims {ulen} {} from {clen} compressed (more than {MAX_RATIO}x)",
            plural(ulen, "byte")
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
        "decompressed to {got} {}, header says {ulen}",
        plural(got, "byte")
    )))
}

fn out_of_bounds() -> ErrorKind {
    ErrorKind::Lzf("back-reference or literal run out of bounds".into())
}

/// Decompresses `compressed` into exactly `ulen` bytes.
pub fn decompress(compressed: &[u8], ulen: u64) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::new();
    decompress_into(compressed, ulen, &mut out)?;
    Ok(out)
}

/// Decompresses `compressed` into the first `ulen` bytes of `buf`, a buffer kept for the next
/// blob: it only grows, so after the first few blobs nothing is allocated or zeroed (which
/// cost a quarter of decoding the small blobs of real files). Returns those `ulen` bytes.
pub fn decompress_into<'b>(
    compressed: &[u8],
    ulen: u64,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], ErrorKind> {
    if precheck(compressed.len() as u64, ulen)? {
        return Ok(&[]);
    }
    let ulen =
        usize::try_from(ulen).map_err(|_| ErrorKind::Lzf("size beyond address space".into()))?;
    if buf.len() < ulen {
        buf.resize(ulen, 0);
    }
    let out = &mut buf[..ulen];
    decode(compressed, out).map_err(|detail| ErrorKind::Lzf(detail.into()))?;
    Ok(out)
}

/// Decodes into exactly `out.len()` (`ulen`) bytes, rejecting a literal run past the end of
/// the input, a back-reference before the start of the output, and output longer or shorter
/// than `ulen`. `out` may hold anything beforehand: every byte of it is written.
///
/// Where there is room, literals are copied 32 bytes at a time, back-references of up to 8 or
/// 16 bytes as one 8- or 16-byte move, and longer ones far enough back in 32-byte chunks
/// (fixed sizes compile to a few vector moves instead of a `memcpy` call).
/// Bytes written past the end of a token stay inside `out` (slice indexing checks that) and are
/// overwritten by the next tokens: tokens write the output strictly in order, a copy only reads
/// bytes before its own start, and success requires every byte up to `ulen` to be produced.
fn decode(compressed: &[u8], out: &mut [u8]) -> Result<(), &'static str> {
    let ulen = out.len();
    let clen = compressed.len();
    let (mut ip, mut op) = (0, 0);
    while ip < clen {
        let ctrl = usize::from(compressed[ip]);
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if let (Some(src), Some(dst)) = (compressed.get(ip..ip + 32), out.get_mut(op..op + 32))
            {
                dst.copy_from_slice(src);
            } else {
                let src = compressed
                    .get(ip..ip + n)
                    .ok_or("literal run past the end of the input")?;
                let dst = out
                    .get_mut(op..op + n)
                    .ok_or("output longer than declared")?;
                dst.copy_from_slice(src);
            }
            ip += n;
            op += n;
            continue;
        }
        // Back-reference: length 3-8, or 9-264 with an extra length byte, then the distance's
        // low byte.
        let mut len = (ctrl >> 5) + 2;
        if ctrl >= 0xe0 {
            len += usize::from(*compressed.get(ip).ok_or("truncated back-reference")?);
            ip += 1;
        }
        let low = usize::from(*compressed.get(ip).ok_or("truncated back-reference")?);
        ip += 1;
        let dist = (((ctrl & 0x1f) << 8) | low) + 1;
        if dist > op {
            return Err("back-reference before the start of the output");
        }
        if len > ulen - op {
            return Err("output longer than declared");
        }
        let from = op - dist;
        if len <= 8 && dist >= 8 && op + 8 <= ulen {
            copy_once::<8>(out, from, op);
        } else if len <= 16 && dist >= 16 && op + 16 <= ulen {
            copy_once::<16>(out, from, op);
        } else if dist >= 32 && op + len.next_multiple_of(32) <= ulen {
            copy_chunks::<32>(out, from, op, len);
        } else if dist >= len {
            out.copy_within(from..from + len, op);
        } else if dist == 1 {
            let b = out[from];
            out[op..op + len].fill(b);
        } else {
            // Overlapping: the output repeats with period `dist`; copy pieces of at most `dist`
            // bytes, each reading only bytes already written.
            let mut done = 0;
            while done < len {
                let k = dist.min(len - done);
                out.copy_within(from + done..from + done + k, op + done);
                done += k;
            }
        }
        op += len;
    }
    if op != ulen {
        return Err("output shorter than declared");
    }
    Ok(())
}

/// Copies `C` bytes from `from` to `op` as one move (for a back-reference of at most `C`
/// bytes; the rest is overwritten later). Needs `op - from >= C` and room for `C` bytes.
#[inline(always)]
fn copy_once<const C: usize>(out: &mut [u8], from: usize, op: usize) {
    out.copy_within(from..from + C, op);
}

/// Copies `len` bytes from `from` to `op` in chunks of `C` bytes (fixed-size moves, no
/// `memcpy` call), writing up to `C - 1` bytes past `op + len` (the caller checked there is
/// room). Needs `op - from >= C`, so each chunk reads only bytes written before it.
#[inline(always)]
fn copy_chunks<const C: usize>(out: &mut [u8], from: usize, op: usize, len: usize) {
    for i in (0..len).step_by(C) {
        let (done, rest) = out.split_at_mut(op + i);
        rest[..C].copy_from_slice(&done[from + i..from + i + C]);
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
                "output exceeds the declared {ulen} {}",
                plural(ulen, "byte")
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

    /// The format's decoder, byte by byte.
    fn reference(inp: &[u8], ulen: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < inp.len() {
            let c = usize::from(inp[i]);
            i += 1;
            if c < 32 {
                let n = c + 1;
                if i + n > inp.len() || out.len() + n > ulen {
                    return None;
                }
                out.extend_from_slice(&inp[i..i + n]);
                i += n;
            } else {
                let mut n = c >> 5;
                if n == 7 {
                    n += usize::from(*inp.get(i)?);
                    i += 1;
                }
                let dist = ((c & 31) << 8) + usize::from(*inp.get(i)?) + 1;
                i += 1;
                if dist > out.len() || out.len() + n + 2 > ulen {
                    return None;
                }
                for _ in 0..n + 2 {
                    out.push(out[out.len() - dist]);
                }
            }
        }
        (out.len() == ulen).then_some(out)
    }

    /// Random token streams through every copy path (short and long, near and far, overlapping
    /// or not, near the end of the output or not), intact and damaged, against the reference.
    #[test]
    fn agrees_with_the_reference() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // One buffer for every call, as the value reader keeps it: full of earlier output.
        let mut buf = vec![0x5a; 1 << 12];
        for _ in 0..20_000 {
            let (mut block, mut op) = (Vec::new(), 0usize);
            for _ in 0..next() % 40 {
                if op == 0 || next() % 3 == 0 {
                    let n = (next() % 32 + 1) as usize;
                    block.push(n as u8 - 1);
                    block.extend((0..n).map(|_| next() as u8 % 4));
                    op += n;
                } else {
                    let dist = match next() % 4 {
                        0 => 1 + next() as usize % 4,
                        1 => 8 + next() as usize % 16,
                        _ => 1 + next() as usize % op.min(8192),
                    }
                    .min(op);
                    let len = if next() % 2 == 0 {
                        3 + next() % 6
                    } else {
                        3 + next() % 262
                    } as usize;
                    let (d, l) = (dist - 1, len - 2);
                    if l < 7 {
                        block.push(((l << 5) | (d >> 8)) as u8);
                    } else {
                        block.extend([(0xe0 | (d >> 8)) as u8, (l - 7) as u8]);
                    }
                    block.push(d as u8);
                    op += len;
                }
            }
            let want = reference(&block, op);
            assert!(want.is_some());
            assert_eq!(decoded(&block, op, &mut buf), want);
            assert!(decoded(&block, op + 1, &mut buf).is_none());
            assert!(op == 0 || decoded(&block, op - 1, &mut buf).is_none());
            if !block.is_empty() {
                let cut = next() as usize % block.len();
                assert_eq!(
                    decoded(&block[..cut], op, &mut buf),
                    reference(&block[..cut], op)
                );
                let at = next() as usize % block.len();
                block[at] = next() as u8;
                let ulen = if next() % 4 == 0 {
                    next() as usize % (2 * op + 1)
                } else {
                    op
                };
                assert_eq!(decoded(&block, ulen, &mut buf), reference(&block, ulen));
                assert_eq!(
                    validate(&block, ulen as u64).is_ok(),
                    reference(&block, ulen).is_some()
                );
            }
        }
    }

    /// Decodes into `buf`, reused from call to call.
    fn decoded(block: &[u8], ulen: usize, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        decompress_into(block, ulen as u64, buf)
            .ok()
            .map(<[u8]>::to_vec)
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
