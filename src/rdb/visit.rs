//! What decoding a value yields, piece by piece, and the trait that receives it: [`Item`]s
//! in file order handed to a [`Visitor`].

use super::primitive::Elem;

/// A stream entry ID: milliseconds and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `ms-seq` as bytes, formatted on the stack.
    pub fn with_text<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let (mut ms, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (ms, seq) = (
            ms.format(self.ms).as_bytes(),
            seq.format(self.seq).as_bytes(),
        );
        let mut text = [0u8; 41];
        text[..ms.len()].copy_from_slice(ms);
        text[ms.len()] = b'-';
        text[ms.len() + 1..ms.len() + 1 + seq.len()].copy_from_slice(seq);
        f(&text[..ms.len() + 1 + seq.len()])
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Stream-level metadata, after the entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMeta {
    pub length: u64,
    pub last_id: StreamId,
    /// Stored from RDB 10 (stream v2) on.
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
    pub groups: u64,
}

/// One piece of a value, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'v> {
    /// The whole value of a string key.
    Str(Elem<'v>),
    /// The length of a string value whose bytes the visitor did not want
    /// ([`Visitor::wants_bytes`]); only longer strings come this way.
    StrLen(u64),
    /// A list element or set member.
    Elem(Elem<'v>),
    Scored {
        member: Elem<'v>,
        score: f64,
    },
    /// A hash field; `expire_ms` is the field's absolute expiry (7.4+ / Valkey 9).
    Field {
        field: Elem<'v>,
        value: Elem<'v>,
        expire_ms: Option<u64>,
    },
    /// A live stream entry; its `fields` pairs follow as [`Item::StreamField`].
    StreamEntry {
        id: StreamId,
        fields: usize,
    },
    StreamField {
        field: Elem<'v>,
        value: Elem<'v>,
    },
    StreamMeta(StreamMeta),
    /// A consumer group; its pending entries and consumers follow.
    StreamGroup {
        name: &'v [u8],
        last_id: StreamId,
        entries_read: Option<u64>,
        pending: u64,
        consumers: u64,
    },
    StreamPending {
        id: StreamId,
        delivery_time_ms: u64,
        delivery_count: u64,
    },
    /// A consumer; its own pending IDs follow as [`Item::StreamConsumerPending`].
    StreamConsumer {
        name: &'v [u8],
        seen_time_ms: u64,
        active_time_ms: Option<u64>,
        pending: u64,
    },
    StreamConsumerPending {
        id: StreamId,
    },
    /// A stream's idempotent-producer settings (Redis 8.6, stream v4), after its groups; its
    /// producers follow as [`Item::StreamProducer`], then [`Item::StreamIdmpTotals`].
    StreamIdmp {
        duration_s: u64,
        max_entries: u64,
        producers: u64,
    },
    /// A producer; its recorded message IDs follow as [`Item::StreamProducerEntry`].
    StreamProducer {
        pid: &'v [u8],
        entries: u64,
    },
    /// An idempotency ID the producer sent, and the entry it added.
    StreamProducerEntry {
        iid: &'v [u8],
        id: StreamId,
    },
    /// Counters kept since the stream was made: IDs recorded, and repeats refused.
    StreamIdmpTotals {
        added: u64,
        duplicates: u64,
    },
    /// A module value; its annotated items follow as [`Item::ModuleItem`].
    Module {
        module_id: u64,
    },
    ModuleItem(ModuleItem<'v>),
}

/// Receives a value piece by piece. Visitors keep their own error state (an output error, say)
/// and may simply ignore what follows it.
pub trait Visitor {
    fn item(&mut self, item: Item<'_>);

    /// False when the visitor needs no string value's bytes: long and compressed string values
    /// then arrive as [`Item::StrLen`], checked without being decompressed into memory.
    fn wants_bytes(&self) -> bool {
        true
    }

    /// A packed container (listpack, ziplist, intset, zipmap, quicklist plain node) of `bytes`
    /// bytes once decompressed begins; its elements follow. For memory accounting.
    fn container(&mut self, _encoding: Container, _bytes: usize) {}
}

/// The packed encodings a value can be made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Listpack,
    Ziplist,
    Intset,
    Zipmap,
    /// A quicklist node holding one large element as it is.
    PlainNode,
}

/// Ignores everything: reading a value only to check it, or to get past it.
pub struct Skip;

impl Visitor for Skip {
    fn item(&mut self, _: Item<'_>) {}

    fn wants_bytes(&self) -> bool {
        false
    }
}

impl<F: FnMut(Item<'_>)> Visitor for F {
    fn item(&mut self, item: Item<'_>) {
        self(item)
    }
}

/// One annotated item of a module payload.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleItem<'v> {
    Sint(i64),
    Uint(u64),
    Float(f32),
    Double(f64),
    Str(Elem<'v>),
}
