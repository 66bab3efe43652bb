//! What is in a snapshot and where the memory goes: header facts, per-db and per-type counts,
//! TTL and LRU/LFU distributions, the biggest keys, key prefixes, and an estimate of each key's
//! memory in a server (see [`memory`]). One pass over the file, in bounded memory.

pub mod aof;
pub(crate) mod aof_keys;
mod aof_walk;
pub mod memory;
pub(crate) mod names;
pub mod prefix;
mod top;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;

use crate::filter::Filter;
use crate::rdb::module::module_name;
use crate::rdb::value::ValueReader;
use crate::rdb::{
    self, Container, Elem, Input, Item, Located, ObjectType, Reader, Record, SliceInput, Visitor,
};
use crate::release::Release;
use crate::scan::ordered;
use crate::scan::walk::{self, Job, Key, Take, Walk, Work};
use memory::{Allocator, MemoryVisitor, Model};
use prefix::Prefixes;
use top::Top;

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
    pub memory_model: Option<Release>,
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

/// What a key's value measures, worked out on a worker: elements, largest element and
/// estimated memory.
type Measured = (u64, u64, Option<u64>);

/// Inspect's part on the workers: measuring values.
struct Measure<'d, 'o> {
    data: &'d [u8],
    opts: &'o Options,
    format: rdb::Format,
    /// Decided by the walking thread at the first key, once the aux fields that name the
    /// writer have been read (see [`Inspection::select`]).
    chosen: OnceLock<Model>,
}

impl Measure<'_, '_> {
    fn choose(&self, versions: &[(Vec<u8>, Vec<u8>)]) -> (Model, memory::Origin) {
        let opts = self.opts;
        memory::model::choose(opts.memory_model, opts.allocator, self.format, versions)
    }

    fn model(&self) -> Model {
        *self.chosen.get_or_init(|| self.choose(&[]).0)
    }
}

impl<'a> Work<'a, (), Vec<Measured>> for Measure<'_, '_> {
    fn start(&self, jobs: &[Job<'a, ()>]) -> Vec<Measured> {
        Vec::with_capacity(jobs.len())
    }

    fn work(
        &self,
        job: &Job<'a, ()>,
        values: &mut ValueReader,
        done: &mut Vec<Measured>,
    ) -> Result<(), rdb::Error> {
        let key = &job.key;
        let mut v = KeyVisitor {
            memory: MemoryVisitor::new(key.ty, self.model()),
            elements: 0,
            largest: 0,
        };
        values.read_span(self.data, job.start, job.end, key.ty, &mut v)?;
        // Finished here, so that only three numbers travel back to the walking thread.
        let memory = v
            .memory
            .finish(key.name.len() as u64, key.meta.expire_ms.is_some());
        done.push((v.elements, v.largest, memory));
        Ok(())
    }
}

/// Inspect's part on the walking thread: the header records, and the keys' rows in file order.
struct Inspection<'m, 'd, 'o, F> {
    measure: &'m Measure<'d, 'o>,
    report: Report,
    /// Records other than keys.
    header: Report,
    db: u64,
    ctime_ms: Option<i64>,
    /// Aux fields that name the writer, and what the model was chosen by.
    versions: Vec<(Vec<u8>, Vec<u8>)>,
    origin: Option<memory::Origin>,
    /// By type byte while reading (a lookup per key that costs nothing), merged by name after.
    types: Vec<TypeStats>,
    top_bytes: Top,
    top_elements: Top,
    top_memory: Top,
    prefixes: Prefixes,
    each_key: F,
}

impl<'a, F: FnMut(&KeyRow<'_>)> Walk<'a> for Inspection<'_, '_, '_, F> {
    type Extra = ();
    type Done = Vec<Measured>;
    type Error = rdb::Error;

    fn record<I: Input<'a>>(
        &mut self,
        rec: Located<'a>,
        _: &Reader<'a, I>,
    ) -> Result<(), rdb::Error> {
        match rec.record {
            Record::Aux { key, value } => {
                if memory::model::from_aux(&key, &value).is_some() {
                    self.versions.push((key.to_vec(), value.to_vec()));
                }
                let name = String::from_utf8_lossy(&key).into_owned();
                let value = String::from_utf8_lossy(&value).into_owned();
                if name == "ctime" {
                    self.ctime_ms = value.parse::<i64>().ok().map(|s| s * 1000);
                }
                self.header.aux.push(AuxField { name, value });
            }
            Record::Function { code } => self.header.functions.push(function_name(&code)),
            Record::ModuleAux { module_id, .. } => {
                self.header.module_aux.push(module_name(module_id).0)
            }
            Record::SelectDb { db } => self.db = db,
            Record::ResizeDb { keys, expires } => {
                let s = self.header.dbs.entry(self.db).or_default();
                s.hint_keys = Some(keys);
                s.hint_expires = Some(expires);
            }
            _ => {}
        }
        Ok(())
    }

    fn select(&mut self, key: &Key<'a>) -> Take<()> {
        if !self
            .measure
            .opts
            .filter
            .key(key.db, &key.name, key.ty.kind())
        {
            return Take::Read;
        }
        if self.origin.is_none() {
            let (m, o) = self.measure.choose(&self.versions);
            let _ = self.measure.chosen.set(m);
            self.origin = Some(o);
        }
        Take::Work(())
    }

    fn consume(&mut self, jobs: &[Job<'a, ()>], done: Vec<Measured>) -> Result<(), rdb::Error> {
        for (job, (elements, largest, memory)) in jobs.iter().zip(done) {
            let key = &job.key;
            let row = KeyRow {
                db: key.db,
                key: &key.name,
                r#type: key.ty.kind().as_str(),
                encoding: encoding_name(key.ty),
                expire_at: key.meta.expire_ms,
                rdb_bytes: job.end - key.record,
                elements,
                largest_element: largest,
                memory,
            };
            self.add(&row, &key.meta, key.ty);
        }
        Ok(())
    }
}

impl<F: FnMut(&KeyRow<'_>)> Inspection<'_, '_, '_, F> {
    fn add(&mut self, row: &KeyRow<'_>, meta: &rdb::KeyMeta, ty: ObjectType) {
        let opts = self.measure.opts;
        add_key(
            &mut self.report,
            &mut self.types[usize::from(ty.code())],
            row,
            meta,
            memory::expire_entry(&self.measure.model()),
            self.ctime_ms,
            opts.now_ms,
        );
        self.top_bytes.offer(row.rdb_bytes, row);
        self.top_elements.offer(row.elements, row);
        self.top_memory.offer(row.memory.unwrap_or(0), row);
        self.prefixes.add(row);
        (self.each_key)(row);
    }

    /// The report, once every record is read.
    fn finish(self) -> Report {
        let (model, origin) = match (self.measure.chosen.get(), self.origin) {
            (Some(&m), Some(o)) => (m, o),
            _ => self.measure.choose(&self.versions),
        };
        let mut report = self.report;
        report.memory_model = MemoryModel::new(&model, &origin);
        let header = self.header;
        report.aux = header.aux;
        report.functions = header.functions;
        report.module_aux = header.module_aux;
        for (db, hint) in header.dbs {
            let d = report.dbs.entry(db).or_default();
            d.hint_keys = hint.hint_keys;
            d.hint_expires = hint.hint_expires;
        }
        report.types = merge_types(self.types);
        report.top_by_rdb_bytes = self.top_bytes.into_sorted();
        report.top_by_elements = self.top_elements.into_sorted();
        report.top_by_memory = self.top_memory.into_sorted();
        report.prefixes = self.prefixes.rows();
        report
    }
}

/// The per-type-byte statistics, merged by type and encoding name.
fn merge_types(types: Vec<TypeStats>) -> Vec<TypeStats> {
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
    merged.into_values().collect()
}

/// Reads the whole file; `each_key` sees every selected key's row (for `--keys`), in file
/// order. Values are measured on worker threads (see [`walk`]).
pub fn inspect(
    inp: SliceInput<'_>,
    opts: &Options,
    each_key: impl FnMut(&KeyRow<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<Report, rdb::Error> {
    let data = inp.data();
    let mut reader = Reader::new(inp)?;
    let measure = Measure {
        data,
        opts,
        format: reader.format(),
        chosen: OnceLock::new(),
    };
    let mut inspection = Inspection {
        measure: &measure,
        report: Report {
            format: reader.format().to_string(),
            ..Default::default()
        },
        header: Report::default(),
        db: 0,
        ctime_ms: None,
        versions: Vec::new(),
        origin: None,
        types: vec![TypeStats::default(); 256],
        top_bytes: Top::new(opts.top),
        top_elements: Top::new(opts.top),
        top_memory: Top::new(opts.top),
        prefixes: Prefixes::new(opts.delimiter, opts.depth),
        each_key,
    };
    let workers = ordered::workers_for(1);
    walk::walk(&mut reader, &mut inspection, &measure, workers, progress)?;
    Ok(inspection.finish())
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
