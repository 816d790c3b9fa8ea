//! The writable upper, differentially: the same lower layers with a fresh upper each, the same
//! operations through kernel overlayfs (the oracle) and through unionmount, then the merged
//! trees AND the upper directories compared; and interchangeability: an upper written by one
//! is mounted by the other and shows the same tree. Directory renames, which the kernel
//! refuses with `EXDEV` unless mounted with `redirect_dir`, are checked against the same
//! operations on a plain copy of the merged tree instead, and the upper they leave against
//! the kernel mounting it with default options.
//!
//! Accepted differences, each checked to be the only ones:
//! - the mtimes of objects an operation changed (the two mounts run at different moments);
//! - whiteouts in the upper: the kernel makes one whiteout inode and hard-links it for each
//!   name (`nlink` > 1), unionmount makes one device per name; and their mtimes are the
//!   moment of the deletion;
//! - `trusted.overlay.*` xattrs other than `opaque` in the upper (the kernel records
//!   `origin`, `impure`... for its own inode bookkeeping; the snapshot leaves them all out,
//!   and opaque is compared separately).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Two lower layers, bottom first.
fn lowers() -> Vec<Vec<Entry>> {
    vec![
        vec![
            root().mtime(1_600_000_000, 0),
            file("etc/passwd", "root:x:0:0::/root:/bin/sh\n").mtime(1_600_000_001, 5),
            file("etc/motd", "base motd\n"),
            file("etc/hostname", "hostname\n"),
            file("etc/shadow", "secret\n").mode(0o640).owner(0, 42),
            file("etc/old", "old name\n"),
            file("etc/a", "a\n"),
            file("etc/b", "b\n"),
            file("etc/owned", "o\n"),
            file("etc/timed", "t\n"),
            file("etc/x1", "one\n"),
            file("etc/x2", "two\n"),
            file("etc/xf", "x\n")
                .xattr("user.old", "1")
                .xattr("user.keep", "2"),
            file("usr/bin/tool", "#!/bin/sh\n").mode(0o755),
            dir_("usr/share").mtime(1_500_000_000, 42),
            file("usr/share/doc/deep/README", "deep\n"),
            file("var/cache/a", "a\n"),
            file("var/cache/sub/b", "b\n"),
            dir_("opt/empty").mtime(1_400_000_000, 0),
            file("opt/full/f", "f\n"),
            dir_("moved").mtime(1_400_000_000, 0),
        ],
        vec![
            dir_("etc").mtime(1_600_000_100, 0),
            file("etc/motd", "upper layer motd\n"),
            file("var/cache/c", "c\n"),
            whiteout("etc/hostname.gone"),
            file("opt/full/g", "g\n"),
        ],
    ]
}

/// The operations, each on `root` (a mount point). Paths whose mtime necessarily differs
/// between two runs are returned.
fn operate(root: &Path) -> Vec<&'static str> {
    let p = |rel: &str| root.join(rel);
    // create, in the root and in a lower directory
    fs::write(p("new.txt"), "new file\n").unwrap();
    fs::write(p("etc/new.conf"), "conf\n").unwrap();
    // write over a lower file (O_TRUNC), append to one, truncate one
    fs::write(p("etc/motd"), "replaced\n").unwrap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(p("etc/passwd"))
        .unwrap();
    f.write_all(b"user:x:1000:1000::/home/user:/bin/sh\n")
        .unwrap();
    drop(f);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(p("etc/hostname"))
        .unwrap();
    f.set_len(4).unwrap();
    drop(f);
    // a deep file: every parent is copied up with its attributes
    let f = fs::OpenOptions::new()
        .write(true)
        .open(p("usr/share/doc/deep/README"))
        .unwrap();
    f.write_all_at(b"D", 0).unwrap();
    drop(f);
    // chmod, chown, utimes
    fs::set_permissions(p("usr/bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(p("etc/owned"), Some(1000), Some(1000)).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_234_567_890, 123_456_789);
    fs::File::options()
        .write(true)
        .open(p("etc/timed"))
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
    // xattrs
    xattr_set(&p("etc/xf"), "user.new", b"yes");
    xattr_remove(&p("etc/xf"), "user.old");
    // unlink of lower files, rmdir of lower dirs, rm -r of a merged dir, mkdir over it
    fs::remove_file(p("etc/shadow")).unwrap();
    fs::remove_dir(p("opt/empty")).unwrap();
    assert_eq!(
        errno_of("rmdir opt/full", fs::remove_dir(p("opt/full"))),
        libc::ENOTEMPTY
    );
    fs::remove_dir_all(p("var/cache")).unwrap();
    fs::create_dir(p("var/cache")).unwrap();
    fs::write(p("var/cache/fresh"), "fresh\n").unwrap();
    // renames: lower file, upper file, over an existing lower file
    fs::rename(p("etc/old"), p("etc/renamed")).unwrap();
    fs::rename(p("new.txt"), p("etc/new2.txt")).unwrap();
    fs::rename(p("etc/a"), p("etc/b")).unwrap();
    // renameat2: exchange two lower files; no-replace refuses an existing name
    renameat2(&p("etc/x1"), &p("etc/x2"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(
        errno_of(
            "rename noreplace",
            renameat2(&p("etc/x1"), &p("etc/b"), libc::RENAME_NOREPLACE)
        ),
        libc::EEXIST
    );
    renameat2(&p("etc/x1"), &p("etc/x3"), libc::RENAME_NOREPLACE).unwrap();
    // symlink, hard link of a lower file, fifo
    std::os::unix::fs::symlink("etc/passwd", p("link")).unwrap();
    fs::hard_link(p("etc/passwd"), p("etc/passwd.hard")).unwrap();
    // a second name of a lower file, renamed and then removed: the first still reaches it
    fs::hard_link(p("usr/bin/tool"), p("usr/bin/tool.tmp")).unwrap();
    fs::rename(p("usr/bin/tool.tmp"), p("usr/bin/tool.moved")).unwrap();
    fs::remove_file(p("usr/bin/tool.moved")).unwrap();
    assert_eq!(
        fs::read_to_string(p("usr/bin/tool")).expect("the first name, once its link went"),
        "#!/bin/sh\n"
    );
    mkfifo(&p("fifo"));
    // an upper-only directory tree, renamed
    fs::create_dir_all(p("newdir/sub")).unwrap();
    fs::write(p("newdir/sub/f"), "in new dir\n").unwrap();
    fs::rename(p("newdir"), p("newdir2")).unwrap();
    // errors the kernel gives too
    assert_eq!(
        errno_of(
            "create existing",
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p("etc/motd"))
        ),
        libc::EEXIST
    );
    assert_eq!(
        errno_of("unlink dir", fs::remove_file(p("etc"))),
        libc::EISDIR
    );
    vec![
        "",
        "etc",
        "etc/new.conf",
        "etc/motd",
        "etc/passwd",
        "etc/passwd.hard",
        "etc/hostname",
        "usr/share/doc/deep/README",
        "usr/bin",
        "var",
        "var/cache",
        "var/cache/fresh",
        "opt",
        "link",
        "fifo",
        "etc/new2.txt",
        "newdir2",
        "newdir2/sub",
        "newdir2/sub/f",
    ]
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid NUL-terminated paths; AT_FDCWD for both directories.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn cpath(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn xattr_set(p: &Path, name: &str, value: &[u8]) {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn xattr_remove(p: &Path, name: &str) {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    assert_eq!(
        rc,
        0,
        "removexattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// `trusted.overlay.opaque` of every directory under `root`, by relative path.
fn opaque_dirs(root: &Path) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let snap = snapshot(root);
    for (rel, node) in &snap.nodes {
        if node.kind == 'd' {
            let p = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let opaque = raw_xattr(&p, "trusted.overlay.opaque").is_some_and(|v| v == b"y");
            out.insert(rel.clone(), opaque);
        }
    }
    out
}

fn raw_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let (c, n) = (cpath(p), std::ffi::CString::new(name).unwrap());
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// A snapshot of an upper directory with whiteouts reduced to what both implementations must
/// agree on: a character device 0/0 of that name (see the module comment).
fn upper_snapshot(upper: &Path) -> Snapshot {
    let mut snap = snapshot(upper);
    let mut whiteouts = std::collections::BTreeSet::new();
    for (rel, node) in snap.nodes.iter_mut() {
        if node.kind == 'c' && node.rdev == Some((0, 0)) {
            node.nlink = None;
            node.mtime = (0, 0);
            node.ino = 0;
            whiteouts.insert(rel.clone());
        }
    }
    snap.hardlinks
        .retain(|g| !g.iter().all(|p| whiteouts.contains(p)));
    snap
}

fn ignoring_mtime(paths: &[&str]) -> Exclusions {
    Exclusions {
        ignore_mtime: paths.iter().map(|s| s.to_string()).collect(),
        ..Exclusions::default()
    }
}

/// Upper and work directories under `tmp` named after `who`.
fn upper_work(tmp: &Path, who: &str) -> (PathBuf, PathBuf) {
    let (u, w) = (
        tmp.join(format!("{who}-upper")),
        tmp.join(format!("{who}-work")),
    );
    fs::create_dir(&u).unwrap();
    fs::create_dir(&w).unwrap();
    (u, w)
}

#[test]
fn operations_match_kernel_overlayfs_in_merged_tree_and_upper() {
    compare_with_kernel(Form::OverlayDir);
}

/// Copy-up from tar layers reads the data through the layer's reader.
#[test]
fn operations_on_tar_lowers_match_kernel_overlayfs() {
    compare_with_kernel(Form::Tar);
}

/// The kernel works on directory lowers; unionmount on lowers of `form`.
fn compare_with_kernel(form: Form) {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &lowers());
    let ours = match form {
        Form::OverlayDir => lower.clone(),
        _ => write_stack(tmp.path(), form, &lowers()),
    };
    let (ku, kw) = upper_work(tmp.path(), "kernel");
    let (uu, uw) = upper_work(tmp.path(), "union");

    let kernel = KernelOverlay::with_upper(&lower, &ku, &kw, &mountpoint(tmp.path(), "kmnt"));
    let changed = operate(kernel.path());
    let expected = snapshot(kernel.path());
    drop(kernel);

    let um = UnionMount::with_upper(&ours, &uu, &uw, &mountpoint(tmp.path(), "umnt"));
    operate(um.path());
    let actual = snapshot(um.path());
    let ex = ignoring_mtime(&changed);
    assert_same_tree("merged tree after the operations", &expected, &actual, &ex);
    um.unmount_and_wait();

    assert_same_tree(
        "upper directory",
        &upper_snapshot(&ku),
        &upper_snapshot(&uu),
        &ex,
    );
    assert_eq!(
        opaque_dirs(&ku),
        opaque_dirs(&uu),
        "opaque directories in the upper"
    );
    // Nothing was left staged in the work directory.
    assert!(names_of(&uw.join("work")).is_empty(), "work dir not empty");
    // The lowers are untouched.
    let fresh = tempfile::tempdir().unwrap();
    let again = write_stack(fresh.path(), Form::OverlayDir, &lowers());
    for (a, b) in lower.iter().zip(&again) {
        assert_same_tree(
            "lower layer",
            &snapshot(b),
            &snapshot(a),
            &Exclusions::default(),
        );
    }
}

#[test]
fn uppers_are_interchangeable_with_kernel_overlayfs() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &lowers());

    // Written by unionmount, read by the kernel.
    let (uu, uw) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&lower, &uu, &uw, &mountpoint(tmp.path(), "umnt"));
    operate(um.path());
    let written = snapshot(um.path());
    um.unmount_and_wait();
    let kernel = KernelOverlay::with_upper(&lower, &uu, &uw, &mountpoint(tmp.path(), "kread"));
    assert_same_tree(
        "unionmount's upper mounted by the kernel",
        &written,
        &snapshot(kernel.path()),
        &Exclusions::default(),
    );
    drop(kernel);

    // Written by the kernel, read by unionmount (whose mount also cleans the kernel's work).
    let (ku, kw) = upper_work(tmp.path(), "kernel");
    let kernel = KernelOverlay::with_upper(&lower, &ku, &kw, &mountpoint(tmp.path(), "kmnt"));
    operate(kernel.path());
    let written = snapshot(kernel.path());
    drop(kernel);
    let um = UnionMount::with_upper(&lower, &ku, &kw, &mountpoint(tmp.path(), "uread"));
    assert_same_tree(
        "the kernel's upper mounted by unionmount",
        &written,
        &snapshot(um.path()),
        &Exclusions::default(),
    );
}

#[test]
fn copy_up_keeps_holes_and_inode_numbers() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &[vec![file("small", "s")]]);
    // A 64 MiB file with 4 KiB of data at each end.
    let sparse = lower[0].join("sparse");
    let f = fs::File::create(&sparse).unwrap();
    f.write_all_at(&[1u8; 4096], 0).unwrap();
    f.write_all_at(&[2u8; 4096], (64 << 20) - 4096).unwrap();
    drop(f);
    let (u, w) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&lower, &u, &w, &mountpoint(tmp.path(), "umnt"));
    let before = fs::symlink_metadata(um.join("sparse")).unwrap();
    let open = fs::File::open(um.join("sparse")).unwrap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(um.join("sparse"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    use std::os::unix::fs::MetadataExt;
    let after = fs::symlink_metadata(um.join("sparse")).unwrap();
    assert_eq!(after.len(), (64 << 20) + 1);
    assert_eq!(before.ino(), after.ino(), "st_ino changes at copy-up");
    assert_eq!(open.metadata().unwrap().ino(), after.ino());
    let up = fs::symlink_metadata(u.join("sparse")).unwrap();
    assert!(
        up.blocks() * 512 < 1 << 20,
        "holes not kept: {} blocks",
        up.blocks()
    );
    let mut buf = [0u8; 3];
    let f = fs::File::open(um.join("sparse")).unwrap();
    f.read_exact_at(&mut buf, (64 << 20) - 2).unwrap();
    assert_eq!(buf, [2, 2, b'!']);
    // `ls` right after the change shows the new size and the same names.
    assert_eq!(names_of(um.path()).len(), 2);
}

/// copy_file_range(2) inside a writable mount, from a directory lower, a tar lower and an
/// upper file, with offsets and short counts: the daemon copies (the kernel offloads it to us
/// rather than moving the data through FUSE reads and writes); the bytes must be the source's.
#[test]
fn copy_file_range_copies_from_every_kind_of_source() {
    if !root_or_skip() {
        return;
    }
    let big: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for form in [Form::OverlayDir, Form::Tar] {
        let tmp = tempfile::tempdir().unwrap();
        let lower = write_stack(tmp.path(), form, &[vec![file("src", &big)]]);
        let (u, w) = upper_work(tmp.path(), "union");
        let um = UnionMount::with_upper(&lower, &u, &w, &mountpoint(tmp.path(), "umnt"));
        let copy = |from: &Path, to: &Path, off_in: i64, off_out: i64, len: usize| {
            let src = fs::File::open(from).unwrap();
            let dst = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(to)
                .unwrap();
            let (mut oi, mut oo, mut left) = (off_in, off_out, len);
            while left > 0 {
                use std::os::fd::AsRawFd;
                // SAFETY: both descriptors are open and the offsets are valid pointers.
                let n = unsafe {
                    libc::copy_file_range(
                        src.as_raw_fd(),
                        &mut oi,
                        dst.as_raw_fd(),
                        &mut oo,
                        left,
                        0,
                    )
                };
                assert!(
                    n > 0,
                    "{form:?}: copy_file_range: {}",
                    std::io::Error::last_os_error()
                );
                left -= n as usize;
            }
        };
        copy(&um.join("src"), &um.join("whole"), 0, 0, big.len());
        assert_eq!(
            fs::read_to_string(um.join("whole")).unwrap(),
            big,
            "{form:?}"
        );
        // A middle range into the middle of an upper file.
        fs::write(um.join("part"), vec![b'-'; 1000]).unwrap();
        copy(&um.join("whole"), &um.join("part"), 250_000, 100, 500);
        let part = fs::read(um.join("part")).unwrap();
        assert_eq!(&part[..100], &[b'-'; 100][..]);
        assert_eq!(&part[100..600], &big.as_bytes()[250_000..250_500]);
        assert_eq!(&part[600..], &[b'-'; 400][..]);
        // The lower file is untouched and not copied up by being read.
        assert!(
            !u.join("src").exists(),
            "{form:?}: reading copied the source up"
        );
        assert_eq!(fs::read(u.join("whole")).unwrap(), big.as_bytes());
    }
}

#[test]
fn without_an_upper_writes_are_refused_with_erofs() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &[vec![file("f", "f")]]);
    let um = UnionMount::lowerdir(&lower, &mountpoint(tmp.path(), "umnt"));
    assert_eq!(
        errno_of("create", fs::write(um.join("g"), "g")),
        libc::EROFS
    );
    assert_eq!(
        errno_of(
            "open for write",
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(0)
                .open(um.join("f"))
        ),
        libc::EROFS
    );
    assert_eq!(
        errno_of("unlink", fs::remove_file(um.join("f"))),
        libc::EROFS
    );
}

/// Lowers for directory renames, bottom first: lower-only trees, a merged one, directories to
/// exchange, and targets that are empty in the merged view.
fn dir_lowers() -> Vec<Vec<Entry>> {
    vec![
        vec![
            root().mtime(1_600_000_000, 0),
            dir_("moved").mtime(1_500_000_000, 1).mode(0o750),
            file("moved/a", "a\n").xattr("user.tag", "moved"),
            file("moved/sub/b", "b\n").mode(0o600).owner(7, 8),
            dir_("moved/sub/deep").mtime(1_500_000_000, 2),
            file("moved/sub/deep/c", "c\n"),
            symlink("moved/sub/link", "../a"),
            fifo("moved/sub/fifo"),
            file("moved/hl1", "linked\n"),
            hardlink("moved/sub/hl2", "moved/hl1"),
            file("merged/x", "x\n"),
            file("merged/d/y", "y\n"),
            file("swap1/one", "1\n"),
            file("swap2/two", "2\n"),
            file("swapd/inner", "inner\n"),
            file("swapf", "a file\n"),
            dir_("empty_target").mtime(1_400_000_000, 0),
            file("fullish/f", "f\n"),
            file("other/keep", "keep\n"),
        ],
        vec![
            file("merged/z", "z\n"),
            file("merged/d/w", "w\n"),
            whiteout("merged/x"),
            file("swap2/two.b", "2b\n"),
        ],
    ]
}

/// Directory renames the kernel refuses with `EXDEV` (without redirect_dir) and unionmount
/// does, on `root` (a mount point or a plain copy of the merged tree). Returns the paths
/// whose mtime the operations set to "now".
fn operate_dirs(root: &Path) -> Vec<&'static str> {
    let p = |rel: &str| root.join(rel);
    // Upper content in a merged directory, then the whole directory moved.
    fs::write(p("merged/new_upper"), "new\n").unwrap();
    fs::remove_file(p("merged/d/w")).unwrap();
    fs::rename(p("moved"), p("moved2")).unwrap();
    fs::rename(p("merged"), p("moved2/merged_in")).unwrap();
    // The old name used again: a fresh directory where a lower one was.
    fs::create_dir(p("moved")).unwrap();
    fs::write(p("moved/fresh"), "fresh\n").unwrap();
    // Exchanges: two lower directories, and a lower directory with a lower file.
    renameat2(&p("swap1"), &p("swap2"), libc::RENAME_EXCHANGE).unwrap();
    renameat2(&p("swapd"), &p("swapf"), libc::RENAME_EXCHANGE).unwrap();
    // Over a lower empty directory, and over one that is empty only in the merged view.
    fs::rename(p("moved2/sub"), p("empty_target")).unwrap();
    fs::remove_file(p("fullish/f")).unwrap();
    fs::rename(p("other"), p("fullish")).unwrap();
    // No-replace refuses an existing directory; a non-empty target is refused.
    assert_eq!(
        errno_of(
            "rename noreplace",
            renameat2(&p("swap1"), &p("swap2"), libc::RENAME_NOREPLACE)
        ),
        libc::EEXIST
    );
    assert_eq!(
        errno_of("rename over full", fs::rename(p("swap1"), p("swap2"))),
        libc::ENOTEMPTY
    );
    // Data written after the move goes to the moved file.
    fs::write(p("empty_target/deep/c"), "c changed\n").unwrap();
    vec![
        "",
        "moved",
        "moved/fresh",
        "moved2",
        "moved2/merged_in",
        "moved2/merged_in/new_upper",
        "moved2/merged_in/d",
        "empty_target/deep/c",
    ]
}

#[test]
fn directory_renames_match_a_plain_copy_and_stay_kernel_mountable() {
    rename_directories(Form::OverlayDir);
}

/// The tree copy reads tar layers through their reader, hard links included.
#[test]
fn directory_renames_on_tar_lowers_match_a_plain_copy() {
    rename_directories(Form::Tar);
}

/// The oracle for directory renames: the same operations on a plain copy of the merged tree
/// (made with `cp -a` from a read-only kernel overlay mount of the lowers). unionmount works
/// on lowers of `form`.
fn rename_directories(form: Form) {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &dir_lowers());
    let ours = match form {
        Form::OverlayDir => lower.clone(),
        _ => write_stack(tmp.path(), form, &dir_lowers()),
    };
    let plain = tmp.path().join("plain");
    {
        let ro = KernelOverlay::mount(&lower, &mountpoint(tmp.path(), "kro"));
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(ro.path())
            .arg(&plain)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp -a: {out:?}");
    }
    let changed = operate_dirs(&plain);
    let expected = snapshot(&plain);
    assert!(
        !expected.hardlinks.is_empty(),
        "the oracle lost the hard link"
    );

    let (uu, uw) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&ours, &uu, &uw, &mountpoint(tmp.path(), "umnt"));
    operate_dirs(um.path());
    let actual = snapshot(um.path());
    um.unmount_and_wait();
    assert_same_tree(
        "merged tree after directory renames",
        &expected,
        &actual,
        &ignoring_mtime(&changed),
    );
    // The old names are whiteouts, the moved copies opaque, the work directory empty.
    let upper = upper_snapshot(&uu);
    for gone in ["merged", "other"] {
        assert_eq!(upper.nodes[gone].kind, 'c', "{gone} is no whiteout");
    }
    let opaque = opaque_dirs(&uu);
    for dir in ["moved", "moved2", "swap1", "swap2", "swapf", "empty_target"] {
        assert!(opaque[dir], "{dir} is not opaque in the upper");
    }
    assert!(names_of(&uw.join("work")).is_empty(), "work dir not empty");

    // Kernel overlayfs with its default options shows the same tree from this upper.
    let kernel = KernelOverlay::with_upper(&lower, &uu, &uw, &mountpoint(tmp.path(), "kread"));
    assert_same_tree(
        "unionmount's upper after directory renames, mounted by the kernel",
        &actual,
        &snapshot(kernel.path()),
        &Exclusions::default(),
    );
}

/// A hard link keeps its file when the name the mount first knew it by is renamed and
/// removed, or removed and the directory holding the link renamed (found by
/// tests/upper_random.rs: the node kept pointing at the gone name, so reading the link
/// failed with `ENOENT`).
#[test]
fn hard_link_survives_removal_of_the_first_name() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(
        tmp.path(),
        Form::OverlayDir,
        &[vec![
            file("a/y", "y\n"),
            file("a/z", "z\n"),
            dir_("a/d"),
            file("b/keep", "k\n"),
        ]],
    );
    let (u, w) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&lower, &u, &w, &mountpoint(tmp.path(), "umnt"));
    let p = |rel: &str| um.join(rel);
    // Renamed, then removed: the link made first still reads.
    fs::hard_link(p("a/y"), p("a/d/x")).unwrap();
    fs::rename(p("a/y"), p("c")).unwrap();
    fs::remove_file(p("c")).unwrap();
    assert_eq!(fs::read_to_string(p("a/d/x")).unwrap(), "y\n");
    // Removed, then the directory holding the link moved (a tree copy).
    fs::hard_link(p("a/z"), p("b/z")).unwrap();
    fs::remove_file(p("a/z")).unwrap();
    fs::rename(p("b"), p("e")).unwrap();
    assert_eq!(fs::read_to_string(p("e/z")).unwrap(), "z\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::symlink_metadata(p("e/z")).unwrap().nlink(), 1);
}

/// A file unlinked while open stays readable and `fstat`-able through its descriptor, as on
/// kernel overlayfs: an upper file, and a lower file opened before its whiteout was made.
#[test]
fn open_files_survive_unlink() {
    if !root_or_skip() {
        return;
    }
    use std::io::{Read, Seek};
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let lower = write_stack(tmp.path(), Form::OverlayDir, &[vec![file("l", "lower\n")]]);
    let (u, w) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&lower, &u, &w, &mountpoint(tmp.path(), "umnt"));
    fs::write(um.join("f"), "upper\n").unwrap();
    for (name, content) in [("f", "upper\n"), ("l", "lower\n")] {
        let mut open = fs::File::open(um.join(name)).unwrap();
        let ino = open.metadata().unwrap().ino();
        fs::remove_file(um.join(name)).unwrap();
        assert!(
            fs::symlink_metadata(um.join(name)).is_err(),
            "{name} is gone"
        );
        // Past the 1 s attribute TTL, so the kernel asks the daemon again.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let meta = open
            .metadata()
            .unwrap_or_else(|e| panic!("fstat of unlinked {name}: {e}"));
        assert_eq!(meta.len(), content.len() as u64, "{name}");
        assert_eq!(meta.ino(), ino, "{name}");
        let mut got = String::new();
        open.rewind().unwrap();
        open.read_to_string(&mut got)
            .unwrap_or_else(|e| panic!("read of unlinked {name}: {e}"));
        assert_eq!(got, content, "{name}");
    }
}

/// copy_file_range(2) inside a writable mount copies (coreutils `cp` uses it first): the
/// daemon does not offload it, and must say so in the way that makes the kernel fall back.
#[test]
fn copy_file_range_inside_a_writable_mount_copies() {
    if !root_or_skip() {
        return;
    }
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let lower = write_stack(
        tmp.path(),
        Form::OverlayDir,
        &[vec![file("src", std::str::from_utf8(&[b'x'; 10]).unwrap())]],
    );
    let (u, w) = upper_work(tmp.path(), "union");
    let um = UnionMount::with_upper(&lower, &u, &w, &mountpoint(tmp.path(), "umnt"));
    fs::write(um.join("big"), &data).unwrap();
    for from in ["big", "src"] {
        let src = fs::File::open(um.join(from)).unwrap();
        let dst = fs::File::create(um.join(&format!("{from}.copy"))).unwrap();
        let len = src.metadata().unwrap().len() as usize;
        let mut done = 0;
        while done < len {
            // SAFETY: two open descriptors, null offsets (use and advance the file offsets).
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    std::ptr::null_mut(),
                    dst.as_raw_fd(),
                    std::ptr::null_mut(),
                    len - done,
                    0,
                )
            };
            assert!(
                n > 0,
                "copy_file_range of {from}: {}",
                std::io::Error::last_os_error()
            );
            done += n as usize;
        }
        assert_eq!(
            fs::read(um.join(&format!("{from}.copy"))).unwrap(),
            fs::read(um.join(from)).unwrap()
        );
    }
}
