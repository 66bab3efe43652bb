//! What is in a snapshot and where the memory goes: header facts, per-db and per-type counts,
//! TTL and LRU/LFU distributions, the biggest keys, key prefixes, and an estimate of each key's
//! memory in a server (see [`memory`]). One pass over the file, in bounded memory.

pub mod memory;
pub mod prefix;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::OnceLock;

use serde::Serialize;

use crate::filter::Filter;
use crate::rdb::module::module_name;
use crate::rdb::value::{Checks, ValueReader};
use crate::rdb::{self, Container, Elem, Item, ObjectType, Reader, Record, SliceInput, Visitor};
use crate::scan::mapped::Ticker;
use crate::scan::ordered;
use memory::{Allocator, MemoryVisitor, Model, Server};
use prefix::Prefixes;

#[derive(Debug, Clone)]
pub struct Options {
    pub filter: Filter,
    pub top: usize,
    pub delimiter: u8,
    pub depth: usize,
    /// Expiries are compared with this time (unix ms).
    pub now_ms: i64,
    /// The release whose memory layout the estimate follows; by default the one that wrote
    /// the file (see [`memory::model`]).
    pub memory_model: Option<Server>,
    pub allocator: Allocator,
}

/// One key's facts, as `--keys` writes them.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow<'k> {
    pub db: u64,
    #[serde(skip)]
    pub key: &'k [u8],
    pub r#type: &'static str,
    pub encoding: &'static str,
    pub expire_at: Option<i64>,
    pub rdb_bytes: u64,
    pub elements: u64,
    pub largest_element: u64,
    /// Estimated bytes in the server (as `MEMORY USAGE` counts them); None for module values.
    pub memory: Option<u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DbStats {
    pub keys: u64,
    pub expires: u64,
    /// Keys whose TTL had passed when the snapshot was taken (`ctime`), and by now.
    pub expired_at_save: u64,
    pub expired_now: u64,
    /// RESIZEDB hints, to compare with the real counts.
    pub hint_keys: Option<u64>,
    pub hint_expires: Option<u64>,
    pub memory: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TypeStats {
    pub r#type: &'static str,
    pub encoding: &'static str,
    pub keys: u64,
    pub rdb_bytes: u64,
    pub elements: u64,
    pub largest_element: u64,
    pub memory: u64,
}

/// Keys by remaining TTL.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TtlBuckets {
    pub none: u64,
    pub expired: u64,
    pub under_1m: u64,
    pub under_1h: u64,
    pub under_1d: u64,
    pub under_7d: u64,
    pub longer: u64,
}

impl TtlBuckets {
    fn add(&mut self, expire_at: Option<i64>, now_ms: i64) {
        const MIN: i64 = 60_000;
        match expire_at.map(|e| e - now_ms) {
            None => self.none += 1,
            Some(left) if left <= 0 => self.expired += 1,
            Some(left) if left < MIN => self.under_1m += 1,
            Some(left) if left < 60 * MIN => self.under_1h += 1,
            Some(left) if left < 24 * 60 * MIN => self.under_1d += 1,
            Some(left) if left < 7 * 24 * 60 * MIN => self.under_7d += 1,
            Some(_) => self.longer += 1,
        }
    }
}

/// Count, min, max and mean of LRU idle seconds or LFU counters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Spread {
    pub keys: u64,
    pub min: u64,
    pub max: u64,
    pub mean: f64,
}

impl Spread {
    fn add(&mut self, v: u64) {
        if self.keys == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.keys += 1;
        self.mean += (v as f64 - self.mean) / self.keys as f64;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuxField {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopKey {
    pub db: u64,
    pub key: String,
    pub r#type: &'static str,
    pub encoding: &'static str,
    pub value: u64,
}

/// The memory model an estimate followed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryModel {
    /// The release, `redis-7.0` or `valkey-9.1`.
    pub server: String,
    /// The releases that lay memory out the same way.
    pub layout: &'static str,
    pub allocator: &'static str,
    /// What named the release: `--memory-model`, an aux field (`redis-ver 7.0.15`), or the
    /// file's format.
    pub chosen_by: String,
}

impl MemoryModel {
    fn new(model: &Model, origin: &memory::Origin) -> Self {
        MemoryModel {
            server: model.server.to_string(),
            layout: model.layout.name,
            allocator: model.allocator.name(),
            chosen_by: origin.to_string(),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub format: String,
    pub memory_model: MemoryModel,
    pub aux: Vec<AuxField>,
    pub functions: Vec<String>,
    pub module_aux: Vec<String>,
    pub keys: u64,
    pub rdb_bytes: u64,
    pub memory: u64,
    /// Keys whose memory the model cannot estimate (module values).
    pub memory_unknown: u64,
    pub dbs: BTreeMap<u64, DbStats>,
    pub types: Vec<TypeStats>,
    pub ttl: TtlBuckets,
    pub idle: Option<Spread>,
    pub freq: Option<Spread>,
    pub top_by_rdb_bytes: Vec<TopKey>,
    pub top_by_elements: Vec<TopKey>,
    pub top_by_memory: Vec<TopKey>,
    pub prefixes: Vec<prefix::PrefixRow>,
}

/// A candidate for a top list: (measure, tie-breaker favouring earlier keys, db, key, type,
/// encoding).
type Ranked = (u64, u64, u64, Vec<u8>, &'static str, &'static str);

/// The N largest keys by some measure, kept in a min-heap.
struct Top {
    n: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
    seq: u64,
}

impl Top {
    fn new(n: usize) -> Self {
        Top {
            n,
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    fn offer(&mut self, value: u64, row: &KeyRow<'_>) {
        if self.n == 0 {
            return;
        }
        self.seq += 1;
        if self.heap.len() == self.n {
            match self.heap.peek() {
                Some(Reverse(min)) if min.0 >= value => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
        // Earlier keys win ties, so the order does not depend on the heap.
        self.heap.push(Reverse((
            value,
            u64::MAX - self.seq,
            row.db,
            row.key.to_vec(),
            row.r#type,
            row.encoding,
        )));
    }

    fn into_sorted(self) -> Vec<TopKey> {
        let mut v: Vec<_> = self.heap.into_iter().map(|Reverse(e)| e).collect();
        v.sort_by_key(|e| Reverse((e.0, e.1)));
        v.into_iter()
            .map(|(value, _, db, key, t, e)| TopKey {
                db,
                key: rdb::error::escape(&key),
                r#type: t,
                encoding: e,
                value,
            })
            .collect()
    }
}

/// Counts elements and the largest one, and feeds the memory model.
struct KeyVisitor {
    memory: MemoryVisitor,
    elements: u64,
    largest: u64,
}

impl Visitor for KeyVisitor {
    fn wants_bytes(&self) -> bool {
        false
    }

    fn item(&mut self, item: Item<'_>) {
        let size = |e: &Elem<'_>| e.len() as u64;
        match &item {
            Item::Str(v) => {
                self.elements = 1;
                self.largest = size(v);
            }
            Item::StrLen(len) => {
                self.elements = 1;
                self.largest = *len;
            }
            Item::Elem(e) | Item::Scored { member: e, .. } => {
                self.elements += 1;
                self.largest = self.largest.max(size(e));
            }
            Item::Field { field, value, .. } => {
                self.elements += 1;
                self.largest = self.largest.max(size(field).max(size(value)));
            }
            Item::StreamEntry { .. } => self.elements += 1,
            Item::StreamField { value, .. } => self.largest = self.largest.max(size(value)),
            Item::Module { .. } => self.elements = 1,
            _ => {}
        }
        self.memory.item(item);
    }

    fn container(&mut self, encoding: Container, bytes: usize) {
        self.memory.container(encoding, bytes);
    }
}

/// What the walking thread knows of a key, for the consumer in file order.
struct KeyInfo<'a> {
    db: u64,
    key: std::borrow::Cow<'a, [u8]>,
    ty: ObjectType,
    meta: rdb::KeyMeta,
    record: u64,
    start: u64,
    end: u64,
}

/// What a key's value measures, worked out on either core: elements, largest element and
/// estimated memory.
type Measured = Result<(u64, u64, Option<u64>), rdb::Error>;

fn measure(data: &[u8], info: &KeyInfo<'_>, model: Model) -> Measured {
    let mut v = KeyVisitor {
        memory: MemoryVisitor::new(info.ty, model),
        elements: 0,
        largest: 0,
    };
    ValueReader::with_thread_reader(Checks::None, |values| {
        values.read_span(data, info.start, info.end, info.ty, &mut v)
    })?;
    // Finished here, so that only three numbers travel back to the consumer.
    let memory = v
        .memory
        .finish(info.key.len() as u64, info.meta.expire_ms.is_some());
    Ok((v.elements, v.largest, memory))
}

/// Reads the whole file; `each_key` sees every selected key's row (for `--keys`), in file
/// order. Values are measured on worker threads (see [`ordered`]).
pub fn inspect(
    inp: SliceInput<'_>,
    opts: &Options,
    mut each_key: impl FnMut(&KeyRow<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<Report, rdb::Error> {
    let data = inp.data();
    let mut reader = Reader::new(inp)?;
    let mut report = Report {
        format: reader.format().to_string(),
        ..Default::default()
    };
    // By type byte while reading (a lookup per key that costs nothing), merged by name after.
    let mut types: Vec<TypeStats> = vec![TypeStats::default(); 256];
    let (mut top_bytes, mut top_elements, mut top_memory) =
        (Top::new(opts.top), Top::new(opts.top), Top::new(opts.top));
    let mut prefixes = Prefixes::new(opts.delimiter, opts.depth);
    let ctime_ms: std::cell::Cell<Option<i64>> = std::cell::Cell::new(None);
    // Records other than keys, and the first error, from the walking side.
    let mut header = Report::default();
    let mut error: Option<rdb::Error> = None;
    let mut value_error: Option<rdb::Error> = None;
    // Decided by the walker at the first key, once the aux fields that name the writer have
    // been read; the cores measuring values read it from here.
    let format = reader.format();
    let mut versions: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let chosen: OnceLock<Model> = OnceLock::new();
    let mut origin: Option<memory::Origin> = None;
    let choose = |versions: &[(Vec<u8>, Vec<u8>)]| {
        memory::model::choose(opts.memory_model, opts.allocator, format, versions)
    };
    let model = || *chosen.get_or_init(|| choose(&[]).0);
    let mut keys = |info: KeyInfo<'_>, measured: Measured| {
        let (elements, largest, memory) = match measured {
            Ok(m) => m,
            Err(mut e) => {
                if value_error.is_none() {
                    e.context = rdb::error::Context {
                        phase: Some(rdb::Phase::ReadValue),
                        db: Some(info.db),
                        key: Some(info.key.to_vec()),
                        type_name: Some(info.ty.name()),
                    };
                    value_error = Some(e);
                }
                return;
            }
        };
        if value_error.is_some() {
            return;
        }
        let row = KeyRow {
            db: info.db,
            key: &info.key,
            r#type: info.ty.kind().as_str(),
            encoding: encoding_name(info.ty),
            expire_at: info.meta.expire_ms,
            rdb_bytes: info.end - info.record,
            elements,
            largest_element: largest,
            memory,
        };
        add_key(
            &mut report,
            &mut types[usize::from(info.ty.code())],
            &row,
            &info.meta,
            memory::expire_entry(&model()),
            ctime_ms.get(),
            opts.now_ms,
        );
        top_bytes.offer(row.rdb_bytes, &row);
        top_elements.offer(row.elements, &row);
        top_memory.offer(row.memory.unwrap_or(0), &row);
        prefixes.add(&row);
        each_key(&row);
    };
    let work = |info: &KeyInfo<'_>| measure(data, info, model());
    ordered::run(&work, &mut keys, |values| {
        let mut db = 0;
        let mut ticker = Ticker::default();
        loop {
            // Before the next record is read (see `Ticker`).
            if ticker.due(reader.pos()) {
                // Values behind this point may still be read by a worker.
                progress(reader.pos().saturating_sub(ordered::TRAILING_BYTES));
            }
            let Some(rec) = reader.next_record() else {
                break;
            };
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            match rec.record {
                Record::Aux { key, value } => {
                    if Server::from_aux(&key, &value).is_some() {
                        versions.push((key.to_vec(), value.to_vec()));
                    }
                    let name = String::from_utf8_lossy(&key).into_owned();
                    let value = String::from_utf8_lossy(&value).into_owned();
                    if name == "ctime" {
                        ctime_ms.set(value.parse::<i64>().ok().map(|s| s * 1000));
                    }
                    header.aux.push(AuxField { name, value });
                }
                Record::Function { code } => header.functions.push(function_name(&code)),
                Record::ModuleAux { module_id, .. } => {
                    header.module_aux.push(module_name(module_id).0)
                }
                Record::SelectDb { db: d } => db = d,
                Record::ResizeDb { keys, expires } => {
                    let s = header.dbs.entry(db).or_default();
                    s.hint_keys = Some(keys);
                    s.hint_expires = Some(expires);
                }
                Record::Key { db, key, ty, meta } => {
                    if !opts.filter.key(db, &key, ty.kind()) {
                        continue;
                    }
                    if let Err(e) = reader.skip_value() {
                        error = Some(e);
                        break;
                    }
                    let (start, end) = reader.value_span();
                    if origin.is_none() {
                        let (m, o) = choose(&versions);
                        let _ = chosen.set(m);
                        origin = Some(o);
                    }
                    let info = KeyInfo {
                        db,
                        key,
                        ty,
                        meta,
                        record: rec.offset,
                        start,
                        end,
                    };
                    values.push(info, end - start);
                }
                _ => {}
            }
        }
    });
    // The first problem in file order is the one to report.
    if let Some(e) = [error, value_error]
        .into_iter()
        .flatten()
        .min_by_key(|e| e.offset)
    {
        return Err(e);
    }
    let (model, origin) = match (chosen.get(), origin) {
        (Some(&m), Some(o)) => (m, o),
        _ => choose(&versions),
    };
    report.memory_model = MemoryModel::new(&model, &origin);
    report.aux = header.aux;
    report.functions = header.functions;
    report.module_aux = header.module_aux;
    for (db, hint) in header.dbs {
        let d = report.dbs.entry(db).or_default();
        d.hint_keys = hint.hint_keys;
        d.hint_expires = hint.hint_expires;
    }
    let mut merged: BTreeMap<(&str, &str), TypeStats> = BTreeMap::new();
    for t in types.into_iter().filter(|t| t.keys > 0) {
        let m = merged
            .entry((t.r#type, t.encoding))
            .or_insert_with(|| TypeStats {
                r#type: t.r#type,
                encoding: t.encoding,
                ..Default::default()
            });
        m.keys += t.keys;
        m.rdb_bytes += t.rdb_bytes;
        m.elements += t.elements;
        m.largest_element = m.largest_element.max(t.largest_element);
        m.memory += t.memory;
    }
    report.types = merged.into_values().collect();
    report.top_by_rdb_bytes = top_bytes.into_sorted();
    report.top_by_elements = top_elements.into_sorted();
    report.top_by_memory = top_memory.into_sorted();
    report.prefixes = prefixes.rows();
    Ok(report)
}

fn add_key(
    report: &mut Report,
    t: &mut TypeStats,
    row: &KeyRow<'_>,
    meta: &rdb::KeyMeta,
    expire_entry: u64,
    ctime_ms: Option<i64>,
    now_ms: i64,
) {
    let memory = row.memory.unwrap_or(0)
        + if row.expire_at.is_some() {
            expire_entry
        } else {
            0
        };
    report.keys += 1;
    report.rdb_bytes += row.rdb_bytes;
    report.memory += memory;
    report.memory_unknown += u64::from(row.memory.is_none());
    let d = report.dbs.entry(row.db).or_default();
    d.keys += 1;
    d.memory += memory;
    if let Some(e) = row.expire_at {
        d.expires += 1;
        d.expired_at_save += u64::from(ctime_ms.is_some_and(|c| e <= c));
        d.expired_now += u64::from(e <= now_ms);
    }
    t.r#type = row.r#type;
    t.encoding = row.encoding;
    t.keys += 1;
    t.rdb_bytes += row.rdb_bytes;
    t.elements += row.elements;
    t.largest_element = t.largest_element.max(row.largest_element);
    t.memory += memory;
    report.ttl.add(row.expire_at, now_ms);
    if let Some(idle) = meta.idle {
        report.idle.get_or_insert_with(Spread::default).add(idle);
    }
    if let Some(freq) = meta.freq {
        report
            .freq
            .get_or_insert_with(Spread::default)
            .add(u64::from(freq));
    }
}

/// The encoding as `OBJECT ENCODING` would name it once the server has loaded the value.
fn encoding_name(ty: ObjectType) -> &'static str {
    ty.encoding()
}

/// `lib (engine)` from a library's shebang line `#!lua name=lib`.
fn function_name(code: &[u8]) -> String {
    let first = code.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    let engine = line
        .trim_start_matches("#!")
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string();
    let name = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("name="))
        .unwrap_or("?")
        .to_string();
    format!("{name} ({engine})")
}
