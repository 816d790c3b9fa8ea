//! Random access into gzip layers, zran-style (zlib's `examples/zran.c`).
//!
//! The indexing pass ([`GzipPass`]) inflates the blob once, stopping at every deflate block
//! boundary, and every [`SPAN`] of output records a [`Checkpoint`]: the bit position in the
//! blob where the next block starts, its stream offset, and the 32 KiB of output before it
//! (the history the next blocks may copy from). A member start is a checkpoint that needs no
//! history. A read then inflates from the nearest checkpoint at or before its offset: at most
//! one span (plus a block), and the whole span is cached as one chunk so that reads around it
//! are free.
//!
//! Inflater choice, measured here (2 cores, release build) on a generated 1.17 GB tar of
//! 120k files, `gzip -6` to 423 MB (`scripts/bench-compressed`): raw inflate of the whole
//! stream, zlib-rs 766 MB/s vs miniz_oxide 608 MB/s (`gzip -dc > /dev/null`: 265 MB/s); the
//! whole index build with checkpoints through zlib-rs 477 MB/s of tar. miniz_oxide also has no
//! `Z_BLOCK`/`inflatePrime`, so it could only checkpoint where its block ends happen to be
//! byte-aligned; zlib-rs it is, with all its `unsafe` in `zlib`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::chunk_cache::ChunkCache;
use super::codec::{self, Reader};
use super::forward::{Produce, RawReader};
use super::stream::Stream;
use super::zlib::{Inflater, Wrap};

/// Output between checkpoints. A cold random read inflates at most this much (measured: at
/// most 6.8 ms for a whole 4 MiB chunk, then served from the chunk cache in microseconds), and
/// the windows cost 32 KiB per span: 8.0 MiB of state per GiB of tar. A smaller span trades
/// state for latency linearly (1 MiB: ~1.7 ms, 32 MiB/GiB).
pub(crate) const SPAN: u64 = 4 << 20;

/// The deflate history a block may refer back to.
const WINDOW: usize = 32 << 10;

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

    fn due(&self) -> bool {
        self.checkpoints
            .last()
            .is_none_or(|c| self.out_total - c.out >= SPAN)
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
            if self.due() {
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
            } else if step.at_block && self.due() {
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
    file: Arc<File>,
    base: u64,
    raw_len: u64,
    index: Arc<GzipIndex>,
    cache: Arc<ChunkCache>,
    id: u64,
}

impl GzipStream {
    /// `len` bytes at `base` of `file`, with the state a pass (or a saved index) gave.
    pub(crate) fn new(
        file: Arc<File>,
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
        }
    }

    /// The uncompressed bytes from checkpoint `i` to the next one (or the end).
    fn chunk(&self, i: usize) -> io::Result<Arc<[u8]>> {
        let cp = &self.index.checkpoints[i];
        if let Some(c) = self.cache.get(self.id, cp.out) {
            return Ok(c);
        }
        let end = self
            .index
            .checkpoints
            .get(i + 1)
            .map_or(self.index.len, |c| c.out);
        let size = usize::try_from(end - cp.out).map_err(|_| bad("checkpoint span too large"))?;
        let mut out = vec![0u8; size];
        self.inflate_from(cp, &mut out)?;
        let chunk: Arc<[u8]> = out.into();
        self.cache.put(self.id, cp.out, Arc::clone(&chunk));
        Ok(chunk)
    }

    /// Fills `out` with the stream from `cp` on, crossing member boundaries as needed.
    fn inflate_from(&self, cp: &Checkpoint, out: &mut [u8]) -> io::Result<()> {
        let mut pos = cp.bit / 8;
        let mut wrap = if cp.member { Wrap::Gzip } else { Wrap::Raw };
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
        let mut input = vec![0u8; 64 << 10];
        let (mut have, mut at) = (0usize, 0usize);
        let mut filled = 0;
        while filled < out.len() {
            if at == have {
                let n = (self.raw_len.saturating_sub(pos)).min(input.len() as u64) as usize;
                if n == 0 {
                    return Err(bad("gzip stream ends before the indexed length"));
                }
                self.read_raw(&mut input[..n], pos)?;
                (have, at) = (n, 0);
                pos += n as u64;
            }
            let step = inflater.inflate(&input[at..have], &mut out[filled..], false)?;
            at += step.read;
            filled += step.written;
            if step.end && filled < out.len() {
                // The member ended inside the chunk: the next one starts after its trailer
                // (raw inflate stops before the 8-byte CRC-32 and length; gzip mode reads them).
                let mut next = pos - (have - at) as u64;
                if wrap == Wrap::Raw {
                    next += 8;
                }
                pos = next;
                (have, at) = (0, 0);
                wrap = Wrap::Gzip;
                inflater.reset(wrap)?;
            } else if step.read == 0 && step.written == 0 && at < have {
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
        let chunk = self.chunk(i)?;
        let start = self.index.checkpoints[i].out;
        let at = (offset - start) as usize;
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
