//! `rdbtool diff`: compares two snapshots, or a snapshot and a live server, key by key, and
//! exits 0 (identical), 1 (differences found) or 2 (could not compare), like diff(1).

use std::io::Write;

use anyhow::{Context, Result, bail};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use rdbtool::diff::compare::{Change, KINDS, Tally};
use rdbtool::diff::file::FileSide;
use rdbtool::diff::jsonl::{self, RecordOptions};
use rdbtool::diff::live::{LiveSide, is_url};
use rdbtool::diff::patch::{Patch, PatchOptions};
use rdbtool::diff::{self, Diff, Options, Seed, Side, TtlRule, Value};
use rdbtool::scan::mapped::MappedFile;

use super::args::{CommonArgs, ExpiryArgs, FilterArgs, RespArgs};
use super::{Outcome, count, iec, thousands};

/// Compare two dumps, or a dump and a live server, by meaning: the same hash stored as a
/// listpack in one and a hashtable in the other is equal. Shows a summary, one JSON record per
/// differing key, or the commands that turn A into B (`| redis-cli --pipe`).
///
/// A and B are RDB files or server URLs (`redis://[user:pass@]host:port[/db]`, `rediss://`).
/// Exit status: 0 identical, 1 differences found, 2 could not compare.
#[derive(clap::Args)]
pub struct Args {
    /// The first side: an RDB file (`-`: standard input) or a server URL.
    #[arg(value_name = "A")]
    a: String,
    /// The second side: an RDB file (`-`: standard input) or a server URL.
    #[arg(value_name = "B")]
    b: String,
    /// Output: a summary table, one JSON record per differing key, or the RESP patch A → B.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// JSON Lines only: add the differing elements (or whole values) to each record.
    #[arg(long)]
    detail: bool,
    /// Expiry times this close are equal (`1s`, `250ms`, `2m`; a bare number is milliseconds).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = super::args::duration_ms)]
    ttl_tolerance: u64,
    /// Do not compare key TTLs.
    #[arg(long, conflicts_with = "ttl_tolerance")]
    ignore_ttl: bool,
    /// Decode every value, even where two files of one format store the same bytes (slower;
    /// every value's encoding is then read and checked).
    #[arg(long)]
    by_meaning: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    expiry: ExpiryArgs,
    #[command(flatten)]
    resp: RespArgs,
    /// Memory for comparing one key element by element; larger keys are compared in parts,
    /// at most 64 (each reads the key), so a key may take up to a 64th of its size.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    key_memory: usize,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum FormatArg {
    Table,
    Jsonl,
    Resp,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let opts = options(&args)?;
    if args.a == "-" && args.b == "-" {
        bail!("standard input (-) can be read only once");
    }
    let files = [&args.a, &args.b].map(|arg| std::path::Path::new(arg.as_str()));
    super::files::refuse_stdout_as_input(files)?;
    let maps = [map(&args.a)?, map(&args.b)?];
    if let Some(path) = &args.output {
        // Now, not after a long comparison.
        super::files::refuse_input_as_output(path, files)?;
    }
    let mut sides = Vec::new();
    for (arg, m) in [&args.a, &args.b].into_iter().zip(&maps) {
        sides.push(match m {
            Some(m) => Side::File(FileSide::new(arg.clone(), m)),
            None => Side::Live(LiveSide::connect(arg)?),
        });
    }
    let [mut a, mut b]: [Side<'_>; 2] =
        sides.try_into().map_err(|_| anyhow::anyhow!("two sides"))?;
    let outcome = compare(&args, &maps, [&mut a, &mut b], &opts)?;

    let mut file_out;
    let out: &mut dyn Write = match &args.output {
        Some(path) => {
            file_out = super::files::create_output(path, files)?;
            &mut file_out
        }
        None => out,
    };
    match args.format {
        FormatArg::Table => write_table([a.label(), b.label()], &outcome, out)?,
        FormatArg::Jsonl => write_records(&args, &opts, &outcome, [&mut a, &mut b], out)?,
        FormatArg::Resp => write_patch(&args, &opts, &outcome, [&mut a, &mut b], out)?,
    }
    out.flush()?;
    // The differences are the output.
    Ok(match outcome.tally.total().differing() {
        0 => Outcome::Clean,
        _ => Outcome::Problems(Vec::new()),
    })
}

fn options(args: &Args) -> Result<Options> {
    Ok(Options {
        seed: Seed::random(),
        filter: args.filter.filter()?,
        ttl: if args.ignore_ttl {
            TtlRule::Ignore
        } else {
            TtlRule::Tolerance(args.ttl_tolerance)
        },
        keep_expired: args.expiry.keep_expired(),
        by_meaning: args.by_meaning,
        now_ms: args.expiry.now_ms(),
    })
}

/// Compares the two sides key by key, a bar for each file big enough to wait for; an error if
/// a file changed size meanwhile.
fn compare(
    args: &Args,
    maps: &[Option<MappedFile>; 2],
    [a, b]: [&mut Side<'_>; 2],
    opts: &Options,
) -> Result<diff::Outcome> {
    let bars = progress_bars(args, maps);
    let outcome = diff::compare(a, b, opts, &mut |side, pos| {
        if let Some(Some(bar)) = bars.get(side) {
            bar.set_position(pos);
        }
    });
    for bar in bars.into_iter().flatten() {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    for (m, arg) in maps.iter().zip([&args.a, &args.b]) {
        if let Some(m) = m {
            m.check_size().with_context(|| arg.clone())?;
        }
    }
    if outcome.vanished > 0 {
        eprintln!(
            "rdbtool: notice: {} of {} {} gone when their names were asked for",
            count(outcome.vanished, "key"),
            a.label(),
            if outcome.vanished == 1 { "was" } else { "were" }
        );
    }
    Ok(outcome)
}

/// `--format jsonl`: one record per differing key, then the summary.
fn write_records(
    args: &Args,
    opts: &Options,
    outcome: &diff::Outcome,
    [a, b]: [&mut Side<'_>; 2],
    out: &mut dyn Write,
) -> Result<()> {
    let ropts = RecordOptions {
        detail: args.detail,
        seed: opts.seed,
        budget: args.key_memory,
    };
    for d in &outcome.diffs {
        let elementwise = d.change == Change::ValueChanged && jsonl::is_collection(d.kind());
        let need = elementwise || (args.detail && d.change != Change::TtlChanged);
        let (va, vb) = values(a, b, d, need, need)?;
        jsonl::write_record(out, d, va.as_ref(), vb.as_ref(), &ropts)?;
    }
    jsonl::write_summary(out, &outcome.tally)?;
    Ok(())
}

/// `--format resp`: the commands that turn A into B; what they cannot carry on standard error.
fn write_patch(
    args: &Args,
    opts: &Options,
    outcome: &diff::Outcome,
    [a, b]: [&mut Side<'_>; 2],
    out: &mut dyn Write,
) -> Result<()> {
    let popts = PatchOptions {
        target: args.resp.target(),
        batch: args.resp.batch(),
        restore: args.resp.restore,
        restore_max: args.resp.restore_max,
        now_ms: opts.now_ms,
        seed: opts.seed,
        budget: args.key_memory,
        lossy: args.resp.lossy,
    };
    let mut patch = Patch::new(out, popts);
    for d in &outcome.diffs {
        let need_b = !matches!(d.change, Change::Removed | Change::TtlChanged);
        let need_a = d.change == Change::ValueChanged;
        let (va, vb) = values(a, b, d, need_a, need_b)?;
        patch.key(d, va.as_ref(), vb.as_ref())?;
    }
    for line in patch.losses.report(args.resp.target()) {
        eprintln!("rdbtool: patch: {line}");
    }
    for key in &patch.refused_keys {
        eprintln!("rdbtool: patch: left as it is: {key}");
    }
    Ok(())
}

/// Maps a file side; None for a server URL.
fn map(arg: &str) -> Result<Option<MappedFile>> {
    if is_url(arg) {
        return Ok(None);
    }
    super::files::open_mapped(std::path::Path::new(arg)).map(Some)
}

/// The values of a differing key on both sides, as far as wanted and present.
fn values<'m>(
    a: &mut Side<'m>,
    b: &mut Side<'m>,
    d: &Diff,
    want_a: bool,
    want_b: bool,
) -> Result<(Option<Value<'m>>, Option<Value<'m>>)> {
    let va = match (&d.a, want_a) {
        (Some(facts), true) => a.value(d, facts)?,
        _ => None,
    };
    let vb = match (&d.b, want_b) {
        (Some(facts), true) => b.value(d, facts)?,
        _ => None,
    };
    Ok((va, vb))
}

fn progress_bars(
    args: &Args,
    maps: &[Option<MappedFile>; 2],
) -> Vec<Option<indicatif::ProgressBar>> {
    let progress = args.common.progress();
    [&args.a, &args.b]
        .into_iter()
        .zip(maps)
        .map(|(arg, m)| {
            let len = m.as_ref()?.data().len() as u64;
            progress.bar(len, std::path::Path::new(arg))
        })
        .collect()
}

fn write_table(
    labels: [&str; 2],
    outcome: &diff::Outcome,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let t: &Tally = &outcome.tally;
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(
        [
            "type",
            "only in A",
            "only in B",
            "value changed",
            "TTL changed",
            "type changed",
            "unchanged",
            "bytes A",
            "bytes B",
        ]
        .iter()
        .map(Cell::new),
    );
    let row = |name: &str, k: &diff::compare::KindTally| {
        vec![
            name.to_string(),
            thousands(k.only_a),
            thousands(k.only_b),
            thousands(k.value_changed),
            thousands(k.ttl_changed),
            thousands(k.type_changed),
            thousands(k.unchanged),
            iec(k.bytes_a),
            iec(k.bytes_b),
        ]
    };
    for (kind, k) in KINDS.iter().zip(&t.kinds) {
        if k.differing() + k.unchanged > 0 {
            table.add_row(row(kind.as_str(), k));
        }
    }
    let total = t.total();
    table.add_row(row("total", &total));
    for i in 1..9 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "A: {} ({})", labels[0], count(t.keys_a, "key"))?;
    writeln!(out, "B: {} ({})", labels[1], count(t.keys_b, "key"))?;
    writeln!(out, "{table}")?;
    let differing = total.differing();
    if differing == 0 {
        writeln!(out, "identical")
    } else {
        writeln!(
            out,
            "{} {} ({} of A's value bytes, {} of B's)",
            count(differing, "key"),
            if differing == 1 { "differs" } else { "differ" },
            iec(total.bytes_a),
            iec(total.bytes_b)
        )
    }
}
