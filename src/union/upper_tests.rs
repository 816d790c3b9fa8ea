//! The writable upper without a mount: copy-up atomicity, work-directory cleaning, and the
//! merged view following each change.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use super::upper::Upper;
use super::*;
use crate::layer::dir::DirLayer;
use crate::layer::{DirEntry, Entry, NodeId};

pub(super) const ROOT_CALLER: Caller = Caller {
    uid: 0,
    gid: 0,
    umask: 0o022,
};

pub(super) struct Dirs {
    _tmp: tempfile::TempDir,
    pub(super) upper: std::path::PathBuf,
    pub(super) work: std::path::PathBuf,
    pub(super) lower: std::path::PathBuf,
}

/// Copy-up sets owners and unlink makes device nodes: root only (CI runs as root).
pub(super) fn root() -> bool {
    rustix::process::geteuid().is_root()
}

pub(super) fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let (upper, work, lower) = (
        tmp.path().join("u"),
        tmp.path().join("w"),
        tmp.path().join("l"),
    );
    for d in [&upper, &work, &lower] {
        fs::create_dir(d).unwrap();
    }
    Dirs {
        _tmp: tmp,
        upper,
        work,
        lower,
    }
}

pub(super) fn writable(d: &Dirs, lower: Arc<dyn Layer>) -> Union {
    let upper = Upper::open(&d.upper, &d.work).unwrap();
    Union::with_upper(upper, vec![lower]).unwrap()
}

pub(super) fn walk(u: &Union, path: &str) -> io::Result<Ino> {
    let mut ino = ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = u.lookup(ino, OsStr::new(part))?.0;
    }
    Ok(ino)
}

pub(super) fn names(u: &Union, path: &str) -> Vec<String> {
    let fh = u.opendir(walk(u, path).unwrap()).unwrap();
    let mut v: Vec<String> = u.listing(fh).unwrap().entries[2..]
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    u.releasedir(fh);
    v.sort();
    v
}

pub(super) fn staged(d: &Dirs) -> Vec<OsString> {
    fs::read_dir(d.work.join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// A directory layer whose file data fails after the first megabyte, like a disk error or a
/// crash in the middle of a copy-up.
pub(super) struct FailingData(pub(super) DirLayer);

struct FailAfter(Box<dyn FileData>);

impl FileData for FailAfter {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= 1 << 20 {
            return Err(errno(libc::EIO));
        }
        self.0.read_at(buf, offset)
    }
}

impl Layer for FailingData {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn root(&self) -> io::Result<Entry> {
        self.0.root()
    }
    fn lookup(&self, dir: NodeId, name: &OsStr) -> io::Result<Option<Entry>> {
        self.0.lookup(dir, name)
    }
    fn attr(&self, node: NodeId) -> io::Result<crate::layer::Attr> {
        self.0.attr(node)
    }
    fn read_dir(&self, dir: NodeId) -> io::Result<Vec<DirEntry>> {
        self.0.read_dir(dir)
    }
    fn open(&self, node: NodeId) -> io::Result<Box<dyn FileData>> {
        Ok(Box::new(FailAfter(self.0.open(node)?)))
    }
    fn readlink(&self, node: NodeId) -> io::Result<Vec<u8>> {
        self.0.readlink(node)
    }
    fn list_xattrs(&self, node: NodeId) -> io::Result<Vec<OsString>> {
        self.0.list_xattrs(node)
    }
    fn get_xattr(&self, node: NodeId, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        self.0.get_xattr(node, name)
    }
    fn statfs(&self) -> io::Result<crate::layer::FsStats> {
        self.0.statfs()
    }
}

#[test]
fn a_copy_up_that_fails_midway_leaves_no_partial_file() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("deep/er")).unwrap();
    fs::write(d.lower.join("deep/er/big"), vec![7u8; 3 << 20]).unwrap();
    let lower = Arc::new(FailingData(DirLayer::open(&d.lower).unwrap()));
    let u = writable(&d, lower);
    let ino = walk(&u, "deep/er/big").unwrap();
    let err = u.open_with(ino, true, false).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // The parents were copied (complete, they have no data); the file was not, and the
    // half-written copy is gone from the work directory too.
    assert!(d.upper.join("deep/er").is_dir());
    assert!(!d.upper.join("deep/er/big").exists());
    assert!(staged(&d).is_empty(), "left in work: {:?}", staged(&d));
    // The merged view still shows the lower file.
    assert_eq!(u.getattr(ino).unwrap().attr.size, 3 << 20);
    let fh = u.open(ino, false).unwrap();
    assert_eq!(u.read(fh, 0, 4).unwrap(), vec![7u8; 4]);
}

#[test]
fn leftovers_in_the_work_directory_are_removed_at_mount() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.work.join("work/#um.1.1/sub")).unwrap();
    fs::write(d.work.join("work/#um.1.1/sub/f"), b"partial").unwrap();
    fs::write(d.work.join("work/#um.1.2"), b"partial").unwrap();
    let _u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    assert!(staged(&d).is_empty());
}

#[test]
fn changes_show_in_the_merged_view_at_once() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::create_dir_all(d.lower.join("dir/sub")).unwrap();
    fs::write(d.lower.join("dir/a"), b"lower a").unwrap();
    fs::write(d.lower.join("dir/sub/x"), b"x").unwrap();
    let u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    let dir = walk(&u, "dir").unwrap();
    assert_eq!(names(&u, "dir"), ["a", "sub"]);

    let (_, _, fh) = u
        .create(dir, OsStr::new("new"), 0o644, ROOT_CALLER)
        .unwrap();
    assert_eq!(u.write(fh, 0, b"hello").unwrap(), 5);
    u.release(fh);
    assert_eq!(names(&u, "dir"), ["a", "new", "sub"]);
    assert_eq!(
        u.getattr(walk(&u, "dir/new").unwrap()).unwrap().attr.perm,
        0o644
    );

    // Writing a lower file: copied up, same node, new data; the lower is untouched.
    let a = walk(&u, "dir/a").unwrap();
    let before = u.getattr(a).unwrap().st_ino;
    let fh = u.open_with(a, true, false).unwrap();
    u.write(fh, 0, b"UPPER").unwrap();
    u.release(fh);
    assert_eq!(walk(&u, "dir/a").unwrap(), a);
    assert_eq!(u.getattr(a).unwrap().st_ino, before);
    let fh = u.open(a, false).unwrap();
    assert_eq!(u.read(fh, 0, 100).unwrap(), b"UPPER a");
    assert_eq!(fs::read(d.lower.join("dir/a")).unwrap(), b"lower a");

    // Unlink of a copied-up name leaves a whiteout; rmdir refuses a merged non-empty dir.
    u.unlink(dir, OsStr::new("a")).unwrap();
    assert!(
        fs::symlink_metadata(d.upper.join("dir/a"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(
        u.rmdir(dir, OsStr::new("sub")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    let sub = walk(&u, "dir/sub").unwrap();
    u.unlink(sub, OsStr::new("x")).unwrap();
    u.rmdir(dir, OsStr::new("sub")).unwrap();
    assert_eq!(names(&u, "dir"), ["new"]);

    // mkdir over the whiteout: an opaque directory.
    u.mkdir(dir, OsStr::new("sub"), 0o755, ROOT_CALLER).unwrap();
    assert!(names(&u, "dir/sub").is_empty());
    assert_eq!(names(&u, "dir"), ["new", "sub"]);

    // Rename of an upper file into a lower-only... and back out of sight.
    u.rename(dir, OsStr::new("new"), ROOT_INO, OsStr::new("moved"), 0)
        .unwrap();
    assert_eq!(names(&u, "dir"), ["sub"]);
    assert_eq!(names(&u, ""), ["dir", "moved"]);
    assert_eq!(
        u.rename(ROOT_INO, OsStr::new("moved"), dir, OsStr::new("sub"), 0)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EISDIR)
    );
}

#[test]
fn a_union_without_upper_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("f"), b"f").unwrap();
    let layer: Arc<dyn Layer> = Arc::new(DirLayer::open(Path::new(tmp.path())).unwrap());
    let u = Union::new(vec![layer]).unwrap();
    let f = walk(&u, "f").unwrap();
    let erofs = Some(libc::EROFS);
    assert_eq!(
        u.open_with(f, true, false).unwrap_err().raw_os_error(),
        erofs
    );
    assert_eq!(
        u.create(ROOT_INO, OsStr::new("g"), 0o644, ROOT_CALLER)
            .unwrap_err()
            .raw_os_error(),
        erofs
    );
    assert_eq!(
        u.unlink(ROOT_INO, OsStr::new("f"))
            .unwrap_err()
            .raw_os_error(),
        erofs
    );
    assert_eq!(
        u.setattr(f, SetAttr::default()).unwrap_err().raw_os_error(),
        erofs
    );
}

/// Regression (stress test): an upper object's raw inode number is reused by the filesystem
/// (ext4 hands it out again at once) while the kernel still holds the node of the object
/// that had it (unlinked, not yet forgotten). The new object used to be given that live
/// node, of the wrong type, and the kernel failed each access to it with EIO.
#[test]
fn a_new_object_never_takes_the_node_of_a_gone_one_with_its_inode_number() {
    use std::os::unix::fs::MetadataExt;
    let d = dirs();
    let u = writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap()));
    let mut reused = 0;
    for i in 0..64 {
        let name = format!("f{i}");
        let (old, _, fh) = u
            .create(ROOT_INO, OsStr::new(&name), 0o644, ROOT_CALLER)
            .unwrap();
        u.release(fh);
        let raw = fs::metadata(d.upper.join(&name)).unwrap().ino();
        // The kernel keeps `old` until its forget; the name goes now.
        u.unlink(ROOT_INO, OsStr::new(&name)).unwrap();
        let (new, kind) = if i % 2 == 0 {
            let dname = format!("d{i}");
            let (ino, _) = u
                .mkdir(ROOT_INO, OsStr::new(&dname), 0o755, ROOT_CALLER)
                .unwrap();
            reused += usize::from(fs::metadata(d.upper.join(&dname)).unwrap().ino() == raw);
            (ino, Kind::Dir)
        } else {
            let fname = format!("g{i}");
            let (ino, _, fh) = u
                .create(ROOT_INO, OsStr::new(&fname), 0o644, ROOT_CALLER)
                .unwrap();
            u.release(fh);
            reused += usize::from(fs::metadata(d.upper.join(&fname)).unwrap().ino() == raw);
            (ino, Kind::File)
        };
        assert_ne!(
            new, old,
            "round {i}: the new object got the live node of the gone one"
        );
        assert_eq!(u.getattr(new).unwrap().attr.kind, kind, "round {i}");
        // Once forgotten, the old number may come back.
        u.forget(old, 1);
    }
    eprintln!("inode numbers reused by the filesystem: {reused} of 64");
}

/// Regression (stress test): opening or stating an upper file while another thread unlinks
/// it (leaving a whiteout, as a lower has the name) must answer ENOENT, never ENXIO (the
/// whiteout device opened by name) nor attributes of another type (EIO in the kernel).
#[test]
fn open_and_stat_racing_an_unlink_see_the_file_or_enoent() {
    if !root() {
        return;
    }
    let d = dirs();
    fs::write(d.lower.join("f"), b"lower").unwrap();
    let u = Arc::new(writable(&d, Arc::new(DirLayer::open(&d.lower).unwrap())));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (u, stop) = (u.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 200 {
                if let Ok((_, _, fh)) = u.create(ROOT_INO, OsStr::new("f"), 0o644, ROOT_CALLER) {
                    u.release(fh);
                }
                let _ = u.unlink(ROOT_INO, OsStr::new("f"));
                rounds += 1;
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let u = u.clone();
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                let t = std::time::Instant::now();
                while t.elapsed() < std::time::Duration::from_millis(1500) {
                    let Ok((ino, _)) = u.lookup(ROOT_INO, OsStr::new("f")) else {
                        continue;
                    };
                    let opened = u.open(ino, false).map(|fh| u.release(fh));
                    let kind = u.getattr(ino).map(|st| st.attr.kind);
                    if let Ok(k) = kind
                        && k != Kind::File
                    {
                        bad.push(format!("getattr: a {k:?}"));
                    }
                    for r in [opened, kind.map(|_| ())] {
                        if let Err(e) = r
                            && e.raw_os_error() != Some(libc::ENOENT)
                        {
                            bad.push(e.to_string());
                        }
                    }
                    u.forget(ino, 1);
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        bad.is_empty(),
        "{} errors other than ENOENT, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(8)]
    );
}
