//! Exporting a whole file: the records walked on one thread, keys rendered on the workers (see
//! [`walk`]), a batch of them into one buffer, the buffers written in file order.

use std::io::Write;
use std::sync::Mutex;

use super::{
    Error, Format, KeyInfo, Options, Summary, Value, json_key, resp_key, write_function,
    write_summary,
};
use crate::rdb::value::ValueReader;
use crate::rdb::{self, Input, Located, Reader, Record, SliceInput};
use crate::resp::Command;
use crate::scan::ordered;
use crate::scan::walk::{self, Job, Key, Take, Walk, Work};

/// Exports a whole file; `progress` is told the input position now and then (to release
/// mapped pages, or move a progress bar).
///
pub fn export(
    inp: SliceInput<'_>,
    opts: &Options,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, Error> {
    let data = inp.data();
    let mut reader = Reader::new(inp)?;
    if opts.format == Format::Json {
        out.write_all(b"{\"keys\":[\n")?;
    }
    let renderer = Renderer {
        data,
        version: reader.format().version,
        opts,
        buffers: Mutex::new(Vec::new()),
    };
    let mut exporter = Exporter {
        opts,
        out,
        buffers: &renderer.buffers,
        summary: Summary::default(),
        counts: Summary::default(),
        aux: Vec::new(),
        functions: Vec::new(),
        selected_db: None,
        first: true,
        pending: Vec::new(),
    };
    let workers = ordered::workers_for(1);
    walk::walk(&mut reader, &mut exporter, &renderer, workers, progress)?;
    let Exporter {
        mut summary,
        counts,
        aux,
        functions,
        out,
        ..
    } = exporter;
    summary.add(&counts);
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

/// What the walking thread adds to a key for its rendering.
struct Piece {
    /// RESP: a SELECT goes first.
    select: bool,
    /// JSON: a separator goes first.
    comma: bool,
    /// Output made while walking (function libraries' commands), written before the key.
    before: Vec<u8>,
}

/// A batch of keys rendered into one buffer, and what they add up to.
struct Rendered {
    out: Vec<u8>,
    summary: Summary,
}

/// Export's part on the walking thread: the records other than keys, which keys to render,
/// and the rendered batches written in file order.
struct Exporter<'o, 'w, 'p> {
    opts: &'o Options,
    out: &'w mut dyn Write,
    buffers: &'p Mutex<Vec<Vec<u8>>>,
    /// What the rendered keys add up to.
    summary: Summary,
    /// What the walk counted itself (keys left out, notices), added after.
    counts: Summary,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    functions: Vec<Vec<u8>>,
    selected_db: Option<u64>,
    first: bool,
    /// Function libraries' commands not yet written before a key.
    pending: Vec<u8>,
}

impl<'a> Walk<'a> for Exporter<'_, '_, '_> {
    type Extra = Piece;
    type Done = Rendered;
    type Error = Error;

    fn record<I: Input<'a>>(&mut self, rec: Located<'a>, _: &Reader<'a, I>) -> Result<(), Error> {
        let opts = self.opts;
        match rec.record {
            Record::Aux { key, value } => self.aux.push((key.into_owned(), value.into_owned())),
            Record::Function { .. } if !opts.filter.functions(opts.functions) => {
                self.counts.notice(
                    "function libraries left out: a key filter is given (--functions \
                     includes them)"
                        .into(),
                );
            }
            Record::Function { code } => {
                if opts.format == Format::Resp {
                    write_function(&code, opts, &mut self.counts, &mut self.pending)?;
                }
                self.functions.push(code.into_owned());
            }
            _ => {}
        }
        Ok(())
    }

    fn select(&mut self, key: &Key<'a>) -> Take<Piece> {
        let opts = self.opts;
        if !opts.filter.key(key.db, &key.name, key.ty.kind()) {
            self.counts.filtered_out += 1;
            return Take::Skip;
        }
        let expire_ms = key.meta.expire_ms.filter(|_| !opts.no_ttl);
        if expire_ms.is_some_and(|ms| ms <= opts.now_ms) && !opts.keep_expired {
            self.counts.skipped_expired += 1;
            return Take::Skip;
        }
        self.counts.keys += 1;
        let select = opts.format == Format::Resp && self.selected_db != Some(key.db);
        self.selected_db = Some(key.db);
        let comma = opts.format == Format::Json && !self.first;
        self.first = false;
        let before = std::mem::take(&mut self.pending);
        Take::Work(Piece {
            select,
            comma,
            before,
        })
    }

    fn consume(&mut self, _: &[Job<'a, Piece>], done: Rendered) -> Result<(), Error> {
        let written = self.out.write_all(&done.out);
        if let Ok(mut b) = self.buffers.lock()
            && b.len() < 16
            && done.out.capacity() <= 4 << 20
        {
            b.push(done.out);
        }
        self.summary.add(&done.summary);
        Ok(written?)
    }

    /// Function libraries after the last key.
    fn finish(&mut self) -> Result<(), Error> {
        Ok(self.out.write_all(&self.pending)?)
    }
}

/// Export's part on the workers: rendering keys.
struct Renderer<'d, 'o> {
    data: &'d [u8],
    version: u16,
    opts: &'o Options,
    /// Output buffers go back and forth between the threads instead of being allocated on
    /// one and freed on the other.
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl<'a> Work<'a, Piece, Rendered> for Renderer<'_, '_> {
    fn start(&self, jobs: &[Job<'a, Piece>]) -> Rendered {
        let mut out = self
            .buffers
            .lock()
            .ok()
            .and_then(|mut b| b.pop())
            .unwrap_or_default();
        out.clear();
        let values: u64 = jobs.iter().map(|j| j.end - j.start).sum();
        out.reserve(values as usize * 3 / 2 + 4096);
        Rendered {
            out,
            summary: Summary::default(),
        }
    }

    /// A key is written whole or not at all.
    fn work(
        &self,
        job: &Job<'a, Piece>,
        values: &mut ValueReader,
        done: &mut Rendered,
    ) -> Result<(), rdb::Error> {
        done.out.extend_from_slice(&job.extra.before);
        let mark = done.out.len();
        let rendered = self.render(job, values, done);
        rendered.map_err(|e| {
            done.out.truncate(mark);
            match e {
                Error::Rdb(e) => e,
                // Writing into a vector does not fail.
                Error::Io(e) => rdb::Error::new(job.start, rdb::ErrorKind::Output(e.to_string())),
            }
        })
    }
}

impl Renderer<'_, '_> {
    fn render(
        &self,
        job: &Job<'_, Piece>,
        values: &mut ValueReader,
        done: &mut Rendered,
    ) -> Result<(), Error> {
        let (k, opts) = (&job.key, self.opts);
        let info = KeyInfo {
            db: k.db,
            key: &k.name,
            ty: k.ty,
            expire_ms: k.meta.expire_ms.filter(|_| !opts.no_ttl),
            idle: k.meta.idle,
            freq: k.meta.freq,
            key_meta: !k.meta.meta_classes.is_empty(),
        };
        let mut value = Value::Span {
            data: self.data,
            start: job.start,
            end: job.end,
            values,
        };
        let out = &mut done.out;
        match opts.format {
            Format::Resp => {
                if job.extra.select {
                    let mut c = Command::new("SELECT");
                    c.arg_uint(k.db);
                    let _ = c.write_to(out);
                    done.summary.commands += 1;
                }
                let summary = &mut done.summary;
                resp_key(&mut value, self.version, &info, opts, summary, out).map(drop)
            }
            Format::Json | Format::Jsonl => {
                if job.extra.comma {
                    out.extend_from_slice(b",\n");
                }
                let r = json_key(&mut value, &info, out);
                if opts.format == Format::Jsonl {
                    out.push(b'\n');
                }
                r
            }
        }
    }
}
