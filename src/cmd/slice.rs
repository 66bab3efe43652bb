//! The options that slice an AOF (`--command`, `--from-offset/--to-offset`,
//! `--since/--until`), shared by `export` and `replay` of an AOF input.

use anyhow::{Result, bail};

use rdbtool::aof::slice::Selection;
use rdbtool::filter::Filter;

/// Which commands of an AOF go out (AOF inputs only).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SliceArgs {
    /// AOF: only these commands (names, any case; comma-separated or repeated).
    #[arg(long = "command", value_name = "NAME", value_delimiter = ',')]
    commands: Vec<String>,
    /// AOF: commands starting at or after this offset: N (counting the files in load order,
    /// the base first) or FILE:N (in that file).
    #[arg(long, value_name = "OFFSET")]
    from_offset: Option<String>,
    /// AOF: commands starting before this offset (N or FILE:N). A capture directory (replay):
    /// its stream up to this replication offset (commands ending at or before it).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<String>,
    /// AOF: commands whose #TS time is at or after this: unix seconds or an RFC 3339 time
    /// (2026-12-07T14:02:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// AOF: commands whose #TS time is at or before this.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

impl SliceArgs {
    /// The first AOF-only option given, to refuse it on an RDB input.
    pub fn given(&self) -> Option<&'static str> {
        [
            ("--command", !self.commands.is_empty()),
            ("--from-offset", self.from_offset.is_some()),
            ("--to-offset", self.to_offset.is_some()),
            ("--since", self.since.is_some()),
            ("--until", self.until.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, set)| set.then_some(flag))
    }

    /// `--to-offset` as given (a capture's replay reads it as its own offset).
    pub fn to_offset(&self) -> Option<&str> {
        self.to_offset.as_deref()
    }

    /// Whether `--from-offset` or `--to-offset` is given (they need the input's files).
    pub fn offsets(&self) -> bool {
        self.from_offset.is_some() || self.to_offset.is_some()
    }

    /// The selection, `resolve` turning an offset option into a global offset (see
    /// [`rdbtool::aof::input::AofInput::resolve_offset`]), with the keys of `filter`.
    pub fn selection(
        &self,
        resolve: &dyn Fn(&str) -> Result<u64, String>,
        filter: &Filter,
    ) -> Result<Selection> {
        let offset = |text: &Option<String>| -> Result<Option<u64>> {
            text.as_deref()
                .map(|t| resolve(t).map_err(anyhow::Error::msg))
                .transpose()
        };
        let time = |flag: &str, text: &Option<String>| -> Result<Option<u64>> {
            text.as_deref()
                .map(|t| match parse_time(t) {
                    Some(secs) => Ok(secs),
                    None => bail!("{flag} {t}: expected unix seconds or an RFC 3339 time"),
                })
                .transpose()
        };
        Ok(Selection {
            filter: filter.clone(),
            commands: self.commands.clone(),
            from_offset: offset(&self.from_offset)?,
            to_offset: offset(&self.to_offset)?,
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
        })
    }
}

/// Unix seconds from `1700000000` or an RFC 3339 time (`2023-11-14T22:13:20Z`,
/// `2023-11-14 23:13:20+01:00`, fractions of a second ignored).
pub fn parse_time(text: &str) -> Option<u64> {
    if let Ok(secs) = text.parse() {
        return Some(secs);
    }
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), as the inverse of inspect's utc_date.
    let y = y - i64::from(mo <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s - offset).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_time("2023-11-14 23:13:20.5+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2023-13-14T22:13:20Z"), None);
    }
}
