//! The two kinds of side behind one interface, and the comparison from first pass to the list
//! of differing keys, named and sorted.

use std::collections::HashMap;

use super::compare::{Change, Comparison, Diff, Joined, KeySide, Tally};
use super::file::FileSide;
use super::index::{Entry, Index};
use super::live::LiveSide;
use super::{Each, Error, Options, Prints, Value};

pub enum Side<'m> {
    File(FileSide<'m>),
    Live(LiveSide),
}

/// What the first pass found.
pub struct Outcome {
    /// Differing keys, sorted by database and name.
    pub diffs: Vec<Diff>,
    pub tally: Tally,
    /// Keys only A has that a server no longer showed when asked their names.
    pub vanished: u64,
}

impl<'m> Side<'m> {
    pub fn label(&self) -> &str {
        match self {
            Side::File(f) => f.label(),
            Side::Live(l) => l.label(),
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Side::Live(_))
    }

    pub fn scan(
        &mut self,
        opts: &Options,
        prints: Prints,
        each: &mut Each<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        match self {
            Side::File(f) => f.scan(opts, prints, each, progress),
            Side::Live(l) => l.scan(opts, each, progress),
        }
    }

    /// The value of a differing key on this side (`facts` from the first pass); None if a
    /// server no longer has it.
    pub fn value(&mut self, d: &Diff, facts: &KeySide) -> Result<Option<Value<'m>>, Error> {
        match self {
            Side::File(f) => f.locate(facts.loc).map(|(_, v)| Some(v)),
            Side::Live(l) => Ok(l.value(d.db, &d.key)?.map(|(v, _)| v)),
        }
    }

    /// Names, databases and sizes of A's differing keys. Returns how many keys only A had
    /// could not be named (a server that dropped them meanwhile); they are left out.
    fn resolve_a(&mut self, opts: &Options, diffs: &mut Vec<Diff>) -> Result<u64, Error> {
        match self {
            Side::File(f) => {
                for d in diffs.iter_mut() {
                    let Some(a) = &mut d.a else { continue };
                    let (key, value) = f.locate(a.loc)?;
                    a.bytes = value.bytes();
                    if d.change == Change::Removed {
                        d.db = f.db_at(a.loc);
                        d.key = key;
                    }
                }
                Ok(0)
            }
            Side::Live(l) => {
                let mut wanted = HashMap::new();
                for (i, d) in diffs.iter_mut().enumerate() {
                    if let Some(a) = &mut d.a {
                        a.bytes = a.loc;
                        if d.change == Change::Removed {
                            wanted.insert(d.id, i);
                        }
                    }
                }
                let mut named = vec![false; diffs.len()];
                l.names(opts, &wanted, &mut |i, db, key| {
                    if let Some(d) = diffs.get_mut(i) {
                        d.db = db;
                        d.key = key.to_vec();
                        named[i] = true;
                    }
                })?;
                let before = diffs.len();
                let mut i = 0;
                diffs.retain(|d| {
                    let keep = d.change != Change::Removed || named[i];
                    i += 1;
                    keep
                });
                Ok((before - diffs.len()) as u64)
            }
        }
    }
}

/// Both passes of the comparison up to the list of differing keys: A into an index, B
/// against it, A's unmatched keys named. `progress(side, position)` for progress bars.
pub fn compare(
    a: &mut Side<'_>,
    b: &mut Side<'_>,
    opts: &Options,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Outcome, Error> {
    let prints = match (&*a, &*b) {
        (Side::File(fa), Side::File(fb))
            if !opts.by_meaning
                && fa.peek_format().is_some()
                && fa.peek_format() == fb.peek_format() =>
        {
            Prints::Raw
        }
        _ => Prints::Canonical,
    };
    let mut entries = Vec::new();
    a.scan(
        opts,
        prints,
        &mut |p| entries.push(Entry::new(p.id, p.value, p.expire, p.kind, p.loc)),
        &mut |pos| progress(0, pos),
    )?;
    let (index, repeats) = Index::build(entries);
    duplicates(a, repeats)?;
    let mut cmp = Comparison::new(&index, opts.ttl, prints == Prints::Raw);
    b.scan(opts, prints, &mut |p| cmp.b_key(&index, p), &mut |pos| {
        progress(1, pos)
    })?;
    let mut joined = cmp.finish(&index);
    drop(index);
    duplicates(b, joined.repeats)?;
    if let (Side::File(fa), Side::File(fb)) = (&*a, &*b) {
        let canonical = settle_by_meaning(fa, fb, opts, &joined.undecided)?;
        joined.settle(&canonical);
    }
    let Joined {
        mut diffs,
        mut tally,
        ..
    } = joined;
    let vanished = a.resolve_a(opts, &mut diffs)?;
    for d in &diffs {
        tally.add(d);
    }
    tally.keys_a -= vanished;
    diffs.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
    Ok(Outcome {
        diffs,
        tally,
        vanished,
    })
}

/// A file may not hold a key twice (a server's SCAN may return one twice).
fn duplicates(side: &Side<'_>, repeats: u64) -> Result<(), Error> {
    if repeats > 0 && !side.is_live() {
        return Err(Error::Duplicates {
            side: side.label().to_string(),
            count: repeats,
        });
    }
    Ok(())
}

/// Canonical fingerprints of both sides of keys whose stored bytes differ, each file read in
/// its own order.
fn settle_by_meaning(
    a: &FileSide<'_>,
    b: &FileSide<'_>,
    opts: &Options,
    undecided: &[Diff],
) -> Result<Vec<(u128, u128)>, Error> {
    let mut prints = vec![(0u128, 0u128); undecided.len()];
    for (side, file) in [(0, a), (1, b)] {
        let loc = |d: &Diff| if side == 0 { d.a } else { d.b }.map_or(0, |s| s.loc);
        let mut order: Vec<usize> = (0..undecided.len()).collect();
        order.sort_by_key(|&i| loc(&undecided[i]));
        let offsets: Vec<u64> = order.iter().map(|&i| loc(&undecided[i])).collect();
        for (i, fp) in order
            .into_iter()
            .zip(file.fingerprints(opts.seed, &offsets)?)
        {
            if side == 0 {
                prints[i].0 = fp;
            } else {
                prints[i].1 = fp;
            }
        }
    }
    Ok(prints)
}
