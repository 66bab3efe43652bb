//! What the element-level comparison of a key speaks of: the sections of a value, what an
//! element holds besides its name, and the changes of a partition with their counts.

use crate::rdb::StreamId;

/// What part of a value an element belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// Set and zset members, hash fields, list elements.
    Element,
    /// Stream entries, named by their ID (16 bytes, big-endian ms and seq).
    Entry,
    /// Stream consumer groups, by name.
    Group,
    /// Stream metadata (`last_id`).
    Meta,
}

pub const SECTIONS: [Section; 4] = [
    Section::Element,
    Section::Entry,
    Section::Group,
    Section::Meta,
];

/// What an element holds besides its name.
#[derive(Debug, Clone)]
pub enum State {
    /// A set member.
    None,
    /// A hash field's value and absolute TTL.
    Value {
        value: Vec<u8>,
        ttl: Option<u64>,
    },
    Score(f64),
    /// How many times a list holds the element.
    Count(u64),
    /// A stream entry's fields.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    Group(Group),
    /// A stream ID: the stream's last ID, or the entry an IDMP ID of a producer added.
    Id(StreamId),
}

/// A consumer group as compared (see [`super::fingerprint`] for what is left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// ID, delivery time, delivery count.
    pub pending: Vec<(StreamId, u64, u64)>,
    /// Consumer name and the IDs it owns.
    pub consumers: Vec<(Vec<u8>, Vec<StreamId>)>,
}

impl State {
    /// Equality as the fingerprint sees it (scores by their bits).
    pub fn same(&self, other: &State) -> bool {
        match (self, other) {
            (State::None, State::None) => true,
            (State::Value { value: a, ttl: x }, State::Value { value: b, ttl: y }) => {
                a == b && x == y
            }
            (State::Score(a), State::Score(b)) => a.to_bits() == b.to_bits(),
            (State::Count(a), State::Count(b)) => a == b,
            (State::Fields(a), State::Fields(b)) => a == b,
            (State::Group(a), State::Group(b)) => a == b,
            (State::Id(a), State::Id(b)) => a == b,
            _ => false,
        }
    }

    /// Bytes the state holds, roughly, for the memory budget.
    pub(super) fn size(&self) -> usize {
        match self {
            State::Value { value, .. } => value.len(),
            State::Fields(f) => f.iter().map(|(a, b)| a.len() + b.len() + 48).sum(),
            State::Group(g) => g.pending.len() * 40 + g.consumers.len() * 48,
            _ => 0,
        }
    }
}

/// One element: section, name, state.
pub type Element = (Section, Vec<u8>, State);

/// The differences found in one partition, sorted by section and name.
#[derive(Debug, Default)]
pub struct Changes {
    /// In B only. For lists, `State::Count` says how many more copies B holds.
    pub added: Vec<Element>,
    /// In A only (for lists, how many more copies A holds).
    pub removed: Vec<Element>,
    /// In both, with A's state then B's.
    pub changed: Vec<(Section, Vec<u8>, State, State)>,
    /// Bytes of all of B's elements (names, states and their framing), for the cost of a
    /// rewrite.
    pub b_bytes: u64,
}

/// Per section: added, removed, changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

/// Counts of a whole key, per [`Section`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyCounts(pub [Counts; 4]);

impl KeyCounts {
    pub fn section(&self, s: Section) -> Counts {
        self.0[s as usize]
    }

    pub(super) fn add(&mut self, c: &Changes) {
        let n = |s: &State| match s {
            State::Count(n) => *n,
            _ => 1,
        };
        for (s, _, st) in &c.added {
            self.0[*s as usize].added += n(st);
        }
        for (s, _, st) in &c.removed {
            self.0[*s as usize].removed += n(st);
        }
        for (s, ..) in &c.changed {
            self.0[*s as usize].changed += 1;
        }
    }
}
