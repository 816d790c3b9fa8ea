//! Archives written by GNU tar itself: the encodings real layers use.

use super::*;
use crate::layer::Timespec;

/// A source tree with the usual suspects, for both GNU and POSIX formats.
fn make_tree(root: &Path) -> (String, String, String) {
    let d = root.join("d");
    fs::create_dir_all(d.join("sticky")).unwrap();
    fs::write(d.join("file.txt"), "hello").unwrap();
    fs::hard_link(d.join("file.txt"), d.join("hard")).unwrap();
    fs::write(d.join("suid"), "#!").unwrap();
    set_mode(&d.join("suid"), 0o4755);
    fs::write(d.join("sgid"), "").unwrap();
    set_mode(&d.join("sgid"), 0o2711);
    set_mode(&d.join("sticky"), 0o1777);
    std::os::unix::fs::symlink("file.txt", d.join("link")).unwrap();
    let long_target = "t".repeat(300);
    std::os::unix::fs::symlink(&long_target, d.join("longlink")).unwrap();
    let long_name = "n".repeat(120);
    fs::write(d.join(&long_name), "long name").unwrap();
    let deep = format!(
        "{}/{}/{}",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    );
    fs::create_dir_all(d.join(&deep)).unwrap();
    fs::write(d.join(&deep).join("f"), "deep").unwrap();
    run(Command::new("mkfifo").arg(d.join("fifo")));
    (long_name, long_target, format!("d/{deep}/f"))
}

fn check_tree(l: &TarLayer, long_name: &str, long_target: &str, deep: &str) {
    assert_eq!(read(l, "d/file.txt"), b"hello");
    assert_eq!(read(l, &format!("d/{long_name}")), b"long name");
    assert_eq!(read(l, deep), b"deep");
    assert!(deep.len() > 255);

    let f = must(l, "d/file.txt");
    let h = must(l, "d/hard");
    assert_eq!(f.attr.ino, h.attr.ino);
    assert_eq!((f.attr.nlink, h.attr.nlink), (2, 2));
    assert_eq!(read(l, "d/hard"), b"hello");
    assert_ne!(must(l, "d/suid").attr.ino, f.attr.ino);

    assert_eq!(must(l, "d/suid").attr.perm, 0o4755);
    assert_eq!(must(l, "d/sgid").attr.perm, 0o2711);
    assert_eq!(must(l, "d/sticky").attr.perm, 0o1777);
    assert_eq!(must(l, "d/sticky").attr.kind, Kind::Dir);
    assert_eq!(f.attr.uid, 1234);
    assert_eq!(f.attr.gid, 5678);
    assert_eq!((f.attr.size, f.attr.blocks), (5, 1));

    let link = must(l, "d/link");
    assert_eq!(link.attr.kind, Kind::Symlink);
    assert_eq!(l.readlink(link.node).unwrap(), b"file.txt");
    let long = must(l, "d/longlink");
    assert_eq!(l.readlink(long.node).unwrap(), long_target.as_bytes());
    assert_eq!(long.attr.size, 300);
    assert_eq!(must(l, "d/fifo").attr.kind, Kind::Fifo);

    // d holds sticky/ and xxx/ as subdirectories.
    assert_eq!(must(l, "d").attr.nlink, 4);
    let mut expect = vec![
        "fifo", "file.txt", "hard", "link", "longlink", long_name, "sgid", "sticky", "suid",
    ];
    let x = "x".repeat(100);
    expect.push(&x);
    expect.sort();
    assert_eq!(names(l, "d"), expect);
    let listed = l.read_dir(must(l, "d").node).unwrap();
    let hard = listed.iter().find(|e| e.name == "hard").unwrap();
    assert_eq!((hard.kind, hard.ino), (Kind::File, f.attr.ino));
}

#[test]
fn gnu_format_names_links_modes() {
    let dir = TempDir::new().unwrap();
    let (long_name, long_target, deep) = make_tree(dir.path());
    let (_, l) = gnu_tar(
        dir.path(),
        "gnu.tar",
        &[
            "--format=gnu",
            "--sort=name",
            "--owner=1234",
            "--group=5678",
            "--numeric-owner",
            "--mtime=@1700000000",
            "d",
        ],
    );
    check_tree(&l, &long_name, &long_target, &deep);
    let f = must(&l, "d/file.txt");
    assert_eq!(
        f.attr.mtime,
        Timespec {
            sec: 1_700_000_000,
            nsec: 0
        }
    );
    assert_eq!(f.attr.atime, f.attr.mtime);
    assert_eq!(f.attr.ctime, f.attr.mtime);
    assert!(l.statfs().unwrap().bsize > 0);
}

#[test]
fn posix_format_nanoseconds_and_xattrs() {
    let dir = TempDir::new().unwrap();
    let (long_name, long_target, deep) = make_tree(dir.path());
    let file = dir.path().join("d/file.txt");
    run(Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg("@1700000000.123456789")
        .arg(&file));
    run(Command::new("setfattr")
        .args(["-n", "user.color", "-v", "blue"])
        .arg(&file));
    run(Command::new("setfattr")
        .args(["-n", "user.empty"])
        .arg(dir.path().join("d/suid")));
    let (_, l) = gnu_tar(
        dir.path(),
        "posix.tar",
        &[
            "--format=posix",
            "--sort=name",
            "--xattrs",
            "--xattrs-include=user.*",
            "--owner=1234",
            "--group=5678",
            "--numeric-owner",
            "d",
        ],
    );
    check_tree(&l, &long_name, &long_target, &deep);
    let f = must(&l, "d/file.txt");
    assert_eq!(
        f.attr.mtime,
        Timespec {
            sec: 1_700_000_000,
            nsec: 123_456_789
        }
    );
    assert_eq!(
        l.list_xattrs(f.node).unwrap(),
        vec![OsString::from("user.color")]
    );
    assert_eq!(
        l.get_xattr(f.node, OsStr::new("user.color"))
            .unwrap()
            .unwrap(),
        b"blue"
    );
    assert_eq!(l.get_xattr(f.node, OsStr::new("user.none")).unwrap(), None);
    // The hard link is the same object, so it has the same xattrs.
    let h = must(&l, "d/hard");
    assert_eq!(
        l.get_xattr(h.node, OsStr::new("user.color"))
            .unwrap()
            .unwrap(),
        b"blue"
    );
    let s = must(&l, "d/suid");
    assert_eq!(
        l.get_xattr(s.node, OsStr::new("user.empty"))
            .unwrap()
            .unwrap(),
        b""
    );
}

/// A sparse file: data at the start, two islands, a hole at the end; and one with many chunks
/// (more than the old GNU header's four slots, so extension blocks are needed).
fn make_sparse(root: &Path) -> (Vec<u8>, Vec<u8>) {
    let write_at = |f: &fs::File, off: u64, data: &[u8]| {
        use std::os::unix::fs::FileExt;
        f.write_all_at(data, off).unwrap();
    };
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    write_at(&f, 0, b"head");
    write_at(&f, 1 << 20, b"hello");
    write_at(&f, 2_000_000, b"world");
    let g = fs::File::create(root.join("many")).unwrap();
    for i in 0..40u64 {
        write_at(&g, i * 65536 + 100, format!("chunk {i}").as_bytes());
    }
    write_at(&g, 40 * 65536, b"tail"); // data right up to the end: no trailing hole
    (
        fs::read(root.join("sparse")).unwrap(),
        fs::read(root.join("many")).unwrap(),
    )
}

#[test]
fn sparse_files_in_every_format() {
    let dir = TempDir::new().unwrap();
    let (sparse, many) = make_sparse(dir.path());
    let formats: [&[&str]; 3] = [
        &["--format=gnu", "--sparse"],
        &["--format=posix", "--sparse"],
        &["--format=posix", "--sparse", "--sparse-version=0.1"],
    ];
    for (i, args) in formats.iter().enumerate() {
        let mut args = args.to_vec();
        args.extend(["sparse", "many"]);
        let (tar, l) = gnu_tar(dir.path(), &format!("{i}.tar"), &args);
        assert!(
            fs::metadata(&tar).unwrap().len() < 200_000,
            "{args:?} stored the holes"
        );
        assert_eq!(names(&l, ""), ["many", "sparse"], "{args:?}");
        let e = must(&l, "sparse");
        assert_eq!(e.attr.size, 3 << 20);
        assert!(
            e.attr.blocks > 0 && e.attr.blocks <= 3 * 8,
            "{args:?}: {} blocks",
            e.attr.blocks
        );
        assert!(
            read(&l, "sparse") == sparse,
            "{args:?}: sparse content differs"
        );
        assert!(read(&l, "many") == many, "{args:?}: many content differs");
        // A read that starts inside a hole and ends inside data.
        let f = l.open(e.node).unwrap();
        let mut buf = [0xffu8; 8];
        assert_eq!(f.read_at(&mut buf, (1 << 20) - 3).unwrap(), 8);
        assert_eq!(&buf, b"\0\0\0hello");
        assert_eq!(f.read_at(&mut buf, 3 << 20).unwrap(), 0);
    }
}

#[test]
fn directory_entries_after_their_children() {
    let dir = TempDir::new().unwrap();
    fs::create_dir_all(dir.path().join("a/b")).unwrap();
    fs::write(dir.path().join("a/b/f"), "x").unwrap();
    set_mode(&dir.path().join("a"), 0o700);
    run(Command::new("touch")
        .arg("-d")
        .arg("@1600000000")
        .arg(dir.path().join("a")));
    let (_, l) = gnu_tar(
        dir.path(),
        "late.tar",
        &[
            "--format=gnu",
            "--no-recursion",
            "--owner=7",
            "--group=8",
            "--numeric-owner",
            "a/b/f",
            "a/b",
            "a",
        ],
    );
    let a = must(&l, "a");
    assert_eq!((a.attr.perm, a.attr.uid, a.attr.gid), (0o700, 7, 8));
    assert_eq!(a.attr.mtime.sec, 1_600_000_000);
    assert_eq!(a.attr.nlink, 3);
    assert_eq!(names(&l, "a/b"), ["f"]);
    assert_eq!(read(&l, "a/b/f"), b"x");
}

// ---------------------------------------------------------------- scale

/// Index speed and size on 100k entries: `cargo test --release --lib layer::tar::tests::scale
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn scale_100k_entries() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big.tar");
    write_100k_tar(&path);
    let size = fs::metadata(&path).unwrap().len();
    // Warm the page cache so that the number measures the index, not the disk.
    std::io::copy(&mut fs::File::open(&path).unwrap(), &mut std::io::sink()).unwrap();
    let rss = |key: &str| -> u64 {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = rss("VmRSS:");
    let start = std::time::Instant::now();
    let l = TarLayer::open(&path).unwrap();
    let took = start.elapsed();
    eprintln!(
        "RSS before {before} KiB, after {} KiB, peak {} KiB",
        rss("VmRSS:"),
        rss("VmHWM:")
    );
    eprintln!(
        "100k entries, {} MB tar: indexed in {:?} ({:.0} entries/s), {} nodes, index ~{} KiB ({} B/node)",
        size >> 20,
        took,
        100_000.0 / took.as_secs_f64(),
        l.node_count(),
        l.index_heap_bytes() >> 10,
        l.index_heap_bytes() / l.node_count()
    );
    assert_eq!(
        read(&l, "usr/share/pkg345/sub24/file-012345.txt"),
        b"file number 12345\n"
    );
    let start = std::time::Instant::now();
    for i in 0..100_000u32 {
        let p = format!(
            "usr/share/pkg{:03}/sub{:02}/file-{i:06}.txt",
            i % 500,
            i % 37
        );
        assert!(get(&l, &p).is_some());
    }
    eprintln!(
        "100k path lookups (4 components each) in {:?}",
        start.elapsed()
    );
}
