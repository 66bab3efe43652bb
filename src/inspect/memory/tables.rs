//! Hash tables and skiplists: what a set, hash or sorted set held as a table costs, per element
//! and for the table itself, in each layout ([`Table`]).

use super::model::{Model, SetEntry, Table};
use super::sizes::{sds_header, sds_request};

/// Hashtable buckets: one cache line of 7 slots.
const BUCKET: u64 = 64;
const BUCKET_SLOTS: u64 = 7;
/// Valkey's hash entries embed the value when the entry stays within this size.
const ENTRY_EMBED_LIMIT: u64 = 128;

/// What kind of value a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Set,
    Hash,
    Zset,
}

/// A set member's own allocations: its sds, and its dict entry where it has one.
pub fn set_member(m: &Model, len: u64) -> u64 {
    match (m.layout.table, m.layout.set_entry) {
        (Table::Dict { entry, .. }, None) => entry + m.sds(len),
        // Counted with the table: entries depend on how members share buckets.
        (Table::Dict { .. }, Some(SetEntry::NoValueChained)) => m.sds(len),
        (Table::Buckets { .. }, _) => m.sds(len),
    }
}

/// A sorted-set member: its sds, its skiplist node, and its dict entry where it has one.
pub fn zset_member(m: &Model, len: u64, nodes: &mut NodeCost) -> u64 {
    match m.layout.table {
        Table::Dict { .. } => m.layout.zset_entry + m.sds(len) + nodes.get(m, 24),
        // Score, backward pointer, levels, the sds header size byte, then the sds.
        Table::Buckets { .. } if m.layout.member_in_node => {
            nodes.get(m, 16 + 1 + sds_header(len) + len + 1)
        }
        Table::Buckets { .. } => m.sds(len) + nodes.get(m, 24),
    }
}

/// The expected skiplist node size last asked for: one per sorted set where members do not
/// live in their nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeCost {
    base: u64,
    cost: u64,
}

impl NodeCost {
    fn get(&mut self, m: &Model, base: u64) -> u64 {
        if self.cost == 0 || self.base != base {
            *self = NodeCost {
                base,
                cost: skiplist_node(m, base),
            };
        }
        self.cost
    }
}

/// The skiplist's header node, with every level.
pub fn skiplist_header(m: &Model) -> u64 {
    let base = if m.layout.member_in_node { 17 } else { 24 };
    m.alloc(base + 16 * m.layout.skiplist_levels)
}

/// Expected allocation of a skiplist node of `base` bytes plus 16 per level, levels drawn with
/// p = 1/4 as `zslRandomLevel` does.
fn skiplist_node(m: &Model, base: u64) -> u64 {
    let mut expected = 0.0;
    let mut p = 0.75;
    for level in 1..=8u64 {
        expected += p * m.alloc(base + 16 * level) as f64;
        p *= 0.25;
    }
    // Levels above 8 (one node in 65,536) cost about what level 9 does.
    expected += p / 0.75 * m.alloc(base + 16 * 9) as f64;
    expected.round() as u64
}

/// A hash field and its value.
pub fn hash_field(m: &Model, field: u64, value: u64, ttl: bool) -> u64 {
    match m.layout.table {
        Table::Dict { entry, .. } => {
            let meta = if ttl { m.layout.field_ttl_meta } else { 0 };
            entry + m.sds_sized(sds_request(field) + meta) + m.sds(value)
        }
        Table::Buckets { .. } => {
            // Valkey's entry is one allocation: the expiry if any, the field's sds (type 8 at
            // least unless it starts the allocation and the value follows it), then the
            // value's sds, or a pointer to it where embedding would pass 128 bytes.
            let expiry = if ttl { 8 } else { 0 };
            let header = |alone: bool| match field {
                0..32 if alone => 1,
                0..32 => 3,
                _ => sds_header(field),
            };
            let embedded = expiry + header(!ttl) + field + 1 + 3 + value + 1;
            if embedded <= ENTRY_EMBED_LIMIT {
                m.alloc(embedded)
            } else {
                m.alloc(expiry + 8 + header(false) + field + 1) + m.sds(value)
            }
        }
    }
}

/// The table itself for `n` elements; `grown` when it was filled one insert at a time instead
/// of presized, `ttl_fields` hash fields with a TTL.
pub fn table(m: &Model, holds: Holds, n: u64, grown: bool, ttl_fields: u64) -> u64 {
    match m.layout.table {
        Table::Dict { header, .. } => {
            let buckets = if grown {
                grown_dict_buckets(n)
            } else {
                n.max(4).next_power_of_two()
            };
            let entries = match m.layout.set_entry {
                // Members alone in their bucket need no entry; the rest take 16 bytes.
                Some(SetEntry::NoValueChained) if holds == Holds::Set => {
                    let b = buckets as f64;
                    let used = b * (1.0 - (1.0 - 1.0 / b).powf(n as f64));
                    16 * (n - (used.round() as u64).min(n))
                }
                _ => 0,
            };
            header + 8 * buckets + entries
        }
        Table::Buckets { header } => {
            let tracking = match ttl_fields {
                0 => 0,
                k => 8 + m.layout.field_ttl_tracking * k,
            };
            header + BUCKET * hashtable_buckets(n) + tracking
        }
    }
}

/// Buckets of a dict that grew one insert at a time to `n` entries, as a hash with field TTLs
/// does when loaded (7.4+ does not presize it): it doubles when full, then moves one bucket per
/// insert; until the about 63% of old buckets that hold entries have moved, both tables count.
fn grown_dict_buckets(n: u64) -> u64 {
    if n <= 4 {
        return 4;
    }
    let size = n.next_power_of_two();
    let old = size / 2;
    let moved = n - old;
    if (moved as f64) < old as f64 * (1.0 - (-1.0f64).exp()) {
        old + size
    } else {
        size
    }
}

/// Buckets of a Valkey hashtable presized for `n` entries (filled to at most 7/8 on average,
/// a power of two), plus the child buckets expected where more than 7 entries hash to one.
fn hashtable_buckets(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let min = (n * 5).div_ceil(32).max(1);
    let buckets = min.next_power_of_two();
    // Entries per bucket are Poisson(λ); a bucket with k > 7 entries needs
    // ceil((k - 7) / 6) child buckets.
    let lambda = n as f64 / buckets as f64;
    let mut p = (-lambda).exp();
    let mut children = 0.0;
    for k in 1..=40u64 {
        p *= lambda / k as f64;
        if k > BUCKET_SLOTS {
            children += p * (k - BUCKET_SLOTS).div_ceil(BUCKET_SLOTS - 1) as f64;
        }
    }
    buckets + (children * buckets as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtable_sizes() {
        assert_eq!(hashtable_buckets(0), 0);
        assert_eq!(hashtable_buckets(5), 1);
        // 600 entries: 94 buckets at least, 128 used, some chained.
        let b = hashtable_buckets(600);
        assert!((128 + 10..=128 + 20).contains(&b), "{b}");
    }

    #[test]
    fn grown_dicts() {
        // 600 fields: the table doubled to 1024 at the 513th and is still rehashing.
        assert_eq!(grown_dict_buckets(600), 512 + 1024);
        assert_eq!(grown_dict_buckets(1000), 1024);
        assert_eq!(grown_dict_buckets(3), 4);
    }
}
