//! rename(2) in the merged tree: of files (copied up first) and of directories that live
//! only in the upper, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`.
//!
//! Where a lower layer still has the old name, the rename leaves a whiteout there in the
//! same step (`RENAME_WHITEOUT`, or a whiteout made right after where the filesystem lacks
//! it). A directory moved into a merged directory, or over a lower name, is made opaque, as
//! overlayfs does (`ovl_rename`).
//!
//! Not yet: a directory with lower content (merged, or lower-only) gives `EXDEV`, as
//! kernel overlayfs does without `redirect_dir`, and `mv` falls back to copying; exchanging
//! directories gives `EXDEV` too. Replacing a merged-empty upper directory first removes the
//! whiteouts in it, which is not atomic.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, RenameFlags};
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
            if src.kind == Kind::Dir || dst.kind == Kind::Dir {
                return Err(errno(libc::EXDEV));
            }
            let dst_node = self.node_for(&dst, &newdir, newname)?;
            self.copy_up(&src_node, true)?;
            self.copy_up(&dst_node, true)?;
            let (d1, d2) = (self.upper_dir(&dir)?, self.upper_dir(&newdir)?);
            let up = upper.dir_layer();
            let (f1, f2) = (up.dir_handle(d1)?, up.dir_handle(d2)?);
            rustix::fs::renameat_with(&*f1, name, &*f2, newname, RenameFlags::EXCHANGE)?;
            up.forget_name(d1, name);
            up.forget_name(d2, newname);
            dir.invalidate_listing();
            newdir.invalidate_listing();
            self.refresh(&src_node, &newdir, newname);
            self.refresh(&dst_node, &dir, name);
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
        if src.kind == Kind::Dir && (src.layers.len() > 1 || src.layers[0].layer != 0) {
            // A directory with lower content would need overlayfs's redirect xattr or a
            // full copy; like overlayfs without redirect_dir, let the caller copy.
            return Err(errno(libc::EXDEV));
        }
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
                // Merged-empty: only whiteouts inside. Not atomic (the lower names show
                // again for a moment); a later change replaces the directory in one step.
                let d = upper::open_dir_at(
                    dfd.as_fd(),
                    &std::ffi::CString::new(newname.as_encoded_bytes())
                        .map_err(|_| errno(libc::EINVAL))?,
                )?;
                upper::clear_whiteouts(d.as_fd())?;
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
        up.move_name(src_dir_up, name, dst_dir_up, newname)?;
        dir.invalidate_listing();
        newdir.invalidate_listing();
        self.refresh(&src_node, &newdir, newname);
        Ok(())
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

    /// After a move, `node` is `name` in `dir`.
    fn refresh(&self, node: &Node, dir: &Node, name: &OsStr) {
        node.set_place(dir.ino, name);
        if let Ok((r, _)) = self.resolve(dir, name, 0) {
            node.set_layers(r.layers);
        }
    }
}
