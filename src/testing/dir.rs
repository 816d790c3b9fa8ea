//! The two directory forms of a layer description: overlayfs's (character device 0/0
//! whiteouts, opaque xattr) and OCI markers (`.wh.` files).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};

use super::{Entry, Form, Kind};

fn mknod(p: &Path, kind: FileType, major: u32, minor: u32) -> io::Result<()> {
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(CWD, p, kind, Mode::empty(), dev).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mknod {}: {e}", p.display()),
        )
    })
}

fn set_times_nofollow(p: &Path, (secs, nsecs): (i64, u32)) -> io::Result<()> {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nsecs.into(),
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("utimensat {}: {e}", p.display()),
        )
    })
}

/// Names the path an error is about.
fn at(p: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

pub(super) fn write(dest: &Path, form: Form, entries: &[Entry]) -> io::Result<()> {
    fs::create_dir(dest)?;
    let root = super::is_root();
    // Entries whose metadata is set afterwards (hard links share their target's).
    let mut owned: Vec<(PathBuf, &Entry)> = Vec::new();
    for e in entries {
        let p = if e.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&e.path)
        };
        match &e.kind {
            Kind::Dir if e.path.is_empty() => {}
            Kind::Dir => fs::create_dir(&p).map_err(at(&p))?,
            Kind::Opaque => {
                if !e.path.is_empty() {
                    fs::create_dir(&p).map_err(at(&p))?;
                }
                if form == Form::OverlayDir {
                    // Without root, `trusted.` is refused: write what overlayfs's
                    // `userxattr` mode (and our own layers) read instead.
                    let name = if root {
                        "trusted.overlay.opaque"
                    } else {
                        "user.overlay.opaque"
                    };
                    rustix::fs::lsetxattr(&p, name, b"y", XattrFlags::empty())
                        .map_err(|e| at(&p)(e.into()))?;
                } else {
                    let marker = p.join(".wh..wh..opq");
                    fs::write(&marker, b"").map_err(at(&marker))?;
                    owned.push((marker, e));
                }
            }
            Kind::File(data) => fs::write(&p, data).map_err(at(&p))?,
            Kind::Symlink(target) => symlink(target, &p).map_err(at(&p))?,
            Kind::Hardlink(target) => {
                fs::hard_link(dest.join(target), &p).map_err(at(&p))?;
                continue;
            }
            Kind::Whiteout => match form {
                Form::OverlayDir => mknod(&p, FileType::CharacterDevice, 0, 0)?,
                _ => {
                    let name = p.file_name().unwrap_or_default().as_bytes();
                    let mut marker_name = b".wh.".to_vec();
                    marker_name.extend_from_slice(name);
                    let marker = p.with_file_name(std::ffi::OsStr::from_bytes(&marker_name));
                    fs::write(&marker, b"").map_err(at(&marker))?;
                    owned.push((marker, e));
                    continue;
                }
            },
            Kind::Fifo => mknod(&p, FileType::Fifo, 0, 0)?,
            Kind::CharDev(ma, mi) => mknod(&p, FileType::CharacterDevice, *ma, *mi)?,
            Kind::BlockDev(ma, mi) => mknod(&p, FileType::BlockDevice, *ma, *mi)?,
        }
        owned.push((p, e));
    }
    for (p, e) in &owned {
        if p.file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            // OCI markers: plain empty files of the writer, whatever the entry says.
            continue;
        }
        // Unset owners are 0:0 as root and the writer's own otherwise.
        let owner = e.owner.or(root.then_some((0, 0)));
        if let Some((uid, gid)) = owner {
            rustix::fs::chownat(
                CWD,
                p,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|err| at(p)(err.into()))?;
        }
        if !matches!(e.kind, Kind::Symlink(_)) {
            // After chown, which clears setuid and setgid.
            fs::set_permissions(p, fs::Permissions::from_mode(e.effective_mode()))
                .map_err(at(p))?;
        }
        for (k, v) in &e.xattrs {
            rustix::fs::lsetxattr(p, k.as_str(), v, XattrFlags::empty()).map_err(|err| {
                io::Error::new(
                    io::Error::from(err).kind(),
                    format!("{}: xattr {k}: {err}", p.display()),
                )
            })?;
        }
    }
    // Times last and deepest first: creating an entry changes its parent's mtime.
    owned.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, e) in &owned {
        set_times_nofollow(p, e.mtime)?;
    }
    Ok(())
}
