//! Estimating what a key costs in a server's memory, the way `MEMORY USAGE key SAMPLES 0`
//! counts it in Redis 7.0: the key's sds and dict entry, the object header, and the value's
//! structures (sds strings, listpacks, quicklist nodes, dict tables and entries, skiplist
//! nodes), each rounded up to jemalloc's size classes.
//!
//! What the model knows: Redis 7.0 layouts (robj 16 B, dictEntry 24 B, dict 56 B, quicklist
//! 40 B + 32 B per node, skiplist node 24 B + 16 B per level) and how a loaded value is
//! allocated (exact-size blobs, dicts presized to the next power of two). Older encodings in
//! a file (ziplist, zipmap) are converted to listpacks on load, so their listpack size is
//! computed from the elements. Module values are not estimated (only the module knows).

use crate::rdb::value::Container;
use crate::rdb::{Elem, Item, Kind, ObjectType, Visitor};

/// jemalloc's size class for a request of `n` bytes (4 classes per doubling above 64).
pub fn jemalloc(n: u64) -> u64 {
    match n {
        0..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            let group = 1u64 << (63 - (n - 1).leading_zeros());
            let step = group / 4;
            n.div_ceil(step) * step
        }
    }
}

/// Allocation of an sds string of `len` bytes (header by type, content, terminator).
pub fn sds(len: u64) -> u64 {
    let header = match len {
        0..32 => 1,
        32..256 => 3,
        256..65536 => 5,
        65536..0x1_0000_0000 => 9,
        _ => 17,
    };
    jemalloc(header + len + 1)
}

/// Bytes of one listpack entry holding `e` (encoding, data and back-length).
pub fn listpack_entry(e: Elem<'_>) -> u64 {
    let int_size = |i: i64| match i {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    };
    let size = match e {
        Elem::Int(i) => int_size(i),
        Elem::Bytes(b) => match std::str::from_utf8(b).ok().and_then(canonical_int) {
            Some(i) => int_size(i),
            None => {
                let n = b.len() as u64;
                n + if n < 64 {
                    1
                } else if n < 4096 {
                    2
                } else {
                    5
                }
            }
        },
    };
    size + if size <= 127 {
        1
    } else if size < 16383 {
        2
    } else if size < 2097151 {
        3
    } else {
        4
    }
}

/// The integer a string stands for, when it is written the one way Redis would write it.
fn canonical_int(s: &str) -> Option<i64> {
    let i: i64 = s.parse().ok()?;
    (i.to_string() == s).then_some(i)
}

const ROBJ: u64 = 16;
const DICT_ENTRY: u64 = 24;
const DICT: u64 = 56;
const QUICKLIST: u64 = 40;
const QUICKLIST_NODE: u64 = 32;
const ZSET: u64 = 16;
const ZSKIPLIST: u64 = 32;
/// 24-byte node, 32 levels of 16 bytes.
const ZSKIPLIST_HEADER: u64 = 24 + 32 * 16;
/// Expected size class of a skiplist node: 24 bytes plus 16 per level, levels geometric
/// with p = 1/4 (48 B three times in four, 64 B, 80 B...).
const ZSKIPLIST_NODE_AVG: f64 = 0.75 * 48.0 + 0.1875 * 64.0 + 0.046875 * 80.0 + 0.015625 * 96.0;
const STREAM: u64 = 80;
const STREAM_CG: u64 = 56;
const STREAM_NACK: u64 = 24;
const STREAM_CONSUMER: u64 = 24;
/// Redis's own per-node allowance when it estimates a radix tree.
const RAX_NODE: u64 = 4 + 8 * 30;

/// Dict bucket array of a dict presized for `n` entries.
fn dict_table(n: u64) -> u64 {
    8 * n.max(4).next_power_of_two()
}

/// Redis's estimate for a stream radix tree of `elements` keys: 16 bytes per key and an
/// allowance per node. The node count is not in the file: an empty tree is its root, one key
/// makes two nodes, and larger trees of stream IDs were measured at about two nodes per key
/// plus two (fitted on Redis 7.0 streams with consumer groups).
fn rax(elements: u64) -> u64 {
    let nodes = match elements {
        0 => 1,
        1 => 2,
        n => 2 * n + 2,
    };
    16 * elements + RAX_NODE * nodes
}

/// Accumulates one key's estimated memory from its items.
pub struct MemoryVisitor {
    ty: ObjectType,
    total: u64,
    /// Size of the listpack being walked: its real size when the server keeps the blob as it
    /// is, or the size of the listpack the server would convert a ziplist or zipmap into.
    listpack: Option<u64>,
    /// The elements of the open container add to `listpack` (they are being converted).
    converting: bool,
    elements: u64,
    string_len: u64,
    int_string: bool,
    /// Listpack nodes of a stream (keys of its radix tree).
    stream_nodes: u64,
    module: bool,
}

impl MemoryVisitor {
    pub fn new(ty: ObjectType) -> Self {
        MemoryVisitor {
            ty,
            total: 0,
            listpack: None,
            converting: false,
            elements: 0,
            string_len: 0,
            int_string: false,
            stream_nodes: 0,
            module: false,
        }
    }

    fn in_quicklist(&self) -> bool {
        self.ty.kind() == Kind::List
    }

    fn close_listpack(&mut self) {
        if let Some(bytes) = self.listpack.take() {
            self.total += if self.ty.kind() == Kind::Stream {
                bytes
            } else {
                jemalloc(bytes)
            };
            if self.in_quicklist() {
                self.total += QUICKLIST_NODE;
            }
        }
    }

    /// Accounts an element of the open container; false when there is none.
    fn packed(&mut self, e: Elem<'_>) -> bool {
        match self.listpack.as_mut() {
            Some(lp) => {
                if self.converting {
                    *lp += listpack_entry(e);
                }
                true
            }
            None => false,
        }
    }

    /// The key's estimate: key sds and dict entry plus the value; None for module values.
    pub fn finish(mut self, key_len: u64) -> Option<u64> {
        self.close_listpack();
        if self.module {
            return None;
        }
        let n = self.elements;
        let value = match self.ty.kind() {
            Kind::String if self.int_string => ROBJ,
            Kind::String if self.string_len <= 44 => jemalloc(ROBJ + 3 + self.string_len + 1),
            Kind::String => ROBJ + sds(self.string_len),
            Kind::List => ROBJ + QUICKLIST + self.total,
            Kind::Set | Kind::Hash if self.ty.encoding() == "hashtable" => {
                ROBJ + DICT + dict_table(n) + self.total
            }
            Kind::Zset if self.ty.encoding() == "skiplist" => {
                ROBJ + ZSET
                    + ZSKIPLIST
                    + DICT
                    + dict_table(n)
                    + jemalloc(ZSKIPLIST_HEADER)
                    + self.total
            }
            Kind::Stream => ROBJ + STREAM + rax(self.stream_nodes) + self.total,
            _ => ROBJ + self.total,
        };
        Some(sds(key_len) + DICT_ENTRY + value)
    }
}

impl Visitor for MemoryVisitor {
    fn wants_bytes(&self) -> bool {
        false
    }

    fn container(&mut self, encoding: Container, bytes: usize) {
        self.close_listpack();
        match encoding {
            Container::Intset => self.total += jemalloc(bytes as u64),
            Container::PlainNode => self.total += QUICKLIST_NODE + jemalloc(bytes as u64),
            Container::Listpack => {
                self.stream_nodes += u64::from(self.ty.kind() == Kind::Stream);
                self.listpack = Some(bytes as u64);
                self.converting = false;
            }
            Container::Ziplist | Container::Zipmap => {
                // Header and end marker; entries are added as they come.
                self.listpack = Some(7);
                self.converting = true;
            }
        }
    }

    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::Str(v) => {
                self.string_len = v.len() as u64;
                self.int_string = match v {
                    Elem::Int(_) => true,
                    Elem::Bytes(b) => {
                        b.len() <= 20
                            && std::str::from_utf8(b)
                                .ok()
                                .and_then(canonical_int)
                                .is_some()
                    }
                };
            }
            Item::StrLen(len) => {
                self.string_len = len;
                self.int_string = false;
            }
            Item::Elem(e) => {
                self.elements += 1;
                if !self.packed(e) && self.ty.encoding() == "hashtable" {
                    self.total += DICT_ENTRY + sds(e.len() as u64);
                }
            }
            Item::Scored { member, score } => {
                self.elements += 1;
                if self.converting {
                    let s = crate::resp::format_score(score);
                    let score_elem = match s.parse::<i64>() {
                        Ok(i) if score.fract() == 0.0 => Elem::Int(i),
                        _ => Elem::Bytes(s.as_bytes()),
                    };
                    self.packed(member);
                    self.packed(score_elem);
                } else if self.listpack.is_none() {
                    self.total += sds(member.len() as u64) + DICT_ENTRY + ZSKIPLIST_NODE_AVG as u64;
                }
            }
            Item::Field { field, value, .. } => {
                self.elements += 1;
                if self.listpack.is_some() {
                    self.packed(field);
                    self.packed(value);
                } else {
                    self.total += DICT_ENTRY + sds(field.len() as u64) + sds(value.len() as u64);
                }
            }
            Item::StreamGroup { pending, .. } => {
                self.total += STREAM_CG + STREAM_NACK * pending + rax(pending);
            }
            Item::StreamConsumer { name, pending, .. } => {
                self.total += STREAM_CONSUMER + name.len() as u64 + rax(pending);
            }
            Item::Module { .. } => self.module = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        let got: Vec<u64> = [
            1, 8, 9, 17, 24, 33, 100, 129, 161, 200, 257, 520, 1025, 8193,
        ]
        .map(jemalloc)
        .to_vec();
        assert_eq!(
            got,
            [
                8, 8, 16, 32, 32, 48, 112, 160, 192, 224, 320, 640, 1280, 10240
            ]
        );
        assert_eq!(sds(5), 8);
        assert_eq!(sds(40), 48);
    }

    #[test]
    fn listpack_entries() {
        assert_eq!(listpack_entry(Elem::Int(5)), 2);
        assert_eq!(listpack_entry(Elem::Bytes(b"f1")), 4);
        assert_eq!(listpack_entry(Elem::Bytes(b"300")), 3);
        assert_eq!(listpack_entry(Elem::Bytes(b"007")), 5);
    }
}
