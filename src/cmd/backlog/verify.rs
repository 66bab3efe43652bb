//! `rdbtool backlog verify DIR`: a capture checked end to end.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use rdbtool::backlog::check::{self, EpochCheck};
use rdbtool::backlog::store::{Capture, Start};
use rdbtool::scan::ordered;
use rdbtool::verify::Verdict;

use super::super::{Outcome, count, iec};

/// Check a capture: every segment's record checksums, offsets that continue without a gap
/// across segments, the RESP framing of every command, and each snapshot by the RDB verifier.
#[derive(clap::Args)]
pub struct Args {
    /// The capture directory (`backlog capture --out DIR`).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let capture = Capture::open(&args.dir)?;
    let workers = ordered::workers_for(1);
    let checks = check::check(&capture, workers)?;
    let worst = checks
        .iter()
        .map(EpochCheck::verdict)
        .max()
        .unwrap_or(Verdict::Good);
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "ok": worst == Verdict::Good,
                "dir": args.dir,
                "source": capture.source,
                "epochs": checks,
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Format::Text => {
            for c in &checks {
                write_epoch(c, out)?;
            }
            let verdict = if worst == Verdict::Good { "OK" } else { "FAIL" };
            let epochs = count(checks.len() as u64, "epoch");
            writeln!(
                out,
                "{verdict} {}: {epochs} from {}",
                args.dir.display(),
                capture.source
            )?;
        }
    }
    Ok(match worst {
        Verdict::Good => Outcome::Clean,
        Verdict::Problems => Outcome::Problems(Vec::new()),
        Verdict::Unreadable => Outcome::Unfinished(Vec::new()),
    })
}

fn write_epoch(c: &EpochCheck, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(r) = &c.snapshot {
        super::super::verify::write_text(r, false, out)?;
    }
    for p in &c.problems {
        writeln!(out, "error epoch {}: {p}", c.epoch)?;
    }
    for n in &c.notices {
        writeln!(out, "notice epoch {}: {n}", c.epoch)?;
    }
    let how = match c.start_kind {
        Start::Full => format!("full resync at offset {}", c.psync_offset),
        Start::Backlog => format!("backlog from offset {}", c.psync_offset + 1),
    };
    let range = match c.end >= c.start {
        true => format!("offsets {}–{}", c.start, c.end),
        false => "no stream yet".to_string(),
    };
    writeln!(
        out,
        "epoch {} ({how}, replid {}): {range}, {}, {}, {} in {}",
        c.epoch,
        c.replid,
        count(c.segments as u64, "segment"),
        count(c.records, "record"),
        count(c.commands, "command"),
        iec(c.bytes),
    )?;
    Ok(())
}
