//! The record reader: a pull iterator over an RDB file's records (aux fields, database
//! selectors, functions, module aux, keys, EOF), each with its byte offset. A key's value is
//! read on demand through a [`Visitor`], element by element; a value the caller does not read
//! is checked and skipped. After the first error the reader is finished.

use std::borrow::Cow;

use super::error::{Context, Error, ErrorKind, Phase, Result};
use super::input::{Input, SliceInput};
pub use super::magic::parse_magic;
use super::primitive::{read_bytes, read_len};
use super::problem::{Problem, ProblemKind, Severity};
use super::record::{KeyMeta, Located, Record};
use super::types::{Flavor, Format, ObjectType};
use super::value::{ValueReader, is_empty_key};
use super::visit::{Skip, Visitor};
use super::{framing, module};

const OP_KEY_META_OR_SLOT_IMPORT: u8 = 0xf3;
const OP_SLOT_INFO: u8 = 0xf4;
const OP_FUNCTION2: u8 = 0xf5;
const OP_FUNCTION_PRE_GA: u8 = 0xf6;
const OP_MODULE_AUX: u8 = 0xf7;
const OP_IDLE: u8 = 0xf8;
const OP_FREQ: u8 = 0xf9;
const OP_AUX: u8 = 0xfa;
const OP_RESIZEDB: u8 = 0xfb;
const OP_EXPIRETIME_MS: u8 = 0xfc;
const OP_EXPIRETIME: u8 = 0xfd;
const OP_SELECTDB: u8 = 0xfe;
const OP_EOF: u8 = 0xff;
/// Redis Enterprise's per-key RAM LRU hint: one length, meaningless elsewhere.
const OP_ENTERPRISE_RAM_LRU: u8 = 107;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Records,
    /// A key was returned; its value starts at the input position.
    Value(ObjectType),
    Done,
}

pub struct Reader<'a, I: Input<'a>> {
    inp: I,
    format: Format,
    db: Option<u64>,
    state: State,
    values: ValueReader,
    key: Vec<u8>,
    ty: Option<ObjectType>,
    problems: Vec<Problem>,
    /// (start, end) offsets of the last value read.
    value_span: (u64, u64),
    _data: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Reader<'a, SliceInput<'a>> {
    /// A reader over a whole file in memory (normally a memory map).
    pub fn from_slice(data: &'a [u8]) -> Result<Self> {
        Reader::new(SliceInput::new(data))
    }
}

impl<'a, I: Input<'a>> Reader<'a, I> {
    /// Reads and checks the signature.
    pub fn new(mut inp: I) -> Result<Self> {
        let magic: [u8; 9] = inp
            .read_array("signature")
            .map_err(|e| with_phase(e, Phase::Header))?;
        let format =
            parse_magic(&magic).map_err(|k| with_phase(Error::new(0, k), Phase::Header))?;
        Ok(Reader {
            inp,
            format,
            db: None,
            state: State::Records,
            values: ValueReader::new(),
            key: Vec::new(),
            ty: None,
            problems: Vec::new(),
            value_span: (0, 0),
            _data: std::marker::PhantomData,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn pos(&self) -> u64 {
        self.inp.pos()
    }

    pub fn input(&self) -> &I {
        &self.inp
    }

    /// Non-fatal findings since the last call.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Offsets of the value read last (for RESTORE payloads made of the file's own bytes).
    pub fn value_span(&self) -> (u64, u64) {
        self.value_span
    }

    fn context(&self, phase: Phase) -> Context {
        let in_key = matches!(phase, Phase::ReadValue | Phase::ReadKey);
        Context {
            phase: Some(phase),
            db: self.db,
            key: in_key.then(|| self.key.clone()),
            type_name: if in_key {
                self.ty.map(ObjectType::name)
            } else {
                None
            },
        }
    }

    fn fail(&mut self, mut e: Error, phase: Phase) -> Error {
        self.state = State::Done;
        if e.context.phase.is_none() {
            e.context = self.context(phase);
        }
        e
    }

    fn notice(&mut self, severity: Severity, offset: u64, kind: ProblemKind, phase: Phase) {
        let context = self.context(phase);
        self.problems.push(Problem {
            severity,
            offset,
            kind,
            context,
        });
    }

    /// Moves past the value of the key returned last without checking its contents, when its
    /// type allows (see [`framing::skip_value`]); returns true then, and the value's bytes are
    /// at [`Reader::value_span`] for someone else to check. Otherwise reads (and checks) the
    /// value in full and returns false.
    pub fn skip_value(&mut self) -> Result<bool> {
        let State::Value(ty) = self.state else {
            return Err(Error::new(
                self.inp.pos(),
                ErrorKind::OutOfOrder("no value to skip"),
            ));
        };
        let start = self.inp.pos();
        if !framing::skip_value(&mut self.inp, ty).map_err(|e| self.fail(e, Phase::ReadValue))? {
            self.read_value(&mut Skip)?;
            return Ok(false);
        }
        self.value_span = (start, self.inp.pos());
        self.state = State::Records;
        Ok(true)
    }

    /// Reads the value of the key returned last. Returns its element count.
    pub fn read_value(&mut self, v: &mut dyn Visitor) -> Result<u64> {
        let State::Value(ty) = self.state else {
            return Err(Error::new(
                self.inp.pos(),
                ErrorKind::OutOfOrder("no value to read"),
            ));
        };
        let start = self.inp.pos();
        let n = self
            .values
            .read(&mut self.inp, ty, v)
            .map_err(|e| self.fail(e, Phase::ReadValue))?;
        self.value_span = (start, self.inp.pos());
        self.state = State::Records;
        if is_empty_key(ty, n) {
            self.notice(
                Severity::Warning,
                start,
                ProblemKind::EmptyKey,
                Phase::ReadValue,
            );
        }
        let notes = std::mem::take(&mut self.values.notes);
        for note in notes {
            self.notice(note.severity, note.offset, note.kind, Phase::ReadValue);
        }
        Ok(n)
    }

    /// The next record, or None after EOF or an error.
    // Inlined (with `record` and `key`) so that the record is built where it is used, instead
    // of written out and read back by the caller: a cost every walk would pay on every key.
    #[inline(always)]
    pub fn next_record(&mut self) -> Option<Result<Located<'a>>> {
        if let State::Value(_) = self.state
            && let Err(e) = self.read_value(&mut Skip)
        {
            return Some(Err(e));
        }
        if self.state == State::Done {
            return None;
        }
        let r = self.record();
        if r.is_err() {
            self.state = State::Done;
        }
        Some(r)
    }

    #[inline(always)]
    fn record(&mut self) -> Result<Located<'a>> {
        let mut meta = KeyMeta::default();
        loop {
            let offset = self.inp.pos();
            let op = self
                .inp
                .read_u8("record type")
                .map_err(|e| self.fail(e, Phase::ReadType))?;
            let rec = match op {
                OP_EOF => return self.eof(offset),
                OP_SELECTDB => {
                    let db = read_len(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadLen))?;
                    self.db = Some(db);
                    Record::SelectDb { db }
                }
                OP_RESIZEDB => {
                    let keys = read_len(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadLen))?;
                    let expires =
                        read_len(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadLen))?;
                    Record::ResizeDb { keys, expires }
                }
                OP_AUX => {
                    let key =
                        read_bytes(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadAux))?;
                    let value =
                        read_bytes(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadAux))?;
                    Record::Aux { key, value }
                }
                OP_EXPIRETIME_MS => {
                    let ms = self
                        .inp
                        .read_array("expire time")
                        .map_err(|e| self.fail(e, Phase::ReadExpire))?;
                    meta.expire_ms = Some(i64::from_le_bytes(ms));
                    continue;
                }
                OP_EXPIRETIME => {
                    let s = self
                        .inp
                        .read_array("expire time")
                        .map_err(|e| self.fail(e, Phase::ReadExpire))?;
                    meta.expire_ms = Some(i64::from(i32::from_le_bytes(s)) * 1000);
                    continue;
                }
                OP_IDLE => {
                    meta.idle =
                        Some(read_len(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadLen))?);
                    continue;
                }
                OP_FREQ => {
                    meta.freq = Some(
                        self.inp
                            .read_u8("LFU frequency")
                            .map_err(|e| self.fail(e, Phase::ReadLen))?,
                    );
                    continue;
                }
                OP_MODULE_AUX => {
                    let (module_id, when) = module::read_aux(&mut self.inp, &mut Skip)
                        .map_err(|e| self.fail(e, Phase::ReadModuleAux))?;
                    Record::ModuleAux { module_id, when }
                }
                OP_FUNCTION2 => {
                    let code =
                        read_bytes(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadFunction))?;
                    Record::Function { code }
                }
                OP_FUNCTION_PRE_GA => {
                    let code = self
                        .function_pre_ga()
                        .map_err(|e| self.fail(e, Phase::ReadFunction))?;
                    let kind = ProblemKind::PreGaFunction;
                    self.notice(Severity::Warning, offset, kind, Phase::ReadFunction);
                    Record::Function { code }
                }
                OP_SLOT_INFO
                    if self.format.flavor == Flavor::Valkey || self.format.version >= 12 =>
                {
                    let mut len = || read_len(&mut self.inp);
                    let (slot, keys, expires) = (|| Ok((len()?, len()?, len()?)))()
                        .map_err(|e| self.fail(e, Phase::ReadLen))?;
                    Record::SlotInfo {
                        slot,
                        keys,
                        expires,
                    }
                }
                OP_KEY_META_OR_SLOT_IMPORT if self.format.flavor == Flavor::Valkey => self
                    .slot_import()
                    .map_err(|e| self.fail(e, Phase::ReadLen))?,
                OP_KEY_META_OR_SLOT_IMPORT if self.format.version >= 13 => {
                    meta.meta_classes =
                        self.key_meta().map_err(|e| self.fail(e, Phase::ReadKey))?;
                    continue;
                }
                OP_ENTERPRISE_RAM_LRU if self.format.flavor == Flavor::Redis => {
                    let v = read_len(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadLen))?;
                    let kind = ProblemKind::EnterpriseOpcode { op, value: v };
                    self.notice(Severity::Notice, offset, kind, Phase::ReadType);
                    continue;
                }
                b => match ObjectType::from_byte(self.format, b) {
                    Some(ty) => return self.key(offset, ty, meta),
                    None => {
                        let e = Error::new(offset, ErrorKind::UnknownType(b));
                        return Err(self.fail(e, Phase::ReadType));
                    }
                },
            };
            return Ok(Located {
                offset,
                record: rec,
            });
        }
    }

    #[inline(always)]
    fn key(&mut self, offset: u64, ty: ObjectType, meta: KeyMeta) -> Result<Located<'a>> {
        self.ty = Some(ty);
        self.key.clear();
        let key = read_bytes(&mut self.inp).map_err(|e| self.fail(e, Phase::ReadKey))?;
        self.key.extend_from_slice(&key);
        self.state = State::Value(ty);
        let db = self.db.unwrap_or(0);
        Ok(Located {
            offset,
            record: Record::Key { db, key, ty, meta },
        })
    }

    fn slot_import(&mut self) -> Result<Record<'a>> {
        let job = read_bytes(&mut self.inp)?;
        let n = read_len(&mut self.inp)?;
        let mut ranges = Vec::new();
        for _ in 0..n {
            ranges.push((read_len(&mut self.inp)?, read_len(&mut self.inp)?));
        }
        Ok(Record::SlotImport { job, ranges })
    }

    /// 7.0 release candidates: name, engine, optional description, code. Only the code is kept,
    /// as its shebang line names the library in the GA format.
    fn function_pre_ga(&mut self) -> Result<Cow<'a, [u8]>> {
        read_bytes(&mut self.inp)?;
        read_bytes(&mut self.inp)?;
        if read_len(&mut self.inp)? != 0 {
            read_bytes(&mut self.inp)?;
        }
        read_bytes(&mut self.inp)
    }

    /// Redis 8.6 key metadata: class count, then per class a 4-byte spec and annotated items.
    fn key_meta(&mut self) -> Result<Vec<u32>> {
        let n = read_len(&mut self.inp)?;
        let mut classes = Vec::new();
        for _ in 0..n {
            classes.push(u32::from_le_bytes(
                self.inp.read_array("key metadata class")?,
            ));
            module::read_items(&mut self.inp, &mut Skip)?;
        }
        Ok(classes)
    }

    fn eof(&mut self, offset: u64) -> Result<Located<'a>> {
        self.state = State::Done;
        self.db = None;
        if !self.format.has_checksum() {
            self.trailing(Phase::Trailer);
            return Ok(Located {
                offset,
                record: Record::Eof { checksum: None },
            });
        }
        let computed = self.inp.checksum();
        let stored = self
            .inp
            .read_array("CRC-64 trailer")
            .map_err(|e| self.fail(e, Phase::Checksum))?;
        let stored = u64::from_le_bytes(stored);
        if stored == 0 {
            self.notice(
                Severity::Notice,
                offset + 1,
                ProblemKind::ChecksumDisabled,
                Phase::Checksum,
            );
        } else if stored != computed {
            let e = Error::new(offset + 1, ErrorKind::Crc { stored, computed });
            return Err(self.fail(e, Phase::Checksum));
        }
        self.trailing(Phase::Trailer);
        Ok(Located {
            offset,
            record: Record::Eof {
                checksum: Some(stored),
            },
        })
    }

    /// Bytes after the end of the RDB are not part of it (legitimate only in an AOF preamble).
    fn trailing(&mut self, phase: Phase) {
        let at = self.inp.pos();
        let extra = match self.inp.remaining() {
            Some(n) => n,
            None => {
                let mut n = 0u64;
                while self.inp.read_u8("trailer").is_ok() {
                    n += 1;
                }
                n
            }
        };
        if extra > 0 {
            self.notice(
                Severity::Warning,
                at,
                ProblemKind::TrailingBytes { bytes: extra },
                phase,
            );
        }
    }
}

fn with_phase(mut e: Error, phase: Phase) -> Error {
    e.context.phase = Some(phase);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Item;
    use crate::rdb::crc::Crc64;
    use crate::rdb::input::SliceInput;

    /// A Redis 8.6 file: SELECTDB 0, then one string key led by a key-metadata block of one
    /// class with two annotated items (see shared/docs/rdb-format.md §5.14).
    fn redis_8_6_file() -> Vec<u8> {
        let mut f = b"REDIS0013".to_vec();
        f.extend_from_slice(&[0xfe, 0x00]);
        f.push(OP_KEY_META_OR_SLOT_IMPORT);
        f.push(1); // classes
        f.extend_from_slice(&0x1234_5605u32.to_le_bytes()); // class spec
        f.extend_from_slice(&[2, 42]); // UINT 42
        f.extend_from_slice(&[5, 1, b'x']); // STRING "x"
        f.push(0); // end of the class's items
        f.extend_from_slice(&[0, 1, b'k', 1, b'v']); // string key "k" = "v"
        f.push(0xff);
        let crc = Crc64::checksum(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    /// The metadata, key and string value of the file's one key, and its checksum.
    type OneKey = (KeyMeta, Vec<u8>, Vec<u8>, Option<u64>);

    fn key_and_value(data: &[u8]) -> Result<OneKey> {
        let mut reader = Reader::new(SliceInput::new(data))?;
        let (mut meta, mut key, mut value, mut checksum) = (None, None, Vec::new(), None);
        while let Some(rec) = reader.next_record() {
            match rec?.record {
                Record::Key {
                    key: k, meta: m, ..
                } => {
                    key = Some(k.into_owned());
                    meta = Some(m);
                    reader.read_value(&mut |i: Item<'_>| {
                        if let Item::Str(e) = i {
                            e.with_bytes(|b| value.extend_from_slice(b));
                        }
                    })?;
                }
                Record::Eof { checksum: c } => checksum = c,
                _ => {}
            }
        }
        Ok((
            meta.unwrap_or_default(),
            key.unwrap_or_default(),
            value,
            checksum,
        ))
    }

    #[test]
    fn redis_8_6_key_metadata_is_read_past_to_its_key() {
        let f = redis_8_6_file();
        let (meta, key, value, checksum) = key_and_value(&f).expect("reads");
        assert_eq!(meta.meta_classes, vec![0x1234_5605]);
        assert_eq!(key, b"k");
        assert_eq!(value, b"v");
        assert!(checksum.is_some_and(|c| c != 0));
    }

    #[test]
    fn a_cut_key_metadata_block_is_an_error_at_the_key() {
        let f = redis_8_6_file();
        // Cut inside the class's items: after the UINT opcode, before its value.
        let meta_at = 11;
        let cut = &f[..meta_at + 7];
        let e = key_and_value(cut).expect_err("cut file");
        assert!(e.to_string().contains("unexpected end"), "{e}");
        assert_eq!(e.context.phase, Some(Phase::ReadKey));
    }
}
