//! Tree snapshots: everything `lstat`, `readlink`, `read` and `listxattr` say about a mounted
//! tree, collected without following symlinks, and a comparison that prints a readable diff.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// One of `d f l p c b s`.
    pub kind: char,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_size`; directories' sizes are filesystem-specific and only compared on request.
    pub size: u64,
    pub mtime: (i64, i64),
    pub sha256: Option<String>,
    pub link: Option<String>,
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes except `trusted.overlay.*` (overlayfs's own bookkeeping).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// `st_nlink`; directories' link counts differ between union filesystems and are not kept.
    pub nlink: Option<u64>,
    pub ino: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Relative path ("" for the root) to node.
    pub nodes: BTreeMap<String, Node>,
    /// Paths of non-directories sharing an inode number, groups of two or more.
    pub hardlinks: BTreeSet<BTreeSet<String>>,
}

/// Walks `root` with lstat and collects a [`Snapshot`]. Panics with the path on any error.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut snap = Snapshot::default();
    walk(root, "", &mut snap);
    let mut by_ino: HashMap<(u64, u64), BTreeSet<String>> = HashMap::new();
    for (path, node) in &snap.nodes {
        if node.kind != 'd' {
            let dev = fs::symlink_metadata(root.join(path))
                .map(|m| m.dev())
                .unwrap_or(0);
            by_ino
                .entry((dev, node.ino))
                .or_default()
                .insert(path.clone());
        }
    }
    snap.hardlinks = by_ino.into_values().filter(|g| g.len() > 1).collect();
    snap
}

fn walk(root: &Path, rel: &str, snap: &mut Snapshot) {
    let full = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let node = node_of(&full);
    let is_dir = node.kind == 'd';
    snap.nodes.insert(rel.to_string(), node);
    if !is_dir {
        return;
    }
    let mut names: Vec<String> = fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()))
        .map(|d| {
            let d = d.unwrap_or_else(|e| panic!("read_dir {} entry: {e}", full.display()));
            d.file_name()
                .into_string()
                .expect("utf-8 names in test trees")
        })
        .collect();
    names.sort();
    for name in names {
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        walk(root, &child, snap);
    }
}

fn node_of(p: &Path) -> Node {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        's'
    };
    let sha256 = (kind == 'f').then(|| {
        let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        hex(&Sha256::digest(&data))
    });
    let link = (kind == 'l').then(|| {
        let t = fs::read_link(p).unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()));
        t.to_str().expect("utf-8 link target").to_string()
    });
    let rdev = matches!(kind, 'c' | 'b').then(|| {
        let r = m.rdev();
        (libc::major(r), libc::minor(r))
    });
    Node {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        sha256,
        link,
        rdev,
        xattrs: xattrs_of(p),
        nlink: (kind != 'd').then(|| m.nlink()),
        ino: m.ino(),
    }
}

/// All xattrs of `p` (not following symlinks) except `trusted.overlay.*`. A filesystem that
/// does not support xattrs at all (EOPNOTSUPP) has none.
pub fn xattrs_of(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let names = match read_sized(|buf| rustix::fs::llistxattr(p, buf)) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return out,
        Err(e) => panic!("llistxattr {}: {e}", p.display()),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8(name.to_vec()).expect("utf-8 xattr name");
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let value = read_sized(|buf| rustix::fs::lgetxattr(p, name.as_str(), buf))
            .unwrap_or_else(|e| panic!("lgetxattr {} {name}: {e}", p.display()));
        out.insert(name, value);
    }
    out
}

/// Calls a "fill this buffer" syscall with a growing buffer until the answer fits.
fn read_sized(
    mut f: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                buf.resize(buf.len() * 8, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What a comparison leaves out, each with the reason written where it is chosen.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    /// Compare `st_size` of directories (only meaningful when both sides are the same kind of
    /// filesystem over real directories).
    pub compare_dir_sizes: bool,
    /// Paths (exact) whose mtime is not compared.
    pub ignore_mtime: BTreeSet<String>,
    /// Paths (exact) whose mode, uid, gid and mtime are not compared.
    pub ignore_attrs: BTreeSet<String>,
}

/// Differences between `expected` and `actual`, one human-readable line each.
pub fn diff(expected: &Snapshot, actual: &Snapshot, ex: &Exclusions) -> Vec<String> {
    let mut out = Vec::new();
    let show = |p: &str| {
        if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        }
    };
    for (path, e) in &expected.nodes {
        let Some(a) = actual.nodes.get(path) else {
            out.push(format!(
                "{}: missing (expected {})",
                show(path),
                describe(e)
            ));
            continue;
        };
        let mut field = |name: &str, ev: String, av: String| {
            if ev != av {
                out.push(format!(
                    "{}: {name}: expected {ev}, actual {av}",
                    show(path)
                ));
            }
        };
        field("kind", e.kind.to_string(), a.kind.to_string());
        if !ex.ignore_attrs.contains(path) {
            field("mode", format!("{:04o}", e.mode), format!("{:04o}", a.mode));
            field("uid", e.uid.to_string(), a.uid.to_string());
            field("gid", e.gid.to_string(), a.gid.to_string());
            if !ex.ignore_mtime.contains(path) {
                let t = |(s, n): (i64, i64)| format!("{s}.{n:09}");
                field("mtime", t(e.mtime), t(a.mtime));
            }
        }
        if e.kind != 'd' || a.kind != 'd' || ex.compare_dir_sizes {
            field("size", e.size.to_string(), a.size.to_string());
        }
        field(
            "sha256",
            format!("{:?}", e.sha256),
            format!("{:?}", a.sha256),
        );
        field("link", format!("{:?}", e.link), format!("{:?}", a.link));
        field("rdev", format!("{:?}", e.rdev), format!("{:?}", a.rdev));
        field("nlink", format!("{:?}", e.nlink), format!("{:?}", a.nlink));
        field("xattrs", fmt_xattrs(&e.xattrs), fmt_xattrs(&a.xattrs));
    }
    for (path, a) in &actual.nodes {
        if !expected.nodes.contains_key(path) {
            out.push(format!(
                "{}: unexpected (actual {})",
                show(path),
                describe(a)
            ));
        }
    }
    for g in expected.hardlinks.difference(&actual.hardlinks) {
        out.push(format!(
            "hardlink group {g:?}: expected, not found as one inode in actual"
        ));
    }
    for g in actual.hardlinks.difference(&expected.hardlinks) {
        out.push(format!(
            "hardlink group {g:?}: one inode in actual, not expected"
        ));
    }
    out
}

fn describe(n: &Node) -> String {
    let mut s = format!("{} {:04o} {}:{}", n.kind, n.mode, n.uid, n.gid);
    if let Some(l) = &n.link {
        let _ = write!(s, " -> {l}");
    }
    if n.kind == 'f' {
        let _ = write!(s, " {} bytes", n.size);
    }
    s
}

fn fmt_xattrs(x: &BTreeMap<String, Vec<u8>>) -> String {
    let items: Vec<String> = x
        .iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v).escape_debug()))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Panics with a readable diff (first 60 lines) when the snapshots differ.
pub fn assert_same_tree(what: &str, expected: &Snapshot, actual: &Snapshot, ex: &Exclusions) {
    let d = diff(expected, actual, ex);
    if d.is_empty() {
        return;
    }
    let mut msg = format!(
        "{what}: trees differ in {} ways ({} expected paths, {} actual)\n",
        d.len(),
        expected.nodes.len(),
        actual.nodes.len()
    );
    for line in d.iter().take(60) {
        msg.push_str("  ");
        msg.push_str(line);
        msg.push('\n');
    }
    if d.len() > 60 {
        let _ = writeln!(msg, "  ... and {} more", d.len() - 60);
    }
    panic!("{msg}");
}
