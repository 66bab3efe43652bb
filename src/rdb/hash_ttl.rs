//! Hashes with per-field expiry: Redis 7.4+ (types 24 and 25, and the release candidates'
//! 22 and 23) and Valkey 9 (`HASH_2`, type 22 in VALKEY files). Expiry times are absolute unix
//! milliseconds; Redis accepts at most 48 bits of them.

use super::decoder::ValueReader;
use super::error::{Error, ErrorKind, Result, corrupt};
use super::input::Input;
use super::listpack::Listpack;
use super::primitive::{Elem, read_len, read_string};
use super::visit::{Container, Item, Visitor};

impl ValueReader {
    /// Hashtable-encoded hash with field TTLs (types 24 and, without min-expire, 22).
    pub(super) fn hash_metadata<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        has_min: bool,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let min_expire = if has_min {
            Some(u64::from_le_bytes(inp.read_array("min expire")?))
        } else {
            None
        };
        let n = read_len(inp)?;
        for _ in 0..n {
            let at = inp.pos();
            let ttl = read_len(inp)?;
            let field = read_string(inp)?;
            let value = read_string(inp)?;
            let expire = match (ttl, min_expire) {
                (0, _) => None,
                (t, Some(min)) => Some(
                    t.checked_add(min)
                        .and_then(|e| e.checked_sub(1))
                        .ok_or_else(|| bad_expire(at))?,
                ),
                (t, None) => Some(t),
            };
            check_field_expire(expire, at)?;
            self.unique(field.elem(), at, "hash field")?;
            v.item(Item::Field {
                field: field.elem(),
                value: value.elem(),
                expire_ms: expire,
            });
        }
        Ok(n)
    }

    /// Listpack hash of (field, value, ttl) triplets (types 25 and, without min-expire, 23).
    pub(super) fn hash_listpack_ex<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        has_min: bool,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        if has_min {
            inp.skip(8, "min expire")?;
        }
        self.with_blob(inp, |r, blob| {
            let mut lp = Listpack::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
            v.container(Container::Listpack, blob.data.len());
            let mut next = || lp.next_elem().map_err(|e| blob.error(e.0, e.1));
            let mut n = 0;
            // Fields with a TTL come first, by ascending TTL; the server relies on that order.
            let mut prev_order = 0u64;
            while let Some(field) = next()? {
                let (Some(value), Some(ttl)) = (next()?, next()?) else {
                    return Err(blob.error(
                        0,
                        corrupt(
                            "listpack",
                            "entry count not a multiple of 3 in a hash with field TTLs",
                        ),
                    ));
                };
                let expire = match ttl {
                    Elem::Int(0) => None,
                    Elem::Int(t) if t > 0 => Some(t as u64),
                    _ => return Err(bad_expire(blob.at)),
                };
                check_field_expire(expire, blob.at)?;
                let order = expire.unwrap_or(u64::MAX);
                if order < prev_order {
                    return Err(blob.error(
                        0,
                        corrupt("listpack", "hash fields not in ascending TTL order"),
                    ));
                }
                prev_order = order;
                r.unique(field, blob.at, "hash field")?;
                v.item(Item::Field {
                    field,
                    value,
                    expire_ms: expire,
                });
                n += 1;
            }
            Ok(n)
        })
    }

    /// Valkey 9 `HASH_2`: (field, value, 8-byte expiry, -1 = none) per entry.
    pub(super) fn valkey_hash2<'a, I: Input<'a>>(
        &mut self,
        inp: &mut I,
        v: &mut dyn Visitor,
    ) -> Result<u64> {
        let n = read_len(inp)?;
        for _ in 0..n {
            let at = inp.pos();
            let field = read_string(inp)?;
            let value = read_string(inp)?;
            let raw = i64::from_le_bytes(inp.read_array("field expiry")?);
            let expire = match raw {
                -1 => None,
                t if t >= 0 => Some(t as u64),
                _ => return Err(bad_expire(at)),
            };
            self.unique(field.elem(), at, "hash field")?;
            v.item(Item::Field {
                field: field.elem(),
                value: value.elem(),
                expire_ms: expire,
            });
        }
        Ok(n)
    }
}

/// Largest field expiry Redis accepts (48 bits of milliseconds).
const FIELD_EXPIRE_MAX: u64 = 0x0000_FFFF_FFFF_FFFF;

fn bad_expire(at: u64) -> Error {
    Error::new(at, ErrorKind::BadFieldExpiry)
}

fn check_field_expire(expire: Option<u64>, at: u64) -> Result<()> {
    match expire {
        Some(e) if e > FIELD_EXPIRE_MAX => Err(bad_expire(at)),
        _ => Ok(()),
    }
}
