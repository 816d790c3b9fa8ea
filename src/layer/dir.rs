//! An extracted directory tree used as a layer (also the read side of a writable upper).
//!
//! Every path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to
//! the layer's root, so neither a symlink inside the layer nor a `..` can lead outside it;
//! the last component is always acted on with `*at(.., AT_SYMLINK_NOFOLLOW)` semantics, so a
//! symlink is reported as a symlink. Whiteouts in both conventions are normalised here:
//! overlayfs char device 0/0 and OCI `.wh.NAME` files; opaque directories by xattr or by
//! the OCI `.wh..wh..opq` marker.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::hash::RandomState;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use hashbrown::HashTable;
use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

use super::whiteout::{self, OciName};
use super::{Attr, DirEntry, Entry, FileData, FsStats, Kind, Layer, NodeId, Timespec};

mod names;
mod readahead;

use names::{Interner, Name, NodePath, slot_of};

const ROOT: NodeId = 0;

/// Directory descriptors kept open per layer. Resolving a path from the layer root on every
/// request cost a path walk per syscall; with the parent's descriptor at hand a lookup is one
/// `statat`. Bounded, because a large tree has more directories than a process may keep open.
const DIR_FD_CACHE: usize = 1024;

/// An extracted directory tree.
pub struct DirLayer {
    label: String,
    /// `O_RDONLY | O_DIRECTORY`: usable both for `*at` calls and for `f*xattr` of the root.
    root: OwnedFd,
    nodes: RwLock<Interner>,
    dir_fds: Mutex<LruCache<NodeId, Arc<OwnedFd>>>,
    read_ahead: readahead::Seen,
}

impl DirLayer {
    /// Opens `path` as a layer. Fails if it is missing or not a directory.
    pub fn open(path: &Path) -> io::Result<DirLayer> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root_path = NodePath {
            parent: ROOT,
            name: Name::new(c"."),
            generation: 0,
        };
        Ok(DirLayer {
            label: path.display().to_string(),
            root,
            nodes: RwLock::new(Interner {
                nodes: vec![root_path],
                by_name: HashTable::new(),
                hasher: RandomState::new(),
                free: Vec::new(),
            }),
            dir_fds: Mutex::new(LruCache::new(
                NonZeroUsize::new(DIR_FD_CACHE).expect("nonzero constant"),
            )),
            read_ahead: readahead::Seen::default(),
        })
    }

    /// The path of `node`; ENOENT once its name was forgotten (as a lookup of the name
    /// would say), ESTALE for an id this layer never gave out.
    fn node(&self, node: NodeId) -> io::Result<NodePath> {
        let nodes = self.nodes.read();
        if let Some(n) = nodes.get(node) {
            return Ok(n.clone());
        }
        let errno = if slot_of(node) < nodes.nodes.len() {
            libc::ENOENT
        } else {
            libc::ESTALE
        };
        Err(io::Error::from_raw_os_error(errno))
    }

    fn intern(&self, parent: NodeId, name: &OsStr) -> io::Result<NodeId> {
        if let Some(id) = self.nodes.read().find(parent, name.as_bytes()) {
            return Ok(id);
        }
        let name_c = Name::new(&CString::new(name.as_bytes()).map_err(|_| einval())?);
        let mut nodes = self.nodes.write();
        if let Some(id) = nodes.find(parent, name.as_bytes()) {
            return Ok(id);
        }
        Ok(nodes.insert(parent, name_c))
    }

    /// An `O_PATH` descriptor of a directory of the layer, from the cache or opened through
    /// its parent's.
    fn dir_fd(&self, node: NodeId) -> io::Result<Arc<OwnedFd>> {
        if let Some(fd) = self.dir_fds.lock().get(&node) {
            return Ok(fd.clone());
        }
        let fd = if node == ROOT {
            open_in(&self.root, c".", OFlags::PATH | OFlags::DIRECTORY)?
        } else {
            let path = self.node(node)?;
            let parent = self.dir_fd(path.parent)?;
            open_in(&parent, &path.name, OFlags::PATH | OFlags::DIRECTORY)?
        };
        let fd = Arc::new(fd);
        self.dir_fds.lock().put(node, fd.clone());
        Ok(fd)
    }

    /// The parent directory of a non-root node.
    fn parent_fd(&self, path: &NodePath) -> io::Result<Arc<OwnedFd>> {
        self.dir_fd(path.parent)
    }

    fn stat_node(&self, node: NodeId, path: &NodePath) -> io::Result<Stat> {
        if node == ROOT {
            return Ok(rustix::fs::fstat(&self.root)?);
        }
        let dir = self.parent_fd(path)?;
        Ok(rustix::fs::statat(
            &*dir,
            &*path.name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Runs `f` with a path naming the node for the `l*xattr` calls: the last component is
    /// the node's own name, reached through its parent's descriptor in `/proc/self/fd`.
    fn with_xattr_path<T>(
        &self,
        node: NodeId,
        f: impl FnOnce(XattrTarget<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        let path = self.node(node)?;
        if node == ROOT {
            return f(XattrTarget::Fd(self.root.as_fd()));
        }
        let dir = self.parent_fd(&path)?;
        let mut p = format!("/proc/self/fd/{}/", fd_number(&dir)).into_bytes();
        p.extend_from_slice(path.name.to_bytes());
        let p = CString::new(p).map_err(|_| einval())?;
        f(XattrTarget::Path(&p))
    }

    fn is_opaque_dir(&self, node: NodeId) -> io::Result<bool> {
        let names = self.list_xattrs(node)?;
        for name in names {
            if whiteout::OPAQUE_XATTRS
                .iter()
                .any(|x| name == OsStr::new(x))
                && self
                    .get_xattr(node, &name)?
                    .is_some_and(|v| whiteout::is_opaque_value(&v))
            {
                return Ok(true);
            }
        }
        let marker = OsStr::from_bytes(whiteout::OPAQUE_MARKER);
        let fd = self.dir_fd(node)?;
        exists_at(fd.as_fd(), marker)
    }

    fn entry(&self, node: NodeId, st: &Stat) -> io::Result<Entry> {
        let attr = attr_from_stat(st);
        let opaque = if attr.kind == Kind::Dir {
            self.is_opaque_dir(node)?
        } else {
            false
        };
        Ok(Entry { node, attr, opaque })
    }
}

/// What the writable upper (`union::upper`) needs beyond the read-only [`Layer`] view: the
/// descriptors to write relative to, and keeping node ids meaning "this path" when names
/// move or go away under them.
impl DirLayer {
    /// An `O_PATH` descriptor of directory `node`, for `*at` calls.
    pub fn dir_handle(&self, node: NodeId) -> io::Result<Arc<OwnedFd>> {
        self.dir_fd(node)
    }

    /// The directory holding `node` and its name there (`None` for the root).
    pub fn place_of(&self, node: NodeId) -> io::Result<Option<(Arc<OwnedFd>, CString)>> {
        if node == ROOT {
            return Ok(None);
        }
        let path = self.node(node)?;
        if path.name.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(Some((self.parent_fd(&path)?, (*path.name).to_owned())))
    }

    /// `name` in `parent` is gone (unlinked, or replaced by another object): the node id it
    /// had now names nothing, and a new object there gets a new id. Cached directory
    /// descriptors below it are dropped, since they point at the old object.
    pub fn forget_name(&self, parent: NodeId, name: &OsStr) {
        let mut nodes = self.nodes.write();
        if let Some(id) = nodes.remove(parent, name.as_bytes()) {
            let slot = slot_of(id);
            if let Some(n) = nodes.nodes.get_mut(slot) {
                n.name = Name::new(c"");
                nodes.free.push(slot);
            }
            drop(nodes);
            self.dir_fds.lock().clear();
        }
    }

    /// `old_name` in `old_parent` was renamed to `new_name` in `new_parent`: its node id (and
    /// so every id below it) follows; whatever the new name had is forgotten.
    pub fn move_name(
        &self,
        old_parent: NodeId,
        old_name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> io::Result<()> {
        self.forget_name(new_parent, new_name);
        let name_c = Name::new(&CString::new(new_name.as_bytes()).map_err(|_| einval())?);
        let mut nodes = self.nodes.write();
        if let Some(id) = nodes.remove(old_parent, old_name.as_bytes()) {
            if let Some(n) = nodes.nodes.get_mut(slot_of(id)) {
                n.parent = new_parent;
                n.name = name_c;
            }
            let hash = Interner::hash(&nodes.hasher, new_parent, new_name.as_bytes());
            nodes.index(hash, id);
        }
        Ok(())
    }
}

enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a CString),
}

fn fd_number(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Opens `name` in directory `dir`: one component, never following a symlink and never
/// leaving the layer.
fn open_in(dir: &OwnedFd, name: &CStr, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        dir,
        name,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

fn exists_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Fifo,
        FileType::Socket => Kind::Socket,
        FileType::CharacterDevice if st.st_rdev == 0 => Kind::Whiteout,
        FileType::CharacterDevice => Kind::CharDev,
        FileType::BlockDevice => Kind::BlockDev,
        FileType::Unknown => Kind::File,
    }
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

/// The layer model's attributes of a `stat` result (also for open files the union holds).
pub(crate) fn attr_from_stat(st: &Stat) -> Attr {
    Attr {
        kind: kind_of(st),
        perm: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        nlink: st.st_nlink as u32,
        rdev: st.st_rdev,
        atime: ts(st.st_atime, st.st_atime_nsec as i64),
        mtime: ts(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: ts(st.st_ctime, st.st_ctime_nsec as i64),
        ino: st.st_ino,
    }
}

struct DirFile(File);

impl FileData for DirFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // pread on a regular file of a local filesystem is short only at end of file.
        self.0.read_at(buf, offset)
    }

    fn backing_file(&self) -> Option<&File> {
        Some(&self.0)
    }
}

impl Layer for DirLayer {
    fn name(&self) -> &str {
        &self.label
    }

    fn root(&self) -> io::Result<Entry> {
        let st = rustix::fs::fstat(&self.root)?;
        let mut entry = self.entry(ROOT, &st)?;
        // A root can only be a directory; a 0/0 device cannot be a layer root.
        entry.attr.kind = Kind::Dir;
        Ok(entry)
    }

    fn lookup(&self, dir: NodeId, name: &OsStr) -> io::Result<Option<Entry>> {
        if whiteout::classify(name) != OciName::Plain || name == "." || name == ".." {
            return Ok(None);
        }
        let dir_fd = match self.dir_fd(dir) {
            Ok(fd) => fd,
            // The parent is no longer a directory of this layer: it says nothing about `name`.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&*dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let node = self.intern(dir, name)?;
                let attr = attr_from_stat(&st);
                // A `.wh.NAME` beside a real directory NAME (an OCI layer unpacked naively)
                // deleted the lower NAME before this layer's NAME was made: the directory
                // hides everything below it, as if opaque.
                let opaque = attr.kind == Kind::Dir
                    && (self.is_opaque_dir(node)? || {
                        let mut marker = whiteout::WHITEOUT_PREFIX.to_vec();
                        marker.extend_from_slice(name.as_bytes());
                        exists_at(dir_fd.as_fd(), OsStr::from_bytes(&marker))?
                    });
                Ok(Some(Entry { node, attr, opaque }))
            }
            Err(rustix::io::Errno::NOENT) => {
                let mut marker = whiteout::WHITEOUT_PREFIX.to_vec();
                marker.extend_from_slice(name.as_bytes());
                match rustix::fs::statat(&*dir_fd, marker.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => {
                        let node = self.intern(dir, name)?;
                        let mut attr = attr_from_stat(&st);
                        attr.kind = Kind::Whiteout;
                        Ok(Some(Entry {
                            node,
                            attr,
                            opaque: false,
                        }))
                    }
                    Err(rustix::io::Errno::NOENT) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            Err(rustix::io::Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn attr(&self, node: NodeId) -> io::Result<Attr> {
        let path = self.node(node)?;
        let st = self.stat_node(node, &path)?;
        Ok(attr_from_stat(&st))
    }

    fn read_dir(&self, dir: NodeId) -> io::Result<Vec<DirEntry>> {
        let dir_fd = self.dir_fd(dir)?;
        let fd = open_in(&dir_fd, c".", OFlags::RDONLY | OFlags::DIRECTORY)?;
        let read_ahead = self.read_ahead.first(dir);
        let mut subdirs = Vec::new();
        let mut reader = rustix::fs::Dir::read_from(&fd)?;
        let mut real = Vec::new();
        let mut whiteouts = Vec::new();
        while let Some(item) = reader.read() {
            let item = item?;
            let name = OsStr::from_bytes(item.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            match whiteout::classify(name) {
                OciName::Plain => {}
                OciName::Whiteout(hidden) => {
                    whiteouts.push(DirEntry {
                        name: hidden.to_owned(),
                        kind: Kind::Whiteout,
                        ino: item.ino(),
                    });
                    continue;
                }
                OciName::OpaqueMarker | OciName::Reserved => continue,
            }
            let kind = match item.file_type() {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                FileType::Fifo => Kind::Fifo,
                FileType::Socket => Kind::Socket,
                FileType::BlockDevice => Kind::BlockDev,
                // A character device may be a whiteout (0/0), and an unknown d_type needs a
                // stat to tell what the entry is.
                FileType::CharacterDevice | FileType::Unknown => {
                    match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => kind_of(&st),
                        Err(rustix::io::Errno::NOENT) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            if read_ahead && kind == Kind::Dir {
                subdirs.push(item.file_name().to_owned());
            }
            real.push(DirEntry {
                name: name.to_owned(),
                kind,
                ino: item.ino(),
            });
        }
        readahead::subdirectories(readahead::Listed {
            dir: Arc::downgrade(&dir_fd),
            subdirs,
        });
        if !whiteouts.is_empty() {
            // The OCI spec lets a real entry and a `.wh.` of the same name coexist in one
            // layer: the whiteout then applies only to lower layers, so the real one is kept.
            let names: HashSet<&OsString> = real.iter().map(|e| &e.name).collect();
            whiteouts.retain(|w| !names.contains(&w.name));
            real.extend(whiteouts);
        }
        Ok(real)
    }

    fn open(&self, node: NodeId) -> io::Result<Box<dyn FileData>> {
        if node == ROOT {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let path = self.node(node)?;
        let fd = open_in(&*self.parent_fd(&path)?, &path.name, OFlags::RDONLY)?;
        Ok(Box::new(DirFile(File::from(fd))))
    }

    fn readlink(&self, node: NodeId) -> io::Result<Vec<u8>> {
        let path = self.node(node)?;
        if node == ROOT {
            return Err(einval());
        }
        let dir = self.parent_fd(&path)?;
        let target = rustix::fs::readlinkat(&*dir, &*path.name, Vec::new())?;
        Ok(target.into_bytes())
    }

    fn list_xattrs(&self, node: NodeId) -> io::Result<Vec<OsString>> {
        let raw = self.with_xattr_path(node, |target| {
            let mut buf = vec![0u8; 1024];
            loop {
                let res = match target {
                    XattrTarget::Fd(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
                    XattrTarget::Path(p) => rustix::fs::llistxattr(p.as_c_str(), &mut buf[..]),
                };
                match res {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                    Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                        buf.resize(buf.len() * 4, 0);
                    }
                    Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                }
            }
        })?;
        Ok(raw
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| OsString::from_vec(n.to_vec()))
            .collect())
    }

    fn get_xattr(&self, node: NodeId, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        self.with_xattr_path(node, |target| {
            let mut buf = vec![0u8; 256];
            loop {
                let res = match target {
                    XattrTarget::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
                    XattrTarget::Path(p) => rustix::fs::lgetxattr(p.as_c_str(), name, &mut buf[..]),
                };
                match res {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(Some(buf));
                    }
                    Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                        buf.resize(buf.len() * 4, 0);
                    }
                    Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
        })
    }

    fn statfs(&self) -> io::Result<FsStats> {
        let s = rustix::fs::fstatvfs(&self.root)?;
        Ok(FsStats {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(layer: &DirLayer, dir: NodeId) -> Vec<(String, Kind)> {
        let mut v: Vec<_> = layer
            .read_dir(dir)
            .unwrap()
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.kind))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn reads_tree_and_normalises_oci_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("etc/sub")).unwrap();
        fs::write(root.join("etc/passwd"), b"root:x:0:0\n").unwrap();
        fs::write(root.join("etc/.wh.shadow"), b"").unwrap();
        fs::write(root.join("etc/sub/.wh..wh..opq"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();

        let layer = DirLayer::open(root).unwrap();
        let r = layer.root().unwrap();
        assert_eq!(r.attr.kind, Kind::Dir);
        let etc = layer.lookup(r.node, OsStr::new("etc")).unwrap().unwrap();
        assert_eq!(etc.attr.kind, Kind::Dir);
        assert!(!etc.opaque);
        assert_eq!(
            names(&layer, etc.node),
            vec![
                ("passwd".into(), Kind::File),
                ("shadow".into(), Kind::Whiteout),
                ("sub".into(), Kind::Dir)
            ]
        );
        let shadow = layer
            .lookup(etc.node, OsStr::new("shadow"))
            .unwrap()
            .unwrap();
        assert_eq!(shadow.attr.kind, Kind::Whiteout);
        assert!(
            layer
                .lookup(etc.node, OsStr::new(".wh.shadow"))
                .unwrap()
                .is_none()
        );
        let sub = layer.lookup(etc.node, OsStr::new("sub")).unwrap().unwrap();
        assert!(sub.opaque);
        assert!(names(&layer, sub.node).is_empty());

        let passwd = layer
            .lookup(etc.node, OsStr::new("passwd"))
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 64];
        let n = layer
            .open(passwd.node)
            .unwrap()
            .read_at(&mut buf, 5)
            .unwrap();
        assert_eq!(&buf[..n], b"x:0:0\n");

        let link = layer.lookup(r.node, OsStr::new("link")).unwrap().unwrap();
        assert_eq!(link.attr.kind, Kind::Symlink);
        assert_eq!(layer.readlink(link.node).unwrap(), b"/etc/passwd");
    }

    #[test]
    fn a_whiteout_beside_a_directory_of_the_same_name_makes_it_opaque() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/new"), b"").unwrap();
        fs::write(tmp.path().join(".wh.d"), b"").unwrap();
        fs::create_dir_all(tmp.path().join("plain")).unwrap();
        let layer = DirLayer::open(tmp.path()).unwrap();
        let r = layer.root().unwrap();
        let d = layer.lookup(r.node, OsStr::new("d")).unwrap().unwrap();
        assert_eq!(d.attr.kind, Kind::Dir);
        assert!(d.opaque);
        let plain = layer.lookup(r.node, OsStr::new("plain")).unwrap().unwrap();
        assert!(!plain.opaque);
        // The real directory is listed, not the whiteout.
        assert_eq!(
            names(&layer, r.node),
            vec![("d".into(), Kind::Dir), ("plain".into(), Kind::Dir)]
        );
    }

    #[test]
    fn never_follows_a_symlink_out_of_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("esc")).unwrap();
        let layer = DirLayer::open(tmp.path()).unwrap();
        let r = layer.root().unwrap();
        let esc = layer.lookup(r.node, OsStr::new("esc")).unwrap().unwrap();
        assert_eq!(esc.attr.kind, Kind::Symlink);
        // Asking for a child of the symlink must not reach the target directory.
        assert!(
            layer
                .lookup(esc.node, OsStr::new("secret"))
                .unwrap()
                .is_none()
        );
        assert!(layer.read_dir(esc.node).is_err());
        assert!(layer.open(esc.node).is_err());
    }

    #[test]
    fn overlayfs_whiteouts_and_opaque_xattr() {
        if !rustix::process::geteuid().is_root() {
            return; // mknod and trusted.* need root; CI runs as root.
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("d")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("gone"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::setxattr(
            root.join("d"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let layer = DirLayer::open(root).unwrap();
        let r = layer.root().unwrap();
        let gone = layer.lookup(r.node, OsStr::new("gone")).unwrap().unwrap();
        assert_eq!(gone.attr.kind, Kind::Whiteout);
        let d = layer.lookup(r.node, OsStr::new("d")).unwrap().unwrap();
        assert!(d.opaque);
        assert_eq!(
            names(&layer, r.node),
            vec![("d".into(), Kind::Dir), ("gone".into(), Kind::Whiteout)]
        );
    }
}
