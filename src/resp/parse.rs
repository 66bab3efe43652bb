//! Reading RESP commands with their byte offsets: the commands of an AOF, of a replication
//! stream or of a pipelined batch, from a slice (a mapped file) or from a byte stream (a pipe,
//! a socket).
//!
//! A command is an array of bulk strings (`*N\r\n$len\r\narg\r\n...`); an AOF may also hold
//! annotation lines (`#TS:1700000000\r\n`) between commands. The parser tells an input that
//! ends inside a command ([`Problem::Truncated`], what a crash leaves at the tail of a log)
//! from bytes that are not RESP at all ([`Problem::Malformed`], damage), and never allocates
//! by a length the input claims: arguments are ranges into the bytes actually read.

use std::io::{self, Read};
use std::ops::Range;

/// Why the bytes at an offset are not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The input ends inside the command that starts at `offset`.
    #[error("offset {offset}: the input ends inside a command")]
    Truncated { offset: u64 },
    /// At `offset` the bytes are not what a command has there.
    #[error("offset {offset}: {what}")]
    Malformed { offset: u64, what: Malformed },
}

impl Problem {
    /// Where the command that cannot be read starts (`Truncated`) or where the bad bytes are.
    pub fn offset(&self) -> u64 {
        match *self {
            Problem::Truncated { offset } | Problem::Malformed { offset, .. } => offset,
        }
    }

    fn shifted(self, by: u64) -> Problem {
        match self {
            Problem::Truncated { offset } => Problem::Truncated {
                offset: offset + by,
            },
            Problem::Malformed { offset, what } => Problem::Malformed {
                offset: offset + by,
                what,
            },
        }
    }
}

/// What was wrong with malformed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("expected a command (a RESP array, `*`)")]
    NotArray,
    #[error("an argument count that is not a positive decimal number")]
    BadCount,
    #[error("expected an argument (a RESP bulk string, `$`)")]
    NotBulk,
    #[error("an argument length that is not a decimal number")]
    BadLength,
    #[error("a header line not ended by CRLF")]
    HeaderEnd,
    #[error("an argument not followed by CRLF")]
    ArgumentEnd,
}

/// Most digits a count or length may have: larger numbers are refused, as the server refuses
/// them, before any arithmetic can overflow.
const DIGITS: usize = 18;

/// One piece of the input: a command, or an annotation line.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Command(Cmd<'a>),
    /// A `#...` line between commands (an AOF's timestamps), without its line end.
    Annotation {
        offset: u64,
        text: &'a [u8],
    },
}

/// A command as read: where it starts, its bytes as encoded, and its arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Cmd<'a> {
    pub offset: u64,
    pub raw: &'a [u8],
    args: &'a [Range<usize>],
}

impl<'a> Cmd<'a> {
    /// The arguments, the command's name first.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        self.args.iter().map(|r| &self.raw[r.clone()])
    }

    pub fn arg(&self, i: usize) -> Option<&'a [u8]> {
        self.args.get(i).map(|r| &self.raw[r.clone()])
    }

    /// The name, as sent (any case).
    pub fn name(&self) -> &'a [u8] {
        self.arg(0).unwrap_or_default()
    }

    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Where each argument lies in [`Cmd::raw`].
    pub fn arg_ranges(&self) -> &'a [Range<usize>] {
        self.args
    }
}

/// Reads the command at `buf[0..]`: its length, its arguments left in `args` as ranges of
/// `buf`. Offsets in a problem are relative to `buf`.
pub fn command(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<usize, Problem> {
    args.clear();
    let (n, mut pos) = header(buf, 0, b'*', Malformed::NotArray, Malformed::BadCount)?;
    if n == 0 {
        return Err(Problem::Malformed {
            offset: 1,
            what: Malformed::BadCount,
        });
    }
    for _ in 0..n {
        let (len, start) = header(buf, pos, b'$', Malformed::NotBulk, Malformed::BadLength)?;
        // `len` has at most 18 digits, so this cannot overflow.
        let end = start + len as usize;
        match buf.get(end..end + 2) {
            Some(b"\r\n") => {}
            Some(_) => {
                return Err(Problem::Malformed {
                    offset: end as u64,
                    what: Malformed::ArgumentEnd,
                });
            }
            None if buf.len() > end && buf[end] != b'\r' => {
                return Err(Problem::Malformed {
                    offset: end as u64,
                    what: Malformed::ArgumentEnd,
                });
            }
            None => return Err(Problem::Truncated { offset: 0 }),
        }
        args.push(start..end);
        pos = end + 2;
    }
    Ok(pos)
}

/// `<tag><digits>\r\n` at `pos`: the number and where what follows starts.
fn header(
    buf: &[u8],
    pos: usize,
    tag: u8,
    not_tag: Malformed,
    bad_number: Malformed,
) -> Result<(u64, usize), Problem> {
    let truncated = Problem::Truncated { offset: 0 };
    let malformed = |at: usize, what| Problem::Malformed {
        offset: at as u64,
        what,
    };
    match buf.get(pos) {
        None => return Err(truncated),
        Some(&b) if b != tag => return Err(malformed(pos, not_tag)),
        Some(_) => {}
    }
    let digits_at = pos + 1;
    let line = &buf[digits_at..buf.len().min(digits_at + DIGITS + 2)];
    let Some(len) = line.iter().position(|b| !b.is_ascii_digit()) else {
        return match line.len() > DIGITS {
            true => Err(malformed(digits_at, bad_number)),
            false => Err(truncated),
        };
    };
    if len == 0 || len > DIGITS {
        return Err(malformed(digits_at, bad_number));
    }
    match &line[len..] {
        [b'\r', b'\n', ..] => {}
        [b'\r'] => return Err(truncated),
        _ => return Err(malformed(digits_at + len, Malformed::HeaderEnd)),
    }
    let n = line[..len]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok((n, digits_at + len + 2))
}

/// What [`locate`] found at the start of a buffer.
#[derive(Clone, Copy)]
enum Found {
    /// An annotation line whose text (without its line end) is this long.
    Annotation(usize),
    /// A command, its arguments in `args`.
    Command,
}

/// The item at `buf[0..]` and its length, found without holding on to `buf`, so that a stream
/// can read more and look again.
fn locate(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<(Found, usize), Problem> {
    if buf.first() == Some(&b'#') {
        let nl = memchr::memchr(b'\n', buf).ok_or(Problem::Truncated { offset: 0 })?;
        let text = nl - usize::from(nl > 0 && buf[nl - 1] == b'\r');
        return Ok((Found::Annotation(text), nl + 1));
    }
    command(buf, args).map(|len| (Found::Command, len))
}

/// The item `locate` found: `bytes` are its whole length, at `offset` in the input.
fn make<'b>(found: Found, bytes: &'b [u8], offset: u64, args: &'b [Range<usize>]) -> Item<'b> {
    match found {
        Found::Annotation(text) => Item::Annotation {
            offset,
            text: &bytes[..text],
        },
        Found::Command => Item::Command(Cmd {
            offset,
            raw: bytes,
            args,
        }),
    }
}

/// The items of a slice, in order. After a problem, the walk is over.
pub struct Slice<'a> {
    data: &'a [u8],
    pos: usize,
    /// The offset of `data[0]` in the whole input.
    base: u64,
    args: Vec<Range<usize>>,
}

impl<'a> Slice<'a> {
    /// The items of `data`, whose first byte is at `base` in the input.
    pub fn new(data: &'a [u8], base: u64) -> Self {
        Slice {
            data,
            pos: 0,
            base,
            args: Vec::new(),
        }
    }

    /// Where the next item starts, in the input's offsets.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The annotation line at the current position, if one is there and complete: its text
    /// (without the line end), kept as long as the slice's bytes.
    pub fn next_annotation(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        if rest.first() != Some(&b'#') {
            return None;
        }
        let nl = memchr::memchr(b'\n', rest)?;
        let text = nl - usize::from(nl > 0 && rest[nl - 1] == b'\r');
        self.pos += nl + 1;
        Some(&rest[..text])
    }

    /// The next item, or None at the end of the slice.
    pub fn next_item(&mut self) -> Option<Result<Item<'_>, Problem>> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let at = self.offset();
        match locate(rest, &mut self.args) {
            Ok((found, len)) => {
                self.pos += len;
                Some(Ok(make(found, &rest[..len], at, &self.args)))
            }
            Err(problem) => {
                self.pos = self.data.len();
                Some(Err(problem.shifted(at)))
            }
        }
    }
}

/// A failure reading a stream: the bytes, or reading them.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The items of a byte stream, in order. The buffer grows to the largest item read (as its
/// bytes arrive, never by a length the stream claims) and is reused.
pub struct Stream<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet handed out.
    start: usize,
    end: usize,
    /// The offset of `buf[0]` in the stream.
    base: u64,
    args: Vec<Range<usize>>,
    done: bool,
}

const FIRST_READ: usize = 64 << 10;

impl<R: Read> Stream<R> {
    /// The items of `inner`, whose next byte is at `offset` in the input.
    pub fn new(inner: R, offset: u64) -> Self {
        Stream {
            inner,
            buf: vec![0; FIRST_READ],
            start: 0,
            end: 0,
            base: offset,
            args: Vec::new(),
            done: false,
        }
    }

    /// Where the next item starts.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The next item; None at the end of the stream between items. A stream that ends inside
    /// an item gives [`Problem::Truncated`]. After an error, the walk is over.
    pub fn next_item(&mut self) -> Option<Result<Item<'_>, StreamError>> {
        if self.done {
            return None;
        }
        loop {
            let at = self.offset();
            match locate(&self.buf[self.start..self.end], &mut self.args) {
                Err(Problem::Truncated { .. }) => {}
                Err(problem) => {
                    self.done = true;
                    return Some(Err(problem.shifted(at).into()));
                }
                Ok((found, len)) => {
                    let bytes = &self.buf[self.start..self.start + len];
                    self.start += len;
                    return Some(Ok(make(found, bytes, at, &self.args)));
                }
            }
            match self.fill() {
                Ok(0) => {
                    self.done = true;
                    return match self.start == self.end {
                        true => None,
                        false => Some(Err(Problem::Truncated { offset: at }.into())),
                    };
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }

    /// Reads more after what is pending: moves the pending bytes to the front first, and
    /// doubles the buffer when they fill it.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";

    /// Every item of a slice, as (offset, description), then the problem if any.
    fn slice_items(data: &[u8]) -> (Vec<(u64, String)>, Option<Problem>) {
        let mut s = Slice::new(data, 100);
        let mut out = Vec::new();
        while let Some(item) = s.next_item() {
            match item {
                Ok(item) => out.push(describe(&item)),
                Err(p) => return (out, Some(p)),
            }
        }
        (out, None)
    }

    fn describe(item: &Item<'_>) -> (u64, String) {
        match item {
            Item::Annotation { offset, text } => (*offset, format!("# {}", text.escape_ascii())),
            Item::Command(c) => {
                let args: Vec<String> = c.args().map(|a| a.escape_ascii().to_string()).collect();
                (c.offset, args.join(" "))
            }
        }
    }

    /// A reader giving 1, 2, 3... bytes per call.
    struct Drip<'a>(&'a [u8], usize);

    impl Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn stream_items(data: &[u8]) -> (Vec<(u64, String)>, Option<Problem>) {
        let mut s = Stream::new(Drip(data, 0), 100);
        let mut out = Vec::new();
        while let Some(item) = s.next_item() {
            match item {
                Ok(item) => out.push(describe(&item)),
                Err(StreamError::Problem(p)) => return (out, Some(p)),
                Err(StreamError::Io(e)) => panic!("{e}"),
            }
        }
        (out, None)
    }

    #[test]
    fn reads_commands_and_annotations_with_offsets() {
        let (items, problem) = slice_items(LOG);
        assert_eq!(problem, None);
        assert_eq!(
            items,
            [
                (100, "# #TS:1700000000".to_string()),
                (116, "SELECT 0".to_string()),
                (139, "SET k ".to_string()),
            ]
        );
        assert_eq!(stream_items(LOG), (items, None));
    }

    #[test]
    fn every_cut_is_truncated_at_the_start_of_its_command() {
        for cut in 1..LOG.len() {
            let (items, problem) = slice_items(&LOG[..cut]);
            let complete = items.len();
            let expected = match cut {
                16 | 39 => None,
                _ => Some(Problem::Truncated {
                    offset: [100, 116, 139][complete],
                }),
            };
            assert_eq!(problem, expected, "cut at {cut}");
            assert_eq!(stream_items(&LOG[..cut]), (items, problem), "cut at {cut}");
        }
    }

    #[test]
    fn damage_is_malformed_at_the_bad_byte() {
        let cases: [(&[u8], u64, Malformed); 8] = [
            (b"+OK\r\n", 0, Malformed::NotArray),
            (b"*0\r\n", 1, Malformed::BadCount),
            (b"*-1\r\n", 1, Malformed::BadCount),
            (b"*1\r\n:1\r\n", 4, Malformed::NotBulk),
            (b"*1\r\n$x\r\n", 5, Malformed::BadLength),
            (b"*1\r\n$1\n", 6, Malformed::HeaderEnd),
            (b"*1\r\n$1\r\nab\r\n", 9, Malformed::ArgumentEnd),
            (b"*1\r\n$1234567890123456789\r\n", 5, Malformed::BadLength),
        ];
        for (bytes, offset, what) in cases {
            let expected = Problem::Malformed {
                offset: 100 + offset,
                what,
            };
            assert_eq!(slice_items(bytes), (vec![], Some(expected)), "{bytes:?}");
            assert_eq!(stream_items(bytes), (vec![], Some(expected)), "{bytes:?}");
        }
    }

    #[test]
    fn a_huge_claimed_length_is_truncation_without_allocating() {
        let bytes = b"*1\r\n$999999999999999999\r\nabc";
        let (items, problem) = stream_items(bytes);
        assert!(items.is_empty());
        assert_eq!(problem, Some(Problem::Truncated { offset: 100 }));
    }

    #[test]
    fn a_big_argument_grows_the_stream_buffer() {
        let big = vec![b'x'; FIRST_READ * 3 + 5];
        let encoded = crate::resp::encode(&[b"SET", b"k", &big]);
        let mut s = Stream::new(&encoded[..], 0);
        let Some(Ok(Item::Command(c))) = s.next_item() else {
            panic!("one command")
        };
        assert_eq!(c.arg(2), Some(&big[..]));
        assert_eq!(c.raw.len(), encoded.len());
        assert!(s.next_item().is_none());
    }
}
