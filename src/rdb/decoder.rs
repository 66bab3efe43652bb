//! The state every value decoder shares ([`ValueReader`]): the set that finds repeated
//! members, the notes of the value being read, and the buffer compressed blobs are
//! decompressed into; with the steps all encodings use: blobs, repeats, ziplists.

use super::dup_set::DupSet;
use super::error::{Error, ErrorKind, Result};
use super::input::Input;
use super::primitive::{Blob, Elem, read_blob};
use super::problem::{ProblemKind, Severity};
use super::visit::{Container, Item, Visitor};
use super::ziplist::Ziplist;

/// A non-fatal finding inside a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub severity: Severity,
    pub offset: u64,
    pub kind: ProblemKind,
}

/// Above this size the decompression buffer is freed after use: a rare big blob should not
/// hold its memory for the rest of the file.
const SCRATCH_KEEP: usize = 1 << 20;

/// Reusable state for decoding values: the duplicate detector, the notes of the last value and
/// the buffer compressed blobs are decompressed into.
#[derive(Default)]
pub struct ValueReader {
    pub(super) dups: DupSet,
    pub(super) notes: Vec<Note>,
    /// Where compressed blobs are decompressed, kept for the next (see [`Self::with_blob`]).
    scratch: Vec<u8>,
    /// For readers that compare rather than check (diff): repeated members are not looked
    /// for, which saves a hash set insert per element.
    pub(super) skip_duplicate_checks: bool,
}

impl ValueReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader that does not look for repeated members and fields (see `verify` for that).
    pub fn without_duplicate_checks() -> Self {
        ValueReader {
            skip_duplicate_checks: true,
            ..Self::default()
        }
    }

    /// Non-fatal findings of the value read last.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    pub(super) fn note(&mut self, severity: Severity, offset: u64, kind: ProblemKind) {
        self.notes.push(Note {
            severity,
            offset,
            kind,
        });
    }

    /// Reads a blob (an embedded encoding) and hands it to `f`. A compressed blob is
    /// decompressed into this reader's buffer, which is kept for the next unless it grew past
    /// [`SCRATCH_KEEP`].
    pub(super) fn with_blob<'a, I: Input<'a>, R>(
        &mut self,
        inp: &mut I,
        f: impl FnOnce(&mut Self, &Blob<'_>) -> Result<R>,
    ) -> Result<R> {
        self.with_scratch(|r, scratch| read_blob(inp, scratch).and_then(|blob| f(r, &blob)))
    }

    /// Lends `f` the decompression buffer, kept for the next value unless it grew past
    /// [`SCRATCH_KEEP`].
    pub(super) fn with_scratch<R>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Vec<u8>) -> Result<R>,
    ) -> Result<R> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = f(self, &mut scratch);
        if scratch.len() <= SCRATCH_KEEP {
            self.scratch = scratch;
        }
        r
    }

    /// Records `e` as seen; a repeat is corruption (the server refuses such a value).
    pub(super) fn unique(&mut self, e: Elem<'_>, at: u64, what: &'static str) -> Result<()> {
        if self.skip_duplicate_checks || self.dups.insert(e) {
            Ok(())
        } else {
            Err(Error::new(
                at,
                ErrorKind::Duplicate {
                    what,
                    name: e.with_bytes(super::error::escape),
                },
            ))
        }
    }

    /// The elements of a ziplist (a list's, or a quicklist node's), each checked for a repeat
    /// when `unique`.
    pub(super) fn ziplist_elems(
        &mut self,
        blob: &Blob<'_>,
        unique: bool,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let mut zl = Ziplist::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
        v.container(Container::Ziplist, blob.data.len());
        let mut n = 0;
        while let Some(e) = zl.next_elem().map_err(|e| blob.error(e.0, e.1))? {
            if unique {
                self.unique(e, blob.at, "member")?;
            }
            v.item(Item::Elem(e));
            n += 1;
        }
        Ok(n)
    }
}
