//! Flag groups shared by several subcommands, so `--db`, `--key` and `--type` mean the same
//! thing everywhere.

use anyhow::{Context, Result};

use rdbtool::export::commands::Batch;
use rdbtool::filter::Filter;
use rdbtool::rdb::Kind;
use rdbtool::release::Release;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only keys of this database (repeatable).
    #[arg(long = "db", value_name = "N")]
    dbs: Vec<u64>,
    /// Only keys matching this Redis glob (`*`, `?`, `[a-z]`, `\` escapes; repeatable).
    #[arg(long = "key", value_name = "GLOB")]
    globs: Vec<String>,
    /// Only keys matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    key_regex: Option<String>,
    /// Only keys of this type (repeatable).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    types: Vec<TypeArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TypeArg {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    Module,
}

impl FilterArgs {
    pub fn filter(&self) -> Result<Filter> {
        let regex = self
            .key_regex
            .as_deref()
            .map(regex::bytes::Regex::new)
            .transpose()
            .context("--key-regex")?;
        let kinds = self
            .types
            .iter()
            .map(|t| match t {
                TypeArg::String => Kind::String,
                TypeArg::List => Kind::List,
                TypeArg::Set => Kind::Set,
                TypeArg::Zset => Kind::Zset,
                TypeArg::Hash => Kind::Hash,
                TypeArg::Stream => Kind::Stream,
                TypeArg::Module => Kind::Module,
            })
            .collect();
        Ok(Filter {
            dbs: self.dbs.clone(),
            globs: self.globs.iter().map(|k| k.as_bytes().to_vec()).collect(),
            regex,
            kinds,
        })
    }
}

/// What every subcommand takes alike, decided once at start-up.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl CommonArgs {
    pub fn progress(&self) -> super::Progress {
        super::Progress::new(self.quiet)
    }
}

/// The time "now" for expiries and TTLs (`inspect`, `export`, `diff`, `replay`).
#[derive(clap::Args, Debug, Clone)]
pub struct ClockArgs {
    /// The time expiries are compared with and TTLs measured from, in unix milliseconds
    /// (default: now).
    #[arg(long, value_name = "MS")]
    now: Option<i64>,
}

impl ClockArgs {
    pub fn now_ms(&self) -> i64 {
        self.now.unwrap_or_else(super::now_ms)
    }
}

/// How a command stream is written (`export --format resp`, `diff --format resp`).
#[derive(clap::Args, Debug, Clone)]
pub struct RespArgs {
    /// RESP: one `RESTORE key ttl payload ABSTTL` per key, built from the file's own bytes,
    /// instead of native commands.
    #[arg(long)]
    pub restore: bool,
    /// RESP: what the receiving server accepts, e.g. `6.2`, `7.4`, `valkey-8.1` (default: newest).
    #[arg(long, value_name = "X.Y")]
    target_version: Option<Release>,
    /// RESP: at most this many elements per command of a large key.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch_elements: usize,
    /// RESP: at most about this many bytes per command of a large key.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    batch_bytes: usize,
    /// RESP with --restore: larger values are sent as native commands (the server's
    /// proto-max-bulk-len).
    #[arg(long, default_value_t = 512 << 20, value_name = "BYTES")]
    pub restore_max: u64,
    /// RESP: write keys without what --target-version cannot hold (hash field TTLs, stream
    /// metadata, LRU/LFU state...), counted by kind. Without it such keys are left out,
    /// named on standard error, and the exit status is 1.
    #[arg(long)]
    pub lossy: bool,
}

impl RespArgs {
    pub fn target(&self) -> Release {
        self.target_version.unwrap_or_default()
    }

    pub fn batch(&self) -> Batch {
        Batch {
            elements: self.batch_elements.max(1),
            bytes: self.batch_bytes.max(1),
        }
    }
}

/// Which keys count as expired, and what happens to them (`export`, `diff`).
#[derive(clap::Args, Debug, Clone)]
pub struct ExpiryArgs {
    /// Keys already expired (relative to --now): skipped, as a server loading the file would,
    /// or kept.
    #[arg(long, value_enum, default_value_t = Expired::Skip)]
    expired: Expired,
    #[command(flatten)]
    clock: ClockArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    Skip,
    Keep,
}

impl ExpiryArgs {
    pub fn keep_expired(&self) -> bool {
        self.expired == Expired::Keep
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// TLS settings for `rediss://` URLs (`replay`, `backlog capture`, `sync`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// TLS: PEM file of the certificate authority for rediss:// (default: the system's).
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// TLS: rediss:// without certificate checks.
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    /// The settings, the authority's file read.
    pub fn tls(&self) -> Result<rdbtool::replay::endpoint::Tls> {
        let cacert = self.cacert.as_ref();
        Ok(rdbtool::replay::endpoint::Tls {
            cacert: cacert
                .map(|p| std::fs::read(p).with_context(|| p.display().to_string()))
                .transpose()?,
            insecure: self.insecure,
        })
    }

    /// With none of `urls` a `rediss://` one, the first TLS option given (a mistake).
    pub fn needless<'u>(&self, urls: impl IntoIterator<Item = &'u str>) -> Option<&'static str> {
        let tls = |u: &str| {
            u.get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
        };
        if urls.into_iter().any(tls) {
            return None;
        }
        let given = [
            (self.cacert.is_some(), "--cacert"),
            (self.insecure, "--insecure"),
        ];
        given.into_iter().find(|(on, _)| *on).map(|(_, name)| name)
    }
}

/// `1s`, `250ms`, `2m`, `1h` as milliseconds; a bare number is `bare_ms` milliseconds each.
fn duration_in(s: &str, bare_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 1s, 250ms"))?;
    let scale = match unit.trim() {
        "" => bare_ms,
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("bad duration unit {other:?}: use ms, s, m or h")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| "duration too long".into())
}

/// A duration in milliseconds (`1s`, `250ms`, `2m`, `1h`; a bare number is milliseconds).
pub fn duration_ms(s: &str) -> Result<u64, String> {
    duration_in(s, 1)
}

/// A duration (`30s`, `5m`, `1h`, `250ms`; a bare number is seconds).
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    duration_in(s, 1000).map(std::time::Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("1s"), Ok(1000));
        assert_eq!(duration_ms("250ms"), Ok(250));
        assert_eq!(duration_ms("250"), Ok(250));
        assert_eq!(duration_ms("2m"), Ok(120_000));
        assert_eq!(duration_ms("0"), Ok(0));
        assert!(duration_ms("1d").is_err() && duration_ms("s").is_err());
        assert_eq!(duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(duration("1h"), Ok(std::time::Duration::from_secs(3600)));
    }
}
