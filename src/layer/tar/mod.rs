//! Tar layers read in place: a [`TarLayer`] is an index over an uncompressed tar file.
//!
//! [`TarLayer::open`] reads the archive once, sequentially, to build the index (`index`,
//! with one entry decoded at a time by `record`, from the extension headers in front of it
//! re-read by `extension` and their PAX records split by `pax`); after that every answer comes
//! from the index, and file data is read with `pread` at the offset the index recorded
//! (`stream`), through a sparse map where the entry has one (`sparse`). Nothing is ever
//! extracted.
//!
//! Attributes: node ids are indexes into the index's node table and `Attr::ino` is the id
//! plus one, so hard links (which resolve to their target's node) share it and `nlink` counts
//! the names of the group. `blocks` counts the bytes stored in the archive (for a sparse file,
//! its data chunks only); atime and ctime are the mtime; directories report size 0, as their
//! tar headers do, and `nlink` = 2 + subdirectories.

mod ahead;
mod chunk_cache;
mod codec;
mod exchange;
mod extension;
mod forward;
mod gzip;
mod index;
mod input;
mod pax;
mod persist;
mod progress;
mod record;
mod reuse;
mod source;
mod sparse;
mod stream;
mod zlib;
mod zstd;

#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::exchange::{INDEX_MEDIA_TYPE, export_index, import_index};
pub use self::persist::IndexCache;

use self::index::{Node, TarIndex};
use self::input::Input;
pub(crate) use self::source::StreamState;
use self::sparse::SparseMap;
use self::stream::{PlainTar, Stream};
use crate::layer::blob::{BlobRead, BlobRef, Digest, RemoteBlobRef};
use crate::layer::remote::RemoteBlob;
use crate::layer::{Attr, DirEntry, Entry, FileData, FsStats, Kind, Layer, NodeId};

/// Why a tar layer could not be opened. The message names the tar file and the cause.
#[derive(Debug)]
pub enum TarError {
    /// The file could not be opened or read.
    Io { path: PathBuf, source: io::Error },
    /// The file does not start with a tar header (or is empty).
    NotTar { path: PathBuf, cause: String },
    /// The file ends inside a header, inside an entry's data (`entry` names it), or before the
    /// end-of-archive marker.
    Truncated {
        path: PathBuf,
        at: u64,
        entry: Option<String>,
    },
    /// A header or extended header after the start is malformed.
    Corrupt {
        path: PathBuf,
        offset: u64,
        entry: Option<String>,
        cause: String,
    },
    /// The archive has more entries or name bytes than the index can address.
    TooLarge { path: PathBuf, cause: String },
    /// The compressed stream is corrupt or truncated (or the blob could not be read while
    /// decompressing it).
    Decompress { path: PathBuf, cause: String },
    /// The blob's stored bytes do not hash to the digest the image names it by.
    DigestMismatch {
        image: Option<String>,
        layer: Digest,
        found: Digest,
    },
    /// The uncompressed tar does not hash to the image config's `rootfs.diff_ids` entry.
    DiffIdMismatch {
        image: Option<String>,
        /// The layer's digest, or its path when it has none.
        layer: String,
        expected: Digest,
        found: Digest,
    },
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything printed goes through `one_line`: causes may quote the crate's messages,
        // which embed raw header bytes, and names come from the archive.
        let path = |p: &Path| one_line(&p.display().to_string()).into_owned();
        match self {
            TarError::Io { path: p, source } => {
                write!(f, "{}: {}", path(p), one_line(&source.to_string()))
            }
            TarError::NotTar { path: p, cause } => {
                write!(f, "{}: not a tar archive: {}", path(p), one_line(cause))
            }
            TarError::Truncated { path: p, at, entry } => {
                write!(f, "{}: truncated at byte {at}", path(p))?;
                match entry {
                    Some(e) => write!(f, ": the data of `{}` is incomplete", one_line(e)),
                    None => Ok(()),
                }
            }
            TarError::Corrupt {
                path: p,
                offset,
                entry,
                cause,
            } => {
                write!(f, "{}: corrupt archive at byte {offset}", path(p))?;
                if let Some(e) = entry {
                    write!(f, " (entry `{}`)", one_line(e))?;
                }
                write!(f, ": {}", one_line(cause))
            }
            TarError::TooLarge { path: p, cause } => {
                write!(f, "{}: too large to index: {}", path(p), one_line(cause))
            }
            TarError::Decompress { path: p, cause } => {
                write!(f, "{}: cannot decompress: {}", path(p), one_line(cause))
            }
            TarError::DigestMismatch {
                image,
                layer,
                found,
            } => {
                write_image(f, image)?;
                write!(
                    f,
                    "layer {layer}: content does not match its digest (found {found})"
                )
            }
            TarError::DiffIdMismatch {
                image,
                layer,
                expected,
                found,
            } => {
                write_image(f, image)?;
                write!(
                    f,
                    "layer {}: uncompressed content {found} does not match the config's \
                     diff_id {expected}",
                    one_line(layer)
                )
            }
        }
    }
}

fn write_image(f: &mut fmt::Formatter<'_>, image: &Option<String>) -> fmt::Result {
    match image {
        Some(i) => write!(f, "image {}: ", one_line(i)),
        None => Ok(()),
    }
}

/// `s` with control characters escaped (`\n` as `\\n`, `\t` as `\\t`, others as `\\xNN`), so
/// that an error message stays one line whatever the archive holds.
pub(crate) fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.into()
}

impl std::error::Error for TarError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TarError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A read-only layer backed by a tar (plain, gzip or zstd; a whole file or a byte range of
/// one), read in place.
pub struct TarLayer {
    name: String,
    /// The blob's stored bytes (for `statfs`, and what the stream reads).
    file: Arc<dyn BlobRead>,
    /// The remote blob behind `file`, for a lazily read layer.
    remote: Option<Arc<RemoteBlob>>,
    stream: Arc<dyn Stream>,
    state: StreamState,
    index: TarIndex,
}

impl fmt::Debug for TarLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarLayer")
            .field("name", &self.name)
            .field("nodes", &self.index.len())
            .finish()
    }
}

impl TarLayer {
    /// Opens `path` (a plain tar) and indexes it in one sequential pass.
    pub fn open(path: &Path) -> Result<TarLayer, TarError> {
        let io_err = |source| TarError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let file: Arc<dyn BlobRead> = Arc::new(file);
        let stream: Arc<dyn Stream> = Arc::new(PlainTar::new(Arc::clone(&file), 0, len));
        let index = index::build(&*stream, path)?;
        Ok(TarLayer {
            name: path.display().to_string(),
            file,
            remote: None,
            stream,
            state: StreamState::Plain,
            index,
        })
    }

    /// Opens a layer blob (a byte range of a file; plain, gzip or zstd) and indexes it in one
    /// pass, checking its digest and diff_id where the blob names them.
    pub fn open_blob(
        blob: &BlobRef,
        options: &crate::layer::LayerOptions,
    ) -> Result<TarLayer, TarError> {
        TarLayer::open_input(Input::local(blob)?, options)
    }

    /// Opens a remote blob lazily: with a saved (or imported) index for its digest, without
    /// reading the blob at all; else with the one indexing pass over its stream, which checks
    /// its digest and diff_id and saves the index (the blob's bytes are not kept, except a
    /// single-frame zstd blob's tar, which that format needs; see `zstd`). Reads then fetch the
    /// ranges they need through the blob's chunk cache under the index directory.
    pub fn open_remote(
        blob: &RemoteBlobRef,
        options: &crate::layer::LayerOptions,
    ) -> Result<TarLayer, TarError> {
        let layer = TarLayer::open_input(Input::remote(blob, options)?, options)?;
        // A single-frame zstd layer is read from its decompressed cache file, never the blob.
        let from_blob = !matches!(layer.state, StreamState::ZstdCacheFile { .. });
        if blob.fill
            && from_blob
            && let Some(remote) = &layer.remote
        {
            remote.fill_when_serving();
        }
        Ok(layer)
    }

    /// The remote blob of a lazily opened layer (its fetch statistics, its fill).
    pub fn remote_blob(&self) -> Option<&Arc<RemoteBlob>> {
        self.remote.as_ref()
    }

    fn open_input(
        input: Input,
        options: &crate::layer::LayerOptions,
    ) -> Result<TarLayer, TarError> {
        let cache = options.index_cache.clone().map(IndexCache::new);
        // What the indexing pass opened, kept so that a fresh build needs no reopening.
        let mut fresh = None;
        let (saved, origin) = reuse::load_or_build(cache.as_ref(), &input.index_key, || {
            let opened = source::open(&input, options)?;
            let mut stream_state = Vec::new();
            opened.state.encode(&mut stream_state);
            let saved = persist::Saved {
                index: opened.index,
                stream_kind: opened.state.kind(),
                tar_len: opened.stream.len(),
                stream_state,
            };
            fresh = Some((opened.file, opened.stream, opened.state));
            Ok(saved)
        })?;
        log_origin(
            &input,
            &saved,
            origin,
            fresh.as_ref().map(|f| &f.2),
            options,
        );
        if let Some((file, stream, state)) = fresh {
            return Ok(TarLayer {
                name: input.display.clone(),
                file,
                remote: input.remote.clone(),
                stream,
                state,
                index: saved.index,
            });
        }
        // A saved index: reach the stream from its saved state, without the pass. If that
        // fails (a zstd cache file was removed, say), index afresh without the cache.
        let tar_len = saved.tar_len;
        let reused = StreamState::decode(&saved.stream_state)
            .map_err(|why| format!("saved stream state: {why}"))
            .and_then(|state| {
                TarLayer::from_saved(&input, saved.index, state, options).map_err(|e| e.to_string())
            })
            .and_then(|layer| {
                // Every extent of the index lies inside the tar length it was saved with; the
                // stream state must describe that length too (an imported index could lie).
                match layer.stream.len() {
                    n if n == tar_len => Ok(layer),
                    n => Err(format!(
                        "its stream state describes {n} bytes of tar, the index {tar_len}"
                    )),
                }
            });
        match reused {
            Ok(layer) => Ok(layer),
            Err(why) => {
                log::debug!(
                    "{}: saved index unusable ({why}); indexing again",
                    input.display
                );
                let uncached = crate::layer::LayerOptions {
                    index_cache: None,
                    ..options.clone()
                };
                let mut input = input;
                input.index_key = Err("the saved index was unusable".into());
                TarLayer::open_input(input, &uncached)
            }
        }
    }

    /// A layer from a saved index and stream state, without reading the blob.
    pub(crate) fn from_saved(
        input: &Input,
        index: TarIndex,
        state: StreamState,
        options: &crate::layer::LayerOptions,
    ) -> Result<TarLayer, TarError> {
        let stream = source::reopen(input, &state, options)?;
        Ok(TarLayer {
            name: input.display.clone(),
            file: Arc::clone(&input.blob),
            remote: input.remote.clone(),
            stream,
            state,
            index,
        })
    }

    /// How the uncompressed stream is reached (for saving with the index).
    #[allow(dead_code)] // for the persistent index
    pub(crate) fn stream_state(&self) -> &StreamState {
        &self.state
    }

    /// The index (for saving it).
    #[allow(dead_code)] // for the persistent index
    pub(crate) fn tar_index(&self) -> &TarIndex {
        &self.index
    }

    /// Bytes of the tar stream (decompressed, for a compressed layer).
    pub fn tar_len(&self) -> u64 {
        self.stream.len()
    }

    /// Number of nodes in the index (names, objects, synthesised directories, whiteouts).
    pub fn node_count(&self) -> usize {
        self.index.len()
    }

    /// Approximate heap bytes held by the index.
    pub fn index_heap_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The object node behind `id` (hard links resolve to their target).
    fn object(&self, id: NodeId) -> io::Result<(u32, &Node)> {
        let idx = u32::try_from(id).map_err(|_| enoent())?;
        let node = self.index.node(idx).ok_or_else(enoent)?;
        let obj = node.obj;
        Ok((obj, self.index.node(obj).ok_or_else(enoent)?))
    }

    fn dir(&self, id: NodeId) -> io::Result<&Node> {
        let (_, node) = self.object(id)?;
        if node.kind != Kind::Dir {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(node)
    }

    fn attr_of(&self, obj: u32, node: &Node) -> Attr {
        let stored = match self.index.extra(node).and_then(|e| e.sparse.as_ref()) {
            Some(map) => map.stored_len(),
            None if node.kind == Kind::File => node.size,
            None => 0,
        };
        let rdev = match node.kind {
            Kind::CharDev | Kind::BlockDev => node.data,
            _ => 0,
        };
        let mtime = node.mtime();
        Attr {
            kind: node.kind,
            perm: u32::from(node.perm),
            uid: node.uid,
            gid: node.gid,
            size: node.size,
            blocks: stored.div_ceil(512),
            nlink: node.nlink,
            rdev,
            atime: mtime,
            mtime,
            ctime: mtime,
            ino: u64::from(obj) + 1,
        }
    }

    fn entry_of(&self, obj: u32, node: &Node) -> Entry {
        Entry {
            node: NodeId::from(obj),
            attr: self.attr_of(obj, node),
            opaque: node.kind == Kind::Dir && node.opaque(),
        }
    }
}

/// One debug line per layer: what was loaded from the saved index or built, sizes and times.
fn log_origin(
    input: &Input,
    saved: &persist::Saved,
    origin: reuse::Origin,
    state: Option<&StreamState>,
    options: &crate::layer::LayerOptions,
) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let dir = match &options.index_cache {
        Some(d) => d.display().to_string(),
        None => String::new(),
    };
    let name = &input.display;
    let nodes = saved.index.len();
    match origin {
        reuse::Origin::Loaded { bytes, took } => log::debug!(
            "{name}: loaded saved index ({nodes} nodes, {}) in {:.1} ms from {dir}",
            human_bytes(bytes),
            took.as_secs_f64() * 1e3
        ),
        reuse::Origin::Built { took, saved: kept } => {
            let secs = took.as_secs_f64();
            let kept = match (kept, options.index_cache.is_some()) {
                (Some(bytes), _) => format!("saved ({}) in {dir}", human_bytes(bytes)),
                (None, true) => "not saved".to_string(),
                (None, false) => "not saved (no index cache)".to_string(),
            };
            log::debug!(
                "{name}: indexed {} ({}; {} of tar, {nodes} nodes) in {secs:.2} s \
                 ({:.0} MB/s of tar); {kept}",
                human_bytes(input.len),
                state.map_or_else(|| "?".to_string(), StreamState::describe),
                human_bytes(saved.tar_len),
                saved.tar_len as f64 / secs.max(1e-6) / 1e6,
            );
        }
    }
}

/// Bytes in decimal units, as `ls -h --si` and transfer rates show them.
fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl Layer for TarLayer {
    fn name(&self) -> &str {
        &self.name
    }

    fn root(&self) -> io::Result<Entry> {
        let (obj, node) = self.object(NodeId::from(index::ROOT))?;
        Ok(self.entry_of(obj, node))
    }

    fn lookup(&self, dir: NodeId, name: &OsStr) -> io::Result<Option<Entry>> {
        let dir = self.dir(dir)?;
        let Some(child) = self.index.find_child(dir, name.as_bytes()) else {
            return Ok(None);
        };
        let (obj, node) = self.object(NodeId::from(child))?;
        Ok(Some(self.entry_of(obj, node)))
    }

    fn attr(&self, node: NodeId) -> io::Result<Attr> {
        let (obj, n) = self.object(node)?;
        Ok(self.attr_of(obj, n))
    }

    fn read_dir(&self, dir: NodeId) -> io::Result<Vec<DirEntry>> {
        let dir = self.dir(dir)?;
        let mut out = Vec::with_capacity(dir.nchildren as usize);
        for &child in self.index.children(dir) {
            let name_node = self.index.node(child).ok_or_else(enoent)?;
            let (obj, node) = self.object(NodeId::from(child))?;
            out.push(DirEntry {
                name: OsString::from_vec(self.index.name(name_node).to_vec()),
                kind: node.kind,
                ino: u64::from(obj) + 1,
            });
        }
        Ok(out)
    }

    fn open(&self, node: NodeId) -> io::Result<Box<dyn FileData>> {
        let (_, n) = self.object(node)?;
        match n.kind {
            Kind::File => {}
            Kind::Dir => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            _ => return Err(einval()),
        }
        Ok(Box::new(TarFileData {
            stream: Arc::clone(&self.stream),
            start: n.data,
            size: n.size,
            sparse: self.index.extra(n).and_then(|e| e.sparse.clone()),
        }))
    }

    fn readlink(&self, node: NodeId) -> io::Result<Vec<u8>> {
        let (_, n) = self.object(node)?;
        if n.kind != Kind::Symlink {
            return Err(einval());
        }
        Ok(self.index.symlink_target(n).to_vec())
    }

    fn list_xattrs(&self, node: NodeId) -> io::Result<Vec<OsString>> {
        let (_, n) = self.object(node)?;
        Ok(self
            .index
            .extra(n)
            .map(|e| {
                e.xattrs
                    .iter()
                    .map(|(name, _)| OsString::from_vec(name.to_vec()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn get_xattr(&self, node: NodeId, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        let (_, n) = self.object(node)?;
        Ok(self.index.extra(n).and_then(|e| {
            e.xattrs
                .iter()
                .find(|(k, _)| **k == *name.as_bytes())
                .map(|(_, v)| v.to_vec())
        }))
    }

    fn statfs(&self) -> io::Result<FsStats> {
        let Some(file) = self.file.local_file() else {
            return Ok(FsStats::default());
        };
        let st = rustix::fs::fstatvfs(file)?;
        Ok(FsStats {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: st.f_files,
            ffree: st.f_ffree,
            bsize: u32::try_from(st.f_bsize).unwrap_or(u32::MAX),
            namelen: u32::try_from(st.f_namemax).unwrap_or(u32::MAX),
            frsize: u32::try_from(st.f_frsize).unwrap_or(u32::MAX),
        })
    }
}

/// An open regular file of a tar layer: its extent (or sparse map) in the shared stream.
struct TarFileData {
    stream: Arc<dyn Stream>,
    start: u64,
    size: u64,
    sparse: Option<Arc<SparseMap>>,
}

impl FileData for TarFileData {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if let Some(map) = &self.sparse {
            return map.read_at(&*self.stream, buf, offset);
        }
        if offset >= self.size {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.size - offset).unwrap_or(usize::MAX));
        // The index checked that the extent lies inside the stream, so a short read means the
        // file changed under us: report it rather than return a short count that looks like EOF.
        self.stream
            .read_exact_at(&mut buf[..want], self.start + offset)?;
        Ok(want)
    }
}
