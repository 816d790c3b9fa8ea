//! Union rules checked on temp-dir layers, without a mount.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::layer::dir::DirLayer;

/// Writes `path -> content` files (a trailing `/` makes a directory) under `root`.
fn layer(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path.trim_end_matches('/'));
        if path.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
        } else {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
        }
    }
}

/// A union of the given directories, topmost first.
fn union(dirs: &[&Path]) -> Union {
    let layers: Vec<Arc<dyn Layer>> = dirs
        .iter()
        .map(|d| Arc::new(DirLayer::open(d).unwrap()) as Arc<dyn Layer>)
        .collect();
    Union::new(layers).unwrap()
}

fn walk(u: &Union, path: &str) -> io::Result<Ino> {
    let mut ino = ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = u.lookup(ino, OsStr::new(part))?.0;
    }
    Ok(ino)
}

fn read(u: &Union, path: &str) -> String {
    let fh = u.open(walk(u, path).unwrap(), false).unwrap();
    let data = u.read(fh, 0, 4096).unwrap();
    u.release(fh);
    String::from_utf8(data).unwrap()
}

fn list(u: &Union, path: &str) -> Vec<String> {
    let fh = u.opendir(walk(u, path).unwrap()).unwrap();
    let mut names: Vec<String> = u
        .listing(fh)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    u.releasedir(fh);
    names.sort();
    names
}

fn enoent(r: io::Result<Ino>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::ENOENT))
}

#[test]
fn top_most_wins_and_directories_merge() {
    let (lo, hi) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    layer(
        lo.path(),
        &[("etc/a", "lower a"), ("etc/b", "lower b"), ("x", "lower x")],
    );
    layer(hi.path(), &[("etc/a", "upper a"), ("etc/c", "upper c")]);
    let u = union(&[hi.path(), lo.path()]);
    assert_eq!(read(&u, "etc/a"), "upper a");
    assert_eq!(read(&u, "etc/b"), "lower b");
    assert_eq!(read(&u, "x"), "lower x");
    assert_eq!(list(&u, "etc"), [".", "..", "a", "b", "c"]);
    assert_eq!(u.getattr(walk(&u, "etc").unwrap()).unwrap().attr.nlink, 1);
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_names() {
    let (lo, mid, hi) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    layer(
        lo.path(),
        &[
            ("gone", "x"),
            ("d/old", "x"),
            ("keep/k", "x"),
            ("dir/f", "x"),
        ],
    );
    layer(
        mid.path(),
        &[(".wh.gone", ""), ("d/.wh..wh..opq", ""), ("d/new", "n")],
    );
    layer(hi.path(), &[("gone", "back"), ("keep/.wh.k", "")]);
    let u = union(&[hi.path(), mid.path(), lo.path()]);
    // Re-created above its whiteout.
    assert_eq!(read(&u, "gone"), "back");
    assert_eq!(list(&u, "d"), [".", "..", "new"]);
    assert!(enoent(walk(&u, "d/old")));
    assert_eq!(list(&u, "keep"), [".", ".."]);
    assert!(enoent(walk(&u, "keep/k")));
    // Markers are never names of their own.
    assert!(enoent(walk(&u, "keep/.wh.k")));
    assert!(enoent(walk(&u, "d/.wh..wh..opq")));
    assert_eq!(list(&u, ""), [".", "..", "d", "dir", "gone", "keep"]);
}

#[test]
fn a_non_directory_hides_and_stops_the_merge() {
    let (lo, mid, hi) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    layer(lo.path(), &[("p/deep", "lowest")]);
    layer(mid.path(), &[("p", "a file in the middle")]);
    layer(hi.path(), &[("p/top", "t")]);
    let u = union(&[hi.path(), mid.path(), lo.path()]);
    assert_eq!(list(&u, "p"), [".", "..", "top"]);
    assert!(enoent(walk(&u, "p/deep")));
    // And a file on top hides a directory below.
    let top = tempfile::tempdir().unwrap();
    layer(top.path(), &[("p", "file on top")]);
    let u = union(&[top.path(), hi.path(), mid.path(), lo.path()]);
    assert_eq!(read(&u, "p"), "file on top");
    assert!(matches!(walk(&u, "p/top"), Err(e) if e.raw_os_error() == Some(libc::ENOTDIR)));
}

#[test]
fn inode_numbers_are_stable_and_shared_by_hardlinks() {
    let (lo, hi) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    layer(lo.path(), &[("a", "data")]);
    fs::hard_link(lo.path().join("a"), lo.path().join("b")).unwrap();
    layer(hi.path(), &[("c", "c")]);
    let u = union(&[hi.path(), lo.path()]);
    let a = u.lookup(ROOT_INO, OsStr::new("a")).unwrap();
    let b = u.lookup(ROOT_INO, OsStr::new("b")).unwrap();
    assert_eq!(a.1.st_ino, b.1.st_ino);
    assert_eq!(a.1.attr.nlink, 2);
    let c1 = u.lookup(ROOT_INO, OsStr::new("c")).unwrap();
    u.forget(c1.0, 1);
    let c2 = u.lookup(ROOT_INO, OsStr::new("c")).unwrap();
    assert_eq!(c1.1.st_ino, c2.1.st_ino);
    assert_ne!(a.1.st_ino, c1.1.st_ino);
    // The listing reports the same inode numbers as stat.
    let fh = u.opendir(ROOT_INO).unwrap();
    let listing = u.listing(fh).unwrap();
    let listed = |n: &str| {
        listing
            .entries
            .iter()
            .find(|e| *e.name == *n)
            .unwrap()
            .st_ino
    };
    assert_eq!(listed("a"), a.1.st_ino);
    assert_eq!(listed("c"), c2.1.st_ino);
}

#[test]
fn lookup_counts_release_nodes() {
    let lo = tempfile::tempdir().unwrap();
    layer(lo.path(), &[("d/f", "x")]);
    let u = union(&[lo.path()]);
    let base = u.node_count();
    let d = u.lookup(ROOT_INO, OsStr::new("d")).unwrap().0;
    let f = u.lookup(d, OsStr::new("f")).unwrap().0;
    u.lookup(d, OsStr::new("f")).unwrap();
    assert_eq!(u.node_count(), base + 2);
    u.forget(f, 2);
    u.forget(d, 1);
    assert_eq!(u.node_count(), base);
    assert!(u.getattr(f).is_err());
}

#[test]
fn read_only_checks() {
    let lo = tempfile::tempdir().unwrap();
    layer(lo.path(), &[("f", "x")]);
    let u = union(&[lo.path()]);
    let f = walk(&u, "f").unwrap();
    let err = u.open(f, true).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        u.access(f, W_OK, 0, 0).unwrap_err().raw_os_error(),
        Some(libc::EROFS)
    );
    u.access(f, R_OK, 0, 0).unwrap();
    assert!(u.statfs().unwrap().bsize > 0);
}
