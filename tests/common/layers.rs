//! Layer descriptions: a short literal list of entries that is written out either as an
//! overlayfs-style directory (whiteout = char device 0/0, opaque = `trusted.overlay.opaque=y`),
//! as a directory with OCI markers (`.wh.NAME`, `.wh..wh..opq` as empty regular files, what
//! containers/storage leaves in its lower dirs), or as an OCI tar layer. The same description
//! gives all three forms, so a test can put them side by side.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink as unix_symlink};
use std::path::{Path, PathBuf};

/// Modification time given to every entry (and every implied parent directory) that does not
/// set its own. Seconds since the epoch, nanoseconds.
pub const DEFAULT_MTIME: (i64, u32) = (1_600_000_000, 0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    /// A directory that hides everything below it in lower layers.
    Opaque,
    Symlink(String),
    /// A hard link to an earlier path of the same layer.
    Hardlink(String),
    /// Hides the name in lower layers.
    Whiteout,
    Fifo,
    CharDev(u32, u32),
    BlockDev(u32, u32),
}

/// One entry of a layer description. Built with [`file`], [`dir_`], ... and refined with the
/// chained setters ([`Entry::mode`], [`Entry::owner`], [`Entry::mtime`], [`Entry::xattr`]).
#[derive(Clone, Debug)]
pub struct Entry {
    /// Relative path inside the layer; "" is the layer's root directory.
    pub path: String,
    pub kind: Kind,
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

fn entry(path: &str, kind: Kind) -> Entry {
    let path = path.trim_start_matches("./").trim_matches('/');
    Entry {
        path: if path == "." {
            String::new()
        } else {
            path.to_string()
        },
        kind,
        mode: None,
        uid: 0,
        gid: 0,
        mtime: DEFAULT_MTIME,
        xattrs: Vec::new(),
    }
}

pub fn file(path: &str, content: impl AsRef<[u8]>) -> Entry {
    entry(path, Kind::File(content.as_ref().to_vec()))
}
pub fn dir_(path: &str) -> Entry {
    entry(path, Kind::Dir)
}
/// The layer's root directory, to give it its own attributes.
pub fn root() -> Entry {
    entry("", Kind::Dir)
}
pub fn opaque(path: &str) -> Entry {
    entry(path, Kind::Opaque)
}
/// `path` is a symlink whose target is `target` (like `ln -s target path`).
pub fn symlink(path: &str, target: &str) -> Entry {
    entry(path, Kind::Symlink(target.to_string()))
}
/// `path` is a hard link to `target`, an earlier entry of the same layer.
pub fn hardlink(path: &str, target: &str) -> Entry {
    entry(path, Kind::Hardlink(target.trim_matches('/').to_string()))
}
pub fn whiteout(path: &str) -> Entry {
    entry(path, Kind::Whiteout)
}
pub fn fifo(path: &str) -> Entry {
    entry(path, Kind::Fifo)
}
pub fn chardev(path: &str, major: u32, minor: u32) -> Entry {
    assert!(
        (major, minor) != (0, 0),
        "char device 0/0 is a whiteout; use whiteout()"
    );
    entry(path, Kind::CharDev(major, minor))
}
pub fn blockdev(path: &str, major: u32, minor: u32) -> Entry {
    entry(path, Kind::BlockDev(major, minor))
}

impl Entry {
    /// Permission bits, including setuid/setgid/sticky (`0o4755`).
    pub fn mode(mut self, mode: u32) -> Self {
        assert!(
            mode <= 0o7777,
            "mode {mode:o} has more than permission bits"
        );
        self.mode = Some(mode);
        self
    }
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, secs: i64, nsecs: u32) -> Self {
        assert!(nsecs < 1_000_000_000);
        self.mtime = (secs, nsecs);
        self
    }
    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.xattrs
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    fn effective_mode(&self) -> u32 {
        self.mode.unwrap_or(match self.kind {
            Kind::Dir | Kind::Opaque => 0o755,
            Kind::Symlink(_) => 0o777,
            _ => 0o644,
        })
    }
}

/// How a layer is written to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Directory; whiteouts are char devices 0/0, opaque dirs carry `trusted.overlay.opaque=y`.
    /// Kernel overlayfs reads this form.
    OverlayDir,
    /// Directory; whiteouts are empty `.wh.NAME` files, opaque dirs hold `.wh..wh..opq`.
    OciDir,
    /// A plain (uncompressed) tar with OCI whiteouts and PAX headers.
    Tar,
}

/// Writes the described layer at `dest` (a directory that must not exist yet, or a tar file)
/// and returns `dest`.
pub fn write_layer(dest: &Path, form: Form, entries: &[Entry]) -> PathBuf {
    let entries = with_parents(entries);
    match form {
        Form::OverlayDir | Form::OciDir => write_dir(dest, form, &entries),
        Form::Tar => write_tar(dest, &entries),
    }
    .unwrap_or_else(|e| panic!("writing layer {}: {e}", dest.display()));
    dest.to_path_buf()
}

/// Writes a stack of layers (bottom first) into a new directory under `root` named after the
/// form (`ovl`, `oci`, `tar`, then `ovl2`, ... when taken), as `l0`, `l1`, ... (`l0.tar`, ...
/// for tars), and returns their paths, bottom first.
pub fn write_stack(root: &Path, form: Form, layers: &[Vec<Entry>]) -> Vec<PathBuf> {
    let (base, suffix) = match form {
        Form::OverlayDir => ("ovl", ""),
        Form::OciDir => ("oci", ""),
        Form::Tar => ("tar", ".tar"),
    };
    let dir = (1..100)
        .map(|n: u32| {
            root.join(if n == 1 {
                base.to_string()
            } else {
                format!("{base}{n}")
            })
        })
        .find(|d| fs::create_dir(d).is_ok())
        .expect("a free stack directory name");
    layers
        .iter()
        .enumerate()
        .map(|(i, entries)| write_layer(&dir.join(format!("l{i}{suffix}")), form, entries))
        .collect()
}

/// The description with the root and every implied parent directory made explicit (default
/// attributes), each parent before its children. Later duplicates of a path replace earlier ones
/// in place, so a description can restate a parent with other attributes.
fn with_parents(entries: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |e: Entry, out: &mut Vec<Entry>| {
        if seen.insert(e.path.clone()) {
            out.push(e);
        } else if let Some(slot) = out.iter_mut().find(|o| o.path == e.path) {
            *slot = e;
        }
    };
    push(root(), &mut out);
    for e in entries {
        let mut parents = Vec::new();
        let mut p = Path::new(&e.path).parent();
        while let Some(dir) = p {
            if dir.as_os_str().is_empty() {
                break;
            }
            parents.push(dir.to_str().expect("utf-8 path").to_string());
            p = dir.parent();
        }
        for dir in parents.into_iter().rev() {
            if !out.iter().any(|o| o.path == dir) {
                push(dir_(&dir), &mut out);
            }
        }
        push(e.clone(), &mut out);
    }
    out
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(rc: libc::c_int, what: &str, p: &Path) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", p.display()),
        ))
    }
}

fn mknod(p: &Path, mode: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cstr(p);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    check(rc, "mknod", p)
}

fn set_times_nofollow(p: &Path, (secs, nsecs): (i64, u32)) -> io::Result<()> {
    let c = cstr(p);
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsecs.into(),
    };
    let times = [t, t];
    // SAFETY: `c` is a valid path and `times` points to two timespecs, as utimensat requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc, "utimensat", p)
}

fn write_dir(dest: &Path, form: Form, entries: &[Entry]) -> io::Result<()> {
    assert!(
        !dest.exists(),
        "layer directory {} already exists",
        dest.display()
    );
    fs::create_dir(dest)?;
    // Entries whose metadata we set afterwards (hardlinks share their target's).
    let mut owned: Vec<(PathBuf, &Entry)> = Vec::new();
    for e in entries {
        let p = if e.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&e.path)
        };
        let name = Path::new(&e.path).file_name();
        match &e.kind {
            Kind::Dir if e.path.is_empty() => {}
            Kind::Dir => fs::create_dir(&p)?,
            Kind::Opaque => {
                if !e.path.is_empty() {
                    fs::create_dir(&p)?;
                }
                match form {
                    Form::OverlayDir => rustix::fs::lsetxattr(
                        &p,
                        "trusted.overlay.opaque",
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )?,
                    _ => {
                        let marker = p.join(".wh..wh..opq");
                        fs::write(&marker, b"")?;
                        owned.push((marker, e));
                    }
                }
            }
            Kind::File(data) => fs::write(&p, data)?,
            Kind::Symlink(target) => unix_symlink(target, &p)?,
            Kind::Hardlink(target) => {
                fs::hard_link(dest.join(target), &p)?;
                continue;
            }
            Kind::Whiteout => {
                let name = name.expect("whiteout of the root").to_str().expect("utf-8");
                match form {
                    Form::OverlayDir => mknod(&p, libc::S_IFCHR, 0, 0)?,
                    _ => {
                        let marker = p.with_file_name(format!(".wh.{name}"));
                        fs::write(&marker, b"")?;
                        owned.push((marker, e));
                        continue;
                    }
                }
            }
            Kind::Fifo => mknod(&p, libc::S_IFIFO, 0, 0)?,
            Kind::CharDev(ma, mi) => mknod(&p, libc::S_IFCHR, *ma, *mi)?,
            Kind::BlockDev(ma, mi) => mknod(&p, libc::S_IFBLK, *ma, *mi)?,
        }
        owned.push((p, e));
    }
    for (p, e) in &owned {
        let is_marker = p
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."));
        if is_marker {
            // OCI markers: plain root-owned empty files, whatever the entry says.
            continue;
        }
        rustix::fs::chownat(
            rustix::fs::CWD,
            p,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if !matches!(e.kind, Kind::Symlink(_)) {
            // After chown, which clears setuid/setgid.
            fs::set_permissions(p, fs::Permissions::from_mode(e.effective_mode()))?;
        }
        for (k, v) in &e.xattrs {
            rustix::fs::lsetxattr(p, k.as_str(), v, rustix::fs::XattrFlags::empty())?;
        }
    }
    // Times last and deepest first: creating an entry changes its parent's mtime.
    owned.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, e) in &owned {
        set_times_nofollow(p, e.mtime)?;
    }
    Ok(())
}

/// One PAX extended header record: "LEN key=value\n", LEN counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    assert_eq!(rec.len(), len);
    rec
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    /// Appends one entry: a PAX header first when the entry needs one (long names, nanosecond
    /// mtime, xattrs), then a ustar header with explicit mode/uid/gid/mtime, then the data.
    fn append(
        &mut self,
        e: &Entry,
        name: &str,
        ty: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        let mut pax = Vec::new();
        if h.set_path(name).is_err() {
            pax.extend(pax_record("path", name.as_bytes()));
            h.set_path(format!("long/{}", name.len()))?;
        }
        // Literal: set_link_name would "canonicalise" a target like "/" into "//".
        if let Some(link) = link
            && h.set_link_name_literal(link).is_err()
        {
            pax.extend(pax_record("linkpath", link.as_bytes()));
            h.set_link_name("long")?;
        }
        if e.mtime.1 != 0 || e.mtime.0 < 0 {
            let v = format!("{}.{:09}", e.mtime.0, e.mtime.1);
            pax.extend(pax_record("mtime", v.as_bytes()));
        }
        for (k, v) in &e.xattrs {
            pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        if !pax.is_empty() {
            let mut x = tar::Header::new_ustar();
            let short: String = name
                .chars()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            x.set_path(format!("PaxHeaders/{}", short.trim_start_matches('/')))?;
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_mode(0o644);
            x.set_mtime(0);
            x.set_size(pax.len() as u64);
            x.set_cksum();
            self.builder.append(&x, pax.as_slice())?;
        }
        h.set_entry_type(ty);
        h.set_mode(e.effective_mode());
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(e.mtime.0.max(0) as u64);
        h.set_username("")?;
        h.set_groupname("")?;
        if let Kind::CharDev(ma, mi) | Kind::BlockDev(ma, mi) = e.kind {
            h.set_device_major(ma)?;
            h.set_device_minor(mi)?;
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data)
    }

    fn marker(&mut self, name: &str) -> io::Result<()> {
        let e = file(name, b"");
        self.append(&e, name, tar::EntryType::Regular, None, b"")
    }
}

fn write_tar(dest: &Path, entries: &[Entry]) -> io::Result<()> {
    let f = fs::File::create(dest)?;
    let mut w = TarWriter {
        builder: tar::Builder::new(io::BufWriter::new(f)),
    };
    for e in entries {
        let name = if e.path.is_empty() {
            "./".to_string()
        } else {
            e.path.clone()
        };
        let dir_name = format!("{}/", e.path);
        match &e.kind {
            Kind::Dir if e.path.is_empty() => {
                w.append(e, "./", tar::EntryType::Directory, None, b"")?
            }
            Kind::Dir => w.append(e, &dir_name, tar::EntryType::Directory, None, b"")?,
            Kind::Opaque => {
                let d = if e.path.is_empty() {
                    "./".to_string()
                } else {
                    dir_name.clone()
                };
                w.append(e, &d, tar::EntryType::Directory, None, b"")?;
                let marker = if e.path.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{}/.wh..wh..opq", e.path)
                };
                w.marker(&marker)?;
            }
            Kind::File(data) => w.append(e, &name, tar::EntryType::Regular, None, data)?,
            Kind::Symlink(t) => w.append(e, &name, tar::EntryType::Symlink, Some(t), b"")?,
            Kind::Hardlink(t) => {
                // The link entry restates its target's attributes, as GNU tar writes it.
                let target = entries.iter().find(|o| &o.path == t).unwrap_or_else(|| {
                    panic!(
                        "hardlink {} to {t}, which is not earlier in the layer",
                        e.path
                    )
                });
                let mut link = target.clone();
                link.xattrs.clear();
                w.append(&link, &name, tar::EntryType::Link, Some(t), b"")?
            }
            Kind::Whiteout => {
                let p = Path::new(&e.path);
                let base = p
                    .file_name()
                    .expect("whiteout of the root")
                    .to_str()
                    .expect("utf-8");
                let marker = match p.parent().and_then(Path::to_str).filter(|s| !s.is_empty()) {
                    Some(parent) => format!("{parent}/.wh.{base}"),
                    None => format!(".wh.{base}"),
                };
                w.marker(&marker)?;
            }
            Kind::Fifo => w.append(e, &name, tar::EntryType::Fifo, None, b"")?,
            Kind::CharDev(..) => w.append(e, &name, tar::EntryType::Char, None, b"")?,
            Kind::BlockDev(..) => w.append(e, &name, tar::EntryType::Block, None, b"")?,
        }
    }
    w.builder.into_inner()?.flush()
}

/// Deterministic pseudo-random bytes (xorshift), for large file contents.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
