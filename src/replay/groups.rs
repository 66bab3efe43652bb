//! Which units of a batch share one command: the strings without a TTL of a database in one
//! `MSET`/`MSETNX`, the keys sent with replace semantics in one `DEL`.

use super::unit::{Form, Unit};

/// Most keys, and most bytes, one `MSET`/`MSETNX` writes.
pub(super) const GROUP_KEYS: usize = 128;
const GROUP_BYTES: usize = 256 << 10;
const NX: &[u8] = b"$2\r\nNX\r\n";

/// For a string unit that may join an `MSET`/`MSETNX`: its key and value as encoded in its
/// `SET key value [NX]` (no TTL), and whether it has `NX`. The body is ours (see
/// `Replay::set_body`), so its shape is known: the argument count tells which it is.
pub(super) fn group_pair(u: &Unit) -> Option<(&[u8], bool)> {
    const SET3: &[u8] = b"*3\r\n$3\r\nSET\r\n";
    const SET4: &[u8] = b"*4\r\n$3\r\nSET\r\n";
    if u.form != Form::Set || u.resend || u.alone || u.ask.is_some() {
        return None;
    }
    let b = &u.body[..];
    if let Some(kv) = b.strip_prefix(SET3) {
        Some((kv, false))
    } else {
        let kv = b.strip_prefix(SET4)?.strip_suffix(NX)?;
        Some((kv, true))
    }
}

/// The string units of a batch that go into `MSET`/`MSETNX` commands.
#[derive(Default)]
pub(super) struct Groups {
    /// Indices of grouped units, by (database, NX), in batch order.
    by_db: Vec<((u64, bool), Vec<u32>)>,
    grouped: Vec<bool>,
}

fn same_key(a: &Unit, b: &Unit) -> bool {
    a.db == b.db && a.slot == b.slot && a.key == b.key
}

/// Keys a `DEL` of a batch removes: units sent with replace semantics.
pub(super) fn needs_del(u: &Unit) -> bool {
    u.ask.is_none()
        && match u.form {
            Form::Direct => true,
            Form::Restore | Form::Set => u.resend,
            _ => false,
        }
}

/// Most keys one `DEL` of a batch names.
pub(super) const DELETE_KEYS: usize = 512;

impl Groups {
    /// The units `select` picks (with a flag that splits them further), by database; with
    /// `distinct`, only the first unit of a key (a repeat keeps its own place in the batch).
    pub(super) fn of(
        units: &[Unit],
        select: impl Fn(&Unit) -> Option<(&[u8], bool)>,
        distinct: bool,
    ) -> Groups {
        let mut g = Groups::default();
        for (i, u) in units.iter().enumerate() {
            let Some((_, nx)) = select(u) else {
                continue;
            };
            let at = match g.by_db.iter().position(|(k, _)| *k == (u.db, nx)) {
                Some(at) => at,
                None => {
                    g.by_db.push(((u.db, nx), Vec::new()));
                    g.by_db.len() - 1
                }
            };
            let group = &mut g.by_db[at].1;
            if distinct && group.iter().any(|&j| same_key(&units[j as usize], u)) {
                continue;
            }
            group.push(i as u32);
        }
        // A lone unit is cheaper as it is.
        g.by_db.retain(|(_, v)| v.len() > 1);
        g.grouped = vec![false; units.len()];
        for (_, v) in &g.by_db {
            for &i in v {
                g.grouped[i as usize] = true;
            }
        }
        g
    }

    pub(super) fn has(&self, unit: usize) -> bool {
        self.grouped.get(unit).copied().unwrap_or(false)
    }

    /// The groups, each at most `keys` keys and about [`GROUP_BYTES`] (as `size` counts), and
    /// never the same key twice (an MSETNX would let the second overwrite the first instead of
    /// being refused).
    pub(super) fn chunks(
        &self,
        units: &[Unit],
        keys: usize,
        size: impl Fn(&Unit) -> usize,
    ) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        for (_, members) in &self.by_db {
            let mut cur: Vec<u32> = Vec::new();
            let mut bytes = 0;
            for &i in members {
                let u = &units[i as usize];
                let repeat = cur.iter().any(|&j| same_key(&units[j as usize], u));
                if cur.len() == keys || bytes >= GROUP_BYTES || repeat {
                    out.push(std::mem::take(&mut cur));
                    bytes = 0;
                }
                bytes += size(u);
                cur.push(i);
            }
            out.push(cur);
        }
        out
    }
}
