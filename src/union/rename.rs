//! rename(2) in the merged tree, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`: of files
//! (copied up first), of upper-only directories, and of directories with lower content, which
//! are first replaced by an opaque upper copy of their whole tree (`dircopy.rs`, where the
//! choice of a copy over overlayfs's redirect xattr is explained) and then move as one upper
//! directory.
//!
//! Where a lower layer still has the old name, the rename leaves a whiteout there in the
//! same step (`RENAME_WHITEOUT`, or a whiteout made right after where the filesystem lacks
//! it). A directory moved into a merged directory, or over a lower name, is made opaque, as
//! overlayfs does (`ovl_rename`). A merged-empty directory being replaced is first swapped
//! for an empty opaque one (its whiteouts would make rename(2) fail with `ENOTEMPTY`), which
//! the merged view cannot tell apart.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, RenameFlags};
use rustix::io::Errno;

use super::copyup::check_name;
use super::node::{Node, Resolved};
use super::upper;
use super::write::{RENAME_EXCHANGE, RENAME_NOREPLACE};
use super::{Ino, Union, errno};
use crate::layer::Kind;

impl Union {
    /// rename(2) with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`.
    pub fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        flags: u32,
    ) -> io::Result<()> {
        let upper = self.writable()?;
        check_name(newname)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(errno(libc::EINVAL));
        }
        let _guard = upper.lock();
        let dir = self.dir_node(parent)?;
        let newdir = self.dir_node(newparent)?;
        let (src, _) = self.peek(&dir, name)?.ok_or_else(|| errno(libc::ENOENT))?;
        let dst = self.peek(&newdir, newname)?.map(|(r, _)| r);
        if parent == newparent && name == newname {
            return Ok(());
        }
        let src_node = self.node_for(&src, &dir, name)?;
        if flags & RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or_else(|| errno(libc::ENOENT))?;
            let dst_node = self.node_for(&dst, &newdir, newname)?;
            // A directory with lower content becomes an opaque upper copy of its tree first
            // (dircopy.rs); then both are upper objects and one exchange swaps them.
            self.copy_up_tree(&src_node, &dir, name)?;
            self.copy_up_tree(&dst_node, &newdir, newname)?;
            self.copy_up(&src_node, true)?;
            self.copy_up(&dst_node, true)?;
            let (d1, d2) = (self.upper_dir(&dir)?, self.upper_dir(&newdir)?);
            let up = upper.dir_layer();
            let (f1, f2) = (up.dir_handle(d1)?, up.dir_handle(d2)?);
            // A directory going where a lower has the name must not merge with it. Where it
            // is now, no lower directory merges with it (else it would have been copied as
            // an opaque tree), so marking it first changes nothing there.
            if src.kind == Kind::Dir && self.lower_has(&newdir, newname)? {
                upper::set_opaque(f1.as_fd(), name.as_encoded_bytes())?;
            }
            if dst.kind == Kind::Dir && self.lower_has(&dir, name)? {
                upper::set_opaque(f2.as_fd(), newname.as_encoded_bytes())?;
            }
            rustix::fs::renameat_with(&*f1, name, &*f2, newname, RenameFlags::EXCHANGE)?;
            up.forget_name(d1, name);
            up.forget_name(d2, newname);
            dir.invalidate_listing();
            newdir.invalidate_listing();
            self.refresh(&src_node, &dir, name, &newdir, newname);
            self.refresh(&dst_node, &newdir, newname, &dir, name);
            for node in [&src_node, &dst_node] {
                if node.kind == Kind::Dir {
                    node.invalidate_listing();
                    self.refresh_below(node);
                }
            }
            return Ok(());
        }
        if let Some(dst) = &dst {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(errno(libc::EEXIST));
            }
            match (src.kind == Kind::Dir, dst.kind == Kind::Dir) {
                (true, false) => return Err(errno(libc::ENOTDIR)),
                (false, true) => return Err(errno(libc::EISDIR)),
                (true, true) if !self.merged_empty(&dst.layers)? => {
                    return Err(errno(libc::ENOTEMPTY));
                }
                _ => {}
            }
        }
        // A directory with lower content becomes an opaque upper copy of its tree first
        // (dircopy.rs), which then moves as one upper directory.
        self.copy_up_tree(&src_node, &dir, name)?;
        self.copy_up(&src_node, true)?;
        let src_dir_up = self.upper_dir(&dir)?;
        let dst_dir_up = self.upper_dir(&newdir)?;
        let up = upper.dir_layer();
        let sfd = up.dir_handle(src_dir_up)?;
        let dfd = up.dir_handle(dst_dir_up)?;
        let whiteout_old = self.lower_has(&dir, name)?;
        // Like overlayfs (ovl_rename): a directory moved into a merged directory is made
        // opaque, so no lower directory of the same name can ever merge into it.
        if src.kind == Kind::Dir
            && (newdir.layers().len() > 1 || self.lower_has(&newdir, newname)?)
        {
            upper::set_opaque(sfd.as_fd(), name.as_encoded_bytes())?;
        }
        let dst_in_upper = match rustix::fs::statat(&*dfd, newname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(e.into()),
        };
        match &dst_in_upper {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                // Merged-empty, but it may hold whiteouts, which rename(2) will not replace:
                // swap in an empty opaque directory first (the merged view shows the same),
                // then the rename replaces that in one step.
                self.empty_in_place(upper, dfd.as_fd(), newname, st)?;
            }
            _ => {}
        }
        let dir_over_whiteout =
            src.kind == Kind::Dir && dst_in_upper.as_ref().is_some_and(upper::is_whiteout);
        if dir_over_whiteout {
            // rename(2) puts no directory over a device: swap, then the whiteout left at
            // the old name stays if it is needed there.
            rustix::fs::renameat_with(&*sfd, name, &*dfd, newname, RenameFlags::EXCHANGE)?;
            if !whiteout_old {
                rustix::fs::unlinkat(&*sfd, name, AtFlags::empty())?;
            }
        } else {
            let mut rflags = RenameFlags::empty();
            if dst_in_upper.is_none() {
                rflags |= RenameFlags::NOREPLACE;
            }
            if whiteout_old {
                rflags |= RenameFlags::WHITEOUT;
            }
            match rustix::fs::renameat_with(&*sfd, name, &*dfd, newname, rflags) {
                Err(Errno::INVAL) if whiteout_old => {
                    // No RENAME_WHITEOUT on this filesystem: rename, then whiteout.
                    rflags.remove(RenameFlags::WHITEOUT);
                    rustix::fs::renameat_with(&*sfd, name, &*dfd, newname, rflags)?;
                    upper::make_whiteout(sfd.as_fd(), name)?;
                }
                r => r?,
            }
        }
        if let Some(dst) = &dst {
            self.name_going(&newdir, newname, dst);
        }
        // The object that had the new name is gone (a directory was swapped out above).
        if let Some(st) = &dst_in_upper
            && !upper::is_whiteout(st)
            && (FileType::from_raw_mode(st.st_mode) == FileType::Directory || st.st_nlink <= 1)
        {
            self.upper_object_gone(upper, st.st_ino);
        }
        up.move_name(src_dir_up, name, dst_dir_up, newname)?;
        dir.invalidate_listing();
        newdir.invalidate_listing();
        self.refresh(&src_node, &dir, name, &newdir, newname);
        Ok(())
    }

    /// Replaces the upper directory `name` in `dir` (merged-empty, with `st` its stat) by an
    /// empty opaque directory with its owner and mode, in one exchange.
    fn empty_in_place(
        &self,
        upper: &upper::Upper,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &rustix::fs::Stat,
    ) -> io::Result<()> {
        let work = upper.work();
        let temp = upper.temp_name();
        let staged = (|| -> io::Result<()> {
            rustix::fs::mkdirat(work, &*temp, Mode::from_raw_mode(0o700))?;
            upper::chown_built(rustix::fs::chownat(
                work,
                &*temp,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            ))?;
            let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
            rustix::fs::chmodat(work, &*temp, mode, AtFlags::empty())?;
            upper::set_opaque(work, temp.as_bytes())?;
            rustix::fs::renameat_with(work, &*temp, dir, name, RenameFlags::EXCHANGE)?;
            Ok(())
        })();
        // The old directory with its whiteouts (or the staged one, on failure).
        let _ = upper::remove_at(work, &temp);
        staged
    }

    /// The live node of a resolved name (the kernel looked it up before asking to change
    /// it), with its place set to that name, so a copy-up copies this name.
    fn node_for(&self, r: &Resolved, dir: &Node, name: &OsStr) -> io::Result<Arc<Node>> {
        let node = self.node(r.ino)?;
        if node.top().layer != 0 {
            node.set_place(dir.ino, name);
        }
        Ok(node)
    }

    /// After a move, `node`'s name `from` in `from_dir` is `name` in `dir`: its place, or
    /// one of its hard links (see [`Node::moved`]).
    fn refresh(&self, node: &Node, from_dir: &Node, from: &OsStr, dir: &Node, name: &OsStr) {
        if node.moved(from_dir.ino, from, dir.ino, name)
            && let Ok((r, _)) = self.resolve(dir, name, 0)
        {
            node.set_layers(r.layers);
        }
    }
}
