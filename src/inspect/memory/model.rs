//! Which server's memory layout an estimate follows, and how it is chosen: a `--memory-model`
//! given by the user, else the version the file names in its `valkey-ver` / `redis-ver` aux
//! field, else its magic and RDB version. Each release family is one [`Layout`]: the facts
//! that change what `MEMORY USAGE` reports, taken from that release's sources (`object.c`,
//! `dict.h`, `server.h`, `t_zset.c`, `rdb.c`) and checked against the real servers in
//! `tests/inspect_memory.rs`. Where the sources of the exact release were not at hand (Valkey
//! 8.1 and 9.1, Redis 8.2), the structures were read in nearby versions and their sizes
//! confirmed by measuring those servers; the one number fitted to measurements is marked.

use std::fmt;

use crate::rdb::{Flavor, Format};
use crate::release::Release;

use super::sizes::Allocator;

/// The release an RDB file says wrote it: its `valkey-ver` or `redis-ver` aux field.
pub fn from_aux(name: &[u8], value: &[u8]) -> Option<Release> {
    let valkey = match name {
        b"valkey-ver" => true,
        b"redis-ver" => false,
        _ => return None,
    };
    Release::version(valkey, std::str::from_utf8(value).ok()?)
}

/// The newest release that writes `format`, for files that do not name their writer.
pub fn from_format(format: Format) -> Release {
    match (format.flavor, format.version) {
        (Flavor::Valkey, _) => Release::valkey(9, 1),
        (Flavor::Redis, ..=8) => Release::redis(4, 0),
        (Flavor::Redis, 9) => Release::redis(6, 2),
        (Flavor::Redis, 10) => Release::redis(7, 0),
        (Flavor::Redis, 11) => Release::redis(7, 2),
        (Flavor::Redis, _) => Release::redis(8, 2),
    }
}

/// The layout `release` keeps its data in. Releases before 4.0 have no `MEMORY USAGE`; their
/// files are costed as 4.0 would hold them.
pub fn layout(release: Release) -> &'static Layout {
    let v = u32::from(release.major) * 100 + u32::from(release.minor);
    if release.valkey {
        return match v {
            ..800 => &REDIS_7_2,
            800 => &VALKEY_8_0,
            801..901 => &VALKEY_8_1,
            _ => &VALKEY_9_1,
        };
    }
    match v {
        ..600 => &REDIS_4_0,
        600..602 => &REDIS_6_0,
        602..700 => &REDIS_6_2,
        700..702 => &REDIS_7_0,
        702..800 => &REDIS_7_2,
        800..802 => &REDIS_8_0,
        _ => &REDIS_8_2,
    }
}

/// The releases `--memory-model` accepts: those whose layout a model describes.
pub const RELEASES: [Release; 16] = [
    Release::redis(4, 0),
    Release::redis(5, 0),
    Release::redis(6, 0),
    Release::redis(6, 2),
    Release::redis(7, 0),
    Release::redis(7, 2),
    Release::redis(7, 4),
    Release::redis(8, 0),
    Release::redis(8, 2),
    Release::redis(8, 4),
    Release::redis(8, 6),
    Release::valkey(7, 2),
    Release::valkey(8, 0),
    Release::valkey(8, 1),
    Release::valkey(9, 0),
    Release::valkey(9, 1),
];

/// `--memory-model`: `redis-X.Y`, `valkey-X.Y`, or a bare `X.Y` for Redis, one of
/// [`RELEASES`].
pub fn memory_model(s: &str) -> Result<Release, String> {
    s.parse::<Release>()
        .ok()
        .filter(|release| RELEASES.contains(release))
        .ok_or_else(|| {
            let names: Vec<String> = RELEASES.iter().map(Release::to_string).collect();
            format!("no memory model for {s:?}: use one of {}", names.join(", "))
        })
}

/// How the key and its keyspace entry are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHolding {
    /// The key is an sds string of its own and the keyspace holds a 24-byte dictEntry for it
    /// (Redis up to 7.4).
    Separate,
    /// The key is copied, sds header and all, into the keyspace's dict entry after the value
    /// pointer and next pointer and a header-size byte (Valkey 8.0).
    InEntry,
    /// The key lives in the value's object, after its header and an 8-byte expiry (present
    /// with a TTL, and for keys of 128 bytes and more): Redis 8 `kvobj`, Valkey 8.1+. The
    /// keyspace holds only pointers, which `MEMORY USAGE` does not count.
    InObject(Embedding),
}

/// When a string value goes into the object that holds its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedding {
    /// Object header before the expiry when the value is embedded: 16, or 8 where the value
    /// pointer's bytes are reused (Valkey 9.1).
    pub header: u64,
    /// Largest embedded object, in bytes.
    pub limit: u64,
    /// Redis 8 sizes the key as its length plus 3 when deciding; Valkey by its sds type.
    pub key_estimate: bool,
    /// Whether the expiry counts towards the limit (Redis 8); Valkey adds it after deciding.
    pub expire_counts: bool,
}

/// The table behind hash-table sets, hashes and sorted sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Chained dict: the struct, 8 bytes per bucket (a power of two at least the size), and
    /// an entry per element.
    Dict { header: u64, entry: u64 },
    /// Valkey 8.1's open-addressing hashtable: the struct and 64-byte buckets of 7 slots.
    Buckets { header: u64 },
}

/// Stream structures, as `MEMORY USAGE` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLayout {
    /// `sizeof(stream)`; 0 where it was not counted (before 6.2).
    pub header: u64,
    /// Listpack nodes counted by length (`lpBytes`, before 6.2) rather than allocation.
    pub nodes_exact: bool,
    pub group: u64,
    pub consumer: u64,
    /// A pending entry (`streamNACK`).
    pub nack: u64,
    /// How radix trees are costed.
    pub rax: Rax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rax {
    /// Redis's own allowance (`streamRadixTreeMemoryUsage`): 16 bytes per key and 244 per
    /// node.
    Allowance,
    /// The tree's real allocations (Valkey 8.1+ `raxAllocSize`), its `struct rax` of
    /// `header` bytes included.
    Allocated { header: u64 },
}

/// What one release family's memory looks like to `MEMORY USAGE key SAMPLES 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The releases it covers, for reports.
    pub name: &'static str,
    pub key: KeyHolding,
    /// sds strings reported by their header and length (`sdsAllocSize` before 6.0), not by
    /// allocation.
    pub sds_exact: bool,
    /// Ziplists, intsets and ziplist quicklist nodes reported by their length, not their
    /// allocation (before 7.0).
    pub blobs_exact: bool,
    /// Small values are listpacks (7.0+), else ziplists.
    pub listpack: bool,
    /// Embedded strings reported as `len + 2 + 16`, unrounded (before 7.0).
    pub embstr_exact: bool,
    /// `sizeof(quicklistNode)`: 40 from 7.0 on, where a node's size became a `size_t`.
    pub quicklist_node: u64,
    /// A list of one packed node under 8 KiB is loaded as a plain listpack (7.2+; not one of
    /// the whole-list ziplists of files before 3.2); sets may be listpacks.
    pub list_listpack: bool,
    /// Scores in packed sorted sets are written the shortest way that reads back (7.2+), else
    /// as `%.17g`.
    pub short_scores: bool,
    pub table: Table,
    /// Size of a table entry for a set member where it differs from `table`'s (Valkey 8.0
    /// stores lone members in the bucket itself).
    pub set_entry: Option<SetEntry>,
    /// Levels of a skiplist's header node.
    pub skiplist_levels: u64,
    /// What `MEMORY USAGE` counts per sorted-set member for its dict entry (Redis 8 counts the
    /// 16-byte entry of a dict without values).
    pub zset_entry: u64,
    /// Sorted-set members live in their skiplist node (Valkey 9.1), else in an sds of their own.
    pub member_in_node: bool,
    /// Hash fields of 7.4+ are `mstr`s: sds-like, with 16 bytes of metadata when the field
    /// has a TTL.
    pub field_ttl_meta: u64,
    /// Valkey 9 tracks a hash's fields with a TTL in a set of its own: about this many bytes
    /// per such field, and 8 more (fitted to Valkey 9.1: 15-19 bytes per field measured).
    pub field_ttl_tracking: u64,
    pub stream: StreamLayout,
    /// Bytes a key with a TTL adds outside `MEMORY USAGE` (its expires-table entry: a dict
    /// entry, a dict entry without value, or a hashtable slot). Not checked against a server,
    /// as `MEMORY USAGE` does not count it.
    pub expire_entry: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetEntry {
    /// 16-byte entries, except the last of each bucket's chain, held in the bucket.
    NoValueChained,
}

const ROBJ_DICT: Table = Table::Dict {
    header: 96,
    entry: 24,
};
const DICT_56: Table = Table::Dict {
    header: 56,
    entry: 24,
};

const OLD_STREAM: StreamLayout = StreamLayout {
    header: 0,
    nodes_exact: true,
    group: 32,
    consumer: 24,
    nack: 24,
    rax: Rax::Allowance,
};

/// Redis 4.0 and 5.0 (and files of older releases): sds strings reported by header and
/// length, ziplists and intsets by length, embedded strings as `len + 2 + 16`; 96-byte dicts;
/// skiplist headers of 64 levels; streams (5.0) without their struct, nodes by length.
pub static REDIS_4_0: Layout = Layout {
    name: "redis-4.0..5.0",
    key: KeyHolding::Separate,
    sds_exact: true,
    blobs_exact: true,
    listpack: false,
    embstr_exact: true,
    quicklist_node: 32,
    list_listpack: false,
    short_scores: false,
    table: ROBJ_DICT,
    set_entry: None,
    skiplist_levels: 64,
    zset_entry: 24,
    member_in_node: false,
    field_ttl_meta: 0,
    field_ttl_tracking: 0,
    stream: OLD_STREAM,
    expire_entry: 24,
};

/// Redis 6.0: sds strings by allocation; skiplist headers of 32 levels.
pub static REDIS_6_0: Layout = Layout {
    name: "redis-6.0",
    sds_exact: false,
    skiplist_levels: 32,
    ..REDIS_4_0
};

/// Redis 6.2: streams count their 40-byte struct and nodes by allocation.
pub static REDIS_6_2: Layout = Layout {
    name: "redis-6.2",
    stream: StreamLayout {
        header: 40,
        nodes_exact: false,
        ..OLD_STREAM
    },
    ..REDIS_6_0
};

/// Redis 7.0: listpacks instead of ziplists, every blob by allocation, 56-byte dicts, 40-byte
/// quicklist nodes, 80-byte stream structs and 40-byte consumer groups.
pub static REDIS_7_0: Layout = Layout {
    name: "redis-7.0",
    blobs_exact: false,
    listpack: true,
    embstr_exact: false,
    quicklist_node: 40,
    table: DICT_56,
    stream: StreamLayout {
        header: 80,
        nodes_exact: false,
        group: 40,
        consumer: 24,
        nack: 24,
        rax: Rax::Allowance,
    },
    ..REDIS_6_2
};

/// Redis 7.2 to 7.4 (and Valkey 7.2): a one-node list under 8 KiB and small sets are
/// listpacks, scores are written shortest, consumers have an active time (32 bytes); 7.4's
/// hash fields with a TTL carry 16 bytes of metadata.
pub static REDIS_7_2: Layout = Layout {
    name: "redis-7.2..7.4",
    list_listpack: true,
    short_scores: true,
    field_ttl_meta: 16,
    stream: StreamLayout {
        consumer: 32,
        ..REDIS_7_0.stream
    },
    ..REDIS_7_0
};

/// Redis 8.0 and 8.1: the key and its expiry live in the value's object (`kvobj`), strings
/// embedded with them up to 64 bytes; sorted-set members count a 16-byte dict entry.
pub static REDIS_8_0: Layout = Layout {
    name: "redis-8.0..8.1",
    key: KeyHolding::InObject(Embedding {
        header: 16,
        limit: 64,
        key_estimate: true,
        expire_counts: true,
    }),
    zset_entry: 16,
    expire_entry: 16,
    ..REDIS_7_2
};

/// 8.2 added the consumer-group reference index to `struct stream` (112 bytes) and a pointer
/// into it to each pending entry (32 bytes).
pub static REDIS_8_2: Layout = Layout {
    name: "redis-8.2+",
    stream: StreamLayout {
        header: 112,
        nack: 32,
        ..REDIS_7_2.stream
    },
    ..REDIS_8_0
};

/// Valkey 8.0: 7.2's layout, the key embedded in its keyspace dict entry, set members without
/// an entry of their own when alone in their bucket.
pub static VALKEY_8_0: Layout = Layout {
    name: "valkey-8.0",
    key: KeyHolding::InEntry,
    set_entry: Some(SetEntry::NoValueChained),
    ..REDIS_7_2
};

/// Valkey 8.1 to 9.0: the key and expiry in the value's object (strings embedded up to 64
/// bytes), the open-addressing hashtable for sets, hashes and sorted sets, hash entries holding
/// field and value in one allocation, radix trees by their real allocations; 9.0's hash fields
/// with a TTL are tracked in a set of their own.
pub static VALKEY_8_1: Layout = Layout {
    name: "valkey-8.1..9.0",
    key: KeyHolding::InObject(Embedding {
        header: 16,
        limit: 64,
        key_estimate: false,
        expire_counts: false,
    }),
    table: Table::Buckets { header: 72 },
    set_entry: None,
    field_ttl_tracking: 16,
    stream: StreamLayout {
        rax: Rax::Allocated { header: 32 },
        ..REDIS_7_2.stream
    },
    expire_entry: 10,
    ..REDIS_7_2
};

/// Valkey 9.1: embedded strings reuse the value pointer's 8 bytes and go up to 128 bytes;
/// sorted-set members live in their skiplist node.
pub static VALKEY_9_1: Layout = Layout {
    name: "valkey-9.1",
    key: KeyHolding::InObject(Embedding {
        header: 8,
        limit: 128,
        key_estimate: false,
        expire_counts: false,
    }),
    member_in_node: true,
    ..VALKEY_8_1
};

/// Where the model's release came from, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--memory-model`.
    Chosen,
    /// An aux field: `redis-ver 7.0.15`.
    Aux(String),
    /// Only the magic and RDB version.
    Format(Format),
}

/// The memory model of one run: a release's layout and an allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub server: Release,
    pub layout: &'static Layout,
    pub allocator: Allocator,
}

impl Model {
    pub fn new(server: Release, allocator: Allocator) -> Self {
        Model {
            server,
            layout: layout(server),
            allocator,
        }
    }

    /// Allocation of `n` bytes.
    #[inline]
    pub fn alloc(&self, n: u64) -> u64 {
        self.allocator.size(n)
    }

    /// A blob of `n` bytes: its length where the release reports lengths, else its allocation.
    #[inline]
    pub fn blob(&self, n: u64) -> u64 {
        if self.layout.blobs_exact {
            n
        } else {
            self.alloc(n)
        }
    }

    /// A standalone sds string of `len` bytes, as `MEMORY USAGE` reports it.
    #[inline]
    pub fn sds(&self, len: u64) -> u64 {
        self.sds_sized(super::sizes::sds_request(len))
    }

    /// An sds-like string of `request` bytes: by its size before 6.0, else its allocation.
    #[inline]
    pub fn sds_sized(&self, request: u64) -> u64 {
        if self.layout.sds_exact {
            request
        } else {
            self.alloc(request)
        }
    }
}

/// Picks the model: the release given, else the one the file's aux fields name, else the
/// newest release that writes the file's format.
pub fn choose(
    chosen: Option<Release>,
    allocator: Allocator,
    format: Format,
    aux: &[(Vec<u8>, Vec<u8>)],
) -> (Model, Origin) {
    if let Some(server) = chosen {
        return (Model::new(server, allocator), Origin::Chosen);
    }
    // A Valkey file may also carry a Redis-compatible redis-ver; its own version wins.
    for name in [&b"valkey-ver"[..], b"redis-ver"] {
        if let Some((n, v)) = aux.iter().find(|(n, _)| n == name)
            && let Some(server) = from_aux(n, v)
        {
            let origin = Origin::Aux(format!(
                "{} {}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            ));
            return (Model::new(server, allocator), origin);
        }
    }
    let server = from_format(format);
    (Model::new(server, allocator), Origin::Format(format))
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Chosen => write!(f, "--memory-model"),
            Origin::Aux(s) => write!(f, "{s}"),
            Origin::Format(format) => write!(f, "{format}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_pick_layouts() {
        assert_eq!(memory_model("redis-6.2"), Ok(Release::redis(6, 2)));
        assert_eq!(memory_model("7.0"), Ok(Release::redis(7, 0)));
        assert_eq!(
            memory_model("valkey-9.1").unwrap().to_string(),
            "valkey-9.1"
        );
        assert!(memory_model("valkey-x").is_err());
        for unknown in [
            "2.0",
            "99.9",
            "valkey-1.0",
            "redis-8.1",
            "3.2",
            "valkey-9.9",
            "valkey-x",
        ] {
            let e = memory_model(unknown).unwrap_err();
            assert!(e.contains("redis-4.0, ") && e.contains("valkey-9.1"), "{e}");
        }
        assert_eq!(memory_model("7.4.2"), Ok(Release::redis(7, 4)));
        assert_eq!(layout(Release::redis(3, 0)).name, "redis-4.0..5.0");
        assert_eq!(layout(Release::redis(7, 4)).name, "redis-7.2..7.4");
        assert_eq!(layout(Release::redis(8, 0)).name, "redis-8.0..8.1");
        assert_eq!(layout(Release::redis(8, 6)).name, "redis-8.2+");
        assert_eq!(layout(Release::valkey(7, 2)).name, "redis-7.2..7.4");
        assert_eq!(layout(Release::valkey(9, 0)).name, "valkey-8.1..9.0");
        assert_eq!(layout(Release::valkey(9, 1)).name, "valkey-9.1");
    }

    #[test]
    fn the_file_names_its_release() {
        let format = Format {
            flavor: Flavor::Redis,
            version: 11,
        };
        let aux = vec![
            (b"redis-ver".to_vec(), b"7.2.4".to_vec()),
            (b"valkey-ver".to_vec(), b"8.1.8".to_vec()),
        ];
        let (model, origin) = choose(None, Allocator::Jemalloc, format, &aux);
        assert_eq!(model.server, Release::valkey(8, 1));
        assert_eq!(origin.to_string(), "valkey-ver 8.1.8");
        let (model, origin) = choose(None, Allocator::Libc, format, &[]);
        assert_eq!(model.server, Release::redis(7, 2));
        assert_eq!(origin, Origin::Format(format));
        let (model, _) = choose(
            Some(Release::redis(6, 2)),
            Allocator::Jemalloc,
            format,
            &aux,
        );
        assert_eq!(model.layout.name, "redis-6.2");
    }
}
