//! `backlog slice`: the commands a replica at offset X is missing — the stream from X + 1 — as
//! RESP that applies on its own (the database selected first, transactions whole, the
//! master's `ping` and `REPLCONF` left out) or as JSON Lines rows.

use std::io::{self, Write};
use std::ops::ControlFlow;

use super::store::Epoch;
use super::stream::{self, is_link_traffic};
use crate::aof::log::Kind;
use crate::export::json::write_int;

/// What a slice wrote.
#[derive(Debug, Default)]
pub struct Sliced {
    /// The offsets of the stream the slice covers: its first byte, and the last byte of the
    /// last command in it (`first - 1` when it is empty).
    pub first: u64,
    pub end: u64,
    /// Commands written (SELECT, MULTI, EXEC included), and the master's own traffic left out.
    pub commands: u64,
    pub link_traffic: u64,
    /// A transaction the slice's end cut (its MULTI's offset): left out whole.
    pub open_transaction: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error(
        "the capture's stream starts at offset {start}: a replica at offset {from} needs bytes it does not hold"
    )]
    Before { from: u64, start: u64 },
    #[error(
        "the capture's stream ends at offset {end}: nothing is known after it (asked for a replica at {from})"
    )]
    After { from: u64, end: u64 },
    #[error(
        "offset {first} is not where a command starts (the next one starts at {next}): a replica's offset always is"
    )]
    InsideCommand { first: u64, next: u64 },
    #[error(
        "offset {first} is inside a transaction: a replica applies MULTI … EXEC whole, so its offset is before the MULTI or after the EXEC"
    )]
    InsideTransaction { first: u64 },
    #[error("the capture is damaged: {0} (see backlog verify)")]
    Damaged(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes the commands of `epoch` after `replica_offset` up to the one ending at or before
/// `to`, as RESP or (`json`) JSON Lines.
pub fn slice(
    epoch: &Epoch,
    replica_offset: u64,
    to: Option<u64>,
    json: bool,
    out: &mut dyn Write,
) -> Result<Sliced, SliceError> {
    let first = replica_offset + 1;
    if first < epoch.meta.start {
        let start = epoch.meta.start;
        return Err(SliceError::Before {
            from: replica_offset,
            start,
        });
    }
    let mut w = SliceWriter {
        out,
        json,
        sliced: Sliced {
            first,
            end: replica_offset,
            ..Default::default()
        },
        db: None,
        txn: None,
        started: false,
    };
    let mut failed = None;
    let (reach, problem) = stream::commands(epoch, Some(first), &mut |cmd| match w
        .command(&cmd, first, to)
    {
        Ok(true) => ControlFlow::Continue(()),
        Ok(false) => ControlFlow::Break(()),
        Err(e) => {
            failed = Some(e);
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(p) = problem {
        return Err(SliceError::Damaged(p.to_string()));
    }
    if let Some(f) = reach.fault.filter(|f| !f.torn) {
        return Err(SliceError::Damaged(f.to_string()));
    }
    if replica_offset > reach.end {
        return Err(SliceError::After {
            from: replica_offset,
            end: reach.end,
        });
    }
    w.sliced.open_transaction = w.txn.map(|(at, _)| at);
    Ok(w.sliced)
}

struct SliceWriter<'o> {
    out: &'o mut dyn Write,
    json: bool,
    sliced: Sliced,
    /// The database the output has selected.
    db: Option<u64>,
    /// An open transaction: its MULTI's offset and its bytes (RESP or rows) until EXEC.
    txn: Option<(u64, Vec<u8>)>,
    started: bool,
}

impl SliceWriter<'_> {
    /// One command of the stream; false once past `to`.
    fn command(
        &mut self,
        cmd: &stream::StreamCmd<'_, '_>,
        first: u64,
        to: Option<u64>,
    ) -> Result<bool, SliceError> {
        let logged = cmd.logged;
        let c = &logged.cmd;
        if !self.started {
            if c.offset != first {
                return Err(SliceError::InsideCommand {
                    first,
                    next: c.offset,
                });
            }
            if logged.multi.is_some() && logged.kind != Kind::Multi {
                return Err(SliceError::InsideTransaction { first });
            }
            self.started = true;
        }
        let end = c.offset + c.raw.len() as u64 - 1;
        if to.is_some_and(|t| end > t) {
            return Ok(false);
        }
        if is_link_traffic(logged) {
            self.sliced.link_traffic += 1;
            return Ok(true);
        }
        match logged.kind {
            Kind::Select => self.select(cmd.db)?,
            Kind::Multi => {
                self.select(cmd.db)?;
                self.txn = Some((c.offset, Vec::new()));
                self.emit(cmd)?;
            }
            Kind::Exec => {
                self.emit(cmd)?;
                if let Some((_, bytes)) = self.txn.take() {
                    self.out.write_all(&bytes)?;
                    self.sliced.end = end;
                }
            }
            _ => {
                self.select(cmd.db)?;
                self.emit(cmd)?;
                if self.txn.is_none() {
                    self.sliced.end = end;
                }
            }
        }
        Ok(true)
    }

    /// The output selects `db` if it is known and not selected already (RESP only: rows name
    /// their database).
    fn select(&mut self, db: Option<u64>) -> io::Result<()> {
        let Some(db) = db.filter(|&d| Some(d) != self.db) else {
            return Ok(());
        };
        self.db = Some(db);
        if self.json {
            return Ok(());
        }
        self.sliced.commands += 1;
        let n = itoa::Buffer::new().format(db).as_bytes().to_vec();
        let select = crate::resp::encode(&[b"SELECT", &n]);
        match &mut self.txn {
            Some((_, held)) => held.write_all(&select),
            None => self.out.write_all(&select),
        }
    }

    fn emit(&mut self, cmd: &stream::StreamCmd<'_, '_>) -> io::Result<()> {
        self.sliced.commands += 1;
        let mut row = Vec::new();
        let bytes: &[u8] = match self.json {
            false => cmd.logged.cmd.raw,
            true => {
                row.extend_from_slice(b"{\"offset\":");
                write_int(&mut row, cmd.logged.cmd.offset)?;
                if let Some(db) = cmd.db {
                    row.extend_from_slice(b",\"db\":");
                    write_int(&mut row, db)?;
                }
                row.extend_from_slice(b",\"time_us\":");
                write_int(&mut row, cmd.time_us)?;
                crate::export::aof::write_command(&mut row, &cmd.logged.cmd)?;
                &row
            }
        };
        match &mut self.txn {
            Some((_, held)) => held.write_all(bytes),
            None => self.out.write_all(bytes),
        }
    }
}
