//! The inode table: the merged objects the kernel holds references to, their lookup counts,
//! and the layer objects each stands for.
//!
//! A node's FUSE node id *is* its `st_ino` (fuser sends `FileAttr::ino` as both), and it is
//! derived from the topmost layer object (see [`st_ino`]): it stays the same for the life of
//! the mount however often the kernel forgets and looks up again, and hard links of one file
//! resolve to one node, so `find`, `du` and `tar` see them as links.

use std::ffi::OsStr;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hashbrown::HashTable;
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

/// A merged object. Kept small: a walk of a large tree leaves one per entry alive for as long
/// as the kernel caches the entry (88 bytes with its `Arc` header, from 160 when each part
/// had a lock of its own and `st_ino` was stored).
pub struct Node {
    pub ino: Ino,
    lookups: AtomicU64,
    /// Bumped by every invalidation, so a listing merged concurrently is not kept.
    version: AtomicU32,
    pub kind: Kind,
    state: RwLock<State>,
}

/// What may change in a node, under its one lock.
struct State {
    /// Topmost first. Changes only when a writable upper copies the object up (the upper
    /// object goes on top) or moves it.
    layers: LayerList,
    /// Where the kernel first found it: the parent's node id (the root's own for the root),
    /// for `..` in listings and for copy-up.
    parent: Ino,
    /// What most nodes do not have: boxed, so that a file of a read-only union pays 8 bytes.
    more: Option<Box<More>>,
}

#[derive(Default)]
struct More {
    /// With a writable upper, its name in `parent` (a read-only union never needs it).
    name: Option<Arc<OsStr>>,
    /// A hard-linked file: the other places the kernel looked it up by, so that when the name
    /// goes, the node can move to one that still holds the file.
    links: Vec<Place>,
    /// A directory's merged listing, made on first open and dropped when a write changes the
    /// directory (merging on every opendir made warm `find` 3x slower than fuse-overlayfs),
    /// or when the union's budget of cached listings pushes it out.
    listing: Option<Arc<Listing>>,
}

impl State {
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Frees the box once it holds nothing.
    fn tidy(&mut self) {
        if let Some(m) = &self.more
            && m.name.is_none()
            && m.links.is_empty()
            && m.listing.is_none()
        {
            self.more = None;
        }
    }
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
        self.state.read().layers[0]
    }

    pub fn layers(&self) -> LayerList {
        self.state.read().layers.clone()
    }

    pub fn set_layers(&self, layers: Vec<LayerRef>) {
        self.state.write().layers = layers.into();
    }

    pub fn place(&self) -> Place {
        let state = self.state.read();
        Place {
            parent: state.parent,
            name: state.more.as_ref().and_then(|m| m.name.clone()),
        }
    }

    pub fn set_place(&self, parent: Ino, name: &OsStr) {
        let mut state = self.state.write();
        state.parent = parent;
        state.more().name = Some(Arc::from(name));
    }

    /// The object's name `from` in `from_parent` is now `to` in `to_parent`. True if that was
    /// the node's place, which moves; a hard link's other name moved instead is renamed in
    /// the node's links, and the place stays (else the node would lose the name it is
    /// reached by while the kernel still shows it there).
    pub fn moved(&self, from_parent: Ino, from: &OsStr, to_parent: Ino, to: &OsStr) -> bool {
        let mut state = self.state.write();
        let is = |parent: Ino, name: Option<&OsStr>| parent == from_parent && name == Some(from);
        let name = state.more.as_ref().and_then(|m| m.name.as_deref());
        let link = state
            .more
            .as_ref()
            .and_then(|m| m.links.iter().position(|p| is(p.parent, p.name.as_deref())));
        match link {
            Some(i) if !is(state.parent, name) => {
                state.more().links[i] = Place {
                    parent: to_parent,
                    name: Some(Arc::from(to)),
                };
                false
            }
            _ => {
                state.parent = to_parent;
                state.more().name = Some(Arc::from(to));
                true
            }
        }
    }

    pub fn parent(&self) -> Ino {
        self.state.read().parent
    }

    /// The cached listing and the version it must still have to be stored.
    pub fn cached_listing(&self) -> Result<Arc<Listing>, u32> {
        let version = self.version.load(Ordering::Acquire);
        match self
            .state
            .read()
            .more
            .as_ref()
            .and_then(|m| m.listing.as_ref())
        {
            Some(l) => Ok(l.clone()),
            None => Err(version),
        }
    }

    /// Keeps `made` unless the directory changed since `version` was read. The flag says
    /// whether `made` is the one kept now.
    pub fn store_listing(&self, made: Arc<Listing>, version: u32) -> (Arc<Listing>, bool) {
        let mut state = self.state.write();
        if let Some(l) = state.more.as_ref().and_then(|m| m.listing.as_ref()) {
            return (l.clone(), false);
        }
        if self.version.load(Ordering::Acquire) != version {
            return (made, false);
        }
        state.more().listing = Some(made.clone());
        (made, true)
    }

    /// The directory changed: the next listing is merged afresh.
    pub fn invalidate_listing(&self) {
        let mut state = self.state.write();
        self.version.fetch_add(1, Ordering::AcqRel);
        if let Some(m) = &mut state.more {
            m.listing = None;
        }
        state.tidy();
    }

    /// Drops the cached listing if it is still `old` (the budget of cached listings is
    /// full); a later one is left alone.
    pub fn evict_listing(&self, old: &Arc<Listing>) {
        let mut state = self.state.write();
        if let Some(m) = &mut state.more
            && m.listing.as_ref().is_some_and(|l| Arc::ptr_eq(l, old))
        {
            m.listing = None;
        }
        state.tidy();
    }

    /// The kernel found this (non-directory) object under `at` too: a hard link.
    fn note_link(&self, at: &Place) {
        let Some(at_name) = &at.name else { return };
        let same = |parent: Ino, name: Option<&Arc<OsStr>>| {
            parent == at.parent && name.is_some_and(|n| n == at_name)
        };
        let place = self.place();
        if same(place.parent, place.name.as_ref()) {
            return;
        }
        let mut state = self.state.write();
        let more = state.more();
        if !more.links.iter().any(|p| same(p.parent, p.name.as_ref())) {
            more.links.push(at.clone());
            more.links.shrink_to_fit();
        }
    }

    /// The other places of a hard-linked object, forgetting `name` in `parent` (which goes).
    pub fn links_but(&self, parent: Ino, name: &OsStr) -> Vec<Place> {
        let mut state = self.state.write();
        let Some(more) = &mut state.more else {
            return Vec::new();
        };
        more.links
            .retain(|p| p.parent != parent || p.name.as_deref() != Some(name));
        more.links.shrink_to_fit();
        let list = more.links.clone();
        state.tidy();
        list
    }

    fn new(ino: Ino, kind: Kind, layers: Vec<LayerRef>, place: Place) -> Node {
        Node {
            ino,
            lookups: AtomicU64::new(0),
            version: AtomicU32::new(0),
            kind,
            state: RwLock::new(State {
                layers: layers.into(),
                parent: place.parent,
                more: place.name.map(|name| {
                    Box::new(More {
                        name: Some(name),
                        ..More::default()
                    })
                }),
            }),
        }
    }
}

const SHARDS: usize = 64;

/// All live nodes, sharded by node id so that concurrent requests rarely share a lock. The
/// tables hold only the nodes (a node carries its id): 8 bytes a node, not 16.
pub struct NodeTable {
    shards: Vec<RwLock<HashTable<Arc<Node>>>>,
    hasher: RandomState,
    /// The root's `st_ino`: every other node's is its node id.
    root_st_ino: u64,
}

impl NodeTable {
    /// A table holding just the root.
    pub fn new(st_ino: u64, layers: Vec<LayerRef>) -> NodeTable {
        let table = NodeTable {
            shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
            hasher: RandomState::new(),
            root_st_ino: st_ino,
        };
        let root = Node::new(
            ROOT_INO,
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
        let hash = table.hash(ROOT_INO);
        table
            .shard(ROOT_INO)
            .write()
            .insert_unique(hash, root, |n| table.hash(n.ino));
        table
    }

    /// The `st_ino` shown for a node (equal to its node id except for the root).
    pub fn st_ino(&self, node: &Node) -> u64 {
        if node.ino == ROOT_INO {
            self.root_st_ino
        } else {
            node.ino
        }
    }

    fn shard(&self, ino: Ino) -> &RwLock<HashTable<Arc<Node>>> {
        &self.shards[(ino as usize) % SHARDS]
    }

    fn hash(&self, ino: Ino) -> u64 {
        self.hasher.hash_one(ino)
    }

    pub fn get(&self, ino: Ino) -> Option<Arc<Node>> {
        self.shard(ino)
            .read()
            .find(self.hash(ino), |n| n.ino == ino)
            .cloned()
    }

    /// Takes one lookup reference on the node for `r`, creating it if it is not live. An
    /// existing node keeps the layer objects it was created with (a hard link reached by
    /// another name is the same file; that name is noted as one of its links).
    pub fn acquire(&self, r: Resolved, place: Place) -> Arc<Node> {
        let hash = self.hash(r.ino);
        if let Some(node) = self.shard(r.ino).read().find(hash, |n| n.ino == r.ino) {
            node.lookups.fetch_add(1, Ordering::AcqRel);
            if node.kind != Kind::Dir {
                node.note_link(&place);
            }
            return node.clone();
        }
        let mut shard = self.shard(r.ino).write();
        let node = shard
            .entry(hash, |n| n.ino == r.ino, |n| self.hash(n.ino))
            .or_insert_with(|| Arc::new(Node::new(r.ino, r.kind, r.layers, place)))
            .into_mut();
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
        if let Ok(current) = shard.find_entry(self.hash(ino), |n| n.ino == ino)
            && Arc::ptr_eq(current.get(), &node)
            && node.lookups.load(Ordering::Acquire) == 0
        {
            current.remove();
        }
    }

    /// Every live node (to find those below a directory whose tree was replaced).
    pub fn all(&self) -> Vec<Arc<Node>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.read().iter().cloned());
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
    fn a_node_stays_small() {
        // With the Arc's two counts, 88 bytes: glibc's 96-byte size class. Every entry a
        // walk has seen costs this, so growing it should be a decision.
        assert!(
            std::mem::size_of::<Node>() <= 72,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn st_ino_separates_layers_and_avoids_reserved_ids() {
        assert_ne!(st_ino(0, 5), st_ino(1, 5));
        assert_eq!(st_ino(2, 5), st_ino(2, 5));
        assert!(st_ino(0, 0) > ROOT_INO);
    }
}
