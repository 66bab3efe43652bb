//! Where the reader's bytes come from: a mapped file (borrowed, random access) or a stream
//! (stdin, later a socket). Every bounds check of the format code lives here, so a declared
//! length is compared with what is really there before anything is allocated.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Mutex};

use super::crc::{Crc64, PrefixCrc};
use super::error::{Error, ErrorKind, Result};

/// A source of bytes with an absolute position. Methods never panic; running out of bytes is
/// an [`ErrorKind::UnexpectedEof`] at the position where the short read began.
pub trait Input<'a> {
    /// Offset of the next byte to be read.
    fn pos(&self) -> u64;
    /// Bytes known to remain, when the input knows its end (a mapped file does, a pipe doesn't).
    fn remaining(&self) -> Option<u64>;
    fn read_u8(&mut self, what: &'static str) -> Result<u8>;
    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]>;
    /// `n` bytes, borrowed where the input allows it.
    fn read_bytes(&mut self, n: u64, what: &'static str) -> Result<Cow<'a, [u8]>>;
    fn skip(&mut self, n: u64, what: &'static str) -> Result<()>;
    /// CRC-64/REDIS of every byte before `pos()`.
    fn checksum(&self) -> u64;
}

/// A reader can borrow its input, so the caller can still ask it about I/O errors afterwards.
impl<'a, I: Input<'a>> Input<'a> for &mut I {
    fn pos(&self) -> u64 {
        (**self).pos()
    }
    fn remaining(&self) -> Option<u64> {
        (**self).remaining()
    }
    fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        (**self).read_u8(what)
    }
    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        (**self).read_array(what)
    }
    fn read_bytes(&mut self, n: u64, what: &'static str) -> Result<Cow<'a, [u8]>> {
        (**self).read_bytes(n, what)
    }
    fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        (**self).skip(n, what)
    }
    fn checksum(&self) -> u64 {
        (**self).checksum()
    }
}

fn eof(pos: u64, need: u64, what: &'static str) -> Error {
    Error::new(pos, ErrorKind::UnexpectedEof { need, what })
}

/// A byte slice, normally a memory-mapped file.
pub struct SliceInput<'a> {
    data: &'a [u8],
    pos: usize,
    /// A checksum of a prefix of `data` being summed as the pages are released (by the scan of
    /// a mapped file, `scan::mapped::MappedFile::scan`).
    shared_crc: Option<Arc<Mutex<PrefixCrc>>>,
}

impl<'a> SliceInput<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        SliceInput {
            data,
            pos: 0,
            shared_crc: None,
        }
    }

    /// Finishes `crc`, the running checksum of a prefix of the same data, when a checksum is
    /// asked for.
    pub fn with_shared_checksum(mut self, crc: Arc<Mutex<PrefixCrc>>) -> Self {
        self.shared_crc = Some(crc);
        self
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match usize::try_from(n).ok().and_then(|n| rest.get(..n)) {
            Some(bytes) => {
                self.pos += bytes.len();
                Ok(bytes)
            }
            None => Err(eof(self.pos as u64, n - rest.len() as u64, what)),
        }
    }
}

impl<'a> Input<'a> for SliceInput<'a> {
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }

    #[inline]
    fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(eof(self.pos as u64, 1, what)),
        }
    }

    #[inline]
    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn read_bytes(&mut self, n: u64, what: &'static str) -> Result<Cow<'a, [u8]>> {
        self.take(n, what).map(Cow::Borrowed)
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        self.take(n, what).map(drop)
    }

    fn checksum(&self) -> u64 {
        match self.shared_crc.as_ref().and_then(|c| c.lock().ok()) {
            Some(mut crc) => crc.upto(self.data, self.pos),
            None => Crc64::checksum(&self.data[..self.pos]),
        }
    }
}

/// A stream read through a buffer, checksummed as it is consumed so nothing has to be kept.
pub struct StreamInput<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Offset of `buf[0]` in the stream.
    base: u64,
    crc: Crc64,
    /// Bytes of `buf[..crc_upto]` are already in `crc`.
    crc_upto: usize,
    io_error: Option<String>,
}

const STREAM_BUF: usize = 256 * 1024;
/// Large reads grow their buffer as bytes arrive, never by the declared length.
const GROW_STEP: u64 = 1 << 20;

impl<R: Read> StreamInput<R> {
    pub fn new(inner: R) -> Self {
        StreamInput {
            inner,
            buf: vec![0; STREAM_BUF],
            start: 0,
            end: 0,
            base: 0,
            crc: Crc64::new(),
            crc_upto: 0,
            io_error: None,
        }
    }

    /// The I/O error that ended the stream early, if one did (reported apart from format errors).
    pub fn io_error(&self) -> Option<&str> {
        self.io_error.as_deref()
    }

    /// Makes at least `n` (≤ buffer size) bytes available; false at end of stream.
    fn fill(&mut self, n: usize) -> bool {
        if self.end - self.start >= n {
            return true;
        }
        self.compact();
        while self.end - self.start < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return false,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.io_error = Some(e.to_string());
                    return false;
                }
            }
        }
        true
    }

    /// Checksums the consumed bytes and moves the unconsumed ones to the front.
    fn compact(&mut self) {
        self.crc.update(&self.buf[self.crc_upto..self.start]);
        self.buf.copy_within(self.start..self.end, 0);
        self.base += self.start as u64;
        self.end -= self.start;
        self.start = 0;
        self.crc_upto = 0;
    }

    fn consume(&mut self, n: usize) -> &[u8] {
        let s = self.start;
        self.start += n;
        &self.buf[s..s + n]
    }

    /// Reads `n` bytes of which any may be beyond the buffer; `sink` sees them in pieces.
    fn stream_out(
        &mut self,
        n: u64,
        what: &'static str,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<()> {
        let start_pos = self.pos();
        let mut left = n;
        while left > 0 {
            if self.end == self.start && !self.fill(1) {
                return Err(eof(self.pos(), left, what).with_start(start_pos));
            }
            let k = left.min((self.end - self.start) as u64) as usize;
            let piece = self.consume(k);
            sink(piece);
            left -= k as u64;
        }
        Ok(())
    }
}

impl Error {
    /// Reports a short read at the offset where the item began, which is what a reader of the
    /// message wants to look at.
    fn with_start(mut self, start: u64) -> Self {
        self.offset = start;
        self
    }
}

impl<'a, R: Read> Input<'a> for StreamInput<R> {
    fn pos(&self) -> u64 {
        self.base + self.start as u64
    }

    fn remaining(&self) -> Option<u64> {
        None
    }

    fn read_u8(&mut self, what: &'static str) -> Result<u8> {
        if !self.fill(1) {
            return Err(eof(self.pos(), 1, what));
        }
        Ok(self.consume(1)[0])
    }

    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        if !self.fill(N) {
            let have = (self.end - self.start) as u64;
            return Err(eof(self.pos(), N as u64 - have, what));
        }
        let mut out = [0u8; N];
        out.copy_from_slice(self.consume(N));
        Ok(out)
    }

    fn read_bytes(&mut self, n: u64, what: &'static str) -> Result<Cow<'a, [u8]>> {
        let mut out = Vec::with_capacity(n.min(GROW_STEP) as usize);
        self.stream_out(n, what, |piece| out.extend_from_slice(piece))?;
        Ok(Cow::Owned(out))
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        self.stream_out(n, what, |_| {})
    }

    fn checksum(&self) -> u64 {
        let mut crc = self.crc.clone();
        crc.update(&self.buf[self.crc_upto..self.start]);
        crc.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out 1..=3 bytes per call, to exercise every refill path.
    struct Trickle<'d> {
        data: &'d [u8],
        n: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.n = self.n % 3 + 1;
            let k = self.n.min(buf.len()).min(self.data.len());
            buf[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    #[test]
    fn stream_and_slice_agree() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
        let mut s = StreamInput::new(Trickle { data: &data, n: 0 });
        let mut m = SliceInput::new(&data);
        assert_eq!(s.read_u8("x").unwrap(), m.read_u8("x").unwrap());
        assert_eq!(
            s.read_array::<5>("x").unwrap(),
            m.read_array::<5>("x").unwrap()
        );
        assert_eq!(
            s.read_bytes(900, "x").unwrap(),
            m.read_bytes(900, "x").unwrap()
        );
        s.skip(100, "x").unwrap();
        m.skip(100, "x").unwrap();
        assert_eq!(s.pos(), m.pos());
        assert_eq!(s.checksum(), Crc64::checksum(&data[..1006]));
        assert_eq!(m.checksum(), s.checksum());
        let err = s.read_bytes(5000, "blob").unwrap_err();
        assert_eq!(err.offset, 1006);
        assert_eq!(
            err.kind,
            ErrorKind::UnexpectedEof {
                need: 4006,
                what: "blob"
            }
        );
        let err = m.read_bytes(5000, "blob").unwrap_err();
        assert_eq!(err.offset, 1006);
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating() {
        let mut m = SliceInput::new(b"abc");
        let err = m.read_bytes(1 << 40, "string").unwrap_err();
        assert!(matches!(err.kind, ErrorKind::UnexpectedEof { .. }));
        let mut s = StreamInput::new(&b"abc"[..]);
        assert!(s.read_bytes(u64::MAX, "string").is_err());
    }
}
