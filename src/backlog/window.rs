//! Sliding windows over the stream's arrival times, in bounded memory: the most bytes and
//! commands that arrived in any run of N whole seconds ([`Window`]), and the shortest time in
//! which the stream grew by a given number of bytes ([`Shortest`]).

use std::collections::VecDeque;

use serde::Serialize;

/// The busiest run of `seconds` consecutive whole seconds (of Unix time) of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Peak {
    pub seconds: u64,
    /// The most stream bytes that arrived in such a run, and the first second of that run
    /// that holds any (Unix seconds).
    pub bytes: u64,
    pub bytes_from: Option<u64>,
    /// The most commands counted in such a run, and the first second of that run that holds
    /// any stream bytes.
    pub commands: u64,
    pub commands_from: Option<u64>,
}

/// The seconds of the last `seconds` that hold anything: at most `seconds` buckets.
#[derive(Debug)]
pub struct Window {
    peak: Peak,
    /// (second, bytes, commands), oldest first.
    buckets: VecDeque<(u64, u64, u64)>,
    bytes: u64,
    commands: u64,
}

impl Window {
    pub fn new(seconds: u64) -> Self {
        Window {
            peak: Peak {
                seconds: seconds.max(1),
                ..Peak::default()
            },
            buckets: VecDeque::new(),
            bytes: 0,
            commands: 0,
        }
    }

    /// Counts what arrived in `second`; a second earlier than the last one seen (a clock set
    /// back) counts as the last one.
    pub fn add(&mut self, second: u64, bytes: u64, commands: u64) {
        match self.buckets.back_mut() {
            Some(b) if b.0 >= second => {
                b.1 += bytes;
                b.2 += commands;
            }
            _ => self.buckets.push_back((second, bytes, commands)),
        }
        self.bytes += bytes;
        self.commands += commands;
        let newest = self.buckets.back().map_or(second, |b| b.0);
        while let Some(&(s, b, c)) = self.buckets.front()
            && s + self.peak.seconds <= newest
        {
            self.buckets.pop_front();
            self.bytes -= b;
            self.commands -= c;
        }
        let from = self.buckets.front().map(|b| b.0);
        let p = &mut self.peak;
        if self.bytes > p.bytes {
            (p.bytes, p.bytes_from) = (self.bytes, from);
        }
        if self.commands > p.commands {
            (p.commands, p.commands_from) = (self.commands, from);
        }
    }

    pub fn peak(&self) -> &Peak {
        &self.peak
    }
}

/// Counts per second, handed to windows once a second is over (one step per second, not
/// per command).
#[derive(Debug)]
pub struct Seconds {
    pub windows: Vec<Window>,
    /// The second being counted: (second, bytes, commands).
    open: Option<(u64, u64, u64)>,
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
    /// The seconds over, kept (instead of windowed) by a part of a walk, for [`Seconds::merge`].
    kept: Option<Vec<(u64, u64, u64)>>,
}

impl Seconds {
    pub fn new(windows: &[u64]) -> Self {
        Seconds {
            windows: windows.iter().map(|&s| Window::new(s)).collect(),
            open: None,
            first_us: None,
            last_us: None,
            kept: None,
        }
    }

    /// Seconds that keep their counts for [`Seconds::merge`] (one entry per second that
    /// holds anything) instead of windowing them.
    pub fn kept() -> Self {
        Seconds {
            kept: Some(Vec::new()),
            ..Seconds::new(&[])
        }
    }

    pub fn add(&mut self, time_us: u64, bytes: u64, commands: u64) {
        self.first_us.get_or_insert(time_us);
        self.last_us = Some(self.last_us.map_or(time_us, |l| l.max(time_us)));
        self.second(time_us / 1_000_000, bytes, commands);
    }

    /// Counts the seconds of a part read after what was counted so far, as if added here.
    pub fn merge(&mut self, mut part: Seconds) {
        part.flush();
        if let Some(f) = part.first_us {
            self.first_us.get_or_insert(f);
        }
        self.last_us = self.last_us.max(part.last_us);
        for (s, b, c) in part.kept.unwrap_or_default() {
            self.second(s, b, c);
        }
    }

    fn second(&mut self, second: u64, bytes: u64, commands: u64) {
        match &mut self.open {
            Some(o) if o.0 >= second => {
                o.1 += bytes;
                o.2 += commands;
            }
            _ => {
                self.flush();
                self.open = Some((second, bytes, commands));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((s, b, c)) = self.open.take() {
            if let Some(kept) = &mut self.kept {
                kept.push((s, b, c));
            }
            for w in &mut self.windows {
                w.add(s, b, c);
            }
        }
    }

    /// Whole seconds from the first arrival's to the last's, both counted (0 when none).
    pub fn span(&self) -> u64 {
        match (self.first_us, self.last_us) {
            (Some(f), Some(l)) => l / 1_000_000 - f / 1_000_000 + 1,
            _ => 0,
        }
    }

    /// The peaks of the windows, in the order asked.
    pub fn finish(mut self) -> Vec<Peak> {
        self.flush();
        self.windows.into_iter().map(|w| w.peak).collect()
    }
}

/// Most records [`Shortest`] keeps; past it the oldest go, and windows that would need them
/// are not measured (said by `cut`).
pub const MAX_RECORDS: usize = 1 << 20;

/// The shortest time in which the stream grew by at least `need` bytes: the time from the
/// arrival of the first record of a run to that of its last.
#[derive(Debug, Clone, Serialize)]
pub struct Covered {
    pub need: u64,
    /// Microseconds; None when the stream never grew that much within the records kept.
    pub micros: Option<u64>,
    /// When that run began (Unix microseconds).
    pub from_us: Option<u64>,
    /// Whether records were dropped for the bound (a longer window was not measured).
    pub cut: bool,
}

#[derive(Debug)]
pub struct Shortest {
    covered: Covered,
    /// (arrival, bytes) of the last records, oldest first.
    records: VecDeque<(u64, u64)>,
    sum: u64,
}

impl Shortest {
    pub fn new(need: u64) -> Self {
        Shortest {
            covered: Covered {
                need: need.max(1),
                micros: None,
                from_us: None,
                cut: false,
            },
            records: VecDeque::new(),
            sum: 0,
        }
    }

    pub fn add(&mut self, time_us: u64, bytes: u64) {
        let time_us = self.records.back().map_or(time_us, |r| r.0.max(time_us));
        self.records.push_back((time_us, bytes));
        self.sum += bytes;
        let need = self.covered.need;
        while let Some(&(_, b)) = self.records.front()
            && self.sum - b >= need
        {
            self.records.pop_front();
            self.sum -= b;
        }
        if self.sum >= need
            && let Some(&(from, _)) = self.records.front()
            && self.covered.micros.is_none_or(|m| time_us - from < m)
        {
            self.covered.micros = Some(time_us - from);
            self.covered.from_us = Some(from);
        }
        if self.records.len() > MAX_RECORDS {
            let (_, b) = self.records.pop_front().expect("not empty");
            self.sum -= b;
            self.covered.cut = true;
        }
    }

    pub fn finish(self) -> Covered {
        self.covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn windows_find_the_busiest_run_of_seconds() {
        let mut s = Seconds::new(&[1, 2, 10]);
        // Second 100: 10 bytes; 101: 30 (two adds); 102: 5; 105: 40; 200: 1.
        for (t, b, c) in [(100, 10, 1), (101, 20, 1), (101, 10, 3), (102, 5, 1)] {
            s.add(t * S + 5, b, c);
        }
        s.add(105 * S, 40, 1);
        s.add(200 * S + 999_999, 1, 1);
        assert_eq!(s.span(), 101);
        let peaks = s.finish();
        let p = |seconds, bytes, bytes_from, commands, commands_from| Peak {
            seconds,
            bytes,
            bytes_from: Some(bytes_from),
            commands,
            commands_from: Some(commands_from),
        };
        assert_eq!(peaks[0], p(1, 40, 105, 4, 101));
        assert_eq!(peaks[1], p(2, 40, 100, 5, 100));
        assert_eq!(peaks[2], p(10, 85, 100, 7, 100));
    }

    #[test]
    fn the_shortest_run_that_grew_by_n_bytes() {
        let mut s = Shortest::new(100);
        for (t, b) in [(0, 50), (10, 50), (1000, 60), (1004, 40), (1005, 1)] {
            s.add(t, b);
        }
        let c = s.finish();
        assert_eq!((c.micros, c.from_us, c.cut), (Some(4), Some(1000), false));
        let mut never = Shortest::new(1000);
        never.add(0, 999);
        assert_eq!(never.finish().micros, None);
    }
}
