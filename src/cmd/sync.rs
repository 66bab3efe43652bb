//! `rdbtool sync`: keep a standalone target in step with a master (a full sync, then the
//! command stream, exactly once, resumable from a checkpoint).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

use rdbtool::replay::checkpoint;
use rdbtool::sync::{self, Options, Status, Summary};
use rdbtool::text::{mask_url, thousands};

use super::args::{CommonArgs, TlsArgs};
use super::{Outcome, count, iec};

pub const MORE: &str = "\
How it works:
  A full sync (the master's snapshot replayed into the target), then the master's command
  stream applied in order, in batches. Each batch is one MULTI/EXEC on the target that also
  sets the key rdbtool-progress:<run> to the offset it reaches: the key says exactly how far
  the target holds the stream, so no command is applied twice or skipped across a killed
  sync, a lost link or a restarted target. The master is acked, and the checkpoint written,
  only with offsets the target holds. A restart with the same --checkpoint asks the master to
  continue (PSYNC) after that offset; when it cannot, it says why and syncs in full again
  (or stops with --no-full-resync).

Exit status:
  0  stopped by Ctrl-C, everything received applied up to the offset said
  1  the same, but the target refused some keys of the snapshot or commands of the stream
     (counted, the first ones shown in the summary)
  2  a server could not be reached or refused what the sync needs, the checkpoint could not
     be written, or --no-full-resync and the master cannot continue

Examples:
  Keep a server in another datacenter in step, resumable:
    rdbtool sync --from redis://dc1:6379 --to redis://dc2:6379 --checkpoint sync.json
  Go on after a stop, never with a new full sync, the figures in a file each second:
    rdbtool sync --from redis://dc1:6379 --to redis://dc2:6379 --checkpoint sync.json \\
      --no-full-resync --status status.json
";

/// Keep a standalone target in step with a master: a full sync, then its command stream
/// applied exactly once, resumable from a checkpoint; until Ctrl-C.
#[derive(clap::Args)]
pub struct Args {
    /// The master: `redis://[user:pass@]host:port` or `rediss://…`.
    #[arg(long, value_name = "URL")]
    from: String,
    /// The target (standalone): `redis://[user:pass@]host:port[/db]`; with a database, every
    /// key goes there (as `replay` puts them), and the progress key too.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Where the sync keeps its place (replid, run id, offset); a restart with it goes on.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Stop (exit 2) rather than sync in full again when the master cannot continue.
    #[arg(long)]
    no_full_resync: bool,
    /// Write the figures (offset, lag, commands/s...) as JSON into FILE each second.
    #[arg(long, value_name = "FILE")]
    status: Option<PathBuf>,
    /// Commands per batch (a source transaction is never split).
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pipeline: u64,
    /// How long the target or the source's link may fail before the sync gives up.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    retry_timeout: f64,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    for (flag, url) in [("--from", &args.from), ("--to", &args.to)] {
        rdbtool::text::check_url(url)
            .map_err(|why| anyhow::anyhow!("{flag} {}: {why}", mask_url(url)))?;
    }
    let tls = args.tls.tls()?;
    let opts = Options {
        from: args.from.clone(),
        to: args.to.clone(),
        tls,
        checkpoint: checkpoint::prepare(&args.checkpoint)?,
        no_full_resync: args.no_full_resync,
        retry_timeout: Duration::from_secs_f64(args.retry_timeout.max(0.0)),
        pipeline: usize::try_from(args.pipeline).unwrap_or(usize::MAX),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let line = args.common.progress().line();
    let mut status_error = None;
    let mut status = |s: &Status| {
        if let Some(l) = &line {
            l.set_message(status_line(s));
        }
        if let Some(path) = &args.status
            && let Err(e) = checkpoint::save_json(s, path)
        {
            status_error.get_or_insert(format!("--status {}: {e}", path.display()));
        }
    };
    let result = sync::run(&opts, &|| stop.load(Ordering::SeqCst), &mut status);
    if let Some(l) = line {
        l.finish_and_clear();
    }
    let summary = result
        .with_context(|| format!("sync {} -> {}", mask_url(&opts.from), mask_url(&opts.to)))?;
    write_summary(&summary, out)?;
    for n in &summary.notices {
        eprintln!("rdbtool: notice: {n}");
    }
    Ok(match status_error {
        Some(e) => Outcome::unfinished(e),
        None if summary.errors + summary.snapshot_failed > 0 => Outcome::Problems(Vec::new()),
        None => Outcome::Clean,
    })
}

fn status_line(s: &Status) -> String {
    let lag = match s.lag_bytes {
        Some(l) => format!(", lag {}", iec(l)),
        None => String::new(),
    };
    format!(
        "offset {}{lag}, {} commands/s, {} errors",
        thousands(s.offset),
        thousands(s.commands_per_sec as u64),
        thousands(s.errors)
    )
}

fn write_summary(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "run {:x}, replid {}", s.run_id, s.replid)?;
    match s.resumed_at {
        Some(at) => writeln!(out, "resumed after offset {}", thousands(at))?,
        None => writeln!(out, "started with a full sync")?,
    }
    if s.full_syncs > 0 {
        writeln!(
            out,
            "{}: snapshot {}, {} replayed, {} refused",
            count(s.full_syncs, "full sync"),
            iec(s.snapshot_bytes),
            count(s.snapshot_keys, "key"),
            thousands(s.snapshot_failed)
        )?;
    }
    writeln!(
        out,
        "{} of the stream applied in {}, {} answered with an error; {} continued by PSYNC",
        count(s.commands, "command"),
        count(s.batches, "batch"),
        thousands(s.errors),
        count(s.continued, "link")
    )?;
    for e in &s.error_samples {
        writeln!(out, "  error: {e}")?;
    }
    let lag = match s.master_offset {
        Some(m) => format!(
            ", the source at {} (lag {}, largest {})",
            thousands(m),
            iec(m.saturating_sub(s.offset)),
            iec(s.max_lag)
        ),
        None => String::new(),
    };
    writeln!(
        out,
        "the target holds the stream up to offset {}{lag}",
        thousands(s.offset)
    )
}
