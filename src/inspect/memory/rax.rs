//! The radix trees (`rax`) a stream keeps its node listpacks and pending entries in, rebuilt
//! from their keys: 16-byte big-endian stream IDs, inserted in order as the server inserts them
//! when it loads the file. Redis estimates a tree by its node count; Valkey 8.1+ reports the
//! bytes its nodes really take, so both are tracked.
//!
//! A rax node is either compressed (a run of bytes leading to one child) or a branch (one byte
//! and one child pointer per child), with a value pointer when a key ends there. Keys of equal
//! length end at leaves. Inserting keys in order only ever changes the nodes on the path to the
//! previous key, so that path is all that is kept.

use super::sizes::Allocator;

const KEY: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Node {
    /// Bytes `depth..depth + len` of the key, then one child.
    Compressed { depth: usize, len: usize },
    /// A byte per child at `depth`.
    Branch { depth: usize, children: usize },
    /// Where a key ends (with its value pointer).
    Leaf,
}

impl Node {
    /// `raxNodeCurrentLength`: a 4-byte header, the bytes padded to 8 with it, the child
    /// pointers, and the value pointer of a key.
    fn bytes(self) -> u64 {
        let (chars, pointers) = match self {
            Node::Compressed { len, .. } => (len, 1),
            Node::Branch { children, .. } => (children, children),
            Node::Leaf => (0, 1),
        };
        ((4 + chars as u64).next_multiple_of(8)) + 8 * pointers as u64
    }
}

/// A radix tree of stream IDs, grown key by key.
#[derive(Debug, Clone)]
pub struct Rax {
    allocator: Allocator,
    prev: Option<[u8; KEY]>,
    /// The nodes from the root to the last key's leaf.
    path: Vec<Node>,
    keys: u64,
    nodes: u64,
    /// Allocated bytes of all nodes, and of the tree header.
    bytes: u64,
}

impl Rax {
    /// An empty tree whose `struct rax` takes `header` bytes.
    pub fn new(allocator: Allocator, header: u64) -> Self {
        let root = Node::Branch {
            depth: 0,
            children: 0,
        };
        Rax {
            allocator,
            prev: None,
            path: vec![root],
            keys: 0,
            nodes: 1,
            bytes: allocator.size(header) + allocator.size(root.bytes()),
        }
    }

    pub fn keys(&self) -> u64 {
        self.keys
    }

    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    /// What `raxAllocSize` reports.
    pub fn allocated(&self) -> u64 {
        self.bytes
    }

    fn add(&mut self, node: Node) {
        self.nodes += 1;
        self.bytes += self.allocator.size(node.bytes());
        self.path.push(node);
    }

    fn resize(&mut self, at: usize, node: Node) {
        let a = self.allocator;
        self.bytes = self.bytes - a.size(self.path[at].bytes()) + a.size(node.bytes());
        self.path[at] = node;
    }

    /// Inserts `key`, which must sort after every key so far (a repeated key is ignored).
    pub fn insert(&mut self, key: [u8; KEY]) {
        let d = match self.prev {
            None => {
                // The empty root becomes a compressed node of the whole key.
                self.resize(0, Node::Compressed { depth: 0, len: KEY });
                self.add(Node::Leaf);
                self.prev = Some(key);
                self.keys = 1;
                return;
            }
            Some(prev) => match prev.iter().zip(&key).position(|(a, b)| a != b) {
                Some(d) => d,
                None => return,
            },
        };
        // The node on the previous key's path that holds byte `d`.
        let at = self
            .path
            .iter()
            .position(|n| match *n {
                Node::Compressed { depth, len } => depth <= d && d < depth + len,
                Node::Branch { depth, .. } => depth == d,
                Node::Leaf => false,
            })
            .unwrap_or(0);
        match self.path[at] {
            Node::Branch { depth, children } => {
                self.path.truncate(at + 1);
                self.resize(
                    at,
                    Node::Branch {
                        depth,
                        children: children + 1,
                    },
                );
            }
            Node::Compressed { depth, len } => {
                self.path.truncate(at + 1);
                let branch = Node::Branch {
                    depth: d,
                    children: 2,
                };
                if d > depth {
                    self.resize(
                        at,
                        Node::Compressed {
                            depth,
                            len: d - depth,
                        },
                    );
                    self.add(branch);
                } else {
                    self.resize(at, branch);
                }
                // The old key's remaining run, if any, becomes a node of its own (off the
                // new path).
                if d + 1 < depth + len {
                    self.nodes += 1;
                    self.bytes += self.allocator.size(
                        Node::Compressed {
                            depth: d + 1,
                            len: depth + len - d - 1,
                        }
                        .bytes(),
                    );
                }
            }
            Node::Leaf => {}
        }
        if d + 1 < KEY {
            self.add(Node::Compressed {
                depth: d + 1,
                len: KEY - d - 1,
            });
        }
        self.add(Node::Leaf);
        self.prev = Some(key);
        self.keys += 1;
    }
}

/// A stream ID as a rax key.
pub fn stream_key(ms: u64, seq: u64) -> [u8; KEY] {
    let mut k = [0; KEY];
    k[..8].copy_from_slice(&ms.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(ids: &[(u64, u64)]) -> Rax {
        let mut r = Rax::new(Allocator::Libc, 32);
        for &(ms, seq) in ids {
            r.insert(stream_key(ms, seq));
        }
        r
    }

    #[test]
    fn node_counts() {
        assert_eq!(tree(&[]).nodes(), 1);
        assert_eq!(tree(&[(1, 1)]).nodes(), 2);
        // Differing in the last byte: a compressed run, a branch, two leaves.
        assert_eq!(tree(&[(1, 1), (1, 2)]).nodes(), 4);
        // A third sibling only widens the branch and adds its leaf.
        assert_eq!(tree(&[(1, 1), (1, 2), (1, 3)]).nodes(), 5);
        // Differing in the first byte: a branch root, two runs, two leaves.
        assert_eq!(tree(&[(1, 1), (1 << 56, 1)]).nodes(), 5);
    }

    #[test]
    fn one_key_as_valkey_allocates_it() {
        // Tree header 32 (-> 40), root with 16 bytes and a child pointer (32 -> 40), leaf 16
        // (-> 24).
        assert_eq!(tree(&[(1, 1)]).allocated(), 40 + 40 + 24);
        assert_eq!(tree(&[]).allocated(), 40 + 24);
    }
}
