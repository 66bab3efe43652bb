//! The `repl-backlog-size` a capture's load needs: a replica disconnected for a given time
//! still resyncs partially if the backlog holds every byte the stream grew by meanwhile, so
//! the size is the most the stream grew in any window of that length (the observed peak),
//! plus headroom; and how long a given size would have covered at the peak. One pass over the
//! record headers (the commands are not parsed).

use std::ops::ControlFlow;

use serde::Serialize;

use super::store::Capture;
use super::stream;
use super::window::{Covered, Peak, Seconds, Shortest};

/// The servers' default `repl-backlog-size`: Redis's (1mb) and Valkey 8+'s (10mb).
pub const REDIS_DEFAULT: u64 = 1 << 20;
pub const VALKEY_DEFAULT: u64 = 10 << 20;
const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct Sizing {
    /// The disconnection asked about.
    pub window_seconds: u64,
    /// The stream read: bytes, first and last arrival (Unix microseconds), whole seconds
    /// from the first to the last (both counted).
    pub bytes: u64,
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
    pub span_seconds: u64,
    /// The busiest run of `window_seconds` whole seconds (commands here: records).
    pub peak: Peak,
    /// The capture spans less than the window: `needed` is its whole-span rate times the
    /// window, not a measured peak.
    pub scaled: bool,
    /// Bytes the backlog must hold, and that as a rate over the window.
    pub needed: u64,
    pub bytes_per_second: f64,
    pub headroom_percent: u64,
    /// `needed` plus the headroom, rounded up to whole MiB.
    pub suggested: u64,
    pub configured: Option<Configured>,
    /// Where an epoch's stream stopped being readable: damage, and torn tails (what a kill
    /// leaves; not damage). The figures cover what came before.
    pub damage: Vec<String>,
    pub torn: Vec<String>,
}

/// A size and how long it would have covered at the peak.
#[derive(Debug, Clone, Serialize)]
pub struct Configured {
    pub bytes: u64,
    /// Where the size comes from (`capture.json` or `--backlog-size`).
    pub from: &'static str,
    /// Which server's default it is, if it is one.
    pub default_of: Option<&'static str>,
    pub covered: Covered,
}

/// Which server's default `repl-backlog-size` `bytes` is.
pub fn default_of(bytes: u64) -> Option<&'static str> {
    match bytes {
        REDIS_DEFAULT => Some("Redis's default (1mb)"),
        VALKEY_DEFAULT => Some("Valkey 8+'s default (10mb)"),
        _ => None,
    }
}

/// The `repl-backlog-size` recorded in the capture (the latest epoch's that has one).
pub fn recorded(capture: &Capture) -> Option<u64> {
    capture
        .epochs
        .iter()
        .rev()
        .find_map(|e| e.meta.backlog_size)
}

/// Sizes the backlog for a disconnection of `window_seconds`, with `headroom_percent` more;
/// `configured` (bytes, where from) is measured against the peak.
pub fn size(
    capture: &Capture,
    window_seconds: u64,
    headroom_percent: u64,
    configured: Option<(u64, &'static str)>,
) -> std::io::Result<Sizing> {
    let window_seconds = window_seconds.max(1);
    let mut seconds = Seconds::new(&[window_seconds]);
    let mut shortest = configured.map(|(bytes, _)| Shortest::new(bytes));
    let (mut bytes, mut damage, mut torn) = (0, Vec::new(), Vec::new());
    for epoch in &capture.epochs {
        let reach = stream::records(epoch, None, &mut |_, r| {
            let len = r.payload.len() as u64;
            bytes += len;
            seconds.add(r.time_us, len, 1);
            if let Some(s) = &mut shortest {
                s.add(r.time_us, len);
            }
            ControlFlow::Continue(())
        })?;
        if let Some(f) = reach.fault {
            let line = format!("epoch {}: {f}", epoch.meta.epoch);
            match f.torn {
                true => torn.push(line),
                false => damage.push(line),
            }
        }
    }
    let (first_us, last_us, span) = (seconds.first_us, seconds.last_us, seconds.span());
    let peak = seconds.finish().remove(0);
    let scaled = span > 0 && span < window_seconds;
    let needed = match scaled {
        true => (bytes as u128 * window_seconds as u128).div_ceil(span as u128) as u64,
        false => peak.bytes,
    };
    let with_headroom = (needed as u128 * (100 + headroom_percent as u128)).div_ceil(100);
    let suggested = (with_headroom.div_ceil(MIB as u128).max(1) * MIB as u128) as u64;
    Ok(Sizing {
        window_seconds,
        bytes,
        first_us,
        last_us,
        span_seconds: span,
        peak,
        scaled,
        needed,
        bytes_per_second: needed as f64 / window_seconds as f64,
        headroom_percent,
        suggested,
        configured: configured.zip(shortest).map(|((b, from), s)| Configured {
            bytes: b,
            from,
            default_of: default_of(b),
            covered: s.finish(),
        }),
        damage,
        torn,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backlog::store::Start;
    use crate::backlog::store::writer::{EpochStart, Writer};
    use crate::resp::text as resp;

    const S: u64 = 1_000_000;

    /// A capture directory with one epoch begun (backlog-only, from offset 101; Redis 7.0,
    /// its default backlog size).
    pub(crate) fn writer(dir: &std::path::Path) -> Writer {
        let mut w = Writer::create(dir, "redis://h:1", 1 << 20).unwrap();
        let start = EpochStart {
            start_kind: Start::Backlog,
            replid: "a".repeat(40),
            psync_offset: 100,
            server: Some("7.0.15".into()),
            backlog_size: Some(REDIS_DEFAULT),
            replid2: None,
        };
        w.start_epoch(start).unwrap();
        w
    }

    /// A capture whose records are `(arrival µs, payload bytes)` (each one SET of that size).
    pub(crate) fn capture(dir: &std::path::Path, records: &[(u64, usize)]) -> Capture {
        let mut w = writer(dir);
        for (i, &(t, size)) in records.iter().enumerate() {
            let set = set_of(i, size);
            w.append(set.as_bytes(), w.at_end().after(set.as_bytes()), t)
                .unwrap();
        }
        w.seal().unwrap();
        Capture::open(dir).unwrap()
    }

    /// `SET k<i> <value>` of exactly `size` bytes (at least 40).
    pub(crate) fn set_of(i: usize, size: usize) -> String {
        let bare = resp(&["SET", &format!("k{i:06}"), ""]).len();
        let value = size - bare;
        let value = "v".repeat(value - value.to_string().len() + 1);
        let cmd = resp(&["SET", &format!("k{i:06}"), &value]);
        assert_eq!(cmd.len(), size, "{cmd:?}");
        cmd
    }

    #[test]
    fn the_size_is_the_peak_window_plus_headroom() {
        let dir = tempfile::tempdir().unwrap();
        // 1000 B/s for 100 s, then 3 seconds of 400 KB each, then quiet.
        let mut records: Vec<(u64, usize)> = (0..100).map(|s| (1000 * S + s * S, 1000)).collect();
        records.extend((0..3).map(|s| (1100 * S + s * S + 1, 400_000)));
        records.push((1200 * S, 1000));
        let cap = capture(dir.path(), &records);
        let s = size(&cap, 60, 25, Some((REDIS_DEFAULT, "capture.json"))).unwrap();
        assert_eq!(s.span_seconds, 201);
        assert!(!s.scaled);
        // The window 1043..=1102: 57 quiet seconds and the 3 big ones.
        assert_eq!(s.peak.bytes, 57_000 + 1_200_000);
        assert_eq!(s.peak.bytes_from, Some(1043));
        assert_eq!(s.needed, 1_257_000);
        // 1,571,250 rounded up to 2 MiB.
        assert_eq!(s.suggested, 2 * MIB);
        let c = s.configured.unwrap();
        assert_eq!(c.default_of, Some("Redis's default (1mb)"));
        // 1 MiB is reached by the third big record: 2 s after the first.
        assert_eq!(
            (c.covered.micros, c.covered.from_us),
            (Some(2 * S), Some(1100 * S + 1))
        );
        assert!(s.damage.is_empty() && s.torn.is_empty());
    }

    #[test]
    fn a_capture_shorter_than_the_window_is_scaled() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<(u64, usize)> = (0..10).map(|s| (50 * S + s * S, 2000)).collect();
        let cap = capture(dir.path(), &records);
        let s = size(&cap, 60, 0, None).unwrap();
        assert_eq!((s.span_seconds, s.bytes), (10, 20_000));
        assert!(s.scaled);
        assert_eq!(s.needed, 120_000);
        assert_eq!(s.suggested, MIB);
        assert!(s.configured.is_none());
    }
}
