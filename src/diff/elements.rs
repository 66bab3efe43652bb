//! Element-level differences of one key: which members, fields, list elements, stream
//! entries and consumer groups were added, removed or changed.
//!
//! Both values are decoded into maps (element name to its state) and compared. Memory is held
//! to a budget: when the elements of a key do not fit, one pass measures how many bytes fall
//! under each residue of a hash of their names, and consecutive residues are grouped into
//! partitions that fit; partitions are then compared one at a time, each reading both values
//! again (a mapped file costs nothing to reread; a DUMP payload is kept for the duration).
//! Empty residues cost nothing, so a key is read at most once per element however small the
//! budget (a partition of one residue is compared even when it is over the budget).

use super::Value;
use super::collect::{Collect, Part, collect};
use super::fingerprint::Seed;
use crate::rdb::{self, Item, Kind};

pub use super::changes::{Changes, Counts, Element, Group, KeyCounts, SECTIONS, Section, State};
pub use super::collect::{ARG_OVERHEAD, name_id};

/// The finest split: residues measured per key (at most 512 KiB of counters).
const MAX_MODULUS: u64 = 1 << 16;
/// Most partitions, and so most reads, one key is compared in.
const MAX_PASSES: u64 = 64;

/// Why a partition could not be compared.
enum PartError {
    Over,
    Read(rdb::Error, bool),
    Io(std::io::Error),
}

/// Partitions of `a` and `b` that fit `budget` each, from a pass measuring both: consecutive
/// residues of the modulus while they fit (one alone even when it does not), empty ones
/// skipped. A residue over the budget is measured again, finer, while the modulus allows.
fn plan(
    a: &Value<'_>,
    b: &Value<'_>,
    (kind, seed): (Kind, Seed),
    mut modulus: u64,
    budget: usize,
) -> Result<Vec<Part>, PartError> {
    let budget = budget as u64;
    let sizes = loop {
        let sizes = measure(a, b, (kind, seed), modulus)?;
        let total: u64 = sizes.iter().sum();
        if modulus >= MAX_MODULUS || sizes.iter().all(|&s| s <= budget) {
            break sizes;
        }
        modulus = (total / budget)
            .saturating_mul(4)
            .clamp(modulus * 2, MAX_MODULUS)
            .next_power_of_two();
    };
    let mut parts = Vec::new();
    let (mut from, mut held) = (0, 0u64);
    for (r, &size) in (0..modulus).zip(&sizes) {
        if held > 0 && held.saturating_add(size) > budget {
            parts.push(Part {
                modulus,
                from,
                to: r,
            });
            (from, held) = (r, 0);
        }
        held = held.saturating_add(size);
    }
    if held > 0 {
        parts.push(Part {
            modulus,
            from,
            to: modulus,
        });
    }
    Ok(parts)
}

/// The bytes the elements of `a` and `b` would hold, per residue of their hash.
fn measure(
    a: &Value<'_>,
    b: &Value<'_>,
    (kind, seed): (Kind, Seed),
    modulus: u64,
) -> Result<Vec<u64>, PartError> {
    let mut c = Collect::new(kind, seed, Part::WHOLE, None);
    c.sizes = vec![0; modulus as usize];
    for (v, side_a) in [(a, true), (b, false)] {
        v.visit(&mut c).map_err(|e| PartError::Read(e, side_a))?;
        c.end_entry();
        c.end_group();
    }
    Ok(c.sizes)
}

fn compare_part(
    a: &Value<'_>,
    b: &Value<'_>,
    kind: Kind,
    seed: Seed,
    part: Part,
    budget: Option<usize>,
) -> Result<Changes, PartError> {
    let (mut map_a, _, used) = collect(a, kind, seed, part, budget)
        .map_err(|e| PartError::Read(e, true))?
        .ok_or(PartError::Over)?;
    let left = budget.map(|b| b.saturating_sub(used));
    let (map_b, b_bytes, _) = collect(b, kind, seed, part, left)
        .map_err(|e| PartError::Read(e, false))?
        .ok_or(PartError::Over)?;
    let mut c = Changes {
        b_bytes,
        ..Default::default()
    };
    for ((section, name), sb) in map_b {
        match (map_a.remove(&(section, name.clone())), sb) {
            (None, sb) => c.added.push((section, name, sb)),
            (Some(State::Count(x)), State::Count(y)) => {
                if y > x {
                    c.added.push((section, name, State::Count(y - x)));
                } else if x > y {
                    c.removed.push((section, name, State::Count(x - y)));
                }
            }
            (Some(sa), sb) if sa.same(&sb) => {}
            (Some(sa), sb) => c.changed.push((section, name, sa, sb)),
        }
    }
    c.removed
        .extend(map_a.into_iter().map(|((s, n), st)| (s, n, st)));
    c.added.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    c.removed.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    c.changed.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    Ok(c)
}

/// Which side a read error is from.
#[derive(Debug)]
pub struct ReadError {
    pub error: rdb::Error,
    pub side_a: bool,
}

/// Compares the elements of `a` and `b` (both of `kind`) within `budget` bytes, handing each
/// partition's changes to `each` (with true when that one partition covers the whole key).
/// Returns the counts and how many partitions it took.
pub fn compare(
    a: &Value<'_>,
    b: &Value<'_>,
    kind: Kind,
    seed: Seed,
    budget: usize,
    each: &mut dyn FnMut(Changes, bool) -> std::io::Result<()>,
) -> Result<Result<(KeyCounts, u64), ReadError>, std::io::Error> {
    // Decoded elements take more room than their encoding: a generous guess of what the whole
    // key holds decides whether to try it in one pass, and how finely to measure it if not.
    let estimate = (a.bytes() + b.bytes()).saturating_mul(4);
    // Each partition reads the whole key again: a budget tiny for the key would read it once
    // per element. At most MAX_PASSES partitions bounds the time; the memory is then up to a
    // MAX_PASSES-th of the key, when that is more than the budget.
    let floor = usize::try_from(estimate / MAX_PASSES).unwrap_or(usize::MAX);
    let budget = budget.max(floor).max(1);
    let mut counts = KeyCounts::default();
    if estimate <= budget as u64 {
        match compare_part(a, b, kind, seed, Part::WHOLE, Some(budget)) {
            Ok(c) => {
                counts.add(&c);
                each(c, true)?;
                return Ok(Ok((counts, 1)));
            }
            Err(PartError::Read(error, side_a)) => return Ok(Err(ReadError { error, side_a })),
            Err(PartError::Over | PartError::Io(_)) => {}
        }
    }
    let modulus = (estimate / budget as u64)
        .saturating_mul(4)
        .clamp(64, MAX_MODULUS)
        .next_power_of_two();
    let compared = plan(a, b, (kind, seed), modulus, budget).and_then(|parts| {
        for &part in &parts {
            let c = compare_part(a, b, kind, seed, part, None)?;
            counts.add(&c);
            each(c, part.is_whole()).map_err(PartError::Io)?;
        }
        Ok(parts.len() as u64)
    });
    match compared {
        Ok(parts) => Ok(Ok((counts, parts))),
        Err(PartError::Read(error, side_a)) => Ok(Err(ReadError { error, side_a })),
        Err(PartError::Io(e)) => Err(e),
        // A planned partition has no budget to be over.
        Err(PartError::Over) => Ok(Ok((counts, 0))),
    }
}

/// The bytes a string value holds (for showing it).
pub fn string_bytes(v: &Value<'_>) -> Result<Vec<u8>, rdb::Error> {
    let mut out = Vec::new();
    v.visit(&mut |i: Item<'_>| {
        if let Item::Str(e) = i {
            out = e.to_vec();
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::payload;

    /// A DUMP payload of a listpack-free plain set (type 2) of `members`.
    fn set_payload(members: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![2u8, members.len() as u8];
        for m in members {
            body.push(m.len() as u8);
            body.extend_from_slice(m);
        }
        payload::build(&body, 9)
    }

    fn value(p: Vec<u8>) -> Value<'static> {
        Value::Payload {
            payload: p,
            ty: rdb::ObjectType::Set,
        }
    }

    fn run(
        a: &[&[u8]],
        b: &[&[u8]],
        budget: usize,
    ) -> (KeyCounts, u64, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (a, b) = (value(set_payload(a)), value(set_payload(b)));
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        let (counts, parts) = compare(&a, &b, Kind::Set, Seed(9), budget, &mut |c, _| {
            added.extend(c.added.into_iter().map(|e| e.1));
            removed.extend(c.removed.into_iter().map(|e| e.1));
            Ok(())
        })
        .unwrap()
        .unwrap();
        added.sort();
        removed.sort();
        (counts, parts, added, removed)
    }

    #[test]
    fn set_members_added_and_removed() {
        let names: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
        let a: Vec<&[u8]> = names[..30].iter().map(Vec::as_slice).collect();
        let b: Vec<&[u8]> = names[5..40].iter().map(Vec::as_slice).collect();
        let (counts, parts, added, removed) = run(&a, &b, 1 << 20);
        assert_eq!(parts, 1);
        let c = counts.section(Section::Element);
        assert_eq!((c.added, c.removed, c.changed), (10, 5, 0));
        assert_eq!(removed, names[..5].to_vec());
        // A budget that holds a few elements only: the same answer over many partitions.
        let (small, parts, added2, removed2) = run(&a, &b, 600);
        assert!(parts > 4, "{parts} partitions");
        assert_eq!(small, counts);
        assert_eq!((added2, removed2), (added, removed));
    }
}
