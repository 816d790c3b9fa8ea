//! Writes a directory tree as an OCI image layer: a tar (ustar headers, PAX extended headers
//! where ustar falls short), optionally gzip or zstd compressed, hashed while it is written.
//! The `commit`, `export`, `import` and `squash` commands build their layers with [`pack`].
//!
//! The output is a function of the tree alone, so the same tree always gives the same digest:
//! names sorted bytewise within each directory, a directory before its contents, numeric
//! owners only, no atime/ctime, a gzip header without time or name, fixed compression levels.
//!
//! The walk never follows a symlink below the root: every object is reached with `*at` calls
//! relative to its parent's descriptor (`O_NOFOLLOW`), and xattrs through
//! `/proc/self/fd/PARENT/NAME` with the `l*xattr` calls, so a tree that changes under us (a
//! running container's upper) cannot make us read a file outside it.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

use crate::image::oci;
use crate::layer::blob::{Compression, Digest};
use crate::layer::whiteout::{OPAQUE_MARKER, OPAQUE_XATTRS, WHITEOUT_PREFIX, is_opaque_value};

/// How the tree given to [`pack`] is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackMode {
    /// The directory is an overlayfs upper (kernel format): character-device 0/0 whiteouts
    /// become `.wh.NAME` entries; a directory whose `trusted.overlay.opaque` (or
    /// `user.overlay.opaque`, `user.fuseoverlayfs.opaque`) is `y` gets a `.wh..wh..opq` entry
    /// right after its own; overlay-private xattrs are dropped. An upper that uses what a
    /// layer cannot express (`redirect` or `metacopy` xattrs) is refused, naming the path.
    Diff,
    /// The directory is a merged tree taken as it is (e.g. a mountpoint): every entry is
    /// written, nothing is converted.
    Flat,
}

/// What [`pack`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedLayer {
    /// sha256 of the bytes written (the blob's digest in a manifest).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Bytes written.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// The OCI layer media type of what was written.
    pub media_type: &'static str,
}

/// Why a tree could not be packed: the path concerned (in the tree, or the tree's root for
/// the output) and the cause.
#[derive(Debug)]
pub struct PackError {
    pub path: PathBuf,
    pub cause: PackCause,
}

#[derive(Debug)]
pub enum PackCause {
    /// Reading the tree failed.
    Io(io::Error),
    /// Writing (or compressing) the layer failed.
    Output(io::Error),
    /// The object changed identity or size while it was being read (what happened).
    Changed(&'static str),
    /// A file type Linux does not define (the `st_mode`).
    UnknownType(u32),
    /// An overlayfs feature a plain layer cannot express (the xattr that uses it).
    OverlayFeature(String),
    /// A name starting with `.wh.`, which a layer reader would take for a whiteout.
    ReservedName,
    /// An xattr name a PAX record cannot carry (the name, lossily).
    XattrName(String),
    /// [`Compression::Detect`] describes a blob to read; a layer to write needs a choice.
    NoCompression,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.cause {
            PackCause::Io(e) => write!(f, "{e}"),
            PackCause::Output(e) => write!(f, "writing the layer: {e}"),
            PackCause::Changed(what) => write!(f, "{what} while being packed"),
            PackCause::UnknownType(mode) => write!(f, "unknown file type (mode {mode:o})"),
            PackCause::OverlayFeature(x) => write!(
                f,
                "overlayfs xattr {x} (redirect/metacopy) cannot be expressed in an image layer"
            ),
            PackCause::ReservedName => {
                f.write_str("names starting with .wh. are reserved for whiteouts in image layers")
            }
            PackCause::XattrName(n) => {
                write!(f, "xattr name {n:?} cannot be stored in a PAX header")
            }
            PackCause::NoCompression => f.write_str("no compression chosen for the layer"),
        }
    }
}

impl std::error::Error for PackError {}

/// Writes the tree under `root` to `out` as a layer tar, compressed as asked, and returns
/// its digests and sizes. `root` itself is not an entry; its contents are, with relative
/// paths. `out` is written sequentially and flushed at the end.
pub fn pack(
    root: &Path,
    mode: PackMode,
    compression: Compression,
    out: impl Write,
) -> Result<PackedLayer, PackError> {
    let at_root = |cause| PackError {
        path: root.to_path_buf(),
        cause,
    };
    let media_type = match compression {
        Compression::None => oci::OCI_LAYER,
        Compression::Gzip => oci::OCI_LAYER_GZIP,
        Compression::Zstd => oci::OCI_LAYER_ZSTD,
        Compression::Detect => return Err(at_root(PackCause::NoCompression)),
    };
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| at_root(PackCause::Io(e.into())))?;
    let encoder = Encoder::new(out, compression).map_err(|e| at_root(PackCause::Output(e)))?;
    let mut packer = Packer {
        root,
        mode,
        tar: Hashing::new(encoder),
        links: HashMap::new(),
        buf: vec![0; 128 << 10],
    };
    packer.walk(&dir, b"")?;
    let output = |e| at_root(PackCause::Output(e));
    packer.tar.write_all(&[0; 2 * BLOCK]).map_err(output)?;
    let (diff_id, tar_size, encoder) = packer.tar.finish();
    let (digest, size) = encoder
        .finish()
        .map_err(output)?
        .unwrap_or_else(|| (diff_id.clone(), tar_size));
    Ok(PackedLayer {
        digest,
        diff_id,
        size,
        tar_size,
        media_type,
    })
}

struct Packer<'a, W: Write> {
    root: &'a Path,
    mode: PackMode,
    tar: Hashing<Encoder<W>>,
    /// First path written of every multiply-linked non-directory, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

/// What the xattrs of one object say, once filtered for the layer.
struct Xattrs {
    /// Kept ones, sorted by name.
    kept: Vec<(String, Vec<u8>)>,
    /// An overlayfs opaque marker is set (only looked for in [`PackMode::Diff`]).
    opaque: bool,
}

impl<W: Write> Packer<'_, W> {
    fn err(&self, rel: &[u8], cause: PackCause) -> PackError {
        PackError {
            path: self.root.join(OsStr::from_bytes(rel)),
            cause,
        }
    }

    fn io(&self, rel: &[u8], e: impl Into<io::Error>) -> PackError {
        self.err(rel, PackCause::Io(e.into()))
    }

    fn output(&self, rel: &[u8], e: io::Error) -> PackError {
        self.err(rel, PackCause::Output(e))
    }

    /// Writes the contents of directory `dir` (at `prefix`, "" or ending in `/`).
    fn walk(&mut self, dir: &OwnedFd, prefix: &[u8]) -> Result<(), PackError> {
        let mut names: Vec<CString> = Vec::new();
        let listing = rustix::fs::Dir::read_from(dir).map_err(|e| self.io(prefix, e))?;
        for ent in listing {
            let ent = ent.map_err(|e| self.io(prefix, e))?;
            let name = ent.file_name();
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let mut rel = prefix.to_vec();
            rel.extend_from_slice(name.as_bytes());
            self.entry(dir, &name, &rel)?;
        }
        Ok(())
    }

    /// Writes one object (and, for a directory, everything below it).
    fn entry(&mut self, dir: &OwnedFd, name: &CStr, rel: &[u8]) -> Result<(), PackError> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                vanished(rel);
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, e)),
        };
        if name.to_bytes().starts_with(WHITEOUT_PREFIX) {
            return Err(self.err(rel, PackCause::ReservedName));
        }
        let kind = FileType::from_raw_mode(st.st_mode);
        if self.mode == PackMode::Diff && kind == FileType::CharacterDevice && st.st_rdev == 0 {
            return self.whiteout(rel, &st);
        }
        if kind == FileType::Socket {
            log::warn!(
                "{}: sockets cannot be stored in an image layer; left out",
                self.root.join(OsStr::from_bytes(rel)).display()
            );
            return Ok(());
        }
        let link_key =
            (kind != FileType::Directory && st.st_nlink > 1).then_some((st.st_dev, st.st_ino));
        if let Some(first) = link_key.and_then(|key| self.links.get(&key)) {
            // Same inode, same xattrs: they went with the first path.
            let first = first.clone();
            let h = Header::new(rel, b'1', &st).link(&first);
            return h.write(&mut self.tar).map_err(|e| self.output(rel, e));
        }
        let Some(xattrs) = self.xattrs(dir, name, rel)? else {
            vanished(rel);
            return Ok(());
        };
        let written = self.object(dir, name, rel, kind, &st, &xattrs)?;
        if let (true, Some(key)) = (written, link_key) {
            self.links.insert(key, rel.to_vec());
        }
        Ok(())
    }

    /// Writes an object that is not a hard link to one written before; false if it turned out
    /// to be gone.
    fn object(
        &mut self,
        dir: &OwnedFd,
        name: &CStr,
        rel: &[u8],
        kind: FileType,
        st: &Stat,
        xattrs: &Xattrs,
    ) -> Result<bool, PackError> {
        match kind {
            FileType::Directory => self.directory(dir, name, rel, st, xattrs),
            FileType::RegularFile => self.file(dir, name, rel, st, xattrs),
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT) => return Ok(vanished(rel)),
                    Err(e) => return Err(self.io(rel, e)),
                };
                Header::new(rel, b'2', st)
                    .link(target.as_bytes())
                    .xattrs(&xattrs.kept)
                    .write(&mut self.tar)
                    .map_err(|e| self.output(rel, e))?;
                Ok(true)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let flag = match kind {
                    FileType::CharacterDevice => b'3',
                    FileType::BlockDevice => b'4',
                    _ => b'6',
                };
                let mut h = Header::new(rel, flag, st).xattrs(&xattrs.kept);
                if flag != b'6' {
                    h.dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                }
                h.write(&mut self.tar).map_err(|e| self.output(rel, e))?;
                Ok(true)
            }
            _ => Err(self.err(rel, PackCause::UnknownType(st.st_mode))),
        }
    }

    /// An overlayfs whiteout as an OCI one: an empty regular file `.wh.NAME` with the owner and
    /// time of the device node and mode 0600, as docker's overlay2 driver writes it.
    fn whiteout(&mut self, rel: &[u8], st: &Stat) -> Result<(), PackError> {
        let split = rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let mut path = rel[..split].to_vec();
        path.extend_from_slice(WHITEOUT_PREFIX);
        path.extend_from_slice(&rel[split..]);
        let mut h = Header::new(&path, b'0', st);
        h.mode = 0o600;
        h.size = 0;
        h.write(&mut self.tar).map_err(|e| self.output(rel, e))
    }

    fn directory(
        &mut self,
        parent: &OwnedFd,
        name: &CStr,
        rel: &[u8],
        st: &Stat,
        xattrs: &Xattrs,
    ) -> Result<bool, PackError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(vanished(rel)),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(self.err(rel, PackCause::Changed("replaced")));
            }
            Err(e) => return Err(self.io(rel, e)),
        };
        let now = rustix::fs::fstat(&dir).map_err(|e| self.io(rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(self.err(rel, PackCause::Changed("replaced")));
        }
        let mut path = rel.to_vec();
        path.push(b'/');
        Header::new(&path, b'5', st)
            .xattrs(&xattrs.kept)
            .write(&mut self.tar)
            .map_err(|e| self.output(rel, e))?;
        if xattrs.opaque {
            // Owner, mode and time of the directory, as docker's overlay2 driver writes it.
            let mut marker = path.clone();
            marker.extend_from_slice(OPAQUE_MARKER);
            let mut h = Header::new(&marker, b'0', st);
            h.mode &= 0o777;
            h.size = 0;
            h.write(&mut self.tar).map_err(|e| self.output(rel, e))?;
        }
        self.walk(&dir, &path)?;
        Ok(true)
    }

    fn file(
        &mut self,
        dir: &OwnedFd,
        name: &CStr,
        rel: &[u8],
        st: &Stat,
        xattrs: &Xattrs,
    ) -> Result<bool, PackError> {
        // NONBLOCK: should the name have become a fifo since the stat, the open must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(vanished(rel)),
            Err(Errno::LOOP) => return Err(self.err(rel, PackCause::Changed("replaced"))),
            Err(e) => return Err(self.io(rel, e)),
        };
        let now = rustix::fs::fstat(&fd).map_err(|e| self.io(rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(self.err(rel, PackCause::Changed("replaced")));
        }
        // Blocking reads again: a FUSE file (Flat mode over a mountpoint) may honour the flag.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| self.io(rel, e))?;
        // The size (and time) as of the open: the data we are about to read.
        Header::new(rel, b'0', &now)
            .xattrs(&xattrs.kept)
            .write(&mut self.tar)
            .map_err(|e| self.output(rel, e))?;
        let mut file = File::from(fd);
        let size = now.st_size as u64;
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => return Err(self.err(rel, PackCause::Changed("shrank"))),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(rel, e)),
            };
            self.tar
                .write_all(&self.buf[..n])
                .map_err(|e| self.output(rel, e))?;
            left -= n as u64;
        }
        pad(&mut self.tar, size).map_err(|e| self.output(rel, e))?;
        Ok(true)
    }

    /// The xattrs of `dir`/`name` as the layer keeps them; `None` if the object is gone.
    fn xattrs(&self, dir: &OwnedFd, name: &CStr, rel: &[u8]) -> Result<Option<Xattrs>, PackError> {
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        let path = CString::new(path).map_err(|_| self.io(rel, Errno::INVAL))?;
        let list = match sized(|buf| rustix::fs::llistxattr(path.as_c_str(), buf)) {
            Ok(list) => list,
            Err(Errno::NOTSUP) => Vec::new(),
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io(rel, e)),
        };
        let mut out = Xattrs {
            kept: Vec::new(),
            opaque: false,
        };
        for raw in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let Ok(key) = std::str::from_utf8(raw) else {
                let lossy = String::from_utf8_lossy(raw).into_owned();
                return Err(self.err(rel, PackCause::XattrName(lossy)));
            };
            if self.mode == PackMode::Diff && is_overlay_private(key) {
                if key.ends_with(".redirect") || key.ends_with(".metacopy") {
                    return Err(self.err(rel, PackCause::OverlayFeature(key.to_string())));
                }
                if !OPAQUE_XATTRS.contains(&key) {
                    continue;
                }
            }
            let value = match sized(|buf| rustix::fs::lgetxattr(path.as_c_str(), key, buf)) {
                Ok(v) => v,
                // Removed since the listing: as if never there.
                Err(Errno::NODATA) => continue,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.io(rel, e)),
            };
            if self.mode == PackMode::Diff && OPAQUE_XATTRS.contains(&key) {
                out.opaque |= is_opaque_value(&value);
                continue;
            }
            // A PAX record is `KEY=VALUE`: a key holding `=` would be split at the wrong place.
            if key.contains('=') {
                return Err(self.err(rel, PackCause::XattrName(key.to_string())));
            }
            out.kept.push((key.to_string(), value));
        }
        out.kept
            .sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(Some(out))
    }
}

/// overlayfs's own bookkeeping xattrs (kernel: `trusted.overlay.*`, or `user.overlay.*` with
/// `userxattr`; fuse-overlayfs: `user.fuseoverlayfs.*`).
fn is_overlay_private(key: &str) -> bool {
    ["trusted.overlay.", "user.overlay.", "user.fuseoverlayfs."]
        .iter()
        .any(|p| key.starts_with(p))
}

/// Notes an object removed since its directory was listed (left out, as if removed before);
/// false, for "not written".
fn vanished(rel: &[u8]) -> bool {
    log::debug!(
        "{}: removed while packing; left out",
        String::from_utf8_lossy(rel)
    );
    false
}

/// Calls a "fill this buffer" syscall with a growing buffer until the answer fits.
fn sized(mut f: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 8, 0),
            Err(e) => return Err(e),
        }
    }
}

// ---- tar encoding (POSIX.1-2001 pax: ustar headers, `x` extended headers) ----

const BLOCK: usize = 512;

/// One tar entry's header, before encoding.
struct Header<'a> {
    path: &'a [u8],
    flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: (i64, u32),
    link: &'a [u8],
    dev: (u32, u32),
    xattrs: &'a [(String, Vec<u8>)],
}

impl<'a> Header<'a> {
    /// A header with the attributes of `st`; the size only for a regular file.
    fn new(path: &'a [u8], flag: u8, st: &Stat) -> Header<'a> {
        Header {
            path,
            flag,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            size: if flag == b'0' { st.st_size as u64 } else { 0 },
            mtime: (st.st_mtime, st.st_mtime_nsec as u32),
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        }
    }

    fn link(mut self, target: &'a [u8]) -> Self {
        self.link = target;
        self
    }

    fn xattrs(mut self, x: &'a [(String, Vec<u8>)]) -> Self {
        self.xattrs = x;
        self
    }

    /// Writes the PAX extended header (if the entry needs one) and the ustar header; the
    /// caller writes `size` bytes of data and the padding after it.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut block = [0u8; BLOCK];
        let mut pax = Vec::new();
        let (secs, nsec) = self.mtime;
        if self.path.len() <= 100 {
            block[..self.path.len()].copy_from_slice(self.path);
        } else {
            pax_record(&mut pax, "path", self.path);
            block[..100].copy_from_slice(&self.path[..100]);
        }
        if self.link.len() <= 100 {
            block[157..157 + self.link.len()].copy_from_slice(self.link);
        } else {
            pax_record(&mut pax, "linkpath", self.link);
            block[157..257].copy_from_slice(&self.link[..100]);
        }
        octal(&mut block[100..108], u64::from(self.mode));
        for (key, v, range) in [
            ("size", self.size, 124..136),
            ("uid", self.uid, 108..116),
            ("gid", self.gid, 116..124),
        ] {
            if !octal(&mut block[range.clone()], v) {
                pax_record(&mut pax, key, v.to_string().as_bytes());
                octal(&mut block[range], 0);
            }
        }
        let in_ustar = secs >= 0 && octal(&mut block[136..148], secs as u64);
        if !in_ustar {
            octal(&mut block[136..148], 0);
        }
        if nsec != 0 || !in_ustar {
            pax_record(&mut pax, "mtime", pax_time(secs, nsec).as_bytes());
        }
        for (name, value) in self.xattrs {
            pax_record(&mut pax, &format!("SCHILY.xattr.{name}"), value);
        }
        block[156] = self.flag;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        octal(&mut block[329..337], u64::from(self.dev.0));
        octal(&mut block[337..345], u64::from(self.dev.1));
        if !pax.is_empty() {
            self.write_pax(out, &pax, in_ustar.then_some(secs))?;
        }
        checksum(&mut block);
        out.write_all(&block)
    }

    /// The `x` entry carrying `records`, named like Go's archive/tar names it
    /// (`DIR/PaxHeaders.0/BASE`, cut to 100 bytes) for readers that show it as a file.
    fn write_pax(&self, out: &mut impl Write, records: &[u8], secs: Option<i64>) -> io::Result<()> {
        let mut block = [0u8; BLOCK];
        let trimmed = self.path.strip_suffix(b"/").unwrap_or(self.path);
        let split = trimmed
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        let mut name = trimmed[..split].to_vec();
        name.extend_from_slice(b"PaxHeaders.0/");
        name.extend_from_slice(&trimmed[split..]);
        name.truncate(100);
        block[..name.len()].copy_from_slice(&name);
        octal(&mut block[100..108], 0o644);
        octal(&mut block[108..116], 0);
        octal(&mut block[116..124], 0);
        octal(&mut block[124..136], records.len() as u64);
        octal(&mut block[136..148], secs.unwrap_or(0) as u64);
        block[156] = b'x';
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        octal(&mut block[329..337], 0);
        octal(&mut block[337..345], 0);
        checksum(&mut block);
        out.write_all(&block)?;
        out.write_all(records)?;
        pad(out, records.len() as u64)
    }
}

/// Writes `v` as zero-padded octal filling `field` but its last byte (a NUL). False, leaving
/// the field untouched, if it does not fit.
fn octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let text = format!("{v:0digits$o}");
    if text.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    true
}

/// The header checksum (POSIX ustar): the byte sum with the checksum field taken as spaces,
/// stored as six octal digits, NUL, space.
fn checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    block[154] = 0;
}

/// Appends one PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record, itself
/// included (POSIX pax, "pax Extended Header").
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A PAX time: seconds and a fraction without trailing zeros; a time before the epoch is
/// negative as a whole (-1.5 is 1.5 s before it).
fn pax_time(secs: i64, nsec: u32) -> String {
    let (sign, whole, frac) = if secs < 0 && nsec > 0 {
        ("-", (-(secs + 1)) as u64, 1_000_000_000 - nsec)
    } else if secs < 0 {
        ("-", secs.unsigned_abs(), 0)
    } else {
        ("", secs as u64, nsec)
    };
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

/// Zeros from `len` up to the next block boundary.
fn pad(out: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 {
        return Ok(());
    }
    out.write_all(&[0u8; BLOCK][..BLOCK - rem])
}

// ---- output: hashing, counting, compressing ----

/// Passes bytes on to `inner`, hashing and counting them.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (Digest, u64, W) {
        let digest = Digest::from_sha256(&self.hash.finalize());
        (digest, self.bytes, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor: nothing (the tar's hash is then the blob's), gzip at flate2's default
/// level, or zstd at level 3.
enum Encoder<W: Write> {
    Plain(BufWriter<W>),
    Gzip(flate2::write::GzEncoder<Hashing<BufWriter<W>>>),
    Zstd(zstd::stream::write::Encoder<'static, Hashing<BufWriter<W>>>),
}

const OUT_BUFFER: usize = 128 << 10;

impl<W: Write> Encoder<W> {
    fn new(out: W, compression: Compression) -> io::Result<Self> {
        let out = BufWriter::with_capacity(OUT_BUFFER, out);
        Ok(match compression {
            Compression::Gzip => Encoder::Gzip(
                // No name and time 0 so that the bytes depend on the tree alone; OS 255
                // ("unknown"), as Go's compress/gzip writes.
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Hashing::new(out), flate2::Compression::default()),
            ),
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Hashing::new(out), 3)?)
            }
            Compression::None | Compression::Detect => Encoder::Plain(out),
        })
    }

    /// Ends the stream and flushes; the digest and size of the compressed bytes, or `None`
    /// when they are the tar's own.
    fn finish(self) -> io::Result<Option<(Digest, u64)>> {
        let hashed = match self {
            Encoder::Plain(out) => {
                out.into_inner().map_err(|e| e.into_error())?.flush()?;
                return Ok(None);
            }
            Encoder::Gzip(enc) => enc.finish()?,
            Encoder::Zstd(enc) => enc.finish()?,
        };
        let (digest, size, out) = hashed.finish();
        out.into_inner().map_err(|e| e.into_error())?.flush()?;
        Ok(Some((digest, size)))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests;
