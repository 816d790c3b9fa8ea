//! The inode table: FUSE node ids for merged objects, their lookup counts, and the layer
//! objects each merged node stands for.
//!
//! A node id lives from the first lookup until the kernel forgets it; the `st_ino` shown to
//! users is derived from the topmost layer object instead (see [`st_ino`]), so it stays the
//! same for the life of the mount however often the kernel forgets and looks up again, and
//! hard links of one file share it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::layer::{Kind, NodeId};

/// A FUSE node id.
pub type Ino = u64;
/// The node id FUSE reserves for the root directory.
pub const ROOT_INO: Ino = 1;

/// Bits of a layer object's own inode number kept in `st_ino`; the layer's position takes
/// the bits above. 2^48 is far above what ext4, xfs or a tar index hand out.
const LAYER_SHIFT: u32 = 48;

/// The `st_ino` of an object found in layer `layer` (0 = top) with layer-local identity `ino`.
pub fn st_ino(layer: usize, ino: u64) -> u64 {
    ((layer as u64 + 1) << LAYER_SHIFT) | (ino & ((1 << LAYER_SHIFT) - 1))
}

/// One layer's object behind a merged node: the layer's position (0 = top) and its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRef {
    pub layer: usize,
    pub node: NodeId,
}

/// A merged object.
pub struct Node {
    pub ino: Ino,
    /// The parent keeps living while a child does, so a child can always reach its parent's
    /// child map when it is forgotten.
    pub parent: Option<Arc<Node>>,
    pub name: OsString,
    pub kind: Kind,
    pub st_ino: u64,
    /// Topmost first. A directory lists every layer directory it merges (down to and
    /// including the first opaque one); any other object has exactly one entry.
    pub layers: Vec<LayerRef>,
    lookups: AtomicU64,
    /// Names of this directory that currently have a node.
    children: Mutex<HashMap<OsString, Ino>>,
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
    next: AtomicU64,
}

impl NodeTable {
    /// A table holding just the root.
    pub fn new(kind: Kind, st_ino: u64, layers: Vec<LayerRef>) -> NodeTable {
        let table = NodeTable {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next: AtomicU64::new(ROOT_INO + 1),
        };
        let root = Arc::new(Node {
            ino: ROOT_INO,
            parent: None,
            name: OsString::new(),
            kind,
            st_ino,
            layers,
            // The kernel never forgets the root.
            lookups: AtomicU64::new(1),
            children: Mutex::new(HashMap::new()),
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

    /// Returns the node for `name` in `parent`, taking one lookup reference on it. If there
    /// is none yet, `make` resolves it (outside any table lock but under the parent's child
    /// map lock, so two threads never create two nodes for one name).
    pub fn child<E>(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        make: impl FnOnce() -> Result<(Kind, u64, Vec<LayerRef>), E>,
    ) -> Result<Arc<Node>, E> {
        let mut children = parent.children.lock();
        if let Some(node) = children.get(name).and_then(|&ino| self.get(ino)) {
            node.lookups.fetch_add(1, Ordering::Relaxed);
            return Ok(node);
        }
        let (kind, st_ino, layers) = make()?;
        let ino = self.next.fetch_add(1, Ordering::Relaxed);
        let node = Arc::new(Node {
            ino,
            parent: Some(parent.clone()),
            name: name.to_owned(),
            kind,
            st_ino,
            layers,
            lookups: AtomicU64::new(1),
            children: Mutex::new(HashMap::new()),
        });
        self.shard(ino).write().insert(ino, node.clone());
        children.insert(name.to_owned(), ino);
        Ok(node)
    }

    /// Drops `n` lookup references; the node goes away when none is left.
    pub fn forget(&self, ino: Ino, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.get(ino) else { return };
        let prev = node.lookups.fetch_sub(n, Ordering::AcqRel);
        if prev > n {
            return;
        }
        let Some(parent) = &node.parent else { return };
        let mut children = parent.children.lock();
        // A lookup may have taken a new reference (under this same lock) since the count hit
        // zero; only a node still at zero and still named here is removed.
        if node.lookups.load(Ordering::Acquire) == 0 && children.get(&node.name) == Some(&ino) {
            children.remove(&node.name);
            self.shard(ino).write().remove(&ino);
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

    fn make() -> Result<(Kind, u64, Vec<LayerRef>), ()> {
        Ok((Kind::File, 7, vec![LayerRef { layer: 0, node: 3 }]))
    }

    #[test]
    fn lookups_share_a_node_until_forgotten() {
        let t = NodeTable::new(Kind::Dir, 1, vec![LayerRef { layer: 0, node: 0 }]);
        let root = t.get(ROOT_INO).unwrap();
        let a = t.child(&root, OsStr::new("a"), make).unwrap();
        let b = t.child(&root, OsStr::new("a"), make).unwrap();
        assert_eq!(a.ino, b.ino);
        assert_eq!(t.len(), 2);
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_some());
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_none());
        let c = t.child(&root, OsStr::new("a"), make).unwrap();
        assert_ne!(c.ino, a.ino, "a forgotten node id is not reused");
        assert_eq!(c.st_ino, a.st_ino, "st_ino is stable across forget");
        t.forget(ROOT_INO, 10);
        assert!(t.get(ROOT_INO).is_some());
    }

    #[test]
    fn st_ino_separates_layers() {
        assert_ne!(st_ino(0, 5), st_ino(1, 5));
        assert_eq!(st_ino(2, 5), st_ino(2, 5));
    }
}
