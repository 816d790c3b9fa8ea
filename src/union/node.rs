//! The inode table: the merged objects the kernel holds references to, their lookup counts,
//! and the layer objects each stands for.
//!
//! A node's FUSE node id *is* its `st_ino` (fuser sends `FileAttr::ino` as both), and it is
//! derived from the topmost layer object (see [`st_ino`]): it stays the same for the life of
//! the mount however often the kernel forgets and looks up again, and hard links of one file
//! resolve to one node, so `find`, `du` and `tar` see them as links.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use super::Listing;
use crate::layer::{Kind, NodeId};

/// A FUSE node id, equal to the `st_ino` shown to users (but for the root, which FUSE
/// always calls 1).
pub type Ino = u64;
/// The node id FUSE reserves for the root directory.
pub const ROOT_INO: Ino = 1;

/// Bits of a layer object's own inode number kept in `st_ino`; the layer's position takes
/// the bits above. 2^48 is far above what ext4, xfs or a tar index hand out.
const LAYER_SHIFT: u32 = 48;

/// The `st_ino` of an object found in layer `layer` (0 = top) with layer-local identity `ino`.
/// Never 0 or 1, so it cannot be confused with "no node" or the root's node id.
pub fn st_ino(layer: usize, ino: u64) -> u64 {
    ((layer as u64 + 1) << LAYER_SHIFT) | (ino & ((1 << LAYER_SHIFT) - 1))
}

/// One layer's object behind a merged node: the layer's position (0 = top) and its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRef {
    pub layer: usize,
    pub node: NodeId,
}

/// What a lookup resolved a name to, before it becomes a node.
pub struct Resolved {
    pub ino: Ino,
    pub kind: Kind,
    /// Topmost first. A directory lists every layer directory it merges (down to and
    /// including the first opaque one); any other object has exactly one entry.
    pub layers: Vec<LayerRef>,
}

/// A merged object.
pub struct Node {
    pub ino: Ino,
    /// The `st_ino` shown for it (equal to `ino` except for the root).
    pub st_ino: u64,
    pub kind: Kind,
    pub layers: Vec<LayerRef>,
    /// For directories, which have one parent: the parent's node id (the root's own for the
    /// root), for `..` in listings.
    pub parent: Ino,
    /// A directory's merged listing, made on first open: layers do not change while
    /// mounted, and merging on every opendir made warm `find` 3x slower than fuse-overlayfs.
    pub listing: OnceLock<Arc<Listing>>,
    lookups: AtomicU64,
}

impl Node {
    pub fn top(&self) -> LayerRef {
        self.layers[0]
    }
}

const SHARDS: usize = 64;

/// All live nodes, sharded by node id so that concurrent requests rarely share a lock.
pub struct NodeTable {
    shards: Vec<RwLock<HashMap<Ino, Arc<Node>>>>,
}

impl NodeTable {
    /// A table holding just the root.
    pub fn new(st_ino: u64, layers: Vec<LayerRef>) -> NodeTable {
        let table = NodeTable {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        };
        let root = Arc::new(Node {
            ino: ROOT_INO,
            st_ino,
            kind: Kind::Dir,
            layers,
            parent: ROOT_INO,
            listing: OnceLock::new(),
            // The kernel never forgets the root.
            lookups: AtomicU64::new(1),
        });
        table.shard(ROOT_INO).write().insert(ROOT_INO, root);
        table
    }

    fn shard(&self, ino: Ino) -> &RwLock<HashMap<Ino, Arc<Node>>> {
        &self.shards[(ino as usize) % SHARDS]
    }

    pub fn get(&self, ino: Ino) -> Option<Arc<Node>> {
        self.shard(ino).read().get(&ino).cloned()
    }

    /// Takes one lookup reference on the node for `r`, creating it if it is not live. An
    /// existing node keeps the layer objects it was created with (a hard link reached by
    /// another name is the same file).
    pub fn acquire(&self, r: Resolved, parent: Ino) -> Arc<Node> {
        if let Some(node) = self.shard(r.ino).read().get(&r.ino) {
            node.lookups.fetch_add(1, Ordering::AcqRel);
            return node.clone();
        }
        let mut shard = self.shard(r.ino).write();
        let node = shard.entry(r.ino).or_insert_with(|| {
            Arc::new(Node {
                ino: r.ino,
                st_ino: r.ino,
                kind: r.kind,
                layers: r.layers,
                parent,
                listing: OnceLock::new(),
                lookups: AtomicU64::new(0),
            })
        });
        node.lookups.fetch_add(1, Ordering::AcqRel);
        node.clone()
    }

    /// Drops `n` lookup references; the node goes away when none is left.
    pub fn forget(&self, ino: Ino, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.get(ino) else { return };
        if node.lookups.fetch_sub(n, Ordering::AcqRel) > n {
            return;
        }
        let mut shard = self.shard(ino).write();
        // An `acquire` may have taken a new reference since the count hit zero; it does so
        // holding this shard's lock, so the count read here is final.
        if let Some(current) = shard.get(&ino)
            && Arc::ptr_eq(current, &node)
            && node.lookups.load(Ordering::Acquire) == 0
        {
            shard.remove(&ino);
        }
    }

    /// Number of live nodes (for tests and statistics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ino: Ino) -> Resolved {
        Resolved {
            ino,
            kind: Kind::File,
            layers: vec![LayerRef { layer: 0, node: 3 }],
        }
    }

    #[test]
    fn lookups_share_a_node_until_forgotten() {
        let t = NodeTable::new(st_ino(0, 2), vec![LayerRef { layer: 0, node: 0 }]);
        let a = t.acquire(file(st_ino(0, 7)), ROOT_INO);
        let b = t.acquire(file(st_ino(0, 7)), ROOT_INO);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(t.len(), 2);
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_some());
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_none());
        let c = t.acquire(file(st_ino(0, 7)), ROOT_INO);
        assert_eq!(c.ino, a.ino, "the node id is stable across forget");
        t.forget(ROOT_INO, 10);
        assert!(t.get(ROOT_INO).is_some());
    }

    #[test]
    fn st_ino_separates_layers_and_avoids_reserved_ids() {
        assert_ne!(st_ino(0, 5), st_ino(1, 5));
        assert_eq!(st_ino(2, 5), st_ino(2, 5));
        assert!(st_ino(0, 0) > ROOT_INO);
    }
}
