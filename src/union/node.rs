//! The inode table: the merged objects the kernel holds references to, their lookup counts,
//! and the layer objects each stands for.
//!
//! A node's FUSE node id *is* its `st_ino` (fuser sends `FileAttr::ino` as both), and it is
//! derived from the topmost layer object (see [`st_ino`]): it stays the same for the life of
//! the mount however often the kernel forgets and looks up again, and hard links of one file
//! resolve to one node, so `find`, `du` and `tar` see them as links.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The `n`-th number given to an upper object whose raw inode number was retired (see
/// `Upper::retire`): from the top of the id space, which no layer position reaches.
pub fn retired_st_ino(n: u64) -> u64 {
    (0xffff << LAYER_SHIFT) | (n & ((1 << LAYER_SHIFT) - 1))
}

/// One layer's object behind a merged node: the layer's position (0 = top) and its node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerRef {
    pub layer: usize,
    pub node: NodeId,
}

/// A node's layer objects, topmost first: a non-directory (most nodes) has exactly one, kept
/// inline; a merged directory shares a list. Saves a heap allocation per file node.
#[derive(Clone, Debug)]
pub enum LayerList {
    One(LayerRef),
    Many(Arc<[LayerRef]>),
}

impl From<Vec<LayerRef>> for LayerList {
    fn from(layers: Vec<LayerRef>) -> LayerList {
        match layers.as_slice() {
            [one] => LayerList::One(*one),
            _ => LayerList::Many(layers.into()),
        }
    }
}

impl std::ops::Deref for LayerList {
    type Target = [LayerRef];

    fn deref(&self) -> &[LayerRef] {
        match self {
            LayerList::One(r) => std::slice::from_ref(r),
            LayerList::Many(list) => list,
        }
    }
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
    /// Topmost first. Changes only when a writable upper copies the object up (the upper
    /// object goes on top) or moves it.
    layers: RwLock<LayerList>,
    /// Where the kernel first found it: the parent's node id (the root's own for the root),
    /// for `..` in listings and for copy-up; and, with a writable upper, its name there.
    place: RwLock<Place>,
    /// A directory's merged listing, made on first open and dropped when a write changes the
    /// directory: merging on every opendir made warm `find` 3x slower than fuse-overlayfs.
    listing: RwLock<Option<Arc<Listing>>>,
    /// Bumped by every invalidation, so a listing merged concurrently is not kept.
    version: AtomicU64,
    lookups: AtomicU64,
    /// A hard-linked file: the other places the kernel looked it up by, so that when the name
    /// in `place` goes, the node can move to one that still holds the file.
    /// Boxed: only hard-linked files with a writable upper have any, and an empty `Vec` in
    /// every node cost 16 bytes more than a `None`.
    links: RwLock<Option<Box<[Place]>>>,
}

/// A node's parent and name.
#[derive(Clone, Debug)]
pub struct Place {
    pub parent: Ino,
    /// Only kept with a writable upper (a read-only union never needs it).
    pub name: Option<Arc<OsStr>>,
}

impl Node {
    pub fn top(&self) -> LayerRef {
        self.layers.read()[0]
    }

    pub fn layers(&self) -> LayerList {
        self.layers.read().clone()
    }

    pub fn set_layers(&self, layers: Vec<LayerRef>) {
        *self.layers.write() = layers.into();
    }

    pub fn place(&self) -> Place {
        self.place.read().clone()
    }

    pub fn set_place(&self, parent: Ino, name: &OsStr) {
        *self.place.write() = Place {
            parent,
            name: Some(Arc::from(name)),
        };
    }

    pub fn parent(&self) -> Ino {
        self.place.read().parent
    }

    /// The cached listing and the version it must still have to be stored.
    pub fn cached_listing(&self) -> Result<Arc<Listing>, u64> {
        let version = self.version.load(Ordering::Acquire);
        match &*self.listing.read() {
            Some(l) => Ok(l.clone()),
            None => Err(version),
        }
    }

    /// Keeps `made` unless the directory changed since `version` was read.
    pub fn store_listing(&self, made: Arc<Listing>, version: u64) -> Arc<Listing> {
        let mut slot = self.listing.write();
        if let Some(l) = &*slot {
            return l.clone();
        }
        if self.version.load(Ordering::Acquire) == version {
            *slot = Some(made.clone());
        }
        made
    }

    /// The directory changed: the next listing is merged afresh.
    pub fn invalidate_listing(&self) {
        let mut slot = self.listing.write();
        self.version.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }

    /// The kernel found this (non-directory) object under `at` too: a hard link.
    fn note_link(&self, at: &Place) {
        let same = |p: &Place| p.parent == at.parent && p.name == at.name;
        if at.name.is_none() || same(&self.place()) {
            return;
        }
        let mut links = self.links.write();
        if !links.iter().flat_map(|l| l.iter()).any(same) {
            let mut list = links.take().map(Vec::from).unwrap_or_default();
            list.push(at.clone());
            *links = Some(list.into_boxed_slice());
        }
    }

    /// The other places of a hard-linked object, forgetting `name` in `parent` (which goes).
    pub fn links_but(&self, parent: Ino, name: &OsStr) -> Vec<Place> {
        let mut links = self.links.write();
        let mut list = links.take().map(Vec::from).unwrap_or_default();
        list.retain(|p| p.parent != parent || p.name.as_deref() != Some(name));
        if !list.is_empty() {
            *links = Some(list.clone().into_boxed_slice());
        }
        list
    }

    fn new(ino: Ino, st_ino: u64, kind: Kind, layers: Vec<LayerRef>, place: Place) -> Node {
        Node {
            ino,
            st_ino,
            kind,
            layers: RwLock::new(layers.into()),
            place: RwLock::new(place),
            listing: RwLock::new(None),
            version: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            links: RwLock::new(None),
        }
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
        let root = Node::new(
            ROOT_INO,
            st_ino,
            Kind::Dir,
            layers,
            Place {
                parent: ROOT_INO,
                name: None,
            },
        );
        // The kernel never forgets the root.
        root.lookups.store(1, Ordering::Release);
        let root = Arc::new(root);
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
    /// another name is the same file; that name is noted as one of its links).
    pub fn acquire(&self, r: Resolved, place: Place) -> Arc<Node> {
        if let Some(node) = self.shard(r.ino).read().get(&r.ino) {
            node.lookups.fetch_add(1, Ordering::AcqRel);
            if node.kind != Kind::Dir {
                node.note_link(&place);
            }
            return node.clone();
        }
        let mut shard = self.shard(r.ino).write();
        let node = shard
            .entry(r.ino)
            .or_insert_with(|| Arc::new(Node::new(r.ino, r.ino, r.kind, r.layers, place)));
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

    /// Every live node (to find those below a directory whose tree was replaced).
    pub fn all(&self) -> Vec<Arc<Node>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.read().values().cloned());
        }
        out
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

    fn top() -> Place {
        Place {
            parent: ROOT_INO,
            name: None,
        }
    }

    #[test]
    fn lookups_share_a_node_until_forgotten() {
        let t = NodeTable::new(st_ino(0, 2), vec![LayerRef { layer: 0, node: 0 }]);
        let a = t.acquire(file(st_ino(0, 7)), top());
        let b = t.acquire(file(st_ino(0, 7)), top());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(t.len(), 2);
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_some());
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_none());
        let c = t.acquire(file(st_ino(0, 7)), top());
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
