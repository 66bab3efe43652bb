//! The N largest keys by some measure, as inspect's top lists show them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{KeyRow, TopKey};
use crate::rdb;

/// A candidate for a top list: (measure, tie-breaker favouring earlier keys, db, key, type,
/// encoding).
type Ranked = (u64, u64, u64, Vec<u8>, &'static str, &'static str);

/// The N largest keys by some measure, kept in a min-heap.
pub(super) struct Top {
    n: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
    seq: u64,
}

impl Top {
    pub(super) fn new(n: usize) -> Self {
        Top {
            n,
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    pub(super) fn offer(&mut self, value: u64, row: &KeyRow<'_>) {
        if self.n == 0 {
            return;
        }
        self.seq += 1;
        if self.heap.len() == self.n {
            match self.heap.peek() {
                Some(Reverse(min)) if min.0 >= value => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
        // Earlier keys win ties, so the order does not depend on the heap.
        self.heap.push(Reverse((
            value,
            u64::MAX - self.seq,
            row.db,
            row.key.to_vec(),
            row.r#type,
            row.encoding,
        )));
    }

    pub(super) fn into_sorted(self) -> Vec<TopKey> {
        let mut v: Vec<_> = self.heap.into_iter().map(|Reverse(e)| e).collect();
        v.sort_by_key(|e| Reverse((e.0, e.1)));
        v.into_iter()
            .map(|(value, _, db, key, t, e)| TopKey {
                db,
                key: rdb::error::escape(&key),
                r#type: t,
                encoding: e,
                value,
            })
            .collect()
    }
}
