//! `rdbtool export` on an AOF: the slice options and the run.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};

use rdbtool::aof::input::AofInput;
use rdbtool::export::{Format, Options};

use super::Outcome;
use super::inspect_aof::failed;
use super::slice::SliceArgs;

/// Exports the AOF at `path` to `out`.
pub fn run(path: &Path, slice: &SliceArgs, opts: &Options, out: &mut dyn Write) -> Result<Outcome> {
    if opts.format == Format::Json {
        bail!("--format json is for RDB files; an AOF exports as jsonl or resp");
    }
    let input = match AofInput::open(path) {
        Ok(i) => i,
        Err(e) => return Ok(failed(&e)),
    };
    eprintln!("rdbtool: {}: {}", path.display(), input.describe());
    if !opts.filter.kinds.is_empty() {
        bail!("--type selects keys of an RDB file; AOF commands have no type (use --command)");
    }
    let sel = slice.selection(&|t| input.resolve_offset(t), &opts.filter)?;
    let summary = match rdbtool::export::aof::export(&input, &sel, opts, out) {
        Ok(s) => s,
        Err(rdbtool::aof::input::Error::Output(e)) => return Err(e.into()),
        Err(e) => {
            out.flush()?;
            return Ok(failed(&e));
        }
    };
    out.flush()?;
    for part in &input.parts {
        if part.map.check_size().is_err() {
            bail!("{}: changed size while read", part.path.display());
        }
    }
    if let Some(base) = &summary.base {
        eprintln!(
            "rdbtool: base: {} exported ({} filtered out)",
            rdbtool::text::count(base.keys, "key"),
            base.filtered_out
        );
        for notice in &base.notices {
            eprintln!("rdbtool: notice: {notice}");
        }
    } else if input.parts.iter().any(|p| p.rdb) {
        eprintln!(
            "rdbtool: notice: the RDB base is left out (the slice does not start at the log's start, or --command is given)"
        );
    }
    eprintln!(
        "rdbtool: {} kept, {} left out",
        rdbtool::text::count(summary.kept, "command"),
        summary.left_out
    );
    if summary.open_transactions > 0 {
        eprintln!(
            "rdbtool: notice: {} left open at the end of a file, not exported (the server does not apply them either)",
            rdbtool::text::count(summary.open_transactions, "transaction")
        );
    }
    Ok(Outcome::Clean)
}
