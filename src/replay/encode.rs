//! The source, read in order, made into units: each key's commands (a RESTORE of the file's
//! bytes or native commands, staged under a temporary name where it must not overwrite), each
//! AOF command (a transaction as one unit), each function library.

use super::*;

/// What [`Replay::encode_key`] made of a key.
enum Encoded {
    /// The form, command count and commands of its unit.
    Unit(Form, u64, Vec<u8>),
    /// Nothing: left out by the loss policy (see [`export::loss`]).
    Left(Losses),
}

impl<'h> Replay<'h> {
    fn export_options(&self, version: u16, resend: bool) -> export::Options {
        let restore = match self.opts.mode {
            Mode::Commands => false,
            Mode::Restore | Mode::Auto => self.facts.target.accepts_payload(version),
        };
        export::Options {
            format: export::Format::Resp,
            restore,
            target: self.facts.target,
            batch: Batch {
                elements: self.opts.batch_elements.max(1),
                bytes: (BATCH_BYTES as u64).min(self.facts.max_bulk / 2).max(1) as usize,
            },
            restore_max: self.facts.max_bulk.saturating_sub(64),
            filter: Filter::default(),
            keep_expired: true,
            now_ms: self.opts.now_ms,
            no_ttl: false,
            restore_replace: self.opts.on_exists == OnExists::Replace || resend,
            lossy: self.opts.lossy,
            functions: self.opts.functions,
        }
    }

    pub(super) fn run_rdb(&mut self, inp: SliceInput<'_>) -> Result<(), Error> {
        let data = inp.data();
        let mut reader = Reader::new(inp)?;
        let version = reader.format().version;
        if self.opts.mode == Mode::Restore && !self.facts.target.accepts_payload(version) {
            return Err(Error::Target(format!(
                "{} does not read RDB version {version}: use --mode commands or auto",
                self.facts.target.short()
            )));
        }
        let mut esummary = export::Summary::default();
        let result = self.rdb_records(&mut reader, data, version, &mut esummary);
        let losses = esummary.losses.report(self.facts.target);
        for n in esummary.notices.into_iter().chain(losses) {
            self.notice(n);
        }
        self.summary.lost = esummary.losses.lost;
        result
    }

    /// The records of an RDB after its header (and the AOF commands after its end).
    fn rdb_records<'a>(
        &mut self,
        reader: &mut Reader<'a, SliceInput<'a>>,
        data: &'a [u8],
        version: u16,
        esummary: &mut export::Summary,
    ) -> Result<(), Error> {
        let mut records = 0u64;
        while let Some(rec) = reader.next_record() {
            let rec = rec?;
            records += 1;
            self.source_pos = reader.pos();
            if records.is_multiple_of(TICK) {
                self.tick()?;
            }
            if self.halted() {
                return Ok(());
            }
            match rec.record {
                Record::Function { code } => self.function(&code, esummary)?,
                Record::Key { db, key, ty, meta } => {
                    let seq = self.watermark.open(rec.offset);
                    let expire_ms = self.opts.expiry(meta.expire_ms);
                    let skip = if seq < self.opts.resume_from {
                        Some(&mut self.summary.skipped_resumed)
                    } else if !self.opts.filter.key(db, &key, ty.kind()) {
                        Some(&mut self.summary.filtered_out)
                    } else if self.opts.expired(expire_ms) {
                        Some(&mut self.summary.skipped_expired)
                    } else {
                        None
                    };
                    if let Some(counter) = skip {
                        *counter += 1;
                        reader.skip_value()?;
                        self.watermark.close(seq);
                        continue;
                    }
                    self.summary.keys += 1;
                    let target_db = self.target_db(db);
                    if !self.selectable.contains(&target_db) {
                        reader.skip_value()?;
                        self.unselectable(seq, target_db, &key);
                        continue;
                    }
                    let resend = seq >= self.opts.resume_from && self.opts.resume_from > 0;
                    let slot = slots::key_slot(&key);
                    let info = KeyInfo {
                        db: target_db,
                        key: &key,
                        ty,
                        expire_ms,
                        idle: meta.idle,
                        freq: meta.freq,
                        key_meta: !meta.meta_classes.is_empty(),
                    };
                    let encoded = self.encode_key(
                        reader,
                        data,
                        version,
                        info,
                        (slot, seq, resend),
                        esummary,
                    )?;
                    let (form, commands, body) = match encoded {
                        Encoded::Unit(form, commands, body) => (form, commands, body),
                        // Left out by the loss policy (a module value is, even with --lossy).
                        Encoded::Left(losses) => {
                            let reason = losses.reason(self.facts.target);
                            self.fail(seq, target_db, &key, &reason);
                            continue;
                        }
                    };
                    match form {
                        Form::Restore => self.summary.restored += 1,
                        _ => self.summary.native += 1,
                    }
                    self.dispatch(Unit {
                        commands: commands as u32,
                        resend,
                        ..Unit::new(seq, target_db, key.into_owned(), slot, form, body)
                    })?;
                }
                Record::Eof { .. } => self.rdb_end = Some(reader.pos() as usize),
                _ => {}
            }
        }
        Ok(())
    }

    /// The commands for one key, and their form: `SET [NX]` for a string, `RESTORE`, or native
    /// commands (on a temporary key when an existing key must not be overwritten). `at` is the
    /// key's slot, position and whether it is sent with replace semantics.
    fn encode_key<'a>(
        &self,
        reader: &mut Reader<'a, SliceInput<'a>>,
        data: &'a [u8],
        version: u16,
        info: KeyInfo<'_>,
        (slot, seq, resend): (u16, u64, bool),
        esummary: &mut export::Summary,
    ) -> Result<Encoded, Error> {
        let eopts = self.export_options(version, resend);
        let staged = self.opts.on_exists != OnExists::Replace && !resend;
        let key = info.key;
        let t = self.facts.target;
        // A string goes as `SET` (grouped into `MSETNX` when it has no TTL) in every mode: the
        // same value, for about half of what the server spends on a `RESTORE` (checksumming and
        // decoding its payload). Unless the file keeps its LRU/LFU state, which only `RESTORE`
        // sets.
        let access = info.idle.is_some() || info.freq.is_some();
        let string = !(eopts.restore && access && t.restore_absttl())
            && info.ty.kind() == Kind::String
            && (t.valkey || t.at_least(3, 0));
        let mut body = Vec::new();
        if string {
            let value = read_string(reader)?;
            let whole = value.len() <= eopts.batch.bytes;
            // SET, or native commands: its LRU/LFU state is left behind (see `export::loss`; a
            // RESTORE below counts its own), as is key metadata.
            let mut losses = Losses::default();
            if access && (whole || !eopts.restore) {
                losses.add(Loss::LruLfu);
            }
            if info.key_meta && (whole || !eopts.restore) {
                losses.add(Loss::KeyMeta);
            }
            if !esummary.losses.settle(losses, eopts.lossy) {
                return Ok(Encoded::Left(losses));
            }
            if whole {
                let body = set_body(t, self.opts.now_ms, key, &value, info.expire_ms, staged);
                return Ok(Encoded::Unit(Form::Set, 1, body));
            }
        }
        let tmp = if staged {
            self.tmp_name(slot, seq)
        } else {
            Vec::new()
        };
        // Written natively under `name`, then the form that makes the key.
        let native = |name: &[u8], n: u64| match name == key {
            true => (Form::Direct, n),
            false => (Form::Staged { tmp: tmp.clone() }, n),
        };
        let name: &[u8] = if staged && !eopts.restore { &tmp } else { key };
        if string && !eopts.restore {
            // Larger than one bulk string may be: SET and APPENDs.
            let (start, end) = reader.value_span();
            let value = &data[start as usize..end as usize];
            let n = native_from_bytes(
                value,
                &KeyInfo { key: name, ..info },
                (t, eopts.batch),
                &mut body,
            )?;
            let (form, n) = native(name, n);
            return Ok(Encoded::Unit(form, n, body));
        }
        let info = KeyInfo { key: name, ..info };
        // A string too large for one SET is restored from its bytes, already read.
        let mut values = None;
        let mut value = match string {
            true => {
                let (start, end) = reader.value_span();
                export::Value::Span {
                    data,
                    start,
                    end,
                    values: values.insert(ValueReader::new()),
                }
            }
            false => export::Value::Reader { reader, data },
        };
        let (form, n) =
            match export::resp_key(&mut value, version, &info, &eopts, esummary, &mut body)? {
                Sent::Left(losses) => return Ok(Encoded::Left(losses)),
                Sent::Restore if name == key => (Form::Restore, 1),
                Sent::Restore => (Form::Staged { tmp: tmp.clone() }, 1),
                Sent::Native(n) if !staged || name != key => native(name, n),
                Sent::Native(_) => {
                    // Too large for RESTORE, so written natively under the key's own name: write
                    // it again under the temporary one.
                    let (start, end) = reader.value_span();
                    body.clear();
                    let value = &data[start as usize..end as usize];
                    let info = KeyInfo { key: &tmp, ..info };
                    let n = native_from_bytes(value, &info, (t, eopts.batch), &mut body)?;
                    native(&tmp, n)
                }
            };
        Ok(Encoded::Unit(form, n, body))
    }

    pub(super) fn target_db(&self, db: u64) -> u64 {
        dbs::target_db(&self.opts, self.endpoint.db(), db)
    }

    /// A key (or AOF command) of a database not confirmed selectable: refused, never sent.
    pub(super) fn unselectable(&mut self, seq: u64, db: u64, key: &[u8]) {
        let why = format!("DB database {db} was not confirmed selectable on the target");
        self.fail(seq, db, key, &why);
    }

    /// `{tag}rdbtool-tmp:<run>:<seq>`: in the key's slot, unique to this run.
    fn tmp_name(&self, slot: u16, seq: u64) -> Vec<u8> {
        let mut tmp = b"{".to_vec();
        tmp.extend_from_slice(slots::tag_for(slot));
        tmp.push(b'}');
        tmp.extend_from_slice(leftovers::marker(self.run_id).as_bytes());
        tmp.extend_from_slice(seq.to_string().as_bytes());
        tmp
    }

    /// A function library goes to every master (when key filters let it, and the target has
    /// functions: else the loss policy decides).
    pub(super) fn function(
        &mut self,
        code: &[u8],
        esummary: &mut export::Summary,
    ) -> Result<(), Error> {
        let name = export::function_name(code).to_vec();
        if !self.opts.filter.functions(self.opts.functions) {
            self.notice(
                "function libraries left out: a key filter is given (--functions includes them)"
                    .into(),
            );
            return Ok(());
        }
        if !self.facts.target.functions() {
            let loss = Losses::from(Loss::Function);
            if !esummary.losses.settle(loss, self.opts.lossy) {
                let seq = self.watermark.open(self.source_pos);
                self.summary.libraries += 1;
                self.fail_library(seq, &name, &loss.reason(self.facts.target));
            }
            return Ok(());
        }
        let mut c = Command::new("FUNCTION");
        c.arg(b"LOAD");
        if self.opts.on_exists == OnExists::Replace || self.opts.resume_from > 0 {
            c.arg(b"REPLACE");
        }
        c.arg(code);
        let mut body = Vec::new();
        let _ = c.write_to(&mut body);
        self.summary.libraries += 1;
        for node in 0..self.nodes.len() {
            let seq = self.watermark.open(self.source_pos);
            self.dispatch(Unit {
                pinned: Some(node),
                ..Unit::new(seq, 0, name.clone(), 0, Form::Function, body.clone())
            })?;
        }
        Ok(())
    }
}

/// `SET key value [NX] [PXAT ms | PX ms]`: a whole string key in one command, for target `t`
/// (`PX` from `now_ms` before 6.2).
pub(super) fn set_body(
    t: Release,
    now_ms: i64,
    key: &[u8],
    value: &[u8],
    expire_ms: Option<i64>,
    nx: bool,
) -> Vec<u8> {
    let mut ms = itoa::Buffer::new();
    let mut args: [&[u8]; 6] = [b"SET", key, value, b"", b"", b""];
    let mut n = 3;
    if nx {
        args[n] = b"NX";
        n += 1;
    }
    if let Some(at) = expire_ms {
        let (name, v) = match t.valkey || (t.major, t.minor) >= (6, 2) {
            true => ("PXAT", at),
            false => ("PX", (at - now_ms).max(1)),
        };
        args[n] = name.as_bytes();
        args[n + 1] = ms.format(v).as_bytes();
        n += 2;
    }
    crate::resp::encode(&args[..n])
}

/// The value of a string key.
fn read_string<'a>(reader: &mut Reader<'a, SliceInput<'a>>) -> Result<Vec<u8>, Error> {
    struct Capture(Vec<u8>);
    impl Visitor for Capture {
        fn item(&mut self, item: Item<'_>) {
            if let Item::Str(v) = item {
                v.with_bytes(|b| self.0.extend_from_slice(b));
            }
        }
    }
    let mut c = Capture(Vec::new());
    reader.read_value(&mut c)?;
    Ok(c.0)
}

/// Native commands for a value held in `value` (the type byte's value, as in the file).
fn native_from_bytes(
    value: &[u8],
    k: &KeyInfo<'_>,
    (target, batch): (Release, Batch),
    out: &mut Vec<u8>,
) -> Result<u64, Error> {
    let mut w = export::commands::NativeWriter::new(out, target, batch);
    w.begin_key(k.key, k.ty.kind());
    ValueReader::new().read(&mut SliceInput::new(value), k.ty, &mut w)?;
    w.end_key(k.expire_ms);
    Ok(w.commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(body: &[u8]) -> String {
        String::from_utf8_lossy(body).replace("\r\n", " ")
    }

    #[test]
    fn a_string_is_one_set_with_nx_and_its_expiry_as_the_target_reads_it() {
        let t = |v: &str| v.parse::<Release>().unwrap();
        let body = set_body(t("7.2"), 0, b"k", b"v", None, false);
        assert_eq!(body, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
        let body = set_body(t("7.2"), 1_000, b"k", b"v", Some(5_000), true);
        assert_eq!(resp(&body), "*6 $3 SET $1 k $1 v $2 NX $4 PXAT $4 5000 ");
        // Before 6.2 there is no PXAT: the time left from now, at least 1 ms.
        let body = set_body(t("6.0"), 1_000, b"k", b"v", Some(5_000), false);
        assert_eq!(resp(&body), "*5 $3 SET $1 k $1 v $2 PX $4 4000 ");
        let body = set_body(t("6.0"), 9_000, b"k", b"v", Some(5_000), false);
        assert_eq!(resp(&body), "*5 $3 SET $1 k $1 v $2 PX $1 1 ");
    }

    #[test]
    fn a_small_set_is_one_sadd_then_its_expiry() {
        // A plain set of two members, as the file holds it after the type byte.
        let value = b"\x02\x01a\x02bc";
        let key = KeyInfo {
            db: 0,
            key: b"k",
            ty: rdb::ObjectType::Set,
            expire_ms: Some(7_000),
            idle: None,
            freq: None,
            key_meta: false,
        };
        let target = "7.2".parse().unwrap();
        let mut body = Vec::new();
        let n = native_from_bytes(value, &key, (target, Batch::default()), &mut body).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            resp(&body),
            "*4 $4 SADD $1 k $1 a $2 bc *3 $9 PEXPIREAT $1 k $4 7000 "
        );
    }
}
