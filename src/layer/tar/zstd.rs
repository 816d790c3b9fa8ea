//! Random access into zstd layers.
//!
//! A zstd frame can only be decoded from its start, but frames are independent, so a layer of
//! several frames (concatenated frames, or the seekable format, whose seek table is a skippable
//! frame and simply yields no output) gets a [`FrameTable`] from the indexing pass: for each
//! frame with output, where it is in the blob and in the stream. A read decodes only the frame
//! it falls in, from the frame's start up to the [`PIECE`] it needs; pieces are the chunks
//! kept in the chunk cache. A layer of one frame (what `zstd` and most image builders write)
//! cannot be entered mid-way at all: the pass then writes the whole uncompressed tar to a cache
//! file and the layer reads that like a plain tar. That costs disk space equal to the
//! uncompressed layer (usually 2-4x the blob) for as long as the cache file is kept: under the
//! index directory when there is one (reused by a later mount through the saved state), else
//! an unlinked temp file in `$TMPDIR` whose space is freed when the layer is dropped. A remote
//! layer read lazily is no exception: its one pass keeps the tar this way, and reads never
//! go back to the blob, so a single-frame zstd layer gains nothing from a lazy mount (images
//! meant for one should use gzip or several zstd frames, such as the seekable format).

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use super::chunk_cache::ChunkCache;
use super::codec::{self, Reader};
use super::forward::{Produce, RawReader};
use super::stream::Stream;
use crate::layer::blob::BlobRead;

/// The unit a frame is decoded and cached in: a read decodes its frame from the start up to
/// the end of the piece it needs, caching each piece on the way.
pub(crate) const PIECE: u64 = 4 << 20;

/// One frame with output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Offset and size in the blob.
    pub raw_off: u64,
    pub raw_len: u64,
    /// Offset and size in the uncompressed stream.
    pub out_off: u64,
    pub out_len: u64,
}

/// The random-access state of a multi-frame zstd blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameTable {
    /// In stream order, contiguous in the stream.
    pub frames: Vec<Frame>,
}

impl FrameTable {
    pub(crate) fn len(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.out_off + f.out_len)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u64(out, self.frames.len() as u64);
        for f in &self.frames {
            for v in [f.raw_off, f.raw_len, f.out_off, f.out_len] {
                codec::put_u64(out, v);
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<FrameTable, String> {
        let mut r = Reader::new(bytes);
        let n = r.count(32)?;
        let mut frames = Vec::with_capacity(n);
        let mut next_out = 0u64;
        for _ in 0..n {
            let f = Frame {
                raw_off: r.u64()?,
                raw_len: r.u64()?,
                out_off: r.u64()?,
                out_len: r.u64()?,
            };
            if f.out_off != next_out || f.out_len == 0 || f.raw_off.checked_add(f.raw_len).is_none()
            {
                return Err("frame table is not contiguous".into());
            }
            next_out = f
                .out_off
                .checked_add(f.out_len)
                .ok_or("frame table overflows")?;
            frames.push(f);
        }
        r.end()?;
        Ok(FrameTable { frames })
    }
}

/// Where the pass writes the uncompressed tar of a single-frame layer.
pub(crate) struct CacheFile {
    pub file: File,
    /// Named under the index directory (kept), or `None` for an unlinked temp file.
    pub path: Option<PathBuf>,
}

/// What the pass found.
pub(crate) enum ZstdLayout {
    Frames(FrameTable),
    /// One frame: the whole stream is in the cache file.
    Single(CacheFile),
}

/// The indexing pass: a [`Produce`]r that records the frame table and, while the layer could
/// still be single-frame, copies the output to the cache file.
pub(crate) struct ZstdPass {
    raw: RawReader,
    decoder: Decoder<'static>,
    frames: Vec<Frame>,
    in_frame: bool,
    frame_raw: u64,
    frame_out: u64,
    out_total: u64,
    cache: Option<CacheFile>,
    stalls: u32,
}

impl ZstdPass {
    pub(crate) fn new(raw: RawReader, cache: CacheFile) -> io::Result<ZstdPass> {
        Ok(ZstdPass {
            raw,
            decoder: Decoder::new()?,
            frames: Vec::new(),
            in_frame: false,
            frame_raw: 0,
            frame_out: 0,
            out_total: 0,
            cache: Some(cache),
            stalls: 0,
        })
    }

    /// The layout and the hash of the blob's bytes (all of them read by now).
    pub(crate) fn finish(mut self) -> io::Result<(ZstdLayout, Option<[u8; 32]>)> {
        let hash = self.raw.finish()?;
        let layout = match self.cache.take() {
            Some(mut c) if self.frames.len() <= 1 => {
                c.file.flush()?;
                ZstdLayout::Single(c)
            }
            other => {
                drop_cache(other);
                ZstdLayout::Frames(FrameTable {
                    frames: self.frames,
                })
            }
        };
        Ok((layout, hash))
    }
}

/// Gives up a cache file the layer turned out not to need.
fn drop_cache(cache: Option<CacheFile>) {
    if let Some(CacheFile {
        path: Some(path), ..
    }) = cache
    {
        let _ = std::fs::remove_file(path);
    }
}

impl Produce for ZstdPass {
    fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        loop {
            let at = self.raw.offset();
            let input = self.raw.fill()?;
            if input.is_empty() {
                if self.in_frame {
                    return Err(bad(&format!("zstd stream truncated at byte {at}")));
                }
                if self.out_total == 0 && self.frames.is_empty() && at == 0 {
                    return Err(bad("empty zstd stream"));
                }
                return Ok(0);
            }
            if !self.in_frame {
                self.in_frame = true;
                self.frame_raw = at;
                self.frame_out = self.out_total;
            }
            let old = out.len();
            out.resize(old + max, 0);
            let mut inb = InBuffer::around(input);
            let mut outb = OutBuffer::around(&mut out[old..]);
            let hint = self.decoder.run(&mut inb, &mut outb);
            let (read, written) = (inb.pos(), outb.pos());
            out.truncate(old + written);
            let hint = hint.map_err(|e| bad(&format!("corrupt zstd data near byte {at}: {e}")))?;
            self.raw.consume(read);
            self.out_total += written as u64;
            if written > 0 && !self.frames.is_empty() {
                // A second frame with output: the frame table serves this layer.
                drop_cache(self.cache.take());
            }
            if let Some(c) = &mut self.cache {
                c.file.write_all(&out[old..])?;
            }
            if hint == 0 {
                // The frame ended (zstd stops consuming input at a frame's end).
                self.in_frame = false;
                let f = Frame {
                    raw_off: self.frame_raw,
                    raw_len: self.raw.offset() - self.frame_raw,
                    out_off: self.frame_out,
                    out_len: self.out_total - self.frame_out,
                };
                if f.out_len > 0 {
                    self.frames.push(f);
                }
            }
            if written > 0 {
                self.stalls = 0;
                return Ok(written);
            }
            self.stalls = if read == 0 { self.stalls + 1 } else { 0 };
            if self.stalls > 4 {
                return Err(bad(&format!("zstd stream makes no progress at byte {at}")));
            }
        }
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A multi-frame zstd blob read by offset into its uncompressed stream.
pub(crate) struct ZstdStream {
    file: Arc<dyn BlobRead>,
    base: u64,
    table: Arc<FrameTable>,
    cache: Arc<ChunkCache>,
    id: u64,
}

impl ZstdStream {
    pub(crate) fn new(
        file: Arc<dyn BlobRead>,
        base: u64,
        table: Arc<FrameTable>,
        cache: Arc<ChunkCache>,
    ) -> ZstdStream {
        ZstdStream {
            file,
            base,
            table,
            cache,
            id: ChunkCache::layer_id(),
        }
    }

    /// Piece `piece` of frame `f`, decoding the frame from its start and caching every piece
    /// up to it.
    fn piece(&self, f: &Frame, piece: u64) -> io::Result<Arc<[u8]>> {
        let key = f.out_off + piece * PIECE;
        if let Some(c) = self.cache.get(self.id, key) {
            return Ok(c);
        }
        let raw_len = usize::try_from(f.raw_len).map_err(|_| bad("zstd frame too large"))?;
        let mut raw = vec![0u8; raw_len.min(1 << 20)];
        let mut raw_pos = 0u64;
        let mut decoder = Decoder::new()?;
        let mut produced = 0u64;
        let mut have = (0usize, 0usize);
        loop {
            let start = piece_start(produced);
            let size = (f.out_len - start).min(PIECE) as usize;
            let mut out = vec![0u8; size];
            let mut filled = 0;
            while filled < size {
                if have.0 == have.1 {
                    let n = (f.raw_len - raw_pos).min(raw.len() as u64) as usize;
                    if n == 0 {
                        return Err(bad("zstd frame ends before its indexed length"));
                    }
                    self.file
                        .read_exact_at(&mut raw[..n], self.base + f.raw_off + raw_pos)?;
                    raw_pos += n as u64;
                    have = (0, n);
                }
                let mut inb = InBuffer::around(&raw[have.0..have.1]);
                let mut outb = OutBuffer::around(&mut out[filled..]);
                decoder.run(&mut inb, &mut outb)?;
                let (r, w) = (inb.pos(), outb.pos());
                have.0 += r;
                filled += w;
                if r == 0 && w == 0 {
                    return Err(bad("zstd frame makes no progress"));
                }
            }
            produced += size as u64;
            let chunk: Arc<[u8]> = out.into();
            let k = f.out_off + start;
            if k == key {
                self.cache.put(self.id, k, Arc::clone(&chunk));
                return Ok(chunk);
            }
            if self.cache.get(self.id, k).is_none() {
                self.cache.put(self.id, k, chunk);
            }
        }
    }
}

fn piece_start(produced: u64) -> u64 {
    produced / PIECE * PIECE
}

impl Stream for ZstdStream {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.table.len() || buf.is_empty() {
            return Ok(0);
        }
        let i = self
            .table
            .frames
            .partition_point(|f| f.out_off <= offset)
            .saturating_sub(1);
        let f = self.table.frames[i];
        let within = offset - f.out_off;
        let piece = within / PIECE;
        let chunk = self.piece(&f, piece)?;
        let at = (within - piece * PIECE) as usize;
        let n = buf.len().min(chunk.len().saturating_sub(at));
        buf[..n].copy_from_slice(&chunk[at..at + n]);
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.table.len()
    }
}

impl Drop for ZstdStream {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}
