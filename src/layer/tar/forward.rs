//! The one sequential pass over a blob: the uncompressed tar stream produced front to back,
//! presented to the index builder as a [`Stream`].
//!
//! The builder reads by offset, but only near where it is: the next headers (a buffered
//! read-ahead), the extension headers just before an entry and the sparse map at the start of
//! its data (a little behind), and it skips file data by seeking forward. [`Forward`] serves
//! that from a bounded window of recently produced bytes, and turns a forward seek into
//! "produce and discard", so nothing is decompressed twice and memory stays bounded whatever
//! the layer holds (a gzip bomb only costs time). Every produced byte goes through the
//! uncompressed-digest hash when one is asked for; [`RawReader`] does the same for the blob's
//! stored bytes, so both digests come out of the same pass.

use std::io::{self, Read};
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};

use super::progress::IndexProgress;
use super::stream::Stream;
use crate::layer::blob::BlobRead;

/// Bytes kept behind the newest produced byte: the builder looks back at most one PAX header
/// (`extension::MAX_PAX`, 1 MiB) plus a few header blocks.
const KEEP: usize = 2 << 20;
/// Buffer size at which the bytes older than [`KEEP`] are dropped (a memmove of at most
/// `KEEP` bytes per `COMPACT - KEEP` produced).
const COMPACT: usize = 8 << 20;
/// Most bytes asked of a producer at once.
pub(crate) const PRODUCE: usize = 1 << 20;

/// A source of the uncompressed stream, front to back.
pub(crate) trait Produce: Send {
    /// Appends at most `max` bytes to `out` and returns how many; 0 means the stream ended.
    /// `out` ends with the bytes produced so far (at least the last
    /// [`TAIL`](super::ahead::TAIL) of them), which is where the gzip pass finds its window.
    fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize>;
}

/// The uncompressed stream of the pass, readable by offset within its window.
pub(crate) struct Forward<P> {
    state: Mutex<State<P>>,
}

struct State<P> {
    producer: P,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    start: u64,
    done: bool,
    /// The first error the producer gave; the pass fails with it.
    error: Option<String>,
    hash: Option<Sha256>,
}

impl<P: Produce> Forward<P> {
    /// `hash`: also compute the sha256 of everything produced.
    pub(crate) fn new(producer: P, hash: bool) -> Forward<P> {
        Forward {
            state: Mutex::new(State {
                producer,
                buf: Vec::with_capacity(COMPACT + PRODUCE),
                start: 0,
                done: false,
                error: None,
                hash: hash.then(Sha256::new),
            }),
        }
    }

    /// Why producing failed, if it did (a corrupt or truncated compressed stream, or an I/O
    /// error on the blob): the real cause behind whatever the tar reader made of it.
    pub(crate) fn error(&self) -> Option<String> {
        self.state.lock().error.clone()
    }

    /// Produces the rest of the stream (past the end-of-archive blocks: padding, and for
    /// compressed blobs the trailers that carry their checks) and returns the producer, the
    /// stream length and the hash of the stream.
    pub(crate) fn finish(self) -> Result<(P, u64, Option<[u8; 32]>), String> {
        let mut s = self.state.into_inner();
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        while !s.done {
            let end = s.start + s.buf.len() as u64;
            s.fill(end + 1, end).map_err(|e| e.to_string())?;
        }
        let len = s.start + s.buf.len() as u64;
        let hash = s.hash.take().map(|h| h.finalize().into());
        Ok((s.producer, len, hash))
    }
}

impl<P: Produce> State<P> {
    /// Produces until the buffer reaches `upto` or the stream ends, never dropping bytes at or
    /// after `keep_from`.
    fn fill(&mut self, upto: u64, keep_from: u64) -> io::Result<()> {
        while !self.done && self.start + (self.buf.len() as u64) < upto {
            if self.buf.len() >= COMPACT {
                let behind =
                    usize::try_from(keep_from.saturating_sub(self.start)).unwrap_or(usize::MAX);
                let drop = (self.buf.len() - KEEP).min(behind);
                self.buf.drain(..drop);
                self.start += drop as u64;
            }
            let old = self.buf.len();
            let n = match self.producer.produce(&mut self.buf, PRODUCE) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(old);
                    self.error = Some(e.to_string());
                    return Err(e);
                }
            };
            if n == 0 {
                self.done = true;
            }
            if let Some(h) = &mut self.hash {
                h.update(&self.buf[old..]);
            }
        }
        Ok(())
    }
}

impl<P: Produce> Stream for Forward<P> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.state.lock();
        if let Some(e) = &s.error {
            return Err(io::Error::other(e.clone()));
        }
        if offset < s.start {
            // The builder only looks back a header or two; reaching further means a bug here.
            return Err(io::Error::other(format!(
                "byte {offset} of the stream is no longer in the pass's window (from byte {})",
                s.start
            )));
        }
        s.fill(offset.saturating_add(buf.len() as u64), offset)?;
        let at = usize::try_from(offset - s.start).unwrap_or(usize::MAX);
        if at >= s.buf.len() {
            return Ok(0);
        }
        let n = buf.len().min(s.buf.len() - at);
        buf[..n].copy_from_slice(&s.buf[at..at + n]);
        Ok(n)
    }

    /// Unknown until the pass has produced everything: until then, "no end yet", and the
    /// builder finds the end by reading up to it.
    fn len(&self) -> u64 {
        let s = self.state.lock();
        if s.done {
            s.start + s.buf.len() as u64
        } else {
            u64::MAX
        }
    }
}

/// The blob's stored bytes, read front to back in large pieces from a sequential reader (a
/// local file through [`PositionalReader`], or a remote blob's stream) and hashed on the way
/// when asked.
pub(crate) struct RawReader {
    input: Box<dyn Read + Send>,
    len: u64,
    /// Offset within the blob of `buf[0]`.
    pos: u64,
    buf: Vec<u8>,
    at: usize,
    hash: Option<Sha256>,
    progress: IndexProgress,
}

impl RawReader {
    const PIECE: usize = 256 << 10;

    /// `len` bytes of `input`, which must hold at least that many.
    pub(crate) fn new(input: Box<dyn Read + Send>, len: u64, hash: bool) -> RawReader {
        RawReader {
            input,
            len,
            pos: 0,
            buf: Vec::new(),
            at: 0,
            hash: hash.then(Sha256::new),
            progress: IndexProgress::hidden(),
        }
    }

    /// Reports the bytes read to `progress`: this reader is the one place that sees the blob
    /// go by front to back, whatever its compression.
    pub(crate) fn with_progress(mut self, progress: IndexProgress) -> RawReader {
        self.progress = progress;
        self
    }

    /// The unconsumed bytes, reading more when none are left; empty at the end of the blob.
    pub(crate) fn fill(&mut self) -> io::Result<&[u8]> {
        if self.at == self.buf.len() {
            self.pos += self.buf.len() as u64;
            self.at = 0;
            let room = self.len - self.pos;
            let want = Self::PIECE.min(usize::try_from(room).unwrap_or(usize::MAX));
            self.buf.resize(want, 0);
            let mut got = 0;
            while got < want {
                match self.input.read(&mut self.buf[got..]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the blob ends before its length (byte {} of {})",
                                self.pos + got as u64,
                                self.len
                            ),
                        ));
                    }
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(h) = &mut self.hash {
                h.update(&self.buf);
            }
            self.progress.update(self.pos + want as u64);
        }
        Ok(&self.buf[self.at..])
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }

    /// Offset within the blob of the next unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.pos + self.at as u64
    }

    /// Reads (and hashes) whatever is left, then returns the hash of the whole blob.
    pub(crate) fn finish(&mut self) -> io::Result<Option<[u8; 32]>> {
        if self.hash.is_some() {
            loop {
                let n = self.fill()?.len();
                if n == 0 {
                    break;
                }
                self.consume(n);
            }
        }
        Ok(self.hash.take().map(|h| h.finalize().into()))
    }
}

/// The plain tar producer: the blob's bytes are the stream (used when digests must be
/// checked, since that needs every byte read anyway).
pub(crate) struct PlainPass {
    pub raw: RawReader,
}

impl Produce for PlainPass {
    fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let input = self.raw.fill()?;
        let n = input.len().min(max);
        out.extend_from_slice(&input[..n]);
        self.raw.consume(n);
        Ok(n)
    }
}

/// A sequential reader over `len` bytes at `base` of a positional blob (a local file read
/// with `pread`, shared with the layer that will serve reads from it later).
pub(crate) struct PositionalReader {
    blob: Arc<dyn BlobRead>,
    base: u64,
    pos: u64,
    len: u64,
}

impl PositionalReader {
    pub(crate) fn new(blob: Arc<dyn BlobRead>, base: u64, len: u64) -> PositionalReader {
        PositionalReader {
            blob,
            base,
            pos: 0,
            len,
        }
    }
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        if want == 0 {
            return Ok(0);
        }
        let n = self.blob.read_at(&mut buf[..want], self.base + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
