//! Copy-up: the first change to a lower object makes a complete copy of it in the upper.
//!
//! Parent directories first (each with its mode, owner, times and xattrs, created top-down
//! where missing), then the object itself, built in the work directory — data cloned
//! (FICLONE) or copied with `copy_file_range` segment by segment between `SEEK_DATA` and
//! `SEEK_HOLE` so holes stay holes; tar layers' data through `FileData::read_at`, with
//! all-zero blocks left as holes — then owner, mode, xattrs (but overlay-private ones) and
//! times, and finally renamed into place without replacing anything. So the upper's visible
//! names only ever hold no copy or a complete one. As overlayfs does, the parent's times are
//! put back afterwards: a copy-up is not a change of the directory.
//!
//! Hard links of a lower file are not kept together: copying one name up breaks the link
//! (as kernel overlayfs does without `index=on`).

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use log::debug;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, SeekFrom, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::node::{self, LayerRef, Node};
use super::upper::{self, Upper};
use super::{Union, errno};
use crate::layer::whiteout::is_private_xattr;
use crate::layer::{Attr, FileData, Kind, Layer, NodeId, Timespec};

/// Block size for copying data that has no backing file (tar layers).
const COPY_CHUNK: usize = 1 << 20;

impl Union {
    pub(super) fn writable(&self) -> io::Result<&Upper> {
        self.upper.as_ref().ok_or_else(|| errno(libc::EROFS))
    }

    /// The upper node id of directory `node`, copying it (and missing parents) up first.
    pub(super) fn upper_dir(&self, node: &Node) -> io::Result<NodeId> {
        if node.kind != Kind::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        self.copy_up(node, false)
    }

    /// Makes sure `node` has its topmost object in the upper and returns that object's node
    /// id there. `with_data`: copy a regular file's data (not when it is about to be
    /// truncated to zero anyway). The caller holds the upper's write lock.
    pub(super) fn copy_up(&self, node: &Node, with_data: bool) -> io::Result<NodeId> {
        let upper = self.writable()?;
        let layers = node.layers();
        let src = layers[0];
        if src.layer == 0 {
            return Ok(src.node);
        }
        let place = node.place();
        // The root always has the upper's root on top, so a node below the upper has a name.
        let name = place.name.ok_or_else(|| errno(libc::EIO))?;
        let parent = self.node(place.parent)?;
        let parent_up = self.upper_dir(&parent)?;
        let up = upper.dir_layer();
        let parent_fd = up.dir_handle(parent_up)?;
        let parent_times = rustix::fs::fstat(&*parent_fd).ok();

        let attr = self.layer(src).attr(src.node)?;
        let temp = upper.temp_name();
        if let Err(e) = self.build_copy(src, &attr, upper.work(), &temp, with_data) {
            let _ = upper::remove_at(upper.work(), &temp);
            return Err(e);
        }
        upper.place(&temp, parent_fd.as_fd(), &name)?;
        if let Some(st) = parent_times {
            restore_times(parent_fd.as_fd(), &st);
        }
        let entry = up
            .lookup(parent_up, &name)?
            .ok_or_else(|| errno(libc::EIO))?;
        upper.set_origin(node::st_ino(0, entry.attr.ino), self.nodes.st_ino(node));
        let mut new_layers = vec![LayerRef {
            layer: 0,
            node: entry.node,
        }];
        if node.kind == Kind::Dir {
            new_layers.extend(layers.iter().copied());
            node.invalidate_listing();
        }
        node.set_layers(new_layers);
        // The parent's listing said which layer has the name; it is now the upper.
        parent.invalidate_listing();
        Ok(entry.node)
    }

    /// Builds a copy of the layer object `src` as `temp` in the work directory.
    pub(super) fn build_copy(
        &self,
        src: LayerRef,
        attr: &Attr,
        work: BorrowedFd<'_>,
        temp: &CStr,
        with_data: bool,
    ) -> io::Result<()> {
        let layer = self.layer(src);
        let flags = OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let opened: Option<OwnedFd> = match attr.kind {
            Kind::File => {
                let fd = rustix::fs::openat(
                    work,
                    temp,
                    flags | OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
                    Mode::from_raw_mode(0o600),
                )?;
                let out = File::from(fd);
                if with_data {
                    let data = layer.open(src.node)?;
                    copy_data(&*data, &out, attr.size)?;
                }
                Some(out.into())
            }
            Kind::Dir => {
                rustix::fs::mkdirat(work, temp, Mode::from_raw_mode(0o700))?;
                Some(upper::open_dir_at(work, temp)?)
            }
            Kind::Symlink => {
                let target = layer.readlink(src.node)?;
                rustix::fs::symlinkat(target.as_slice(), work, temp)?;
                None
            }
            Kind::CharDev | Kind::BlockDev | Kind::Fifo | Kind::Socket => {
                let ft = match attr.kind {
                    Kind::CharDev => FileType::CharacterDevice,
                    Kind::BlockDev => FileType::BlockDevice,
                    Kind::Fifo => FileType::Fifo,
                    _ => FileType::Socket,
                };
                rustix::fs::mknodat(work, temp, ft, Mode::from_raw_mode(0o600), attr.rdev)?;
                None
            }
            Kind::Whiteout => return Err(errno(libc::EINVAL)),
        };
        set_owner_mode(work, temp, opened.as_ref(), attr.kind, attr)?;
        for name in layer.list_xattrs(src.node)? {
            if is_private_xattr(&name) {
                continue;
            }
            let Some(value) = layer.get_xattr(src.node, &name)? else {
                continue;
            };
            set_xattr(work, temp.to_bytes(), opened.as_ref(), &name, &value)?;
        }
        let times = Timestamps {
            last_access: ts(attr.atime),
            last_modification: ts(attr.mtime),
        };
        match &opened {
            Some(fd) => rustix::fs::futimens(fd, &times)?,
            None => rustix::fs::utimensat(work, temp, &times, AtFlags::SYMLINK_NOFOLLOW)?,
        }
        Ok(())
    }
}

/// Owner first (chown clears set-id bits), then the mode (a symlink has none to set).
pub(super) fn set_owner_mode(
    dir: BorrowedFd<'_>,
    name: &CStr,
    fd: Option<&OwnedFd>,
    kind: Kind,
    attr: &Attr,
) -> io::Result<()> {
    let uid = Some(rustix::fs::Uid::from_raw(attr.uid));
    let gid = Some(rustix::fs::Gid::from_raw(attr.gid));
    let mode = Mode::from_raw_mode(attr.perm & 0o7777);
    match fd {
        Some(fd) => {
            upper::chown_built(rustix::fs::fchown(fd, uid, gid))?;
            rustix::fs::fchmod(fd, mode)?;
        }
        None => {
            upper::chown_built(rustix::fs::chownat(
                dir,
                name,
                uid,
                gid,
                AtFlags::SYMLINK_NOFOLLOW,
            ))?;
            if kind != Kind::Symlink {
                rustix::fs::chmodat(dir, name, mode, AtFlags::empty())?;
            }
        }
    }
    Ok(())
}

/// Sets one xattr on the object being built. A namespace the upper's filesystem does not take
/// (e.g. `user.*` on a symlink) is skipped, as overlayfs skips what it cannot copy.
pub(super) fn set_xattr(
    dir: BorrowedFd<'_>,
    name: &[u8],
    fd: Option<&OwnedFd>,
    key: &OsStr,
    value: &[u8],
) -> io::Result<()> {
    let res = match fd {
        Some(fd) => rustix::fs::fsetxattr(fd, key, value, XattrFlags::empty()),
        None => {
            let path = upper::xattr_path(dir, name)?;
            rustix::fs::lsetxattr(path.as_c_str(), key, value, XattrFlags::empty())
        }
    };
    match res {
        Ok(()) => Ok(()),
        Err(e @ (Errno::NOTSUP | Errno::PERM)) => {
            debug!("copy-up: xattr {key:?} not copied: {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn ts(t: Timespec) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec) as _,
    }
}

/// Best effort, like overlayfs: the times of a directory that a copy-up renamed into.
pub(super) fn restore_times(dir: BorrowedFd<'_>, st: &rustix::fs::Stat) {
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    let _ = rustix::fs::utimensat(dir, c"", &times, AtFlags::EMPTY_PATH);
}

/// Copies `size` bytes of `data` into the empty file `out`, keeping holes.
pub(super) fn copy_data(data: &dyn FileData, out: &File, size: u64) -> io::Result<()> {
    if let Some(src) = data.backing_file() {
        // A reflink shares the blocks (btrfs, xfs); ext4 and tmpfs say EOPNOTSUPP/EINVAL.
        if rustix::fs::ioctl_ficlone(out, src).is_ok() {
            return Ok(());
        }
        let mut off = 0u64;
        while off < size {
            let start = match rustix::fs::seek(src, SeekFrom::Data(off)) {
                Ok(s) => s,
                Err(Errno::NXIO) => break,
                // No SEEK_DATA here: the whole rest is data.
                Err(Errno::INVAL) => off,
                Err(e) => return Err(e.into()),
            };
            let end = match rustix::fs::seek(src, SeekFrom::Hole(start)) {
                Ok(e) => e.min(size),
                Err(_) => size,
            };
            copy_range(src, out, start, end)?;
            off = end.max(start + 1);
        }
    } else {
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut off = 0u64;
        while off < size {
            let want = usize::try_from(size - off).map_or(COPY_CHUNK, |r| r.min(COPY_CHUNK));
            let n = data.read_at(&mut buf[..want], off)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], off)?;
            }
            off += n as u64;
        }
    }
    rustix::fs::ftruncate(out, size)?;
    Ok(())
}

/// Copies bytes `start..end` from `src` to the same offsets of `out`: `copy_file_range`, or
/// read and write where the kernel cannot (across filesystems on old kernels).
fn copy_range(src: &File, out: &File, start: u64, end: u64) -> io::Result<()> {
    let mut off = start;
    while off < end {
        let (mut i, mut o) = (off, off);
        let len = usize::try_from(end - off).unwrap_or(usize::MAX);
        match rustix::fs::copy_file_range(src, Some(&mut i), out, Some(&mut o), len) {
            Ok(0) => return Ok(()),
            Ok(n) => off += n as u64,
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                let mut buf = vec![0u8; COPY_CHUNK];
                while off < end {
                    let want = usize::try_from(end - off).map_or(COPY_CHUNK, |r| r.min(COPY_CHUNK));
                    let n = src.read_at(&mut buf[..want], off)?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.write_all_at(&buf[..n], off)?;
                    off += n as u64;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `name` names a directory entry a user may create (not `.`, `..`, nor with `/`).
pub(super) fn check_name(name: &OsStr) -> io::Result<()> {
    if name.len() > 255 {
        return Err(errno(libc::ENAMETOOLONG));
    }
    if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
        return Err(errno(libc::EINVAL));
    }
    Ok(())
}
