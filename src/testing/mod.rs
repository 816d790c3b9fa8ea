//! Layers from a short literal description, for tests (behind the `testing` feature).
//!
//! A description is a list of [`Entry`] values: files with their content, directories,
//! opaque directories, symlinks, hard links, whiteouts, fifos and devices, each with an
//! optional mode, owner, modification time and extended attributes. Parent directories
//! that are not listed are implied (mode 0755, owner 0:0, [`DEFAULT_MTIME`]). The same
//! description can be written in three [`Form`]s, so a test can check that all of them
//! mean the same tree:
//!
//! - [`Form::OverlayDir`]: a directory as kernel overlayfs reads it (a whiteout is a
//!   character device 0/0, an opaque directory carries `trusted.overlay.opaque=y`, or
//!   `user.overlay.opaque=y` when not written by root);
//! - [`Form::OciDir`]: a directory with OCI markers (`.wh.NAME`, `.wh..wh..opq` as empty
//!   regular files), what containers/storage leaves in its lower directories;
//! - [`Form::Tar`]: an uncompressed OCI tar layer with PAX headers for long names,
//!   nanosecond times and xattrs.
//!
//! ```
//! use unionmount::testing::{Form, dir, file, opaque, symlink, whiteout, write_stack};
//!
//! # fn main() -> std::io::Result<()> {
//! let tmp = tempfile::tempdir()?;
//! let layers = write_stack(
//!     tmp.path(),
//!     Form::Tar,
//!     &[
//!         // Bottom layer.
//!         vec![
//!             file("etc/motd", "base\n"),
//!             file("etc/gone", "x").mode(0o600),
//!             file("var/cache/a", "a"),
//!         ],
//!         // Top layer: deletes a file, hides a directory's old content, adds a link.
//!         vec![
//!             whiteout("etc/gone"),
//!             opaque("var/cache"),
//!             dir("home/user").owner(1000, 1000),
//!             symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
//!         ],
//!     ],
//! )?;
//! assert_eq!(layers.len(), 2);
//! assert!(layers[1].ends_with("l1.tar"));
//! # Ok(()) }
//! ```
//!
//! Without root, what needs privilege cannot be written in the directory forms: devices
//! other than whiteouts, owners other than the user's own, and `trusted.*` xattrs. Entries
//! that leave the owner unset keep the writer's own there (tars always say 0:0).

mod dir;
mod tar;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Modification time given to every entry (and every implied parent directory) that does
/// not set its own: seconds since the epoch, and nanoseconds.
pub const DEFAULT_MTIME: (i64, u32) = (1_600_000_000, 0);

/// What an [`Entry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and its content.
    File(Vec<u8>),
    Dir,
    /// A directory that hides everything below it in lower layers.
    Opaque,
    /// A symlink and its target.
    Symlink(String),
    /// A hard link to an earlier path of the same layer.
    Hardlink(String),
    /// Hides the name in lower layers.
    Whiteout,
    Fifo,
    /// A character device: major, minor.
    CharDev(u32, u32),
    /// A block device: major, minor.
    BlockDev(u32, u32),
}

/// One entry of a layer description. Made with [`file()`], [`dir`], [`opaque`], [`symlink`],
/// [`hardlink`], [`whiteout`], [`fifo`], [`chardev`], [`blockdev`] or [`root`], and refined
/// with the chained setters.
///
/// ```
/// use unionmount::testing::{Kind, file};
///
/// let e = file("usr/bin/tool", "#!/bin/sh\n")
///     .mode(0o4755)
///     .owner(0, 50)
///     .mtime(1_700_000_000, 500)
///     .xattr("user.origin", "test");
/// assert_eq!(e.path(), "usr/bin/tool");
/// assert_eq!(e.kind(), &Kind::File(b"#!/bin/sh\n".to_vec()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path inside the layer; "" is the layer's root directory.
    path: String,
    kind: Kind,
    mode: Option<u32>,
    /// `None`: 0:0 in a tar, and the writer's own in a directory written without root.
    owner: Option<(u32, u32)>,
    mtime: (i64, u32),
    xattrs: Vec<(String, Vec<u8>)>,
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
        owner: None,
        mtime: DEFAULT_MTIME,
        xattrs: Vec::new(),
    }
}

/// A regular file with `content` (mode 0644 unless set).
pub fn file(path: &str, content: impl AsRef<[u8]>) -> Entry {
    entry(path, Kind::File(content.as_ref().to_vec()))
}

/// A directory (mode 0755 unless set). Listing one is needed only to give it attributes
/// or to have it empty; parents of other entries are implied.
pub fn dir(path: &str) -> Entry {
    entry(path, Kind::Dir)
}

/// The layer's root directory, to give it attributes of its own.
pub fn root() -> Entry {
    entry("", Kind::Dir)
}

/// A directory that hides whatever lower layers have below it.
pub fn opaque(path: &str) -> Entry {
    entry(path, Kind::Opaque)
}

/// `path` is a symlink to `target` (like `ln -s target path`).
pub fn symlink(path: &str, target: &str) -> Entry {
    entry(path, Kind::Symlink(target.to_string()))
}

/// `path` is a hard link to `target`, an earlier entry of the same layer.
pub fn hardlink(path: &str, target: &str) -> Entry {
    entry(path, Kind::Hardlink(target.trim_matches('/').to_string()))
}

/// Hides `path` of lower layers.
pub fn whiteout(path: &str) -> Entry {
    entry(path, Kind::Whiteout)
}

/// A named pipe.
pub fn fifo(path: &str) -> Entry {
    entry(path, Kind::Fifo)
}

/// A character device.
///
/// # Panics
/// If the device is 0/0, which is a whiteout: use [`whiteout`].
pub fn chardev(path: &str, major: u32, minor: u32) -> Entry {
    assert!(
        (major, minor) != (0, 0),
        "char device 0/0 is a whiteout; use whiteout()"
    );
    entry(path, Kind::CharDev(major, minor))
}

/// A block device.
pub fn blockdev(path: &str, major: u32, minor: u32) -> Entry {
    entry(path, Kind::BlockDev(major, minor))
}

impl Entry {
    /// Permission bits, including setuid, setgid and sticky (`0o4755`).
    ///
    /// # Panics
    /// If `mode` has bits above `0o7777` (the file type comes from the entry's kind).
    pub fn mode(mut self, mode: u32) -> Entry {
        assert!(
            mode <= 0o7777,
            "mode {mode:o} has more than permission bits"
        );
        self.mode = Some(mode);
        self
    }

    /// Owner and group ids (default 0:0).
    pub fn owner(mut self, uid: u32, gid: u32) -> Entry {
        self.owner = Some((uid, gid));
        self
    }

    /// Modification time: seconds since the epoch, and nanoseconds.
    ///
    /// # Panics
    /// If `nsecs` is a second or more.
    pub fn mtime(mut self, secs: i64, nsecs: u32) -> Entry {
        assert!(nsecs < 1_000_000_000, "mtime nanoseconds {nsecs} >= 1 s");
        self.mtime = (secs, nsecs);
        self
    }

    /// An extended attribute (`user.*`, `trusted.*`, `security.*`).
    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Entry {
        self.xattrs
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// The same entry with no extended attributes (for a writer that cannot store them).
    pub fn without_xattrs(mut self) -> Entry {
        self.xattrs.clear();
        self
    }

    /// The path inside the layer, without leading `./` or `/`; "" for the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The permission bits written: the entry's own, else 0755 for directories, 0777 for
    /// symlinks and 0644 for the rest.
    pub fn effective_mode(&self) -> u32 {
        self.mode.unwrap_or(match self.kind {
            Kind::Dir | Kind::Opaque => 0o755,
            Kind::Symlink(_) => 0o777,
            _ => 0o644,
        })
    }

    /// Owner and group written in a tar (0:0 unless set).
    pub fn ids(&self) -> (u32, u32) {
        self.owner.unwrap_or((0, 0))
    }

    pub fn modified(&self) -> (i64, u32) {
        self.mtime
    }

    pub fn xattrs(&self) -> &[(String, Vec<u8>)] {
        &self.xattrs
    }
}

/// How a layer is written to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A directory in overlayfs's format: whiteouts are character devices 0/0, opaque
    /// directories carry `trusted.overlay.opaque=y` (`user.overlay.opaque=y` without root).
    /// Kernel overlayfs reads this form.
    OverlayDir,
    /// A directory with OCI markers: whiteouts are empty `.wh.NAME` files, opaque
    /// directories hold an empty `.wh..wh..opq`.
    OciDir,
    /// A plain (uncompressed) tar with OCI whiteouts and PAX headers.
    Tar,
}

/// Writes the described layer at `dest` (a directory or tar file that must not exist yet)
/// and returns `dest`. The error names the path and the cause.
///
/// ```
/// use unionmount::testing::{Form, file, hardlink, write_layer};
///
/// # fn main() -> std::io::Result<()> {
/// let tmp = tempfile::tempdir()?;
/// let layer = write_layer(
///     &tmp.path().join("layer"),
///     Form::OciDir,
///     &[file("a", "one"), hardlink("b", "a")],
/// )?;
/// assert_eq!(std::fs::read(layer.join("b"))?, b"one");
/// # Ok(()) }
/// ```
pub fn write_layer(dest: &Path, form: Form, entries: &[Entry]) -> io::Result<PathBuf> {
    let entries = with_parents(entries)?;
    match form {
        Form::OverlayDir | Form::OciDir => dir::write(dest, form, &entries),
        Form::Tar => tar::write(dest, &entries),
    }
    .map_err(|e| io::Error::new(e.kind(), format!("layer {}: {e}", dest.display())))?;
    Ok(dest.to_path_buf())
}

/// Writes a stack of layers (bottom first) into a new directory under `root` named after
/// the form (`ovl`, `oci`, `tar`; then `ovl2`, ... when taken), as `l0`, `l1`, ...
/// (`l0.tar`, ... for tars), and returns their paths, bottom first.
pub fn write_stack(root: &Path, form: Form, layers: &[Vec<Entry>]) -> io::Result<Vec<PathBuf>> {
    let (base, suffix) = match form {
        Form::OverlayDir => ("ovl", ""),
        Form::OciDir => ("oci", ""),
        Form::Tar => ("tar", ".tar"),
    };
    let mut dir = None;
    for n in 1..1000u32 {
        let candidate = root.join(if n == 1 {
            base.to_string()
        } else {
            format!("{base}{n}")
        });
        match fs::create_dir(&candidate) {
            Ok(()) => {
                dir = Some(candidate);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", candidate.display()),
                ));
            }
        }
    }
    let dir = dir.ok_or_else(|| {
        io::Error::other(format!(
            "{}: no free name for a {base} stack",
            root.display()
        ))
    })?;
    layers
        .iter()
        .enumerate()
        .map(|(i, entries)| write_layer(&dir.join(format!("l{i}{suffix}")), form, entries))
        .collect()
}

/// The description with the root and every implied parent directory made explicit
/// (default attributes), each parent before its children. A later entry for a path
/// replaces the earlier one in place, so a description can restate a parent with other
/// attributes.
fn with_parents(entries: &[Entry]) -> io::Result<Vec<Entry>> {
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
        while let Some(parent) = p {
            if parent.as_os_str().is_empty() {
                break;
            }
            // Entry paths come from &str, so their parents are valid UTF-8.
            parents.push(parent.to_string_lossy().into_owned());
            p = parent.parent();
        }
        for parent in parents.into_iter().rev() {
            if !out.iter().any(|o| o.path == parent) {
                push(dir(&parent), &mut out);
            }
        }
        if let Kind::Hardlink(target) = &e.kind
            && !out.iter().any(|o| &o.path == target)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "hard link {} to {target}, which is not earlier in the layer",
                    e.path
                ),
            ));
        }
        if e.path.is_empty() && matches!(e.kind, Kind::Whiteout) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a whiteout of the layer's root",
            ));
        }
        push(e.clone(), &mut out);
    }
    Ok(out)
}

/// Deterministic pseudo-random bytes (xorshift) for large file contents: the same `seed`
/// gives the same bytes.
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

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
