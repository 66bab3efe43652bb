//! Decoding one value (the bytes after a key) element by element into a [`Visitor`], with the
//! checks Redis's deep sanitization makes (unique members and fields, valid blobs, no NaN
//! scores) plus the ones it does not (sort order, empty keys) as warnings. The reader's state
//! and the steps every encoding shares are in [`super::decoder`]; each packed encoding has
//! its own file.

use super::error::{Error, ErrorKind, Result, corrupt};
use super::input::Input;
use super::intset;
use super::listpack::Listpack;
use super::primitive::{
    Blob, Elem, Skipped, parse_double, read_binary_double, read_len, read_string, read_string_in,
    read_text_double, skip_string,
};
use super::problem::{ProblemKind, Severity};
use super::types::{Kind, ObjectType};
use super::visit::{Container, Item, Skip, Visitor};
use super::ziplist::Ziplist;
use super::zipmap;
use super::{module, quicklist, stream};

pub use super::decoder::{Note, ValueReader};

/// Whether a value with `elements` elements is an empty key, which the server skips when
/// loading a file and RESTORE refuses. Streams may legitimately be empty (XADD then XDEL).
pub fn is_empty_key(ty: ObjectType, elements: u64) -> bool {
    elements == 0 && ty.kind() != Kind::Stream
}

/// Whether a [`ValueReader`] looks for repeated set members, hash fields and zset members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    Duplicates,
    None,
}

impl ValueReader {
    /// Reads a value that sits at `start..end` of `data` (where framing found it). Offsets in
    /// the error and the notes are positions in `data`.
    pub fn read_span(
        &mut self,
        data: &[u8],
        start: u64,
        end: u64,
        ty: ObjectType,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let bytes = data.get(start as usize..end as usize).unwrap_or_default();
        let mut read = self.read(&mut super::input::SliceInput::new(bytes), ty, v);
        if read
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::SpreadRepeat)
        {
            // Read it again checking each member as it comes, to say which one repeats.
            self.dups.at_once = true;
            let again = self.read(&mut super::input::SliceInput::new(bytes), ty, &mut Skip);
            self.dups.at_once = false;
            if again.is_err() {
                read = again;
            }
        }
        for note in &mut self.notes {
            note.offset += start;
        }
        read.map_err(|mut e| {
            e.offset += start;
            e
        })
    }

    /// Runs `f` with this thread's reusable reader, for work spread over threads: one that
    /// looks for repeated members (`Checks::Duplicates`, verify's), or one that does not
    /// (readers that measure or compare, which saves a hash set insert per element).
    pub fn with_thread_reader<R>(checks: Checks, f: impl FnOnce(&mut ValueReader) -> R) -> R {
        thread_local! {
            static CHECKING: std::cell::RefCell<ValueReader> =
                std::cell::RefCell::new(ValueReader::new());
            static TRUSTING: std::cell::RefCell<ValueReader> =
                std::cell::RefCell::new(ValueReader::without_duplicate_checks());
        }
        match checks {
            Checks::Duplicates => CHECKING.with_borrow_mut(f),
            Checks::None => TRUSTING.with_borrow_mut(f),
        }
    }

    /// Reads the value of type `ty`, returning the number of elements it holds (1 for a string;
    /// live entries for a stream).
    pub fn read<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        ty: ObjectType,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        self.notes.clear();
        let start = inp.pos();
        let mut n = self.read_inner(inp, ty, v);
        if n.is_ok() && self.dups.spread_repeats() {
            n = Err(Error::new(start, ErrorKind::SpreadRepeat));
        }
        self.dups.reset();
        n
    }

    fn read_inner<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        ty: ObjectType,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        use ObjectType::*;
        match ty {
            String if !v.wants_bytes() => {
                match skip_string(inp)? {
                    Skipped::Short(s) => v.item(Item::Str(s.elem())),
                    Skipped::Len(len) => v.item(Item::StrLen(len)),
                }
                Ok(1)
            }
            String => self.with_scratch(|_, scratch| {
                let s = read_string_in(inp, scratch)?;
                v.item(Item::Str(s.elem()));
                Ok(1)
            }),
            ListLinked => self.plain_elems(inp, false, v),
            Set => self.plain_elems(inp, true, v),
            Hash => self.plain_hash(inp, v),
            ZsetText | Zset2 => self.plain_zset(inp, ty == Zset2, v),
            ModulePreGa => {
                let at = inp.pos();
                module::read_pre_ga_value(inp, v)?;
                self.note(Severity::Warning, at, ProblemKind::PreGaModule);
                Ok(1)
            }
            Module2 => module::read_value(inp, v).map(|()| 1),
            HashZipmap => self.zipmap(inp, v),
            ListZiplist => self.with_blob(inp, |r, blob| r.ziplist_elems(blob, false, v)),
            SetIntset => self.with_blob(inp, |_, blob| {
                let members = intset::members(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
                v.container(Container::Intset, blob.data.len());
                let mut n = 0;
                for m in members {
                    v.item(Item::Elem(Elem::Int(m)));
                    n += 1;
                }
                Ok(n)
            }),
            ZsetZiplist | HashZiplist => {
                self.with_blob(inp, |r, blob| r.ziplist_pairs(blob, ty == HashZiplist, v))
            }
            ListQuicklist => quicklist::read_v1(self, inp, v),
            ListQuicklist2 => quicklist::read_v2(self, inp, v),
            HashListpack | ZsetListpack => {
                self.with_blob(inp, |r, blob| r.listpack_pairs(blob, ty == HashListpack, v))
            }
            SetListpack => self.with_blob(inp, |r, blob| r.listpack_set(blob, v)),
            Stream1 | Stream2 | Stream3 | Stream4 => stream::read(self, inp, ty, v),
            HashMetadata | HashMetadataPreGa => self.hash_metadata(inp, ty == HashMetadata, v),
            HashListpackEx | HashListpackExPreGa => {
                self.hash_listpack_ex(inp, ty == HashListpackEx, v)
            }
            ValkeyHash2 => self.valkey_hash2(inp, v),
        }
    }

    fn plain_elems<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        unique: bool,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let n = read_len(inp)?;
        if unique && !self.skip_duplicate_checks {
            self.dups.expect(n, inp.remaining());
        }
        for _ in 0..n {
            let at = inp.pos();
            let s = read_string(inp)?;
            if unique {
                self.unique(s.elem(), at, "set member")?;
            }
            v.item(Item::Elem(s.elem()));
        }
        Ok(n)
    }

    fn plain_hash<'a, I: Input<'a>>(&mut self, inp: &mut I, v: &mut dyn Visitor) -> Result<u64> {
        let n = read_len(inp)?;
        if !self.skip_duplicate_checks {
            self.dups.expect(n, inp.remaining());
        }
        for _ in 0..n {
            let at = inp.pos();
            let field = read_string(inp)?;
            let value = read_string(inp)?;
            self.unique(field.elem(), at, "hash field")?;
            v.item(Item::Field {
                field: field.elem(),
                value: value.elem(),
                expire_ms: None,
            });
        }
        Ok(n)
    }

    fn plain_zset<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        binary: bool,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let n = read_len(inp)?;
        if !self.skip_duplicate_checks {
            self.dups.expect(n, inp.remaining());
        }
        for _ in 0..n {
            let at = inp.pos();
            let member = read_string(inp)?;
            let score = if binary {
                read_binary_double(inp)?
            } else {
                read_text_double(inp)?
            };
            if score.is_nan() {
                return Err(Error::new(at, ErrorKind::NanScore));
            }
            self.unique(member.elem(), at, "zset member")?;
            v.item(Item::Scored {
                member: member.elem(),
                score,
            });
        }
        Ok(n)
    }

    fn zipmap<'a, I: Input<'a>>(&mut self, inp: &mut I, v: &mut dyn Visitor) -> Result<u64> {
        self.with_blob(inp, |r, blob| {
            let pairs = zipmap::pairs(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
            v.container(Container::Zipmap, blob.data.len());
            for (field, value) in &pairs {
                r.unique(Elem::Bytes(field), blob.at, "hash field")?;
                v.item(Item::Field {
                    field: Elem::Bytes(field),
                    value: Elem::Bytes(value),
                    expire_ms: None,
                });
            }
            Ok(pairs.len() as u64)
        })
    }

    fn ziplist_pairs(&mut self, blob: &Blob<'_>, hash: bool, v: &mut dyn Visitor) -> Result<u64> {
        let mut zl = Ziplist::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
        v.container(Container::Ziplist, blob.data.len());
        self.pairs(blob, "ziplist", hash, || zl.next_elem(), v)
    }

    fn listpack_pairs(&mut self, blob: &Blob<'_>, hash: bool, v: &mut dyn Visitor) -> Result<u64> {
        let mut lp = Listpack::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
        v.container(Container::Listpack, blob.data.len());
        self.pairs(blob, "listpack", hash, || lp.next_elem(), v)
    }

    /// Walks the elements `next` yields from `blob` two by two, as a packed hash or zset.
    fn pairs<'b>(
        &mut self,
        blob: &Blob<'_>,
        encoding: &'static str,
        hash: bool,
        mut next: impl FnMut() -> super::error::BlobResult<Option<Elem<'b>>>,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let mut next = || next().map_err(|e| blob.error(e.0, e.1));
        let mut n = 0;
        let mut prev: Option<(f64, Vec<u8>)> = None;
        while let Some(first) = next()? {
            let Some(second) = next()? else {
                return Err(blob.error(
                    0,
                    corrupt(encoding, "odd number of entries in a pair encoding"),
                ));
            };
            self.pair(first, second, hash, blob.at, &mut prev, v)?;
            n += 1;
        }
        Ok(n)
    }

    /// One field/value or member/score pair of a packed hash or zset.
    fn pair(
        &mut self,
        first: Elem<'_>,
        second: Elem<'_>,
        hash: bool,
        at: u64,
        prev: &mut Option<(f64, Vec<u8>)>,
        v: &mut dyn Visitor,
    ) -> Result<()> {
        if hash {
            self.unique(first, at, "hash field")?;
            v.item(Item::Field {
                field: first,
                value: second,
                expire_ms: None,
            });
            return Ok(());
        }
        self.unique(first, at, "zset member")?;
        let score = match second {
            Elem::Int(i) => i as f64,
            Elem::Bytes(b) => parse_double(b)
                .ok_or_else(|| Error::new(at, ErrorKind::NotANumber("zset score")))?,
        };
        if score.is_nan() {
            return Err(Error::new(at, ErrorKind::NanScore));
        }
        first.with_bytes(|member| {
            if prev
                .as_ref()
                .is_some_and(|(ps, pm)| (*ps, pm.as_slice()) > (score, member))
            {
                let member = super::error::escape(member);
                self.note(Severity::Warning, at, ProblemKind::ZsetUnsorted { member });
            }
            // The previous member's buffer is reused: no allocation per member.
            match prev {
                Some((ps, pm)) => {
                    *ps = score;
                    pm.clear();
                    pm.extend_from_slice(member);
                }
                None => *prev = Some((score, member.to_vec())),
            }
        });
        v.item(Item::Scored {
            member: first,
            score,
        });
        Ok(())
    }

    fn listpack_set(&mut self, blob: &Blob<'_>, v: &mut dyn Visitor) -> Result<u64> {
        let mut lp = Listpack::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
        v.container(Container::Listpack, blob.data.len());
        let mut n = 0;
        while let Some(e) = lp.next_elem().map_err(|e| blob.error(e.0, e.1))? {
            self.unique(e, blob.at, "set member")?;
            v.item(Item::Elem(e));
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set (type 2) of `members` in RDB encoding: a 32-bit length, then short strings.
    fn set_value(members: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0x80];
        v.extend_from_slice(&(members.len() as u32).to_be_bytes());
        for m in members {
            v.push(m.len() as u8);
            v.extend_from_slice(m);
        }
        v
    }

    fn members(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("member:{i}").into_bytes()).collect()
    }

    #[test]
    fn repeats_in_big_sets_are_found_and_named() {
        let n = 3 * crate::rdb::dup_set::SPREAD_MIN as usize;
        let mut r = ValueReader::new();
        let good = set_value(&members(n));
        assert_eq!(
            r.read_span(&good, 0, good.len() as u64, ObjectType::Set, &mut Skip),
            Ok(n as u64)
        );

        let mut m = members(n);
        m[n - 10] = b"member:77".to_vec();
        let bad = set_value(&m);
        // Where the value can be read again, the repeat is named at its own offset.
        let e = r
            .read_span(&bad, 0, bad.len() as u64, ObjectType::Set, &mut Skip)
            .unwrap_err();
        assert_eq!(e.kind.to_string(), "duplicate set member \"member:77\"");
        let at = bad
            .windows(10)
            .rposition(|w| w == b"\x09member:77")
            .unwrap();
        assert_eq!(e.offset, at as u64);
        // Read once, from a slice or from a stream (which does not know how many bytes are
        // left), it is refused the same way, after the same members.
        let mut seen = 0;
        let mut count = |_: Item<'_>| seen += 1;
        let e = r
            .read(
                &mut super::super::SliceInput::new(&bad),
                ObjectType::Set,
                &mut count,
            )
            .unwrap_err();
        assert_eq!((e.offset, e.kind), (0, ErrorKind::SpreadRepeat));
        let e = r
            .read(
                &mut super::super::StreamInput::new(&bad[..]),
                ObjectType::Set,
                &mut count,
            )
            .unwrap_err();
        assert_eq!((e.offset, e.kind), (0, ErrorKind::SpreadRepeat));
        assert_eq!(seen, 2 * n);
        // The reader is ready for the next value.
        assert_eq!(
            r.read_span(&good, 0, good.len() as u64, ObjectType::Set, &mut Skip),
            Ok(n as u64)
        );
    }
}
