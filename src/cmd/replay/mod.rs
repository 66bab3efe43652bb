//! `rdbtool replay`: load a dump (or an AOF, or a capture) into a live server or cluster.

mod aof;
mod capture;
mod hooks;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use rdbtool::release::Release;
use rdbtool::replay::checkpoint::{self, Checkpoint};
use rdbtool::replay::endpoint::Endpoint;
use rdbtool::replay::{self, Mode, OnExists, Options, Replay, Source, Summary};
use rdbtool::scan::mapped::MappedFile;

use super::args::{ClockArgs, CommonArgs, FilterArgs, TlsArgs};
use super::slice::SliceArgs;
use super::{Outcome, count, iec, thousands};
use hooks::{CheckpointTo, CliHooks};

/// Load a dump (or an AOF) into a live server or cluster: pipelined, routed by slot, resumable.
#[derive(clap::Args)]
pub struct Args {
    /// The RDB file, or an AOF: a file (RESP commands, with or without an RDB preamble), or
    /// an appendonlydir or its manifest (replayed whole, in load order); a capture directory
    /// (backlog capture: its last snapshot, then its stream up to --to-offset); `-` reads
    /// standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The target: redis://[user:pass@]host:port[/db] or rediss://... (password also from
    /// REDISCLI_AUTH).
    #[arg(long, value_name = "URL")]
    to: String,
    /// restore: RESTORE of the file's bytes; commands: native commands; auto: RESTORE when
    /// the target reads the file's RDB version.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,
    /// What to do with a key that exists on the target.
    #[arg(long, value_enum, default_value_t = OnExistsArg::Fail)]
    on_exists: OnExistsArg,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    slice: SliceArgs,
    /// Source database to target database, e.g. `0=3,1=4`.
    #[arg(long, value_name = "MAP", value_parser = parse_db_map)]
    db_map: Option<DbMap>,
    /// Move every TTL by this many seconds (negative: earlier).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    ttl_shift: i64,
    /// Drop key TTLs.
    #[arg(long, conflicts_with = "ttl_shift")]
    no_ttl: bool,
    /// Connections per target node (1 to 256).
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    connections: usize,
    /// Commands per pipelined batch on a connection.
    #[arg(long, default_value_t = 2000, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pipeline: usize,
    /// At most this many commands per second (for fragile targets).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_ops_per_sec: Option<u64>,
    /// Stop after this many refused keys (the checkpoint is written).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_errors: Option<u64>,
    /// Read the file and check the target (version, databases, cluster layout, memory), print
    /// what would be sent per node and command, and send no write.
    #[arg(long, conflicts_with_all = ["checkpoint", "resume"])]
    dry_run: bool,
    /// The target is a cluster (detected from INFO otherwise).
    #[arg(long)]
    cluster: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// Write refused keys here, one JSON object per line (db, key, error).
    #[arg(long, value_name = "FILE")]
    errors_to: Option<PathBuf>,
    /// Record here, atomically and every second, the position up to which every key has
    /// an answer.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Continue from --checkpoint: keys after it are sent with replace semantics; AOF
    /// commands continue after the offset the target's progress key says is applied.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Give up when a key has had no answer for this long (seconds).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    retry_timeout: f64,
    /// At most this many elements per native command of a large key.
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_elements: usize,
    /// What the target accepts, e.g. `6.2` or `valkey-8.1` (default: from its INFO).
    #[arg(long, value_name = "X.Y")]
    target_version: Option<Release>,
    /// Send keys without what the target cannot hold (hash field TTLs, stream metadata,
    /// LRU/LFU state...), counted by kind. Without it such keys fail, named in --errors-to.
    #[arg(long)]
    lossy: bool,
    /// Function libraries too when a key filter (--db, --key, --key-regex, --type) is given.
    #[arg(long)]
    functions: bool,
    #[command(flatten)]
    clock: ClockArgs,
    #[command(flatten)]
    common: CommonArgs,
}

/// The source mapped: a regular file as it is; standard input (`-`), a pipe or a device first
/// copied into a temporary file (kept until the replay ends), as a replay reads its source
/// twice (the databases it needs, then the keys).
fn open_source(args: &Args) -> Result<MappedFile> {
    let path = &args.file;
    let regular =
        !super::files::is_stdin(path) && std::fs::metadata(path).is_ok_and(|m| m.is_file());
    if args.resume && !regular {
        bail!(
            "{}: --resume needs a regular file (it is read again from the checkpoint's \
             position): save the stream to a file first",
            source_name(args)
        );
    }
    super::files::open_mapped(path)
}

/// The source as messages name it.
fn source_name(args: &Args) -> String {
    match args.file.as_os_str() == "-" {
        true => "standard input".to_string(),
        false => args.file.display().to_string(),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum ModeArg {
    Restore,
    Commands,
    Auto,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum OnExistsArg {
    Fail,
    Replace,
    Skip,
}

#[derive(Clone)]
struct DbMap(HashMap<u64, u64>);

fn parse_db_map(s: &str) -> Result<DbMap, String> {
    let mut map = HashMap::new();
    for pair in s.split(',') {
        let (from, to) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected FROM=TO"))?;
        let num = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
        if map.insert(num(from)?, num(to)?).is_some() {
            return Err(format!("source database {} is mapped twice", from.trim()));
        }
    }
    Ok(DbMap(map))
}

/// `--cacert` and `--insecure` are about TLS: with a plain `redis://` URL they are a mistake.
fn check_tls_options(args: &Args) -> Result<()> {
    match args.tls.needless([args.to.as_str()]) {
        Some(name) => bail!(
            "{name} applies to rediss:// (TLS) targets only, not to --to {}",
            rdbtool::text::mask_url(&args.to)
        ),
        None => Ok(()),
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let checkpoint_path = check_paths(&args)?;
    // A capture directory: its last snapshot, then its stream.
    let capture = match capture::open(&args.file, &args.slice)? {
        Ok(c) => c,
        Err(why) => return Ok(Outcome::problem(format!("{}: {why}", source_name(&args)))),
    };
    // An appendonlydir (or its manifest): its files in load order; else one file.
    let multi = match &capture {
        Some(_) => None,
        None => aof::MultiPart::open(&args.file)?,
    };
    let log = (multi.as_ref().map(|m| m as &dyn aof::LogInput))
        .or(capture.as_ref().map(|c| c as &dyn aof::LogInput));
    let file = match log {
        Some(_) => None,
        None => Some(open_source(&args)?),
    };
    let data = file.as_ref().map_or(&[][..], |f| f.data());
    let endpoint = endpoint(&args)?;
    let shown = endpoint.redacted();
    let (len, source_hash) = match log {
        Some(l) => l.size_and_hash(),
        None => (data.len() as u64, checkpoint::source_hash(data)),
    };
    let parts = log.map(|l| l.identity()).unwrap_or_default();
    let aof = log.is_some() || rdbtool::aof::is_aof(data);
    let resume = resume_point(&args, len, &source_hash, &parts)?;
    let mut opts = options(&args, resume, aof)?;
    opts.slice = match &capture {
        Some(_) => capture::selection(&opts.filter),
        None => aof::selection(&args.file, &args.slice, &opts.filter, multi.as_ref())?,
    };
    let checkpoint = checkpoint_path.map(|path| CheckpointTo {
        path,
        source: source_name(&args),
        hash: source_hash,
        size: len,
        parts,
    });
    let progress = args.common.progress();
    let errors_to = args.errors_to.as_ref();
    // The checksum of an RDB is summed behind its reader, just before the pages it has passed
    // are released (from the progress hook), so the trailer finds it mostly done.
    let (input, releaser) = match &file {
        Some(f) => {
            let (input, releaser) = f.input();
            (Some(input), Some(if aof { f.releaser() } else { releaser }))
        }
        None => (None, None),
    };
    let follow = file.as_ref().zip(releaser);
    let mut hooks = CliHooks::new(follow, len, &progress, errors_to, checkpoint)?;
    let replay = match Replay::connect(endpoint, opts, &mut hooks) {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::unfinished(e.to_string())),
    };
    let mut header = format!(
        "replay {} -> {shown} ({}, {})",
        source_name(&args),
        shape(&replay),
        replay.facts().target.short()
    );
    let memory = match args.dry_run {
        true => replay.node_memory(),
        false => Vec::new(),
    };
    let started = Instant::now();
    let (summary, result) = match (log, input) {
        (Some(l), _) => replay.run(Source::Log(l.parts())),
        (None, Some(input)) if !aof => replay.run(Source::Rdb(input)),
        (None, _) => replay.run(Source::Aof(data)),
    };
    let elapsed = started.elapsed();
    hooks.finish()?;
    let kind = (log.map(|l| l.describe())).or_else(|| aof::describe_single(data, summary.log_from));
    if let Some(kind) = kind {
        header = format!("{header}\n{kind}");
    }
    let fits = match (args.dry_run && result.is_ok(), &result) {
        // Nothing was read or sent: the message says why.
        (_, Err(replay::Error::Databases(_))) => true,
        (true, _) => write_dry_run(out, &header, &summary, &memory, len)?,
        (false, _) => {
            let what = aof::what(log, aof || summary.log_from.is_some());
            write_summary(out, &header, what, &summary, elapsed, len)?;
            true
        }
    };
    let own = log.map(|l| l.notices()).unwrap_or_default();
    for n in summary.notices.iter().chain(&own) {
        eprintln!("rdbtool: notice: {n}");
    }
    if let Some(e) = hooks.io_error.take() {
        return Ok(Outcome::unfinished(e));
    }
    Ok(ending(&args, &summary, result, fits))
}

/// Before anything is read or sent: the options that make no sense together refused, and where
/// the checkpoint goes (symlinks resolved).
fn check_paths(args: &Args) -> Result<Option<PathBuf>> {
    check_tls_options(args)?;
    super::files::refuse_stdout_as_input([args.file.as_path()])?;
    if let Some(flag) = args.slice.given()
        && !rdbtool::aof::files::detect(&args.file)
        && !capture::is_capture(&args.file)
    {
        bail!("{flag} slices an AOF; {} is not one", source_name(args));
    }
    for path in [&args.errors_to, &args.checkpoint].into_iter().flatten() {
        super::files::refuse_input_as_output(path, [args.file.as_path()])?;
    }
    args.checkpoint
        .as_deref()
        .map(checkpoint::prepare)
        .transpose()
}

/// `--to`, with `--cacert` and `--insecure`.
fn endpoint(args: &Args) -> Result<Endpoint> {
    let tls = args.tls.tls()?;
    let to = rdbtool::text::mask_url(&args.to);
    rdbtool::text::check_url(&args.to).map_err(|why| anyhow::anyhow!("--to {to}: {why}"))?;
    Endpoint::parse(&args.to, &tls).with_context(|| format!("--to {to}"))
}

/// With `--resume`: how many keys the checkpoint says are done, its offset in the source, and
/// the run that wrote it.
fn resume_point(args: &Args, len: u64, source_hash: &str, parts: &[String]) -> Result<Resume> {
    let (Some(path), true) = (&args.checkpoint, args.resume) else {
        return Ok((0, None, None));
    };
    let cp = Checkpoint::load(path).with_context(|| path.display().to_string())?;
    if !parts.is_empty() && cp.parts != parts {
        let (was, is, p) = (cp.parts.join("; "), parts.join("; "), path.display());
        bail!(
            "{p}: checkpoint is for another file ({}: {was}), not this one ({is})",
            cp.source
        );
    }
    if cp.source_size != len || cp.source_hash != source_hash {
        bail!(
            "{}: checkpoint is for another file ({}, {})",
            path.display(),
            cp.source,
            count(cp.source_size, "byte")
        );
    }
    let run = (cp.run_id != 0).then_some(cp.run_id);
    Ok((cp.done, Some(cp.offset), run))
}

/// Keys done, the offset reached and the run, from a checkpoint.
type Resume = (u64, Option<u64>, Option<u64>);

fn options(
    args: &Args,
    (resume_from, resume_offset, resume_run): Resume,
    aof: bool,
) -> Result<Options> {
    Ok(Options {
        mode: match args.mode {
            ModeArg::Restore => Mode::Restore,
            ModeArg::Commands => Mode::Commands,
            ModeArg::Auto => Mode::Auto,
        },
        on_exists: match args.on_exists {
            OnExistsArg::Fail => OnExists::Fail,
            OnExistsArg::Replace => OnExists::Replace,
            OnExistsArg::Skip => OnExists::Skip,
        },
        filter: args.filter.filter()?,
        db_map: args.db_map.clone().map(|m| m.0).unwrap_or_default(),
        ttl_shift_ms: args.ttl_shift.saturating_mul(1000),
        no_ttl: args.no_ttl,
        now_ms: args.clock.now_ms(),
        // An AOF's order matters: one connection per node keeps it.
        connections: if aof { 1 } else { args.connections },
        pipeline: args.pipeline,
        max_ops_per_sec: args.max_ops_per_sec,
        cluster: args.cluster,
        retry_timeout: Duration::from_secs_f64(args.retry_timeout.max(0.0)),
        batch_elements: args.batch_elements,
        target: args.target_version,
        resume_from,
        resume_offset,
        resume_run,
        lossy: args.lossy,
        functions: args.functions,
        max_errors: args.max_errors,
        dry_run: args.dry_run,
        slice: Default::default(),
    })
}

/// `standalone`, or `cluster of 3 masters`.
fn shape(replay: &Replay<'_>) -> String {
    if !replay.is_cluster() {
        return "standalone".to_string();
    }
    let masters = replay.node_addresses().len() as u64;
    format!("cluster of {}", count(masters, "master"))
}

/// How the replay ended, once its summary is written: keys refused (or a dry run's file that
/// may not fit) are a problem found; a damaged source too; anything else that stopped it is
/// not finishing.
fn ending(
    args: &Args,
    summary: &Summary,
    result: Result<(), replay::Error>,
    fits: bool,
) -> Outcome {
    let source = source_name(args);
    let e = match result {
        Ok(()) if summary.failed_total() + summary.libraries_failed > 0 || !fits => {
            return Outcome::Problems(Vec::new());
        }
        Ok(()) => return Outcome::Clean,
        Err(e @ (replay::Error::Rdb(_) | replay::Error::Aof(_))) => {
            return Outcome::problem(format!("{source}: {e}"));
        }
        Err(e) => e,
    };
    let mut lines = Vec::new();
    if let replay::Error::Stopped(_) = e {
        lines.push(format!(
            "{source}: {} read, {} acknowledged before it stopped",
            count(summary.keys, "key"),
            thousands(summary.acked)
        ));
    }
    let hint = match (&args.checkpoint, &e) {
        (_, replay::Error::Databases(_)) | (None, _) => String::new(),
        (Some(p), _) => format!(" (checkpoint in {}: continue with --resume)", p.display()),
    };
    lines.push(format!("{source}: {e}{hint}"));
    Outcome::Unfinished(lines)
}

fn write_summary(
    out: &mut dyn Write,
    header: &str,
    what: &str,
    s: &Summary,
    elapsed: Duration,
    len: u64,
) -> Result<()> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    writeln!(out, "{header}")?;
    writeln!(
        out,
        "{what}: {} read, {} sent, {} acknowledged, {} failed{}",
        thousands(s.keys),
        thousands(s.sent),
        thousands(s.acked),
        thousands(s.failed_total()),
        match s.unanswered {
            0 => String::new(),
            n => format!(", {} without an answer (stopped)", thousands(n)),
        }
    )?;
    if s.libraries > 0 {
        writeln!(
            out,
            "function libraries: {} read, {} loaded, {} already there, {} failed",
            s.libraries, s.libraries_loaded, s.libraries_existing, s.libraries_failed
        )?;
    }
    writeln!(
        out,
        "skipped keys: {} existing, {} expired, {} filtered out, {} before the checkpoint",
        thousands(s.skipped_exists),
        thousands(s.skipped_expired),
        thousands(s.filtered_out),
        thousands(s.skipped_resumed)
    )?;
    if !s.failed.is_empty() {
        let kinds: Vec<String> = s.failed.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        writeln!(out, "failed keys by error: {}", kinds.join(", "))?;
    }
    if !s.lost.is_empty() {
        let kinds: Vec<String> = s.lost.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        writeln!(
            out,
            "sent without what the target cannot hold: {}",
            kinds.join(", ")
        )?;
    }
    writeln!(
        out,
        "sent as: {} RESTORE, {} native; {}, {}, {} (the commands include retries and keys sent again alone)",
        thousands(s.restored),
        thousands(s.native),
        count(s.commands, "command"),
        count(s.retries, "retry"),
        count(s.topology_refreshes, "topology refresh")
    )?;
    writeln!(
        out,
        "time: {secs:.2} s, {} keys/s, {}/s",
        thousands((s.acked as f64 / secs) as u64),
        iec((len as f64 / secs) as u64)
    )?;
    writeln!(
        out,
        "replies: {}; error replies: {}, of which {} retried (redirected, busy or loading)",
        thousands(s.replies),
        thousands(s.error_replies),
        thousands(s.retried_errors),
    )?;
    Ok(())
}

/// `--dry-run`: what would be sent, per node and command, and whether the file may fit in
/// the memory the target has left (false when it may not).
fn write_dry_run(
    out: &mut dyn Write,
    header: &str,
    s: &Summary,
    memory: &[(String, Option<(u64, u64)>)],
    len: u64,
) -> Result<bool> {
    writeln!(out, "{header}")?;
    writeln!(out, "dry run: nothing was written")?;
    writeln!(
        out,
        "keys: {} read, {} to send; {} expired, {} filtered out",
        thousands(s.keys),
        thousands(s.sent),
        thousands(s.skipped_expired),
        thousands(s.filtered_out)
    )?;
    if s.libraries > 0 {
        writeln!(out, "function libraries: {} read", s.libraries)?;
    }
    let dbs: Vec<String> = s.databases.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "databases: {} (each selectable on the target)",
        dbs.join(", ")
    )?;
    for (node, counts) in &s.would_send {
        let total: u64 = counts.values().sum();
        let each: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{} {name}", thousands(*n)))
            .collect();
        writeln!(
            out,
            "would send to {node}: {} at first attempt ({}; retries and keys sent again alone would add to them)",
            count(total, "command"),
            each.join(", ")
        )?;
    }
    // The file's size is a floor for what its keys take in memory.
    let mut fits = true;
    let (mut free, mut limited) = (0u64, true);
    for (node, m) in memory {
        let text = match m {
            Some((used, 0)) => {
                limited = false;
                format!("{} used, no maxmemory", iec(*used))
            }
            Some((used, max)) => {
                free += max.saturating_sub(*used);
                format!("{} used of maxmemory {}", iec(*used), iec(*max))
            }
            None => {
                limited = false;
                "INFO memory not answered".to_string()
            }
        };
        writeln!(out, "memory on {node}: {text}")?;
    }
    if limited && len > free {
        fits = false;
        writeln!(
            out,
            "memory: the file ({}) is larger than what maxmemory leaves free ({}): it will not fit",
            iec(len),
            iec(free)
        )?;
    }
    Ok(fits)
}
