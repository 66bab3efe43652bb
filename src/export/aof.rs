//! An AOF (or a slice of it, see [`crate::aof::slice`]) as JSON Lines, one row per command,
//! or as RESP, the commands' own bytes with `SELECT`s re-established. An RDB base or preamble
//! goes first, as `export` writes an RDB file, when the slice starts at the log's start.

use std::io::{self, Write};

use super::json::{write_bytes, write_int};
use super::{Format, Options, Summary};
use crate::aof::input::{AofInput, Error};
use crate::aof::slice::{KeyFinder, Pos, Selection, Sink, Slicer, time_at};
use crate::rdb::SliceInput;
use crate::resp::parse::Cmd;

/// What an AOF export wrote.
#[derive(Debug, Default, Clone)]
pub struct AofSummary {
    /// Commands of the log kept, and left out by the selection (SELECT, MULTI and EXEC
    /// aside: the slice makes its own).
    pub kept: u64,
    pub left_out: u64,
    /// Commands written (with the SELECTs, MULTIs and EXECs of the slice).
    pub written: u64,
    /// Transactions the log left open at the end of a file: not written (nor applied by a
    /// server loading it).
    pub open_transactions: u64,
    /// The RDB base's export, if it went along.
    pub base: Option<Summary>,
}

/// Exports `input`: its RDB base (by `opts`, its filter being the selection's) when
/// `sel.keeps_base()`, then the kept commands in `opts.format` (JSON Lines or RESP).
pub fn export(
    input: &AofInput,
    sel: &Selection,
    opts: &Options,
    out: &mut dyn Write,
) -> Result<AofSummary, Error> {
    let mut summary = AofSummary::default();
    if let Some(part) = input.parts.iter().find(|p| p.rdb)
        && sel.keeps_base()
    {
        let data = &part.data()[..part.resp_start];
        let mut release = |pos: u64| part.map.release(0, pos as usize);
        let base =
            super::export(SliceInput::new(data), opts, out, &mut release).map_err(|e| match e {
                super::Error::Rdb(source) => Error::Rdb {
                    path: part.path.clone(),
                    what: "base",
                    source: Box::new(source),
                },
                super::Error::Io(e) => Error::Output(e),
            })?;
        summary.base = Some(base);
    }
    let mut writer = Writer {
        out,
        json: opts.format != Format::Resp,
        names: input
            .parts
            .iter()
            .map(|p| p.name.clone())
            .filter(|_| input.files.manifest.is_some())
            .collect(),
        written: 0,
    };
    let mut finder = KeyFinder::default();
    let mut slicer = Slicer::default();
    // Commands before the log's first #TS count as one second before it (see time_at).
    let mut ts = match sel.by_time() {
        true => time_at(&input.commands(), 0),
        false => None,
    };
    for (i, part) in input.parts.iter().enumerate() {
        let data = part.data();
        ts = input.walk(i, ts, |logged, at| {
            let keep = sel.keeps_logged(&mut finder, at.global, logged);
            if logged.kind == crate::aof::log::Kind::Data {
                match keep {
                    true => summary.kept += 1,
                    false => summary.left_out += 1,
                }
            }
            slicer.feed(data, logged, at, keep, &mut writer)
        })?;
        slicer.end_part();
    }
    summary.written = writer.written;
    summary.open_transactions = slicer.open_at_end;
    Ok(summary)
}

/// Writes the slice: RESP (the source's bytes, SELECT encoded) or a JSON row per command.
struct Writer<'o> {
    out: &'o mut dyn Write,
    json: bool,
    /// The files' names, for a multi-part AOF (a single file's rows name none).
    names: Vec<String>,
    written: u64,
}

impl Sink for Writer<'_> {
    type Error = io::Error;

    fn select(&mut self, db: u64) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        self.written += 1;
        let db = itoa::Buffer::new().format(db).as_bytes().to_vec();
        self.out.write_all(&crate::resp::encode(&[b"SELECT", &db]))
    }

    fn command(&mut self, cmd: &Cmd<'_>, db: u64, ts: Option<u64>, at: Pos) -> io::Result<()> {
        self.written += 1;
        if !self.json {
            return self.out.write_all(cmd.raw);
        }
        let out = &mut *self.out;
        out.write_all(b"{\"db\":")?;
        write_int(out, db)?;
        out.write_all(b",\"offset\":")?;
        write_int(out, at.global)?;
        if let Some(name) = self.names.get(at.part) {
            out.write_all(b",\"file\":")?;
            write_bytes(out, name.as_bytes())?;
            out.write_all(b",\"file_offset\":")?;
            write_int(out, at.offset)?;
        }
        if let Some(ts) = ts {
            out.write_all(b",\"ts\":")?;
            write_int(out, ts)?;
        }
        write_command(out, cmd)
    }
}

/// A JSON Lines row's last fields, after the caller's: `,"command":"SET","args":[…]}` and the
/// line end; the name in upper case, the arguments binary-safe.
pub fn write_command(out: &mut dyn Write, cmd: &Cmd<'_>) -> io::Result<()> {
    out.write_all(b",\"command\":")?;
    write_bytes(out, &cmd.name().to_ascii_uppercase())?;
    out.write_all(b",\"args\":[")?;
    for (i, arg) in cmd.args().skip(1).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_bytes(out, arg)?;
    }
    out.write_all(b"]}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode;

    fn options() -> Options {
        Options {
            format: Format::Resp,
            restore: false,
            target: Default::default(),
            batch: crate::export::commands::Batch {
                elements: 1000,
                bytes: 1 << 20,
            },
            restore_max: 1 << 29,
            filter: Default::default(),
            keep_expired: true,
            now_ms: 0,
            no_ttl: false,
            restore_replace: false,
            lossy: false,
            functions: false,
        }
    }

    /// Commands before the log's first #TS (here in the base and at the start of the incr
    /// file) count as one second before it.
    #[test]
    fn commands_before_the_first_annotation_come_just_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("a.manifest"),
            "file a.1.base.aof seq 1 type b\nfile a.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        std::fs::write(p.join("a.1.base.aof"), encode(&[b"SET", b"a", b"1"])).unwrap();
        let incr = [
            encode(&[b"SET", b"b", b"1"]),
            b"#TS:100\r\n".to_vec(),
            encode(&[b"SET", b"c", b"1"]),
        ]
        .concat();
        std::fs::write(p.join("a.1.incr.aof"), incr).unwrap();
        let input = AofInput::open(p).unwrap();
        let sliced = |since: Option<u64>, until: Option<u64>| {
            let sel = Selection {
                since,
                until,
                ..Default::default()
            };
            let mut out = Vec::new();
            let s = export(&input, &sel, &options(), &mut out).unwrap();
            (s.kept, s.left_out)
        };
        assert_eq!(sliced(None, Some(99)), (2, 1));
        assert_eq!(sliced(None, Some(98)), (0, 3));
        assert_eq!(sliced(Some(100), None), (1, 2));
        assert_eq!(sliced(None, None), (3, 0));
    }
}
