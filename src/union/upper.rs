//! The writable upper directory and its work directory, in kernel overlayfs's own format.
//!
//! Every write goes through descriptors: `*at` calls relative to a directory of the upper
//! (an `O_PATH` descriptor from the upper's [`DirLayer`]) or of the work directory, never a
//! path string that a symlink in the upper could redirect. A new object is built complete in
//! the work directory (same filesystem) and then renamed into place in one step, so the
//! upper's visible names only ever show a complete object (overlayfs does the same,
//! Documentation/filesystems/overlayfs.rst, "Non-directories" / copy up). Whiteouts are
//! character devices 0/0 and opaque directories carry `trusted.overlay.opaque=y`, so kernel
//! overlayfs mounts an upper written here as it is, and the reverse.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, XattrFlags};
use rustix::io::Errno;

use crate::layer::Layer;
use crate::layer::dir::DirLayer;

/// The xattr overlayfs reads to tell an opaque directory.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same marker in the `user.` namespace, written when `trusted.` is not allowed.
pub const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The name overlayfs gives its staging directory inside the work directory.
const WORK_SUBDIR: &str = "work";

/// The upper and work directories of a writable union.
pub struct Upper {
    layer: Arc<DirLayer>,
    /// The same layer, as the union's layer 0.
    as_layer: Arc<dyn Layer>,
    /// `WORKDIR/work`, where objects are staged before their rename into the upper.
    work: OwnedFd,
    next_temp: AtomicU64,
    /// Copied-up objects: the `st_ino` the upper object would have → the one it keeps.
    origins: RwLock<HashMap<u64, u64>>,
    /// Numbers handed out by [`Upper::retire`].
    next_retired: AtomicU64,
    /// Writes are serialised: each is a few syscalls, and one at a time keeps the merged
    /// listings and the node table consistent without finer locks.
    writes: Mutex<()>,
}

impl Upper {
    /// Opens `upper` and `work` (checked by the caller: directories on one filesystem, neither
    /// inside the other) and removes what an earlier mount left staged in the work directory.
    pub fn open(upper: &Path, work: &Path) -> io::Result<Upper> {
        let layer = Arc::new(DirLayer::open(upper)?);
        let work_root = rustix::fs::open(
            work,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        match rustix::fs::mkdirat(&work_root, WORK_SUBDIR, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let work = open_dir_at(work_root.as_fd(), c"work")?;
        clean_dir(work.as_fd())?;
        Ok(Upper {
            as_layer: layer.clone(),
            layer,
            work,
            next_temp: AtomicU64::new(1),
            origins: RwLock::new(HashMap::new()),
            next_retired: AtomicU64::new(0),
            writes: Mutex::new(()),
        })
    }

    pub fn layer(&self) -> &Arc<dyn Layer> {
        &self.as_layer
    }

    pub fn dir_layer(&self) -> &DirLayer {
        &self.layer
    }

    pub fn work(&self) -> BorrowedFd<'_> {
        self.work.as_fd()
    }

    /// Holds off other writes until dropped.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock()
    }

    /// A fresh name in the work directory.
    pub fn temp_name(&self) -> CString {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let name = format!("#um.{}.{n}", std::process::id());
        CString::new(name).unwrap_or_default()
    }

    /// Remembers that the upper object with `upper_st_ino` stands for `st_ino`.
    pub fn set_origin(&self, upper_st_ino: u64, st_ino: u64) {
        if upper_st_ino != st_ino {
            self.origins.write().insert(upper_st_ino, st_ino);
        }
    }

    pub fn clear_origin(&self, upper_st_ino: u64) {
        self.origins.write().remove(&upper_st_ino);
    }

    /// The upper object with `upper_st_ino` is gone, but the number may live on as the
    /// `st_ino` of a node (a directory whose tree copy replaced it shows its old number).
    /// The filesystem will hand the raw inode number to some new object; that object is
    /// given a number of its own instead, so it can never alias the live node.
    pub fn retire(&self, upper_st_ino: u64) {
        let n = self.next_retired.fetch_add(1, Ordering::Relaxed);
        self.origins
            .write()
            .insert(upper_st_ino, super::node::retired_st_ino(n));
    }

    pub fn origin_of(&self, upper_st_ino: u64) -> Option<u64> {
        let origins = self.origins.read();
        if origins.is_empty() {
            return None;
        }
        origins.get(&upper_st_ino).copied()
    }

    /// Moves the object staged as `temp` in the work directory to `name` in `dir`: a plain
    /// no-replace rename if the name is free, an exchange with a whiteout there (which is
    /// then removed from the work directory). Anything else at `name` is `EEXIST`. On failure
    /// the staged object is removed.
    pub fn place(&self, temp: &CStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let res = self.place_inner(temp, dir, name);
        if res.is_err() {
            let _ = remove_at(self.work(), temp);
        }
        res
    }

    fn place_inner(&self, temp: &CStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let work = self.work();
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => {
                rustix::fs::renameat_with(work, temp, dir, name, RenameFlags::NOREPLACE)?;
            }
            Ok(st) if is_whiteout(&st) => {
                rustix::fs::renameat_with(work, temp, dir, name, RenameFlags::EXCHANGE)?;
                // The whiteout now sits at `temp`.
                rustix::fs::unlinkat(work, temp, AtFlags::empty())?;
            }
            Ok(_) => return Err(Errno::EXIST.into()),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Replaces the upper object `name` in `dir` by a whiteout in one step (an exchange with
    /// a whiteout staged in the work directory), then removes the old object.
    pub fn whiteout_over(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let temp = self.temp_name();
        make_whiteout(self.work(), &temp)?;
        if let Err(e) =
            rustix::fs::renameat_with(self.work(), &temp, dir, name, RenameFlags::EXCHANGE)
        {
            let _ = remove_at(self.work(), &temp);
            return Err(e.into());
        }
        remove_at(self.work(), &temp)
    }

    /// Removes the upper object `name` in `dir` (a directory with everything in it, which
    /// for a merged-empty directory is only whiteouts): moved to the work directory first, so
    /// it disappears from the upper in one step.
    pub fn remove(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let temp = self.temp_name();
        rustix::fs::renameat_with(dir, name, self.work(), &temp, RenameFlags::NOREPLACE)?;
        remove_at(self.work(), &temp)
    }
}

pub fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Creates an overlayfs whiteout (character device 0/0) `name` in `dir`.
pub fn make_whiteout(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> io::Result<()> {
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}

/// Opens directory `name` in `dir` for reading and `f*` calls, without following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// A path for the `l*xattr` calls naming `name` in `dir` through `/proc/self/fd`: the last
/// component is not followed, and no path of the upper is spelled out.
pub fn xattr_path(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Marks directory `name` in `dir` opaque for overlayfs.
pub fn set_opaque(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let path = xattr_path(dir, name)?;
    match rustix::fs::lsetxattr(path.as_c_str(), OPAQUE_XATTR, b"y", XattrFlags::empty()) {
        // Without CAP_SYS_ADMIN: the kernel's `userxattr` form, which unprivileged overlayfs
        // mounts (and our own layers) read.
        Err(Errno::PERM) => rustix::fs::lsetxattr(
            path.as_c_str(),
            USER_OPAQUE_XATTR,
            b"y",
            XattrFlags::empty(),
        )?,
        other => other?,
    }
    Ok(())
}

/// `chown` of an object the daemon builds (a copy-up, a new file for a caller): an
/// unprivileged daemon cannot give files away, and then keeps them its own, as
/// fuse-overlayfs and rootless overlayfs do. As root a failure is an error.
pub fn chown_built(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Err(Errno::PERM) if !rustix::process::geteuid().is_root() => Ok(()),
        other => Ok(other?),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory (never following a symlink).
pub fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let sub = open_dir_at(dir, name)?;
    clean_dir(sub.as_fd())?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// Removes everything inside directory `dir`.
pub fn clean_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = Vec::new();
    let fd = open_dir_at(dir, c".")?;
    let mut reader = rustix::fs::Dir::read_from(&fd)?;
    while let Some(item) = reader.read() {
        let item = item?;
        let name = item.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        remove_at(dir, &name)?;
    }
    Ok(())
}

/// True if `dir` holds nothing but overlayfs whiteouts.
pub fn only_whiteouts(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let fd = open_dir_at(dir, c".")?;
    let mut reader = rustix::fs::Dir::read_from(&fd)?;
    while let Some(item) = reader.read() {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if !is_whiteout(&st) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks that `upper` and `work` can serve as the upper and work directories: existing
/// directories on one filesystem (the staged object is renamed from one into the other),
/// neither inside the other. The message is one line naming the option.
pub fn check_dirs(upper: &Path, work: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = |key: &str, p: &Path| -> Result<(std::fs::Metadata, std::path::PathBuf), String> {
        let m = std::fs::metadata(p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("{key}={}: does not exist", p.display()),
            _ => format!("{key}={}: {e}", p.display()),
        })?;
        if !m.is_dir() {
            return Err(format!("{key}={}: not a directory", p.display()));
        }
        let abs = std::fs::canonicalize(p).map_err(|e| format!("{key}={}: {e}", p.display()))?;
        Ok((m, abs))
    };
    let (um, ua) = meta("upperdir", upper)?;
    let (wm, wa) = meta("workdir", work)?;
    if um.dev() != wm.dev() {
        return Err(format!(
            "upperdir={} and workdir={} must be on the same filesystem",
            upper.display(),
            work.display()
        ));
    }
    if ua.starts_with(&wa) || wa.starts_with(&ua) {
        return Err(format!(
            "upperdir={} and workdir={} must not be inside one another",
            upper.display(),
            work.display()
        ));
    }
    Ok(())
}
