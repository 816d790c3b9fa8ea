//! Where a layer's bytes come from when it is an image blob: a byte range of a file (a blob
//! of an OCI layout, or a member of a `docker save` archive read in place), its compression,
//! and the digests it must match.
//!
//! The image model (`crate::image`) fills these in from manifests and configs; the layer code
//! only reads bytes and checks digests, so it never needs to know about images.
//!
//! A blob that is not in a local file (a layer of a remote image mounted lazily) is a
//! [`RangeSource`]: its bytes by range, and one sequential stream for the indexing pass. The
//! layer code reads every blob through [`BlobRead`], which a local `File` implements with
//! `pread` and a remote blob through its on-disk chunk cache (`crate::layer::remote`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Positional reads of a blob's stored bytes (compressed or not), shared by all readers of a
/// layer. The per-read hot path of a local layer is one call of this through a `dyn`.
pub trait BlobRead: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; a short count means the end of the blob
    /// (or of the file holding it).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the blob ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        fill_at(|b, o| self.read_at(b, o), buf, offset, "the blob")
    }

    /// A local file on the filesystem that holds the blob (or its cache), for `statfs`.
    fn local_file(&self) -> Option<&File> {
        None
    }
}

/// Fills `buf` from `offset` by repeated positional reads (`read`, which returns 0 at the
/// end), retrying on EINTR; `UnexpectedEof` names `what` ended and where.
pub(crate) fn fill_at(
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
    mut buf: &mut [u8],
    mut offset: u64,
    what: &str,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{what} ends at byte {offset}"),
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl BlobRead for File {
    #[inline]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn local_file(&self) -> Option<&File> {
        Some(self)
    }
}

/// A blob reachable by byte ranges, typically over the network (HTTP `Range` GETs of a
/// registry blob). Implementations may block; they are called from FUSE worker threads and
/// from the chunk cache's background fill, so they must be shareable.
///
/// Bytes read through a source are not verified one range at a time (a digest covers the
/// whole blob only): the indexing pass reads [`Self::stream`] once and checks the digest, and
/// later ranges are trusted to be the same bytes (a registry serves blobs by digest).
pub trait RangeSource: Send + Sync + 'static {
    /// The blob's bytes `[offset, offset + len)`; fewer only where the blob ends.
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// The blob's length in bytes (from the manifest's descriptor).
    fn len(&self) -> u64;

    /// Whether the blob is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One sequential reader of the blob from `offset` to its end (a streaming GET), for the
    /// one indexing pass.
    fn stream(&self, offset: u64) -> io::Result<Box<dyn Read + Send>>;

    /// The blob in messages, e.g. `sha256:... of docker://localhost:5000/app:1`.
    fn describe(&self) -> String;
}

/// A layer blob behind a [`RangeSource`], read lazily: what `mount --lazy` gives as a layer.
/// Two are equal when they name the same content (digest, diff_id, compression, image).
#[derive(Clone)]
pub struct RemoteBlobRef {
    pub source: Arc<dyn RangeSource>,
    /// sha256 of the blob as stored: required, since it names the blob's chunk cache and
    /// saved index, and is checked by the indexing pass.
    pub digest: Digest,
    /// sha256 of the uncompressed tar; checked by the indexing pass when given.
    pub diff_id: Option<Digest>,
    pub compression: Compression,
    /// For messages: which image the blob belongs to (e.g. `docker://localhost:5000/app:1`).
    pub image: Option<String>,
    /// Fetch the whole blob into the chunk cache in the background (`--fill`).
    pub fill: bool,
}

impl RemoteBlobRef {
    /// A blob of `source` with no diff_id, compression detected, no image name, no fill.
    pub fn new(source: Arc<dyn RangeSource>, digest: Digest) -> RemoteBlobRef {
        RemoteBlobRef {
            source,
            digest,
            diff_id: None,
            compression: Compression::Detect,
            image: None,
            fill: false,
        }
    }
}

impl PartialEq for RemoteBlobRef {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
            && self.diff_id == other.diff_id
            && self.compression == other.compression
            && self.image == other.image
            && self.fill == other.fill
    }
}

impl Eq for RemoteBlobRef {}

impl fmt::Debug for RemoteBlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteBlobRef")
            .field("source", &self.source.describe())
            .field("len", &self.source.len())
            .field("digest", &self.digest)
            .field("diff_id", &self.diff_id)
            .field("compression", &self.compression)
            .field("image", &self.image)
            .field("fill", &self.fill)
            .finish()
    }
}

/// A content digest, `sha256:<64 lowercase hex>` (the only algorithm images use in practice;
/// OCI image-spec descriptor.md, "Digests").
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; anything else is refused with the reason.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(format!(
                "unsupported digest {s:?} (only sha256 is supported)"
            ));
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "malformed digest {s:?} (want sha256: and 64 lowercase hex digits)"
            ));
        }
        Ok(Digest(s.to_string()))
    }

    /// Builds a digest from a finished sha256 hash.
    pub fn from_sha256(hash: &[u8]) -> Digest {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in hash {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, as used for file names under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Not stated (a local file, or an unknown media type): decided by the magic bytes.
    Detect,
}

/// A layer stored as a blob: `len` bytes at `offset` of the file at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub compression: Compression,
    /// sha256 of the blob's bytes as stored; checked when the blob is first indexed.
    pub digest: Option<Digest>,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`); checked likewise.
    pub diff_id: Option<Digest>,
    /// For messages: which image the blob belongs to (e.g. `oci:layout:latest`).
    pub image: Option<String>,
}

/// What a mount is given as one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSource {
    /// A directory (extracted layer) or a tar file, possibly compressed, given by path.
    Path(PathBuf),
    /// A blob of an image.
    Blob(BlobRef),
    /// A blob of a remote image, read lazily by ranges.
    Remote(RemoteBlobRef),
}

impl fmt::Display for LayerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSource::Path(p) => write!(f, "{}", p.display()),
            LayerSource::Blob(b) => match (&b.image, &b.digest) {
                (Some(image), Some(d)) => write!(f, "{d} of {image}"),
                (None, Some(d)) => write!(f, "{d}"),
                _ => write!(f, "{}@{}+{}", b.path.display(), b.offset, b.len),
            },
            LayerSource::Remote(r) => match &r.image {
                Some(image) => write!(f, "{} of {image}", r.digest),
                None => write!(f, "{}", r.source.describe()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_validated() {
        let hex = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.hex(), hex);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha512:{hex}")).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert_eq!(
            Digest::from_sha256(&[0xab; 32]).as_str(),
            format!("sha256:{}", "ab".repeat(32))
        );
    }
}
