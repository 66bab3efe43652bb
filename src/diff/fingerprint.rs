//! Canonical fingerprints: a 128-bit hash of what a value means, not of how it is stored, so
//! that a hash kept as a listpack in one snapshot and as a hashtable in the other, an intset
//! and a listpack set, integer-encoded and text scores, all fingerprint alike.
//!
//! Sets, hashes and zsets are unordered: each element is hashed on its own and the hashes are
//! added (mod 2^128), which no order changes. Strings, lists, streams and module values are
//! hashed in order. Elements are always hashed as the bytes the server would return (an
//! integer-encoded member as its decimal text), scores as the exact double.
//!
//! What is compared of a stream: its entries (IDs and fields, in order), its last ID, and each
//! consumer group's name, last delivered ID, pending entries (ID, delivery time and count) and
//! consumers with the IDs they own. Left out, because servers of different versions keep them
//! differently or reading alone changes them: first ID, max deleted ID, entries added, a
//! group's entries read, consumers' seen and active times.

use xxhash_rust::xxh3::{Xxh3, xxh3_128_with_seed};

use crate::rdb::visit::ModuleItem;
use crate::rdb::{Elem, Item, Kind, Visitor};

/// The seed all fingerprints of one comparison share; random per run, so crafted values
/// cannot be made to collide ahead of time.
#[derive(Debug, Clone, Copy)]
pub struct Seed(pub u64);

impl Seed {
    pub fn random() -> Self {
        use std::hash::BuildHasher;
        Seed(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }

    /// The identity of a key: its database and name.
    pub fn key(self, db: u64, key: &[u8]) -> u128 {
        xxh3_128_with_seed(key, self.0 ^ db.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A hash of a value's stored bytes (type code and encoding), see [`super::Prints::Raw`].
    pub fn raw(self, type_code: u8, value: &[u8]) -> u128 {
        xxh3_128_with_seed(value, self.0 ^ (u64::from(type_code) << 56) ^ 0x0072_6177)
    }

    /// A hash of arbitrary bytes with this seed (element identities in the detail pass).
    pub fn bytes(self, b: &[u8]) -> u128 {
        xxh3_128_with_seed(b, self.0)
    }
}

/// Tags that keep the parts of a value apart in the hashed byte stream.
mod tag {
    pub const ENTRY: u8 = 1;
    pub const FIELD: u8 = 2;
    pub const META: u8 = 3;
    pub const GROUP: u8 = 4;
    pub const PENDING: u8 = 5;
    pub const CONSUMER: u8 = 6;
    pub const OWNED: u8 = 7;
    pub const MODULE: u8 = 8;
    pub const SINT: u8 = 9;
    pub const UINT: u8 = 10;
    pub const FLOAT: u8 = 11;
    pub const DOUBLE: u8 = 12;
    pub const STR: u8 = 13;
    pub const IDMP: u8 = 14;
    pub const PRODUCER: u8 = 15;
    pub const IDMP_ENTRY: u8 = 16;
}

/// Computes the fingerprint of one value from its items. Reused across values (the seeded
/// hasher is costly to set up): [`Fingerprinter::start`], visit, [`Fingerprinter::finish`].
pub struct Fingerprinter {
    seed: Seed,
    kind: Kind,
    ordered: Xxh3,
    /// Sum of the element hashes of an unordered collection.
    sum: u128,
    count: u64,
    /// One element laid out for hashing.
    buf: Vec<u8>,
}

impl Fingerprinter {
    pub fn new(seed: Seed) -> Self {
        Fingerprinter {
            seed,
            kind: Kind::String,
            ordered: Xxh3::with_seed(seed.0),
            sum: 0,
            count: 0,
            buf: Vec::new(),
        }
    }

    pub fn start(&mut self, kind: Kind) {
        self.kind = kind;
        self.ordered.reset();
        self.sum = 0;
        self.count = 0;
        self.buf.clear();
    }

    /// The fingerprint of the value visited since [`Fingerprinter::start`].
    pub fn finish(&mut self) -> u128 {
        let body = match self.kind {
            Kind::String | Kind::Set | Kind::Hash | Kind::Zset => self.sum,
            _ => self.ordered.digest128(),
        };
        let mut last = [0u8; 25];
        last[0] = self.kind as u8;
        last[1..9].copy_from_slice(&self.count.to_le_bytes());
        last[9..].copy_from_slice(&body.to_le_bytes());
        self.seed.bytes(&last)
    }

    /// Runs `f` with this thread's fingerprinter for `seed`, started for `kind`.
    pub fn with_thread<R>(seed: Seed, kind: Kind, f: impl FnOnce(&mut Fingerprinter) -> R) -> R {
        thread_local! {
            static FP: std::cell::RefCell<Option<Fingerprinter>> = const { std::cell::RefCell::new(None) };
        }
        FP.with_borrow_mut(|slot| {
            let fp = match slot {
                Some(fp) if fp.seed.0 == seed.0 => fp,
                _ => slot.insert(Fingerprinter::new(seed)),
            };
            fp.start(kind);
            f(fp)
        })
    }

    fn put(&mut self, b: &[u8]) {
        self.buf
            .extend_from_slice(&(b.len() as u64).to_le_bytes()[..]);
        self.buf.extend_from_slice(b);
    }

    fn put_elem(&mut self, e: Elem<'_>) {
        e.with_bytes(|b| self.put(b));
    }

    fn put_u64(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// Hands the element in `buf` to the ordered hash.
    fn ordered_elem(&mut self) {
        self.ordered.update(&self.buf);
        self.buf.clear();
        self.count += 1;
    }

    /// Adds the element in `buf` to the unordered sum.
    fn unordered_elem(&mut self) {
        self.sum = self.sum.wrapping_add(self.seed.bytes(&self.buf));
        self.buf.clear();
        self.count += 1;
    }

    /// Streams and module values: a tagged part of the ordered hash.
    fn part(&mut self, tag: u8, fill: impl FnOnce(&mut Self)) {
        self.buf.push(tag);
        fill(self);
        self.ordered.update(&self.buf);
        self.buf.clear();
    }
}

/// Stream IDs as 16 bytes.
fn id_bytes(id: crate::rdb::StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_le_bytes());
    b[8..].copy_from_slice(&id.seq.to_le_bytes());
    b
}

impl Visitor for Fingerprinter {
    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::Str(e) => {
                // One value, hashed in one go.
                self.sum = e.with_bytes(|b| self.seed.bytes(b));
                self.count += 1;
            }
            // Not sent: this visitor wants bytes.
            Item::StrLen(_) => {}
            Item::Elem(e) => {
                self.put_elem(e);
                if self.kind == Kind::List {
                    self.ordered_elem();
                } else {
                    self.unordered_elem();
                }
            }
            Item::Scored { member, score } => {
                self.put_elem(member);
                self.put_u64(score.to_bits());
                self.unordered_elem();
            }
            Item::Field {
                field,
                value,
                expire_ms,
            } => {
                self.put_elem(field);
                self.put_elem(value);
                // Absolute field expiry; u64::MAX cannot be one (48 bits at most).
                self.put_u64(expire_ms.unwrap_or(u64::MAX));
                self.unordered_elem();
            }
            Item::StreamEntry { id, fields } => {
                self.count += 1;
                self.part(tag::ENTRY, |s| {
                    s.buf.extend_from_slice(&id_bytes(id));
                    s.put_u64(fields as u64);
                });
            }
            Item::StreamField { field, value } => self.part(tag::FIELD, |s| {
                s.put_elem(field);
                s.put_elem(value);
            }),
            Item::StreamMeta(m) => self.part(tag::META, |s| {
                s.buf.extend_from_slice(&id_bytes(m.last_id));
                s.put_u64(m.groups);
            }),
            Item::StreamGroup {
                name,
                last_id,
                pending,
                consumers,
                ..
            } => self.part(tag::GROUP, |s| {
                s.put(name);
                s.buf.extend_from_slice(&id_bytes(last_id));
                s.put_u64(pending);
                s.put_u64(consumers);
            }),
            Item::StreamPending {
                id,
                delivery_time_ms,
                delivery_count,
            } => self.part(tag::PENDING, |s| {
                s.buf.extend_from_slice(&id_bytes(id));
                s.put_u64(delivery_time_ms);
                s.put_u64(delivery_count);
            }),
            Item::StreamConsumer { name, pending, .. } => self.part(tag::CONSUMER, |s| {
                s.put(name);
                s.put_u64(pending);
            }),
            Item::StreamConsumerPending { id } => self.part(tag::OWNED, |s| {
                s.buf.extend_from_slice(&id_bytes(id));
            }),
            // IDMP settings and history; not its counters, which no command can set (like
            // consumer times, they would make every natively replayed stream differ).
            Item::StreamIdmp {
                duration_s,
                max_entries,
                producers,
            } => self.part(tag::IDMP, |s| {
                s.put_u64(duration_s);
                s.put_u64(max_entries);
                s.put_u64(producers);
            }),
            Item::StreamProducer { pid, entries } => self.part(tag::PRODUCER, |s| {
                s.put(pid);
                s.put_u64(entries);
            }),
            Item::StreamProducerEntry { iid, id } => self.part(tag::IDMP_ENTRY, |s| {
                s.put(iid);
                s.buf.extend_from_slice(&id_bytes(id));
            }),
            Item::StreamIdmpTotals { .. } => {}
            Item::Module { module_id } => {
                self.count += 1;
                self.part(tag::MODULE, |s| s.put_u64(module_id));
            }
            Item::ModuleItem(m) => match m {
                ModuleItem::Sint(i) => self.part(tag::SINT, |s| s.put_u64(i as u64)),
                ModuleItem::Uint(u) => self.part(tag::UINT, |s| s.put_u64(u)),
                ModuleItem::Float(f) => {
                    self.part(tag::FLOAT, |s| s.put_u64(u64::from(f.to_bits())))
                }
                ModuleItem::Double(d) => self.part(tag::DOUBLE, |s| s.put_u64(d.to_bits())),
                ModuleItem::Str(e) => self.part(tag::STR, |s| s.put_elem(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::StreamId;

    fn print(kind: Kind, items: &[Item<'_>]) -> u128 {
        let mut fp = Fingerprinter::new(Seed(7));
        fp.start(kind);
        for i in items {
            fp.item(i.clone());
        }
        fp.finish()
    }

    fn field<'a>(f: &'a [u8], v: Elem<'a>, ttl: Option<u64>) -> Item<'a> {
        Item::Field {
            field: Elem::Bytes(f),
            value: v,
            expire_ms: ttl,
        }
    }

    #[test]
    fn unordered_collections_ignore_order_and_integer_encoding() {
        let a = [
            field(b"a", Elem::Int(12), None),
            field(b"b", Elem::Bytes(b"x"), Some(5)),
        ];
        let b = [
            field(b"b", Elem::Bytes(b"x"), Some(5)),
            field(b"a", Elem::Bytes(b"12"), None),
        ];
        assert_eq!(print(Kind::Hash, &a), print(Kind::Hash, &b));
        // The field TTL counts, and so does the value.
        let c = [
            field(b"b", Elem::Bytes(b"x"), Some(6)),
            field(b"a", Elem::Bytes(b"12"), None),
        ];
        assert_ne!(print(Kind::Hash, &a), print(Kind::Hash, &c));
        let d = [
            field(b"b", Elem::Bytes(b"x"), Some(5)),
            field(b"a", Elem::Bytes(b"13"), None),
        ];
        assert_ne!(print(Kind::Hash, &a), print(Kind::Hash, &d));
        let set = |m: &[Elem<'static>]| -> u128 {
            let items: Vec<Item<'_>> = m.iter().map(|&e| Item::Elem(e)).collect();
            print(Kind::Set, &items)
        };
        assert_eq!(
            set(&[Elem::Int(1), Elem::Int(2)]),
            set(&[Elem::Bytes(b"2"), Elem::Bytes(b"1")])
        );
        assert_ne!(set(&[Elem::Int(1)]), set(&[Elem::Int(1), Elem::Int(2)]));
        // The same elements as a list are another value, and order matters there.
        let list = |m: &[&'static [u8]]| -> u128 {
            let items: Vec<Item<'_>> = m.iter().map(|&e| Item::Elem(Elem::Bytes(e))).collect();
            print(Kind::List, &items)
        };
        assert_ne!(list(&[b"1", b"2"]), list(&[b"2", b"1"]));
        assert_ne!(list(&[b"1", b"2"]), set(&[Elem::Int(1), Elem::Int(2)]));
        // Element boundaries count: ["ab"] is not ["a", "b"].
        assert_ne!(list(&[b"ab"]), list(&[b"a", b"b"]));
    }

    #[test]
    fn zset_scores_are_exact_doubles() {
        let z = |s: f64| {
            print(
                Kind::Zset,
                &[Item::Scored {
                    member: Elem::Int(1),
                    score: s,
                }],
            )
        };
        assert_eq!(z(5.0), z(10.0 / 2.0));
        assert_ne!(z(5.0), z(5.000000000000001));
        assert_ne!(z(0.0), z(-0.0));
    }

    #[test]
    fn streams_ignore_consumer_times_but_not_pending_entries() {
        let id = StreamId { ms: 1, seq: 2 };
        let stream = |seen: u64, delivered: u64| {
            print(
                Kind::Stream,
                &[
                    Item::StreamEntry { id, fields: 1 },
                    Item::StreamField {
                        field: Elem::Bytes(b"f"),
                        value: Elem::Int(1),
                    },
                    Item::StreamGroup {
                        name: b"g",
                        last_id: id,
                        entries_read: Some(1),
                        pending: 1,
                        consumers: 1,
                    },
                    Item::StreamPending {
                        id,
                        delivery_time_ms: delivered,
                        delivery_count: 1,
                    },
                    Item::StreamConsumer {
                        name: b"c",
                        seen_time_ms: seen,
                        active_time_ms: None,
                        pending: 1,
                    },
                    Item::StreamConsumerPending { id },
                ],
            )
        };
        assert_eq!(stream(1, 10), stream(2, 10));
        assert_ne!(stream(1, 10), stream(1, 11));
    }

    #[test]
    fn keys_are_told_apart_by_database() {
        let s = Seed(1);
        assert_eq!(s.key(0, b"k"), s.key(0, b"k"));
        assert_ne!(s.key(0, b"k"), s.key(1, b"k"));
    }
}
