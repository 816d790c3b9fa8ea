//! Changes to the merged tree through the upper: creating, writing, changing attributes and
//! xattrs, removing (leaving whiteouts where a lower still has the name); renames are in
//! `rename.rs`.
//!
//! Each operation takes the upper's write lock, copies up what it changes, acts with `*at`
//! calls on the upper's directory descriptors, and drops the merged listing of every
//! directory it changed. Without an upper every operation fails with `EROFS`.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use log::debug;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::acl;
use super::copyup::check_name;
use super::node::{Node, Resolved};
use super::upper::{self, Upper};
use super::{Ino, OpenFile, Stat, Union, errno};
use crate::layer::whiteout::is_private_xattr;
use crate::layer::{Attr, FileData, Kind, Layer, NodeId, Timespec};

/// Who asks for a new object: it gets their owner, and the mode less their umask.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

/// A time to set with [`Union::setattr`].
#[derive(Clone, Copy, Debug)]
pub enum TimeSet {
    Now,
    At(Timespec),
}

/// The changes of one setattr request; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// The open file the request came through, if any.
    pub fh: Option<u64>,
}

/// `renameat2` flags as FUSE passes them.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// The data of a file open for writing in the upper.
struct UpperFile(Arc<File>);

impl FileData for UpperFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        Ok(done)
    }

    fn backing_file(&self) -> Option<&File> {
        Some(&self.0)
    }
}

/// What a new object is.
enum NewObject<'a> {
    File,
    Dir,
    Symlink(&'a [u8]),
    Node(FileType, u64),
    Link(BorrowedFd<'a>, &'a CStr),
}

/// The most `copy_file_range` moves in one call when it reads and writes itself.
const COPY_CHUNK: u64 = 8 << 20;

impl Union {
    /// Resolves `name` in `dir` without taking a reference; `None` if the merged directory
    /// does not have it.
    pub(super) fn peek(&self, dir: &Node, name: &OsStr) -> io::Result<Option<(Resolved, Attr)>> {
        match self.resolve(dir, name, 0) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a layer below the upper shows `name` in `dir`: removing or moving the upper's
    /// `name` then needs a whiteout, and a directory put there must be opaque.
    pub(super) fn lower_has(&self, dir: &Node, name: &OsStr) -> io::Result<bool> {
        let layers = dir.layers();
        let from = usize::from(layers[0].layer == 0);
        if from >= layers.len() {
            return Ok(false);
        }
        match self.resolve(dir, name, from) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) fn dir_node(&self, ino: Ino) -> io::Result<Arc<Node>> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        Ok(node)
    }

    /// True if the merged directory made of `layers` shows no name.
    pub(super) fn merged_empty(&self, layers: &[super::node::LayerRef]) -> io::Result<bool> {
        let mut hidden = std::collections::HashSet::new();
        for &r in layers {
            for e in self.layer(r).read_dir(r.node)? {
                if e.kind == Kind::Whiteout {
                    hidden.insert(e.name);
                } else if !hidden.contains(&e.name) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Creates a new object `name` in `parent`, owned by the caller, built in the work
    /// directory and renamed into place (over a whiteout, a directory is made opaque).
    /// Returns the open file for a regular file.
    fn create_object(
        &self,
        parent: Ino,
        name: &OsStr,
        perm: u32,
        caller: Caller,
        what: NewObject<'_>,
    ) -> io::Result<Option<OwnedFd>> {
        let upper = self.writable()?;
        check_name(name)?;
        let dir = self.dir_node(parent)?;
        if self.peek(&dir, name)?.is_some() {
            return Err(errno(libc::EEXIST));
        }
        let dir_up = self.upper_dir(&dir)?;
        let dir_fd = upper.dir_layer().dir_handle(dir_up)?;
        let dir_attr = self.stat_node(&dir)?.attr;
        // A set-group-id directory gives its group (and, to directories, the bit itself).
        let setgid = dir_attr.perm & libc::S_ISGID != 0;
        let gid = if setgid { dir_attr.gid } else { caller.gid };
        // A default ACL on the directory stands in for the umask (POSIX.1e), as in overlayfs.
        let perm = perm & 0o7777;
        let inherited = match what {
            NewObject::File | NewObject::Dir | NewObject::Node(..) => default_acl(upper, dir_up)
                .and_then(|d| acl::inherit(&d, perm, matches!(what, NewObject::Dir))),
            NewObject::Symlink(_) | NewObject::Link(..) => None,
        };
        let mut perm = match &inherited {
            Some(i) => i.perm,
            None => perm & !caller.umask,
        };
        if setgid && matches!(what, NewObject::Dir) {
            perm |= libc::S_ISGID;
        }
        // An upper-only name the daemon's own owner may have: made in place (unless it takes
        // ACLs, which are set on the object before it has its name, as everything else).
        if matches!(what, NewObject::File)
            && !setgid
            && inherited.is_none()
            && is_daemon(caller.uid, gid)
            && let Some(fd) = create_in_place(dir_fd.as_fd(), name, perm)?
        {
            dir.invalidate_listing();
            return Ok(Some(fd));
        }
        let is_dir = matches!(what, NewObject::Dir);
        let is_link = matches!(what, NewObject::Link(..));
        let work = upper.work();
        let temp = upper.temp_name();
        let built = (|| -> io::Result<Option<OwnedFd>> {
            let flags = OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let mode0 = Mode::from_raw_mode(0o600);
            let fd = match what {
                NewObject::File => Some(rustix::fs::openat(
                    work,
                    &*temp,
                    flags | OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
                    mode0,
                )?),
                NewObject::Dir => {
                    rustix::fs::mkdirat(work, &*temp, Mode::from_raw_mode(0o700))?;
                    None
                }
                NewObject::Symlink(target) => {
                    rustix::fs::symlinkat(target, work, &*temp)?;
                    None
                }
                NewObject::Node(ft, rdev) => {
                    rustix::fs::mknodat(work, &*temp, ft, mode0, rdev)?;
                    None
                }
                NewObject::Link(from_dir, from_name) => {
                    rustix::fs::linkat(from_dir, from_name, work, &*temp, AtFlags::empty())?;
                    None
                }
            };
            if !is_link {
                let kind = if matches!(what, NewObject::Symlink(_)) {
                    Kind::Symlink
                } else {
                    Kind::File
                };
                let attr = Attr {
                    perm,
                    uid: caller.uid,
                    gid,
                    ..dir_attr.clone()
                };
                super::copyup::set_owner_mode(work, &temp, fd.as_ref(), kind, &attr)?;
            }
            if let Some(i) = &inherited {
                for (key, value) in [(acl::ACCESS, &i.access), (acl::DEFAULT, &i.default)] {
                    if let Some(value) = value {
                        let key = OsStr::new(key);
                        super::copyup::set_xattr(work, temp.to_bytes(), fd.as_ref(), key, value)?;
                    }
                }
            }
            if is_dir && self.upper_whiteout(dir_fd.as_fd(), name)? {
                upper::set_opaque(work, temp.to_bytes())?;
            }
            Ok(fd)
        })();
        let fd = match built {
            Ok(fd) => fd,
            Err(e) => {
                let _ = upper::remove_at(work, &temp);
                return Err(e);
            }
        };
        upper.place(&temp, dir_fd.as_fd(), name)?;
        dir.invalidate_listing();
        Ok(fd)
    }

    /// True if the upper directory `dir` holds a whiteout `name`.
    fn upper_whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(upper::is_whiteout(&st)),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates and opens a regular file; returns its node (with a lookup reference), its
    /// attributes and an open handle.
    pub fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> io::Result<(Ino, Stat, u64)> {
        let upper = self.writable()?;
        let guard = upper.lock();
        let fd = self
            .create_object(parent, name, mode, caller, NewObject::File)?
            .ok_or_else(|| errno(libc::EIO))?;
        drop(guard);
        let (ino, stat) = self.lookup(parent, name)?;
        let file = Arc::new(File::from(fd));
        let fh = self.files.insert(OpenFile {
            ino,
            data: Arc::new(UpperFile(file.clone())),
            upper: Some(file),
            in_upper: true,
        });
        Ok((ino, stat, fh))
    }

    pub fn mkdir(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        c: Caller,
    ) -> io::Result<(Ino, Stat)> {
        self.make(parent, name, mode, c, NewObject::Dir)
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &OsStr,
        target: &[u8],
        c: Caller,
    ) -> io::Result<(Ino, Stat)> {
        self.make(parent, name, 0o777, c, NewObject::Symlink(target))
    }

    /// mknod(2): `mode` carries the file type; `rdev` is `makedev(major, minor)`.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        rdev: u64,
        c: Caller,
    ) -> io::Result<(Ino, Stat)> {
        let ft = match FileType::from_raw_mode(mode) {
            FileType::RegularFile | FileType::Unknown => FileType::RegularFile,
            ft @ (FileType::Fifo | FileType::Socket) => ft,
            ft @ (FileType::CharacterDevice | FileType::BlockDevice) => ft,
            _ => return Err(errno(libc::EINVAL)),
        };
        self.make(parent, name, mode, c, NewObject::Node(ft, rdev))
    }

    fn make(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        c: Caller,
        what: NewObject<'_>,
    ) -> io::Result<(Ino, Stat)> {
        let upper = self.writable()?;
        let guard = upper.lock();
        self.create_object(parent, name, mode, c, what)?;
        drop(guard);
        self.lookup(parent, name)
    }

    /// A hard link `newname` in `newparent` to `ino` (a lower file is copied up first).
    pub fn link(&self, ino: Ino, newparent: Ino, newname: &OsStr) -> io::Result<(Ino, Stat)> {
        let upper = self.writable()?;
        let guard = upper.lock();
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(errno(libc::EPERM));
        }
        let up = self.copy_up(&node, true)?;
        let (from_dir, from_name) = upper
            .dir_layer()
            .place_of(up)?
            .ok_or_else(|| errno(libc::EPERM))?;
        let caller = Caller {
            uid: 0,
            gid: 0,
            umask: 0,
        };
        self.create_object(
            newparent,
            newname,
            0,
            caller,
            NewObject::Link(from_dir.as_fd(), &from_name),
        )?;
        drop(guard);
        self.lookup(newparent, newname)
    }

    /// Opens a regular file, for writing through the upper if `write` (copied up first;
    /// without its data if `truncate`).
    pub fn open_with(&self, ino: Ino, write: bool, truncate: bool) -> io::Result<u64> {
        if !write {
            return self.open(ino, false);
        }
        let upper = self.writable()?;
        let guard = upper.lock();
        let node = self.node(ino)?;
        match node.kind {
            Kind::Dir => return Err(errno(libc::EISDIR)),
            Kind::File => {}
            _ => return Err(errno(libc::EINVAL)),
        }
        let up = self.copy_up(&node, !truncate)?;
        let file = Arc::new(self.open_upper(upper, up, OFlags::RDWR)?);
        if truncate {
            file.set_len(0)?;
        }
        drop(guard);
        Ok(self.files.insert(OpenFile {
            ino,
            data: Arc::new(UpperFile(file.clone())),
            upper: Some(file),
            in_upper: true,
        }))
    }

    fn open_upper(&self, upper: &Upper, up: NodeId, flags: OFlags) -> io::Result<File> {
        let (dir, name) = upper
            .dir_layer()
            .place_of(up)?
            .ok_or_else(|| errno(libc::EISDIR))?;
        let fd = rustix::fs::openat(
            &*dir,
            &*name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Writes `data` at `offset` of a file opened for writing.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> io::Result<u32> {
        let file = self.files.get(fh).ok_or_else(|| errno(libc::EBADF))?;
        let out = file.upper.ok_or_else(|| errno(libc::EBADF))?;
        out.write_all_at(data, offset)?;
        u32::try_from(data.len()).map_err(|_| errno(libc::EINVAL))
    }

    /// copy_file_range(2) between two open files, `fh_out` open for writing. Both backed by
    /// files of their own (an upper file, a directory layer's file): the kernel copies, and
    /// shares extents where the filesystem can (reflink on btrfs and XFS). Otherwise (a tar
    /// layer's data, files on two filesystems) the bytes are read and written here, at most
    /// `COPY_CHUNK` a call; callers loop on short counts as they do for the syscall. Either
    /// way the data crosses the FUSE channel not at all, where the kernel's own fallback
    /// would move it through a read and a write request per page run.
    pub fn copy_file_range(
        &self,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> io::Result<u32> {
        self.writable()?;
        let input = self.files.get(fh_in).ok_or_else(|| errno(libc::EBADF))?;
        let output = self.files.get(fh_out).ok_or_else(|| errno(libc::EBADF))?;
        let out = output.upper.ok_or_else(|| errno(libc::EBADF))?;
        // The reply carries a 32-bit count.
        let len = len.min(u64::from(u32::MAX) & !0xfff);
        if let Some(src) = input.data.backing_file() {
            let (mut off_in, mut off_out) = (offset_in, offset_out);
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off_in),
                &*out,
                Some(&mut off_out),
                len as usize,
            ) {
                Ok(n) => return u32::try_from(n).map_err(|_| errno(libc::EOVERFLOW)),
                Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut buf = vec![0u8; len.min(COPY_CHUNK) as usize];
        let n = input.data.read_at(&mut buf, offset_in)?;
        out.write_all_at(&buf[..n], offset_out)?;
        u32::try_from(n).map_err(|_| errno(libc::EOVERFLOW))
    }

    /// fallocate(2) on a file open for writing.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> io::Result<()> {
        self.writable()?;
        let file = self.files.get(fh).ok_or_else(|| errno(libc::EBADF))?;
        let out = file.upper.ok_or_else(|| errno(libc::EBADF))?;
        let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        rustix::fs::fallocate(&*out, flags, offset, length)?;
        Ok(())
    }

    /// fsync(2) of a file open in the upper (nothing to do for a read-only one).
    pub fn fsync(&self, fh: u64, datasync: bool) -> io::Result<()> {
        let file = self.files.get(fh).ok_or_else(|| errno(libc::EBADF))?;
        match file.upper {
            Some(f) if datasync => f.sync_data(),
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }

    /// fsync(2) of a directory: of its upper directory, if it has one.
    pub fn fsyncdir(&self, ino: Ino) -> io::Result<()> {
        let Some(upper) = &self.upper else {
            return Ok(());
        };
        let top = self.node(ino)?.top();
        if top.layer != 0 {
            return Ok(());
        }
        let dir = upper.dir_layer().dir_handle(top.node)?;
        let fd = upper::open_dir_at(dir.as_fd(), c".")?;
        Ok(rustix::fs::fsync(fd)?)
    }

    /// The directory and name of an upper object, for `*at` calls (`.` in itself for the
    /// upper's root).
    fn upper_target(&self, upper: &Upper, up: NodeId) -> io::Result<(Arc<OwnedFd>, Vec<u8>)> {
        match upper.dir_layer().place_of(up)? {
            Some((dir, name)) => Ok((dir, name.into_bytes())),
            None => Ok((upper.dir_layer().dir_handle(up)?, b".".to_vec())),
        }
    }

    /// chmod, chown, truncate, utimens (copying up first).
    pub fn setattr(&self, ino: Ino, set: SetAttr) -> io::Result<Stat> {
        let upper = self.writable()?;
        let guard = upper.lock();
        let node = self.node(ino)?;
        let with_data = set.size != Some(0);
        let up = self.copy_up(&node, with_data)?;
        let (dir, name) = self.upper_target(upper, up)?;
        let name = name.as_slice();
        if set.uid.is_some() || set.gid.is_some() {
            rustix::fs::chownat(
                &*dir,
                name,
                set.uid.map(rustix::fs::Uid::from_raw),
                set.gid.map(rustix::fs::Gid::from_raw),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if let Some(mode) = set.mode {
            rustix::fs::chmodat(
                &*dir,
                name,
                Mode::from_raw_mode(mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        if let Some(size) = set.size {
            if node.kind != Kind::File {
                return Err(errno(libc::EINVAL));
            }
            let open = set
                .fh
                .and_then(|fh| self.files.get(fh))
                .and_then(|f| f.upper);
            match open {
                Some(f) => f.set_len(size)?,
                None => self.open_upper(upper, up, OFlags::WRONLY)?.set_len(size)?,
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let conv = |t: Option<TimeSet>| match t {
                None => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                Some(TimeSet::Now) => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
                Some(TimeSet::At(t)) => rustix::fs::Timespec {
                    tv_sec: t.sec,
                    tv_nsec: i64::from(t.nsec) as _,
                },
            };
            let times = Timestamps {
                last_access: conv(set.atime),
                last_modification: conv(set.mtime),
            };
            rustix::fs::utimensat(&*dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        drop(guard);
        self.stat_node(&node)
    }

    /// Sets an xattr (copying up first). Overlay-private names are refused as overlayfs
    /// refuses them (`EOPNOTSUPP`).
    pub fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
        let upper = self.writable()?;
        if is_private_xattr(name) {
            return Err(errno(libc::EOPNOTSUPP));
        }
        let mut xflags = XattrFlags::empty();
        if flags & libc::XATTR_CREATE != 0 {
            xflags |= XattrFlags::CREATE;
        }
        if flags & libc::XATTR_REPLACE != 0 {
            xflags |= XattrFlags::REPLACE;
        }
        let _guard = upper.lock();
        let node = self.node(ino)?;
        let up = self.copy_up(&node, true)?;
        let (dir, n) = self.upper_target(upper, up)?;
        let path = upper::xattr_path(dir.as_fd(), &n)?;
        rustix::fs::lsetxattr(path.as_c_str(), name, value, xflags)?;
        Ok(())
    }

    pub fn removexattr(&self, ino: Ino, name: &OsStr) -> io::Result<()> {
        let upper = self.writable()?;
        if is_private_xattr(name) {
            return Err(errno(libc::EOPNOTSUPP));
        }
        let _guard = upper.lock();
        let node = self.node(ino)?;
        // Removing what is not there changes nothing and copies nothing up.
        let top = node.top();
        if self.layer(top).get_xattr(top.node, name)?.is_none() {
            return Err(errno(libc::ENODATA));
        }
        let up = self.copy_up(&node, true)?;
        let (dir, n) = self.upper_target(upper, up)?;
        let path = upper::xattr_path(dir.as_fd(), &n)?;
        rustix::fs::lremovexattr(path.as_c_str(), name)?;
        Ok(())
    }

    /// Removes `name` from the upper of `dir` (leaving a whiteout if a lower still has it),
    /// or hides a lower-only name with a whiteout.
    fn remove_name(&self, upper: &Upper, dir: &Node, name: &OsStr, r: &Resolved) -> io::Result<()> {
        let need_whiteout = self.lower_has(dir, name)?;
        let dir_up = self.upper_dir(dir)?;
        let dir_fd = upper.dir_layer().dir_handle(dir_up)?;
        self.name_going(dir, name, r);
        if r.layers[0].layer == 0 {
            let last_link = rustix::fs::statat(&*dir_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .filter(|st| r.kind == Kind::Dir || st.st_nlink <= 1);
            if need_whiteout {
                upper.whiteout_over(dir_fd.as_fd(), name)?;
            } else if r.kind == Kind::Dir {
                upper.remove(dir_fd.as_fd(), name)?;
            } else {
                rustix::fs::unlinkat(&*dir_fd, name, AtFlags::empty())?;
            }
            if let Some(st) = last_link {
                self.upper_object_gone(upper, st.st_ino);
            }
            upper.dir_layer().forget_name(dir_up, name);
        } else {
            upper::make_whiteout(dir_fd.as_fd(), name)?;
        }
        dir.invalidate_listing();
        Ok(())
    }

    /// The upper object with raw inode number `raw` goes away (its last link is removed or
    /// replaced). The filesystem may give the number to a new object at once (ext4 does):
    /// that object must inherit neither the old one's origin nor the `st_ino` of a node the
    /// kernel still holds (an unlinked file not yet forgotten). Else the kernel would find its
    /// inode under a new object, often of another type, and fail every access to it with
    /// `EIO` ("bad inode"), or reach the old node's stale layer objects.
    pub(super) fn upper_object_gone(&self, upper: &Upper, raw: u64) {
        let plain = super::node::st_ino(0, raw);
        if self.nodes.get(plain).is_some() {
            upper.retire(plain);
        } else {
            upper.clear_origin(plain);
        }
    }

    /// `name` in `dir` (resolved to `r`) is about to be removed or replaced. A live node of a
    /// hard-linked file that the kernel knows by that name moves to another of its names,
    /// else it would lose its file while the kernel still shows it under the others.
    pub(super) fn name_going(&self, dir: &Node, name: &OsStr, r: &Resolved) {
        let Some(node) = self.nodes.get(r.ino).filter(|n| n.kind != Kind::Dir) else {
            return;
        };
        let others = node.links_but(dir.ino, name);
        let place = node.place();
        if place.parent != dir.ino || place.name.as_deref() != Some(name) {
            return;
        }
        for other in others {
            let (Some(pdir), Some(pname)) = (self.nodes.get(other.parent), other.name) else {
                continue;
            };
            if let Ok((found, _)) = self.resolve(&pdir, &pname, 0)
                && found.ino == r.ino
            {
                node.set_layers(found.layers);
                node.set_place(pdir.ino, &pname);
                return;
            }
        }
    }

    pub fn unlink(&self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let upper = self.writable()?;
        let _guard = upper.lock();
        let dir = self.dir_node(parent)?;
        let (r, _) = self.peek(&dir, name)?.ok_or_else(|| errno(libc::ENOENT))?;
        if r.kind == Kind::Dir {
            return Err(errno(libc::EISDIR));
        }
        self.remove_name(upper, &dir, name, &r)
    }

    /// Removes a merged directory that shows no names (else `ENOTEMPTY`); its upper
    /// directory goes with the whiteouts it holds.
    pub fn rmdir(&self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let upper = self.writable()?;
        let _guard = upper.lock();
        let dir = self.dir_node(parent)?;
        let (r, _) = self.peek(&dir, name)?.ok_or_else(|| errno(libc::ENOENT))?;
        if r.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        if !self.merged_empty(&r.layers)? {
            return Err(errno(libc::ENOTEMPTY));
        }
        self.remove_name(upper, &dir, name, &r)
    }
}

/// True if an object owned by `uid`:`gid` is what the daemon creates anyway.
fn is_daemon(uid: u32, gid: u32) -> bool {
    rustix::process::geteuid().as_raw() == uid && rustix::process::getegid().as_raw() == gid
}

/// The default ACL of the upper directory `dir`, if it has one (one the upper's filesystem
/// cannot read counts as none).
fn default_acl(upper: &Upper, dir: NodeId) -> Option<Vec<u8>> {
    upper
        .dir_layer()
        .get_xattr(dir, OsStr::new(acl::DEFAULT))
        .unwrap_or_else(|e| {
            debug!("default ACL of upper directory {dir:?}: {e}");
            None
        })
}

/// Creates the empty regular file `name` in the upper directory `dir` in place, as overlayfs
/// does, when the daemon's owner is the caller's: no work-directory staging and rename, and
/// no owner to set, so nothing can be seen half made (a crash leaves at most an empty file
/// with the caller's owner, never one owned by someone else). `None` if something (a
/// whiteout) is at `name`: the caller then stages the file in the work directory.
fn create_in_place(dir: BorrowedFd<'_>, name: &OsStr, perm: u32) -> io::Result<Option<OwnedFd>> {
    let flags = OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::CREATE | OFlags::EXCL | OFlags::RDWR;
    let mode = Mode::from_raw_mode(perm);
    let fd = match rustix::fs::openat(dir, name, flags, mode) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The daemon's umask may have taken bits the caller's left.
    if let Err(e) = rustix::fs::fchmod(&fd, mode) {
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        return Err(e.into());
    }
    Ok(Some(fd))
}
