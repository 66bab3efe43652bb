//! `rdbtool backlog capture`: act as a replica of a master and keep what it sends — the
//! snapshot and the command stream — as a checked log in a directory.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use rdbtool::backlog::capture::{self, Options, Status, Stopped, Summary};
use rdbtool::backlog::store::Capture;
use rdbtool::text::{mask_url, thousands};

use super::super::args::{CommonArgs, TlsArgs, duration};
use super::super::{Outcome, count, iec};

/// Capture a master's replication stream: connect as a replica (`PSYNC`), keep the snapshot
/// it sends and then every command, acking about once a second; `--continue` goes on where a
/// capture stopped.
#[derive(clap::Args)]
pub struct Args {
    /// The master: `redis://[user:pass@]host:port` or `rediss://…` (the password may come from
    /// REDISCLI_AUTH). With --continue, the capture's own source by default.
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// A new capture directory (must not exist, or be empty).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Go on with the capture in DIR: `PSYNC <replid> <end + 1>`; a master that cannot continue
    /// starts a new epoch in the same directory (and says why).
    #[arg(long = "continue", value_name = "DIR", conflicts_with_all = ["out", "from_backlog"])]
    resume: Option<PathBuf>,
    /// No snapshot: the stream from the oldest byte the master's backlog holds.
    #[arg(long)]
    from_backlog: bool,
    /// Stop after this long (`30s`, `5m`, `1h`; a bare number is seconds). Default: until
    /// Ctrl-C or the master closes the link.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    duration: Option<Duration>,
    /// Stop once this many bytes of stream were kept.
    #[arg(long, value_name = "BYTES")]
    max_bytes: Option<u64>,
    /// Segment files roll at about this size.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(4096..))]
    segment_size: u64,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let dir = args
        .out
        .clone()
        .or(args.resume.clone())
        .expect("clap requires one");
    let url = match (&args.url, &args.resume) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => Capture::open(dir)?.source,
        (None, None) => bail!("the master's URL is needed for a new capture"),
    };
    let tls = args.tls.tls()?;
    let opts = Options {
        url,
        tls,
        dir: dir.clone(),
        resume: args.resume.is_some(),
        from_backlog: args.from_backlog,
        duration: args.duration,
        max_bytes: args.max_bytes,
        segment_limit: args.segment_size,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let line = args.common.progress().line();
    let mut status = |s: &Status| {
        if let Some(l) = &line {
            l.set_message(status_line(s));
        }
    };
    // How the run began is said at once (flushed): a capture killed later has said it.
    let mut begun = |s: &Summary| {
        let _ = write_start(s, &mut *out).and_then(|_| out.flush());
    };
    let stopped = || stop.load(Ordering::SeqCst);
    let summary =
        capture::capture(&opts, &stopped, &mut begun, &mut status).with_context(|| {
            format!(
                "capturing from {} into {}",
                mask_url(&opts.url),
                dir.display()
            )
        })?;
    if let Some(l) = line {
        l.finish_and_clear();
    }
    write_summary(&summary, &dir, out)?;
    Ok(match summary.stopped {
        Stopped::Link(why) => Outcome::unfinished(format!(
            "the link to the master failed at offset {}: {why}; `rdbtool backlog capture --continue {}` goes on",
            summary.end,
            dir.display()
        )),
        _ => Outcome::Clean,
    })
}

fn status_line(s: &Status) -> String {
    let lag = match s.master_offset {
        Some(m) => format!(", lag {}", iec(m.saturating_sub(s.offset))),
        None => String::new(),
    };
    format!("offset {}, {} kept{lag}", thousands(s.offset), iec(s.kept))
}

/// What reopening the capture mended, and the master's answer to the `PSYNC`.
fn write_start(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(r) = &s.recovery {
        if let Some((segment, at, bytes)) = &r.torn {
            writeln!(
                out,
                "cut a torn last record: {segment}, {} from byte {at}",
                count(*bytes, "byte")
            )?;
        }
        if let Some(epoch) = r.abandoned {
            writeln!(
                out,
                "removed epoch {epoch}: its snapshot never finished arriving"
            )?;
        }
    }
    if let Some((epoch, why)) = &s.new_epoch {
        writeln!(out, "epoch {epoch}: {why}")?;
    }
    if let Some(from) = s.continued_from {
        writeln!(out, "continued (+CONTINUE) from offset {from}")?;
    }
    Ok(())
}

fn write_summary(s: &Summary, dir: &std::path::Path, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(bytes) = s.snapshot_bytes {
        writeln!(out, "snapshot: {}", iec(bytes))?;
    }
    let why = match &s.stopped {
        Stopped::Duration => "its duration was up".to_string(),
        Stopped::MaxBytes => "--max-bytes was reached".to_string(),
        Stopped::Interrupted => "interrupted".to_string(),
        Stopped::Link(why) => format!("the link failed: {why}"),
    };
    let kept = s.end + 1 - s.first;
    let range = match kept {
        0 => "no stream".to_string(),
        _ => format!("offsets {}–{}", s.first, s.end),
    };
    writeln!(
        out,
        "captured {range} ({}, {}) into {}; stopped: {why}",
        iec(kept),
        count(s.commands, "command"),
        dir.display()
    )?;
    if let Some(m) = s.master_offset {
        writeln!(
            out,
            "master_repl_offset {m} when last asked; largest lag {}",
            iec(s.max_lag)
        )?;
    }
    Ok(())
}
