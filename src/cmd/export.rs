//! `rdbtool export`: a dump as JSON, JSON Lines, or the RESP command stream that rebuilds it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use rdbtool::export::{self, Format, Options};

use super::Outcome;
use super::args::{CommonArgs, ExpiryArgs, FilterArgs, RespArgs};

/// Convert a dump to lossless JSON / JSON Lines, or to the command stream that rebuilds it
/// (`| redis-cli --pipe`).
#[derive(clap::Args)]
pub struct Args {
    /// The RDB file (`-` reads standard input), or an AOF: a file, an appendonlydir or its
    /// manifest.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    format: FormatArg,
    #[command(flatten)]
    resp: RespArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    expiry: ExpiryArgs,
    #[command(flatten)]
    slice: super::slice::SliceArgs,
    #[command(flatten)]
    common: CommonArgs,
    /// Drop key TTLs.
    #[arg(long)]
    no_ttl: bool,
    /// Function libraries too when a key filter (--db, --key, --key-regex, --type) is given.
    #[arg(long)]
    functions: bool,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum FormatArg {
    Json,
    Jsonl,
    Resp,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    super::files::refuse_stdout_as_input([args.file.as_path()])?;
    let aof = rdbtool::aof::files::detect(&args.file);
    if !aof && let Some(flag) = args.slice.given() {
        anyhow::bail!("{flag} slices an AOF; {} is not one", args.file.display());
    }
    let file = match aof {
        true => None,
        false => Some(super::files::open_mapped(&args.file)?),
    };
    let output = args
        .output
        .as_deref()
        .map(|path| super::files::create_output(path, [args.file.as_path()]))
        .transpose()?;
    let opts = options(&args)?;
    if aof {
        return match output {
            Some(mut w) => super::export_aof::run(&args.file, &args.slice, &opts, &mut w),
            None => super::export_aof::run(&args.file, &args.slice, &opts, out),
        };
    }
    let file = file.expect("an RDB input is mapped");
    let progress = args.common.progress();
    let summary = match output {
        Some(mut w) => {
            let s = progress.scan_file(&file, &args.file, |inp, progress| {
                export::export(inp, &opts, &mut w, progress)
            })?;
            w.flush()?;
            s
        }
        None => progress.scan_file(&file, &args.file, |inp, progress| {
            export::export(inp, &opts, out, progress)
        })?,
    };
    let summary = match summary {
        Ok(s) => s,
        Err(export::Error::Rdb(e)) => return Ok(super::rdb_failure(&args.file, &e)),
        Err(export::Error::Io(e)) => return Err(e.into()),
    };
    for notice in &summary.notices {
        eprintln!("rdbtool: notice: {notice}");
    }
    // Worded by `export::loss`, printed as replay prints them.
    for line in summary.losses.report(opts.target) {
        eprintln!("rdbtool: notice: {line}");
    }
    let refused = summary.refused();
    if refused == 0 {
        return Ok(Outcome::Clean);
    }
    let named = summary.refused_keys.len() as u64;
    let mut left_out: Vec<String> = summary
        .refused_keys
        .iter()
        .map(|key| format!("left out: {key}"))
        .collect();
    if refused > named {
        left_out.push(format!("left out: {} more", refused - named));
    }
    Ok(Outcome::Problems(left_out))
}

fn options(args: &Args) -> Result<Options> {
    Ok(Options {
        format: match args.format {
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Resp => Format::Resp,
        },
        restore: args.resp.restore,
        target: args.resp.target(),
        batch: args.resp.batch(),
        restore_max: args.resp.restore_max,
        filter: args.filter.filter()?,
        keep_expired: args.expiry.keep_expired(),
        now_ms: args.expiry.now_ms(),
        no_ttl: args.no_ttl,
        restore_replace: false,
        lossy: args.resp.lossy,
        functions: args.functions,
    })
}
