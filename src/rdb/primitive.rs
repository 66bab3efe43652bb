//! The RDB primitives every record is made of: length encodings (mixed byte orders), strings
//! (raw, int-encoded, LZF), doubles, and the element view shared by all encodings.

use std::borrow::Cow;

use super::error::{Error, ErrorKind, Result};
use super::input::Input;
use super::lzf;

/// One element of a collection as stored: bytes, or an integer the writer packed (listpack,
/// ziplist, intset and int-encoded strings store canonical decimal strings as integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// Calls `f` with the element's bytes; integers are rendered as decimal text, which is what
    /// the server would return for them.
    #[inline]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Elem::Bytes(b) => f(b),
            Elem::Int(i) => f(itoa::Buffer::new().format(i).as_bytes()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(|b| b.to_vec())
    }

    /// Length in bytes of the element as a string.
    pub fn len(&self) -> usize {
        match *self {
            Elem::Bytes(b) => b.len(),
            Elem::Int(i) => {
                // Decimal digits plus sign, without rendering the number.
                let digits = i
                    .unsigned_abs()
                    .checked_ilog10()
                    .map_or(1, |d| d as usize + 1);
                digits + usize::from(i < 0)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoded RDB string: borrowed from the input when stored raw, owned after LZF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbStr<'a> {
    Bytes(Cow<'a, [u8]>),
    Int(i64),
}

impl<'a> RdbStr<'a> {
    pub fn elem(&self) -> Elem<'_> {
        match self {
            RdbStr::Bytes(b) => Elem::Bytes(b),
            RdbStr::Int(i) => Elem::Int(*i),
        }
    }

    pub fn into_bytes(self) -> Cow<'a, [u8]> {
        match self {
            RdbStr::Bytes(b) => b,
            RdbStr::Int(i) => Cow::Owned(itoa::Buffer::new().format(i).as_bytes().to_vec()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.elem().to_vec()
    }
}

/// A length, or the special-encoding marker `11xxxxxx` that only a string position accepts.
pub(super) enum Len {
    Plain(u64),
    Special(u8),
}

#[inline]
pub(super) fn read_len_or_special<'a, I: Input<'a>>(inp: &mut I) -> Result<Len> {
    let at = inp.pos();
    let b = inp.read_u8("length")?;
    Ok(match b >> 6 {
        0 => Len::Plain(u64::from(b & 0x3f)),
        1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(inp.read_u8("length")?)),
        3 => Len::Special(b & 0x3f),
        _ => match b {
            0x80 => Len::Plain(u64::from(u32::from_be_bytes(inp.read_array("length")?))),
            0x81 => Len::Plain(u64::from_be_bytes(inp.read_array("length")?)),
            _ => return Err(Error::new(at, ErrorKind::BadLength(b))),
        },
    })
}

/// A plain length. Redis silently reads `11xxxxxx` here as a small number; no writer produces
/// it, so it is reported as corruption.
#[inline]
pub fn read_len<'a, I: Input<'a>>(inp: &mut I) -> Result<u64> {
    let at = inp.pos();
    match read_len_or_special(inp)? {
        Len::Plain(n) => Ok(n),
        Len::Special(s) => Err(Error::new(at, ErrorKind::SpecialLength(0xc0 | s))),
    }
}

pub fn read_string<'a, I: Input<'a>>(inp: &mut I) -> Result<RdbStr<'a>> {
    read_string_located(inp, None).map(|(s, _)| s)
}

/// A string whose LZF data, if compressed, is decompressed into `scratch` (kept by the caller
/// for the next).
pub fn read_string_in<'a: 'b, 'b, I: Input<'a>>(
    inp: &mut I,
    scratch: &'b mut Vec<u8>,
) -> Result<RdbStr<'b>> {
    read_string_located(inp, Some(scratch)).map(|(s, _)| s)
}

/// The value of an int-encoded string: special encoding 0, 1 or 2 (8, 16 or 32 bits, LE).
fn read_int_string<'a, I: Input<'a>>(inp: &mut I, width: u8) -> Result<i64> {
    Ok(match width {
        0 => i64::from(inp.read_u8("int8 string")? as i8),
        1 => i64::from(i16::from_le_bytes(inp.read_array("int16 string")?)),
        _ => i64::from(i32::from_le_bytes(inp.read_array("int32 string")?)),
    })
}

/// A string and, when it is stored plain, the offset of its first byte in the input. LZF data
/// is decompressed into `scratch` when given (see [`lzf::decompress_into`]), else into a new
/// buffer.
fn read_string_located<'a: 'b, 'b, I: Input<'a>>(
    inp: &mut I,
    scratch: Option<&'b mut Vec<u8>>,
) -> Result<(RdbStr<'b>, Option<u64>)> {
    let at = inp.pos();
    let int = |v: i64| Ok((RdbStr::Int(v), None));
    match read_len_or_special(inp)? {
        Len::Plain(n) => {
            let origin = inp.pos();
            Ok((RdbStr::Bytes(inp.read_bytes(n, "string")?), Some(origin)))
        }
        Len::Special(w @ 0..=2) => int(read_int_string(inp, w)?),
        Len::Special(3) => {
            let clen = read_len(inp)?;
            let ulen = read_len(inp)?;
            let data_at = inp.pos();
            let compressed = inp.read_bytes(clen, "LZF data")?;
            let out = match scratch {
                Some(buf) => lzf::decompress_into(&compressed, ulen, buf).map(Cow::Borrowed),
                None => lzf::decompress(&compressed, ulen).map(Cow::Owned),
            };
            let out = out.map_err(|kind| Error::new(data_at, kind))?;
            Ok((RdbStr::Bytes(out), None))
        }
        Len::Special(s) => Err(Error::new(at, ErrorKind::BadStringEncoding(s))),
    }
}

/// A string value read for a visitor that does not want its bytes.
pub enum Skipped<'a> {
    /// Short plain or int-encoded strings, whose bytes cost nothing to hand out (and tell
    /// whether the value is an integer).
    Short(RdbStr<'a>),
    /// Anything longer, by length only.
    Len(u64),
}

/// Plain strings up to this length are handed out as [`Skipped::Short`]: every canonical
/// 64-bit integer fits.
const SHORT: u64 = 20;

/// Checks a string without keeping it: long plain bytes are skipped, LZF data is validated
/// (every reference inside the output, exact length) without being decompressed.
pub fn skip_string<'a, I: Input<'a>>(inp: &mut I) -> Result<Skipped<'a>> {
    let at = inp.pos();
    match read_len_or_special(inp)? {
        Len::Plain(n) if n <= SHORT => {
            Ok(Skipped::Short(RdbStr::Bytes(inp.read_bytes(n, "string")?)))
        }
        Len::Plain(n) => inp.skip(n, "string").map(|()| Skipped::Len(n)),
        Len::Special(w @ 0..=2) => Ok(Skipped::Short(RdbStr::Int(read_int_string(inp, w)?))),
        Len::Special(3) => {
            let clen = read_len(inp)?;
            let ulen = read_len(inp)?;
            let data_at = inp.pos();
            let compressed = inp.read_bytes(clen, "LZF data")?;
            lzf::validate(&compressed, ulen).map_err(|kind| Error::new(data_at, kind))?;
            Ok(Skipped::Len(ulen))
        }
        Len::Special(s) => Err(Error::new(at, ErrorKind::BadStringEncoding(s))),
    }
}

/// A string that must be kept as bytes (keys, blobs, names).
pub fn read_bytes<'a, I: Input<'a>>(inp: &mut I) -> Result<Cow<'a, [u8]>> {
    read_string(inp).map(RdbStr::into_bytes)
}

/// Where a string's bytes sit in the input: blobs that are not compressed report errors at
/// their absolute offset.
pub struct Blob<'a> {
    pub data: Cow<'a, [u8]>,
    /// Offset of `data[0]` in the input, when the bytes are stored there as they are.
    pub origin: Option<u64>,
    /// Offset of the string header, for errors inside a decompressed blob.
    pub at: u64,
}

impl Blob<'_> {
    /// Turns an error at `inner` bytes into the blob into one at an input offset.
    pub fn error(&self, inner: usize, kind: ErrorKind) -> Error {
        match self.origin {
            Some(o) => Error::new(o + inner as u64, kind),
            None => {
                let kind = match kind {
                    ErrorKind::Encoding { encoding, detail } => ErrorKind::Encoding {
                        encoding,
                        detail: Cow::Owned(format!(
                            "{detail} (at byte {inner} of the decompressed blob)"
                        )),
                    },
                    k => k,
                };
                Error::new(self.at, kind)
            }
        }
    }
}

/// A blob (an embedded encoding); compressed ones are decompressed into `scratch`, which the
/// caller keeps for the next.
pub fn read_blob<'a: 'b, 'b, I: Input<'a>>(
    inp: &mut I,
    scratch: &'b mut Vec<u8>,
) -> Result<Blob<'b>> {
    let at = inp.pos();
    let (s, origin) = read_string_located(inp, Some(scratch))?;
    Ok(Blob {
        data: s.into_bytes(),
        origin,
        at,
    })
}

/// The 8-byte little-endian IEEE double of ZSET_2 and module values.
pub fn read_binary_double<'a, I: Input<'a>>(inp: &mut I) -> Result<f64> {
    Ok(f64::from_le_bytes(inp.read_array("double")?))
}

/// The length-prefixed ASCII double of type-3 zsets (253 NaN, 254 +inf, 255 -inf).
pub fn read_text_double<'a, I: Input<'a>>(inp: &mut I) -> Result<f64> {
    let at = inp.pos();
    let n = inp.read_u8("double length")?;
    match n {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        _ => {
            let text = inp.read_bytes(u64::from(n), "double")?;
            parse_double(&text).ok_or_else(|| Error::new(at, ErrorKind::NotANumber("score")))
        }
    }
}

/// Parses a score as Redis's `strtod` does for the forms writers produce (Rust's parser takes
/// `inf`, `infinity` and `nan` in any case, signed or not, as `strtod` does).
pub fn parse_double(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::input::SliceInput;

    fn len(bytes: &[u8]) -> Result<u64> {
        read_len(&mut SliceInput::new(bytes))
    }

    #[test]
    fn length_forms() {
        assert_eq!(len(&[0x05]).unwrap(), 5);
        assert_eq!(len(&[0x41, 0x00]).unwrap(), 256);
        assert_eq!(len(&[0x80, 0, 1, 0, 0]).unwrap(), 65536);
        assert_eq!(
            len(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            u64::MAX
        );
        assert_eq!(len(&[0x82]).unwrap_err().kind, ErrorKind::BadLength(0x82));
        assert_eq!(
            len(&[0xc0]).unwrap_err().kind,
            ErrorKind::SpecialLength(0xc0)
        );
    }

    #[test]
    fn string_forms() {
        let s = |b: &[u8]| read_string(&mut SliceInput::new(b)).map(|s| s.to_vec());
        assert_eq!(s(&[0x03, b'f', b'o', b'o']).unwrap(), b"foo");
        assert_eq!(s(&[0xc0, 0xfe]).unwrap(), b"-2");
        assert_eq!(s(&[0xc1, 0xab, 0xab]).unwrap(), b"-21589");
        assert_eq!(s(&[0xc2, 0x25, 0xd3, 0xed, 0x0a]).unwrap(), b"183358245");
        assert_eq!(
            s(&[0xc3, 0x06, 0x06, 0x02, b'a', b'b', b'c', 0x20, 0x02]).unwrap(),
            b"abcabc"
        );
        assert_eq!(
            s(&[0xc4]).unwrap_err().kind,
            ErrorKind::BadStringEncoding(4)
        );
    }

    #[test]
    fn elem_renders_integers_as_text() {
        assert_eq!(Elem::Int(-42).to_vec(), b"-42");
        assert_eq!(Elem::Bytes(b"x").len(), 1);
    }
}
