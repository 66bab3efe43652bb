//! The keys side of AOF inspect, on a thread of its own: the walk sends where each key
//! written lies in its file (in batches), and this thread counts them in the heavy-hitters
//! sketches and the key prefixes, reading the key bytes from the mapped files.

use crossbeam_channel::{Receiver, Sender, bounded};

use super::KeyRow;
use super::aof::{HeavyRow, KeysTouched, PrefixRow, SKETCH_COUNTERS};
use super::prefix::Prefixes;
use crate::aof::input::AofInput;
use crate::aof::sketch::{Frequent, Heavy};
use crate::rdb::error::escape;

/// A key written: its bytes at `start..start + len` of file `part`, its database, and its
/// share of the command's bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyRef {
    pub part: u32,
    pub len: u32,
    pub start: u64,
    pub db: u64,
    pub share: u64,
}

const BATCH: usize = 8192;
/// Most bytes of file a batch spans: the batches in the channel and the one being counted
/// then stay within the window the walk keeps mapped behind it (see `AofInput::walk`), so
/// that the counting thread never touches a page the walk already released.
const SPAN: u64 = 4 << 20;

/// The walk's end of the channel: keys gathered into batches, the batches sent and their
/// buffers handed back.
pub(super) struct Feed {
    batch: Vec<KeyRef>,
    tx: Sender<Vec<KeyRef>>,
    spare: Receiver<Vec<KeyRef>>,
}

impl Feed {
    pub(super) fn push(&mut self, key: KeyRef) {
        self.batch.push(key);
        let first = self.batch[0];
        let span = key.start.abs_diff(first.start);
        if self.batch.len() == BATCH || span >= SPAN || key.part != first.part {
            let next = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH));
            let full = std::mem::replace(&mut self.batch, next);
            // The counting thread ends only when this feed is dropped.
            let _ = self.tx.send(full);
        }
    }

    /// Sends what is left; the counting thread then finishes.
    pub(super) fn close(self) {
        if !self.batch.is_empty() {
            let _ = self.tx.send(self.batch);
        }
    }
}

/// A counted key: its database and name, copied when the sketch takes it in (so that no
/// page of the files is read again to list it).
#[derive(Debug, Clone)]
struct Named {
    db: u64,
    key: KeyBytes,
}

/// A key's bytes, in place when short.
#[derive(Debug, Clone)]
enum KeyBytes {
    Short(u8, [u8; 22]),
    Long(Box<[u8]>),
}

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        let mut b = [0u8; 22];
        match b.get_mut(..key.len()) {
            Some(to) => {
                to.copy_from_slice(key);
                KeyBytes::Short(key.len() as u8, b)
            }
            None => KeyBytes::Long(key.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Short(len, b) => &b[..*len as usize],
            KeyBytes::Long(b) => b,
        }
    }
}

/// The counts of the keys.
pub(super) struct Keys {
    /// Writes and bytes by key.
    sketch: Frequent<Named, 2>,
    prefixes: Prefixes,
}

/// The counting thread's end of the channel: batches in, emptied buffers back.
pub(super) type End = (Receiver<Vec<KeyRef>>, Sender<Vec<KeyRef>>);

/// A feed, and the thread's end: run [`count`] with it.
pub(super) fn channel() -> (Feed, End) {
    let (tx, rx) = bounded(4);
    let (back, spare) = bounded(4);
    let feed = Feed {
        batch: Vec::with_capacity(BATCH),
        tx,
        spare,
    };
    (feed, (rx, back))
}

/// Counts the keys sent until the feed closes.
pub(super) fn count(input: &AofInput, (rx, back): End, delimiter: u8, depth: usize) -> Keys {
    let mut keys = Keys {
        sketch: Frequent::new(SKETCH_COUNTERS),
        prefixes: Prefixes::new(delimiter, depth),
    };
    for mut batch in rx {
        for k in &batch {
            let data = input.parts[k.part as usize].data();
            let start = k.start as usize;
            keys.add(k, &data[start..start + k.len as usize]);
        }
        batch.clear();
        let _ = back.try_send(batch);
    }
    keys
}

impl Keys {
    fn add(&mut self, k: &KeyRef, key: &[u8]) {
        let hash = Frequent::<Named, 2>::hash(k.db, key);
        let named = || Named {
            db: k.db,
            key: KeyBytes::new(key),
        };
        self.sketch.add(hash, [1, k.share], named);
        self.prefixes.add(&KeyRow {
            db: k.db,
            key,
            r#type: "",
            encoding: "",
            expire_at: None,
            rdb_bytes: k.share,
            elements: 0,
            largest_element: 0,
            memory: Some(1),
        });
    }

    /// The top lists and bounds into `touched`; the prefixes, by level and writes.
    pub(super) fn finish(self, top: usize, touched: &mut KeysTouched) -> Vec<PrefixRow> {
        touched.sketch_counters = self.sketch.k();
        touched.writes_bound = self.sketch.bound(0);
        touched.bytes_bound = self.sketch.bound(1);
        touched.top_by_writes = self.heavy_rows(0, top);
        touched.top_by_bytes = self.heavy_rows(1, top);
        let mut prefixes: Vec<PrefixRow> = self
            .prefixes
            .rows()
            .into_iter()
            .map(|p| PrefixRow {
                level: p.level,
                prefix: p.prefix,
                writes: p.keys,
                bytes: p.rdb_bytes,
            })
            .collect();
        prefixes.sort_by(|a, b| {
            let order = |p: &PrefixRow| (p.level, std::cmp::Reverse(p.writes));
            order(a)
                .cmp(&order(b))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        prefixes
    }
}

impl Keys {
    /// The `top` rows by weight `w` (0 writes, 1 bytes), ties by database and key.
    fn heavy_rows(&self, w: usize, top: usize) -> Vec<HeavyRow> {
        let order = |a: &Named, b: &Named| a.db.cmp(&b.db).then(a.key.bytes().cmp(b.key.bytes()));
        self.sketch
            .top(w, top, order)
            .into_iter()
            .map(|h: Heavy<Named>| HeavyRow {
                db: h.item.db,
                key: escape(h.item.key.bytes()),
                count: h.count,
                over_by_at_most: h.over,
            })
            .collect()
    }
}
