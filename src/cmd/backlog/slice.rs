//! `rdbtool backlog slice`: the commands a replica at an offset is missing, from a capture.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};

use rdbtool::backlog::slice::{self, SliceError};
use rdbtool::backlog::store::Capture;

use super::super::{Outcome, count};

/// The commands a replica at OFFSET is missing (the stream from OFFSET + 1), to apply on their
/// own: RESP with the database selected first and transactions whole, or JSON Lines rows
/// (offset, db, arrival time, command, arguments). The master's `ping` and `REPLCONF` are
/// left out.
#[derive(clap::Args)]
pub struct Args {
    /// The capture directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The replica's offset (its `master_repl_offset`: the last byte it processed).
    #[arg(long, value_name = "OFFSET")]
    from: u64,
    /// Stop after the last command that ends at or before this offset (a transaction it cuts
    /// is left out whole).
    #[arg(long, value_name = "OFFSET")]
    to: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Resp)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Resp,
    Jsonl,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let capture = Capture::open(&args.dir)?;
    // The latest history that holds the byte after the replica's.
    let Some(epoch) = capture
        .epochs
        .iter()
        .rev()
        .find(|e| e.meta.start <= args.from + 1)
    else {
        match capture.epochs.first() {
            Some(e) => bail!(SliceError::Before {
                from: args.from,
                start: e.meta.start
            }),
            None => bail!("{}: the capture holds no stream yet", args.dir.display()),
        }
    };
    let json = args.format == Format::Jsonl;
    let sliced = match slice::slice(epoch, args.from, args.to, json, out) {
        Ok(s) => s,
        Err(e @ SliceError::Damaged(_)) => {
            return Ok(Outcome::problem(format!("{}: {e}", args.dir.display())));
        }
        Err(e) => bail!("{}: {e}", args.dir.display()),
    };
    let range = match sliced.end >= sliced.first {
        true => format!("offsets {}–{}", sliced.first, sliced.end),
        false => "nothing: the replica is up to date".to_string(),
    };
    eprintln!(
        "rdbtool: slice of epoch {}: {range}, {}; the master's own pings and REPLCONFs left out: {}",
        epoch.meta.epoch,
        count(sliced.commands, "command"),
        sliced.link_traffic,
    );
    if let Some(at) = sliced.open_transaction {
        eprintln!(
            "rdbtool: notice: the transaction from offset {at} was cut by the slice's end: left out whole"
        );
    }
    Ok(Outcome::Clean)
}
