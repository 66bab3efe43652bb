//! Element-level differences of one key: which members, fields, list elements, stream
//! entries and consumer groups were added, removed or changed.
//!
//! Both values are decoded into maps (element name to its state) and compared. Memory is held
//! to a budget: when the elements of a key do not fit, one pass measures how many bytes fall
//! under each residue of a hash of their names, and consecutive residues are grouped into
//! partitions that fit; partitions are then compared one at a time, each reading both values
//! again (a mapped file costs nothing to reread; a DUMP payload is kept for the duration).
//! Empty residues cost nothing, so a key is read at most once per element however small the
//! budget (a partition of one residue is compared even when it is over the budget).

use std::collections::HashMap;

use super::Value;
use super::fingerprint::Seed;
use crate::rdb::{self, Item, Kind, StreamId, Visitor};

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

    fn size(&self) -> usize {
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

    fn add(&mut self, c: &Changes) {
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

/// Which elements a pass looks at: those whose name hash modulo `modulus` is in `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub modulus: u64,
    pub from: u64,
    pub to: u64,
}

impl Part {
    const WHOLE: Part = Part {
        modulus: 1,
        from: 0,
        to: 1,
    };

    fn is_whole(&self) -> bool {
        self.from == 0 && self.to == self.modulus
    }
}

/// The finest split: residues measured per key (at most 512 KiB of counters).
const MAX_MODULUS: u64 = 1 << 16;
/// Most partitions, and so most reads, one key is compared in.
const MAX_PASSES: u64 = 64;

/// What an element costs in a command beyond its bytes (RESP framing of its arguments).
pub const ARG_OVERHEAD: u64 = 8;

/// Bookkeeping bytes counted per element held (map entry, vectors).
const PER_ELEMENT: usize = 96;

/// One side's elements of one partition.
type Map = HashMap<(Section, Vec<u8>), State>;

/// A partition's map, the bytes of all of the value's elements, and the bytes the map holds.
type Collected = (Map, u64, usize);

/// A stream entry being gathered: ID name, fields so far, fields still to come.
type PendingEntry = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, usize);

/// Builds one side's map of one partition.
struct Collect {
    kind: Kind,
    seed: Seed,
    part: Part,
    map: Map,
    bytes: usize,
    /// All of the value's element bytes, in or out of the partition.
    all_bytes: u64,
    /// None: the partition is planned to fit, and is compared whatever it holds.
    budget: Option<usize>,
    over: bool,
    /// When measuring instead of collecting: bytes per residue of the element hash.
    sizes: Vec<u64>,
    entry: Option<PendingEntry>,
    group: Option<(Vec<u8>, Group)>,
    /// The IDMP producer whose entries are being read.
    producer: Vec<u8>,
}

impl Collect {
    fn new(kind: Kind, seed: Seed, part: Part, budget: Option<usize>) -> Self {
        Collect {
            kind,
            seed,
            part,
            map: HashMap::new(),
            bytes: 0,
            all_bytes: 0,
            budget,
            over: false,
            sizes: Vec::new(),
            entry: None,
            group: None,
            producer: Vec::new(),
        }
    }

    fn hash(&self, section: Section, name: &[u8]) -> u64 {
        self.seed.bytes(name) as u64 ^ section as u64
    }

    fn wanted(&self, section: Section, name: &[u8]) -> bool {
        if self.part.is_whole() {
            return true;
        }
        let r = self.hash(section, name) % self.part.modulus;
        (self.part.from..self.part.to).contains(&r)
    }

    fn put(&mut self, section: Section, name: &[u8], state: State) {
        let size = name.len() + state.size();
        // As a command argument: its bytes and their framing.
        self.all_bytes += size as u64 + ARG_OVERHEAD;
        if !self.sizes.is_empty() {
            let r = self.hash(section, name) % self.sizes.len() as u64;
            self.sizes[r as usize] += (size + PER_ELEMENT) as u64;
            return;
        }
        if self.over || !self.wanted(section, name) {
            return;
        }
        if let State::Count(n) = state
            && let Some(State::Count(c)) = self.map.get_mut(&(section, name.to_vec()))
        {
            *c += n;
            return;
        }
        self.bytes += size + PER_ELEMENT;
        self.map.insert((section, name.to_vec()), state);
        // One element alone is never split further.
        if self.budget.is_some_and(|b| self.bytes > b) && self.map.len() > 1 {
            self.over = true;
            self.map = HashMap::new();
        }
    }

    fn end_entry(&mut self) {
        if let Some((id, fields, _)) = self.entry.take() {
            self.put(Section::Entry, &id, State::Fields(fields));
        }
    }

    fn end_group(&mut self) {
        if let Some((name, g)) = self.group.take() {
            self.put(Section::Group, &name, State::Group(g));
        }
    }

    fn finish(mut self) -> Option<Collected> {
        self.end_entry();
        self.end_group();
        (!self.over).then_some((self.map, self.all_bytes, self.bytes))
    }
}

fn id_name(id: StreamId) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&id.ms.to_be_bytes());
    b.extend_from_slice(&id.seq.to_be_bytes());
    b
}

/// A stream ID from an entry's name.
pub fn name_id(name: &[u8]) -> StreamId {
    let word = |r: std::ops::Range<usize>| {
        name.get(r)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    StreamId {
        ms: word(0..8),
        seq: word(8..16),
    }
}

impl Visitor for Collect {
    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::Elem(e) if self.kind == Kind::List => {
                e.with_bytes(|b| self.put(Section::Element, b, State::Count(1)))
            }
            Item::Elem(e) => e.with_bytes(|b| self.put(Section::Element, b, State::None)),
            Item::Scored { member, score } => {
                member.with_bytes(|b| self.put(Section::Element, b, State::Score(score)))
            }
            Item::Field {
                field,
                value,
                expire_ms,
            } => {
                let state = State::Value {
                    value: value.to_vec(),
                    ttl: expire_ms,
                };
                field.with_bytes(|b| self.put(Section::Element, b, state));
            }
            Item::StreamEntry { id, fields } => {
                self.end_entry();
                self.entry = Some((id_name(id), Vec::new(), fields));
                if fields == 0 {
                    self.end_entry();
                }
            }
            Item::StreamField { field, value } => {
                let mut done = false;
                if let Some((_, fields, left)) = &mut self.entry {
                    fields.push((field.to_vec(), value.to_vec()));
                    *left = left.saturating_sub(1);
                    done = *left == 0;
                }
                if done {
                    self.end_entry();
                }
            }
            Item::StreamMeta(m) => {
                self.end_entry();
                self.put(Section::Meta, b"last_id", State::Id(m.last_id));
            }
            Item::StreamGroup { name, last_id, .. } => {
                self.end_group();
                let g = Group {
                    last_id,
                    ..Default::default()
                };
                self.group = Some((name.to_vec(), g));
            }
            Item::StreamPending {
                id,
                delivery_time_ms,
                delivery_count,
            } => {
                if let Some((_, g)) = &mut self.group {
                    g.pending.push((id, delivery_time_ms, delivery_count));
                }
            }
            Item::StreamConsumer { name, .. } => {
                if let Some((_, g)) = &mut self.group {
                    g.consumers.push((name.to_vec(), Vec::new()));
                }
            }
            Item::StreamConsumerPending { id } => {
                if let Some((_, g)) = &mut self.group
                    && let Some((_, ids)) = g.consumers.last_mut()
                {
                    ids.push(id);
                }
            }
            Item::StreamIdmp {
                duration_s,
                max_entries,
                ..
            } => {
                self.end_group();
                let settings = format!("duration {duration_s} s, max entries {max_entries}");
                let state = State::Value {
                    value: settings.into_bytes(),
                    ttl: None,
                };
                self.put(Section::Meta, b"idmp", state);
            }
            Item::StreamProducer { pid, .. } => self.producer = pid.to_vec(),
            Item::StreamProducerEntry { iid, id } => {
                // Named "idmp <pid length>:<pid> <iid>", so that no two (pid, iid) pairs share
                // a name, nor any pair the names "last_id" and "idmp".
                let mut name = format!("idmp {}:", self.producer.len()).into_bytes();
                name.extend_from_slice(&self.producer);
                name.push(b' ');
                name.extend_from_slice(iid);
                self.put(Section::Meta, &name, State::Id(id));
            }
            Item::Str(_)
            | Item::StrLen(_)
            | Item::Module { .. }
            | Item::ModuleItem(_)
            | Item::StreamIdmpTotals { .. } => {}
        }
    }
}

/// Why a partition could not be compared.
enum PartError {
    Over,
    Read(rdb::Error, bool),
    Io(std::io::Error),
}

fn collect(
    v: &Value<'_>,
    kind: Kind,
    seed: Seed,
    part: Part,
    budget: Option<usize>,
) -> Result<Option<Collected>, rdb::Error> {
    let mut c = Collect::new(kind, seed, part, budget);
    v.visit(&mut c)?;
    Ok(c.finish())
}

/// Partitions of `a` and `b` that fit `budget` each, from a pass measuring both: consecutive
/// residues of the modulus while they fit (one alone even when it does not), empty ones
/// skipped. A residue over the budget is measured again, finer, while the modulus allows.
fn plan(
    a: &Value<'_>,
    b: &Value<'_>,
    (kind, seed): (Kind, Seed),
    mut modulus: u64,
    budget: usize,
) -> Result<Vec<Part>, PartError> {
    let budget = budget as u64;
    let sizes = loop {
        let sizes = measure(a, b, (kind, seed), modulus)?;
        let total: u64 = sizes.iter().sum();
        if modulus >= MAX_MODULUS || sizes.iter().all(|&s| s <= budget) {
            break sizes;
        }
        modulus = (total / budget)
            .saturating_mul(4)
            .clamp(modulus * 2, MAX_MODULUS)
            .next_power_of_two();
    };
    let mut parts = Vec::new();
    let (mut from, mut held) = (0, 0u64);
    for (r, &size) in (0..modulus).zip(&sizes) {
        if held > 0 && held.saturating_add(size) > budget {
            parts.push(Part {
                modulus,
                from,
                to: r,
            });
            (from, held) = (r, 0);
        }
        held = held.saturating_add(size);
    }
    if held > 0 {
        parts.push(Part {
            modulus,
            from,
            to: modulus,
        });
    }
    Ok(parts)
}

/// The bytes the elements of `a` and `b` would hold, per residue of their hash.
fn measure(
    a: &Value<'_>,
    b: &Value<'_>,
    (kind, seed): (Kind, Seed),
    modulus: u64,
) -> Result<Vec<u64>, PartError> {
    let mut c = Collect::new(kind, seed, Part::WHOLE, None);
    c.sizes = vec![0; modulus as usize];
    for (v, side_a) in [(a, true), (b, false)] {
        v.visit(&mut c).map_err(|e| PartError::Read(e, side_a))?;
        c.end_entry();
        c.end_group();
    }
    Ok(c.sizes)
}

fn compare_part(
    a: &Value<'_>,
    b: &Value<'_>,
    kind: Kind,
    seed: Seed,
    part: Part,
    budget: Option<usize>,
) -> Result<Changes, PartError> {
    let (mut map_a, _, used) = collect(a, kind, seed, part, budget)
        .map_err(|e| PartError::Read(e, true))?
        .ok_or(PartError::Over)?;
    let left = budget.map(|b| b.saturating_sub(used));
    let (map_b, b_bytes, _) = collect(b, kind, seed, part, left)
        .map_err(|e| PartError::Read(e, false))?
        .ok_or(PartError::Over)?;
    let mut c = Changes {
        b_bytes,
        ..Default::default()
    };
    for ((section, name), sb) in map_b {
        match (map_a.remove(&(section, name.clone())), sb) {
            (None, sb) => c.added.push((section, name, sb)),
            (Some(State::Count(x)), State::Count(y)) => {
                if y > x {
                    c.added.push((section, name, State::Count(y - x)));
                } else if x > y {
                    c.removed.push((section, name, State::Count(x - y)));
                }
            }
            (Some(sa), sb) if sa.same(&sb) => {}
            (Some(sa), sb) => c.changed.push((section, name, sa, sb)),
        }
    }
    c.removed
        .extend(map_a.into_iter().map(|((s, n), st)| (s, n, st)));
    c.added.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    c.removed.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    c.changed.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    Ok(c)
}

/// Which side a read error is from.
#[derive(Debug)]
pub struct ReadError {
    pub error: rdb::Error,
    pub side_a: bool,
}

/// Compares the elements of `a` and `b` (both of `kind`) within `budget` bytes, handing each
/// partition's changes to `each` (with true when that one partition covers the whole key).
/// Returns the counts and how many partitions it took.
pub fn compare(
    a: &Value<'_>,
    b: &Value<'_>,
    kind: Kind,
    seed: Seed,
    budget: usize,
    each: &mut dyn FnMut(Changes, bool) -> std::io::Result<()>,
) -> Result<Result<(KeyCounts, u64), ReadError>, std::io::Error> {
    // Decoded elements take more room than their encoding: a generous guess of what the whole
    // key holds decides whether to try it in one pass, and how finely to measure it if not.
    let estimate = (a.bytes() + b.bytes()).saturating_mul(4);
    // Each partition reads the whole key again: a budget tiny for the key would read it once
    // per element. At most MAX_PASSES partitions bounds the time; the memory is then up to a
    // MAX_PASSES-th of the key, when that is more than the budget.
    let floor = usize::try_from(estimate / MAX_PASSES).unwrap_or(usize::MAX);
    let budget = budget.max(floor).max(1);
    let mut counts = KeyCounts::default();
    if estimate <= budget as u64 {
        match compare_part(a, b, kind, seed, Part::WHOLE, Some(budget)) {
            Ok(c) => {
                counts.add(&c);
                each(c, true)?;
                return Ok(Ok((counts, 1)));
            }
            Err(PartError::Read(error, side_a)) => return Ok(Err(ReadError { error, side_a })),
            Err(PartError::Over | PartError::Io(_)) => {}
        }
    }
    let modulus = (estimate / budget as u64)
        .saturating_mul(4)
        .clamp(64, MAX_MODULUS)
        .next_power_of_two();
    let compared = plan(a, b, (kind, seed), modulus, budget).and_then(|parts| {
        for &part in &parts {
            let c = compare_part(a, b, kind, seed, part, None)?;
            counts.add(&c);
            each(c, part.is_whole()).map_err(PartError::Io)?;
        }
        Ok(parts.len() as u64)
    });
    match compared {
        Ok(parts) => Ok(Ok((counts, parts))),
        Err(PartError::Read(error, side_a)) => Ok(Err(ReadError { error, side_a })),
        Err(PartError::Io(e)) => Err(e),
        // A planned partition has no budget to be over.
        Err(PartError::Over) => Ok(Ok((counts, 0))),
    }
}

/// The bytes a string value holds (for showing it).
pub fn string_bytes(v: &Value<'_>) -> Result<Vec<u8>, rdb::Error> {
    let mut out = Vec::new();
    v.visit(&mut |i: Item<'_>| {
        if let Item::Str(e) = i {
            out = e.to_vec();
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::payload;

    /// A DUMP payload of a listpack-free plain set (type 2) of `members`.
    fn set_payload(members: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![2u8, members.len() as u8];
        for m in members {
            body.push(m.len() as u8);
            body.extend_from_slice(m);
        }
        payload::build(&body, 9)
    }

    fn value(p: Vec<u8>) -> Value<'static> {
        Value::Payload {
            payload: p,
            ty: rdb::ObjectType::Set,
        }
    }

    fn run(
        a: &[&[u8]],
        b: &[&[u8]],
        budget: usize,
    ) -> (KeyCounts, u64, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (a, b) = (value(set_payload(a)), value(set_payload(b)));
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        let (counts, parts) = compare(&a, &b, Kind::Set, Seed(9), budget, &mut |c, _| {
            added.extend(c.added.into_iter().map(|e| e.1));
            removed.extend(c.removed.into_iter().map(|e| e.1));
            Ok(())
        })
        .unwrap()
        .unwrap();
        added.sort();
        removed.sort();
        (counts, parts, added, removed)
    }

    #[test]
    fn set_members_added_and_removed() {
        let names: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
        let a: Vec<&[u8]> = names[..30].iter().map(Vec::as_slice).collect();
        let b: Vec<&[u8]> = names[5..40].iter().map(Vec::as_slice).collect();
        let (counts, parts, added, removed) = run(&a, &b, 1 << 20);
        assert_eq!(parts, 1);
        let c = counts.section(Section::Element);
        assert_eq!((c.added, c.removed, c.changed), (10, 5, 0));
        assert_eq!(removed, names[..5].to_vec());
        // A budget that holds a few elements only: the same answer over many partitions.
        let (small, parts, added2, removed2) = run(&a, &b, 600);
        assert!(parts > 4, "{parts} partitions");
        assert_eq!(small, counts);
        assert_eq!((added2, removed2), (added, removed));
    }
}
