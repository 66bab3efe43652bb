//! Estimating what a key costs in a server's memory, the way `MEMORY USAGE key SAMPLES 0`
//! counts it in the release that will hold it (see [`model`]): the key and its keyspace entry,
//! the object header, and the value's structures (sds strings, listpacks or ziplists, intsets,
//! quicklist nodes, dict or hashtable buckets and entries, skiplist nodes, stream radix trees),
//! each rounded up to the allocator's size classes ([`sizes::Allocator`]).
//!
//! Values are costed as the server builds them when it loads the file: encodings the release
//! does not keep are converted (ziplists and zipmaps become listpacks from 7.0 on, listpacks
//! become ziplists before it, a small one-node quicklist becomes a listpack from 7.2 on), sets,
//! hashes and sorted sets stored as tables but small enough take their small encoding
//! ([`packed`]), and tables are presized to their element count ([`tables`]). Where the
//! server's structure depends on chance (skiplist levels, hashtable child buckets) the expected
//! size is used. Module values are not estimated (only the module knows).

pub mod model;
pub mod packed;
pub mod rax;
pub mod sizes;
pub mod tables;

pub use model::{Model, Origin};
pub use sizes::Allocator;

use crate::rdb::{Container, Elem, Item, ObjectType, Visitor};
use model::{Embedding, KeyHolding, Rax};
use packed::{HASH_MAX_PACKED, Packer, SET_MAX_INTSET, SET_MAX_LISTPACK, Small, ZSET_MAX_PACKED};
use sizes::canonical_int;
use tables::Holds;

const ROBJ: u64 = 16;
const DICT_ENTRY: u64 = 24;
const QUICKLIST: u64 = 40;
/// `list-max-listpack-size -2`: quicklist nodes of up to 8 KiB.
const NODE_LIMIT: u64 = 8192;
const ZSET: u64 = 16;
const ZSKIPLIST: u64 = 32;
/// Redis's own per-node allowance when it estimates a radix tree.
const RAX_NODE: u64 = 4 + 8 * 30;
/// A Redis 7.4+ `listpackEx` (expiry metadata, key pointer, listpack pointer).
const LISTPACK_EX: u64 = 24;

/// What the server holds a value as once loaded (before small tables are repacked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    String,
    List,
    /// One packed blob: intset, listpack or ziplist.
    Packed,
    Table(Holds),
    Stream,
    Module,
}

fn shape(ty: ObjectType, model: &Model) -> Shape {
    use ObjectType::*;
    match ty {
        String => Shape::String,
        ListLinked | ListZiplist | ListQuicklist | ListQuicklist2 => Shape::List,
        SetIntset => Shape::Packed,
        SetListpack if model.layout.list_listpack => Shape::Packed,
        Set | SetListpack => Shape::Table(Holds::Set),
        ZsetZiplist | ZsetListpack => Shape::Packed,
        ZsetText | Zset2 => Shape::Table(Holds::Zset),
        HashZipmap | HashZiplist | HashListpack | HashListpackEx | HashListpackExPreGa => {
            Shape::Packed
        }
        Hash | HashMetadata | HashMetadataPreGa | ValkeyHash2 => Shape::Table(Holds::Hash),
        Stream1 | Stream2 | Stream3 | Stream4 => Shape::Stream,
        ModulePreGa | Module2 => Shape::Module,
    }
}

/// A packed blob being measured: its size in the file, or the blob the server builds from its
/// elements when it converts the encoding.
#[derive(Debug, Clone, Copy)]
struct Blob {
    bytes: u64,
    rebuilt: Option<Packer>,
    /// Scores in it were written as `%.17g` (ziplists, by 6.2 and older).
    long_scores: bool,
    plain: bool,
}

impl Blob {
    fn size(&self) -> u64 {
        self.rebuilt.map_or(self.bytes, |p| p.bytes())
    }
}

/// Accumulates one key's estimated memory from its items.
pub struct MemoryVisitor {
    model: Model,
    ty: ObjectType,
    shape: Shape,
    /// The blob being walked, closed into `blobs` / `nodes` when the next one starts.
    blob: Option<Blob>,
    /// Allocated bytes of closed blobs, and the quicklist nodes they make.
    blobs: u64,
    nodes: u64,
    /// Size of the last node, for the one-node quicklist that becomes a listpack.
    last_node: u64,
    /// What a set, hash or sorted set stored as a table is adding up.
    table: Option<Box<TableState>>,
    elements: u64,
    string_len: u64,
    int_string: bool,
    stream: Option<Box<StreamTrees>>,
    module: bool,
}

/// A table's per-element structures, and the small encoding it may take instead.
struct TableState {
    entries: u64,
    small: Option<Small>,
    node_cost: tables::NodeCost,
    /// Hash fields with a TTL.
    ttl_fields: u64,
}

/// A stream's radix trees, as they are read.
struct StreamTrees {
    /// The tree of nodes, keyed by each node's first entry; a node was just opened.
    nodes: rax::Rax,
    node_opened: bool,
    /// The pending-entries tree being read (a group's or a consumer's), and the bytes of the
    /// groups' structures so far.
    pending: Option<rax::Rax>,
    groups: u64,
}

impl StreamTrees {
    /// Counts the pending-entries tree just read.
    fn close_pending(&mut self, m: &Model) {
        if let Some(tree) = self.pending.take() {
            self.groups += rax_cost(m, &tree);
        }
    }
}

fn new_rax(m: &Model) -> rax::Rax {
    let header = match m.layout.stream.rax {
        Rax::Allocated { header } => header,
        Rax::Allowance => 0,
    };
    rax::Rax::new(m.allocator, header)
}

/// A stream radix tree as `MEMORY USAGE` counts it.
fn rax_cost(m: &Model, tree: &rax::Rax) -> u64 {
    match m.layout.stream.rax {
        Rax::Allowance => 16 * tree.keys() + RAX_NODE * tree.nodes(),
        Rax::Allocated { .. } => tree.allocated(),
    }
}

impl MemoryVisitor {
    // Inlined so that it is built where it is used: one is made per key.
    #[inline(always)]
    pub fn new(ty: ObjectType, model: Model) -> Self {
        let shape = shape(ty, &model);
        let listpack = model.layout.listpack;
        // A hash with field TTLs in Valkey is a hashtable whatever its size.
        let small = match shape {
            Shape::Table(Holds::Set) if model.layout.list_listpack => {
                Some(Small::new(listpack, SET_MAX_INTSET))
            }
            Shape::Table(Holds::Set) => Some(Small::new(listpack, SET_MAX_INTSET).ints_only()),
            Shape::Table(Holds::Hash) if ty != ObjectType::ValkeyHash2 => {
                Some(Small::new(listpack, HASH_MAX_PACKED))
            }
            Shape::Table(Holds::Zset) => Some(Small::new(listpack, ZSET_MAX_PACKED)),
            _ => None,
        };
        MemoryVisitor {
            model,
            ty,
            shape,
            blob: None,
            blobs: 0,
            nodes: 0,
            last_node: 0,
            table: matches!(shape, Shape::Table(_)).then(|| {
                Box::new(TableState {
                    entries: 0,
                    small,
                    node_cost: Default::default(),
                    ttl_fields: 0,
                })
            }),
            elements: 0,
            string_len: 0,
            int_string: false,
            stream: (shape == Shape::Stream).then(|| {
                Box::new(StreamTrees {
                    nodes: new_rax(&model),
                    node_opened: false,
                    pending: None,
                    groups: 0,
                })
            }),
            module: false,
        }
    }

    fn close_blob(&mut self) {
        let Some(blob) = self.blob.take() else {
            return;
        };
        let m = &self.model;
        let bytes = blob.size();
        self.blobs += match self.shape {
            Shape::Stream if m.layout.stream.nodes_exact => bytes,
            // Stream nodes and plain nodes are reported by allocation in every release.
            Shape::Stream => m.alloc(bytes),
            _ if blob.plain => m.alloc(bytes),
            _ => m.blob(bytes),
        };
        if self.shape == Shape::List {
            self.nodes += 1;
            self.last_node = if blob.plain { u64::MAX } else { bytes };
        }
    }

    /// Opens a blob for a container of the file: kept as it is when the server keeps that
    /// encoding, else rebuilt from the elements.
    fn open(&mut self, encoding: Container, bytes: u64) {
        self.close_blob();
        let listpack = self.model.layout.listpack;
        let keep = match encoding {
            Container::Intset | Container::PlainNode => true,
            // A stream's nodes are listpacks in every release.
            Container::Listpack => listpack || self.shape == Shape::Stream,
            Container::Ziplist => !listpack,
            Container::Zipmap => false,
        };
        self.blob = Some(Blob {
            bytes,
            rebuilt: (!keep).then(|| Packer::new(listpack)),
            long_scores: encoding == Container::Ziplist,
            plain: encoding == Container::PlainNode,
        });
    }

    /// Adds `e` to the blob being rebuilt, if one is.
    fn pack(&mut self, e: Elem<'_>) {
        if let Some(p) = self.blob.as_mut().and_then(|b| b.rebuilt.as_mut()) {
            p.push(e);
        }
    }

    fn pack_score(&mut self, score: f64) {
        if let Some(b) = self.blob.as_mut()
            && let Some(p) = b.rebuilt.as_mut()
        {
            p.push_score(score, b.long_scores);
        }
    }

    /// Lists of linked elements or one whole-list ziplist (files before 3.2) are pushed into a
    /// quicklist element by element: nodes of up to 8 KiB, and from 7.2 on a plain node for an
    /// element of 8 KiB or more.
    fn push(&mut self, e: Elem<'_>) {
        let layout = self.model.layout;
        let len = e.len() as u64;
        if layout.list_listpack && len >= NODE_LIMIT {
            self.open(Container::PlainNode, len);
            self.close_blob();
            return;
        }
        let fits = self
            .blob
            .and_then(|b| b.rebuilt)
            .is_some_and(|p| p.bytes() + p.entry(e) <= NODE_LIMIT);
        if !fits {
            self.close_blob();
            self.blob = Some(Blob {
                bytes: 0,
                rebuilt: Some(Packer::new(layout.listpack)),
                long_scores: false,
                plain: false,
            });
        }
        self.pack(e);
    }

    /// The value's object header with its key, for layouts that keep the key there.
    fn object(&self, key_len: u64, ttl: bool, embedded: u64) -> u64 {
        let m = &self.model;
        match m.layout.key {
            KeyHolding::InObject(e) => {
                let header = if embedded > 0 { e.header } else { ROBJ };
                m.alloc(header + expiry(key_len, ttl) + 1 + embedded_key(key_len) + embedded)
            }
            _ => ROBJ,
        }
    }

    /// The key outside its object: its sds and keyspace entry.
    fn key(&self, key_len: u64) -> u64 {
        let m = &self.model;
        match m.layout.key {
            KeyHolding::Separate => m.sds(key_len) + DICT_ENTRY,
            KeyHolding::InEntry => m.alloc(8 + 8 + 1 + sizes::sds_request(key_len)),
            KeyHolding::InObject(_) => 0,
        }
    }

    fn string(&self, key_len: u64, ttl: bool) -> u64 {
        let m = &self.model;
        let len = self.string_len;
        if self.int_string {
            return self.object(key_len, ttl, 0);
        }
        match m.layout.key {
            KeyHolding::InObject(e) if embeds(e, key_len, len, ttl) => {
                self.object(key_len, ttl, 3 + len + 1)
            }
            KeyHolding::InObject(_) => self.object(key_len, ttl, 0) + m.sds(len),
            _ if len > 44 => ROBJ + m.sds(len),
            _ if m.layout.embstr_exact => ROBJ + len + 2,
            _ => m.alloc(ROBJ + 3 + len + 1),
        }
    }

    fn list(&self) -> u64 {
        let layout = self.model.layout;
        if layout.list_listpack
            && self.nodes == 1
            && self.last_node <= NODE_LIMIT
            && self.ty != ObjectType::ListZiplist
        {
            // The one node's listpack becomes the value itself.
            return self.blobs;
        }
        QUICKLIST + layout.quicklist_node * self.nodes + self.blobs
    }

    /// A set, hash or sorted set stored as a table: in the small encoding the server picks
    /// when it is small enough, else as a table.
    fn table(&self, holds: Holds) -> u64 {
        let m = &self.model;
        let Some(t) = self.table.as_deref() else {
            return 0;
        };
        if let Some(small) = t.small {
            let hfe = matches!(
                self.ty,
                ObjectType::HashMetadata | ObjectType::HashMetadataPreGa
            );
            let packed = match holds {
                Holds::Set => small.intset().or_else(|| small.packed(SET_MAX_LISTPACK)),
                Holds::Hash => small.packed(HASH_MAX_PACKED),
                Holds::Zset => small.packed(ZSET_MAX_PACKED),
            };
            if let Some(bytes) = packed {
                return if hfe { m.alloc(LISTPACK_EX) } else { 0 } + m.blob(bytes);
            }
        }
        // A hash with field TTLs (7.4+) is filled without presizing its table.
        let grown = matches!(
            self.ty,
            ObjectType::HashMetadata | ObjectType::HashMetadataPreGa
        );
        let table = tables::table(m, holds, self.elements, grown, t.ttl_fields) + t.entries;
        match holds {
            Holds::Zset => ZSET + ZSKIPLIST + tables::skiplist_header(m) + table,
            _ => table,
        }
    }

    fn stream(&mut self) -> u64 {
        let m = self.model;
        let Some(s) = self.stream.as_mut() else {
            return 0;
        };
        s.close_pending(&m);
        m.layout.stream.header + rax_cost(&m, &s.nodes) + self.blobs + s.groups
    }

    /// The key's estimate: key, keyspace entry and value; None for module values. `ttl`: the
    /// key has an expiry (which layouts that keep the key in the object store there too).
    pub fn finish(&mut self, key_len: u64, ttl: bool) -> Option<u64> {
        self.close_blob();
        if self.module {
            return None;
        }
        let value = match self.shape {
            Shape::String => return Some(self.key(key_len) + self.string(key_len, ttl)),
            Shape::List => self.list(),
            Shape::Packed if self.ty == ObjectType::HashListpackEx => {
                self.model.alloc(LISTPACK_EX) + self.blobs
            }
            Shape::Packed => self.blobs,
            Shape::Table(holds) => self.table(holds),
            Shape::Stream => self.stream(),
            Shape::Module => return None,
        };
        Some(self.key(key_len) + self.object(key_len, ttl, 0) + value)
    }
}

/// Expiry bytes in an object that holds its key: with a TTL, or reserved for long keys.
fn expiry(key_len: u64, ttl: bool) -> u64 {
    if ttl || key_len >= 128 { 8 } else { 0 }
}

/// An embedded key: its sds by the type its length needs.
fn embedded_key(key_len: u64) -> u64 {
    sizes::sds_header(key_len) + key_len + 1
}

/// Whether a string value of `len` bytes is embedded in the object with its key.
fn embeds(e: Embedding, key_len: u64, len: u64, ttl: bool) -> bool {
    let key = if e.key_estimate {
        key_len + 3
    } else {
        1 + embedded_key(key_len)
    };
    let expire = if e.expire_counts && ttl { 8 } else { 0 };
    let value = 3 + len + 1;
    e.header + key + expire + value <= e.limit
}

impl Visitor for MemoryVisitor {
    fn wants_bytes(&self) -> bool {
        false
    }

    fn container(&mut self, encoding: Container, bytes: usize) {
        match self.ty {
            _ if let Some(s) = self.stream.as_mut() => s.node_opened = true,
            // Its elements are pushed into a new quicklist.
            ObjectType::ListZiplist => return,
            _ => {}
        }
        self.open(encoding, bytes as u64);
    }

    fn item(&mut self, item: Item<'_>) {
        let m = self.model;
        match item {
            Item::Str(v) => {
                self.string_len = v.len() as u64;
                self.int_string = match v {
                    Elem::Int(_) => true,
                    Elem::Bytes(b) => canonical_int(b).is_some(),
                };
            }
            Item::StrLen(len) => {
                self.string_len = len;
                self.int_string = false;
            }
            Item::Elem(e) => {
                self.elements += 1;
                match self.ty {
                    _ if let Some(t) = self.table.as_deref_mut() => {
                        t.entries += tables::set_member(&m, e.len() as u64);
                        if let Some(s) = t.small.as_mut() {
                            s.member(e);
                        }
                    }
                    ObjectType::ListLinked | ObjectType::ListZiplist => self.push(e),
                    _ => self.pack(e),
                }
            }
            Item::Scored { member, score } => {
                self.elements += 1;
                if let Some(t) = self.table.as_deref_mut() {
                    let len = member.len() as u64;
                    t.entries += tables::zset_member(&m, len, &mut t.node_cost);
                    if let Some(s) = t.small.as_mut() {
                        s.scored(member, score, !m.layout.short_scores);
                    }
                } else {
                    self.pack(member);
                    self.pack_score(score);
                }
            }
            Item::Field {
                field,
                value,
                expire_ms,
            } => {
                self.elements += 1;
                if let Some(t) = self.table.as_deref_mut() {
                    let (f, v) = (field.len() as u64, value.len() as u64);
                    t.ttl_fields += u64::from(expire_ms.is_some());
                    t.entries += tables::hash_field(&m, f, v, expire_ms.is_some());
                    if let Some(s) = t.small.as_mut() {
                        s.pair(field, value);
                    }
                } else {
                    self.pack(field);
                    self.pack(value);
                }
            }
            Item::StreamEntry { id, .. } => {
                if let Some(s) = self.stream.as_mut().filter(|s| s.node_opened) {
                    // The node's key is its master ID, which its first entry has unless that
                    // was deleted; either sits the same way in the tree.
                    s.node_opened = false;
                    s.nodes.insert(rax::stream_key(id.ms, id.seq));
                }
            }
            Item::StreamGroup { pending, .. } => {
                if let Some(s) = self.stream.as_mut() {
                    s.close_pending(&m);
                    s.groups += m.layout.stream.group + m.layout.stream.nack * pending;
                    s.pending = Some(new_rax(&m));
                }
            }
            Item::StreamConsumer { name, .. } => {
                if let Some(s) = self.stream.as_mut() {
                    s.close_pending(&m);
                    s.groups += m.layout.stream.consumer + name.len() as u64;
                    s.pending = Some(new_rax(&m));
                }
            }
            Item::StreamPending { id, .. } | Item::StreamConsumerPending { id } => {
                if let Some(tree) = self.stream.as_mut().and_then(|s| s.pending.as_mut()) {
                    tree.insert(rax::stream_key(id.ms, id.seq));
                }
            }
            Item::Module { .. } => self.module = true,
            _ => {}
        }
    }
}

/// Bytes a key with a TTL adds to the totals outside `MEMORY USAGE`: its expires entry.
pub fn expire_entry(model: &Model) -> u64 {
    model.layout.expire_entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(server: &str, allocator: Allocator) -> Model {
        Model::new(server.parse().unwrap(), allocator)
    }

    fn string(server: &str, allocator: Allocator, key: u64, value: &[u8], ttl: bool) -> u64 {
        let mut v = MemoryVisitor::new(ObjectType::String, model(server, allocator));
        v.item(Item::Str(Elem::Bytes(value)));
        v.finish(key, ttl).unwrap()
    }

    /// `MEMORY USAGE` of strings loaded from a file, read from each server.
    #[test]
    fn strings_match_real_servers() {
        use Allocator::*;
        // Key sds 12 and entry 24; value: robj + len + 2, unrounded before 7.0.
        assert_eq!(
            string("redis-5.0", Jemalloc, 10, b"0123456789", false),
            12 + 24 + 28
        );
        assert_eq!(
            string("redis-7.0", Jemalloc16, 10, &[b'v'; 44], false),
            16 + 24 + 64
        );
        // Redis 8: 16 + 1 + (1 + 10 + 1) + (3 + 20 + 1) = 53, embedded.
        assert_eq!(string("redis-8.2", Jemalloc, 10, &[b'v'; 20], false), 56);
        // With a TTL it no longer fits in 64 bytes: kvobj of 36 and an sds of 48.
        assert_eq!(
            string("redis-8.2", Jemalloc, 10, &[b'v'; 45], true),
            40 + 56
        );
        // Valkey 9.1 embeds up to 128 bytes, reusing the value pointer's 8.
        assert_eq!(string("valkey-9.1", Libc, 10, &[b'v'; 100], false), 136);
        assert_eq!(string("valkey-9.1", Libc, 10, &[b'v'; 120], false), 176);
    }

    #[test]
    fn small_tables_take_their_small_encoding() {
        let m = model("redis-7.2", Allocator::Jemalloc);
        let mut v = MemoryVisitor::new(ObjectType::Set, m);
        for e in [&b"apple"[..], b"banana", b"1"] {
            v.item(Item::Elem(Elem::Bytes(e)));
        }
        // robj, key sds and entry; listpack 7 + 7 + 8 + 2 = 24 bytes.
        assert_eq!(v.finish(3, false), Some(16 + 8 + 24 + 24));
        let m = model("redis-7.0", Allocator::Jemalloc);
        let mut v = MemoryVisitor::new(ObjectType::Set, m);
        for i in [1i64, 2, 3] {
            v.item(Item::Elem(Elem::Int(i)));
        }
        // An intset of three 16-bit integers.
        assert_eq!(v.finish(3, false), Some(16 + 8 + 24 + 16));
    }
}
