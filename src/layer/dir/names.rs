//! The names of a directory layer's objects: node ids handed out per `(parent, name)`, each
//! name stored once, slots of forgotten names reused under a new generation.

use std::ffi::CStr;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::layer::NodeId;

/// One interned object of the layer: its parent and its own name (the root has neither).
/// Cloned out of the interner for each request.
#[derive(Clone)]
pub(super) struct NodePath {
    pub(super) parent: NodeId,
    pub(super) name: Name,
    /// Bumped each time the slot is given to a new name: part of the node id, so an id of a
    /// forgotten name never reaches the name that reuses its slot.
    pub(super) generation: u32,
}

/// A name as the interner keeps it: most names of a tree fit in the 24 bytes a shared one
/// would take as a pointer, so they are stored there rather than in an allocation of their
/// own (the allocations were a tenth of the daemon's memory after a walk of 90k entries).
#[derive(Clone)]
pub(super) enum Name {
    /// The name and its NUL, NUL-padded.
    Inline([u8; INLINE]),
    /// Longer names, shared by the copies handed out per request.
    Shared(Arc<CStr>),
}

const INLINE: usize = 23;

impl Name {
    pub(super) fn new(name: &CStr) -> Name {
        let bytes = name.to_bytes_with_nul();
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Name::Inline(inline)
        } else {
            Name::Shared(Arc::from(name))
        }
    }
}

impl std::ops::Deref for Name {
    type Target = CStr;

    fn deref(&self) -> &CStr {
        match self {
            // Always holds a NUL (`new` checked the length).
            Name::Inline(bytes) => CStr::from_bytes_until_nul(bytes).unwrap_or(c""),
            Name::Shared(name) => name,
        }
    }
}

/// A node id is its slot in [`Interner::nodes`] (low 32 bits) and that slot's generation.
pub(super) fn slot_of(id: NodeId) -> usize {
    (id & 0xffff_ffff) as usize
}

pub(super) fn node_id(slot: usize, generation: u32) -> NodeId {
    (u64::from(generation) << 32) | slot as u64
}

/// Layer-local node ids handed out for paths: an id means the same path until the name is
/// forgotten (unlinked, replaced), after which it names nothing. Each name is stored once:
/// the index holds only ids and compares through `nodes` (a map keyed by `(parent, name)`
/// kept a second copy of every name, about a third of the daemon's memory after a walk of a
/// large tree). Slots of forgotten names are reused, so an upper that churns through
/// create/unlink does not grow the table.
pub(super) struct Interner {
    pub(super) nodes: Vec<NodePath>,
    pub(super) by_name: HashTable<NodeId>,
    pub(super) hasher: RandomState,
    /// Slots of forgotten names, to reuse.
    pub(super) free: Vec<usize>,
}

impl Interner {
    pub(super) fn hash(hasher: &RandomState, parent: NodeId, name: &[u8]) -> u64 {
        hasher.hash_one((parent, name))
    }

    pub(super) fn find(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let nodes = &self.nodes;
        let hash = Self::hash(&self.hasher, parent, name);
        self.by_name
            .find(hash, |&id| is_named(nodes, id, parent, name))
            .copied()
    }

    pub(super) fn insert(&mut self, parent: NodeId, name: Name) -> NodeId {
        let hash = Self::hash(&self.hasher, parent, name.to_bytes());
        let id = match self.free.pop() {
            Some(slot) => {
                let generation = self.nodes[slot].generation.wrapping_add(1);
                self.nodes[slot] = NodePath {
                    parent,
                    name,
                    generation,
                };
                node_id(slot, generation)
            }
            None => {
                self.nodes.push(NodePath {
                    parent,
                    name,
                    generation: 0,
                });
                node_id(self.nodes.len() - 1, 0)
            }
        };
        self.index(hash, id);
        id
    }

    pub(super) fn index(&mut self, hash: u64, id: NodeId) {
        let Interner {
            nodes,
            by_name,
            hasher,
            ..
        } = self;
        by_name.insert_unique(hash, id, |&i| {
            let n = &nodes[slot_of(i)];
            Self::hash(hasher, n.parent, n.name.to_bytes())
        });
    }

    /// The live entry of `id`, if its name is not forgotten.
    pub(super) fn get(&self, id: NodeId) -> Option<&NodePath> {
        self.nodes
            .get(slot_of(id))
            .filter(|n| node_id(slot_of(id), n.generation) == id && !n.name.is_empty())
    }

    /// Takes `name` in `parent` out of the index; its id stays allocated.
    pub(super) fn remove(&mut self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let nodes = &self.nodes;
        let hash = Self::hash(&self.hasher, parent, name);
        let entry = self
            .by_name
            .find_entry(hash, |&id| is_named(nodes, id, parent, name))
            .ok()?;
        Some(entry.remove().0)
    }
}

fn is_named(nodes: &[NodePath], id: NodeId, parent: NodeId, name: &[u8]) -> bool {
    nodes
        .get(slot_of(id))
        .is_some_and(|n| n.parent == parent && n.name.to_bytes() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_inline_and_long_ones_shared_read_back_the_same() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        for name in [
            c"",
            c"a",
            c"exactly-22-bytes-long!",
            c"23-bytes-is-one-too-long",
            c".",
        ] {
            let kept = Name::new(name);
            assert_eq!(&*kept, name);
            let inline = matches!(kept, Name::Inline(_));
            assert_eq!(inline, name.to_bytes().len() < INLINE, "{name:?}");
        }
    }
}
