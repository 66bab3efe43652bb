//! `rdbtool replay`: load a dump (or an AOF) into a live server or cluster.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use rdbtool::export::{Target, json};
use rdbtool::replay::checkpoint::{self, Checkpoint};
use rdbtool::replay::endpoint::{Endpoint, Tls};
use rdbtool::replay::{self, Failure, Hooks, Mode, OnExists, Options, Replay, Source, Summary};
use rdbtool::scan::mapped::MappedFile;

use super::args::FilterArgs;
use super::{Exit, iec, thousands};

/// Load a dump (or an AOF) into a live server or cluster: pipelined, routed by slot, resumable.
#[derive(clap::Args)]
pub struct Args {
    /// The RDB file, or an AOF (RESP commands, with or without an RDB preamble).
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
    #[arg(long)]
    no_ttl: bool,
    /// Connections per target node.
    #[arg(long, default_value_t = 2, value_name = "N")]
    connections: usize,
    /// Commands per pipelined batch on a connection.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pipeline: usize,
    /// At most this many commands per second (for fragile targets).
    #[arg(long, value_name = "N")]
    max_ops_per_sec: Option<u64>,
    /// The target is a cluster (detected from INFO otherwise).
    #[arg(long)]
    cluster: bool,
    /// PEM file of the certificate authority for rediss:// (default: the system's).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// rediss:// without certificate checks.
    #[arg(long)]
    insecure: bool,
    /// Write refused keys here, one JSON object per line (db, key, error).
    #[arg(long, value_name = "FILE")]
    errors_to: Option<PathBuf>,
    /// Record here, atomically and every second, the position up to which every key has
    /// an answer.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Continue from --checkpoint: keys after it are sent with replace semantics.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Give up when a key has had no answer for this long (seconds).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    retry_timeout: f64,
    /// At most this many elements per native command of a large key.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch_elements: usize,
    /// What the target accepts, e.g. `6.2` or `valkey-8.1` (default: from its INFO).
    #[arg(long, value_name = "X.Y")]
    target_version: Option<Target>,
    /// Send keys without what the target cannot hold (hash field TTLs, stream metadata,
    /// LRU/LFU state...), counted by kind. Without it such keys fail, named in --errors-to.
    #[arg(long)]
    lossy: bool,
    /// Function libraries too when a key filter (--db, --key, --key-regex, --type) is given.
    #[arg(long)]
    functions: bool,
    /// The time expiries are compared with, in unix milliseconds (default: now).
    #[arg(long, value_name = "MS")]
    now: Option<i64>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
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
    s.split(',')
        .map(|pair| {
            let (from, to) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected FROM=TO"))?;
            let num = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
            Ok((num(from)?, num(to)?))
        })
        .collect::<Result<_, _>>()
        .map(DbMap)
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Exit> {
    for path in [&args.errors_to, &args.checkpoint].into_iter().flatten() {
        super::files::refuse_input_as_output(path, [args.file.as_path()])?;
    }
    let file = MappedFile::open(&args.file).with_context(|| args.file.display().to_string())?;
    let data = file.data();
    let tls = Tls {
        cacert: args
            .cacert
            .as_ref()
            .map(|p| std::fs::read(p).with_context(|| p.display().to_string()))
            .transpose()?,
        insecure: args.insecure,
    };
    let to = rdbtool::text::mask_url(&args.to);
    rdbtool::text::check_url(&args.to).map_err(|why| anyhow::anyhow!("--to {to}: {why}"))?;
    let endpoint = Endpoint::parse(&args.to, &tls).with_context(|| format!("--to {to}"))?;
    let shown = endpoint.redacted();
    let source_hash = checkpoint::source_hash(data);
    let resume_from = match (&args.checkpoint, args.resume) {
        (Some(path), true) => {
            let cp = Checkpoint::load(path).with_context(|| path.display().to_string())?;
            if cp.source_size != data.len() as u64 || cp.source_hash != source_hash {
                bail!(
                    "{}: checkpoint is for another file ({}, {} bytes)",
                    path.display(),
                    cp.source,
                    cp.source_size
                );
            }
            cp.done
        }
        _ => 0,
    };
    let opts = Options {
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
        now_ms: args.now.unwrap_or_else(super::now_ms),
        connections: args.connections.max(1),
        pipeline: args.pipeline.max(1),
        max_ops_per_sec: args.max_ops_per_sec,
        cluster: args.cluster,
        retry_timeout: Duration::from_secs_f64(args.retry_timeout.max(0.0)),
        batch_elements: args.batch_elements,
        target: args.target_version,
        resume_from,
        lossy: args.lossy,
        functions: args.functions,
    };
    let aof = replay::is_aof(data);
    // An AOF's order matters: one connection per node keeps it.
    let opts = match aof {
        true => Options {
            connections: 1,
            ..opts
        },
        false => opts,
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Without a handler Ctrl-C still ends the process; only the final checkpoint is lost.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let errors_to = args
        .errors_to
        .as_ref()
        .map(|p| {
            std::fs::File::create(p)
                .map(std::io::BufWriter::new)
                .with_context(|| p.display().to_string())
        })
        .transpose()?;
    let len = data.len() as u64;
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(len).with_style(style)
    });
    let mut hooks = CliHooks {
        file: &file,
        released: 0,
        stop,
        errors_to,
        checkpoint: args
            .checkpoint
            .clone()
            .map(|path| (path, args.file.display().to_string(), source_hash, len)),
        bar,
        started: Instant::now(),
        io_error: None,
    };
    let replay = match Replay::connect(endpoint, opts, &mut hooks) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rdbtool: {e}");
            return Ok(Exit::Error);
        }
    };
    let what = if replay.is_cluster() {
        format!("cluster of {} masters", replay.node_addresses().len())
    } else {
        "standalone".to_string()
    };
    let target = replay.facts().target;
    let started = Instant::now();
    // The RDB's checksum is summed on the other core as it is read (and its pages released);
    // the reader's pages are released by the progress hook.
    let (summary, result) = file.scan(|inp, _| match aof {
        true => replay.run(Source::Aof(data)),
        false => replay.run(Source::Rdb(inp)),
    });
    let elapsed = started.elapsed();
    if let Some(bar) = &hooks.bar {
        bar.finish_and_clear();
    }
    if let Some(w) = hooks.errors_to.as_mut() {
        w.flush()?;
    }
    write_summary(out, &args, &shown, &what, target, &summary, elapsed, len)?;
    for n in &summary.notices {
        eprintln!("rdbtool: notice: {n}");
    }
    if let Some(e) = hooks.io_error.take() {
        eprintln!("rdbtool: {e}");
        return Ok(Exit::Error);
    }
    match result {
        Ok(()) if summary.failed_total() > 0 => Ok(Exit::Problems),
        Ok(()) => Ok(Exit::Ok),
        Err(replay::Error::Rdb(e)) => {
            eprintln!("rdbtool: {}: {e}", args.file.display());
            Ok(Exit::Problems)
        }
        Err(e) => {
            let hint = match &args.checkpoint {
                Some(p) => format!(" (checkpoint in {}: continue with --resume)", p.display()),
                None => String::new(),
            };
            eprintln!("rdbtool: {}: {e}{hint}", args.file.display());
            Ok(Exit::Error)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_summary(
    out: &mut dyn Write,
    args: &Args,
    shown: &str,
    what: &str,
    target: Target,
    s: &Summary,
    elapsed: Duration,
    len: u64,
) -> Result<()> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "replay {} -> {shown} ({what}, {target})",
        args.file.display()
    )?;
    writeln!(
        out,
        "keys: {} read, {} sent, {} acknowledged, {} failed",
        thousands(s.keys),
        thousands(s.sent),
        thousands(s.acked),
        thousands(s.failed_total())
    )?;
    writeln!(
        out,
        "skipped: {} existing, {} expired, {} filtered out, {} before the checkpoint",
        thousands(s.skipped_exists),
        thousands(s.skipped_expired),
        thousands(s.filtered_out),
        thousands(s.skipped_resumed)
    )?;
    if !s.failed.is_empty() {
        let kinds: Vec<String> = s.failed.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        writeln!(out, "failed by error: {}", kinds.join(", "))?;
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
        "sent as: {} RESTORE, {} native; {} commands, {} retries, {} topology refreshes",
        thousands(s.restored),
        thousands(s.native),
        thousands(s.commands),
        thousands(s.retries),
        thousands(s.topology_refreshes)
    )?;
    writeln!(
        out,
        "time: {secs:.2} s, {} keys/s, {}/s",
        thousands((s.acked as f64 / secs) as u64),
        iec((len as f64 / secs) as u64)
    )?;
    // The line redis-cli --pipe ends with.
    writeln!(out, "errors: {}, replies: {}", s.error_replies, s.replies)?;
    Ok(())
}

struct CliHooks<'f> {
    /// The source, whose pages behind the reader are released as it goes (every key's
    /// commands are copied out of it).
    file: &'f MappedFile,
    released: u64,
    stop: Arc<AtomicBool>,
    errors_to: Option<std::io::BufWriter<std::fs::File>>,
    /// Path, source name, source hash, source size.
    checkpoint: Option<(PathBuf, String, String, u64)>,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    io_error: Option<String>,
}

impl Hooks for CliHooks<'_> {
    fn progress(&mut self, pos: u64, s: &Summary) {
        if pos > self.released {
            self.file.release(self.released as usize, pos as usize);
            // Released in whole 64 KiB blocks: the block holding `pos` goes next time.
            self.released = pos - pos % (64 << 10);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} keys/s, {} errors",
                thousands((s.acked as f64 / secs) as u64),
                thousands(s.failed_total())
            ));
        }
    }

    fn failure(&mut self, f: &Failure) {
        let Some(w) = self.errors_to.as_mut() else {
            return;
        };
        let line = (|| -> std::io::Result<()> {
            write!(w, "{{\"db\":{},\"key\":", f.db)?;
            json::write_bytes(w, &f.key)?;
            w.write_all(b",\"error\":")?;
            serde_json::to_writer(&mut *w, &f.error)?;
            w.write_all(b"}\n")
        })();
        if let Err(e) = line {
            self.io_error.get_or_insert(format!("--errors-to: {e}"));
        }
    }

    fn checkpoint(&mut self, done: u64, offset: u64, s: &Summary, complete: bool) {
        let Some((path, source, hash, size)) = &self.checkpoint else {
            return;
        };
        let cp = Checkpoint {
            source: source.clone(),
            source_size: *size,
            source_hash: hash.clone(),
            done,
            offset,
            acked: s.acked,
            failed: s.failed_total(),
            complete,
            updated_ms: super::now_ms(),
        };
        if let Err(e) = cp.save(path) {
            self.io_error
                .get_or_insert(format!("{}: {e}", path.display()));
        }
    }

    fn stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
