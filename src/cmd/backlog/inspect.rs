//! `rdbtool backlog inspect DIR`: what a capture's stream holds and how fast it grew, as
//! tables or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use rdbtool::backlog::report::{self, BacklogReport, Options, Traffic};
use rdbtool::backlog::store::Capture;
use rdbtool::backlog::window::Peak;
use rdbtool::text::utc_date;

use super::super::inspect::{shown_prefixes, table};
use super::super::inspect_aof::texts;
use super::super::{Outcome, count, iec, thousands};

/// Report on a capture's stream: bytes and commands in total and per second, per database,
/// per command and per key prefix; the master's pings and REPLCONF GETACK, SELECT, MULTI and
/// EXEC apart from the writes; peak rates over 1 s, 10 s and 60 s windows; the largest
/// commands.
#[derive(clap::Args)]
pub struct Args {
    /// The capture directory (`backlog capture --out DIR`).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// How many of the largest commands to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Key prefix delimiter.
    #[arg(long, default_value_t = ':', value_name = "CHAR")]
    delimiter: char,
    /// Key prefix levels to aggregate.
    #[arg(long, default_value_t = 1, value_name = "N")]
    depth: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    Text,
    Json,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let delimiter = u8::try_from(args.delimiter).context("--delimiter must be one byte")?;
    let capture = Capture::open(&args.dir)?;
    let opts = Options {
        top: args.top,
        delimiter,
        depth: args.depth,
    };
    let r = report::inspect(&capture, &opts)?;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &r)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&r, &args.dir, out)?,
    }
    let damage: Vec<String> = r
        .epochs
        .iter()
        .filter(|e| e.damaged())
        .map(|e| {
            let what = e.problem.as_ref().or(e.fault.as_ref());
            let what = what.map_or("", String::as_str);
            format!("{}: epoch {}: {what}", args.dir.display(), e.epoch)
        })
        .collect();
    Ok(match damage.is_empty() {
        true => Outcome::Clean,
        false => Outcome::Problems(damage),
    })
}

fn write_text(r: &BacklogReport, dir: &std::path::Path, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "{}: {}, {}, {} in {}",
        dir.display(),
        r.source,
        count(r.epochs.len() as u64, "epoch"),
        count(r.commands, "command"),
        iec(r.bytes)
    )?;
    if let (Some(first), Some(last)) = (r.first_us, r.last_us) {
        writeln!(
            out,
            "arrived {} to {} ({}): {:.1} commands/s, {}/s on average",
            utc_date(first / 1_000_000),
            utc_date(last / 1_000_000),
            count(r.seconds, "second"),
            r.commands_per_second,
            iec(r.bytes_per_second as u64)
        )?;
    }
    let mut epochs = table(&["epoch", "first offset", "last offset", "commands", "bytes"]);
    for e in &r.epochs {
        epochs.add_row(vec![
            e.epoch.to_string(),
            thousands(e.start),
            thousands(e.end),
            thousands(e.commands),
            iec(e.bytes),
        ]);
    }
    writeln!(out, "\n{epochs}")?;
    for e in &r.epochs {
        if let Some(f) = &e.fault {
            let kind = if e.torn { "notice" } else { "error" };
            let torn = if e.torn { " (a torn last record)" } else { "" };
            writeln!(out, "{kind} epoch {}: {f}{torn}", e.epoch)?;
        }
        if let Some(p) = &e.problem {
            writeln!(out, "error epoch {}: {p}", e.epoch)?;
        }
    }
    write_traffic(r, out)?;
    write_peaks(&r.peaks, out)?;
    let mut names = table(&["command", "count", "bytes"]);
    for n in &r.by_name {
        names.add_row(vec![n.name.clone(), thousands(n.count), iec(n.bytes)]);
    }
    writeln!(out, "\n{names}")?;
    let mut dbs = table(&["db", "writes", "bytes"]);
    for d in &r.dbs {
        let db = d.db.map_or("?".into(), |d| d.to_string());
        dbs.add_row(vec![db, thousands(d.writes), iec(d.bytes)]);
    }
    writeln!(out, "\n{dbs}")?;
    write_prefixes(r, out)?;
    let mut largest = texts(&["epoch", "offset", "command", "key", "bytes"], &[2, 3]);
    for l in &r.largest {
        largest.add_row(vec![
            l.epoch.to_string(),
            thousands(l.offset),
            l.command.clone(),
            l.key.clone().unwrap_or_default(),
            iec(l.bytes),
        ]);
    }
    writeln!(out, "\nlargest commands\n{largest}")?;
    Ok(())
}

fn write_traffic(r: &BacklogReport, out: &mut dyn Write) -> Result<()> {
    let o = &r.overhead;
    let rows: [(&str, Traffic); 6] = [
        ("writes", r.writes),
        ("PING (the master's)", o.ping),
        ("REPLCONF GETACK", o.replconf_getack),
        ("SELECT", o.select),
        ("MULTI", o.multi),
        ("EXEC", o.exec),
    ];
    let mut t = texts(&["traffic", "commands", "bytes", "share of bytes"], &[0]);
    for (name, traffic) in rows {
        let share = traffic.bytes as f64 * 100.0 / r.bytes.max(1) as f64;
        t.add_row(vec![
            name.to_string(),
            thousands(traffic.count),
            iec(traffic.bytes),
            format!("{share:.1}%"),
        ]);
    }
    writeln!(out, "\n{t}")?;
    Ok(())
}

fn write_peaks(peaks: &[Peak], out: &mut dyn Write) -> Result<()> {
    let header = [
        "window",
        "most stream bytes",
        "bytes/s",
        "from (UTC)",
        "most writes",
        "writes/s",
        "from (UTC)",
    ];
    let mut t = texts(&header, &[3, 6]);
    let when = |s: Option<u64>| s.map(utc_date).unwrap_or_default();
    for p in peaks {
        t.add_row(vec![
            format!("{} s", p.seconds),
            iec(p.bytes),
            iec(p.bytes / p.seconds),
            when(p.bytes_from),
            thousands(p.commands),
            format!("{:.1}", p.commands as f64 / p.seconds as f64),
            when(p.commands_from),
        ]);
    }
    writeln!(out, "\npeak rates (windows of whole seconds)\n{t}")?;
    Ok(())
}

fn write_prefixes(r: &BacklogReport, out: &mut dyn Write) -> Result<()> {
    let k = &r.keys;
    writeln!(
        out,
        "\nkeys written: {} ({}), {} without a key, {} without a prefix",
        count(k.writes, "write"),
        iec(k.bytes),
        count(k.writes_without_keys, "write"),
        thousands(k.writes_without_prefix)
    )?;
    if k.writes_outside_cap > 0 {
        writeln!(
            out,
            "  ({} prefixes kept per level; {} under others are in \"{}\")",
            thousands(k.prefixes_per_level as u64),
            count(k.writes_outside_cap, "key write"),
            report::OTHER
        )?;
    }
    let mut prefixes = texts(&["level", "prefix", "writes", "bytes"], &[1]);
    for p in shown_prefixes(&r.prefixes, |p| p.level) {
        prefixes.add_row(vec![
            p.level.to_string(),
            p.prefix.clone(),
            thousands(p.writes),
            iec(p.bytes),
        ]);
    }
    writeln!(out, "\n{prefixes}")?;
    Ok(())
}
