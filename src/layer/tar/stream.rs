//! Random access to the bytes of a layer's *uncompressed* tar stream.
//!
//! Everything after indexing (file data, sparse maps, GNU sparse extension headers) is read by
//! offset into the uncompressed stream through [`Stream`]. Today the only implementation is a
//! plain tar file read with `pread`; compressed layers will add implementations that seek via
//! checkpoints, without the index or the readers above having to change.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Positional reads from the uncompressed tar stream, shared by all open files of a layer.
pub(crate) trait Stream: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; a short count means the end of the stream.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Length of the uncompressed stream in bytes.
    fn len(&self) -> u64;

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the stream ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("tar stream ends at byte {offset}"),
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
}

/// An uncompressed tar file: the stream is the file itself.
pub(crate) struct PlainTar {
    file: Arc<File>,
    len: u64,
}

impl PlainTar {
    /// `len` is the file length at open time; the layer treats the blob as immutable.
    pub(crate) fn new(file: Arc<File>, len: u64) -> PlainTar {
        PlainTar { file, len }
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
        self.file.read_at(&mut buf[..want], offset)
    }

    fn len(&self) -> u64 {
        self.len
    }
}
