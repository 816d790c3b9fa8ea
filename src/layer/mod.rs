//! Read-only layer sources behind one trait.
//!
//! A layer presents a read-only tree addressed by layer-local [`NodeId`]s. Every layer kind
//! normalises its own whiteout encoding into one model: a child of kind [`Kind::Whiteout`]
//! hides the same name in lower layers, and a directory whose [`Entry::opaque`] is set hides
//! everything below it. Whiteout *markers* (`.wh.NAME`, `.wh..wh..opq`) are never returned as
//! names of their own.

pub mod blob;
pub mod dir;
pub mod remote;
pub mod tar;
pub mod whiteout;

use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;

/// A layer-local handle of one object. Meaningful only to the layer that returned it.
pub type NodeId = u64;

/// What an object in a layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
    /// Hides the same name in every lower layer; never shown itself.
    Whiteout,
}

/// A point in time as stored by filesystems and tar (seconds since the epoch + nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// The attributes of one object, as `stat` would report them inside its own layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub kind: Kind,
    /// Permission bits including set-uid, set-gid and sticky (`mode & 0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    pub nlink: u32,
    /// Device number for character and block devices (`makedev(major, minor)`).
    pub rdev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Identity of the object inside its layer: equal for hard links of one file, distinct
    /// otherwise. The union derives stable `st_ino` values from it.
    pub ino: u64,
}

impl Attr {
    /// Zero attributes of a `kind` (no permissions, root-owned, epoch times): the base of a
    /// record that needs some attributes before it has real ones.
    pub fn zeroed(kind: Kind) -> Attr {
        Attr {
            kind,
            perm: 0,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            nlink: 1,
            rdev: 0,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            ino: 0,
        }
    }
}

/// The result of a successful lookup.
#[derive(Clone, Debug)]
pub struct Entry {
    pub node: NodeId,
    pub attr: Attr,
    /// For directories: an opaque directory hides everything below it in lower layers.
    pub opaque: bool,
}

/// One name in a directory listing. Whiteouts are listed (as [`Kind::Whiteout`] under the name
/// they hide) so that the union can hide lower names; markers and `.`/`..` are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: Kind,
    /// Same identity as [`Attr::ino`] of the named object.
    pub ino: u64,
}

/// The data of one opened regular file.
pub trait FileData: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at or past the end of the file.
    /// A count shorter than `buf` means the file ends there (FUSE takes a short reply as end
    /// of file), so an implementation whose source can return short reads must loop.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The open file behind the data, if it is a whole file of its own (a directory layer's):
    /// copy-up then clones or `copy_file_range`s it and keeps its holes.
    fn backing_file(&self) -> Option<&std::fs::File> {
        None
    }
}

/// Filesystem-wide numbers for `statfs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// A read-only tree. Implementations are shared by all FUSE worker threads.
pub trait Layer: Send + Sync {
    /// A short human name for messages (the path of the directory or tar file).
    fn name(&self) -> &str;

    /// The root directory.
    fn root(&self) -> io::Result<Entry>;

    /// Looks `name` up in directory `dir`. A whiteout for `name` is returned as an entry of
    /// kind [`Kind::Whiteout`]; `Ok(None)` means the layer says nothing about `name`.
    fn lookup(&self, dir: NodeId, name: &OsStr) -> io::Result<Option<Entry>>;

    /// Current attributes of a node returned by `root` or `lookup`.
    fn attr(&self, node: NodeId) -> io::Result<Attr>;

    /// All names in directory `dir` (whiteouts included, markers excluded), in any order.
    fn read_dir(&self, dir: NodeId) -> io::Result<Vec<DirEntry>>;

    /// Opens a regular file for reading.
    fn open(&self, node: NodeId) -> io::Result<Box<dyn FileData>>;

    /// The target of a symlink, as stored.
    fn readlink(&self, node: NodeId) -> io::Result<Vec<u8>>;

    /// Names of the extended attributes of a node (overlay-private ones included; the union
    /// decides what to hide).
    fn list_xattrs(&self, node: NodeId) -> io::Result<Vec<OsString>>;

    /// The value of one extended attribute, `Ok(None)` if the node does not have it.
    fn get_xattr(&self, node: NodeId, name: &OsStr) -> io::Result<Option<Vec<u8>>>;

    /// Numbers of the filesystem holding the layer.
    fn statfs(&self) -> io::Result<FsStats>;
}

/// How layers are opened: where tar indexes are kept between mounts, and how much
/// decompressed data compressed layers may cache in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// Directory of saved tar-layer indexes (and, under `chunks/`, the chunk caches of remote
    /// blobs read lazily); `None` builds every index afresh and caches remote chunks in
    /// temporary files.
    pub index_cache: Option<std::path::PathBuf>,
    /// Bytes of decompressed chunks kept per mount (an LRU shared by compressed layers).
    pub chunk_cache_bytes: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            index_cache: None,
            chunk_cache_bytes: 64 << 20,
        }
    }
}

/// Opens one layer. A directory is an extracted layer; a regular file a tar archive (plain or
/// compressed) read in place; a blob a tar stored in an image. The error is one line naming
/// the layer and the cause.
pub fn open(source: &blob::LayerSource, options: &LayerOptions) -> Result<Arc<dyn Layer>, String> {
    let path = match source {
        blob::LayerSource::Blob(b) => {
            // A digest error already names the image and the layer; others name the file.
            let layer = tar::TarLayer::open_blob(b, options).map_err(|e| match e {
                tar::TarError::DigestMismatch { .. } | tar::TarError::DiffIdMismatch { .. } => {
                    e.to_string()
                }
                e => format!("layer {e}"),
            })?;
            return Ok(Arc::new(layer));
        }
        blob::LayerSource::Remote(r) => {
            let layer = tar::TarLayer::open_remote(r, options).map_err(|e| match e {
                tar::TarError::DigestMismatch { .. } | tar::TarError::DiffIdMismatch { .. } => {
                    e.to_string()
                }
                e => format!("layer {e}"),
            })?;
            return Ok(Arc::new(layer));
        }
        blob::LayerSource::Path(p) => p.as_path(),
    };
    let named = |cause: &dyn std::fmt::Display| format!("layer {}: {cause}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => named(&"does not exist"),
        _ => named(&e),
    })?;
    if meta.is_dir() {
        let layer = dir::DirLayer::open(path).map_err(|e| named(&e))?;
        Ok(Arc::new(layer))
    } else if meta.is_file() {
        // TarError names the file itself.
        let blob = blob::BlobRef {
            path: path.to_path_buf(),
            offset: 0,
            len: meta.len(),
            compression: blob::Compression::Detect,
            digest: None,
            diff_id: None,
            image: None,
        };
        let layer = tar::TarLayer::open_blob(&blob, options).map_err(|e| format!("layer {e}"))?;
        Ok(Arc::new(layer))
    } else {
        Err(named(&"neither a directory nor a tar file"))
    }
}
