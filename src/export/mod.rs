//! Turning a dump into data other programs read: JSON (one document or one key per line) and
//! the RESP command stream that rebuilds it in a server, as native commands or RESTOREs.

pub mod aof;
pub mod commands;
mod file;
pub mod json;
pub mod loss;

use std::io::{self, Write};

use crate::filter::Filter;
use crate::rdb::value::ValueReader;
use crate::rdb::{self, Kind, ObjectType, Reader, SliceInput};
use crate::release::Release;
use crate::resp::Command;
use commands::{Batch, NativeWriter};
pub use file::export;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Jsonl,
    Resp,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// RESP: one RESTORE per key instead of native commands.
    pub restore: bool,
    pub target: Release,
    pub batch: Batch,
    /// RESP: values whose payload is larger than this are sent as native commands.
    pub restore_max: u64,
    pub filter: Filter,
    /// Keep keys whose expiry is before `now_ms`.
    pub keep_expired: bool,
    pub now_ms: i64,
    /// Drop key TTLs.
    pub no_ttl: bool,
    /// RESTORE ... REPLACE.
    pub restore_replace: bool,
    /// RESP: write keys without what the target cannot hold (counted) instead of leaving
    /// them out (see [`loss`]).
    pub lossy: bool,
    /// Function libraries even with a key filter.
    pub functions: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rdb(#[from] rdb::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What an export did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub keys: u64,
    pub skipped_expired: u64,
    pub filtered_out: u64,
    /// RESP: keys sent as RESTORE, and as native commands.
    pub restored: u64,
    pub native: u64,
    pub commands: u64,
    /// Things the reader of the output should know (fallbacks, skipped functions).
    pub notices: Vec<String>,
    /// RESP: keys written without something, or left out, by kind of loss.
    pub losses: loss::Tally,
    /// The first few keys left out, described.
    pub refused_keys: Vec<String>,
}

/// Keys left out that a summary names.
const NAMED_REFUSALS: usize = 10;

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.keys += o.keys;
        self.skipped_expired += o.skipped_expired;
        self.filtered_out += o.filtered_out;
        self.restored += o.restored;
        self.native += o.native;
        self.commands += o.commands;
        for n in &o.notices {
            self.notice(n.clone());
        }
        self.losses.add(&o.losses);
        let room = NAMED_REFUSALS.saturating_sub(self.refused_keys.len());
        self.refused_keys
            .extend(o.refused_keys.iter().take(room).cloned());
    }

    fn notice(&mut self, n: String) {
        if !self.notices.contains(&n) {
            self.notices.push(n);
        }
    }

    /// Keys left out: the loss policy's refusals.
    pub fn refused(&self) -> u64 {
        self.losses.refused.values().sum()
    }
}

/// Per-key facts the writers need.
pub(crate) struct KeyInfo<'k> {
    pub db: u64,
    /// The name the commands write to.
    pub key: &'k [u8],
    pub ty: ObjectType,
    pub expire_ms: Option<i64>,
    pub idle: Option<u64>,
    pub freq: Option<u8>,
    /// Redis 8.6 key metadata precedes the key in the file.
    pub key_meta: bool,
}

/// Where a key's value is read from: the reader, positioned at it, or its bytes in the file
/// (found by framing), decoded by a [`ValueReader`].
pub(crate) enum Value<'r, 'a> {
    Reader {
        reader: &'r mut Reader<'a, SliceInput<'a>>,
        data: &'a [u8],
    },
    Span {
        data: &'a [u8],
        start: u64,
        end: u64,
        values: &'r mut ValueReader,
    },
}

impl<'a> Value<'_, 'a> {
    /// Reads (and checks) the value into `v`.
    fn visit(&mut self, ty: ObjectType, v: &mut dyn rdb::Visitor) -> Result<u64, rdb::Error> {
        match self {
            Value::Reader { reader, .. } => reader.read_value(v),
            Value::Span {
                data,
                start,
                end,
                values,
            } => values.read_span(data, *start, *end, ty, v),
        }
    }

    /// The value's bytes in the file (once read).
    fn bytes(&self) -> &'a [u8] {
        let (data, (start, end)) = match self {
            Value::Reader { reader, data } => (*data, reader.value_span()),
            Value::Span {
                data, start, end, ..
            } => (*data, (*start, *end)),
        };
        &data[start as usize..end as usize]
    }
}

fn write_function(
    code: &[u8],
    opts: &Options,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    if !opts.target.functions() {
        let loss = loss::Losses::from(loss::Loss::Function);
        if !summary.losses.settle(loss, opts.lossy) {
            let name = format!(
                "function library \"{}\"",
                rdb::error::escape(function_name(code))
            );
            summary.refuse(name, loss, opts.target);
        }
        return Ok(());
    }
    let mut c = Command::new("FUNCTION");
    c.arg(b"LOAD").arg(b"REPLACE").arg(code);
    summary.commands += 1;
    c.write_to(out)
}

fn json_key(value: &mut Value<'_, '_>, k: &KeyInfo<'_>, out: &mut dyn Write) -> Result<(), Error> {
    // Pieces written whole (no `write!`): this runs for every key.
    out.write_all(b"{\"db\":")?;
    json::write_int(out, k.db)?;
    out.write_all(b",\"key\":")?;
    json::write_bytes(out, k.key)?;
    for piece in [
        ",\"type\":\"",
        k.ty.kind().as_str(),
        "\",\"encoding\":\"",
        k.ty.encoding(),
        "\",\"expire_at\":",
    ] {
        out.write_all(piece.as_bytes())?;
    }
    match k.expire_ms {
        Some(ms) => json::write_int(out, ms)?,
        None => out.write_all(b"null")?,
    }
    if let Some(idle) = k.idle {
        out.write_all(b",\"idle\":")?;
        json::write_int(out, idle)?;
    }
    if let Some(freq) = k.freq {
        out.write_all(b",\"freq\":")?;
        json::write_int(out, freq)?;
    }
    out.write_all(b",\"value\":")?;
    let mut json = json::JsonValue::new(out, k.ty.kind());
    value.visit(k.ty, &mut json)?;
    json.finish(value.bytes())?;
    out.write_all(b"}")?;
    Ok(())
}

fn write_summary(
    format: Format,
    rdb: rdb::Format,
    aux: &[(Vec<u8>, Vec<u8>)],
    functions: &[Vec<u8>],
    summary: &Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    let open: &[u8] = if format == Format::Json {
        b"\n],\"summary\":{"
    } else {
        b"{\"summary\":{"
    };
    out.write_all(open)?;
    write!(
        out,
        "\"format\":\"{rdb}\",\"keys\":{},\"skipped_expired\":{},\"filtered_out\":{},\"aux\":{{",
        summary.keys, summary.skipped_expired, summary.filtered_out
    )?;
    for (i, (k, v)) in aux.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let name = String::from_utf8_lossy(k);
        serde_json::to_writer(&mut *out, &name).map_err(io::Error::from)?;
        out.write_all(b":")?;
        json::write_bytes(out, v)?;
    }
    out.write_all(b"},\"functions\":[")?;
    for (i, code) in functions.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        json::write_bytes(out, code)?;
    }
    out.write_all(b"]}}\n")
}

/// One key as RESP, within the loss policy ([`loss::Tally::settle`]): a key the target cannot
/// hold whole is left out (nothing of it in `out`) unless `opts.lossy`; either way its losses
/// are counted in `summary`.
pub(crate) fn resp_key(
    value: &mut Value<'_, '_>,
    version: u16,
    k: &KeyInfo<'_>,
    opts: &Options,
    summary: &mut Summary,
    out: &mut Vec<u8>,
) -> Result<Sent, Error> {
    let mark = out.len();
    let (sent, commands, mut losses) = write_key(value, version, k, opts, summary, out)?;
    if k.key_meta {
        losses.add(loss::Loss::KeyMeta);
    }
    if !summary.losses.settle(losses, opts.lossy) {
        out.truncate(mark);
        let name = format!("db {} key \"{}\"", k.db, rdb::error::escape(k.key));
        summary.refuse(name, losses, opts.target);
        return Ok(Sent::Left(losses));
    }
    match sent {
        Sent::Restore => summary.restored += 1,
        Sent::Native(_) => summary.native += 1,
        Sent::Left(_) => {}
    }
    summary.commands += commands;
    Ok(sent)
}

/// A function library's name, from its first line (`#!lua name=lib`); the whole line when
/// it names none.
pub fn function_name(code: &[u8]) -> &[u8] {
    let line = code.split(|&b| b == b'\n').next().unwrap_or_default();
    line.split(|b| b.is_ascii_whitespace())
        .find_map(|w| w.strip_prefix(b"name="))
        .unwrap_or(line)
}

impl Summary {
    /// A key (or library) the loss policy left out.
    fn refuse(&mut self, name: String, losses: loss::Losses, target: Release) {
        if self.refused_keys.len() < NAMED_REFUSALS {
            self.refused_keys
                .push(format!("{name}: {}", losses.reason(target)));
        }
    }
}

/// One key as RESP: a RESTORE of the file's own bytes when asked for (or when native commands
/// cannot express the value: modules, and the idempotent-producer history of a stream), native
/// commands otherwise. Returns how, the commands written, and what they leave out.
fn write_key(
    value: &mut Value<'_, '_>,
    version: u16,
    k: &KeyInfo<'_>,
    opts: &Options,
    summary: &mut Summary,
    out: &mut Vec<u8>,
) -> Result<(Sent, u64, loss::Losses), Error> {
    let module = k.ty.kind() == Kind::Module;
    let idmp = k.ty == ObjectType::Stream4;
    let payload_ok = opts.target.accepts_payload(version);
    if !((opts.restore && payload_ok) || module || idmp) {
        let mut w = NativeWriter::new(out, opts.target, opts.batch);
        w.begin_key(k.key, k.ty.kind());
        value.visit(k.ty, &mut w)?;
        return finish_native(w, k);
    }
    let mut history = IdmpHistory(false);
    value.visit(k.ty, &mut history)?;
    let history = history.0;
    let value = value.bytes();
    if module && !payload_ok {
        // No native form, and a payload the target refuses.
        return Ok((
            Sent::Left(loss::Loss::ModuleValue.into()),
            0,
            loss::Loss::ModuleValue.into(),
        ));
    }
    let name = || String::from_utf8_lossy(k.key);
    let restore = (opts.restore || history) && payload_ok;
    if module || (restore && (value.len() as u64) < opts.restore_max) {
        if module && !opts.restore {
            let why = "no native commands for it";
            summary.notice(format!("module value {:?} sent as RESTORE ({why})", name()));
        } else if history && !opts.restore {
            let why = "no command sets its idempotent producers' history";
            summary.notice(format!("stream {:?} sent as RESTORE ({why})", name()));
        }
        write_restore(k, value, version, opts, out)?;
        let mut losses = loss::Losses::default();
        if (k.idle.is_some() || k.freq.is_some()) && !opts.target.restore_absttl() {
            losses.add(loss::Loss::LruLfu);
        }
        return Ok((Sent::Restore, 1, losses));
    }
    // Decode the same bytes again into native commands (too large for one RESTORE, or a
    // stream whose history fits no RESTORE: then the history is a loss).
    let mut w = NativeWriter::new(out, opts.target, opts.batch);
    w.begin_key(k.key, k.ty.kind());
    ValueReader::new().read(&mut SliceInput::new(value), k.ty, &mut w)?;
    finish_native(w, k)
}

/// Whether a stream holds idempotent-producer history (recorded IDs, or counts of them), which
/// only a RESTORE carries.
struct IdmpHistory(bool);

impl rdb::Visitor for IdmpHistory {
    fn item(&mut self, item: rdb::Item<'_>) {
        match item {
            rdb::Item::StreamIdmp { producers, .. } => self.0 |= producers > 0,
            rdb::Item::StreamIdmpTotals { added, duplicates } => {
                self.0 |= added > 0 || duplicates > 0
            }
            _ => {}
        }
    }

    fn wants_bytes(&self) -> bool {
        false
    }
}

/// How [`resp_key`] wrote a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Restore,
    /// Native commands, this many.
    Native(u64),
    /// Nothing: the key is left out, for these losses (counted as refused, or as lost with
    /// `lossy` when nothing of it can be written).
    Left(loss::Losses),
}

fn finish_native(
    mut w: NativeWriter<'_>,
    k: &KeyInfo<'_>,
) -> Result<(Sent, u64, loss::Losses), Error> {
    w.end_key(k.expire_ms);
    if k.idle.is_some() || k.freq.is_some() {
        w.losses.add(loss::Loss::LruLfu);
    }
    match w.take_error() {
        Some(e) => Err(e.into()),
        None => Ok((Sent::Native(w.commands), w.commands, w.losses)),
    }
}

fn write_restore(
    k: &KeyInfo<'_>,
    value: &[u8],
    version: u16,
    opts: &Options,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut head = Command::new("RESTORE");
    head.arg(k.key);
    match k.expire_ms {
        Some(ms) if opts.target.restore_absttl() => head.arg_int(ms),
        Some(ms) => head.arg_int((ms - opts.now_ms).max(1)),
        None => head.arg(b"0"),
    };
    let mut tail = Command::default();
    if opts.restore_replace {
        tail.arg(b"REPLACE");
    }
    if k.expire_ms.is_some() && opts.target.restore_absttl() {
        tail.arg(b"ABSTTL");
    }
    if opts.target.restore_absttl() {
        if let Some(idle) = k.idle {
            tail.arg(b"IDLETIME").arg_uint(idle);
        } else if let Some(freq) = k.freq {
            tail.arg(b"FREQ").arg_uint(u64::from(freq));
        }
    }
    // The payload, written where it is sent: type, value, version, CRC-64 of the three.
    let crc = crate::rdb::crc::Crc64::payload(k.ty.code(), value, version);
    let payload = [
        &[k.ty.code()][..],
        value,
        &version.to_le_bytes(),
        &crc.to_le_bytes(),
    ];
    crate::resp::write_around(out, &head, &payload, &tail)
}
