//! Differential tests: the same layers through kernel overlayfs (the oracle) and through
//! unionmount, compared as full tree snapshots; plus readdir, read-only, statfs, inode and
//! concurrency checks on a unionmount mount.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const MIB: usize = 1 << 20;

/// A `security.capability` value (vfs_cap_data revision 2, effective, CAP_NET_RAW permitted),
/// as `setcap cap_net_raw+ep` writes it; the kernel validates the format.
fn net_raw_capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted[1]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[1]
    v
}

/// Three layers, bottom first, covering the cases the union has to get right.
fn stack() -> Vec<Vec<Entry>> {
    let mut base = vec![
        root().mtime(1_600_000_100, 0),
        file("etc/os-release", "ID=demo\n"),
        file("etc/motd", "base motd\n"),
        file("etc/hostname", "base\n"),
        file("etc/empty", ""),
        file("etc/passwd", "root:x:0:0::/root:/bin/sh\n").mtime(1_600_000_000, 123_456_789),
        file("etc/shadow", "root:*:1::::::\n").mode(0o640).owner(0, 42),
        file("etc/nomode", "unreadable for non-root\n").mode(0o000),
        file("etc/xattr-file", "x\n").xattr("user.k", "v").xattr("user.bin", [0u8, 1, 255, 10]),
        dir_("opt").xattr("user.dir", "1").mtime(1_500_000_000, 999_999_999),
        // A file that becomes a directory, and a directory that becomes a file, one layer up.
        file("ftd", "file to dir\n"),
        file("dtf/inside", "dir to file\n"),
        // Whiteout targets.
        file("gone_file", "bye\n"),
        file("gone_dir/sub/a", "a\n"),
        dir_("gone_dir/empty"),
        // Made opaque one layer up.
        file("var/cache/a", "cache a\n"),
        file("var/cache/sub/b", "cache b\n"),
        file("var/log/syslog", "log\n"),
        // Nested merges.
        file("usr/share/doc/a/README", "a readme base\n"),
        file("usr/share/doc/b/README", "b readme\n"),
        // Symlinks: relative, absolute (dangling here), dangling relative, to a directory.
        symlink("bin", "usr/bin"),
        symlink("usr/bin/sh", "/bin/bash"),
        symlink("dangling", "nowhere/at/all"),
        symlink("etc-link", "etc"),
        // A hardlink group of three; one member is replaced one layer up.
        file("usr/bin/a", "#!/bin/sh\necho a\n").mode(0o755),
        hardlink("usr/bin/a2", "usr/bin/a"),
        hardlink("usr/bin/a3", "usr/bin/a"),
        file("usr/bin/su", "suid\n").mode(0o4755),
        file("usr/bin/wall", "sgid\n").mode(0o2755).owner(0, 5),
        file("usr/bin/ping", "cap\n").mode(0o755).xattr("security.capability", net_raw_capability()),
        dir_("tmp").mode(0o1777),
        dir_("home/user").mode(0o700).owner(1000, 1000),
        file("home/user/.profile", "PS1='$ '\n").owner(1000, 1000).mtime(1_650_000_000, 1),
        fifo("run/initctl").mode(0o600),
        chardev("dev/null", 1, 3).mode(0o666),
        chardev("dev/tty1", 4, 1).mode(0o620).owner(0, 5),
        blockdev("dev/loop0", 7, 0).mode(0o660).owner(0, 6),
        file("data/big.bin", pseudo_random(MIB, 7)),
        // A directory replaced by a symlink one layer up.
        file("lib/libc.so", "elf\n"),
        dir_("srv/www"),
        file("srv/www/index.html", "<html>\n"),
    ];
    for i in 0..5000 {
        base.push(file(&format!("data/many/f{i:04}"), format!("{i}\n")));
    }

    let mut middle = vec![
        root().mtime(1_600_000_200, 0).mode(0o751),
        file("etc/motd", "middle motd\n").mode(0o600).owner(5, 6).mtime(1_600_000_300, 42),
        file("etc/xattr-file", "x2\n").xattr("user.other", "only this"),
        whiteout("etc/hostname"),
        whiteout("etc/does-not-exist-below"),
        dir_("ftd").mode(0o750),
        file("ftd/inner", "now a dir\n"),
        file("dtf", "now a file\n"),
        whiteout("gone_file"),
        whiteout("gone_dir"),
        opaque("var/cache").mtime(1_600_000_400, 500),
        file("var/cache/x", "fresh\n"),
        file("var/log/messages", "more log\n"),
        file("usr/share/doc/a/README", "a readme middle\n"),
        file("usr/share/doc/c/README", "c readme\n"),
        file("usr/bin/a3", "replaced\n"),
        symlink("lib", "usr/lib"),
        file("opt/app/bin/app", "#!/bin/sh\n").mode(0o755),
        file("opt/app/lib/libapp.so", "lib\n"),
    ];
    for i in 1000..1100 {
        middle.push(file(&format!("data/many/f{i:04}"), format!("middle {i}\n")));
    }

    let mut top = vec![
        root().mtime(1_600_000_300, 7),
        file("etc/hostname", "top\n"),
        file("var/cache/y", "above the opaque dir\n"),
        file("usr/share/doc/a/NEWS", "news\n"),
        // Opaque over a merged directory, and an empty opaque directory.
        opaque("srv"),
        file("srv/only", "only this\n"),
        opaque("opt/app"),
    ];
    for i in 0..50 {
        top.push(whiteout(&format!("data/many/f{i:04}")));
    }
    for i in 0..100 {
        top.push(file(&format!("data/many/g{i:04}"), ""));
    }
    vec![base, middle, top]
}

/// Between kernel overlayfs and unionmount, directory `st_size` is left out: overlayfs reports
/// the size of the topmost real directory (4096 on ext4), a FUSE filesystem whatever it
/// synthesises, and neither is meaningful for a merged directory. Directory `st_nlink` is not
/// in the snapshot at all (overlayfs reports 1 for merged directories). Everything else —
/// kind, mode, uid, gid, mtime with nanoseconds, contents, link targets, rdev, xattrs, nlink
/// of non-directories, hardlink groups — must match, also for tar layers: the tar writer
/// emits the root (`./`) and every parent directory explicitly with the same attributes as
/// the directory form, so no directory of that stack is synthesised.
fn kernel_exclusions() -> Exclusions {
    Exclusions::default()
}

struct Fixture {
    // Fields drop in order: the mounts go before the directory holding them.
    kernel: KernelOverlay,
    tmp: TempDir,
}

/// The overlayfs-style stack mounted by the kernel, in a fresh temp dir.
fn kernel_fixture(layers: &[Vec<Entry>]) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = write_stack(tmp.path(), Form::OverlayDir, layers);
    let kernel = KernelOverlay::mount(&dirs, &mountpoint(tmp.path(), "kernel"));
    Fixture { kernel, tmp }
}

fn compare_with_kernel(form: Form) {
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), form, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    let expected = snapshot(fx.kernel.path());
    let actual = snapshot(um.path());
    assert_same_tree(&format!("{form:?} layers vs kernel overlayfs"), &expected, &actual, &kernel_exclusions());
}

/// The oracle itself sees what the description says: a check of the harness, so that the
/// differential tests below compare trees that really contain the cases they claim to.
#[test]
fn harness_kernel_overlay_shows_the_described_cases() {
    if !root_or_skip() {
        return;
    }
    let fx = kernel_fixture(&stack());
    let s = snapshot(fx.kernel.path());
    let n = |p: &str| s.nodes.get(p).unwrap_or_else(|| panic!("{p} missing from kernel tree"));
    let read = |p: &str| std::fs::read_to_string(fx.kernel.path().join(p)).expect(p);
    assert_eq!(read("etc/motd"), "middle motd\n");
    assert_eq!(read("etc/hostname"), "top\n");
    for gone in ["gone_file", "gone_dir", "var/cache/a", "var/cache/sub", "srv/www", "opt/app/bin"] {
        assert!(!s.nodes.contains_key(gone), "{gone} should be hidden");
    }
    assert!(s.nodes.contains_key("var/cache/x") && s.nodes.contains_key("var/cache/y"));
    assert_eq!(n("ftd").kind, 'd');
    assert_eq!(n("dtf").kind, 'f');
    assert_eq!(n("lib").kind, 'l');
    assert_eq!(n("usr/bin/su").mode, 0o4755);
    assert_eq!(n("tmp").mode, 0o1777);
    assert_eq!(n("etc/passwd").mtime, (1_600_000_000, 123_456_789));
    assert_eq!(n("dev/null").rdev, Some((1, 3)));
    assert_eq!(n("etc/xattr-file").xattrs.get("user.other").map(Vec::as_slice), Some(&b"only this"[..]));
    assert!(n("usr/bin/ping").xattrs.contains_key("security.capability"));
    assert_eq!(n("").mode, 0o755);
    assert_eq!(n("").mtime, (1_600_000_300, 7));
    let group: BTreeSet<String> = ["usr/bin/a", "usr/bin/a2"].map(String::from).into();
    assert!(s.hardlinks.contains(&group), "hardlink groups: {:?}", s.hardlinks);
    let many = s.nodes.keys().filter(|p| p.starts_with("data/many/")).count();
    assert_eq!(many, 5000 - 50 + 100);
    assert_eq!(n("data/big.bin").size, MIB as u64);
}

#[test]
fn overlay_dir_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::OverlayDir);
}

/// Directory layers with OCI markers (as containers/storage leaves them) read like the
/// overlayfs-style ones do through the kernel.
#[test]
fn oci_dir_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::OciDir);
}

#[test]
fn tar_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::Tar);
}

/// One stack mixing the three encodings: tar at the bottom, OCI dir in the middle, overlayfs
/// dir on top.
#[test]
fn mixed_layer_forms_match_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = vec![
        write_layer(&fx.tmp.path().join("m0.tar"), Form::Tar, &layers[0]),
        write_layer(&fx.tmp.path().join("m1"), Form::OciDir, &layers[1]),
        write_layer(&fx.tmp.path().join("m2"), Form::OverlayDir, &layers[2]),
    ];
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree("mixed layers vs kernel", &snapshot(fx.kernel.path()), &snapshot(um.path()), &kernel_exclusions());
}

/// The fuse-overlayfs spelling `-o lowerdir=TOP:...:BOTTOM` gives the same tree.
#[test]
fn lowerdir_option_matches_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::lowerdir(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree("-o lowerdir= vs kernel", &snapshot(fx.kernel.path()), &snapshot(um.path()), &kernel_exclusions());
}

/// A single layer is served as it is (the kernel needs two lowers; the guard adds an empty one).
#[test]
fn single_layer_matches_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = vec![stack().remove(0)];
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree("single tar layer vs kernel", &snapshot(fx.kernel.path()), &snapshot(um.path()), &kernel_exclusions());
}

/// Tars from real images often lack entries for parent directories. Those directories must
/// appear (as directories, with the file reachable); their mode, owner and mtime are not
/// specified by the OCI image spec, so only their existence and kind are checked.
#[test]
fn tar_without_parent_entries_gets_synthesised_dirs() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tar_path = tmp.path().join("bare.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).expect("create tar"));
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_size(6);
        b.append_data(&mut h, "a/b/c/deep.txt", &b"deep!\n"[..]).expect("append");
        b.finish().expect("finish tar");
    }
    let um = UnionMount::layers(&[&tar_path], &mountpoint(tmp.path(), "union"));
    for d in ["a", "a/b", "a/b/c"] {
        let m = std::fs::symlink_metadata(um.join(d)).unwrap_or_else(|e| panic!("lstat {d}: {e}"));
        assert!(m.is_dir(), "{d} should be a synthesised directory, is {:?}", m.file_type());
    }
    assert_eq!(std::fs::read(um.join("a/b/c/deep.txt")).expect("read deep.txt"), b"deep!\n");
    let names: Vec<String> = std::fs::read_dir(um.path())
        .expect("read_dir root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(names, ["a"], "root lists exactly the synthesised parent");
}

/// Every layer form, a file at the top of an absolute symlink chain: reading through the mount
/// must never escape to the host's /etc.
#[test]
fn absolute_symlinks_are_not_followed_by_the_daemon() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = write_layer(&tmp.path().join("l.tar"), Form::Tar, &[symlink("hostetc", "/etc"), file("f", "f\n")]);
    let um = UnionMount::layers(&[&l], &mountpoint(tmp.path(), "union"));
    let m = std::fs::symlink_metadata(um.join("hostetc")).expect("lstat hostetc");
    assert!(m.file_type().is_symlink());
    assert_eq!(std::fs::read_link(um.join("hostetc")).expect("readlink"), PathBuf::from("/etc"));
}

fn names_of(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8"))
        .collect()
}

fn assert_no_duplicates(what: &str, names: &[String]) {
    let mut seen = BTreeSet::new();
    let dups: Vec<&String> = names.iter().filter(|n| !seen.insert(n.as_str())).collect();
    assert!(dups.is_empty(), "{what}: {} duplicate names, first: {:?}", dups.len(), &dups[..dups.len().min(5)]);
}

/// A merged directory of 100k entries (60k below, 60k above with 20k overlapping, 100 of the
/// lower-only names whited out) lists completely, without duplicates, like the kernel lists it.
#[test]
fn readdir_of_100k_entries_is_complete() {
    if !root_or_skip() {
        return;
    }
    let mut lower = vec![];
    let mut upper = vec![];
    for i in 0..60_000 {
        lower.push(file(&format!("big/f{i:06}"), ""));
    }
    for i in 40_000..100_100 {
        upper.push(file(&format!("big/f{i:06}"), ""));
    }
    for i in 0..100 {
        upper.push(whiteout(&format!("big/f{i:06}")));
    }
    let layers = vec![lower, upper];
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));

    let mut kernel_names = names_of(&fx.kernel.path().join("big"));
    let mut union_names = names_of(&um.join("big"));
    assert_eq!(kernel_names.len(), 100_000, "harness: kernel count");
    assert_no_duplicates("union readdir of big/", &union_names);
    assert_eq!(union_names.len(), 100_000, "union readdir count of big/");
    kernel_names.sort();
    union_names.sort();
    assert!(kernel_names == union_names, "union big/ lists other names than the kernel");

    // The same through raw readdir(3), with `.` and `..`.
    let raw = raw_readdir(&um.join("big"));
    assert_eq!(raw.len(), 100_002, "raw readdir count including . and ..");
    assert_no_duplicates("raw readdir of big/", &raw);
}

/// Names returned by opendir/readdir(3), including `.` and `..`.
fn raw_readdir(dir: &Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    assert!(!d.is_null(), "opendir {}: {}", dir.display(), std::io::Error::last_os_error());
    let mut out = Vec::new();
    loop {
        // SAFETY: `d` is an open DIR* that we close only after the loop.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        out.push(name.to_string_lossy().into_owned());
    }
    // SAFETY: `d` came from opendir and is closed once.
    unsafe { libc::closedir(d) };
    out
}

#[test]
fn readdir_lists_dot_and_dotdot() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = write_stack(tmp.path(), Form::Tar, &[vec![file("d/x", "x")], vec![file("d/y", "y"), file("z", "")]]);
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    for (dir, want) in [("", vec![".", "..", "d", "z"]), ("d", vec![".", "..", "x", "y"])] {
        let mut got = raw_readdir(&um.join(dir));
        got.sort();
        assert_eq!(got, want, "readdir of /{dir}");
    }
    // `ls -fa` lists in readdir order, unsorted, with . and ..
    let out = std::process::Command::new("ls").arg("-fa").arg(um.join("d")).output().expect("run ls");
    assert!(out.status.success(), "ls -fa failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<&str> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().collect();
    names.sort();
    assert_eq!(names, [".", "..", "x", "y"]);
}

/// Every write-type operation fails with EROFS and leaves the tree unchanged.
#[test]
fn writes_fail_with_erofs() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = write_stack(
        tmp.path(),
        Form::Tar,
        &[vec![file("etc/motd", "hello\n"), dir_("d"), dir_("empty")], vec![file("top", "t\n")]],
    );
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    let before = snapshot(um.path());
    let p = |r: &str| um.join(r);
    let ops: Vec<(&str, i32)> = vec![
        ("create", errno_of("create", std::fs::File::create(p("new")))),
        ("create over existing", errno_of("create", std::fs::File::create(p("etc/motd")))),
        ("mkdir", errno_of("mkdir", std::fs::create_dir(p("newdir")))),
        ("unlink", errno_of("unlink", std::fs::remove_file(p("etc/motd")))),
        ("rmdir", errno_of("rmdir", std::fs::remove_dir(p("empty")))),
        ("rename", errno_of("rename", std::fs::rename(p("etc/motd"), p("etc/motd2")))),
        ("rename dir", errno_of("rename", std::fs::rename(p("d"), p("d2")))),
        (
            "chmod",
            errno_of("chmod", std::fs::set_permissions(p("etc/motd"), std::fs::Permissions::from_mode(0o600))),
        ),
        (
            "chown",
            errno_of("chown", std::os::unix::fs::lchown(p("etc/motd"), Some(1), Some(1))),
        ),
        (
            "setxattr",
            errno_of(
                "setxattr",
                rustix::fs::lsetxattr(p("etc/motd"), "user.k", b"v", rustix::fs::XattrFlags::empty())
                    .map_err(std::io::Error::from),
            ),
        ),
        (
            "removexattr",
            errno_of(
                "removexattr",
                rustix::fs::lremovexattr(p("etc/motd"), "user.k").map_err(std::io::Error::from),
            ),
        ),
        (
            "open O_WRONLY",
            errno_of("open", std::fs::OpenOptions::new().write(true).open(p("etc/motd"))),
        ),
        (
            "open O_RDWR",
            errno_of("open", std::fs::OpenOptions::new().read(true).write(true).open(p("top"))),
        ),
        (
            "open O_TRUNC",
            errno_of("open", std::fs::OpenOptions::new().write(true).truncate(true).open(p("top"))),
        ),
        ("symlink", errno_of("symlink", std::os::unix::fs::symlink("x", p("sl")))),
        ("link", errno_of("link", std::fs::hard_link(p("etc/motd"), p("hl")))),
        (
            "utimes",
            errno_of(
                "utimes",
                std::fs::File::open(p("etc/motd"))
                    .and_then(|f| f.set_modified(std::time::SystemTime::UNIX_EPOCH)),
            ),
        ),
        (
            "mknod",
            errno_of(
                "mknod",
                rustix::fs::mknodat(rustix::fs::CWD, p("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o644), 0)
                    .map_err(std::io::Error::from),
            ),
        ),
    ];
    let wrong: Vec<String> = ops
        .iter()
        .filter(|(_, e)| *e != libc::EROFS)
        .map(|(op, e)| format!("{op}: errno {e} ({})", std::io::Error::from_raw_os_error(*e)))
        .collect();
    assert!(wrong.is_empty(), "expected EROFS from every write, got:\n  {}", wrong.join("\n  "));
    assert_same_tree("tree after failed writes", &before, &snapshot(um.path()), &Exclusions::default());
}

#[test]
fn statfs_answers() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = write_layer(&tmp.path().join("l.tar"), Form::Tar, &[file("f", "f")]);
    let um = UnionMount::layers(&[&l], &mountpoint(tmp.path(), "union"));
    let st = rustix::fs::statvfs(um.path()).expect("statvfs on the mount");
    assert!(st.f_bsize > 0, "f_bsize is 0");
    assert!(st.f_namemax >= 255, "f_namemax {} < 255", st.f_namemax);
    let st2 = rustix::fs::statfs(um.path()).expect("statfs on the mount");
    assert_eq!(st2.f_type as i64, 0x6573_5546, "f_type is FUSE_SUPER_MAGIC");
}

fn ino(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// Inode numbers stay the same across lookups, also after the kernel forgot the inodes
/// (drop_caches), and hardlinks share one.
#[test]
fn inode_numbers_are_stable_and_shared_by_hardlinks() {
    if !root_or_skip() {
        return;
    }
    let layers = stack();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = write_stack(tmp.path(), Form::Tar, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(tmp.path(), "union"));
    let paths = ["", "etc", "etc/motd", "usr/bin/a", "usr/bin/a2", "usr/bin/a3", "var/cache/y", "dev/null", "bin"];
    let first: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
    let second: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
    assert_eq!(first, second, "st_ino changed between two lstat calls of {paths:?}");
    let a = ino(&um.join("usr/bin/a"));
    assert_eq!(a, ino(&um.join("usr/bin/a2")), "hardlinks usr/bin/a and a2 differ in (st_dev, st_ino)");
    assert_ne!(a, ino(&um.join("usr/bin/a3")), "a3 was replaced in a higher layer: its own inode");
    let distinct: BTreeSet<_> = first.iter().collect();
    assert_eq!(distinct.len(), paths.len() - 1, "only a and a2 may share an inode: {first:?}");

    // Make the kernel forget the inodes (FUSE_FORGET), then look them up again.
    if std::fs::write("/proc/sys/vm/drop_caches", "2").is_ok() {
        let third: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
        assert_eq!(first, third, "st_ino changed after the kernel dropped its inode cache");
    } else {
        eprintln!("note: cannot write /proc/sys/vm/drop_caches; forget path not exercised");
    }
}

/// Eight threads read the same files at once, in different orders and buffer sizes, and all see
/// the right bytes.
#[test]
fn concurrent_reads_from_8_threads_are_correct() {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let sizes = [0usize, 1, 511, 4096, 65_537, 300_000, MIB, 3 * MIB + 123];
    let mut lower = vec![];
    let mut upper = vec![];
    for (i, size) in sizes.iter().enumerate() {
        let e = file(&format!("f{i}"), pseudo_random(*size, 100 + i as u64));
        if i % 2 == 0 { lower.push(e) } else { upper.push(e) }
    }
    let layers = write_stack(tmp.path(), Form::Tar, &[lower, upper]);
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    let expected: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(i, s)| Sha256::digest(pseudo_random(*s, 100 + i as u64)).to_vec()).collect();
    std::thread::scope(|scope| {
        for t in 0..8usize {
            let um = &um;
            let expected = &expected;
            scope.spawn(move || {
                let bufsize = [4096, 65_536, 131_072 + 17, 1, 1000, 8192, 1 << 20, 333][t];
                for round in 0..3 {
                    for k in 0..sizes.len() {
                        let i = (k + t + round) % sizes.len();
                        let p = um.join(&format!("f{i}"));
                        let mut f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("open f{i}: {e}"));
                        let mut h = Sha256::new();
                        let mut buf = vec![0u8; bufsize.max(4096 * (bufsize == 1) as usize).max(bufsize)];
                        loop {
                            let n = f.read(&mut buf).unwrap_or_else(|e| panic!("read f{i}: {e}"));
                            if n == 0 {
                                break;
                            }
                            h.update(&buf[..n]);
                        }
                        assert_eq!(h.finalize().to_vec(), expected[i], "thread {t}: contents of f{i}");
                        // A read at an offset in the middle, through the same handle.
                        if sizes[i] > 10 {
                            let off = (sizes[i] / 3) as u64;
                            f.seek(SeekFrom::Start(off)).expect("seek");
                            let mut b = [0u8; 7];
                            f.read_exact(&mut b).unwrap_or_else(|e| panic!("pread f{i}@{off}: {e}"));
                            let want = pseudo_random(sizes[i], 100 + i as u64);
                            assert_eq!(&b[..], &want[off as usize..off as usize + 7], "thread {t}: f{i}@{off}");
                        }
                    }
                }
            });
        }
    });
}
