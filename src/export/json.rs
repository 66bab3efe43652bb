//! One key as a JSON object, written as its items arrive (a 50M-element list is never held).
//!
//! Binary-safe and lossless: bytes that are valid UTF-8 become a JSON string, anything else
//! `{"base64": "..."}`. Hash fields, zset members and stream fields are object keys; the rare
//! ones that are not UTF-8 go to a `binary_fields` / `binary_members` list of pairs beside the
//! value instead. Scores are numbers (shortest round trip), `inf`, `-inf` and `nan` strings.

use std::io::{self, Write};

use base64::Engine;

use crate::rdb::module::module_name;
use crate::rdb::{Elem, Item, Kind, StreamId};

/// Writes `bytes` as a JSON string or a base64 object.
pub fn write_bytes<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    if is_plain_ascii(bytes) {
        out.write_all(b"\"")?;
        out.write_all(bytes)?;
        return out.write_all(b"\"");
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::to_writer(&mut *out, s).map_err(io::Error::from),
        Err(_) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            write!(out, "{{\"base64\":\"{b64}\"}}")
        }
    }
}

/// True when `bytes` is printable ASCII without `"` or `\\`: a JSON string as it is. Checked a
/// word at a time, in one pass instead of a UTF-8 check and an escaping pass byte by byte.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `w` that is zero (exact for the bytes that matter here).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let special = |w: u64| {
        // Bytes from 0x80 (not ASCII), below 0x20 (control), `"` and `\\`.
        (w | w.wrapping_sub(ONES * 0x20)
            | zero(w ^ (ONES * b'"' as u64))
            | zero(w ^ (ONES * b'\\' as u64)))
            & HIGH
    };
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
        if special(w) != 0 {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

/// Writes an integer in decimal.
pub fn write_int<W: Write + ?Sized>(out: &mut W, i: impl itoa::Integer) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(i).as_bytes())
}

pub fn write_elem<W: Write + ?Sized>(out: &mut W, e: Elem<'_>) -> io::Result<()> {
    match e {
        Elem::Int(i) => {
            out.write_all(b"\"")?;
            write_int(out, i)?;
            out.write_all(b"\"")
        }
        Elem::Bytes(b) => write_bytes(out, b),
    }
}

pub fn write_score<W: Write + ?Sized>(out: &mut W, score: f64) -> io::Result<()> {
    if score.is_nan() {
        out.write_all(b"\"nan\"")
    } else if score.is_infinite() {
        out.write_all(if score > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
    } else {
        serde_json::to_writer(&mut *out, &score).map_err(io::Error::from)
    }
}

fn write_id<W: Write + ?Sized>(out: &mut W, id: StreamId) -> io::Result<()> {
    write!(out, "\"{id}\"")
}

/// Buffered output is handed on when it reaches this size.
const FLUSH_AT: usize = 64 << 10;

/// Where the writer is inside a stream value; each state says what is open.
#[derive(PartialEq)]
enum StreamPart {
    /// An entry's `fields` object.
    Entries,
    /// The `groups` array, before any group.
    Groups,
    /// A group's `pending` array.
    Pending,
    /// A consumer's `pending` array, inside the group's `consumers`.
    Consumers,
    /// The `idmp` object's `producers` array, before any producer.
    Producers,
    /// A producer's `entries` array.
    ProducerEntries,
    /// The `idmp` object, complete.
    Idmp,
}

impl StreamPart {
    /// What closes everything open inside the stream's object.
    fn close(&self) -> &'static [u8] {
        match self {
            StreamPart::Entries | StreamPart::Groups => b"]",
            StreamPart::Pending => b"],\"consumers\":[]}]",
            StreamPart::Consumers => b"]}]}]",
            StreamPart::Producers => b"]}",
            StreamPart::ProducerEntries => b"]}]}",
            StreamPart::Idmp => b"",
        }
    }
}

/// Streams one key's value; call [`JsonValue::finish`] after the last item.
pub struct JsonValue<'o> {
    out: &'o mut dyn Write,
    /// Pieces are gathered here and handed to `out` in large writes: most pieces are a few
    /// bytes, and a call through `dyn Write` per piece costs more than the piece.
    buf: Vec<u8>,
    kind: Kind,
    /// Items written at the current nesting level, for commas.
    count: u64,
    /// Field TTLs of UTF-8 hash fields, written after the value.
    field_ttls: Vec<(Vec<u8>, u64)>,
    /// Non-UTF-8 fields or members: (name, value, field TTL).
    binary: Vec<(Vec<u8>, String, Option<u64>)>,
    stream: Option<StreamPart>,
    inner: u64,
    module: Option<u64>,
    error: Option<io::Error>,
}

impl<'o> JsonValue<'o> {
    /// Starts the value of a key of `kind` (`"value":` has been written).
    pub fn new(out: &'o mut dyn Write, kind: Kind) -> Self {
        let mut v = JsonValue {
            out,
            buf: Vec::with_capacity(FLUSH_AT),
            kind,
            count: 0,
            field_ttls: Vec::new(),
            binary: Vec::new(),
            stream: None,
            inner: 0,
            module: None,
            error: None,
        };
        let open: &[u8] = match kind {
            Kind::List | Kind::Set => b"[",
            Kind::Zset | Kind::Hash => b"{",
            Kind::Stream => b"{\"entries\":[",
            Kind::String | Kind::Module => b"",
        };
        v.io(|out| out.write_all(open));
        v
    }

    fn io(&mut self, f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) {
        if self.error.is_some() {
            return;
        }
        // Writing into a Vec cannot fail.
        let _ = f(&mut self.buf);
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.write_all(&self.buf) {
            self.error = Some(e);
        }
        self.buf.clear();
    }

    fn comma(&mut self) {
        if self.count > 0 {
            self.io(|o| o.write_all(b","));
        }
        self.count += 1;
    }

    /// Closes the value and writes what was kept aside. `raw` is the value's RDB encoding, the
    /// payload of a module value.
    pub fn finish(mut self, raw: &[u8]) -> io::Result<()> {
        match self.kind {
            Kind::List | Kind::Set => self.io(|o| o.write_all(b"]")),
            Kind::Zset | Kind::Hash => self.io(|o| o.write_all(b"}")),
            Kind::Stream => self.close_stream(),
            Kind::Module => {
                let (name, encver) = module_name(self.module.unwrap_or_default());
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                self.io(|o| write!(o, "{{\"module\":\"{name}\",\"encver\":{encver},\"payload\":{{\"base64\":\"{b64}\"}}}}"));
            }
            Kind::String => {}
        }
        if !self.field_ttls.is_empty() {
            let ttls = std::mem::take(&mut self.field_ttls);
            self.io(|o| {
                o.write_all(b",\"field_expire_at\":{")?;
                for (i, (f, ms)) in ttls.iter().enumerate() {
                    if i > 0 {
                        o.write_all(b",")?;
                    }
                    write_bytes(o, f)?;
                    write!(o, ":{ms}")?;
                }
                o.write_all(b"}")
            });
        }
        if !self.binary.is_empty() {
            let name = if self.kind == Kind::Zset {
                "binary_members"
            } else {
                "binary_fields"
            };
            let binary = std::mem::take(&mut self.binary);
            self.io(|o| {
                write!(o, ",\"{name}\":[")?;
                for (i, (f, v, ttl)) in binary.iter().enumerate() {
                    if i > 0 {
                        o.write_all(b",")?;
                    }
                    o.write_all(b"[")?;
                    write_bytes(o, f)?;
                    write!(o, ",{v}")?;
                    if let Some(ms) = ttl {
                        write!(o, ",{ms}")?;
                    }
                    o.write_all(b"]")?;
                }
                o.write_all(b"]")
            });
        }
        self.flush();
        self.error.map_or(Ok(()), Err)
    }

    /// Ends an entry's `fields` object and the entry, with its non-UTF-8 fields (rare) as a
    /// `binary_fields` list of pairs, as for hashes.
    fn close_entry(&mut self) {
        let binary = std::mem::take(&mut self.binary);
        self.io(|o| {
            o.write_all(b"}")?;
            if !binary.is_empty() {
                o.write_all(b",\"binary_fields\":[")?;
                for (i, (f, v, _)) in binary.iter().enumerate() {
                    o.write_all(if i > 0 { b",[" } else { b"[" })?;
                    write_bytes(o, f)?;
                    write!(o, ",{v}]")?;
                }
                o.write_all(b"]")?;
            }
            o.write_all(b"}")
        });
    }

    fn close_stream(&mut self) {
        if self.stream == Some(StreamPart::Entries) {
            self.close_entry();
        }
        // Stream metadata always follows the entries; `None` and `Entries` only end a broken
        // value.
        let close = self.stream.as_ref().map_or(&b"]"[..], StreamPart::close);
        self.io(|o| {
            o.write_all(close)?;
            o.write_all(b"}")
        });
    }

    /// A field or member name as an object key, or set aside when it is not UTF-8.
    /// `value` writes the value's JSON; it is rendered aside only for the rare binary names.
    fn keyed(
        &mut self,
        name: Elem<'_>,
        ttl: Option<u64>,
        value: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) {
        let utf8 = name.with_bytes(|b| std::str::from_utf8(b).is_ok());
        if !utf8 {
            let mut v = Vec::new();
            let _ = value(&mut v);
            self.binary
                .push((name.to_vec(), String::from_utf8_lossy(&v).into_owned(), ttl));
            return;
        }
        self.comma();
        self.io(|o| {
            write_elem(o, name)?;
            o.write_all(b":")?;
            value(o)
        });
        if let Some(ms) = ttl {
            self.field_ttls.push((name.to_vec(), ms));
        }
    }

    fn stream_item(&mut self, item: Item<'_>) {
        match item {
            Item::StreamEntry { id, .. } => {
                if self.stream == Some(StreamPart::Entries) {
                    self.close_entry();
                    self.io(|o| o.write_all(b","));
                }
                self.stream = Some(StreamPart::Entries);
                self.inner = 0;
                self.io(|o| {
                    o.write_all(b"{\"id\":")?;
                    write_id(o, id)?;
                    o.write_all(b",\"fields\":{")
                });
            }
            Item::StreamField { field, value } => {
                if field.with_bytes(|b| std::str::from_utf8(b).is_err()) {
                    let mut v = Vec::new();
                    let _ = write_elem(&mut v, value);
                    self.binary.push((
                        field.to_vec(),
                        String::from_utf8_lossy(&v).into_owned(),
                        None,
                    ));
                    return;
                }
                let sep = if self.inner > 0 { "," } else { "" };
                self.inner += 1;
                self.io(|o| {
                    o.write_all(sep.as_bytes())?;
                    write_elem(o, field)?;
                    o.write_all(b":")?;
                    write_elem(o, value)
                });
            }
            Item::StreamMeta(m) => {
                if self.stream == Some(StreamPart::Entries) {
                    self.close_entry();
                }
                let close: &[u8] = b"]";
                self.stream = Some(StreamPart::Groups);
                self.count = 0;
                let opt_id =
                    |id: Option<StreamId>| id.map_or("null".to_string(), |i| format!("\"{i}\""));
                let added = m
                    .entries_added
                    .map_or("null".to_string(), |n| n.to_string());
                let (first, max_deleted) = (opt_id(m.first_id), opt_id(m.max_deleted_id));
                self.io(|o| {
                    o.write_all(close)?;
                    write!(o, ",\"length\":{},\"last_id\":\"{}\",\"first_id\":{first},\"max_deleted_id\":{max_deleted},\"entries_added\":{added},\"groups\":[", m.length, m.last_id)
                });
            }
            Item::StreamGroup {
                name,
                last_id,
                entries_read,
                ..
            } => {
                let close: &[u8] = match self.stream {
                    Some(StreamPart::Pending) => b"],\"consumers\":[]},",
                    Some(StreamPart::Consumers) => b"]}]},",
                    _ => b"",
                };
                self.stream = Some(StreamPart::Pending);
                self.inner = 0;
                let read = entries_read.map_or("null".to_string(), |n| n.to_string());
                self.io(|o| {
                    o.write_all(close)?;
                    o.write_all(b"{\"name\":")?;
                    write_bytes(o, name)?;
                    write!(
                        o,
                        ",\"last_id\":\"{last_id}\",\"entries_read\":{read},\"pending\":["
                    )
                });
            }
            Item::StreamPending {
                id,
                delivery_time_ms,
                delivery_count,
            } => {
                let sep = if self.inner > 0 { "," } else { "" };
                self.inner += 1;
                self.io(|o| write!(o, "{sep}{{\"id\":\"{id}\",\"delivery_time\":{delivery_time_ms},\"delivery_count\":{delivery_count}}}"));
            }
            Item::StreamConsumer {
                name,
                seen_time_ms,
                active_time_ms,
                ..
            } => {
                let open: &[u8] = match self.stream {
                    Some(StreamPart::Pending) => b"],\"consumers\":[",
                    _ => b"]},",
                };
                self.stream = Some(StreamPart::Consumers);
                self.inner = 0;
                let active = active_time_ms.map_or("null".to_string(), |n| n.to_string());
                self.io(|o| {
                    o.write_all(open)?;
                    o.write_all(b"{\"name\":")?;
                    write_bytes(o, name)?;
                    write!(
                        o,
                        ",\"seen_time\":{seen_time_ms},\"active_time\":{active},\"pending\":["
                    )
                });
            }
            Item::StreamConsumerPending { id } => {
                let sep = if self.inner > 0 { "," } else { "" };
                self.inner += 1;
                self.io(|o| write!(o, "{sep}\"{id}\""));
            }
            Item::StreamIdmp {
                duration_s,
                max_entries,
                ..
            } => {
                let close = self.stream.as_ref().map_or(&b""[..], StreamPart::close);
                self.stream = Some(StreamPart::Producers);
                self.io(|o| {
                    o.write_all(close)?;
                    write!(o, ",\"idmp\":{{\"duration\":{duration_s},\"max_entries\":{max_entries},\"producers\":[")
                });
            }
            Item::StreamProducer { pid, .. } => {
                let sep: &[u8] = match self.stream {
                    Some(StreamPart::ProducerEntries) => b"]},",
                    _ => b"",
                };
                self.stream = Some(StreamPart::ProducerEntries);
                self.inner = 0;
                self.io(|o| {
                    o.write_all(sep)?;
                    o.write_all(b"{\"pid\":")?;
                    write_bytes(o, pid)?;
                    o.write_all(b",\"entries\":[")
                });
            }
            Item::StreamProducerEntry { iid, id } => {
                let sep: &[u8] = if self.inner > 0 { b"," } else { b"" };
                self.inner += 1;
                self.io(|o| {
                    o.write_all(sep)?;
                    o.write_all(b"{\"iid\":")?;
                    write_bytes(o, iid)?;
                    write!(o, ",\"id\":\"{id}\"}}")
                });
            }
            Item::StreamIdmpTotals { added, duplicates } => {
                let close: &[u8] = match self.stream {
                    Some(StreamPart::ProducerEntries) => b"]}]",
                    _ => b"]",
                };
                self.stream = Some(StreamPart::Idmp);
                self.io(|o| {
                    o.write_all(close)?;
                    write!(
                        o,
                        ",\"iids_added\":{added},\"iids_duplicates\":{duplicates}}}"
                    )
                });
            }
            _ => {}
        }
    }
}

impl crate::rdb::Visitor for JsonValue<'_> {
    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::Str(v) => self.io(|o| write_elem(o, v)),
            Item::Elem(e) => {
                self.comma();
                self.io(|o| write_elem(o, e));
            }
            Item::Scored { member, score } => self.keyed(member, None, |o| write_score(o, score)),
            Item::Field {
                field,
                value,
                expire_ms,
            } => self.keyed(field, expire_ms, |o| write_elem(o, value)),
            Item::Module { module_id } => self.module = Some(module_id),
            Item::ModuleItem(_) => {}
            item => self.stream_item(item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_exactly_what_needs_no_escaping() {
        // Every byte value at every position of a word and of the remainder.
        for len in [1, 7, 8, 9, 16, 19] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let quoted = std::str::from_utf8(&s)
                        .is_ok_and(|t| serde_json::to_string(t).unwrap().len() == len + 2);
                    assert_eq!(is_plain_ascii(&s), quoted, "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }
}
