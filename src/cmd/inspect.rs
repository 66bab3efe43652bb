//! `rdbtool inspect`: what is in a snapshot and where the memory goes, as tables, a JSON
//! document, or one row per key (CSV or JSON Lines).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use rdbtool::export::json::write_bytes;
use rdbtool::inspect::memory::Allocator;
use rdbtool::inspect::memory::model::memory_model;
use rdbtool::inspect::{self, KeyRow, Options, Report};
use rdbtool::release::Release;
use rdbtool::text::utc_date;

use super::args::{ClockArgs, CommonArgs, FilterArgs};

use super::{Outcome, count, iec, thousands};

/// Show what is in a dump and where the memory goes: header, databases, types and encodings,
/// TTLs, the biggest keys, key prefixes, and each key's estimated memory in the server that
/// wrote the file (or the one `--memory-model` names).
#[derive(clap::Args)]
pub struct Args {
    /// The RDB file (`-` reads standard input), or an AOF: a file, an appendonlydir or its
    /// manifest.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write one row per key instead of the report (so no --format, --top, --depth or
    /// --delimiter, which shape the report).
    #[arg(long, value_enum, value_name = "FORMAT",
          conflicts_with_all = ["format", "top", "depth", "delimiter"])]
    keys: Option<KeysFormat>,
    /// How many of the biggest keys to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Key prefix delimiter.
    #[arg(long, default_value_t = ':', value_name = "CHAR")]
    delimiter: char,
    /// Key prefix levels to aggregate.
    #[arg(long, default_value_t = 2, value_name = "N")]
    depth: usize,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    clock: ClockArgs,
    /// Estimate memory as this server release lays it out: redis-X.Y (4.0, 5.0, 6.0, 6.2,
    /// 7.0, 7.2, 7.4, 8.0, 8.2, 8.4, 8.6) or valkey-X.Y (7.2, 8.0, 8.1, 9.0, 9.1); X.Y alone
    /// means Redis. Default: the release the file's
    /// redis-ver / valkey-ver aux field names, else the newest that writes its format.
    #[arg(long, value_name = "SERVER", value_parser = memory_model)]
    memory_model: Option<Release>,
    /// The allocator the server was built with.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Jemalloc)]
    allocator: AllocatorArg,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum AllocatorArg {
    /// jemalloc as Redis and Valkey bundle it (8-byte quantum)
    Jemalloc,
    /// A system jemalloc with its 16-byte quantum (Debian and Ubuntu packages)
    #[value(name = "jemalloc-16")]
    Jemalloc16,
    /// glibc malloc (builds with MALLOC=libc)
    Libc,
}

impl From<AllocatorArg> for Allocator {
    fn from(a: AllocatorArg) -> Self {
        match a {
            AllocatorArg::Jemalloc => Allocator::Jemalloc,
            AllocatorArg::Jemalloc16 => Allocator::Jemalloc16,
            AllocatorArg::Libc => Allocator::Libc,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum FormatArg {
    Table,
    Json,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum KeysFormat {
    Csv,
    Jsonl,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    super::files::refuse_stdout_as_input([args.file.as_path()])?;
    let delimiter = u8::try_from(args.delimiter).context("--delimiter must be one byte")?;
    if rdbtool::aof::files::detect(&args.file) {
        if args.keys.is_some() {
            anyhow::bail!("--keys lists the keys of an RDB file; an AOF has commands (see export)");
        }
        let opts = options(&args, delimiter)?;
        let json = args.format == FormatArg::Json;
        return super::inspect_aof::run(&args.file, &opts, json, out);
    }
    let file = super::files::open_mapped(&args.file)?;
    let opts = options(&args, delimiter)?;
    let mut io_error = None;
    if args.keys == Some(KeysFormat::Csv) {
        writeln!(
            out,
            "db,key,type,encoding,expire_at,rdb_bytes,elements,largest_element,memory"
        )?;
    }
    let result = args
        .common
        .progress()
        .scan_file(&file, &args.file, |inp, progress| {
            inspect::inspect(
                inp,
                &opts,
                |row| {
                    if io_error.is_none() {
                        let written = match args.keys {
                            Some(KeysFormat::Csv) => write_csv(out, row),
                            Some(KeysFormat::Jsonl) => write_jsonl(out, row),
                            None => Ok(()),
                        };
                        io_error = written.err();
                    }
                },
                progress,
            )
        })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return Ok(super::rdb_failure(&args.file, &e)),
    };
    match (args.keys, args.format) {
        (Some(_), _) => {}
        (None, FormatArg::Json) => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        (None, FormatArg::Table) => {
            write_tables(&report, &args.file, file.data().len() as u64, out)?
        }
    }
    Ok(Outcome::Clean)
}

fn options(args: &Args, delimiter: u8) -> Result<Options> {
    Ok(Options {
        filter: args.filter.filter()?,
        top: args.top,
        delimiter,
        depth: args.depth,
        now_ms: args.clock.now_ms(),
        memory_model: args.memory_model,
        allocator: args.allocator.into(),
    })
}

fn write_jsonl(out: &mut dyn Write, row: &KeyRow<'_>) -> std::io::Result<()> {
    write!(out, "{{\"db\":{},\"key\":", row.db)?;
    write_bytes(out, row.key)?;
    let mut rest = serde_json::to_string(row).map_err(std::io::Error::from)?;
    rest.remove(0);
    let rest = rest
        .trim_start_matches("\"db\":")
        .trim_start_matches(|c: char| c.is_ascii_digit());
    writeln!(out, "{rest}")
}

fn write_csv(out: &mut dyn Write, row: &KeyRow<'_>) -> std::io::Result<()> {
    let key = String::from_utf8_lossy(row.key);
    let key = if key.contains([',', '"', '\n', '\r']) || matches!(key, std::borrow::Cow::Owned(_)) {
        format!(
            "\"{}\"",
            rdbtool::rdb::error::escape(row.key).replace('"', "\"\"")
        )
    } else {
        key.into_owned()
    };
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    writeln!(
        out,
        "{},{key},{},{},{},{},{},{},{}",
        row.db,
        row.r#type,
        row.encoding,
        row.expire_at.map(|e| e.to_string()).unwrap_or_default(),
        row.rdb_bytes,
        row.elements,
        row.largest_element,
        opt(row.memory)
    )
}

pub(super) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(header.iter().map(Cell::new));
    for i in 1..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

pub(super) fn write_tables(
    r: &Report,
    path: &std::path::Path,
    size: u64,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let m = &r.memory_model;
    writeln!(
        out,
        "{}: {}, {}, {}, estimated memory {} in {} with {} (from {})",
        path.display(),
        r.format,
        iec(size),
        count(r.keys, "key"),
        iec(r.memory),
        m.server,
        m.allocator,
        m.chosen_by
    )?;
    for t in [header_table(r), dbs_table(r), types_table(r), ttl_table(r)] {
        writeln!(out, "\n{t}")?;
    }
    for (name, spread) in [("LRU idle seconds", &r.idle), ("LFU counter", &r.freq)] {
        if let Some(s) = spread {
            writeln!(
                out,
                "{name}: {}, min {}, mean {:.1}, max {}",
                count(s.keys, "key"),
                s.min,
                s.mean,
                s.max
            )?;
        }
    }
    for t in top_tables(r) {
        writeln!(out, "\n{t}")?;
    }
    writeln!(out, "\n{}", prefixes_table(r))
}

/// The file's aux fields, function libraries and module aux data.
fn header_table(r: &Report) -> Table {
    let mut header = table(&["field", "value"]);
    for a in &r.aux {
        header.add_row(vec![a.name.clone(), describe_aux(&a.name, &a.value)]);
    }
    for f in &r.functions {
        header.add_row(vec!["function".to_string(), f.clone()]);
    }
    for m in &r.module_aux {
        header.add_row(vec!["module aux".to_string(), m.clone()]);
    }
    if let Some(c) = header.column_mut(1) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    header
}

fn dbs_table(r: &Report) -> Table {
    let mut dbs = table(&[
        "db",
        "keys",
        "with TTL",
        "expired at save",
        "expired now",
        "RESIZEDB hint",
        "est. memory",
    ]);
    for (db, d) in &r.dbs {
        let hint = d.hint_keys.map_or("-".to_string(), |k| {
            format!(
                "{} / {}",
                thousands(k),
                thousands(d.hint_expires.unwrap_or(0))
            )
        });
        dbs.add_row(vec![
            db.to_string(),
            thousands(d.keys),
            thousands(d.expires),
            thousands(d.expired_at_save),
            thousands(d.expired_now),
            hint,
            iec(d.memory),
        ]);
    }
    dbs
}

fn types_table(r: &Report) -> Table {
    let mut types = table(&[
        "type",
        "encoding",
        "keys",
        "rdb bytes",
        "elements",
        "largest element",
        "est. memory",
    ]);
    for t in &r.types {
        types.add_row(vec![
            t.r#type.to_string(),
            t.encoding.to_string(),
            thousands(t.keys),
            iec(t.rdb_bytes),
            thousands(t.elements),
            iec(t.largest_element),
            iec(t.memory),
        ]);
    }
    if let Some(c) = types.column_mut(1) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    types
}

fn ttl_table(r: &Report) -> Table {
    let t = &r.ttl;
    let mut ttl = table(&[
        "TTL", "none", "expired", "< 1 min", "< 1 h", "< 1 d", "< 7 d", "longer",
    ]);
    ttl.add_row(vec![
        "keys".to_string(),
        thousands(t.none),
        thousands(t.expired),
        thousands(t.under_1m),
        thousands(t.under_1h),
        thousands(t.under_1d),
        thousands(t.under_7d),
        thousands(t.longer),
    ]);
    ttl
}

/// The biggest keys by rdb bytes, by elements and by estimated memory.
fn top_tables(r: &Report) -> Vec<Table> {
    let mut tables = Vec::new();
    for (title, rows, as_bytes) in [
        ("biggest keys by rdb bytes", &r.top_by_rdb_bytes, true),
        ("biggest keys by elements", &r.top_by_elements, false),
        ("biggest keys by estimated memory", &r.top_by_memory, true),
    ] {
        let mut top = table(&["db", "key", "type", title]);
        if let Some(c) = top.column_mut(2) {
            c.set_cell_alignment(CellAlignment::Left);
        }
        for k in rows {
            let v = if as_bytes {
                iec(k.value)
            } else {
                thousands(k.value)
            };
            top.add_row(vec![
                k.db.to_string(),
                k.key.clone(),
                format!("{}/{}", k.r#type, k.encoding),
                v,
            ]);
        }
        if let Some(c) = top.column_mut(1) {
            c.set_cell_alignment(CellAlignment::Left);
        }
        tables.push(top);
    }
    tables
}

/// The prefixes a table shows: the first 20 of the first level, then 20 of the deeper ones.
pub(super) fn shown_prefixes<T>(all: &[T], level: fn(&T) -> usize) -> impl Iterator<Item = &T> {
    let first = all.iter().filter(move |p| level(p) == 1).take(20);
    first.chain(all.iter().filter(move |p| level(p) > 1).take(20))
}

fn prefixes_table(r: &Report) -> Table {
    let mut prefixes = table(&["level", "prefix", "keys", "rdb bytes", "est. memory"]);
    for p in shown_prefixes(&r.prefixes, |p| p.level) {
        prefixes.add_row(vec![
            p.level.to_string(),
            p.prefix.clone(),
            thousands(p.keys),
            iec(p.rdb_bytes),
            iec(p.memory),
        ]);
    }
    if let Some(c) = prefixes.column_mut(1) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    prefixes
}

/// AUX values an operator reads better decoded: times as dates, sizes in IEC units.
fn describe_aux(key: &str, value: &str) -> String {
    match (key, value.parse::<u64>()) {
        ("ctime", Ok(secs)) => format!("{value} ({})", utc_date(secs)),
        ("used-mem", Ok(bytes)) => format!("{value} ({})", iec(bytes)),
        _ => value.to_string(),
    }
}
