//! `rdbtool aof …`: commands for append-only files. `aof repair` writes a repaired copy of an
//! AOF (a file, or a whole new `appendonlydir/` with its manifest) and says what it left out;
//! the input is never modified.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use rdbtool::aof::files::{AofFiles, Sniffed, sniff};
use rdbtool::aof::manifest::Manifest;
use rdbtool::aof::repair::{self, Dropped, Fate, Input, Plan, Until};
use rdbtool::scan::mapped::MappedFile;
use rdbtool::text::utc_date;

use super::{Outcome, count, thousands};

/// `--help`'s and the man pages' exit status and examples (see `cli.rs`).
pub const MORE: &str = "\
Exit status:
  0  the repaired copy was written (also when nothing had to be left out)
  1  the AOF has a problem cutting cannot mend (a damaged RDB base or preamble, a bad manifest)
  2  the input could not be read, the output exists or could not be written, or bad usage

Examples:
  A loadable copy of an AOF cut short by a crash:
    rdbtool aof repair appendonlydir -o appendonlydir.repaired
  The log as it was at a point in time (Unix seconds, by its #TS annotations):
    rdbtool aof repair appendonlydir -o restored --until-timestamp 1796650920
  Undo a FLUSHALL run at 14:02 (and any later one):
    rdbtool aof repair appendonlydir -o restored --drop 'FLUSHALL|FLUSHDB' --since 1796650920
";

/// Commands for append-only files (AOF).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write a repaired copy of an AOF: cut after its last whole command or transaction (before
    /// a truncated tail or damage), or earlier at a time or an offset, or with chosen commands
    /// left out. The input is never modified.
    #[command(after_long_help = MORE)]
    Repair(RepairArgs),
}

#[derive(clap::Args)]
struct RepairArgs {
    /// The AOF: a single file, an appendonlydir, or its manifest.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Where to write the copy: a file for a single file, a new directory (with its manifest)
    /// for an appendonlydir. It must not exist.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Keep exactly the commands whose time (the last #TS annotation before them) is at or
    /// before this Unix time: cut at the first annotation later than it.
    #[arg(long, value_name = "T", conflicts_with = "until_offset")]
    until_timestamp: Option<u64>,
    /// Keep the commands that end at or before this offset: N counts bytes across the files in
    /// load order (base first) as one log; FILE:N is an offset in that file of the manifest.
    /// A cut inside a transaction goes back to its MULTI.
    #[arg(long, value_name = "N|FILE:N")]
    until_offset: Option<String>,
    /// Leave out these commands wherever they are, e.g. 'FLUSHALL|FLUSHDB'; a MULTI … EXEC
    /// block left empty goes too.
    #[arg(long, value_name = "NAMES")]
    drop: Option<String>,
    /// With --drop: only those at or after this Unix time (by their #TS annotations).
    #[arg(long, value_name = "T", requires = "drop")]
    since: Option<u64>,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Command::Repair(args) => repair(args, out),
    }
}

fn repair(args: RepairArgs, out: &mut dyn Write) -> Result<Outcome> {
    super::files::refuse_stdout_as_input([args.path.as_path()])?;
    let drop = drop_names(args.drop.as_deref())?;
    let files = match AofFiles::open(&args.path) {
        Ok(files) => files,
        Err(e @ rdbtool::aof::files::OpenError::Io { .. }) => return Err(e.into()),
        Err(e) => {
            return Ok(Outcome::problem(format!(
                "{e}: a manifest repair cannot mend"
            )));
        }
    };
    let inputs: Vec<&Path> = std::iter::once(args.path.as_path())
        .chain(files.manifest.iter().map(|(m, _)| m.as_path()))
        .chain(files.parts.iter().map(|p| p.path.as_path()))
        .collect();
    super::files::refuse_input_as_output(&args.output, inputs.iter().copied())?;
    if args.output.exists() {
        bail!(
            "{} exists: refusing to write over it (name a new path)",
            args.output.display()
        );
    }
    let maps = files
        .parts
        .iter()
        .map(|p| MappedFile::open(&p.path).with_context(|| p.path.display().to_string()))
        .collect::<Result<Vec<_>>>()?;
    let mut parts = Vec::new();
    for (part, map) in files.parts.iter().zip(&maps) {
        let data = map.data();
        let name = part
            .entry
            .as_ref()
            .map_or(part.path.display().to_string(), |e| e.name.clone());
        let rdb_end = match sniff(&data[..data.len().min(16)]) {
            Sniffed::Rdb => match rdbtool::aof::rdb_end(data) {
                Ok(end) => end,
                Err(e) => {
                    return Ok(Outcome::problem(format!(
                        "{name}: offset {}: {}: its RDB data is damaged, which cutting the log cannot mend",
                        e.offset, e.kind
                    )));
                }
            },
            _ => 0,
        };
        parts.push(Input {
            name,
            data,
            rdb_end,
        });
    }
    let until = match (args.until_timestamp, &args.until_offset) {
        (Some(t), _) => Until::Timestamp(t),
        (None, Some(spec)) => offset(spec, &parts)?,
        (None, None) => Until::Damage,
    };
    let plan = Plan {
        until,
        drop,
        since: args.since,
    };
    let outcome = repair::plan(&parts, &plan).map_err(anyhow::Error::msg)?;
    write_copy(&args.output, &files, &parts, &outcome)?;
    for m in &maps {
        m.check_size()?;
    }
    report(out, &args.output, &files, &outcome)?;
    let by_time = args.since.is_some() || args.until_timestamp.is_some();
    if by_time && !outcome.timestamps {
        writeln!(
            out,
            "note: the log has no #TS annotations (written with aof-timestamp-enabled yes): there was no time to go by"
        )?;
    }
    Ok(Outcome::Clean)
}

/// `FLUSHALL|FLUSHDB` → lowercase names; the commands that shape the log cannot be dropped.
fn drop_names(spec: Option<&str>) -> Result<Vec<String>> {
    let Some(spec) = spec else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = spec
        .split('|')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        bail!("--drop {spec:?} names no command");
    }
    if let Some(n) = names
        .iter()
        .find(|n| matches!(n.as_str(), "multi" | "exec" | "select"))
    {
        bail!("--drop {n}: MULTI, EXEC and SELECT shape the log and cannot be dropped");
    }
    Ok(names)
}

/// `N` (across the files in load order) or `FILE:N`.
fn offset(spec: &str, parts: &[Input<'_>]) -> Result<Until> {
    let bad = || anyhow::anyhow!("--until-offset {spec:?}: expected N or FILE:N");
    if let Some((file, n)) = spec.rsplit_once(':') {
        let offset: u64 = n.parse().map_err(|_| bad())?;
        let Some(part) = parts.iter().position(|p| p.name == file) else {
            let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "--until-offset: no file {file:?} in the AOF ({})",
                names.join(", ")
            );
        };
        return Ok(Until::Offset { part, offset });
    }
    let mut n: u64 = spec.parse().map_err(|_| bad())?;
    for (part, p) in parts.iter().enumerate() {
        let len = p.data.len() as u64;
        if n <= len || part + 1 == parts.len() {
            return Ok(Until::Offset { part, offset: n });
        }
        n -= len;
    }
    Err(bad())
}

/// Writes the copy: a file, or a new directory with the kept files and a manifest listing
/// them (history files left out).
fn write_copy(
    output: &Path,
    files: &AofFiles,
    parts: &[Input<'_>],
    o: &repair::Outcome,
) -> Result<()> {
    let Some((manifest_path, _)) = &files.manifest else {
        return write_part(output, &parts[0], &o.fates[0]);
    };
    std::fs::create_dir(output).with_context(|| output.display().to_string())?;
    let written = (|| {
        let mut kept = Manifest::default();
        for ((part, input), fate) in files.parts.iter().zip(parts).zip(&o.fates) {
            let Some(entry) = &part.entry else { continue };
            if *fate != Fate::Dropped {
                write_part(&output.join(&entry.name), input, fate)?;
                kept.entries.push(entry.clone());
            }
        }
        let name = manifest_path.file_name().unwrap_or_default();
        let path = output.join(name);
        std::fs::write(&path, kept.to_string()).with_context(|| path.display().to_string())
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(output);
    }
    written
}

fn write_part(path: &Path, input: &Input<'_>, fate: &Fate) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| path.display().to_string())?;
    let mut w = std::io::BufWriter::new(file);
    let whole = std::iter::once(0..input.data.len());
    let ranges: Box<dyn Iterator<Item = std::ops::Range<usize>>> = match fate {
        Fate::Rewritten(ranges) => Box::new(ranges.iter().cloned()),
        _ => Box::new(whole),
    };
    for r in ranges {
        w.write_all(&input.data[r])
            .with_context(|| path.display().to_string())?;
    }
    w.flush().with_context(|| path.display().to_string())?;
    Ok(())
}

/// What was written, and exactly what was left out.
fn report(out: &mut dyn Write, output: &Path, files: &AofFiles, o: &repair::Outcome) -> Result<()> {
    if let Some((file, at, why)) = &o.cut {
        writeln!(out, "cut: {file} at offset {at}: {why}")?;
    }
    let d = &o.dropped;
    if d.bytes == 0 {
        writeln!(out, "nothing to leave out: the copy holds the whole log")?;
    } else {
        writeln!(out, "dropped: {}", dropped(d))?;
    }
    let left: Vec<String> = files
        .parts
        .iter()
        .zip(&o.fates)
        .filter(|(_, f)| **f == Fate::Dropped)
        .filter_map(|(p, _)| p.entry.as_ref().map(|e| e.name.clone()))
        .collect();
    if !left.is_empty() {
        writeln!(out, "left out (wholly after the cut): {}", left.join(", "))?;
    }
    writeln!(
        out,
        "wrote {}: {} kept",
        output.display(),
        count(o.kept_commands, "command")
    )?;
    Ok(())
}

/// `3 commands (EXEC 1, FLUSHALL 1, MULTI 1), 52 bytes, time …, offsets …`.
fn dropped(d: &Dropped) -> String {
    let n: u64 = d.commands.values().sum();
    let names: Vec<String> = d.commands.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut facts = vec![match n {
        0 => count(0, "command"),
        _ => format!("{} ({})", count(n, "command"), names.join(", ")),
    }];
    facts.push(format!("{} bytes", thousands(d.bytes)));
    if d.unreadable > 0 {
        let what = "of them not a whole command (a truncated tail or damage)";
        facts.push(format!("{} {what}", thousands(d.unreadable)));
    }
    if let Some((a, b)) = d.times {
        facts.push(format!(
            "time {} to {} ({a} to {b})",
            utc_date(a),
            utc_date(b)
        ));
    }
    let ranges: Vec<String> = d
        .ranges
        .iter()
        .take(20)
        .map(|(f, r)| format!("{f}:{}-{}", r.start, r.end))
        .collect();
    let more = d.ranges.len().saturating_sub(20);
    let more = match more {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    facts.push(format!("offsets {}{more}", ranges.join(", ")));
    facts.join(", ")
}
