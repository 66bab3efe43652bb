//! Reading RDB files and DUMP payloads, as Redis 2.x–8.6 and Valkey 7–9 write them.
//!
//! [`Reader`] pulls records out of a file one at a time; key values are decoded element by
//! element into a [`Visitor`], so nothing larger than one element needs to be held.

pub mod crc;
pub mod decoder;
pub mod dup_set;
pub mod error;
pub mod framing;
pub mod hash_ttl;
pub mod input;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod magic;
pub mod module;
pub mod payload;
pub mod primitive;
pub mod problem;
pub mod quicklist;
pub mod reader;
pub mod record;
pub mod stream;
pub mod types;
pub mod value;
pub mod visit;
pub mod ziplist;
pub mod zipmap;

pub use error::{Error, ErrorKind, Phase};
pub use input::{Input, SliceInput, StreamInput};
pub use primitive::Elem;
pub use problem::{Problem, ProblemKind, Severity};
pub use reader::Reader;
pub use record::{KeyMeta, Located, Record};
pub use types::{Flavor, Format, Kind, ObjectType};
pub use visit::{Container, Item, Skip, StreamId, Visitor};
