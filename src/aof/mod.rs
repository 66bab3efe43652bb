//! The append-only file: its commands, read with their offsets by `resp::parse`.
//!
//! An AOF: RESP commands one after the other (`*N\r\n$len\r\narg\r\n...`), with `#...` annotation
//! lines (Redis 7 timestamps), possibly after an RDB preamble; since Redis 7.0 split into a
//! base and incr files listed by a manifest ([`files`], [`manifest`]). [`table`] knows each
//! release's commands.

pub mod check;
pub mod emulate;
pub mod files;
pub mod input;
pub mod log;
pub mod manifest;
pub mod repair;
pub mod sketch;
pub mod slice;
pub mod table;

use crate::release::Release;
use crate::resp::parse::{Item, Slice};

/// A plain AOF starts with `*` or an annotation; an RDB (or an AOF with RDB preamble) with
/// `REDIS`/`VALKEY`.
pub fn is_aof(data: &[u8]) -> bool {
    matches!(data.first(), Some(b'*' | b'#'))
}

/// The release that wrote an RDB (an AOF's preamble or base), from its `valkey-ver` or
/// `redis-ver` AUX field.
pub fn writer_release(rdb: &[u8]) -> Option<Release> {
    let mut reader = crate::rdb::Reader::from_slice(rdb).ok()?;
    let mut found = None;
    while let Some(Ok(rec)) = reader.next_record() {
        let crate::rdb::Record::Aux { key, value } = rec.record else {
            break;
        };
        let valkey = match &key[..] {
            b"valkey-ver" => true,
            b"redis-ver" if found.is_none() => false,
            _ => continue,
        };
        let text = std::str::from_utf8(&value).ok()?;
        if let Some(release) = Release::version(valkey, text) {
            found = Some(release);
        }
    }
    found
}

/// Where the RDB data at the start of `data` (an AOF's preamble or base) ends, after its
/// checksum: read record by record, values skipped by their framing.
pub fn rdb_end(data: &[u8]) -> Result<usize, crate::rdb::Error> {
    use crate::rdb::{Error, ErrorKind, Reader, Record};
    let mut reader = Reader::from_slice(data)?;
    while let Some(rec) = reader.next_record() {
        match rec?.record {
            Record::Key { .. } => {
                reader.skip_value()?;
            }
            Record::Eof { .. } => return Ok(reader.pos() as usize),
            _ => {}
        }
    }
    let kind = ErrorKind::UnexpectedEof {
        need: 1,
        what: "the RDB data's EOF record",
    };
    Err(Error::new(reader.pos(), kind))
}

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

/// The commands of `data[start..]`, in order, annotations skipped; a malformed or truncated
/// one ends the walk with an error naming its offset.
pub struct Commands<'a> {
    data: &'a [u8],
    items: Slice<'a>,
}

impl<'a> Commands<'a> {
    pub fn new(data: &'a [u8], start: usize) -> Self {
        let rest = data.get(start..).unwrap_or_default();
        Commands {
            data,
            items: Slice::new(rest, start as u64),
        }
    }

    /// Where the next command (or annotation) starts.
    pub fn pos(&self) -> u64 {
        self.items.offset()
    }
}

impl<'a> Iterator for Commands<'a> {
    type Item = Result<AofCommand<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let cmd = match self.items.next_item()? {
                Ok(Item::Annotation { .. }) => continue,
                Ok(Item::Command(cmd)) => cmd,
                Err(problem) => return Some(Err(problem.to_string())),
            };
            let at = cmd.offset as usize;
            let raw = &self.data[at..at + cmd.raw.len()];
            let args = cmd.arg_ranges().iter().map(|r| &raw[r.clone()]).collect();
            return Some(Ok(AofCommand {
                offset: cmd.offset,
                raw,
                args,
            }));
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
