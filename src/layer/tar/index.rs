//! The index of a tar layer, built in one sequential pass over the archive.
//!
//! The index is the whole layer: there is no extracted copy and no host path resolution, so
//! nothing can resolve outside it. It is laid out for size (layers may hold 200k+ entries):
//! one flat `Vec<Node>` of fixed-size records, every name and symlink target in one byte arena,
//! each directory's children as a name-sorted run in one shared `Vec<u32>` (looked up by binary
//! search), and the rare extras (xattrs, sparse maps) in a side table. The path-to-entry hash
//! map needed while building is dropped when the pass ends.
//!
//! Normalisation rules (all decided here, once): `./` prefixes, leading `/` and `.` components
//! are dropped; paths with `..` are skipped; a later entry for the same path wins, except that a
//! later directory over a directory only updates its attributes, and a whiteout never hides a
//! real name of its own layer (OCI image spec, layer.md "Whiteouts") but makes a directory of
//! that name opaque; missing parents are synthesised (0755, root, mtime 0); entries below a
//! non-directory are skipped.

use std::sync::Arc;

use super::pax::Xattrs;
use super::sparse::SparseMap;
use crate::layer::{Kind, Timespec};

/// "No index" in `u32` fields.
pub(crate) const NONE: u32 = u32::MAX;
/// The root directory's node.
pub(crate) const ROOT: u32 = 0;

const FLAG_OPAQUE_MARKER: u8 = 1;
const FLAG_OPAQUE_XATTR: u8 = 2;
const FLAG_SYNTHETIC: u8 = 4;
/// A directory whose name this layer also whites out: the whiteout removes the lower object,
/// and the directory is this layer's own, so nothing below it shows through.
const FLAG_OPAQUE_WHITEOUT: u8 = 8;

/// One name in the layer, and (unless it is a hard link) the object it names.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub parent: u32,
    pub name_off: u32,
    pub name_len: u32,
    pub kind: Kind,
    flags: u8,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// Names of the object (directories: 2 + subdirectories), counted when the pass ends.
    pub nlink: u32,
    pub mtime_nsec: u32,
    pub mtime_sec: i64,
    /// Regular files: real size. Symlinks: target length. Others: 0 (tar stores 0 for
    /// directories, and we keep that rather than invent 4096).
    pub size: u64,
    /// Regular files: stream offset of the data. Symlinks: arena offset of the target.
    /// Devices: `rdev`.
    pub data: u64,
    /// The node holding the object's attributes and data: itself, or for a hard link the
    /// target's node.
    pub obj: u32,
    /// Index into the extras table, or [`NONE`].
    pub extra: u32,
    /// Directories: start and length of the run of children in the children table.
    pub children: u32,
    pub nchildren: u32,
}

impl Node {
    pub(crate) fn opaque(&self) -> bool {
        self.flags & (FLAG_OPAQUE_MARKER | FLAG_OPAQUE_XATTR | FLAG_OPAQUE_WHITEOUT) != 0
    }

    pub(crate) fn mtime(&self) -> Timespec {
        Timespec {
            sec: self.mtime_sec,
            nsec: self.mtime_nsec,
        }
    }
}

/// Rarely present per-object data.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub xattrs: Xattrs,
    pub sparse: Option<Arc<SparseMap>>,
}

/// The finished index.
#[derive(Debug)]
pub(crate) struct TarIndex {
    nodes: Vec<Node>,
    names: Vec<u8>,
    children: Vec<u32>,
    extras: Vec<Extra>,
}

impl TarIndex {
    pub(crate) fn node(&self, idx: u32) -> Option<&Node> {
        self.nodes.get(idx as usize)
    }

    pub(crate) fn name(&self, node: &Node) -> &[u8] {
        let start = node.name_off as usize;
        &self.names[start..start + node.name_len as usize]
    }

    pub(crate) fn symlink_target(&self, node: &Node) -> &[u8] {
        let start = node.data as usize;
        &self.names[start..start + node.size as usize]
    }

    pub(crate) fn extra(&self, node: &Node) -> Option<&Extra> {
        self.extras.get(node.extra as usize)
    }

    /// The children (name nodes, sorted by name) of a directory node.
    pub(crate) fn children(&self, dir: &Node) -> &[u32] {
        let start = dir.children as usize;
        &self.children[start..start + dir.nchildren as usize]
    }

    pub(crate) fn find_child(&self, dir: &Node, name: &[u8]) -> Option<u32> {
        let run = self.children(dir);
        run.binary_search_by(|&c| self.name(&self.nodes[c as usize]).cmp(name))
            .ok()
            .map(|i| run[i])
    }

    /// Number of nodes (names and objects), for statistics.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Approximate heap bytes held by the index (sparse maps and xattr values included).
    pub(crate) fn heap_bytes(&self) -> usize {
        let extras: usize = self
            .extras
            .iter()
            .map(|e| {
                e.xattrs
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 32)
                    .sum::<usize>()
                    + e.sparse.as_ref().map_or(0, |_| 64)
            })
            .sum();
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.names.capacity()
            + self.children.capacity() * 4
            + self.extras.capacity() * std::mem::size_of::<Extra>()
            + extras
    }
}

mod build;
pub(crate) use build::build;

// The saved form (`persist`): the loader rebuilds the tables as they were and checks them
// itself, so these only hand the private parts over.

/// Every flag bit a node may carry; a saved index with any other bit set is refused.
pub(crate) const FLAGS_KNOWN: u8 =
    FLAG_OPAQUE_MARKER | FLAG_OPAQUE_XATTR | FLAG_SYNTHETIC | FLAG_OPAQUE_WHITEOUT;

impl Node {
    pub(crate) fn flag_bits(&self) -> u8 {
        self.flags
    }

    /// A node with every field zero (kind `Dir`, no extras) but its flags: the start of a
    /// node being built or loaded.
    pub(crate) fn with_flag_bits(flags: u8) -> Node {
        Node {
            parent: 0,
            name_off: 0,
            name_len: 0,
            kind: Kind::Dir,
            flags,
            perm: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            mtime_nsec: 0,
            mtime_sec: 0,
            size: 0,
            data: 0,
            obj: 0,
            extra: NONE,
            children: 0,
            nchildren: 0,
        }
    }
}

impl TarIndex {
    /// The node table, name arena, children table and extras table.
    pub(crate) fn parts(&self) -> (&[Node], &[u8], &[u32], &[Extra]) {
        (&self.nodes, &self.names, &self.children, &self.extras)
    }

    /// An index from tables the caller has checked (as `persist::decode` does).
    pub(crate) fn from_parts(
        nodes: Vec<Node>,
        names: Vec<u8>,
        children: Vec<u32>,
        extras: Vec<Extra>,
    ) -> TarIndex {
        TarIndex {
            nodes,
            names,
            children,
            extras,
        }
    }
}
