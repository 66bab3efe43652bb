//! `rdbtool inspect` on an AOF (a file, an appendonlydir or its manifest): the report of
//! `inspect::aof` as tables or JSON.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use comfy_table::{CellAlignment, Table};

use rdbtool::aof::input::AofInput;
use rdbtool::inspect::Options;
use rdbtool::inspect::aof::{self, AofReport, MAX_MINUTES};

use rdbtool::text::utc_date;

use super::inspect::{shown_prefixes, table, write_tables};
use super::{Outcome, count, iec, thousands};

/// Inspects the AOF at `path`; `json` for the JSON document, else tables.
pub fn run(path: &Path, opts: &Options, json: bool, out: &mut dyn Write) -> Result<Outcome> {
    let input = match AofInput::open(path) {
        Ok(i) => i,
        Err(e) => return Ok(failed(&e)),
    };
    eprintln!("rdbtool: {}: {}", path.display(), input.describe());
    let (report, problem) = match aof::inspect(&input, opts) {
        Ok(r) => r,
        Err(e) => return Ok(failed(&e)),
    };
    for part in &input.parts {
        if part.map.check_size().is_err() {
            anyhow::bail!("{}: changed size while read", part.path.display());
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_aof_tables(&report, path, input.len(), out)?;
    }
    // The report covers what came before the problem.
    match problem {
        Some(e) => {
            out.flush()?;
            Ok(failed(&e))
        }
        None => Ok(Outcome::Clean),
    }
}

/// One line for an AOF that could not be read through: exit 1 for a problem in it, 2 else.
pub fn failed(e: &rdbtool::aof::input::Error) -> Outcome {
    match e.is_problem() {
        true => Outcome::problem(e.to_string()),
        false => Outcome::unfinished(e.to_string()),
    }
}

/// `header` as a table, the columns `left` aligned left (text), the others right.
pub(super) fn texts(header: &[&str], left: &[usize]) -> Table {
    let mut t = table(header);
    for &i in left {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Left);
        }
    }
    t
}

fn write_aof_tables(r: &AofReport, path: &Path, size: u64, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "{}: {}, {}, {}",
        path.display(),
        r.input,
        iec(size),
        count(r.commands, "command")
    )?;
    let mut files = table(&["file", "offset", "bytes", "RDB bytes", "commands"]);
    for f in &r.files {
        files.add_row(vec![
            f.name.clone(),
            thousands(f.start),
            iec(f.bytes),
            iec(f.rdb_bytes),
            thousands(f.commands),
        ]);
    }
    writeln!(out, "\n{files}")?;
    let mut names = table(&["command", "count", "bytes"]);
    for n in &r.by_name {
        names.add_row(vec![n.name.clone(), thousands(n.count), iec(n.bytes)]);
    }
    writeln!(out, "\n{names}")?;
    let mut dbs = table(&["db", "writes", "bytes"]);
    for (db, d) in &r.dbs {
        dbs.add_row(vec![db.to_string(), thousands(d.writes), iec(d.bytes)]);
    }
    writeln!(out, "\n{dbs}")?;
    let t = &r.transactions;
    writeln!(
        out,
        "\ntransactions: {} MULTI, {} EXEC, {} inside",
        thousands(t.multi),
        thousands(t.exec),
        count(t.commands, "command")
    )?;
    let expiry: Vec<String> = r.expiry.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let expiry = if expiry.is_empty() {
        "none".into()
    } else {
        expiry.join(", ")
    };
    writeln!(out, "expiry commands: {expiry}")?;
    write_time(r, out)?;
    write_keys(r, out)?;
    let mut largest = texts(
        &["offset", "file:offset", "command", "key", "bytes"],
        &[1, 2, 3],
    );
    for l in &r.largest {
        largest.add_row(vec![
            thousands(l.offset),
            format!("{}:{}", l.file, l.file_offset),
            l.command.clone(),
            l.key.clone().unwrap_or_default(),
            iec(l.bytes),
        ]);
    }
    writeln!(out, "\nlargest commands\n{largest}")?;
    if let Some(base) = &r.base {
        writeln!(out, "\nRDB base / preamble:")?;
        let rdb_bytes = r.files.iter().map(|f| f.rdb_bytes).sum();
        write_tables(base, path, rdb_bytes, out)?;
    }
    Ok(())
}

fn write_time(r: &AofReport, out: &mut dyn Write) -> Result<()> {
    let t = &r.time;
    let (Some(first), Some(last)) = (t.first, t.last) else {
        writeln!(out, "time: no #TS annotations")?;
        return Ok(());
    };
    let minutes = (last / 60 - first / 60 + 1).max(1);
    writeln!(
        out,
        "time: {} to {} ({}), {} with a time and {} without, {:.1} writes/minute on average",
        utc_date(first),
        utc_date(last),
        count(minutes, "minute"),
        count(t.writes_with_time, "write"),
        thousands(t.writes_without_time),
        t.writes_with_time as f64 / minutes as f64
    )?;
    if t.writes_in_minutes_not_listed > 0 {
        writeln!(
            out,
            "  (per-minute counts kept for the first {MAX_MINUTES} minutes with writes; {} writes after them)",
            thousands(t.writes_in_minutes_not_listed)
        )?;
    }
    let mut busiest = table(&["busiest minute (UTC)", "writes"]);
    for m in &t.busiest {
        busiest.add_row(vec![utc_date(m.minute), thousands(m.writes)]);
    }
    writeln!(out, "\n{busiest}")?;
    Ok(())
}

fn write_keys(r: &AofReport, out: &mut dyn Write) -> Result<()> {
    let k = &r.keys;
    writeln!(
        out,
        "\nkeys written: {} ({}), {} without a key; top lists from {} counters, each count over by at most {} writes / {}",
        count(k.writes, "write"),
        iec(k.bytes),
        count(k.commands_without_keys, "command"),
        thousands(k.sketch_counters as u64),
        thousands(k.writes_bound),
        iec(k.bytes_bound)
    )?;
    for (title, rows, bytes) in [
        ("most written keys", &k.top_by_writes, false),
        ("keys by bytes written", &k.top_by_bytes, true),
    ] {
        let mut t = texts(&["db", "key", title, "over by at most"], &[1]);
        for h in rows {
            let shown = |n: u64| if bytes { iec(n) } else { thousands(n) };
            t.add_row(vec![
                h.db.to_string(),
                h.key.clone(),
                shown(h.count),
                shown(h.over_by_at_most),
            ]);
        }
        writeln!(out, "\n{t}")?;
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
