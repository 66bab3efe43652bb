//! The file flavours (Redis and Valkey magic) and the object-type table. The same type byte
//! means different things in Redis and Valkey files (22, and opcode 243), so everything is
//! decided by `(flavor, version)`, never by the number alone.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Redis,
    Valkey,
}

/// Magic and version of a file, e.g. `REDIS0011` or `VALKEY080`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub flavor: Flavor,
    pub version: u16,
}

/// Newest Redis RDB version understood (8.6).
pub const REDIS_MAX: u16 = 13;
/// Valkey 9 numbers its formats from 80; 81 is a development format.
pub const VALKEY_MIN: u16 = 80;
pub const VALKEY_MAX: u16 = 81;

impl Format {
    /// DUMP payloads carry only a version: 80 and up are Valkey's, the rest Redis's.
    pub fn from_payload_version(version: u16) -> Self {
        let flavor = if version >= VALKEY_MIN {
            Flavor::Valkey
        } else {
            Flavor::Redis
        };
        Format { flavor, version }
    }

    pub fn is_supported(self) -> bool {
        match self.flavor {
            Flavor::Redis => (1..=REDIS_MAX).contains(&self.version),
            Flavor::Valkey => (VALKEY_MIN..=VALKEY_MAX).contains(&self.version),
        }
    }

    /// Whether the trailer carries a CRC-64 (RDB 5 and up).
    pub fn has_checksum(self) -> bool {
        self.version >= 5
    }

    /// Whether a Redis-magic file may hold types and opcodes of 7.4 and later.
    fn redis_at_least(self, v: u16) -> bool {
        self.flavor == Flavor::Redis && self.version >= v
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flavor {
            Flavor::Redis => write!(f, "REDIS{:04}", self.version),
            Flavor::Valkey => write!(f, "VALKEY{:03}", self.version),
        }
    }
}

/// The data type a user sees (`TYPE key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    Module,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::Zset => "zset",
            Kind::Hash => "hash",
            Kind::Stream => "stream",
            Kind::Module => "module",
        }
    }
}

/// An object type byte as the file's flavour defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    String,
    ListLinked,
    Set,
    ZsetText,
    Hash,
    Zset2,
    ModulePreGa,
    Module2,
    HashZipmap,
    ListZiplist,
    SetIntset,
    ZsetZiplist,
    HashZiplist,
    ListQuicklist,
    Stream1,
    HashListpack,
    ZsetListpack,
    ListQuicklist2,
    Stream2,
    SetListpack,
    Stream3,
    /// Redis 7.4 release candidates only.
    HashMetadataPreGa,
    /// Redis 7.4 release candidates only.
    HashListpackExPreGa,
    HashMetadata,
    HashListpackEx,
    /// Redis 8.6: a v3 stream followed by its idempotent producers' state.
    Stream4,
    /// Valkey 9 hash with per-field expiry (type 22 in VALKEY files).
    ValkeyHash2,
}

impl ObjectType {
    pub fn from_byte(format: Format, b: u8) -> Option<Self> {
        use ObjectType::*;
        Some(match b {
            0 => String,
            1 => ListLinked,
            2 => Set,
            3 => ZsetText,
            4 => Hash,
            5 => Zset2,
            6 => ModulePreGa,
            7 => Module2,
            9 => HashZipmap,
            10 => ListZiplist,
            11 => SetIntset,
            12 => ZsetZiplist,
            13 => HashZiplist,
            14 => ListQuicklist,
            15 => Stream1,
            16 => HashListpack,
            17 => ZsetListpack,
            18 => ListQuicklist2,
            19 => Stream2,
            20 => SetListpack,
            21 => Stream3,
            22 if format.flavor == Flavor::Valkey => ValkeyHash2,
            22 if format.redis_at_least(12) => HashMetadataPreGa,
            23 if format.redis_at_least(12) => HashListpackExPreGa,
            24 if format.redis_at_least(12) => HashMetadata,
            25 if format.redis_at_least(12) => HashListpackEx,
            26 if format.redis_at_least(13) => Stream4,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        use ObjectType::*;
        match self {
            String => 0,
            ListLinked => 1,
            Set => 2,
            ZsetText => 3,
            Hash => 4,
            Zset2 => 5,
            ModulePreGa => 6,
            Module2 => 7,
            HashZipmap => 9,
            ListZiplist => 10,
            SetIntset => 11,
            ZsetZiplist => 12,
            HashZiplist => 13,
            ListQuicklist => 14,
            Stream1 => 15,
            HashListpack => 16,
            ZsetListpack => 17,
            ListQuicklist2 => 18,
            Stream2 => 19,
            SetListpack => 20,
            Stream3 => 21,
            HashMetadataPreGa | ValkeyHash2 => 22,
            HashListpackExPreGa => 23,
            HashMetadata => 24,
            HashListpackEx => 25,
            Stream4 => 26,
        }
    }

    pub fn kind(self) -> Kind {
        use ObjectType::*;
        match self {
            String => Kind::String,
            ListLinked | ListZiplist | ListQuicklist | ListQuicklist2 => Kind::List,
            Set | SetIntset | SetListpack => Kind::Set,
            ZsetText | Zset2 | ZsetZiplist | ZsetListpack => Kind::Zset,
            Hash | HashZipmap | HashZiplist | HashListpack | HashMetadataPreGa
            | HashListpackExPreGa | HashMetadata | HashListpackEx | ValkeyHash2 => Kind::Hash,
            Stream1 | Stream2 | Stream3 | Stream4 => Kind::Stream,
            ModulePreGa | Module2 => Kind::Module,
        }
    }

    /// The storage encoding, in `OBJECT ENCODING` terms where one exists.
    pub fn encoding(self) -> &'static str {
        use ObjectType::*;
        match self {
            String => "string",
            ListLinked => "linkedlist",
            Set | Hash | HashMetadataPreGa | HashMetadata | ValkeyHash2 => "hashtable",
            ZsetText | Zset2 => "skiplist",
            ModulePreGa | Module2 => "module",
            HashZipmap => "zipmap",
            ListZiplist | ZsetZiplist | HashZiplist => "ziplist",
            SetIntset => "intset",
            ListQuicklist | ListQuicklist2 => "quicklist",
            Stream1 | Stream2 | Stream3 | Stream4 => "listpacks",
            HashListpack | ZsetListpack | SetListpack => "listpack",
            HashListpackExPreGa | HashListpackEx => "listpackex",
        }
    }

    /// `kind/encoding`, as error messages and reports name a type.
    pub fn name(self) -> &'static str {
        use ObjectType::*;
        match self {
            String => "string",
            ListLinked => "list/linkedlist",
            Set => "set/hashtable",
            ZsetText => "zset/skiplist(v1)",
            Hash => "hash/hashtable",
            Zset2 => "zset/skiplist",
            ModulePreGa => "module(pre-GA)",
            Module2 => "module",
            HashZipmap => "hash/zipmap",
            ListZiplist => "list/ziplist",
            SetIntset => "set/intset",
            ZsetZiplist => "zset/ziplist",
            HashZiplist => "hash/ziplist",
            ListQuicklist => "list/quicklist",
            Stream1 => "stream(v1)",
            HashListpack => "hash/listpack",
            ZsetListpack => "zset/listpack",
            ListQuicklist2 => "list/quicklist",
            Stream2 => "stream(v2)",
            SetListpack => "set/listpack",
            Stream3 => "stream(v3)",
            HashMetadataPreGa => "hash/hashtable+ttl(pre-GA)",
            HashListpackExPreGa => "hash/listpackex(pre-GA)",
            HashMetadata => "hash/hashtable+ttl",
            HashListpackEx => "hash/listpackex",
            Stream4 => "stream(v4)",
            ValkeyHash2 => "hash/hashtable+ttl(valkey)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_22_depends_on_magic() {
        let redis12 = Format {
            flavor: Flavor::Redis,
            version: 12,
        };
        let redis11 = Format {
            flavor: Flavor::Redis,
            version: 11,
        };
        let valkey = Format {
            flavor: Flavor::Valkey,
            version: 80,
        };
        assert_eq!(
            ObjectType::from_byte(redis12, 22),
            Some(ObjectType::HashMetadataPreGa)
        );
        assert_eq!(
            ObjectType::from_byte(valkey, 22),
            Some(ObjectType::ValkeyHash2)
        );
        assert_eq!(ObjectType::from_byte(redis11, 22), None);
        assert_eq!(ObjectType::from_byte(valkey, 25), None);
        for b in 0..=26u8 {
            if let Some(t) = ObjectType::from_byte(
                Format {
                    flavor: Flavor::Redis,
                    version: 13,
                },
                b,
            ) {
                assert_eq!(t.code(), b);
            }
        }
        assert_eq!(format!("{valkey}"), "VALKEY080");
        assert_eq!(format!("{redis11}"), "REDIS0011");
    }
}
