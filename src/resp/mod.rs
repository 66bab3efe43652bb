//! RESP, the Redis protocol: encoding commands as arrays of bulk strings, the form `redis-cli
//! --pipe`, an AOF and a replica read.

pub mod parse;

use std::io::{self, Write};

use crate::rdb::{Elem, StreamId};

/// One whole command, encoded in a buffer of exactly its size.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let count = Prefixed::new(b'*', args.len());
    let size = count.len
        + args
            .iter()
            .map(|a| Prefixed::new(b'$', a.len()).len + a.len() + 2)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(count.bytes());
    for a in args {
        out.extend_from_slice(Prefixed::new(b'$', a.len()).bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    debug_assert_eq!(out.len(), size);
    out
}

/// A command of text arguments as RESP text, for tests.
#[cfg(test)]
pub fn text(args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8(encode(&args)).unwrap_or_default()
}

/// `*n\r\n` or `$n\r\n`: a header line of RESP, in one piece.
struct Prefixed {
    line: [u8; 24],
    len: usize,
}

impl Prefixed {
    fn new(kind: u8, n: usize) -> Self {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n).as_bytes();
        let mut line = [0u8; 24];
        line[0] = kind;
        line[1..1 + digits.len()].copy_from_slice(digits);
        line[1 + digits.len()..3 + digits.len()].copy_from_slice(b"\r\n");
        Prefixed {
            line,
            len: 3 + digits.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.line[..self.len]
    }
}

/// `head`'s arguments, one argument made of `parts`, then `tail`'s: one command, written
/// without copying the parts (a large value) into a buffer first.
pub fn write_around(
    out: &mut dyn Write,
    head: &Command,
    parts: &[&[u8]],
    tail: &Command,
) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.write_all(Prefixed::new(b'*', head.args + 1 + tail.args).bytes())?;
    out.write_all(&head.body)?;
    out.write_all(Prefixed::new(b'$', len).bytes())?;
    for p in parts {
        out.write_all(p)?;
    }
    out.write_all(b"\r\n")?;
    out.write_all(&tail.body)
}

/// One command being built. Arguments are encoded as they are added; the array header, which
/// needs the count, is written in front when the command is sent.
pub struct Command {
    body: Vec<u8>,
    args: usize,
}

thread_local! {
    /// Buffers of dropped commands, for the next ones: a command is built per key (and often
    /// several), and growing a fresh buffer each time cost a tenth of an export's time.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// At most this many buffers of at most this size are kept per thread.
const SPARE_BUFFERS: usize = 8;
const SPARE_CAPACITY: usize = 4 << 20;

impl Default for Command {
    fn default() -> Self {
        let body = SPARE
            .with_borrow_mut(|spare| spare.pop())
            .unwrap_or_else(|| Vec::with_capacity(256));
        Command { body, args: 0 }
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        if self.body.capacity() <= SPARE_CAPACITY {
            let mut body = std::mem::take(&mut self.body);
            body.clear();
            // Ignored when the thread is being torn down.
            let _ = SPARE.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_BUFFERS {
                    spare.push(body);
                }
            });
        }
    }
}

impl Command {
    pub fn new(name: &str) -> Self {
        let mut c = Command::default();
        c.arg(name.as_bytes());
        c
    }

    /// Starts over with a new command name, keeping the buffer.
    pub fn reset(&mut self, name: &str) -> &mut Self {
        self.body.clear();
        self.args = 0;
        self.arg(name.as_bytes())
    }

    #[inline]
    pub fn arg(&mut self, a: &[u8]) -> &mut Self {
        self.args += 1;
        let n = a.len();
        if n <= SMALL_ARG {
            // Most arguments are short: 64 bytes are appended, the whole `$n\r\n<a>\r\n` is
            // written into them with fixed-size moves, and the rest is cut off. That saves the
            // `memcpy` calls of appending the pieces (a tenth of an export's time). (Assembling
            // the block on the stack first stalls its copy on the narrow stores just made.)
            let start = self.body.len();
            self.body.extend_from_slice(&[0u8; 64]);
            let block = &mut self.body[start..];
            block[0] = b'$';
            let at = if n < 10 {
                block[1] = b'0' + n as u8;
                2
            } else {
                block[1] = b'0' + (n / 10) as u8;
                block[2] = b'0' + (n % 10) as u8;
                3
            };
            block[at..at + 2].copy_from_slice(b"\r\n");
            copy_short(&mut block[at + 2..], a);
            block[at + 2 + n..at + 4 + n].copy_from_slice(b"\r\n");
            self.body.truncate(start + at + 4 + n);
            return self;
        }
        let mut len = itoa::Buffer::new();
        let len = len.format(n).as_bytes();
        self.body.reserve(n + len.len() + 5);
        self.body.push(b'$');
        self.body.extend_from_slice(len);
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(a);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    pub fn arg_int(&mut self, i: i64) -> &mut Self {
        self.arg(itoa::Buffer::new().format(i).as_bytes())
    }

    pub fn arg_uint(&mut self, i: u64) -> &mut Self {
        self.arg(itoa::Buffer::new().format(i).as_bytes())
    }

    pub fn arg_id(&mut self, id: StreamId) -> &mut Self {
        id.with_text(|t| self.arg(t))
    }

    pub fn arg_elem(&mut self, e: Elem<'_>) -> &mut Self {
        e.with_bytes(|b| self.arg(b))
    }

    /// A score as ZADD reads it: shortest round-trip decimal, `inf` / `-inf`.
    pub fn arg_score(&mut self, score: f64) -> &mut Self {
        if score.is_infinite() {
            self.arg(if score > 0.0 { b"+inf" } else { b"-inf" })
        } else {
            with_score(score, |s| self.arg(s))
        }
    }

    /// Arguments so far, the name included.
    pub fn args(&self) -> usize {
        self.args
    }

    /// Encoded size so far, without the array header.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.args == 0
    }

    /// Puts the runs of arguments that start at these offsets (of [`Command::len`], ascending;
    /// the last run ends with the command) in the opposite order.
    pub fn reverse_runs(&mut self, starts: &[usize]) {
        let Some(&first) = starts.first() else {
            return;
        };
        let mut tail = Vec::with_capacity(self.body.len() - first);
        let mut end = self.body.len();
        for &start in starts.iter().rev() {
            tail.extend_from_slice(&self.body[start..end]);
            end = start;
        }
        self.body.truncate(first);
        self.body.extend_from_slice(&tail);
    }

    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(Prefixed::new(b'*', self.args).bytes())?;
        out.write_all(&self.body)
    }
}

/// Arguments up to this length are written by [`Command::arg`] into one 64-byte block.
const SMALL_ARG: usize = 48;

/// Copies `src` (at most 48 bytes) to the start of `dst` with a few fixed-size moves, which may
/// overlap each other (the way `memcpy` does it inside, without the call).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..n].copy_from_slice(&src[n - 4..]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..n].copy_from_slice(&src[n - 8..]);
        }
        16..=31 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..n].copy_from_slice(&src[n - 16..]);
        }
        _ => {
            dst[..32].copy_from_slice(&src[..32]);
            dst[n - 16..n].copy_from_slice(&src[n - 16..]);
        }
    }
}

/// The shortest decimal that reads back as the same double (`1`, `0.1`, `1e300`).
pub fn format_score(score: f64) -> String {
    with_score(score, |s| String::from_utf8_lossy(s).into_owned())
}

/// Runs `f` on [`format_score`]'s text, formatted on the stack.
pub fn with_score<R>(score: f64, f: impl FnOnce(&[u8]) -> R) -> R {
    if score == score.trunc() && score.abs() < 1e15 {
        return f(itoa::Buffer::new().format(score as i64).as_bytes());
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format(score).as_bytes();
    f(s.strip_suffix(b".0").unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_as_text() {
        for (ms, seq) in [(0, 0), (1_526_919_030_474, 55), (u64::MAX, u64::MAX)] {
            let id = StreamId { ms, seq };
            let mut c = Command::default();
            c.arg_id(id);
            let mut want = Command::default();
            want.arg(id.to_string().as_bytes());
            assert_eq!(c.body, want.body);
        }
    }

    #[test]
    fn encodes_bulk_arrays() {
        let mut c = Command::new("SET");
        c.arg(b"k").arg_int(-5);
        let mut out = Vec::new();
        c.write_to(&mut out).unwrap();
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n-5\r\n");
        c.reset("PING");
        assert_eq!(c.args(), 1);
    }

    #[test]
    fn arguments_of_every_short_length() {
        for n in 0..=SMALL_ARG + 2 {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            let mut c = Command::new("X");
            c.arg(&a).arg(b"z");
            let mut out = Vec::new();
            c.write_to(&mut out).unwrap();
            let want = format!(
                "*3\r\n$1\r\nX\r\n${n}\r\n{}\r\n$1\r\nz\r\n",
                String::from_utf8_lossy(&a)
            );
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn scores_round_trip() {
        for s in [
            0.0,
            1.0,
            -2.0,
            0.1,
            1.5e-7,
            1e300,
            123456789.125,
            -0.0,
            1e15,
            -3e16,
        ] {
            assert_eq!(format_score(s).parse::<f64>().unwrap(), s);
        }
        assert_eq!(format_score(3.0), "3");
        assert_eq!(format_score(0.25), "0.25");
    }
}
