//! Behaviour of a mounted union beyond its tree: readdir with `.` and `..`, read-only errors,
//! statfs, inode numbers, concurrent reads. Each check runs over directory layers and over tar
//! layers (separate tests, so that one layer kind failing does not hide the other).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;

const MIB: usize = 1 << 20;

/// One `#[test]` per layer form for a check `fn(Form)`; the tests need root.
macro_rules! per_form {
    ($check:ident: $dir_test:ident, $tar_test:ident) => {
        #[test]
        fn $dir_test() {
            if root_or_skip() {
                $check(Form::OverlayDir);
            }
        }
        #[test]
        fn $tar_test() {
            if root_or_skip() {
                $check(Form::Tar);
            }
        }
    };
}

per_form!(readdir_lists_dot_and_dotdot: dot_and_dotdot_dir_layers, dot_and_dotdot_tar_layers);
per_form!(writes_fail_with_erofs: erofs_dir_layers, erofs_tar_layers);
per_form!(statfs_answers: statfs_dir_layers, statfs_tar_layers);
per_form!(inode_numbers_are_stable_and_shared_by_hardlinks: inodes_dir_layers, inodes_tar_layers);
per_form!(concurrent_reads_are_correct: concurrent_reads_dir_layers, concurrent_reads_tar_layers);

/// Hardlinks (a group of three, one replaced above), a whiteout, a device and a symlink.
fn inode_stack() -> Vec<Vec<Entry>> {
    vec![
        vec![
            file("etc/motd", "base\n"),
            file("usr/bin/a", "a\n").mode(0o755),
            hardlink("usr/bin/a2", "usr/bin/a"),
            hardlink("usr/bin/a3", "usr/bin/a"),
            chardev("dev/null", 1, 3),
            symlink("bin", "usr/bin"),
            file("gone", "x"),
        ],
        vec![
            file("etc/motd", "top\n"),
            file("usr/bin/a3", "replaced\n"),
            file("var/cache/y", "y"),
            whiteout("gone"),
        ],
    ]
}

fn readdir_lists_dot_and_dotdot(form: Form) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = write_stack(
        tmp.path(),
        form,
        &[
            vec![file("d/x", "x")],
            vec![file("d/y", "y"), file("z", "")],
        ],
    );
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    for (dir, want) in [
        ("", vec![".", "..", "d", "z"]),
        ("d", vec![".", "..", "x", "y"]),
    ] {
        let mut got = raw_readdir(&um.join(dir));
        got.sort();
        assert_eq!(got, want, "readdir of /{dir}");
    }
    // `ls -fa` lists in readdir order, unsorted, with . and ..
    let out = std::process::Command::new("ls")
        .arg("-fa")
        .arg(um.join("d"))
        .output()
        .expect("run ls");
    assert!(
        out.status.success(),
        "ls -fa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    names.sort();
    assert_eq!(names, [".", "..", "x", "y"]);
}

/// Every write-type operation fails with EROFS and leaves the tree unchanged.
fn writes_fail_with_erofs(form: Form) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = write_stack(
        tmp.path(),
        form,
        &[
            vec![file("etc/motd", "hello\n"), dir_("d"), dir_("empty")],
            vec![file("top", "t\n")],
        ],
    );
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    let before = snapshot(um.path());
    let p = |r: &str| um.join(r);
    let ops: Vec<(&str, i32)> = vec![
        (
            "create",
            errno_of("create", std::fs::File::create(p("new"))),
        ),
        (
            "create over existing",
            errno_of("create", std::fs::File::create(p("etc/motd"))),
        ),
        ("mkdir", errno_of("mkdir", std::fs::create_dir(p("newdir")))),
        (
            "unlink",
            errno_of("unlink", std::fs::remove_file(p("etc/motd"))),
        ),
        ("rmdir", errno_of("rmdir", std::fs::remove_dir(p("empty")))),
        (
            "rename",
            errno_of("rename", std::fs::rename(p("etc/motd"), p("etc/motd2"))),
        ),
        (
            "rename dir",
            errno_of("rename", std::fs::rename(p("d"), p("d2"))),
        ),
        (
            "chmod",
            errno_of(
                "chmod",
                std::fs::set_permissions(p("etc/motd"), std::fs::Permissions::from_mode(0o600)),
            ),
        ),
        (
            "chown",
            errno_of(
                "chown",
                std::os::unix::fs::lchown(p("etc/motd"), Some(1), Some(1)),
            ),
        ),
        (
            "setxattr",
            errno_of(
                "setxattr",
                rustix::fs::lsetxattr(
                    p("etc/motd"),
                    "user.k",
                    b"v",
                    rustix::fs::XattrFlags::empty(),
                )
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
            errno_of(
                "open",
                std::fs::OpenOptions::new().write(true).open(p("etc/motd")),
            ),
        ),
        (
            "open O_RDWR",
            errno_of(
                "open",
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(p("top")),
            ),
        ),
        (
            "open O_TRUNC",
            errno_of(
                "open",
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(p("top")),
            ),
        ),
        (
            "symlink",
            errno_of("symlink", std::os::unix::fs::symlink("x", p("sl"))),
        ),
        (
            "link",
            errno_of("link", std::fs::hard_link(p("etc/motd"), p("hl"))),
        ),
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
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    p("fifo"),
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o644),
                    0,
                )
                .map_err(std::io::Error::from),
            ),
        ),
    ];
    let wrong: Vec<String> = ops
        .iter()
        .filter(|(_, e)| *e != libc::EROFS)
        .map(|(op, e)| {
            format!(
                "{op}: errno {e} ({})",
                std::io::Error::from_raw_os_error(*e)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "expected EROFS from every write, got:\n  {}",
        wrong.join("\n  ")
    );
    assert_same_tree(
        "tree after failed writes",
        &before,
        &snapshot(um.path()),
        &Exclusions::default(),
    );
}

fn statfs_answers(form: Form) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = write_stack(tmp.path(), form, &[vec![file("f", "f")]]);
    let um = UnionMount::layers(&l, &mountpoint(tmp.path(), "union"));
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
fn inode_numbers_are_stable_and_shared_by_hardlinks(form: Form) {
    let layers = inode_stack();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = write_stack(tmp.path(), form, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(tmp.path(), "union"));
    let paths = [
        "",
        "etc",
        "etc/motd",
        "usr/bin/a",
        "usr/bin/a2",
        "usr/bin/a3",
        "var/cache/y",
        "dev/null",
        "bin",
    ];
    let first: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
    let second: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
    assert_eq!(
        first, second,
        "st_ino changed between two lstat calls of {paths:?}"
    );
    let a = ino(&um.join("usr/bin/a"));
    assert_eq!(
        a,
        ino(&um.join("usr/bin/a2")),
        "hardlinks usr/bin/a and a2 differ in (st_dev, st_ino)"
    );
    assert_ne!(
        a,
        ino(&um.join("usr/bin/a3")),
        "a3 was replaced in a higher layer: its own inode"
    );
    let distinct: BTreeSet<_> = first.iter().collect();
    assert_eq!(
        distinct.len(),
        paths.len() - 1,
        "only a and a2 may share an inode: {first:?}"
    );

    // Make the kernel forget the inodes (FUSE_FORGET), then look them up again.
    if std::fs::write("/proc/sys/vm/drop_caches", "2").is_ok() {
        let third: Vec<(u64, u64)> = paths.iter().map(|p| ino(&um.join(p))).collect();
        assert_eq!(
            first, third,
            "st_ino changed after the kernel dropped its inode cache"
        );
    } else {
        eprintln!("note: cannot write /proc/sys/vm/drop_caches; forget path not exercised");
    }
}

/// Eight threads read the same files at once, in different orders and buffer sizes, and all see
/// the right bytes.
fn concurrent_reads_are_correct(form: Form) {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let tmp = tempfile::tempdir().expect("tempdir");
    let sizes = [0usize, 1, 511, 4096, 65_537, 300_000, MIB, 3 * MIB + 123];
    let mut lower = vec![];
    let mut upper = vec![];
    for (i, size) in sizes.iter().enumerate() {
        let e = file(&format!("f{i}"), pseudo_random(*size, 100 + i as u64));
        if i % 2 == 0 {
            lower.push(e)
        } else {
            upper.push(e)
        }
    }
    let layers = write_stack(tmp.path(), form, &[lower, upper]);
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "union"));
    let expected: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| Sha256::digest(pseudo_random(*s, 100 + i as u64)).to_vec())
        .collect();
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
                        let mut f =
                            std::fs::File::open(&p).unwrap_or_else(|e| panic!("open f{i}: {e}"));
                        let mut h = Sha256::new();
                        let mut buf = vec![0u8; bufsize];
                        loop {
                            let n = f
                                .read(&mut buf)
                                .unwrap_or_else(|e| panic!("read f{i}: {e}"));
                            if n == 0 {
                                break;
                            }
                            h.update(&buf[..n]);
                        }
                        assert_eq!(
                            h.finalize().to_vec(),
                            expected[i],
                            "thread {t}: contents of f{i}"
                        );
                        // A read at an offset in the middle, through the same handle.
                        if sizes[i] > 10 {
                            let off = (sizes[i] / 3) as u64;
                            f.seek(SeekFrom::Start(off)).expect("seek");
                            let mut b = [0u8; 7];
                            f.read_exact(&mut b)
                                .unwrap_or_else(|e| panic!("pread f{i}@{off}: {e}"));
                            let want = pseudo_random(sizes[i], 100 + i as u64);
                            assert_eq!(
                                &b[..],
                                &want[off as usize..off as usize + 7],
                                "thread {t}: f{i}@{off}"
                            );
                        }
                    }
                }
            });
        }
    });
}

/// Appends a regular file to a raw tar (for archives a layer description cannot express).
fn raw_file(b: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_ustar();
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).expect("append file");
}

fn raw_dir(b: &mut tar::Builder<std::fs::File>, path: &str, mode: u32) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    b.append_data(&mut h, path, &[][..]).expect("append dir");
}

/// Rules inside one tar layer (OCI image spec, "Whiteouts"; DESIGN: duplicates): a later entry
/// for the same path replaces the earlier one; a whiteout only hides lower layers, never an
/// entry of its own layer, whichever comes first; an opaque marker likewise.
#[test]
fn tar_same_layer_rules() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = write_layer(
        &tmp.path().join("lower.tar"),
        Form::Tar,
        &[
            file("wh-before/old", "old"),
            file("wh-after/old", "old"),
            file("opq/old", "old"),
            file("dup", "lower"),
        ],
    );
    let upper = tmp.path().join("upper.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&upper).expect("create tar"));
        raw_file(&mut b, "dup", b"first", 0o644);
        raw_file(&mut b, "dup", b"second", 0o600);
        raw_dir(&mut b, "d", 0o700);
        raw_dir(&mut b, "d", 0o750);
        // Whiteout first, then the same name re-created in this layer.
        raw_file(&mut b, ".wh.wh-before", b"", 0o644);
        raw_file(&mut b, "wh-before/new", b"new", 0o644);
        // The name first, then its whiteout.
        raw_file(&mut b, "wh-after/new", b"new", 0o644);
        raw_file(&mut b, ".wh.wh-after", b"", 0o644);
        // Opaque marker after content of the same layer.
        raw_file(&mut b, "opq/new", b"new", 0o644);
        raw_file(&mut b, "opq/.wh..wh..opq", b"", 0o644);
        b.finish().expect("finish tar");
    }
    let um = UnionMount::layers(&[&lower, &upper], &mountpoint(tmp.path(), "union"));
    let read = |p: &str| std::fs::read_to_string(um.join(p)).map_err(|e| format!("{p}: {e}"));
    let mut problems = Vec::new();
    let mut check = |what: &str, ok: bool| {
        if !ok {
            problems.push(what.to_string());
        }
    };
    check(
        "dup has the later entry's content",
        read("dup") == Ok("second".into()),
    );
    check(
        "dup has the later entry's mode 0600",
        std::fs::metadata(um.join("dup"))
            .map(|m| m.permissions().mode() & 0o7777)
            .ok()
            == Some(0o600),
    );
    check(
        "d has the later entry's mode 0750",
        std::fs::metadata(um.join("d"))
            .map(|m| m.permissions().mode() & 0o7777)
            .ok()
            == Some(0o750),
    );
    for dir in ["wh-before", "wh-after", "opq"] {
        let mut names = names_of(&um.join(dir));
        names.sort();
        check(
            &format!("{dir}/ lists only [\"new\"], lists {names:?}"),
            names == ["new"],
        );
        check(
            &format!("{dir}/new readable"),
            read(&format!("{dir}/new")) == Ok("new".into()),
        );
    }
    assert!(
        problems.is_empty(),
        "same-layer rules broken:\n  {}",
        problems.join("\n  ")
    );
}
