//! A server release, `redis-7.4` or `valkey-9.1`: the one type, with the one parser, for
//! what a command stream's target accepts (`--target-version`, a server's INFO), which
//! release's memory layout an estimate follows (`--memory-model`, a file's `redis-ver`), and
//! whatever else depends on the release a file came from or goes to.

use std::fmt;
use std::str::FromStr;

/// A Redis or Valkey release by its major and minor version. Ordered by family (every Redis
/// release before every Valkey one), then version; [`Release::at_least`] compares versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub valkey: bool,
    pub major: u16,
    pub minor: u16,
}

impl Release {
    pub const fn redis(major: u16, minor: u16) -> Self {
        Release {
            valkey: false,
            major,
            minor,
        }
    }

    pub const fn valkey(major: u16, minor: u16) -> Self {
        Release {
            valkey: true,
            major,
            minor,
        }
    }

    /// `X.Y[.Z...]` (a missing minor is 0) as a release of one family, as INFO and the
    /// `redis-ver` / `valkey-ver` aux fields give it.
    pub fn version(valkey: bool, v: &str) -> Option<Self> {
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some(Release {
            valkey,
            major,
            minor,
        })
    }

    /// Whether this release's version is `major.minor` or later (the family aside).
    pub fn at_least(&self, major: u16, minor: u16) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// As `--target-version` is usually written: `7.4` for Redis, `valkey-9.1`.
    pub fn short(self) -> Short {
        Short(self)
    }
}

impl Default for Release {
    /// The newest server this tool knows, which accepts everything it writes.
    fn default() -> Self {
        Release::redis(8, 6)
    }
}

impl fmt::Display for Release {
    /// `redis-7.4`, `valkey-9.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.valkey { "valkey" } else { "redis" };
        write!(f, "{family}-{}.{}", self.major, self.minor)
    }
}

/// A release shown without Redis's prefix (see [`Release::short`]).
pub struct Short(Release);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.0.valkey { "valkey-" } else { "" };
        write!(f, "{prefix}{}.{}", self.0.major, self.0.minor)
    }
}

impl FromStr for Release {
    type Err = String;

    /// `7.0`, `redis-6.2.14`, `valkey-8.1`: a bare version is Redis's.
    fn from_str(s: &str) -> Result<Self, String> {
        let (valkey, v) = match s.strip_prefix("valkey-") {
            Some(v) => (true, v),
            None => (false, s.strip_prefix("redis-").unwrap_or(s)),
        };
        Release::version(valkey, v)
            .ok_or_else(|| format!("bad version {s:?}: expected X.Y or valkey-X.Y"))
    }
}

/// What a release accepts of what a command stream may hold: which RESTORE payload versions
/// and which commands (multi-field HSET, HPEXPIREAT, XSETID options...).
impl Release {
    /// The RDB version the release writes, and so the newest payload it reads.
    pub fn rdb_version(&self) -> u16 {
        if self.valkey {
            return if self.major >= 9 { 80 } else { 11 };
        }
        match (self.major, self.minor) {
            (0..=2, _) => 6,
            (3, 0..=1) => 6,
            (3, _) => 7,
            (4, _) => 8,
            (5..=6, _) => 9,
            (7, 0..=1) => 10,
            (7, 2..=3) => 11,
            (7, _) | (8, 0..=5) => 12,
            _ => 13,
        }
    }

    /// Whether RESTORE accepts a payload of `version`. Valkey 9 refuses Redis's formats 12-79
    /// (they mean different things there).
    pub fn accepts_payload(&self, version: u16) -> bool {
        if self.valkey && (12..80).contains(&version) {
            return false;
        }
        version <= self.rdb_version()
    }

    pub fn restore_absttl(&self) -> bool {
        self.valkey || self.at_least(5, 0)
    }

    pub fn multi_field_hset(&self) -> bool {
        self.valkey || self.at_least(4, 0)
    }

    pub fn field_ttl(&self) -> bool {
        if self.valkey {
            self.major >= 9
        } else {
            self.at_least(7, 4)
        }
    }

    /// XSETID ENTRIESADDED / MAXDELETEDID and XGROUP CREATE ENTRIESREAD.
    pub fn stream_v2_commands(&self) -> bool {
        self.valkey || self.at_least(7, 0)
    }

    pub fn create_consumer(&self) -> bool {
        self.valkey || self.at_least(6, 2)
    }

    pub fn functions(&self) -> bool {
        self.valkey || self.at_least(7, 0)
    }

    /// XCFGSET IDMP-DURATION / IDMP-MAXSIZE (streams of idempotent producers, Redis 8.6).
    pub fn idmp_settings(&self) -> bool {
        !self.valkey && self.at_least(8, 6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_for_every_spelling() {
        assert_eq!("7.0".parse(), Ok(Release::redis(7, 0)));
        assert_eq!("redis-6.2.14".parse(), Ok(Release::redis(6, 2)));
        assert_eq!("valkey-8.1".parse(), Ok(Release::valkey(8, 1)));
        assert_eq!("7".parse(), Ok(Release::redis(7, 0)));
        assert_eq!(Release::version(true, "9.0.1"), Some(Release::valkey(9, 0)));
        for bad in ["x", "", "valkey-", "7.x", "redis-7.2a"] {
            let e = bad.parse::<Release>().unwrap_err();
            assert_eq!(
                e,
                format!("bad version {bad:?}: expected X.Y or valkey-X.Y")
            );
        }
    }

    #[test]
    fn shown_in_full_or_short() {
        assert_eq!(Release::redis(7, 4).to_string(), "redis-7.4");
        assert_eq!(Release::valkey(9, 1).to_string(), "valkey-9.1");
        assert_eq!(Release::redis(7, 4).short().to_string(), "7.4");
        assert_eq!(Release::valkey(9, 1).short().to_string(), "valkey-9.1");
        assert_eq!(Release::default().short().to_string(), "8.6");
    }

    #[test]
    fn ordered_and_compared() {
        assert!(Release::redis(6, 2) < Release::redis(7, 0));
        assert!(Release::redis(7, 4) < Release::redis(7, 10));
        assert!(Release::redis(8, 6) < Release::valkey(7, 2));
        assert!(Release::redis(7, 4).at_least(7, 4) && Release::redis(7, 4).at_least(6, 9));
        assert!(!Release::redis(7, 2).at_least(7, 4));
        assert!(Release::valkey(8, 0).at_least(7, 2));
    }

    #[test]
    fn what_a_target_accepts() {
        let t = Release::redis(7, 0);
        assert_eq!(t.rdb_version(), 10);
        assert!(t.accepts_payload(9) && !t.accepts_payload(11));
        assert!(!t.field_ttl());
        let v = Release::valkey(9, 0);
        assert!(v.accepts_payload(11) && v.accepts_payload(80) && !v.accepts_payload(12));
        assert!(v.field_ttl());
        assert_eq!(Release::redis(6, 2).rdb_version(), 9);
    }
}
