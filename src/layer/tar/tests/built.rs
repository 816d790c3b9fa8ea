//! Hand-made archives for the normalisation rules: paths, duplicates, links, whiteouts, PAX.

use super::*;
use crate::layer::Timespec;

#[test]
fn missing_parents_are_synthesised_and_paths_normalised() {
    let mut t = Tb::new();
    t.file("./x/y/z", "z")
        .file("/abs/file", "abs")
        .file("./dot/./file", "dot")
        .file("../evil", "no")
        .file("x/../../evil2", "no")
        .dir("./", 0o700);
    t.raw(EntryType::Regular, b"nul", b"n", |_| {});
    let (_dir, l) = t.open();
    assert_eq!(names(&l, ""), ["abs", "dot", "nul", "x"]);
    assert_eq!(read(&l, "x/y/z"), b"z");
    assert_eq!(read(&l, "abs/file"), b"abs");
    assert_eq!(read(&l, "dot/file"), b"dot");
    let x = must(&l, "x");
    assert_eq!(
        (x.attr.perm, x.attr.uid, x.attr.gid, x.attr.mtime),
        (0o755, 0, 0, Timespec::default())
    );
    assert_eq!(x.attr.size, 0);
    let root = l.root().unwrap();
    assert_eq!(root.attr.perm, 0o700);
    assert_eq!(root.attr.mtime.sec, 1000);
    assert_eq!(root.attr.nlink, 5);
    assert!(get(&l, "evil").is_none() && get(&l, "evil2").is_none());
}

#[test]
fn later_entries_win() {
    let mut t = Tb::new();
    t.file("f", "old")
        .file("f", "new")
        .dir("d", 0o700)
        .file("d/child", "c")
        .dir("d", 0o750) // updates attributes, keeps children
        .dir("gone", 0o755)
        .file("gone/child", "c")
        .file("gone", "now a file")
        .file("became", "file")
        .dir("became", 0o711)
        .file("a", "target")
        .link(EntryType::Link, "b", "a")
        .file("a", "replacement");
    let (_dir, l) = t.open();
    assert_eq!(read(&l, "f"), b"new");
    let d = must(&l, "d");
    assert_eq!((d.attr.perm, d.attr.kind), (0o750, Kind::Dir));
    assert_eq!(names(&l, "d"), ["child"]);
    assert_eq!(read(&l, "gone"), b"now a file");
    assert_eq!(must(&l, "became").attr.perm, 0o711);
    assert_eq!(names(&l, "became"), Vec::<String>::new());
    // The link keeps the object it was made to, which no longer has any other name.
    assert_eq!(read(&l, "b"), b"target");
    assert_eq!(must(&l, "b").attr.nlink, 1);
    assert_eq!(must(&l, "a").attr.nlink, 1);
    assert_eq!(read(&l, "a"), b"replacement");
    assert_eq!(l.root().unwrap().attr.nlink, 4);
}

#[test]
fn nothing_below_a_non_directory() {
    let mut t = Tb::new();
    t.link(EntryType::Symlink, "a", "/etc")
        .file("a/passwd", "root::0:0")
        .file("f", "x")
        .file("f/g", "y")
        .link(EntryType::Link, "h", "a/passwd")
        .link(EntryType::Link, "i", "missing")
        .dir("dir", 0o755)
        .link(EntryType::Link, "j", "dir")
        .link(EntryType::Link, "k", "../f");
    let (_dir, l) = t.open();
    assert_eq!(names(&l, ""), ["a", "dir", "f"]);
    assert_eq!(l.readlink(must(&l, "a").node).unwrap(), b"/etc");
    assert!(l.lookup(must(&l, "a").node, OsStr::new("passwd")).is_err());
}

#[test]
fn hardlink_groups_share_one_object() {
    let mut t = Tb::new();
    t.file("a", "data")
        .link(EntryType::Link, "b", "a")
        .link(EntryType::Link, "./c", "./b")
        .link(EntryType::Link, "dir/d", "/a");
    let (_dir, l) = t.open();
    let inos: Vec<u64> = ["a", "b", "c", "dir/d"]
        .iter()
        .map(|p| must(&l, p).attr.ino)
        .collect();
    assert!(inos.iter().all(|&i| i == inos[0] && i != 0));
    assert!(
        ["a", "b", "c", "dir/d"]
            .iter()
            .all(|p| must(&l, p).attr.nlink == 4)
    );
    assert_eq!(read(&l, "dir/d"), b"data");
    assert_eq!(must(&l, "dir").node, must(&l, "dir").node);
    assert_ne!(must(&l, "dir").attr.ino, inos[0]);
}

#[test]
fn devices_and_fifos() {
    let mut t = Tb::new();
    t.dev(EntryType::Char, "dev/null", 1, 3)
        .dev(EntryType::Block, "dev/sda", 8, 0)
        .dev(EntryType::Char, "dev/big", 4095, 1 << 19);
    t.raw(EntryType::Fifo, b"dev/pipe", b"", |_| {});
    let (_dir, l) = t.open();
    let null = must(&l, "dev/null").attr;
    assert_eq!((null.kind, null.rdev), (Kind::CharDev, libc::makedev(1, 3)));
    let sda = must(&l, "dev/sda").attr;
    assert_eq!((sda.kind, sda.rdev), (Kind::BlockDev, libc::makedev(8, 0)));
    assert_eq!(must(&l, "dev/big").attr.rdev, libc::makedev(4095, 1 << 19));
    assert_eq!(must(&l, "dev/pipe").attr.kind, Kind::Fifo);
    assert_eq!(
        l.open(must(&l, "dev/null").node)
            .err()
            .unwrap()
            .raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn whiteouts_and_opaque_directories() {
    let mut t = Tb::new();
    t.file("etc/.wh.passwd", "")
        .file("etc/.wh..wh..opq", "")
        .file("etc/.wh..wh.plnk", "")
        .file("keep/.wh.both", "") // whiteout first, then the real name: real wins
        .file("keep/both", "real")
        .file("keep/first", "real") // real first, then the whiteout: real still wins
        .file("keep/.wh.first", "")
        .file(".wh.gone", "")
        .file(".wh.gone", "")
        .dev(EntryType::Char, "ovl/hidden", 0, 0)
        .file("wdir/.wh.sub", "")
        .file("wdir/sub/x", "x"); // a real directory beats the whiteout too
    t.pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("ovl", 0o755);
    t.pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"n")])
        .dir("notopq", 0o755);
    let (_dir, l) = t.open();

    let etc = must(&l, "etc");
    assert!(etc.opaque);
    assert_eq!(names(&l, "etc"), ["passwd"]);
    let wh = must(&l, "etc/passwd");
    assert_eq!(wh.attr.kind, Kind::Whiteout);
    assert!(get(&l, "etc/.wh.passwd").is_none());
    assert!(get(&l, "etc/.wh..wh..opq").is_none());
    let listed = l.read_dir(etc.node).unwrap();
    assert_eq!(listed[0].kind, Kind::Whiteout);

    assert_eq!(names(&l, "keep"), ["both", "first"]);
    assert_eq!(read(&l, "keep/both"), b"real");
    assert_eq!(read(&l, "keep/first"), b"real");
    assert!(!must(&l, "keep").opaque);

    assert_eq!(must(&l, "gone").attr.kind, Kind::Whiteout);
    assert!(must(&l, "ovl").opaque);
    assert_eq!(must(&l, "ovl/hidden").attr.kind, Kind::Whiteout);
    assert!(!must(&l, "notopq").opaque);
    assert_eq!(must(&l, "wdir/sub").attr.kind, Kind::Dir);
    assert_eq!(
        names(&l, ""),
        ["etc", "gone", "keep", "notopq", "ovl", "wdir"]
    );
}

#[test]
fn pax_records_override_the_header() {
    let long = format!("{}/{}", "p".repeat(200), "q".repeat(200));
    let mut t = Tb::new();
    t.pax(&[
        ("path", long.as_bytes()),
        ("uid", b"3000000000"),
        ("gid", b"42"),
        ("mtime", b"1700000000.5"),
        ("LIBARCHIVE.xattr.user.a%3Db", b"dmFsdWU="),
        ("SCHILY.xattr.user.plain", b"v"),
    ])
    .file("short", "content");
    t.pax(&[("linkpath", long.as_bytes())])
        .link(EntryType::Symlink, "sym", "short");
    t.pax(&[("mtime", b"-1.25")]).file("old", "");
    let (_dir, l) = t.open();
    let e = must(&l, &long);
    assert_eq!((e.attr.uid, e.attr.gid), (3_000_000_000, 42));
    assert_eq!(
        e.attr.mtime,
        Timespec {
            sec: 1_700_000_000,
            nsec: 500_000_000
        }
    );
    assert_eq!(read(&l, &long), b"content");
    assert!(get(&l, "short").is_none());
    let mut x = l.list_xattrs(e.node).unwrap();
    x.sort();
    assert_eq!(
        x,
        [OsString::from("user.a=b"), OsString::from("user.plain")]
    );
    assert_eq!(
        l.get_xattr(e.node, OsStr::new("user.a=b"))
            .unwrap()
            .unwrap(),
        b"value"
    );
    assert_eq!(l.readlink(must(&l, "sym").node).unwrap(), long.as_bytes());
    assert_eq!(
        must(&l, "old").attr.mtime,
        Timespec {
            sec: -2,
            nsec: 750_000_000
        }
    );
}

#[test]
fn bad_sparse_maps_are_skipped() {
    // PAX 1.0 map that claims more data than is stored, next to a good file.
    let mut data = b"1\n0\n4096\n".to_vec();
    data.resize(512 + 10, b'd');
    let mut t = Tb::new();
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"bad"),
        ("GNU.sparse.realsize", b"8192"),
    ]);
    t.raw(EntryType::Regular, b"GNUSparseFile.1/bad", &data, |_| {});
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"good"),
        ("GNU.sparse.realsize", b"20"),
    ]);
    let mut good = b"1\n10\n10\n".to_vec();
    good.resize(512, 0);
    good.extend_from_slice(b"0123456789");
    t.raw(EntryType::Regular, b"GNUSparseFile.1/good", &good, |_| {});
    t.file("after", "ok");
    let (_dir, l) = t.open();
    assert_eq!(names(&l, ""), ["after", "good"]);
    assert_eq!(read(&l, "good"), b"\0\0\0\0\0\0\0\0\0\x000123456789");
}

#[test]
fn unknown_node_ids_are_errors() {
    let (_dir, l) = {
        let mut t = Tb::new();
        t.file("f", "x").link(EntryType::Symlink, "s", "f");
        t.open()
    };
    for id in [l.node_count() as u64, u64::from(u32::MAX), u64::MAX] {
        assert!(l.attr(id).is_err());
        assert!(l.lookup(id, OsStr::new("f")).is_err());
        assert!(l.read_dir(id).is_err());
        assert!(l.open(id).is_err());
        assert!(l.readlink(id).is_err());
        assert!(l.list_xattrs(id).is_err());
        assert!(l.get_xattr(id, OsStr::new("user.x")).is_err());
    }
    let f = must(&l, "f").node;
    assert_eq!(
        l.read_dir(f).err().unwrap().raw_os_error(),
        Some(libc::ENOTDIR)
    );
    assert_eq!(
        l.lookup(f, OsStr::new("x")).err().unwrap().raw_os_error(),
        Some(libc::ENOTDIR)
    );
    assert_eq!(
        l.readlink(f).err().unwrap().raw_os_error(),
        Some(libc::EINVAL)
    );
    let root = l.root().unwrap().node;
    assert_eq!(
        l.open(root).err().unwrap().raw_os_error(),
        Some(libc::EISDIR)
    );
    assert_eq!(
        l.lookup(root, OsStr::new("missing"))
            .unwrap()
            .map(|e| e.node),
        None
    );
}

#[test]
fn whiteout_and_directory_of_one_name_make_it_opaque() {
    // OCI layer.md "Whiteouts": the whiteout removes the lower object, this layer's own
    // entries stay, so a directory of the whited-out name must not merge with lower layers.
    let mut t = Tb::new();
    t.file(".wh.before", "") // whiteout, then a child (the directory is synthesised)
        .file("before/new", "new")
        .file("after/new", "new") // child, then the whiteout
        .file(".wh.after", "")
        .file(".wh.explicit", "") // whiteout, then a directory entry
        .dir("explicit", 0o700)
        .dir("dirfirst", 0o700) // directory entry, then the whiteout
        .file(".wh.dirfirst", "")
        .file("nested/.wh.sub", "")
        .file("nested/sub/deeper/x", "x")
        .dev(EntryType::Char, "ovl", 0, 0) // overlay whiteout, then a child
        .file("ovl/new", "new")
        .dir("ovl2", 0o755) // directory, then an overlay whiteout
        .dev(EntryType::Char, "ovl2", 0, 0)
        .file(".wh.file", "") // a non-directory needs nothing extra
        .file("file", "f")
        .file(".wh.redone", "") // a directory, replaced by a file, then a directory again
        .dir("redone", 0o755)
        .file("redone", "f")
        .dir("redone", 0o755)
        .file("plain/new", "new");
    let (_dir, l) = t.open();
    for d in [
        "before",
        "after",
        "explicit",
        "dirfirst",
        "nested/sub",
        "ovl",
        "ovl2",
        "redone",
    ] {
        let e = must(&l, d);
        assert_eq!(e.attr.kind, Kind::Dir, "{d}");
        assert!(e.opaque, "{d} should be opaque");
    }
    for d in ["nested", "nested/sub/deeper", "plain"] {
        assert!(!must(&l, d).opaque, "{d} should not be opaque");
    }
    assert_eq!(names(&l, "before"), ["new"]);
    assert_eq!(names(&l, "after"), ["new"]);
    assert_eq!(names(&l, "ovl"), ["new"]);
    assert_eq!(must(&l, "explicit").attr.perm, 0o700);
    assert_eq!(read(&l, "file"), b"f");
    assert!(!must(&l, "file").opaque);
}
