//! `rdbtool backlog psync-check`: the master's answer to a replica's `PSYNC`, decided by
//! [`rdbtool::backlog::psync`] from a saved `INFO replication` of each side (or values given
//! as options, which win over the files'), shown in words and numbers or as JSON.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use rdbtool::backlog::psync::{self, Answer, Decision, Info, Master, Request};

use crate::cmd::Outcome;

/// `--help`'s and the man page's exit status and examples (see `cli.rs`).
pub const MORE: &str = "\
Exit status:
  0  CONTINUE: the replica gets a partial resync
  1  FULLRESYNC (or NOMASTERLINK: the master, itself a replica without its link, refuses now)
  2  an input could not be read, a field is missing, or bad usage

Examples:
  Will a replica that reconnects now resync partially?
    redis-cli -h master INFO replication > master.txt
    redis-cli -h replica INFO replication > replica.txt
    rdbtool backlog psync-check --master-info master.txt --replica-info replica.txt
  The same for a replica that has processed up to offset 5000000, master INFO on stdin:
    redis-cli -h master INFO replication | rdbtool backlog psync-check --master-info - --replica-replid 8c9c5a0b1e5e0a7f1d4c3b2a190807060504030a --replica-offset 5000000
  Everything as options, the answer as JSON:
    rdbtool backlog psync-check --master-replid ID --master-replid2 ID2 --master-repl-offset 90000 --second-repl-offset -1 --repl-backlog-active 1 --repl-backlog-first-byte-offset 73617 --repl-backlog-histlen 16384 --replica-replid ID --psync-offset 80001 --format json
";

#[derive(clap::Args)]
pub struct Args {
    /// The master's saved `INFO replication` (or whole `INFO`) output; `-` for standard input.
    #[arg(long, value_name = "FILE")]
    master_info: Option<PathBuf>,
    /// A replica's saved `INFO replication`: it asks `PSYNC <its master_replid>
    /// <its master_repl_offset + 1>`, as a server's replica does. `-` for standard input.
    #[arg(long, value_name = "FILE")]
    replica_info: Option<PathBuf>,
    #[command(flatten)]
    master: MasterFields,
    /// The replid the replica asks for (`?` forces a full resync).
    #[arg(long, value_name = "ID")]
    replica_replid: Option<String>,
    /// The last offset the replica processed: it asks for the next byte, X + 1.
    #[arg(long, value_name = "X", allow_hyphen_values = true)]
    replica_offset: Option<i64>,
    /// The offset in the PSYNC itself (the first byte wanted), as a replica sends it.
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        conflicts_with = "replica_offset"
    )]
    psync_offset: Option<i64>,
    /// The answer as words and numbers, or as one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The master's `INFO replication` fields, one option each, named as in INFO.
#[derive(clap::Args)]
struct MasterFields {
    /// The master's master_replid.
    #[arg(long, value_name = "ID")]
    master_replid: Option<String>,
    /// Its master_replid2 (the replid before its last promotion).
    #[arg(long, value_name = "ID")]
    master_replid2: Option<String>,
    /// Its master_repl_offset.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    master_repl_offset: Option<String>,
    /// Its second_repl_offset (up to which master_replid2 is good; -1: none).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    second_repl_offset: Option<String>,
    /// Its repl_backlog_active (0 or 1).
    #[arg(long, value_name = "0|1")]
    repl_backlog_active: Option<String>,
    /// Its repl_backlog_size (shown only: the server decides by what the backlog holds).
    #[arg(long, value_name = "BYTES")]
    repl_backlog_size: Option<String>,
    /// Its repl_backlog_first_byte_offset.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    repl_backlog_first_byte_offset: Option<String>,
    /// Its repl_backlog_histlen.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    repl_backlog_histlen: Option<String>,
}

impl MasterFields {
    fn given(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("master_replid", &self.master_replid),
            ("master_replid2", &self.master_replid2),
            ("master_repl_offset", &self.master_repl_offset),
            ("second_repl_offset", &self.second_repl_offset),
            ("repl_backlog_active", &self.repl_backlog_active),
            ("repl_backlog_size", &self.repl_backlog_size),
            (
                "repl_backlog_first_byte_offset",
                &self.repl_backlog_first_byte_offset,
            ),
            ("repl_backlog_histlen", &self.repl_backlog_histlen),
        ]
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let stdin = [&args.master_info, &args.replica_info]
        .into_iter()
        .flatten()
        .filter(|p| super::super::files::is_stdin(p))
        .count();
    if stdin > 1 {
        bail!("only one of --master-info and --replica-info can be standard input (-)");
    }
    let master = master(&args)?;
    let (request, replica_offset) = request(&args)?;
    let decision = psync::decide(&master, &request);
    match args.format {
        Format::Text => write_text(out, &master, &request, replica_offset, &decision)?,
        Format::Json => {
            let doc = view(&master, &request, replica_offset, &decision);
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
    }
    Ok(match decision.answer {
        Answer::Continue { .. } => Outcome::Clean,
        Answer::FullResync | Answer::Refused => Outcome::Problems(Vec::new()),
    })
}

/// The whole text of a saved INFO output, or an empty one when none is given.
fn read_info(path: Option<&Path>) -> Result<(Info, String)> {
    let Some(path) = path else {
        return Ok((Info::default(), "the options".into()));
    };
    let mut text = String::new();
    let name = path.display().to_string();
    match super::super::files::is_stdin(path) {
        true => std::io::stdin().read_to_string(&mut text),
        false => std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)),
    }
    .with_context(|| name.clone())?;
    Ok((Info::parse(&text), name))
}

fn master(args: &Args) -> Result<Master> {
    let (mut info, name) = read_info(args.master_info.as_deref())?;
    for (field, value) in args.master.given() {
        if let Some(value) = value {
            info.set(field, value);
        }
    }
    Master::from_info(&info).map_err(|e| match e {
        psync::FieldError::Missing { field } => anyhow::anyhow!(
            "{name}: the master's {field} is missing (give --master-info FILE or --{})",
            field.replace('_', "-")
        ),
        e => anyhow::anyhow!("{name}: the master's {e}"),
    })
}

/// What the replica asks, and the offset it had processed when known.
fn request(args: &Args) -> Result<(Request, Option<i64>)> {
    let from_file = match &args.replica_info {
        Some(path) => {
            let (info, name) = read_info(Some(path))?;
            let request = Request::from_replica_info(&info)
                .with_context(|| format!("{name}: the replica's INFO replication"))?;
            Some(request)
        }
        None => None,
    };
    let replid = args
        .replica_replid
        .clone()
        .or(from_file.as_ref().map(|r| r.replid.clone()));
    let Some(replid) = replid else {
        bail!("the replica's replid: give --replica-info FILE or --replica-replid ID");
    };
    let (offset, processed) = match (args.psync_offset, args.replica_offset, &from_file) {
        (Some(n), ..) => (n, None),
        (None, Some(x), _) => (x.saturating_add(1), Some(x)),
        (None, None, Some(r)) => (r.offset, Some(r.offset.saturating_sub(1))),
        (None, None, None) => bail!(
            "the replica's offset: give --replica-info FILE, --replica-offset X or --psync-offset N"
        ),
    };
    Ok((Request { replid, offset }, processed))
}

fn write_text(
    out: &mut dyn Write,
    master: &Master,
    request: &Request,
    processed: Option<i64>,
    d: &Decision,
) -> Result<()> {
    let answer = match d.answer {
        Answer::Continue { bytes } => {
            format!("CONTINUE: the master sends {bytes} bytes of backlog")
        }
        Answer::FullResync => "FULLRESYNC: the master sends a new snapshot".into(),
        Answer::Refused => "NOMASTERLINK: the master refuses the PSYNC for now".into(),
    };
    writeln!(out, "{answer}")?;
    let asked = match processed {
        Some(x) => format!(" (the replica processed up to {x} and asks for the next byte)"),
        None => String::new(),
    };
    writeln!(
        out,
        "  replica asks: PSYNC {} {}{asked}",
        request.replid, request.offset
    )?;
    writeln!(out, "  master:       {}", describe(master))?;
    writeln!(out, "  rule {}: {}", d.rule.id(), d.reason)?;
    writeln!(out, "  {}", d.arithmetic)?;
    Ok(())
}

fn describe(m: &Master) -> String {
    let backlog = match m.backlog {
        Some(b) => {
            let size = match m.backlog_size {
                // Redis 7.0+ and Valkey trim their backlog by whole blocks.
                Some(s) if b.histlen > s => format!(", more than repl_backlog_size {s}"),
                Some(s) => format!(", repl_backlog_size {s}"),
                None => String::new(),
            };
            let (first, last) = (b.first_byte_offset, b.end() - 1);
            match b.histlen {
                0 => format!("backlog empty, its next byte {first}{size}"),
                n => format!("backlog holds offsets {first}..{last} ({n} bytes{size})"),
            }
        }
        None => "no backlog".into(),
    };
    format!(
        "replid {}, replid2 {} (good up to {}), offset {}, {backlog}",
        m.replid, m.replid2, m.second_repl_offset, m.repl_offset
    )
}

fn view(m: &Master, request: &Request, processed: Option<i64>, d: &Decision) -> serde_json::Value {
    let (answer, bytes) = match d.answer {
        Answer::Continue { bytes } => ("CONTINUE", Some(bytes)),
        Answer::FullResync => ("FULLRESYNC", None),
        Answer::Refused => ("NOMASTERLINK", None),
    };
    json!({
        "answer": answer,
        "bytes": bytes,
        "rule": d.rule.id(),
        "reason": d.reason,
        "arithmetic": d.arithmetic,
        "request": {
            "replid": request.replid,
            "offset": request.offset,
            "replica_offset": processed,
        },
        "master": {
            "replid": m.replid,
            "replid2": m.replid2,
            "repl_offset": m.repl_offset,
            "second_repl_offset": m.second_repl_offset,
            "backlog_active": m.backlog.is_some(),
            "backlog_size": m.backlog_size,
            "backlog_first_byte_offset": m.backlog.map(|b| b.first_byte_offset),
            "backlog_histlen": m.backlog.map(|b| b.histlen),
        },
    })
}
