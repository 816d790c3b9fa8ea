//! Renaming directories with lower content, without a mount: the tree copy, the nodes the
//! kernel already holds, and a copy that fails midway.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::Arc;

use super::upper_tests::{FailingData, ROOT_CALLER, dirs, names, root, staged, walk, writable};
use super::*;
use crate::layer::dir::DirLayer;

fn opaque(p: &std::path::Path) -> bool {
    let mut buf = [0u8; 8];
    rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf).is_ok_and(|n| &buf[..n] == b"y")
}

fn read_all(u: &Union, ino: Ino) -> Vec<u8> {
    let fh = u.open(ino, false).unwrap();
    let data = u.read(fh, 0, 1 << 16).unwrap();
    u.release(fh);
    data
}

#[test]
fn a_lower_directory_renames_as_an_opaque_copy_keeping_nodes_and_links() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("a/b/c")).unwrap();
    fs::create_dir_all(d.lower.join("z")).unwrap();
    fs::write(d.lower.join("a/f"), b"f").unwrap();
    fs::write(d.lower.join("a/b/g"), b"g").unwrap();
    fs::hard_link(d.lower.join("a/f"), d.lower.join("a/b/f.link")).unwrap();
    fs::write(d.lower.join("z/hidden"), b"never shown under the new name").unwrap();
    let u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    let a = walk(&u, "a").unwrap();
    let g = walk(&u, "a/b/g").unwrap();
    let st_a = u.getattr(a).unwrap().st_ino;
    let st_g = u.getattr(g).unwrap().st_ino;
    // Merged before the move: a name only in the upper, and one hidden by a whiteout.
    let (_, _, fh) = u.create(a, OsStr::new("up"), 0o644, ROOT_CALLER).unwrap();
    u.release(fh);
    let b = walk(&u, "a/b").unwrap();
    u.rmdir(b, OsStr::new("c")).unwrap();
    let z = walk(&u, "z").unwrap();
    u.unlink(z, OsStr::new("hidden")).unwrap();

    u.rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("z"), 0)
        .unwrap();
    assert_eq!(names(&u, ""), ["z"]);
    assert_eq!(names(&u, "z"), ["b", "f", "up"]);
    assert_eq!(names(&u, "z/b"), ["f.link", "g"]);
    assert!(
        fs::symlink_metadata(d.upper.join("a"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(opaque(&d.upper.join("z")));
    assert_eq!(fs::read(d.upper.join("z/b/g")).unwrap(), b"g");
    let (f, link) = (
        fs::metadata(d.upper.join("z/f")).unwrap(),
        fs::metadata(d.upper.join("z/b/f.link")).unwrap(),
    );
    assert_eq!(f.ino(), link.ino(), "lower hard link kept");
    assert!(staged(&d).is_empty(), "left in work: {:?}", staged(&d));
    // The nodes the kernel holds follow: same numbers, and a write to a child copies
    // nothing up again (it is in the upper already).
    assert_eq!(walk(&u, "z").unwrap(), a);
    assert_eq!(u.getattr(a).unwrap().st_ino, st_a);
    assert_eq!(walk(&u, "z/b/g").unwrap(), g);
    assert_eq!(u.getattr(g).unwrap().st_ino, st_g);
    let fh = u.open_with(g, true, false).unwrap();
    u.write(fh, 0, b"G").unwrap();
    u.release(fh);
    assert_eq!(read_all(&u, g), b"G");
    assert_eq!(fs::read(d.upper.join("z/b/g")).unwrap(), b"G");
    assert_eq!(fs::read(d.lower.join("a/b/g")).unwrap(), b"g");
}

#[test]
fn exchanging_lower_directories_swaps_their_trees() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("a/in_a")).unwrap();
    fs::create_dir_all(d.lower.join("b")).unwrap();
    fs::write(d.lower.join("b/in_b"), b"b").unwrap();
    let u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    // The kernel looks both names up before it asks.
    walk(&u, "a").unwrap();
    walk(&u, "b").unwrap();
    u.rename(
        ROOT_INO,
        OsStr::new("a"),
        ROOT_INO,
        OsStr::new("b"),
        RENAME_EXCHANGE,
    )
    .unwrap();
    assert_eq!(names(&u, "a"), ["in_b"]);
    assert_eq!(names(&u, "b"), ["in_a"]);
    assert!(opaque(&d.upper.join("a")) && opaque(&d.upper.join("b")));
    assert!(staged(&d).is_empty());
}

#[test]
fn a_tree_copy_that_fails_midway_leaves_the_old_tree_and_no_junk() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("a/sub")).unwrap();
    fs::write(d.lower.join("a/sub/small"), b"small").unwrap();
    fs::write(d.lower.join("a/sub/zbig"), vec![7u8; 3 << 20]).unwrap();
    fs::write(d.lower.join("a/top"), b"top").unwrap();
    let lower = Arc::new(FailingData(DirLayer::open(&d.lower).unwrap()));
    let u = writable(&d, lower);
    walk(&u, "a").unwrap();
    let err = u
        .rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("z"), 0)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // Neither name has anything in the upper, the work directory is empty, and the merged
    // view shows the old tree.
    let in_upper: Vec<_> = fs::read_dir(&d.upper).unwrap().collect();
    assert!(in_upper.is_empty(), "upper: {in_upper:?}");
    assert!(staged(&d).is_empty(), "left in work: {:?}", staged(&d));
    assert_eq!(names(&u, ""), ["a"]);
    assert_eq!(names(&u, "a/sub"), ["small", "zbig"]);
    assert_eq!(read_all(&u, walk(&u, "a/top").unwrap()), b"top");
}

/// The tree copy frees the inode of an upper-only directory inside the tree, but its node
/// keeps showing that number; the filesystem soon gives the inode to a new object, which
/// must get a number of its own (before, it aliased the directory's node: listed as a file,
/// read as `EISDIR`).
#[test]
fn a_reused_inode_of_a_replaced_upper_directory_gets_a_number_of_its_own() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("a")).unwrap();
    fs::write(d.lower.join("a/x"), b"x").unwrap();
    let u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    let a = walk(&u, "a").unwrap();
    let (sub, st) = u.mkdir(a, OsStr::new("sub"), 0o755, ROOT_CALLER).unwrap();
    let freed = fs::symlink_metadata(d.upper.join("a/sub")).unwrap().ino();
    let sub_st_ino = st.st_ino;
    assert_eq!(
        sub_st_ino,
        node::st_ino(0, freed),
        "an upper-only dir shows its own number"
    );
    u.rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("b"), 0)
        .unwrap();
    assert_eq!(
        u.getattr(sub).unwrap().st_ino,
        sub_st_ino,
        "the moved node keeps its number"
    );
    // Whatever object the upper filesystem gives the freed inode to shows another number.
    assert_ne!(u.st_ino_of(0, freed), sub_st_ino);
    // And for real, when the filesystem does reuse it soon (ext4 often does, not always).
    let b = walk(&u, "b").unwrap();
    let mut reused = false;
    for i in 0..500 {
        let name = format!("f{i}");
        let (ino, st, fh) = u.create(b, OsStr::new(&name), 0o644, ROOT_CALLER).unwrap();
        u.release(fh);
        assert_ne!(st.st_ino, sub_st_ino, "{name} aliases the moved directory");
        assert_ne!(ino, sub, "{name} got the directory's node");
        if fs::symlink_metadata(d.upper.join("b").join(&name))
            .unwrap()
            .ino()
            == freed
        {
            reused = true;
            assert_eq!(read_all(&u, ino), b"");
            break;
        }
    }
    assert!(names(&u, "b").starts_with(&["f0".to_string()]) || reused);
    if !reused {
        eprintln!("the upper filesystem did not reuse inode {freed}; real aliasing not exercised");
    }
}
