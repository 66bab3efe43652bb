//! Streams (types 15, 19, 21, 26): listpack nodes keyed by master ID, then the stream metadata,
//! the consumer groups with their pending-entries lists and (type 26, Redis 8.6) the state of
//! idempotent producers. Checked as Redis's deep sanitization does (node framing, lp-count, PEL
//! ownership) plus ID order and metadata consistency, which Redis does not check, as warnings.

use std::collections::{HashMap, HashSet};

use super::decoder::ValueReader;
use super::error::{Error, ErrorKind, Result, corrupt};
use super::input::Input;
use super::listpack::Listpack;
use super::primitive::{Blob, Elem, read_bytes, read_len};
use super::problem::{ProblemKind, Severity};
use super::types::ObjectType;
use super::visit::{Container, Item, StreamId, StreamMeta, Visitor};

const DELETED: i64 = 1;
const SAME_FIELDS: i64 = 2;

fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> ErrorKind {
    corrupt("stream", detail)
}

fn read_id<'a, I: Input<'a>>(inp: &mut I) -> Result<StreamId> {
    Ok(StreamId {
        ms: read_len(inp)?,
        seq: read_len(inp)?,
    })
}

/// A stream ID stored as 16 raw bytes (big-endian ms, seq), as in node keys and PELs.
fn raw_id(b: &[u8; 16]) -> StreamId {
    let (ms, seq) = b.split_at(8);
    StreamId {
        ms: u64::from_be_bytes(ms.try_into().unwrap_or_default()),
        seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
    }
}

pub fn read<'a, I: Input<'a>>(
    r: &mut ValueReader,
    inp: &mut I,
    ty: ObjectType,
    v: &mut dyn Visitor,
) -> Result<u64> {
    let version = match ty {
        ObjectType::Stream1 => 1,
        ObjectType::Stream2 => 2,
        ObjectType::Stream3 => 3,
        _ => 4,
    };
    let nodes = read_len(inp)?;
    let mut node_keys = HashSet::new();
    let mut last_seen: Option<StreamId> = None;
    let mut live = 0u64;
    for _ in 0..nodes {
        let at = inp.pos();
        let key = read_bytes(inp)?;
        let key: [u8; 16] = key
            .as_ref()
            .try_into()
            .map_err(|_| Error::new(at, bad("node key is not 16 bytes")))?;
        if !node_keys.insert(key) {
            return Err(Error::new(
                at,
                bad("listpack re-added with an existing node key"),
            ));
        }
        live += r.with_blob(inp, |r, blob| {
            read_node(r, blob, raw_id(&key), &mut last_seen, v)
        })?;
    }
    let at = inp.pos();
    let length = read_len(inp)?;
    let last_id = read_id(inp)?;
    let mut meta = StreamMeta {
        length,
        last_id,
        ..Default::default()
    };
    if version >= 2 {
        meta.first_id = Some(read_id(inp)?);
        meta.max_deleted_id = Some(read_id(inp)?);
        meta.entries_added = Some(read_len(inp)?);
    }
    if length > 0 && nodes == 0 {
        return Err(Error::new(at, bad("non-empty stream without nodes")));
    }
    check_meta(r, &meta, live, last_seen, at);
    meta.groups = read_len(inp)?;
    let groups = meta.groups;
    v.item(Item::StreamMeta(meta));
    let mut names = HashSet::new();
    for _ in 0..groups {
        read_group(r, inp, version, last_id, &mut names, v)?;
    }
    if version >= 4 {
        read_idmp(r, inp, last_id, v)?;
    }
    Ok(live)
}

/// The limits the server puts on IDMP settings (and refuses a file beyond).
const IDMP_DURATION_S: std::ops::RangeInclusive<u64> = 1..=86_400;
const IDMP_MAX_ENTRIES: std::ops::RangeInclusive<u64> = 1..=10_000;

/// Idempotent-producer state: settings, then per producer (in pid order) the idempotency IDs
/// it sent with the entries they added, oldest first, then two counters. Every number is a
/// length; IDs are two lengths (ms, seq), not the 16 raw bytes of node keys and PELs.
fn read_idmp<'a, I: Input<'a>>(
    r: &mut ValueReader,
    inp: &mut I,
    last_id: StreamId,
    v: &mut dyn Visitor,
) -> Result<()> {
    let at = inp.pos();
    let duration_s = read_len(inp)?;
    let max_entries = read_len(inp)?;
    if !IDMP_DURATION_S.contains(&duration_s) || !IDMP_MAX_ENTRIES.contains(&max_entries) {
        return Err(Error::new(
            at,
            bad(format!(
                "IDMP duration {duration_s} s or max entries {max_entries} outside \
                 {IDMP_DURATION_S:?} and {IDMP_MAX_ENTRIES:?}"
            )),
        ));
    }
    let producers = read_len(inp)?;
    v.item(Item::StreamIdmp {
        duration_s,
        max_entries,
        producers,
    });
    let mut pids = HashSet::new();
    let mut iids = HashSet::new();
    for _ in 0..producers {
        let at = inp.pos();
        let pid = read_bytes(inp)?;
        if !pids.insert(pid.to_vec()) {
            return Err(Error::new(at, bad("duplicate IDMP producer")));
        }
        let entries = read_len(inp)?;
        v.item(Item::StreamProducer { pid: &pid, entries });
        iids.clear();
        for _ in 0..entries {
            let at = inp.pos();
            let iid = read_bytes(inp)?;
            let id = read_id(inp)?;
            if !iids.insert(iid.to_vec()) {
                r.note(Severity::Warning, at, ProblemKind::RepeatedIdmpId);
            }
            if id > last_id {
                let last = last_id;
                r.note(
                    Severity::Warning,
                    at,
                    ProblemKind::IdmpBeyondLastId { id, last },
                );
            }
            v.item(Item::StreamProducerEntry { iid: &iid, id });
        }
    }
    let added = read_len(inp)?;
    let duplicates = read_len(inp)?;
    v.item(Item::StreamIdmpTotals { added, duplicates });
    Ok(())
}

fn check_meta(
    r: &mut ValueReader,
    meta: &StreamMeta,
    live: u64,
    last_seen: Option<StreamId>,
    at: u64,
) {
    if meta.length != live {
        let length = meta.length;
        r.note(
            Severity::Warning,
            at,
            ProblemKind::StreamLength { length, live },
        );
    }
    if let Some(max) = last_seen.filter(|&max| max > meta.last_id) {
        let last = meta.last_id;
        r.note(
            Severity::Warning,
            at,
            ProblemKind::StreamLastIdBelow { last, max },
        );
    }
    if let Some(added) = meta.entries_added.filter(|&added| added < meta.length) {
        let length = meta.length;
        r.note(
            Severity::Warning,
            at,
            ProblemKind::StreamEntriesAdded { added, length },
        );
    }
}

/// Notes an entry `id` (of the node with key `node`, at `at`) that is not after the last one
/// seen, or the first below its node key; it is the last seen then.
#[inline]
fn check_order(
    r: &mut ValueReader,
    at: u64,
    node: StreamId,
    last_seen: &mut Option<StreamId>,
    id: StreamId,
) {
    if last_seen.is_some_and(|prev| prev >= id) {
        r.note(
            Severity::Warning,
            at,
            ProblemKind::StreamIdsNotIncreasing { id },
        );
    } else if last_seen.is_none() && id < node {
        r.note(
            Severity::Warning,
            at,
            ProblemKind::StreamEntryBelowNode { id, node },
        );
    }
    *last_seen = Some(id);
}

/// One node listpack: the master entry, then `count + deleted` entries.
fn read_node(
    r: &mut ValueReader,
    blob: &Blob<'_>,
    master: StreamId,
    last_seen: &mut Option<StreamId>,
    v: &mut dyn Visitor,
) -> Result<u64> {
    let err = |e: super::error::At| blob.error(e.0, e.1);
    let mut lp = Listpack::new(&blob.data).map_err(err)?;
    v.container(Container::Listpack, blob.data.len());
    let mut next = || -> Result<Elem<'_>> {
        let at = lp.pos();
        lp.next_elem()
            .map_err(err)?
            .ok_or_else(|| blob.error(at, bad("node listpack ends inside an entry")))
    };
    let int = |e: Elem<'_>| -> Result<i64> {
        match e {
            Elem::Int(i) => Ok(i),
            Elem::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| blob.error(0, bad("integer expected in node"))),
        }
    };
    let count = int(next()?)?;
    let deleted = int(next()?)?;
    let nfields = int(next()?)?;
    if count < 0 || deleted < 0 || nfields < 0 {
        return Err(blob.error(0, bad("negative count in master entry")));
    }
    let mut master_fields = Vec::with_capacity(nfields.min(1024) as usize);
    for _ in 0..nfields {
        master_fields.push(next()?);
    }
    if int(next()?)? != 0 {
        return Err(blob.error(0, bad("master entry not terminated by 0")));
    }
    if count + deleted == 0 {
        return Err(blob.error(0, bad("empty node")));
    }
    let mut live = 0;
    for _ in 0..count + deleted {
        let flags = int(next()?)?;
        let id = StreamId {
            ms: master.ms.wrapping_add(int(next()?)? as u64),
            seq: master.seq.wrapping_add(int(next()?)? as u64),
        };
        check_order(r, blob.at, master, last_seen, id);
        let is_live = flags & DELETED == 0;
        let same = flags & SAME_FIELDS != 0;
        let k = if same {
            master_fields.len()
        } else {
            usize::try_from(int(next()?)?)
                .map_err(|_| blob.error(0, bad("negative field count")))?
        };
        if is_live {
            v.item(Item::StreamEntry { id, fields: k });
        }
        for i in 0..k {
            let field = if same {
                master_fields.get(i).copied()
            } else {
                None
            };
            let field = match field {
                Some(f) => f,
                None => next()?,
            };
            let value = next()?;
            if is_live {
                v.item(Item::StreamField { field, value });
            }
        }
        let expect = if same { k + 3 } else { 2 * k + 4 };
        if int(next()?)? != expect as i64 {
            return Err(blob.error(0, bad("entry lp-count differs from its size")));
        }
        if is_live {
            live += 1;
        }
    }
    if lp.next_elem().map_err(err)?.is_some() {
        return Err(blob.error(0, bad("data after the last entry of a node")));
    }
    if live != count as u64 {
        return Err(blob.error(0, bad("live entry count differs from the master entry")));
    }
    Ok(live)
}

fn read_group<'a, I: Input<'a>>(
    r: &mut ValueReader,
    inp: &mut I,
    version: u8,
    last_id: StreamId,
    names: &mut HashSet<Vec<u8>>,
    v: &mut dyn Visitor,
) -> Result<()> {
    let at = inp.pos();
    let name = read_bytes(inp)?;
    if !names.insert(name.to_vec()) {
        return Err(Error::new(at, bad("duplicate consumer group name")));
    }
    let group_last = read_id(inp)?;
    if group_last > last_id {
        let (group, last) = (group_last, last_id);
        r.note(
            Severity::Warning,
            at,
            ProblemKind::GroupBeyondLastId { group, last },
        );
    }
    let entries_read = if version >= 2 {
        Some(read_len(inp)?).filter(|&n| n != u64::MAX)
    } else {
        None
    };
    let pel_size = read_len(inp)?;
    // The group's pending IDs, each marked once a consumer claims it.
    let mut pel: HashMap<StreamId, bool> = HashMap::new();
    let mut pending_items = Vec::new();
    for _ in 0..pel_size {
        let at = inp.pos();
        let id = raw_id(&inp.read_array("pending ID")?);
        let delivery_time_ms = u64::from_le_bytes(inp.read_array("delivery time")?);
        let delivery_count = read_len(inp)?;
        if pel.insert(id, false).is_some() {
            return Err(Error::new(
                at,
                bad("duplicate ID in the group's pending list"),
            ));
        }
        pending_items.push((id, delivery_time_ms, delivery_count));
    }
    let consumers = read_len(inp)?;
    v.item(Item::StreamGroup {
        name: &name,
        last_id: group_last,
        entries_read,
        pending: pel_size,
        consumers,
    });
    for (id, delivery_time_ms, delivery_count) in pending_items {
        v.item(Item::StreamPending {
            id,
            delivery_time_ms,
            delivery_count,
        });
    }
    let mut consumer_names = HashSet::new();
    for _ in 0..consumers {
        let at = inp.pos();
        let cname = read_bytes(inp)?;
        if !consumer_names.insert(cname.to_vec()) {
            return Err(Error::new(at, bad("duplicate consumer name")));
        }
        let seen_time_ms = u64::from_le_bytes(inp.read_array("consumer seen time")?);
        let active_time_ms = if version >= 3 {
            Some(u64::from_le_bytes(inp.read_array("consumer active time")?))
        } else {
            None
        };
        let pending = read_len(inp)?;
        v.item(Item::StreamConsumer {
            name: &cname,
            seen_time_ms,
            active_time_ms,
            pending,
        });
        for _ in 0..pending {
            let at = inp.pos();
            let id = raw_id(&inp.read_array("consumer pending ID")?);
            match pel.get_mut(&id) {
                Some(owned) if !*owned => *owned = true,
                Some(_) => return Err(Error::new(at, bad("pending ID owned by two consumers"))),
                None => {
                    return Err(Error::new(
                        at,
                        bad("consumer pending ID missing from the group's pending list"),
                    ));
                }
            }
            v.item(Item::StreamConsumerPending { id });
        }
    }
    if pel.values().any(|owned| !owned) {
        return Err(Error::new(at, bad("pending entry without a consumer")));
    }
    Ok(())
}
