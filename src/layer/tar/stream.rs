//! Random access to the bytes of a layer's *uncompressed* tar stream.
//!
//! Everything after indexing (file data, sparse maps, GNU sparse extension headers) is read by
//! offset into the uncompressed stream through [`Stream`]: a plain tar (a whole file or a byte
//! range of one) read with `pread` here, gzip through checkpoints (`gzip`), zstd through a
//! frame table (`zstd`), and during the indexing pass the forward-only stream of `forward`.

use std::io;
use std::sync::Arc;

use crate::layer::blob::BlobRead;

/// Positional reads from the uncompressed tar stream, shared by all open files of a layer.
pub(crate) trait Stream: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; a short count means the end of the stream.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Length of the uncompressed stream in bytes. A stream still being produced by the
    /// indexing pass does not know it yet and says `u64::MAX` until it has reached its end.
    fn len(&self) -> u64;

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the stream ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        crate::layer::blob::fill_at(|b, o| self.read_at(b, o), buf, offset, "tar stream")
    }
}

/// An uncompressed tar: the stream is `len` bytes at `base` of a blob (a whole file, a
/// member of an outer archive, the cache file of a single-frame zstd layer, or a remote blob).
pub(crate) struct PlainTar {
    file: Arc<dyn BlobRead>,
    base: u64,
    len: u64,
}

impl PlainTar {
    /// The layer treats the range as immutable.
    pub(crate) fn new(file: Arc<dyn BlobRead>, base: u64, len: u64) -> PlainTar {
        PlainTar { file, base, len }
    }
}

impl Stream for PlainTar {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        // Never read past the length the index was built against, even if the file grew.
        let room = usize::try_from(self.len - offset).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        self.file.read_at(&mut buf[..want], self.base + offset)
    }

    fn len(&self) -> u64 {
        self.len
    }
}
