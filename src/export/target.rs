//! What the server that will receive a command stream accepts: which RESTORE payload versions
//! and which commands (multi-field HSET, HPEXPIREAT, XSETID options...).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub valkey: bool,
    pub major: u16,
    pub minor: u16,
}

impl Default for Target {
    /// The newest server this tool knows, which accepts everything it writes.
    fn default() -> Self {
        Target {
            valkey: false,
            major: 8,
            minor: 6,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.valkey { "valkey-" } else { "" };
        write!(f, "{prefix}{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `7.0`, `6.2.14`, `valkey-8.1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (valkey, rest) = match s.strip_prefix("valkey-") {
            Some(r) => (true, r),
            None => (false, s.strip_prefix("redis-").unwrap_or(s)),
        };
        let mut parts = rest.split('.');
        let num = |p: Option<&str>| p.and_then(|x| x.parse::<u16>().ok());
        let major = num(parts.next())
            .ok_or_else(|| format!("bad version {s:?}: expected X.Y or valkey-X.Y"))?;
        let minor = num(parts.next()).unwrap_or(0);
        Ok(Target {
            valkey,
            major,
            minor,
        })
    }
}

impl Target {
    fn at_least(&self, major: u16, minor: u16) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// The RDB version the target writes, and so the newest payload it reads.
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
    fn versions() {
        let t: Target = "7.0".parse().unwrap();
        assert_eq!(t.rdb_version(), 10);
        assert!(t.accepts_payload(9) && !t.accepts_payload(11));
        assert!(!t.field_ttl());
        let v: Target = "valkey-9.0".parse().unwrap();
        assert!(v.accepts_payload(11) && v.accepts_payload(80) && !v.accepts_payload(12));
        assert!(v.field_ttl());
        assert_eq!("6.2.14".parse::<Target>().unwrap().rdb_version(), 9);
        assert!("x".parse::<Target>().is_err());
    }
}
