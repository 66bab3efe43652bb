//! `rdbtool backlog size DIR --disconnect 60s`: the `repl-backlog-size` a replica
//! disconnected that long needs, from the capture's peak, with the arithmetic shown.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};

use rdbtool::backlog::sizing::{self, REDIS_DEFAULT, Sizing, VALKEY_DEFAULT};
use rdbtool::backlog::store::Capture;
use rdbtool::text::utc_date;

use super::super::{Outcome, iec, thousands};
use super::inspect::Format;

/// The repl-backlog-size that lets a replica disconnected for DURATION still resync partially
/// at the capture's peak: the most the stream grew in any window that long, plus headroom;
/// and how long the master's configured size would have covered at the peak.
#[derive(clap::Args)]
pub struct Args {
    /// The capture directory (`backlog capture --out DIR`).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// How long a replica stays disconnected: whole seconds, as `90s`, `5m`, `1h`.
    #[arg(long, value_name = "DURATION", value_parser = super::super::args::duration)]
    disconnect: std::time::Duration,
    /// The size to measure against the peak, in bytes or as the server's config takes it
    /// (`1mb`, `512kb`); by default the one the capture recorded (capture.json).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    backlog_size: Option<u64>,
    /// Headroom over the peak in the suggested size, in percent.
    #[arg(long, default_value_t = 25, value_name = "PERCENT")]
    headroom: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `N`, `Nkb`, `Nmb`, `Ngb` (powers of 1024, as the server's config reads them; `k`, `m`
/// and `g` are powers of 1000).
fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(format!("bad size unit {unit:?}: use kb, mb or gb")),
    };
    n.checked_mul(scale)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad size {s:?}"))
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let ms = args.disconnect.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        bail!("--disconnect takes whole seconds (as 90s, 5m, 1h)");
    }
    let capture = Capture::open(&args.dir)?;
    let configured = match args.backlog_size {
        Some(n) => Some((n, "--backlog-size")),
        None => sizing::recorded(&capture).map(|n| (n, "capture.json")),
    };
    let s = sizing::size(&capture, (ms / 1000) as u64, args.headroom, configured)?;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &s)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&s, &args.dir, out)?,
    }
    let lines: Vec<String> = s
        .damage
        .iter()
        .map(|d| format!("{}: {d}", args.dir.display()))
        .collect();
    Ok(match lines.is_empty() {
        true => Outcome::Clean,
        false => Outcome::Problems(lines),
    })
}

/// `1,048,576 bytes (1.0 MiB)`.
fn bytes(n: u64) -> String {
    format!("{} bytes ({})", thousands(n), iec(n))
}

/// Microseconds as seconds: `3.25 s`.
fn secs(us: u64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

fn write_text(s: &Sizing, dir: &std::path::Path, out: &mut dyn Write) -> Result<()> {
    for line in s.damage.iter().chain(&s.torn) {
        writeln!(out, "notice: the stream read stops at {line}")?;
    }
    let (Some(first), Some(last)) = (s.first_us, s.last_us) else {
        writeln!(
            out,
            "{}: no stream recorded: nothing to size",
            dir.display()
        )?;
        return Ok(());
    };
    let w = s.window_seconds;
    writeln!(
        out,
        "{}: {} of stream from {} to {} ({} s)",
        dir.display(),
        bytes(s.bytes),
        utc_date(first / 1_000_000),
        utc_date(last / 1_000_000),
        s.span_seconds
    )?;
    if s.scaled {
        writeln!(
            out,
            "the capture spans {} s, less than the {w} s window: its rate over the whole span is scaled to the window, not measured",
            s.span_seconds
        )?;
        writeln!(
            out,
            "  {} / {} s × {w} s = {}",
            thousands(s.bytes),
            s.span_seconds,
            bytes(s.needed)
        )?;
    } else {
        let from = s.peak.bytes_from.map(utc_date).unwrap_or_default();
        writeln!(
            out,
            "peak over any {w} s (whole seconds): {} from {from}",
            bytes(s.peak.bytes)
        )?;
    }
    writeln!(
        out,
        "  = {}/s: a replica disconnected for {w} s at the peak misses {}",
        iec(s.bytes_per_second as u64),
        bytes(s.needed)
    )?;
    writeln!(
        out,
        "suggested repl-backlog-size: {} + {}% headroom, rounded up to whole MiB = {}mb ({} bytes)",
        thousands(s.needed),
        s.headroom_percent,
        s.suggested >> 20,
        thousands(s.suggested)
    )?;
    for (name, default) in [("Redis", REDIS_DEFAULT), ("Valkey 8+", VALKEY_DEFAULT)] {
        let enough = if default >= s.needed {
            "enough"
        } else {
            "not enough"
        };
        writeln!(
            out,
            "  {name}'s default ({}mb): {enough} for {w} s at this peak",
            default >> 20
        )?;
    }
    write_configured(s, out)
}

/// How long the configured size would have covered at the peak.
fn write_configured(s: &Sizing, out: &mut dyn Write) -> Result<()> {
    if let Some(c) = &s.configured {
        let which = c.default_of.map(|d| format!(", {d}")).unwrap_or_default();
        write!(
            out,
            "configured: {}, from {}{which}: ",
            bytes(c.bytes),
            c.from
        )?;
        match (c.covered.micros, c.covered.from_us) {
            (Some(0), Some(from)) => writeln!(
                out,
                "at the peak one read of the link brought that much at once (at {}): any disconnection then would have needed a full resync",
                utc_date(from / 1_000_000)
            )?,
            (Some(us), Some(from)) => writeln!(
                out,
                "at the peak the stream grew by that much in {} (from {}): a longer disconnection then would have needed a full resync",
                secs(us),
                utc_date(from / 1_000_000)
            )?,
            _ if c.covered.cut => writeln!(
                out,
                "the stream never grew by that much within the last {} records of any run measured",
                thousands(rdbtool::backlog::window::MAX_RECORDS as u64)
            )?,
            _ => writeln!(
                out,
                "the stream never grew by that much in the whole capture ({} s)",
                s.span_seconds
            )?,
        }
    } else {
        writeln!(
            out,
            "configured: not recorded in the capture (give --backlog-size N to measure one)"
        )?;
    }
    Ok(())
}
