//! An AOF: RESP commands one after the other (`*N\r\n$len\r\narg\r\n...`), with `#...` annotation
//! lines (Redis 7 timestamps), possibly after an RDB preamble.

use super::unit::header;

/// One command of the log: where it starts, its encoded bytes and its arguments.
#[derive(Debug)]
pub struct AofCommand<'a> {
    pub offset: u64,
    pub raw: &'a [u8],
    pub args: Vec<&'a [u8]>,
}

/// The database a `SELECT` command names (None when it names none).
pub fn select_db(cmd: &AofCommand<'_>) -> Option<u64> {
    std::str::from_utf8(cmd.args.get(1)?).ok()?.parse().ok()
}

/// The commands of `data[start..]`, in order; a malformed one ends the walk with an error
/// naming its offset.
pub struct Commands<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Commands<'a> {
    pub fn new(data: &'a [u8], start: usize) -> Self {
        Commands { data, pos: start }
    }

    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn command(&self) -> Result<(AofCommand<'a>, usize), String> {
        let d = self.data;
        let start = self.pos;
        let bad = |what: &str| format!("offset {start}: {what}");
        let (n, mut pos) =
            header(d, start, b'*').ok_or_else(|| bad("expected a RESP array (*N)"))?;
        if n == 0 || n > (d.len() - start) as u64 {
            return Err(bad(&format!("implausible argument count {n}")));
        }
        let mut args = Vec::new();
        for i in 0..n {
            let (len, at) = header(d, pos, b'$')
                .ok_or_else(|| bad(&format!("argument {i}: expected a bulk string ($len)")))?;
            let end = at
                .checked_add(len as usize)
                .filter(|&e| e + 2 <= d.len() && &d[e..e + 2] == b"\r\n")
                .ok_or_else(|| {
                    bad(&format!(
                        "argument {i}: {} not followed by CRLF (truncated?)",
                        crate::text::count(len, "byte")
                    ))
                })?;
            args.push(&d[at..end]);
            pos = end + 2;
        }
        let cmd = AofCommand {
            offset: start as u64,
            raw: &d[start..pos],
            args,
        };
        Ok((cmd, pos))
    }
}

impl<'a> Iterator for Commands<'a> {
    type Item = Result<AofCommand<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.data.get(self.pos) == Some(&b'#') {
            let line = &self.data[self.pos..];
            self.pos += memchr::memchr(b'\n', line).map_or(line.len(), |i| i + 1);
        }
        if self.pos >= self.data.len() {
            return None;
        }
        match self.command() {
            Ok((cmd, next)) => {
                self.pos = next;
                Some(Ok(cmd))
            }
            Err(e) => {
                self.pos = self.data.len();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commands_and_skips_annotations() {
        let log = b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let cmds: Vec<_> = Commands::new(log, 0).collect::<Result<_, _>>().unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[1].args, [&b"SET"[..], b"k", b""]);
        assert_eq!(cmds[0].offset, 16);
        let truncated = &log[..log.len() - 3];
        let last = Commands::new(truncated, 0).last().unwrap();
        let at = format!("offset {}:", cmds[1].offset);
        assert!(last.unwrap_err().starts_with(&at));
    }
}
