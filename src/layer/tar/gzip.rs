//! Random access into gzip layers, zran-style (zlib's `examples/zran.c`).
//!
//! The indexing pass ([`GzipPass`]) inflates the blob once, stopping at every deflate block
//! boundary, and every [`SPAN`] of output (and [`SPAN_IN`] of input) records a
//! [`Checkpoint`]: the bit position in the blob where the next block starts, its stream
//! offset, and the 32 KiB of output before it (the history the next blocks may copy from). A
//! member start is a checkpoint that needs no history. A read then inflates from the nearest
//! checkpoint at or before its offset: at most one span (plus a block), in pieces of at most
//! [`PIECE`] that are cached so that reads around it are free. A span has no upper bound (one
//! deflate block may produce gigabytes), so in a long one a cursor left where the last read
//! stopped lets the next piece go on from there.
//!
//! Inflater choice, measured here (2 cores, release build) on a generated 1.17 GB tar of
//! 120k files, `gzip -6` to 423 MB (`scripts/bench-compressed`): raw inflate of the whole
//! stream, zlib-rs 766 MB/s vs miniz_oxide 608 MB/s (`gzip -dc > /dev/null`: 265 MB/s); the
//! whole index build with checkpoints through zlib-rs 477 MB/s of tar. miniz_oxide also has no
//! `Z_BLOCK`/`inflatePrime`, so it could only checkpoint where its block ends happen to be
//! byte-aligned; zlib-rs it is, with all its `unsafe` in `zlib`.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::chunk_cache::ChunkCache;
use super::codec::{self, Reader};
use super::forward::{Produce, RawReader};
use super::stream::Stream;
use super::zlib::{Inflater, Wrap};
use crate::layer::blob::BlobRead;

/// Output between checkpoints. A cold random read inflates at most this much (measured: at
/// most 6.8 ms for a whole 4 MiB chunk, then served from the chunk cache in microseconds), and
/// the windows cost 32 KiB per span: 8.0 MiB of state per GiB of tar. A smaller span trades
/// state for latency linearly (1 MiB: ~1.7 ms, 32 MiB/GiB).
pub(crate) const SPAN: u64 = 4 << 20;

/// Compressed input between checkpoints, at least: a span grows past [`SPAN`] of output until
/// this much input has gone by. Real layers (2-10x) reach it well within a span, so it changes
/// nothing for them; a gzip bomb (1000x) would otherwise pay a 32 KiB window for every 4 KiB
/// of blob, 8x the blob in memory (a 10 GiB bomb of 10 MB held 80 MiB of windows, twice over
/// while the state was encoded). With it the windows stay under 1/8 of the blob's size, and a
/// read into a long span still inflates no more than this much input.
const SPAN_IN: u64 = 256 << 10;

/// The unit a span is inflated and cached in. A span has no upper bound on its output (one
/// deflate block may produce gigabytes), so it is handed out in pieces of at most this size,
/// each cached on its own, never as one allocation of the whole span.
pub(crate) const PIECE: u64 = SPAN;

/// The deflate history a block may refer back to.
const WINDOW: usize = 32 << 10;
// Checkpoints take their window from the output the pass was given (`Produce`).
const _: () = assert!(WINDOW <= super::ahead::TAIL);

/// Where inflating can start again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Offset in the uncompressed stream.
    pub out: u64,
    /// Bit position in the blob (byte * 8 + bits of that byte already used).
    pub bit: u64,
    /// A gzip member starts here (at `bit / 8`): inflate its header, no history needed.
    pub member: bool,
    /// The output before `out` (up to 32 KiB; empty at a member start).
    pub window: Box<[u8]>,
}

/// The random-access state of one gzip blob: what a later mount needs to read it without
/// inflating it from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GzipIndex {
    /// Sorted by `out`; the first is at 0.
    pub checkpoints: Vec<Checkpoint>,
    /// Length of the uncompressed stream.
    pub len: u64,
}

impl GzipIndex {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u64(out, self.len);
        codec::put_u64(out, self.checkpoints.len() as u64);
        for c in &self.checkpoints {
            codec::put_u64(out, c.out);
            codec::put_u64(out, c.bit);
            out.push(u8::from(c.member));
            codec::put_bytes(out, &c.window);
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<GzipIndex, String> {
        let mut r = Reader::new(bytes);
        let len = r.u64()?;
        let n = r.count(25)?;
        let mut checkpoints = Vec::with_capacity(n);
        for _ in 0..n {
            let out = r.u64()?;
            let bit = r.u64()?;
            let member = match r.u8()? {
                0 => false,
                1 => true,
                b => return Err(format!("bad checkpoint flag {b}")),
            };
            let window = r.bytes()?;
            if window.len() > WINDOW {
                return Err(format!("checkpoint window of {} bytes", window.len()));
            }
            checkpoints.push(Checkpoint {
                out,
                bit,
                member,
                window: window.into(),
            });
        }
        r.end()?;
        let ordered = checkpoints.windows(2).all(|w| w[0].out < w[1].out);
        if checkpoints.first().map(|c| c.out) != Some(0)
            || !ordered
            || checkpoints.last().is_some_and(|c| c.out > len)
        {
            return Err("checkpoints out of order".into());
        }
        Ok(GzipIndex { checkpoints, len })
    }
}

/// The indexing pass: a [`Produce`]r of the uncompressed stream that records checkpoints.
pub(crate) struct GzipPass {
    raw: RawReader,
    inflater: Inflater,
    in_member: bool,
    members: u64,
    out_total: u64,
    checkpoints: Vec<Checkpoint>,
    stalls: u32,
}

impl GzipPass {
    pub(crate) fn new(raw: RawReader) -> io::Result<GzipPass> {
        Ok(GzipPass {
            raw,
            inflater: Inflater::new(Wrap::Gzip)?,
            in_member: false,
            members: 0,
            out_total: 0,
            checkpoints: Vec::new(),
            stalls: 0,
        })
    }

    /// The random-access state and the hash of the blob's bytes (all of them read by now).
    pub(crate) fn finish(mut self) -> io::Result<(GzipIndex, Option<[u8; 32]>)> {
        let hash = self.raw.finish()?;
        Ok((
            GzipIndex {
                checkpoints: self.checkpoints,
                len: self.out_total,
            },
            hash,
        ))
    }

    /// Whether the next block (or member) starting at byte `raw` of the blob gets a
    /// checkpoint.
    fn due(&self, raw: u64) -> bool {
        self.checkpoints
            .last()
            .is_none_or(|c| self.out_total - c.out >= SPAN && raw - c.bit / 8 >= SPAN_IN)
    }

    /// Between members: the next member's header, zero padding to the end, or the end.
    fn next_member(&mut self) -> io::Result<bool> {
        loop {
            let at = self.raw.offset();
            let input = self.raw.fill()?;
            if input.is_empty() {
                if self.members == 0 {
                    return Err(bad("empty gzip stream"));
                }
                return Ok(false);
            }
            if self.members > 0 && input[0] == 0 {
                // Some writers pad to a block size after the last member (gzip accepts it).
                let zeros = input.iter().take_while(|&&b| b == 0).count();
                if zeros < input.len() {
                    return Err(bad(&format!(
                        "unexpected data after the gzip stream at byte {}",
                        at + zeros as u64
                    )));
                }
                self.raw.consume(zeros);
                continue;
            }
            if input[0] != 0x1f {
                return Err(bad(&format!("no gzip header at byte {at}")));
            }
            if self.due(at) {
                self.checkpoints.push(Checkpoint {
                    out: self.out_total,
                    bit: at * 8,
                    member: true,
                    window: Box::default(),
                });
            }
            self.inflater.reset(Wrap::Gzip)?;
            self.in_member = true;
            self.members += 1;
            return Ok(true);
        }
    }
}

impl Produce for GzipPass {
    fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let old = out.len();
        // Zeroed once per call and filled block after block: `Z_BLOCK` returns at every block
        // (tens of KiB), and returning to the caller each time cost a third of the speed.
        out.resize(old + max, 0);
        let result = self.produce_into(out, old);
        let filled = *result.as_ref().unwrap_or(&0);
        out.truncate(old + filled);
        result
    }
}

impl GzipPass {
    /// Inflates into `out[old..]` until it is full or the stream ends; returns the count.
    fn produce_into(&mut self, out: &mut [u8], old: usize) -> io::Result<usize> {
        let mut filled = 0;
        while old + filled < out.len() {
            if !self.in_member && !self.next_member()? {
                break;
            }
            let at = self.raw.offset();
            let input = self.raw.fill()?;
            if input.is_empty() {
                return Err(bad(&format!("gzip stream truncated at byte {at}")));
            }
            let step = self
                .inflater
                .inflate(input, &mut out[old + filled..], true)
                .map_err(|e| bad(&format!("corrupt gzip data near byte {at}: {e}")))?;
            filled += step.written;
            self.raw.consume(step.read);
            self.out_total += step.written as u64;
            if step.end {
                self.in_member = false;
            } else if step.at_block && self.due(self.raw.offset()) {
                let next_bit = self.raw.offset() * 8 - u64::from(step.pending_bits);
                let end = old + filled;
                let from = end.saturating_sub(WINDOW);
                self.checkpoints.push(Checkpoint {
                    out: self.out_total,
                    bit: next_bit,
                    member: false,
                    window: out[from..end].into(),
                });
            }
            // A block boundary may yield nothing; nothing at all, repeatedly, would loop.
            self.stalls = if step.read == 0 && step.written == 0 {
                self.stalls + 1
            } else {
                0
            };
            if self.stalls > 4 {
                return Err(bad(&format!("gzip stream makes no progress at byte {at}")));
            }
        }
        Ok(filled)
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A gzip blob read by offset into its uncompressed stream.
pub(crate) struct GzipStream {
    file: Arc<dyn BlobRead>,
    base: u64,
    raw_len: u64,
    index: Arc<GzipIndex>,
    cache: Arc<ChunkCache>,
    id: u64,
    /// Where the last read inside a span left off, so that reading a long span front to back
    /// inflates it once rather than once per piece.
    cursor: Mutex<Option<Cursor>>,
}

/// An inflater part-way through a span, with the input it has read but not used.
struct Cursor {
    /// The span (checkpoint index) it is in.
    span: usize,
    /// Stream offset of the next byte it produces.
    out: u64,
    inflater: Inflater,
    wrap: Wrap,
    /// Blob offset of the next input byte to read.
    pos: u64,
    input: Vec<u8>,
    have: usize,
    at: usize,
}

impl GzipStream {
    /// `len` bytes at `base` of `file`, with the state a pass (or a saved index) gave.
    pub(crate) fn new(
        file: Arc<dyn BlobRead>,
        base: u64,
        raw_len: u64,
        index: Arc<GzipIndex>,
        cache: Arc<ChunkCache>,
    ) -> GzipStream {
        GzipStream {
            file,
            base,
            raw_len,
            index,
            cache,
            id: ChunkCache::layer_id(),
            cursor: Mutex::new(None),
        }
    }

    /// Piece `piece` of span `i` (from checkpoint `i` to the next one, or the end), inflating
    /// from the checkpoint (or from where the last read in the span stopped) and caching every
    /// piece on the way.
    fn piece(&self, i: usize, piece: u64) -> io::Result<Arc<[u8]>> {
        let cp = &self.index.checkpoints[i];
        let key = cp.out + piece * PIECE;
        if let Some(c) = self.cache.get(self.id, key) {
            return Ok(c);
        }
        let end = self
            .index
            .checkpoints
            .get(i + 1)
            .map_or(self.index.len, |c| c.out);
        if end - cp.out <= 2 * PIECE {
            // A span of a real layer: inflating it from its checkpoint is cheap, and reads of
            // different spans go on in parallel.
            let mut cur = self.cursor_at(i)?;
            return self.pieces_until(&mut cur, key, end);
        }
        // A long span: a read that started again from the checkpoint would cost time in
        // proportion to how far into the span it is, so reads wait for the one cursor (the
        // kernel reads ahead from several threads at once) and go on from where it is.
        let mut slot = self.cursor.lock();
        if let Some(c) = self.cache.get(self.id, key) {
            return Ok(c);
        }
        let mut cur = match slot.take() {
            Some(c) if c.span == i && c.out <= key => c,
            _ => self.cursor_at(i)?,
        };
        let chunk = self.pieces_until(&mut cur, key, end)?;
        if cur.out < end {
            *slot = Some(cur);
        }
        Ok(chunk)
    }

    /// Inflates piece after piece with `cur` (caching each) up to the one at `key`.
    fn pieces_until(&self, cur: &mut Cursor, key: u64, end: u64) -> io::Result<Arc<[u8]>> {
        loop {
            let start = cur.out;
            // At most PIECE, so it fits in usize.
            let size = end.saturating_sub(start).min(PIECE) as usize;
            if size == 0 {
                return Err(bad("gzip span ends before the piece read"));
            }
            let mut out = vec![0u8; size];
            self.fill(cur, &mut out)?;
            let chunk: Arc<[u8]> = out.into();
            if start == key {
                self.cache.put(self.id, key, Arc::clone(&chunk));
                return Ok(chunk);
            }
            if self.cache.get(self.id, start).is_none() {
                self.cache.put(self.id, start, chunk);
            }
        }
    }

    /// An inflater ready to produce the stream from checkpoint `i` on.
    fn cursor_at(&self, i: usize) -> io::Result<Cursor> {
        let cp = &self.index.checkpoints[i];
        let mut pos = cp.bit / 8;
        let wrap = if cp.member { Wrap::Gzip } else { Wrap::Raw };
        let mut inflater = Inflater::new(wrap)?;
        let used = (cp.bit % 8) as u32;
        if !cp.member {
            if used != 0 {
                let mut b = [0u8; 1];
                self.read_raw(&mut b, pos)?;
                inflater.prime(8 - used, b[0])?;
                pos += 1;
            }
            inflater.set_dictionary(&cp.window)?;
        }
        Ok(Cursor {
            span: i,
            out: cp.out,
            inflater,
            wrap,
            pos,
            input: vec![0u8; 64 << 10],
            have: 0,
            at: 0,
        })
    }

    /// Fills `out` with the stream from the cursor on, crossing member boundaries as needed.
    fn fill(&self, c: &mut Cursor, out: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if c.at == c.have {
                let n = (self.raw_len.saturating_sub(c.pos)).min(c.input.len() as u64) as usize;
                if n == 0 {
                    return Err(bad("gzip stream ends before the indexed length"));
                }
                self.read_raw(&mut c.input[..n], c.pos)?;
                (c.have, c.at) = (n, 0);
                c.pos += n as u64;
            }
            let step = c
                .inflater
                .inflate(&c.input[c.at..c.have], &mut out[filled..], false)?;
            c.at += step.read;
            filled += step.written;
            c.out += step.written as u64;
            if step.end {
                // The member ended (inside the piece, or at its end, where the next piece
                // goes on): the next one starts after its trailer (raw inflate stops before
                // the 8-byte CRC-32 and length; gzip mode reads them).
                let mut next = c.pos - (c.have - c.at) as u64;
                if c.wrap == Wrap::Raw {
                    next += 8;
                }
                c.pos = next;
                (c.have, c.at) = (0, 0);
                c.wrap = Wrap::Gzip;
                c.inflater.reset(c.wrap)?;
            } else if step.read == 0 && step.written == 0 && c.at < c.have {
                return Err(bad("gzip stream makes no progress"));
            }
        }
        Ok(())
    }

    fn read_raw(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, self.base + pos)
    }
}

impl Stream for GzipStream {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.index.len || buf.is_empty() {
            return Ok(0);
        }
        let i = self
            .index
            .checkpoints
            .partition_point(|c| c.out <= offset)
            .saturating_sub(1);
        let within = offset - self.index.checkpoints[i].out;
        let piece = within / PIECE;
        let chunk = self.piece(i, piece)?;
        let at = (within - piece * PIECE) as usize;
        let n = buf.len().min(chunk.len().saturating_sub(at));
        buf[..n].copy_from_slice(&chunk[at..at + n]);
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.index.len
    }
}

impl Drop for GzipStream {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}
