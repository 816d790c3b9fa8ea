//! The merged view of a stack of layers, with no knowledge of FUSE.
//!
//! Top-most wins: a name is looked up from the top layer down; a whiteout ends the search, a
//! non-directory hides everything below it, and directories merge until an opaque one (the
//! rules of kernel overlayfs, Documentation/filesystems/overlayfs.rst). Errors are
//! `io::Error`s carrying the errno the kernel should see.

mod acl;
mod copyup;
mod dircopy;
pub mod handles;
mod listings;
pub mod node;
mod rename;
pub mod upper;
mod write;

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};

use crate::layer::whiteout::is_private_xattr;
use crate::layer::{Attr, FileData, FsStats, Kind, Layer};
use handles::{Handles, Recent};
use listings::{LISTING_BUDGET, ListingBudget};
pub use node::{Ino, ROOT_INO};
use node::{LayerRef, Node, NodeTable, Place, Resolved};
use upper::Upper;
pub use write::{Caller, RENAME_EXCHANGE, RENAME_NOREPLACE, SetAttr, TimeSet};

/// What `stat` shows for a merged object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The stable `st_ino` (not the FUSE node id).
    pub st_ino: u64,
    pub attr: Attr,
}

/// One name of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Boxed, not an `OsString`: listings of every directory walked stay cached, and the
    /// capacity word is 8 of the 32 bytes an entry takes.
    pub name: Box<OsStr>,
    pub st_ino: u64,
    /// Position in the directory's `layers` of the layer the name comes from (its topmost
    /// object): a lookup starts there, since no layer above has or hides the name.
    pub from: u32,
    pub kind: Kind,
}

/// The merged listing of a directory, made once per directory node: `.` and `..` first,
/// then the names sorted, so offsets stay stable however the listing is read, and a lookup
/// finds a name (or its absence) without asking every layer.
pub struct Listing {
    pub dir: Ino,
    pub entries: Vec<Listed>,
}

impl Listing {
    /// The entry for `name`, if the merged directory has it.
    pub fn find(&self, name: &OsStr) -> Option<&Listed> {
        let names = self.entries.get(2..)?;
        names
            .binary_search_by(|e| (*e.name).cmp(name))
            .ok()
            .map(|i| &names[i])
    }
}

/// Access modes for [`Union::access`], as in access(2).
pub const R_OK: u32 = 4;
pub const W_OK: u32 = 2;
pub const X_OK: u32 = 1;

/// Like overlayfs: counting subdirectories of every layer is not worth it, and nlink 1 tells
/// find(1) and friends not to rely on the count.
const MERGED_DIR_NLINK: u32 = 1;

pub fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// An open file: its data for reads and, when opened for writing in the upper, the file
/// written to.
#[derive(Clone)]
struct OpenFile {
    /// The node it was opened for (to answer `fstat` of a file unlinked while open).
    ino: Ino,
    data: Arc<dyn FileData>,
    /// Set when opened for writing: the upper file written to (also `data`'s backing file).
    upper: Option<Arc<std::fs::File>>,
    /// The data is an upper file (opened for writing, or for reading after a copy-up).
    in_upper: bool,
}

/// An open directory: its listing, merged at the first read (not at open: a walk whose
/// listings the kernel still caches opens every directory but reads none).
struct OpenDir {
    ino: Ino,
    listing: OnceLock<Arc<Listing>>,
}

/// A union of layers; read-only, or writable through an [`Upper`] at position 0.
pub struct Union {
    /// Topmost first.
    layers: Vec<Arc<dyn Layer>>,
    nodes: NodeTable,
    files: Handles<OpenFile>,
    dirs: Handles<Arc<OpenDir>>,
    /// Files read without a handle (see [`Union::read_node`]).
    recent: Recent<Arc<dyn FileData>>,
    /// Which directory nodes keep their listings once no handle reads them.
    listings: ListingBudget,
    upper: Option<Upper>,
}

impl Union {
    /// Merges `layers`, given topmost first. At least one layer is needed.
    pub fn new(layers: Vec<Arc<dyn Layer>>) -> io::Result<Union> {
        if layers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a union needs at least one layer",
            ));
        }
        let mut roots = Vec::new();
        let mut st_ino = 0;
        for (i, layer) in layers.iter().enumerate() {
            let root = layer.root()?;
            if i == 0 {
                st_ino = node::st_ino(0, root.attr.ino);
            }
            roots.push(LayerRef {
                layer: i,
                node: root.node,
            });
            if root.opaque {
                break;
            }
        }
        Ok(Union {
            nodes: NodeTable::new(st_ino, roots),
            layers,
            files: Handles::new(),
            dirs: Handles::new(),
            recent: Recent::new(),
            listings: ListingBudget::new(LISTING_BUDGET),
            upper: None,
        })
    }

    /// Merges the upper's directory (on top) over `lowers` (topmost first) and makes the
    /// union writable through it.
    pub fn with_upper(upper: Upper, lowers: Vec<Arc<dyn Layer>>) -> io::Result<Union> {
        let mut layers: Vec<Arc<dyn Layer>> = vec![upper.layer().clone()];
        layers.extend(lowers);
        let mut union = Union::new(layers)?;
        union.upper = Some(upper);
        Ok(union)
    }

    /// True if the union has a writable upper.
    pub fn is_writable(&self) -> bool {
        self.upper.is_some()
    }

    pub fn layers(&self) -> &[Arc<dyn Layer>] {
        &self.layers
    }

    fn node(&self, ino: Ino) -> io::Result<Arc<Node>> {
        self.nodes.get(ino).ok_or_else(|| errno(libc::ESTALE))
    }

    fn layer(&self, r: LayerRef) -> &dyn Layer {
        &*self.layers[r.layer]
    }

    /// Resolves `name` in a merged directory from the top layer down, starting at position
    /// `from` of its layers (the layers above are known not to have or hide the name).
    /// Also returns the topmost object's attributes, as the layer reported them.
    fn resolve(&self, dir: &Node, name: &OsStr, from: usize) -> io::Result<(Resolved, Attr)> {
        self.resolve_in(&dir.layers(), name, from)
    }

    /// [`Union::resolve`] in the merged directory made of `layers` (topmost first).
    fn resolve_in(
        &self,
        layers: &[LayerRef],
        name: &OsStr,
        from: usize,
    ) -> io::Result<(Resolved, Attr)> {
        let mut found: Vec<LayerRef> = Vec::new();
        let mut top: Option<(Kind, u64, Attr)> = None;
        for &parent in layers.iter().skip(from) {
            let Some(entry) = self.layer(parent).lookup(parent.node, name)? else {
                continue;
            };
            let here = LayerRef {
                layer: parent.layer,
                node: entry.node,
            };
            match (&top, entry.attr.kind) {
                (_, Kind::Whiteout) => break,
                (None, kind) => {
                    let ino = self.st_ino_of(parent.layer, entry.attr.ino);
                    top = Some((kind, ino, entry.attr));
                    found.push(here);
                    if kind != Kind::Dir || entry.opaque {
                        break;
                    }
                }
                (Some(_), Kind::Dir) => {
                    found.push(here);
                    if entry.opaque {
                        break;
                    }
                }
                // A non-directory below a directory ends the merge and stays hidden.
                (Some(_), _) => break,
            }
        }
        match top {
            Some((kind, ino, attr)) => Ok((
                Resolved {
                    ino,
                    kind,
                    layers: found,
                },
                attr,
            )),
            None => Err(errno(libc::ENOENT)),
        }
    }

    /// Looks `name` up in directory `parent`, taking a lookup reference on the result.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> io::Result<(Ino, Stat)> {
        let dir = self.lookup_dir(parent, name)?;
        // A cached merged listing says which layer has the name, so a miss costs no layer
        // call and a hit asks only the layers from there down. Without one, the layers are
        // asked top down (merging a listing per lookup would cost more than it saves).
        let from = match dir.cached_listing() {
            Ok(listing) => match listing.find(name) {
                Some(listed) => listed.from,
                None => return Err(errno(libc::ENOENT)),
            },
            Err(_) => 0,
        };
        self.lookup_from(&dir, name, from)
    }

    /// [`Union::lookup`] of an entry of `listing` (readdirplus): the entry says where to
    /// start, unless a write changed the directory since the listing was merged.
    pub fn lookup_listed(&self, listing: &Arc<Listing>, entry: &Listed) -> io::Result<(Ino, Stat)> {
        let dir = self.lookup_dir(listing.dir, &entry.name)?;
        let current =
            self.upper.is_none() || dir.cached_listing().is_ok_and(|l| Arc::ptr_eq(&l, listing));
        if !current {
            return self.lookup(listing.dir, &entry.name);
        }
        self.lookup_from(&dir, &entry.name, entry.from)
    }

    /// The directory node to look `name` up in, once the name is checked.
    fn lookup_dir(&self, parent: Ino, name: &OsStr) -> io::Result<Arc<Node>> {
        let dir = self.node(parent)?;
        if dir.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        if name.len() > 255 {
            return Err(errno(libc::ENAMETOOLONG));
        }
        if name == "." || name == ".." || name.as_bytes().contains(&b'/') {
            return Err(errno(libc::EINVAL));
        }
        Ok(dir)
    }

    fn lookup_from(&self, dir: &Node, name: &OsStr, from: u32) -> io::Result<(Ino, Stat)> {
        let (resolved, mut attr) = self.resolve(dir, name, from as usize)?;
        let place = Place {
            parent: dir.ino,
            name: self.upper.as_ref().map(|_| Arc::from(name)),
        };
        let node = self.nodes.acquire(resolved, place);
        // The attributes came with the lookup: no second stat of the same object.
        if node.layers().len() > 1 {
            attr.nlink = MERGED_DIR_NLINK;
        }
        let stat = Stat {
            st_ino: self.nodes.st_ino(&node),
            attr,
        };
        Ok((node.ino, stat))
    }

    /// Drops `n` lookup references taken by [`Union::lookup`].
    pub fn forget(&self, ino: Ino, n: u64) {
        self.nodes.forget(ino, n);
    }

    fn stat_node(&self, node: &Node) -> io::Result<Stat> {
        let layers = node.layers();
        let top = layers[0];
        let mut attr = self.layer(top).attr(top.node)?;
        if attr.kind != node.kind {
            // An upper object is found by its name, which a concurrent unlink or rename may
            // have just given to a whiteout or another object: this node's object is gone
            // from there. (Attributes of another type would make the kernel fail every
            // access to the inode with EIO.)
            return Err(errno(libc::ENOENT));
        }
        if layers.len() > 1 {
            attr.nlink = MERGED_DIR_NLINK;
        }
        Ok(Stat {
            st_ino: self.nodes.st_ino(node),
            attr,
        })
    }

    /// Attributes of a node. A file unlinked while open has no name left to stat; then any
    /// open descriptor of it answers, as `fstat` does on a local filesystem (the kernel asks
    /// without a handle for `fstat`, with one before reads).
    pub fn getattr(&self, ino: Ino) -> io::Result<Stat> {
        self.getattr_with(ino, None)
    }

    /// [`Union::getattr`], preferring the given open file handle when the name is gone.
    pub fn getattr_with(&self, ino: Ino, fh: Option<u64>) -> io::Result<Stat> {
        let node = self.node(ino)?;
        match self.stat_node(&node) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let open = fh
                    .and_then(|fh| self.files.get(fh))
                    .filter(|f| f.ino == ino && f.data.backing_file().is_some())
                    .or_else(|| {
                        self.files
                            .find(|f| f.ino == ino && f.data.backing_file().is_some())
                    })
                    .ok_or(e)?;
                let Some(backing) = open.data.backing_file() else {
                    return Err(errno(libc::ENOENT));
                };
                let st = rustix::fs::fstat(backing)?;
                Ok(Stat {
                    st_ino: self.nodes.st_ino(&node),
                    attr: crate::layer::dir::attr_from_stat(&st),
                })
            }
            other => other,
        }
    }

    pub fn readlink(&self, ino: Ino) -> io::Result<Vec<u8>> {
        let node = self.node(ino)?;
        if node.kind != Kind::Symlink {
            return Err(errno(libc::EINVAL));
        }
        let top = node.top();
        self.layer(top).readlink(top.node)
    }

    /// Opens a regular file for reading; returns a handle for [`Union::read`].
    pub fn open(&self, ino: Ino, write: bool) -> io::Result<u64> {
        let node = self.node(ino)?;
        match node.kind {
            Kind::Dir => return Err(errno(libc::EISDIR)),
            Kind::File => {}
            _ => return Err(errno(libc::EINVAL)),
        }
        if write {
            return Err(errno(libc::EROFS));
        }
        let top = node.top();
        // An upper object is opened by its name, which a concurrent unlink or rename may be
        // replacing (with a whiteout: `ENXIO`, or with another object) before the name table
        // follows: hold off writes meanwhile. Lower layers never change.
        let _guard = match &self.upper {
            Some(upper) if top.layer == 0 => Some(upper.lock()),
            _ => None,
        };
        let top = node.top();
        let data = match self.layer(top).open(top.node) {
            // The name holds a whiteout now (char 0/0 answers ENXIO): the file was deleted
            // under a node the kernel still had.
            Err(e) if top.layer == 0 && e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(errno(libc::ENOENT));
            }
            other => other?,
        };
        Ok(self.files.insert(OpenFile {
            ino,
            data: Arc::from(data),
            upper: None,
            in_upper: top.layer == 0 && self.upper.is_some(),
        }))
    }

    /// The data of an open handle if it is an upper file, for the kernel to read and write
    /// directly (FUSE passthrough) through [`FileData::backing_file`]. `None` for lower files:
    /// at copy-up a lower file's node moves to another file, while the kernel binds one
    /// backing file to a node for as long as any open of it lasts.
    pub fn upper_data(&self, fh: u64) -> Option<Arc<dyn FileData>> {
        let open = self.files.get(fh)?;
        (open.in_upper && open.data.backing_file().is_some()).then_some(open.data)
    }

    /// Reads up to `size` bytes at `offset` of an open file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let file = self.files.get(fh).ok_or_else(|| errno(libc::EBADF))?;
        let mut buf = vec![0u8; size as usize];
        // One call: a layer fills the buffer unless the file ends (FileData's contract).
        let n = file.data.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Reads a regular file of a read-only union by its node, without a handle: the kernel
    /// sends no open (and no release) once told opens are not needed, which saves two round
    /// trips per file opened (a warm `tar` of small files made nothing but those).
    pub fn read_node(&self, ino: Ino, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        if self.upper.is_some() {
            // An upper file may change or go: reads go through handles.
            return Err(errno(libc::EBADF));
        }
        let data = self.recent.get_or_open(ino, || {
            let node = self.node(ino)?;
            if node.kind != Kind::File {
                return Err(errno(libc::EINVAL));
            }
            let top = node.top();
            Ok(Arc::from(self.layer(top).open(top.node)?))
        })?;
        let mut buf = vec![0u8; size as usize];
        let n = data.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn release(&self, fh: u64) {
        self.files.remove(fh);
    }

    /// Opens a directory; the handle reads one merged listing, so offsets stay stable.
    pub fn opendir(&self, ino: Ino) -> io::Result<u64> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        Ok(self.dirs.insert(Arc::new(OpenDir {
            ino,
            listing: OnceLock::new(),
        })))
    }

    /// The merged listing of a directory node, made on first use.
    fn listing_of(&self, node: &Node) -> io::Result<Arc<Listing>> {
        let version = match node.cached_listing() {
            Ok(l) => return Ok(l),
            Err(version) => version,
        };
        let made = Arc::new(self.merge_listing(node)?);
        // Two threads may race to merge; both results are equal, keep the first (unless a
        // write changed the directory meanwhile).
        let (listing, kept) = node.store_listing(made, version);
        if kept {
            for (ino, old) in self.listings.admit(node.ino, &listing) {
                if let (Some(dir), Some(old)) = (self.nodes.get(ino), old.upgrade()) {
                    dir.evict_listing(&old);
                }
            }
        }
        Ok(listing)
    }

    /// Merges the names of every layer directory of `node`, top first.
    fn merge_listing(&self, node: &Node) -> io::Result<Listing> {
        let st_ino = self.nodes.st_ino(node);
        let parent_st_ino = match self.nodes.get(node.parent()) {
            Some(p) => self.nodes.st_ino(&p),
            None => st_ino,
        };
        let mut entries = vec![
            Listed {
                name: OsStr::new(".").into(),
                kind: Kind::Dir,
                st_ino,
                from: 0,
            },
            Listed {
                name: OsStr::new("..").into(),
                kind: Kind::Dir,
                st_ino: parent_st_ino,
                from: 0,
            },
        ];
        let mut seen: HashSet<OsString> = HashSet::new();
        for (from, &r) in node.layers().iter().enumerate() {
            for e in self.layer(r).read_dir(r.node)? {
                if seen.contains(&e.name) {
                    continue;
                }
                if e.kind != Kind::Whiteout {
                    entries.push(Listed {
                        name: e.name.as_os_str().into(),
                        kind: e.kind,
                        st_ino: self.st_ino_of(r.layer, e.ino),
                        from: u32::try_from(from).map_err(|_| errno(libc::EOVERFLOW))?,
                    });
                }
                seen.insert(e.name);
            }
        }
        entries[2..].sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // Kept for as long as the directory node lives: no growth slack.
        entries.shrink_to_fit();
        Ok(Listing {
            dir: node.ino,
            entries,
        })
    }

    /// The merged listing of directory `ino`, for reads without a handle (read-only unions
    /// only: a listing merged again must read the same).
    pub fn listing_of_dir(&self, ino: Ino) -> io::Result<Arc<Listing>> {
        if self.upper.is_some() {
            return Err(errno(libc::EBADF));
        }
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        self.listing_of(&node)
    }

    /// The listing of an open directory handle.
    pub fn listing(&self, fh: u64) -> io::Result<Arc<Listing>> {
        let open = self.dirs.get(fh).ok_or_else(|| errno(libc::EBADF))?;
        if let Some(listing) = open.listing.get() {
            return Ok(listing.clone());
        }
        let made = self.listing_of(&*self.node(open.ino)?)?;
        // The kernel reads one handle from one thread at a time; were two to race, both
        // would read the listing set first.
        Ok(open.listing.get_or_init(|| made).clone())
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.remove(fh);
    }

    /// The value of a visible extended attribute.
    pub fn getxattr(&self, ino: Ino, name: &OsStr) -> io::Result<Vec<u8>> {
        if is_private_xattr(name) {
            return Err(errno(libc::ENODATA));
        }
        let top = self.node(ino)?.top();
        self.layer(top)
            .get_xattr(top.node, name)?
            .ok_or_else(|| errno(libc::ENODATA))
    }

    /// The visible extended attribute names, each followed by a NUL (listxattr(2) format).
    pub fn listxattr(&self, ino: Ino) -> io::Result<Vec<u8>> {
        let top = self.node(ino)?.top();
        let mut out = Vec::new();
        for name in self.layer(top).list_xattrs(top.node)? {
            if !is_private_xattr(&name) {
                out.extend_from_slice(name.as_bytes());
                out.push(0);
            }
        }
        Ok(out)
    }

    /// Checks access(2) for a caller, with the classic owner/group/other rules (root may read,
    /// write and search anything, and execute what has any execute bit). Writing is refused
    /// without an upper.
    pub fn access(&self, ino: Ino, mask: u32, uid: u32, gid: u32) -> io::Result<()> {
        let stat = self.getattr(ino)?;
        if mask & W_OK != 0 && self.upper.is_none() {
            return Err(errno(libc::EROFS));
        }
        let a = &stat.attr;
        let granted = if uid == 0 {
            let any_x = a.perm & 0o111 != 0 || a.kind == Kind::Dir;
            R_OK | W_OK | if any_x { X_OK } else { 0 }
        } else if uid == a.uid {
            (a.perm >> 6) & 7
        } else if gid == a.gid {
            (a.perm >> 3) & 7
        } else {
            a.perm & 7
        };
        if mask & (R_OK | W_OK | X_OK) & !granted != 0 {
            return Err(errno(libc::EACCES));
        }
        Ok(())
    }

    /// Filesystem numbers of the topmost layer, as overlayfs reports its upper's.
    pub fn statfs(&self) -> io::Result<FsStats> {
        self.layers[0].statfs()
    }

    /// The `st_ino` of an object in layer `layer`: an upper object made by copying up a lower
    /// one keeps the number the lower one had (as overlayfs does with its origin xattr), so
    /// an open file and a fresh `stat` agree.
    fn st_ino_of(&self, layer: usize, ino: u64) -> u64 {
        let st_ino = node::st_ino(layer, ino);
        match &self.upper {
            Some(upper) if layer == 0 => upper.origin_of(st_ino).unwrap_or(st_ino),
            _ => st_ino,
        }
    }

    /// Number of live nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod dircopy_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upper_tests;
