//! One side's elements of one partition of a key, gathered into a map (or measured, bytes per
//! residue of their hash) as its value is decoded.

use std::collections::HashMap;

use super::Value;
use super::changes::{Group, Section, State};
use super::fingerprint::Seed;
use crate::rdb::{self, Item, Kind, StreamId, Visitor};

/// Which elements a pass looks at: those whose name hash modulo `modulus` is in `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub modulus: u64,
    pub from: u64,
    pub to: u64,
}

impl Part {
    pub(super) const WHOLE: Part = Part {
        modulus: 1,
        from: 0,
        to: 1,
    };

    pub(super) fn is_whole(&self) -> bool {
        self.from == 0 && self.to == self.modulus
    }
}

/// What an element costs in a command beyond its bytes (RESP framing of its arguments).
pub const ARG_OVERHEAD: u64 = 8;

/// Bookkeeping bytes counted per element held (map entry, vectors).
const PER_ELEMENT: usize = 96;

/// One side's elements of one partition.
pub(super) type Map = HashMap<(Section, Vec<u8>), State>;

/// A partition's map, the bytes of all of the value's elements, and the bytes the map holds.
pub(super) type Collected = (Map, u64, usize);

/// A stream entry being gathered: ID name, fields so far, fields still to come.
type PendingEntry = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, usize);

/// Builds one side's map of one partition.
pub(super) struct Collect {
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
    pub(super) sizes: Vec<u64>,
    entry: Option<PendingEntry>,
    group: Option<(Vec<u8>, Group)>,
    /// The IDMP producer whose entries are being read.
    producer: Vec<u8>,
}

impl Collect {
    pub(super) fn new(kind: Kind, seed: Seed, part: Part, budget: Option<usize>) -> Self {
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

    pub(super) fn end_entry(&mut self) {
        if let Some((id, fields, _)) = self.entry.take() {
            self.put(Section::Entry, &id, State::Fields(fields));
        }
    }

    pub(super) fn end_group(&mut self) {
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

/// The elements of `v` in `part`, or None when they do not fit `budget`.
pub(super) fn collect(
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
