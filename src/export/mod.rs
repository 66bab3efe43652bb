//! Turning a dump into data other programs read: JSON (one document or one key per line) and
//! the RESP command stream that rebuilds it in a server, as native commands or RESTOREs.

pub mod commands;
pub mod json;
pub mod target;

use std::io::{self, Write};

use crate::filter::Filter;
use crate::rdb::payload;
use crate::rdb::value::ValueReader;
use crate::rdb::{self, Kind, ObjectType, Reader, Record, Skip, SliceInput};
use crate::resp::Command;
use commands::{Batch, NativeWriter};
pub use target::Target;

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
    pub target: Target,
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
}

/// How often (in records) the progress callback of [`export`] and [`crate::inspect::inspect`]
/// is told the input position.
pub const PROGRESS_EVERY: u64 = 4096;

/// Exports a whole file; `progress` is told the input position now and then (to release
/// mapped pages, or move a progress bar).
pub fn export(
    inp: SliceInput<'_>,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, Error> {
    let data = inp.data();
    let mut reader = Reader::new(inp)?;
    let version = reader.format().version;
    let mut summary = Summary::default();
    let mut aux: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut functions: Vec<Vec<u8>> = Vec::new();
    let mut selected_db: Option<u64> = None;
    let mut first = true;
    if opts.format == Format::Json {
        out.write_all(b"{\"keys\":[\n")?;
    }
    let mut records = 0u64;
    while let Some(rec) = reader.next_record() {
        records += 1;
        if records.is_multiple_of(PROGRESS_EVERY) {
            progress(reader.pos());
        }
        match rec?.record {
            Record::Aux { key, value } => aux.push((key.into_owned(), value.into_owned())),
            Record::Function { code } => {
                if opts.format == Format::Resp {
                    write_function(&code, opts, &mut summary, out)?;
                }
                functions.push(code.into_owned());
            }
            Record::Key { db, key, ty, meta } => {
                let expire_ms = meta.expire_ms.filter(|_| !opts.no_ttl);
                if !opts.filter.key(db, &key, ty.kind()) {
                    summary.filtered_out += 1;
                    continue;
                }
                if expire_ms.is_some_and(|ms| ms <= opts.now_ms) && !opts.keep_expired {
                    summary.skipped_expired += 1;
                    continue;
                }
                let info = KeyInfo {
                    db,
                    key: &key,
                    ty,
                    expire_ms,
                    idle: meta.idle,
                    freq: meta.freq,
                };
                summary.keys += 1;
                match opts.format {
                    Format::Resp => {
                        if selected_db != Some(db) {
                            let mut c = Command::new("SELECT");
                            c.arg_uint(db);
                            c.write_to(out)?;
                            summary.commands += 1;
                            selected_db = Some(db);
                        }
                        resp_key(&mut reader, data, version, &info, opts, &mut summary, out)?;
                    }
                    Format::Json | Format::Jsonl => {
                        if opts.format == Format::Json && !first {
                            out.write_all(b",\n")?;
                        }
                        first = false;
                        json_key(&mut reader, data, &info, out)?;
                        if opts.format == Format::Jsonl {
                            out.write_all(b"\n")?;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if opts.format != Format::Resp {
        write_summary(
            opts.format,
            reader.format(),
            &aux,
            &functions,
            &summary,
            out,
        )?;
    }
    Ok(summary)
}

fn write_function(
    code: &[u8],
    opts: &Options,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    if !opts.target.functions() {
        summary.notices.push(format!(
            "function library skipped: target {} has no functions",
            opts.target
        ));
        return Ok(());
    }
    let mut c = Command::new("FUNCTION");
    c.arg(b"LOAD").arg(b"REPLACE").arg(code);
    summary.commands += 1;
    c.write_to(out)
}

fn json_key<'a>(
    reader: &mut Reader<'a, SliceInput<'a>>,
    data: &[u8],
    k: &KeyInfo<'_>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    write!(out, "{{\"db\":{},\"key\":", k.db)?;
    json::write_bytes(out, k.key)?;
    write!(
        out,
        ",\"type\":\"{}\",\"encoding\":\"{}\",\"expire_at\":",
        k.ty.kind().as_str(),
        k.ty.encoding()
    )?;
    match k.expire_ms {
        Some(ms) => write!(out, "{ms}")?,
        None => out.write_all(b"null")?,
    }
    if let Some(idle) = k.idle {
        write!(out, ",\"idle\":{idle}")?;
    }
    if let Some(freq) = k.freq {
        write!(out, ",\"freq\":{freq}")?;
    }
    out.write_all(b",\"value\":")?;
    let mut value = json::JsonValue::new(out, k.ty.kind());
    reader.read_value(&mut value)?;
    let (start, end) = reader.value_span();
    value.finish(&data[start as usize..end as usize])?;
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

/// One key as RESP: a RESTORE of the file's own bytes when asked for (or when native commands
/// cannot express the value, as for modules), native commands otherwise.
pub(crate) fn resp_key<'a>(
    reader: &mut Reader<'a, SliceInput<'a>>,
    data: &[u8],
    version: u16,
    k: &KeyInfo<'_>,
    opts: &Options,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> Result<Sent, Error> {
    let module = k.ty.kind() == Kind::Module;
    let payload_ok = opts.target.accepts_payload(version);
    if (opts.restore && payload_ok) || module {
        reader.read_value(&mut Skip)?;
        let (start, end) = reader.value_span();
        let value = &data[start as usize..end as usize];
        if (value.len() as u64) < opts.restore_max || module {
            if module && !opts.restore {
                let name = String::from_utf8_lossy(k.key);
                summary.notices.push(format!(
                    "module value {name:?} sent as RESTORE (no native commands for it)"
                ));
            }
            write_restore(k, value, version, opts, out)?;
            summary.restored += 1;
            summary.commands += 1;
            return Ok(Sent::Restore);
        }
        // Too large for one RESTORE: decode the same bytes again into native commands.
        let mut w = NativeWriter::new(out, opts.target, opts.batch);
        w.begin_key(k.key, k.ty.kind());
        ValueReader::new().read(&mut SliceInput::new(value), k.ty, &mut w)?;
        return finish_native(w, k, summary);
    }
    let mut w = NativeWriter::new(out, opts.target, opts.batch);
    w.begin_key(k.key, k.ty.kind());
    reader.read_value(&mut w)?;
    finish_native(w, k, summary)
}

/// How [`resp_key`] wrote a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Restore,
    /// Native commands, this many.
    Native(u64),
}

fn finish_native(
    mut w: NativeWriter<'_>,
    k: &KeyInfo<'_>,
    summary: &mut Summary,
) -> Result<Sent, Error> {
    w.end_key(k.expire_ms);
    summary.native += 1;
    summary.commands += w.commands;
    match w.take_error() {
        Some(e) => Err(e.into()),
        None => Ok(Sent::Native(w.commands)),
    }
}

fn write_restore(
    k: &KeyInfo<'_>,
    value: &[u8],
    version: u16,
    opts: &Options,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut body = Vec::with_capacity(value.len() + 1);
    body.push(k.ty.code());
    body.extend_from_slice(value);
    let payload = payload::build(&body, version);
    let mut c = Command::new("RESTORE");
    c.arg(k.key);
    match k.expire_ms {
        Some(ms) if opts.target.restore_absttl() => c.arg_int(ms),
        Some(ms) => c.arg_int((ms - opts.now_ms).max(1)),
        None => c.arg(b"0"),
    };
    c.arg(&payload);
    if opts.restore_replace {
        c.arg(b"REPLACE");
    }
    if k.expire_ms.is_some() && opts.target.restore_absttl() {
        c.arg(b"ABSTTL");
    }
    if opts.target.restore_absttl() {
        if let Some(idle) = k.idle {
            c.arg(b"IDLETIME").arg_uint(idle);
        } else if let Some(freq) = k.freq {
            c.arg(b"FREQ").arg_uint(u64::from(freq));
        }
    }
    c.write_to(out)
}
