//! Quicklist: how lists are stored since 3.2 — a sequence of ziplist nodes (v1, type 14) or of
//! listpack and plain nodes (v2, type 18, 7.0+; a plain node is one large element).

use super::decoder::ValueReader;
use super::error::{Error, ErrorKind, Result, corrupt};
use super::input::Input;
use super::listpack::Listpack;
use super::primitive::{Blob, Elem, read_len};
use super::visit::{Container, Item, Visitor};

const PLAIN: u64 = 1;
const PACKED: u64 = 2;

pub fn read_v1<'a, I: Input<'a>>(
    r: &mut ValueReader,
    inp: &mut I,
    v: &mut dyn Visitor,
) -> Result<u64> {
    let nodes = read_len(inp)?;
    let mut n = 0;
    for _ in 0..nodes {
        // The server drops empty nodes silently.
        n += r.with_blob(inp, |r, blob| r.ziplist_elems(blob, false, v))?;
    }
    Ok(n)
}

pub fn read_v2<'a, I: Input<'a>>(
    r: &mut ValueReader,
    inp: &mut I,
    v: &mut dyn Visitor,
) -> Result<u64> {
    let nodes = read_len(inp)?;
    let mut n = 0;
    for _ in 0..nodes {
        let at = inp.pos();
        let container = read_len(inp)?;
        n += r.with_blob(inp, |_, blob| node(container, at, blob, v))?;
    }
    Ok(n)
}

/// The elements of one v2 node, `container` read at `at`.
fn node(container: u64, at: u64, blob: &Blob<'_>, v: &mut dyn Visitor) -> Result<u64> {
    if blob.data.is_empty() {
        return Err(Error::new(
            blob.at,
            corrupt("quicklist", "zero-length node"),
        ));
    }
    match container {
        PLAIN => {
            v.container(Container::PlainNode, blob.data.len());
            v.item(Item::Elem(Elem::Bytes(&blob.data)));
            Ok(1)
        }
        PACKED => {
            let mut lp = Listpack::new(&blob.data).map_err(|e| blob.error(e.0, e.1))?;
            v.container(Container::Listpack, blob.data.len());
            let mut n = 0;
            while let Some(e) = lp.next_elem().map_err(|e| blob.error(e.0, e.1))? {
                v.item(Item::Elem(e));
                n += 1;
            }
            Ok(n)
        }
        other => Err(Error::new(
            at,
            ErrorKind::Encoding {
                encoding: "quicklist",
                detail: format!("unknown node container {other}").into(),
            },
        )),
    }
}
