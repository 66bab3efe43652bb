//! JSON Lines output: one record per differing key, binary-safe as export's JSON (UTF-8 as
//! strings, anything else as `{"base64": ...}`), then a summary record.
//!
//! ```text
//! {"db":0,"key":"user:1","type":"hash","kind":"value-changed","expire_a":null,"expire_b":null,
//!  "bytes_a":40,"bytes_b":52,"fields":{"added":1,"removed":0,"changed":1},
//!  "detail":{"fields":{"added":[["email","a@b"]],"removed":[],"changed":[["plan","free","pro"]]}}}
//! ```
//!
//! With `--detail`, whole values (added, removed and type-changed keys, strings, modules) come
//! as `"a"` / `"b"` objects holding `value` the way export writes it; collections list their
//! differing elements per section. A hash field's state is its value, or
//! `{"value", "expire_at"}` when it has a TTL; a zset member's is its score; a list element's
//! is how many more copies one side holds; a stream entry's is its fields as pairs.

use std::io::{self, Seek, Write};

use super::compare::{Change, Diff, Tally};
use super::elements::{self, Changes, KeyCounts, Section, State};
use super::{Seed, Value};
use crate::export::json::{JsonValue, write_bytes, write_score};
use crate::rdb::Kind;

/// The name of a section's counts for a type.
pub fn section_name(kind: Kind, s: Section) -> &'static str {
    match (kind, s) {
        (Kind::Hash, Section::Element) => "fields",
        (Kind::List, Section::Element) => "elements",
        (_, Section::Element) => "members",
        (_, Section::Entry) => "entries",
        (_, Section::Group) => "groups",
        (_, Section::Meta) => "metadata",
    }
}

/// The sections a type has.
pub fn sections(kind: Kind) -> &'static [Section] {
    match kind {
        Kind::Stream => &[Section::Entry, Section::Group, Section::Meta],
        Kind::Hash | Kind::Set | Kind::Zset | Kind::List => &[Section::Element],
        Kind::String | Kind::Module => &[],
    }
}

/// Whether a type's changes are counted element by element.
pub fn is_collection(kind: Kind) -> bool {
    !sections(kind).is_empty()
}

/// Output buffered in memory up to a size, then in an anonymous temporary file: the detail of
/// a huge key is written section by section after all its partitions have been compared.
struct Spill {
    mem: Vec<u8>,
    file: Option<std::fs::File>,
    items: u64,
}

const SPILL_AT: usize = 8 << 20;

impl Spill {
    fn new() -> Self {
        Spill {
            mem: Vec::new(),
            file: None,
            items: 0,
        }
    }

    fn item(&mut self, f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        if self.items > 0 {
            self.mem.push(b',');
        }
        self.items += 1;
        f(&mut self.mem)?;
        if self.mem.len() >= SPILL_AT {
            let file = match &mut self.file {
                Some(f) => f,
                None => self.file.insert(tempfile::tempfile()?),
            };
            file.write_all(&self.mem)?;
            self.mem.clear();
        }
        Ok(())
    }

    fn copy_to(self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(mut f) = self.file {
            f.rewind()?;
            io::copy(&mut f, out)?;
        }
        out.write_all(&self.mem)
    }
}

fn write_opt(out: &mut dyn Write, v: Option<i64>) -> io::Result<()> {
    match v {
        Some(n) => write!(out, "{n}"),
        None => out.write_all(b"null"),
    }
}

/// An element's name: stream entries by ID, the rest as bytes.
fn write_name(o: &mut Vec<u8>, section: Section, name: &[u8]) -> io::Result<()> {
    match section {
        Section::Entry => write!(o, "\"{}\"", elements::name_id(name)),
        _ => write_bytes(o, name),
    }
}

fn write_state(o: &mut Vec<u8>, s: &State) -> io::Result<()> {
    match s {
        State::None => o.write_all(b"null"),
        State::Value { value, ttl: None } => write_bytes(o, value),
        State::Value {
            value,
            ttl: Some(t),
        } => {
            o.write_all(b"{\"value\":")?;
            write_bytes(o, value)?;
            write!(o, ",\"expire_at\":{t}}}")
        }
        State::Score(x) => write_score(o, *x),
        State::Count(n) => write!(o, "{n}"),
        State::Fields(fields) => {
            o.write_all(b"[")?;
            for (i, (f, v)) in fields.iter().enumerate() {
                o.write_all(if i > 0 { b",[" } else { b"[" })?;
                write_bytes(o, f)?;
                o.write_all(b",")?;
                write_bytes(o, v)?;
                o.write_all(b"]")?;
            }
            o.write_all(b"]")
        }
        State::Group(g) => {
            write!(o, "{{\"last_id\":\"{}\",\"pending\":[", g.last_id)?;
            for (i, (id, time, count)) in g.pending.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                write!(o, "{sep}[\"{id}\",{time},{count}]")?;
            }
            o.write_all(b"],\"consumers\":[")?;
            for (i, (name, ids)) in g.consumers.iter().enumerate() {
                o.write_all(if i > 0 { b",[" } else { b"[" })?;
                write_bytes(o, name)?;
                o.write_all(b",[")?;
                for (j, id) in ids.iter().enumerate() {
                    let sep = if j > 0 { "," } else { "" };
                    write!(o, "{sep}\"{id}\"")?;
                }
                o.write_all(b"]]")?;
            }
            o.write_all(b"]}")
        }
        State::Id(id) => write!(o, "\"{id}\""),
    }
}

/// One added or removed element: the name alone (set members), or `[name, state]`.
fn write_element(o: &mut Vec<u8>, section: Section, name: &[u8], s: &State) -> io::Result<()> {
    if let State::None = s {
        return write_name(o, section, name);
    }
    o.write_all(b"[")?;
    write_name(o, section, name)?;
    o.write_all(b",")?;
    write_state(o, s)?;
    o.write_all(b"]")
}

/// The three lists of one section.
struct SectionDetail {
    added: Spill,
    removed: Spill,
    changed: Spill,
}

impl SectionDetail {
    fn new() -> Self {
        SectionDetail {
            added: Spill::new(),
            removed: Spill::new(),
            changed: Spill::new(),
        }
    }

    fn copy_to(self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"{\"added\":[")?;
        self.added.copy_to(out)?;
        out.write_all(b"],\"removed\":[")?;
        self.removed.copy_to(out)?;
        out.write_all(b"],\"changed\":[")?;
        self.changed.copy_to(out)?;
        out.write_all(b"]}")
    }
}

fn add_changes(detail: &mut [SectionDetail; 4], c: Changes) -> io::Result<()> {
    for (s, name, st) in &c.added {
        detail[*s as usize]
            .added
            .item(|o| write_element(o, *s, name, st))?;
    }
    for (s, name, st) in &c.removed {
        detail[*s as usize]
            .removed
            .item(|o| write_element(o, *s, name, st))?;
    }
    for (s, name, a, b) in &c.changed {
        detail[*s as usize].changed.item(|o| {
            o.write_all(b"[")?;
            write_name(o, *s, name)?;
            o.write_all(b",")?;
            write_state(o, a)?;
            o.write_all(b",")?;
            write_state(o, b)?;
            o.write_all(b"]")
        })?;
    }
    Ok(())
}

/// A whole value as `{"value": ...}`, the way export writes a key's value.
fn write_whole(out: &mut dyn Write, side: &str, v: &Value<'_>) -> Result<(), super::Error> {
    out.write_all(b"{\"value\":")?;
    let kind = v.ty().kind();
    let mut w = JsonValue::new(out, kind);
    let read = v.visit(&mut w);
    let raw = v.raw().to_vec();
    w.finish(&raw)?;
    read.map_err(|error| super::Error::rdb(side, error))?;
    out.write_all(b"}")?;
    Ok(())
}

/// What a record needs besides the diff.
pub struct RecordOptions {
    pub detail: bool,
    pub seed: Seed,
    pub budget: usize,
}

/// Writes one differing key. `a` / `b` are its values when the record needs them (a
/// value change of a collection, or `detail`); a value gone since the first pass is None.
pub fn write_record(
    out: &mut dyn Write,
    d: &Diff,
    a: Option<&Value<'_>>,
    b: Option<&Value<'_>>,
    opts: &RecordOptions,
) -> Result<(), super::Error> {
    let kind = d.kind();
    write!(out, "{{\"db\":{},\"key\":", d.db)?;
    write_bytes(out, &d.key)?;
    write!(
        out,
        ",\"type\":\"{}\",\"kind\":\"{}\"",
        kind.as_str(),
        d.change.as_str()
    )?;
    if let (Change::TypeChanged, Some(a)) = (d.change, d.a) {
        write!(out, ",\"type_a\":\"{}\"", a.kind.as_str())?;
    }
    out.write_all(b",\"expire_a\":")?;
    write_opt(out, d.a.and_then(|s| s.expire))?;
    out.write_all(b",\"expire_b\":")?;
    write_opt(out, d.b.and_then(|s| s.expire))?;
    out.write_all(b",\"bytes_a\":")?;
    write_opt(out, d.a.map(|s| s.bytes as i64))?;
    out.write_all(b",\"bytes_b\":")?;
    write_opt(out, d.b.map(|s| s.bytes as i64))?;
    let elementwise = d.change == Change::ValueChanged && is_collection(kind);
    if let (true, Some(av), Some(bv)) = (elementwise, a, b) {
        let mut detail = [(); 4].map(|_| SectionDetail::new());
        let counts = elements::compare(av, bv, kind, opts.seed, opts.budget, &mut |c, _| {
            if opts.detail {
                add_changes(&mut detail, c)?;
            }
            Ok(())
        })?
        .map_err(|e| super::Error::rdb(if e.side_a { "A" } else { "B" }, e.error))?
        .0;
        write_counts(out, kind, &counts)?;
        if opts.detail {
            out.write_all(b",\"detail\":{")?;
            let mut first = true;
            for (s, sd) in elements::SECTIONS.iter().zip(detail) {
                if !sections(kind).contains(s) {
                    continue;
                }
                if !std::mem::take(&mut first) {
                    out.write_all(b",")?;
                }
                write!(out, "\"{}\":", section_name(kind, *s))?;
                sd.copy_to(out)?;
            }
            out.write_all(b"}")?;
        }
    } else if opts.detail && d.change != Change::TtlChanged {
        for (name, v) in [("a", a), ("b", b)] {
            if let Some(v) = v {
                write!(out, ",\"{name}\":")?;
                write_whole(out, &name.to_uppercase(), v)?;
            }
        }
    }
    out.write_all(b"}\n")?;
    Ok(())
}

fn write_counts(out: &mut dyn Write, kind: Kind, counts: &KeyCounts) -> io::Result<()> {
    for &s in sections(kind) {
        let c = counts.section(s);
        write!(
            out,
            ",\"{}\":{{\"added\":{},\"removed\":{},\"changed\":{}}}",
            section_name(kind, s),
            c.added,
            c.removed,
            c.changed
        )?;
    }
    Ok(())
}

/// The last line: totals.
pub fn write_summary(out: &mut dyn Write, tally: &Tally) -> io::Result<()> {
    let t = tally.total();
    let mut per_type = serde_json::Map::new();
    for (k, kt) in super::compare::KINDS.iter().zip(&tally.kinds) {
        if kt.differing() + kt.unchanged > 0 {
            per_type.insert(
                k.as_str().to_string(),
                serde_json::to_value(kt).map_err(io::Error::from)?,
            );
        }
    }
    let doc = serde_json::json!({"summary": {
        "keys_a": tally.keys_a,
        "keys_b": tally.keys_b,
        "only_a": t.only_a,
        "only_b": t.only_b,
        "value_changed": t.value_changed,
        "ttl_changed": t.ttl_changed,
        "type_changed": t.type_changed,
        "unchanged": t.unchanged,
        "bytes_a": t.bytes_a,
        "bytes_b": t.bytes_b,
        "identical": t.differing() == 0,
        "types": per_type,
    }});
    serde_json::to_writer(&mut *out, &doc).map_err(io::Error::from)?;
    out.write_all(b"\n")
}
