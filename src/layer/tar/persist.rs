//! Saved tar-layer indexes: the on-disk form of a [`TarIndex`] and of the compressed-stream
//! state beside it, so that a second mount of an image loads its indexes instead of reading
//! its layers again.
//!
//! # Format (version 1)
//! One file per layer, named by the hex sha256 of the layer's key, with `.idx` appended. All
//! integers little-endian, fixed width. A 104-byte header:
//!
//! | at | bytes | field |
//! |----|-------|-------|
//! | 0  | 8  | magic `UMTIDX\0\0` |
//! | 8  | 4  | format version (1) |
//! | 12 | 1  | stream kind (opaque tag of the stream code; 0 = plain tar), then 3 zero bytes |
//! | 16 | 4  | key length K |
//! | 20 | 4  | node count N |
//! | 24 | 4  | children table length C |
//! | 28 | 4  | name arena length A |
//! | 32 | 4  | extras count E |
//! | 36 | 4  | zero |
//! | 40 | 8  | blob size (bytes of the blob as stored, compressed or not) |
//! | 48 | 8  | tar length (bytes of the uncompressed tar stream the index describes) |
//! | 56 | 8  | extras section length X |
//! | 64 | 8  | stream state length S |
//! | 72 | 32 | sha256 of the whole file except these 32 bytes |
//!
//! Then, back to back:
//! - the key, K bytes: a digest `sha256:<hex>`, or for a file without one `file:`, its
//!   canonical path, a NUL, and its device, inode, size, mtime, ctime, and the offset and
//!   length of the byte range, as text;
//! - N node records of 72 bytes: the fields of [`Node`] in declaration order (`parent`,
//!   `name_off`, `name_len` as u32; `kind` as u8 in [`Kind`] order; flags u8; `perm` u16;
//!   `uid`, `gid`, `nlink`, `mtime_nsec` u32; `mtime_sec` i64; `size`, `data` u64; `obj`,
//!   `extra`, `children`, `nchildren` u32);
//! - C children as u32, each directory's run sorted by name;
//! - the A-byte name arena (names and symlink targets);
//! - E extras records, X bytes in all: an xattr count (u32), per xattr its name length and
//!   value length (u32 each), name, value; then a tag byte, 0 for no sparse map, or 1 and the
//!   map as real size, data start (u64 each), chunk count (u32) and (offset, length) pairs;
//! - S bytes of stream state (gzip checkpoints, zstd frame tables; empty for a plain tar),
//!   which the stream code checks itself.
//!
//! # Trust
//! A saved file is only a cache: any doubt means "rebuild", never "misread". Loading refuses
//! (with a `debug` log saying why) a wrong magic, another version, another key or blob size, a
//! length that does not add up, a checksum mismatch, and any table that does not hold
//! together (indexes out of range, names past the arena or not proper path components,
//! children unsorted, shared or under the wrong parent, data past the tar, bad sparse maps).
//! What passes is a tree from the root in which every access `TarLayer` makes is in bounds.
//! The blob's digest is checked when the index is built, not when it is loaded: the store
//! verifies blobs as they enter, and a local tar file is keyed by its identity, so a changed
//! file has another key.
//!
//! Writes go to a uniquely named temporary file in the same directory, are fsynced, renamed
//! over the final name and the directory fsynced, so a reader (or a crash) sees the old file
//! or the new one, and concurrent writers of one key each rename a complete file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::index::{Extra, FLAGS_KNOWN, NONE, Node, ROOT, TarIndex};
use super::sparse::SparseMap;
use crate::layer::Kind;
use crate::layer::blob::{BlobRef, Digest};

const MAGIC: [u8; 8] = *b"UMTIDX\0\0";
/// Bump on any change of layout or meaning; an index of another version is rebuilt.
pub(crate) const VERSION: u32 = 1;
pub(super) const HEADER_BYTES: usize = 104;
const HASH_AT: usize = 72;
pub(super) const NODE_BYTES: usize = 72;

/// The stream kind of a plain (uncompressed) tar, whose stream state is empty.
#[cfg(test)]
pub(crate) const STREAM_PLAIN: u8 = 0;

/// What a saved index is valid for: the blob it describes, and that blob's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexKey {
    id: Vec<u8>,
    blob_len: u64,
}

impl IndexKey {
    /// The key of a blob: the identity of the file and byte range, so that any change to the
    /// file changes the key, plus the digests it was checked against. A digest alone is not
    /// enough: an `oci:` layout is an ordinary directory, and a blob edited in place after it
    /// was indexed must be read (and fail its digest check) again, not served from the saved
    /// index. ctime is part of it as well as mtime: rewriting a file in place and restoring
    /// its mtime (`cp -p`, `touch -r`) still moves ctime.
    pub(crate) fn for_blob(blob: &BlobRef) -> io::Result<IndexKey> {
        let path = fs::canonicalize(&blob.path)?;
        let meta = fs::metadata(&path)?;
        let mut id = Vec::new();
        for (what, digest) in [("digest", &blob.digest), ("diff_id", &blob.diff_id)] {
            if let Some(d) = digest {
                id.extend_from_slice(format!("{what}={d}\0").as_bytes());
            }
        }
        id.extend_from_slice(b"file:");
        id.extend_from_slice(path.as_os_str().as_bytes());
        // A path never holds NUL, so the fields cannot run into it.
        id.extend_from_slice(
            format!(
                "\0dev={} ino={} size={} mtime={}.{:09} ctime={}.{:09} offset={} len={}",
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                blob.offset,
                blob.len
            )
            .as_bytes(),
        );
        Ok(IndexKey {
            id,
            blob_len: blob.len,
        })
    }

    /// The key of a remote blob: its digests alone (a registry serves a blob by digest, and
    /// the pass checked it), and a marker that keeps it apart from any local file's key.
    pub(crate) fn for_remote(digest: &Digest, diff_id: Option<&Digest>, blob_len: u64) -> IndexKey {
        let mut id = format!("digest={digest}\0");
        if let Some(d) = diff_id {
            id.push_str(&format!("diff_id={d}\0"));
        }
        id.push_str("remote");
        IndexKey {
            id: id.into_bytes(),
            blob_len,
        }
    }

    /// A key from its parts, for tests.
    #[cfg(test)]
    pub(crate) fn new(id: &[u8], blob_len: u64) -> IndexKey {
        IndexKey {
            id: id.to_vec(),
            blob_len,
        }
    }

    fn file_name(&self) -> String {
        let mut name = hex(&Sha256::digest(&self.id));
        name.push_str(".idx");
        name
    }

    /// The blob in log lines: its digest, else its path (the first field of the key).
    pub(super) fn describe(&self) -> String {
        let end = self
            .id
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.id.len());
        let first = &self.id[..end];
        let first = first
            .strip_prefix(b"digest=")
            .or_else(|| first.strip_prefix(b"file:"))
            .unwrap_or(first);
        super::one_line(&String::from_utf8_lossy(first)).into_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar index with the state its compressed stream needs to read at any offset.
#[derive(Debug)]
pub(crate) struct Saved {
    pub index: TarIndex,
    /// Opaque tag of the stream code ([`STREAM_PLAIN`] for an uncompressed tar).
    pub stream_kind: u8,
    /// Length of the uncompressed tar stream; every data extent of the index lies inside it.
    pub tar_len: u64,
    /// Opaque bytes of the stream code (checkpoints, frame tables); empty for a plain tar.
    pub stream_state: Vec<u8>,
}

/// A directory of saved indexes.
#[derive(Clone, Debug)]
pub struct IndexCache {
    dir: PathBuf,
}

impl IndexCache {
    pub fn new(dir: PathBuf) -> IndexCache {
        IndexCache { dir }
    }

    /// `indexes/` under the store root (DESIGN.md, "The store": `$UNIONMOUNT_ROOT`, else
    /// `/var/lib/unionmount` for root); otherwise the user's cache directory, since indexes
    /// can always be rebuilt.
    pub fn default_dir() -> PathBuf {
        if let Some(root) = std::env::var_os("UNIONMOUNT_ROOT").filter(|r| !r.is_empty()) {
            return PathBuf::from(root).join("indexes");
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/unionmount/indexes");
        }
        // The XDG base directory spec says relative values are invalid and to be ignored.
        let absolute = |var| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        if let Some(cache) = absolute("XDG_CACHE_HOME") {
            return cache.join("unionmount/indexes");
        }
        if let Some(home) = absolute("HOME") {
            return home.join(".cache/unionmount/indexes");
        }
        let uid = rustix::process::geteuid().as_raw();
        std::env::temp_dir().join(format!("unionmount-{uid}/indexes"))
    }

    /// Removes the saved index of `blob` (call it before the blob file goes: the key is the
    /// file's identity). Whether there was one.
    pub fn forget(&self, blob: &BlobRef) -> bool {
        IndexKey::for_blob(blob)
            .is_ok_and(|key| fs::remove_file(self.dir.join(key.file_name())).is_ok())
    }

    /// Removes the saved index of a remote blob (see [`IndexKey::for_remote`]); whether
    /// there was one.
    pub fn forget_remote(&self, digest: &Digest, diff_id: Option<&Digest>, blob_len: u64) -> bool {
        let key = IndexKey::for_remote(digest, diff_id, blob_len);
        fs::remove_file(self.dir.join(key.file_name())).is_ok()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The saved index for `key`, if there is one that can be trusted.
    #[cfg(test)]
    pub(crate) fn load(&self, key: &IndexKey) -> Option<Saved> {
        self.load_sized(key).map(|(saved, _)| saved)
    }

    /// [`Self::load`], with the size of the file it came from.
    pub(super) fn load_sized(&self, key: &IndexKey) -> Option<(Saved, u64)> {
        let path = self.dir.join(key.file_name());
        let bytes = match read_file(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log::debug!(
                    "{}: no saved index in {}; indexing",
                    key.describe(),
                    self.dir.display()
                );
                return None;
            }
            Err(e) => {
                log::debug!("{}: cannot read {}: {e}", key.describe(), path.display());
                return None;
            }
        };
        match decode(&bytes, key) {
            Ok(saved) => Some((saved, bytes.len() as u64)),
            Err(why) => {
                log::debug!(
                    "{}: not using saved index {}: {why}; indexing again",
                    key.describe(),
                    path.display()
                );
                None
            }
        }
    }

    /// Saves `saved` under `key`, atomically; the size of the file written.
    pub(crate) fn store(&self, key: &IndexKey, saved: &Saved) -> io::Result<u64> {
        let bytes = encode(key, saved)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let name = key.file_name();
        let tmp = self.dir.join(format!(".{name}.{}.tmp", unique_suffix()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = (|| {
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, self.dir.join(&name))?;
            // The rename is durable only once the directory itself is.
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| bytes.len() as u64)
    }
}

/// Process id, a process-wide counter and the time: unique among concurrent writers, in
/// this process or others, and across pid reuse.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

/// The whole file in one allocation and (usually) one read.
fn read_file(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Symlink => 2,
        Kind::CharDev => 3,
        Kind::BlockDev => 4,
        Kind::Fifo => 5,
        Kind::Socket => 6,
        Kind::Whiteout => 7,
    }
}

fn kind_from(code: u8) -> Option<Kind> {
    Some(match code {
        0 => Kind::File,
        1 => Kind::Dir,
        2 => Kind::Symlink,
        3 => Kind::CharDev,
        4 => Kind::BlockDev,
        5 => Kind::Fifo,
        6 => Kind::Socket,
        7 => Kind::Whiteout,
        _ => return None,
    })
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} too large to save"),
    )
}

fn len_u32(n: usize, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| too_big(what))
}

/// The saved form of `saved` under `key`, checksum included.
pub(crate) fn encode(key: &IndexKey, saved: &Saved) -> io::Result<Vec<u8>> {
    let (nodes, names, children, extras) = saved.index.parts();
    let mut extra_bytes = Vec::new();
    for e in extras {
        put_extra(&mut extra_bytes, e)?;
    }
    let total = HEADER_BYTES
        + key.id.len()
        + nodes.len() * NODE_BYTES
        + children.len() * 4
        + names.len()
        + extra_bytes.len()
        + saved.stream_state.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[saved.stream_kind, 0, 0, 0]);
    for (n, what) in [
        (key.id.len(), "key"),
        (nodes.len(), "node table"),
        (children.len(), "children table"),
        (names.len(), "name arena"),
        (extras.len(), "extras table"),
        (0, ""),
    ] {
        out.extend_from_slice(&len_u32(n, what)?.to_le_bytes());
    }
    for n in [
        key.blob_len,
        saved.tar_len,
        extra_bytes.len() as u64,
        saved.stream_state.len() as u64,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.resize(HEADER_BYTES, 0);
    out.extend_from_slice(&key.id);
    for n in nodes {
        put_node(&mut out, n);
    }
    for c in children {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(names);
    out.extend_from_slice(&extra_bytes);
    out.extend_from_slice(&saved.stream_state);
    seal(&mut out);
    Ok(out)
}

/// Writes the checksum of `file` into its header.
pub(super) fn seal(file: &mut [u8]) {
    let hash = checksum(file);
    file[HASH_AT..HEADER_BYTES].copy_from_slice(&hash);
}

/// sha256 of everything but the checksum field. `file` holds at least a header.
fn checksum(file: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&file[..HASH_AT]);
    h.update(&file[HEADER_BYTES..]);
    h.finalize().into()
}

fn put_node(out: &mut Vec<u8>, n: &Node) {
    let mut rec = [0u8; NODE_BYTES];
    rec[0..4].copy_from_slice(&n.parent.to_le_bytes());
    rec[4..8].copy_from_slice(&n.name_off.to_le_bytes());
    rec[8..12].copy_from_slice(&n.name_len.to_le_bytes());
    rec[12] = kind_code(n.kind);
    rec[13] = n.flag_bits();
    rec[14..16].copy_from_slice(&n.perm.to_le_bytes());
    rec[16..20].copy_from_slice(&n.uid.to_le_bytes());
    rec[20..24].copy_from_slice(&n.gid.to_le_bytes());
    rec[24..28].copy_from_slice(&n.nlink.to_le_bytes());
    rec[28..32].copy_from_slice(&n.mtime_nsec.to_le_bytes());
    rec[32..40].copy_from_slice(&n.mtime_sec.to_le_bytes());
    rec[40..48].copy_from_slice(&n.size.to_le_bytes());
    rec[48..56].copy_from_slice(&n.data.to_le_bytes());
    rec[56..60].copy_from_slice(&n.obj.to_le_bytes());
    rec[60..64].copy_from_slice(&n.extra.to_le_bytes());
    rec[64..68].copy_from_slice(&n.children.to_le_bytes());
    rec[68..72].copy_from_slice(&n.nchildren.to_le_bytes());
    out.extend_from_slice(&rec);
}

fn put_extra(out: &mut Vec<u8>, e: &Extra) -> io::Result<()> {
    out.extend_from_slice(&len_u32(e.xattrs.len(), "xattr list")?.to_le_bytes());
    for (name, value) in &e.xattrs {
        out.extend_from_slice(&len_u32(name.len(), "xattr name")?.to_le_bytes());
        out.extend_from_slice(&len_u32(value.len(), "xattr value")?.to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    match &e.sparse {
        None => out.push(0),
        Some(map) => {
            out.push(1);
            let (real_size, start, extents) = map.saved_form();
            let extents: Vec<(u64, u64)> = extents.collect();
            out.extend_from_slice(&real_size.to_le_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&len_u32(extents.len(), "sparse map")?.to_le_bytes());
            for (off, len) in extents {
                out.extend_from_slice(&off.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Bounds-checked little-endian reads from a byte slice.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("a record runs past its section")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "a section is larger than memory".to_string())
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Reads and checks a saved file against the key it should be for.
pub(crate) fn decode(file: &[u8], key: &IndexKey) -> Result<Saved, String> {
    let mut head = Cursor {
        buf: file.get(..HEADER_BYTES).ok_or("shorter than its header")?,
        pos: 0,
    };
    if head.array::<8>()? != MAGIC {
        return Err("not a saved index (bad magic)".into());
    }
    let version = head.u32()?;
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let [stream_kind, pad @ ..] = head.array::<4>()?;
    let key_len = head.u32()? as usize;
    let n_nodes = head.u32()? as usize;
    let n_children = head.u32()? as usize;
    let names_len = head.u32()? as usize;
    let n_extras = head.u32()? as usize;
    let zero = head.u32()?;
    let blob_len = head.u64()?;
    let tar_len = head.u64()?;
    let extras_len = head.len()?;
    let state_len = head.len()?;
    if pad != [0; 3] || zero != 0 {
        return Err("reserved header bytes are not zero".into());
    }
    if file.get(HEADER_BYTES..HEADER_BYTES.saturating_add(key_len)) != Some(&key.id[..]) {
        return Err("saved for another blob (key differs)".into());
    }
    if blob_len != key.blob_len {
        return Err(format!(
            "stale: saved for a blob of {blob_len} bytes, this one has {}",
            key.blob_len
        ));
    }
    let expect = [
        key_len,
        n_nodes.saturating_mul(NODE_BYTES),
        n_children.saturating_mul(4),
        names_len,
        extras_len,
        state_len,
    ]
    .iter()
    .try_fold(HEADER_BYTES, |sum, &n| sum.checked_add(n));
    if expect != Some(file.len()) {
        return Err(format!(
            "{} bytes, the header accounts for {} (truncated or overwritten)",
            file.len(),
            expect.map_or("more than memory".into(), |n| n.to_string())
        ));
    }
    if checksum(file) != file[HASH_AT..HEADER_BYTES] {
        return Err("checksum mismatch (corrupt)".into());
    }

    let mut body = Cursor {
        buf: file,
        pos: HEADER_BYTES + key_len,
    };
    let node_bytes = body.bytes(n_nodes * NODE_BYTES)?;
    let mut nodes = Vec::with_capacity(n_nodes);
    for rec in node_bytes.chunks_exact(NODE_BYTES) {
        nodes.push(get_node(rec)?);
    }
    let children: Vec<u32> = body
        .bytes(n_children * 4)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let names = body.bytes(names_len)?.to_vec();
    let mut extra_cursor = Cursor {
        buf: body.bytes(extras_len)?,
        pos: 0,
    };
    // Each record takes at least 5 bytes, which bounds what a bad count can reserve.
    let mut extras = Vec::with_capacity(n_extras.min(extras_len / 5));
    for _ in 0..n_extras {
        extras.push(get_extra(&mut extra_cursor, tar_len)?);
    }
    if extra_cursor.left() != 0 {
        return Err("extras section has bytes after its last record".into());
    }
    let stream_state = body.bytes(state_len)?.to_vec();
    check_tables(&nodes, &names, &children, &extras, tar_len)?;
    Ok(Saved {
        index: TarIndex::from_parts(nodes, names, children, extras),
        stream_kind,
        tar_len,
        stream_state,
    })
}

fn get_node(rec: &[u8]) -> Result<Node, String> {
    let u32_at = |at: usize| u32::from_le_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]);
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&rec[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let flags = rec[13];
    if flags & !FLAGS_KNOWN != 0 {
        return Err(format!("unknown node flags {flags:#x}"));
    }
    let mut n = Node::with_flag_bits(flags);
    n.parent = u32_at(0);
    n.name_off = u32_at(4);
    n.name_len = u32_at(8);
    n.kind = kind_from(rec[12]).ok_or_else(|| format!("unknown node kind {}", rec[12]))?;
    n.perm = u16::from_le_bytes([rec[14], rec[15]]);
    n.uid = u32_at(16);
    n.gid = u32_at(20);
    n.nlink = u32_at(24);
    n.mtime_nsec = u32_at(28);
    n.mtime_sec = u64_at(32) as i64;
    n.size = u64_at(40);
    n.data = u64_at(48);
    n.obj = u32_at(56);
    n.extra = u32_at(60);
    n.children = u32_at(64);
    n.nchildren = u32_at(68);
    Ok(n)
}

fn get_extra(c: &mut Cursor<'_>, tar_len: u64) -> Result<Extra, String> {
    let count = c.u32()? as usize;
    let mut xattrs = Vec::with_capacity(count.min(c.left() / 8));
    for _ in 0..count {
        let name_len = c.u32()? as usize;
        let value_len = c.u32()? as usize;
        let name = c.bytes(name_len)?;
        let value = c.bytes(value_len)?;
        xattrs.push((name.into(), value.into()));
    }
    let sparse = match c.u8()? {
        0 => None,
        1 => {
            let real_size = c.u64()?;
            let start = c.u64()?;
            let count = c.u32()? as usize;
            let mut extents = Vec::with_capacity(count.min(c.left() / 16));
            let mut stored = 0u64;
            for _ in 0..count {
                let (off, len) = (c.u64()?, c.u64()?);
                stored = stored
                    .checked_add(len)
                    .ok_or("sparse chunk lengths overflow")?;
                extents.push((off, len));
            }
            if start.checked_add(stored).is_none_or(|end| end > tar_len) {
                return Err("sparse data lies past the end of the tar".into());
            }
            let map = SparseMap::new(&extents, real_size, start, stored)
                .map_err(|e| format!("bad sparse map: {e}"))?;
            Some(Arc::new(map))
        }
        t => return Err(format!("unknown sparse tag {t}")),
    };
    Ok(Extra { xattrs, sparse })
}

/// True for a name the builder can produce: one path component.
fn proper_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

/// Checks that the tables hold together as `index::build` leaves them, so that every access
/// `TarLayer` makes is in bounds and the names under the root form a tree.
fn check_tables(
    nodes: &[Node],
    names: &[u8],
    children: &[u32],
    extras: &[Extra],
    tar_len: u64,
) -> Result<(), String> {
    let root = nodes.get(ROOT as usize).ok_or("no root node")?;
    if root.kind != Kind::Dir || root.obj != ROOT {
        return Err("the root is not a directory object".into());
    }
    let count = nodes.len() as u64;
    let in_arena = |off: u64, len: u64| {
        off.checked_add(len)
            .is_some_and(|e| e <= names.len() as u64)
    };
    for (i, n) in nodes.iter().enumerate() {
        let bad = |why: &str| Err(format!("node {i}: {why}"));
        if u64::from(n.parent) >= count || u64::from(n.obj) >= count {
            return bad("parent or object out of range");
        }
        if !in_arena(u64::from(n.name_off), u64::from(n.name_len)) {
            return bad("name past the arena");
        }
        if n.perm > 0o7777 || n.mtime_nsec >= 1_000_000_000 {
            return bad("mode or mtime out of range");
        }
        if n.extra != NONE && n.extra as usize >= extras.len() {
            return bad("extras index out of range");
        }
        if u64::from(n.children) + u64::from(n.nchildren) > children.len() as u64 {
            return bad("children run past the table");
        }
        if n.kind != Kind::Dir && n.nchildren != 0 {
            return bad("children of a non-directory");
        }
        let obj = &nodes[n.obj as usize];
        if n.obj as usize != i {
            // A hard link: a name for an object that is its own object and not a directory.
            if obj.obj != n.obj || obj.kind == Kind::Dir || obj.kind != n.kind {
                return bad("bad hard link");
            }
            continue;
        }
        let sparse = extras.get(n.extra as usize).and_then(|e| e.sparse.as_ref());
        match (n.kind, sparse) {
            (Kind::Symlink, _) if !in_arena(n.data, n.size) => return bad("target past the arena"),
            (Kind::File, None) if n.data.checked_add(n.size).is_none_or(|e| e > tar_len) => {
                return bad("data past the end of the tar");
            }
            (Kind::File, Some(map)) if map.saved_form().0 != n.size => {
                return bad("size differs from its sparse map");
            }
            (Kind::File, _) | (_, None) => {}
            (_, Some(_)) => return bad("sparse map on a non-file"),
        }
    }
    // Every name appears in one run only, under its own parent, in strictly increasing
    // order: then lookups can binary-search, and the names reachable from the root form a
    // tree (a name has one parent, so no directory can be reached twice).
    let mut seen = vec![false; nodes.len()];
    for (d, dir) in nodes.iter().enumerate() {
        let start = dir.children as usize;
        let run = &children[start..start + dir.nchildren as usize];
        let mut prev: Option<&[u8]> = None;
        for &c in run {
            let bad = |why: &str| Err(format!("child {c} of directory {d}: {why}"));
            let Some(child) = nodes.get(c as usize) else {
                return bad("out of range");
            };
            if c == ROOT || seen[c as usize] || child.parent as usize != d {
                return bad("listed twice, or under another parent");
            }
            seen[c as usize] = true;
            let start = child.name_off as usize;
            let name = &names[start..start + child.name_len as usize];
            if !proper_name(name) {
                return bad("not a proper name");
            }
            if prev.is_some_and(|p| p >= name) {
                return bad("children not sorted");
            }
            prev = Some(name);
        }
    }
    Ok(())
}
