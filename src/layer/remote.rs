//! A remote blob read lazily: a [`RangeSource`] behind an on-disk cache of fixed-size chunks,
//! so that a layer of a remote image serves reads by fetching only the ranges they touch, each
//! at most once.
//!
//! # On disk
//! Under `<dir>/chunks/` (`dir` being the index directory), per blob digest: `<hex>.data`, a
//! sparse file of the blob's length holding the chunks fetched so far at their own offsets,
//! and `<hex>.map`, a header (magic `UMCHUNK\0`, version, chunk size, blob length) and then one
//! byte per chunk, 1 once the chunk is present. One byte per chunk (not a bit) so that a write
//! never has to read-modify-write a neighbour's state: two processes sharing a blob may at
//! worst both fetch a chunk, never mark one present that is not.
//!
//! A chunk is marked present only after its bytes are written and synced (`fdatasync`), so a
//! crash leaves a chunk either present and complete or absent. Every user of the files holds
//! a shared `flock` on the map; a map of another version, chunk size or blob length (or a
//! damaged one) is reset (both files emptied) only by a mount that can lock it alone, and a
//! mount that finds one in use by others caches in a temporary file instead.
//!
//! # Trust
//! Chunks are not verifiable one by one: a digest covers the whole blob. The indexing pass
//! read the blob once through [`RangeSource::stream`] and checked its digest (and diff_id);
//! later ranges are trusted to be the same bytes, as a registry serves blobs by digest. The
//! gzip and zstd decoders still check their own framing, so a wrong range shows as a read
//! error (EIO), not as silently wrong data, in most cases.
//!
//! # Fetching
//! A read fetches the missing chunks it covers, merged into one request per run of adjacent
//! chunks. Concurrent readers of one chunk fetch it once: a chunk being fetched is marked in
//! flight and others wait for it. Reads that go on where the last one ended are sequential
//! (a decompressor working through a span): they also fetch the next chunks in the same
//! request, a window that doubles up to [`MAX_READAHEAD`] chunks. A failed fetch marks
//! nothing present, so the next read tries again. [`RemoteBlob::fill`] fetches everything
//! missing in large requests (`mount --fill`, in the background).

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::layer::blob::{BlobRead, Digest, RangeSource};

/// Bytes per chunk: the unit fetched, cached and marked present.
pub const CHUNK: u64 = 1 << 20;

/// Most chunks fetched ahead of a sequential read, in the same request.
pub const MAX_READAHEAD: u64 = 4;

/// Most bytes asked for in one request by [`RemoteBlob::fill`].
const FILL_REQUEST: u64 = 16 * CHUNK;

const MAP_MAGIC: [u8; 8] = *b"UMCHUNK\0";
const MAP_VERSION: u32 = 1;
const MAP_HEADER: u64 = 32;

/// Blobs whose background fill waits for the mount to serve.
static PENDING_FILLS: std::sync::Mutex<Vec<Weak<RemoteBlob>>> = std::sync::Mutex::new(Vec::new());

fn pending_fills() -> std::sync::MutexGuard<'static, Vec<Weak<RemoteBlob>>> {
    PENDING_FILLS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the background fills asked for by [`RemoteBlob::fill_when_serving`] (of blobs still
/// open): called by the process that serves the mount, after any fork.
pub fn start_pending_fills() {
    let pending = std::mem::take(&mut *pending_fills());
    for blob in pending.iter().filter_map(Weak::upgrade) {
        blob.spawn_fill();
    }
}

/// A blob of a [`RangeSource`], read through its chunk cache.
pub struct RemoteBlob {
    source: Arc<dyn RangeSource>,
    len: u64,
    chunks: u64,
    /// The chunks' bytes at their blob offsets (sparse).
    data: File,
    /// One byte per chunk after the header; `None` for an unnamed cache (no index directory).
    map: Option<File>,
    state: Mutex<State>,
    arrived: Condvar,
    fetched_bytes: AtomicU64,
    requests: AtomicU64,
}

struct State {
    present: Vec<bool>,
    in_flight: HashSet<u64>,
    /// The chunk after the last one the previous read covered.
    next: u64,
    /// Chunks to fetch ahead of the next sequential read.
    readahead: u64,
}

/// A request: `count` chunks from chunk `first`.
#[derive(Clone, Copy, Debug)]
struct Run {
    first: u64,
    count: u64,
}

impl RemoteBlob {
    /// The blob of `source` named `digest`, cached under `<dir>/chunks/` (created if missing),
    /// or without a directory in an unlinked temporary file that lives as long as the blob.
    pub fn open(
        source: Arc<dyn RangeSource>,
        digest: &Digest,
        dir: Option<&Path>,
    ) -> io::Result<RemoteBlob> {
        let len = source.len();
        let chunks = len.div_ceil(CHUNK);
        let chunk_count = usize::try_from(chunks)
            .map_err(|_| io::Error::other(format!("{len} bytes is too large a blob")))?;
        let (data, map, present) = match dir {
            Some(dir) => {
                let dir = dir.join("chunks");
                DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
                let open = |name: String| {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o600)
                        .open(dir.join(name))
                };
                let data = open(format!("{}.data", digest.hex()))?;
                let map = open(format!("{}.map", digest.hex()))?;
                match shared_map(&data, &map, len, chunk_count)? {
                    Some(present) => (data, Some(map), present),
                    None => {
                        log::warn!(
                            "{}: the chunk cache in {} is damaged and in use by another \
                             mount; caching in a temporary file",
                            source.describe(),
                            dir.display()
                        );
                        let data = unnamed_file()?;
                        data.set_len(len)?;
                        (data, None, vec![false; chunk_count])
                    }
                }
            }
            None => {
                let data = unnamed_file()?;
                data.set_len(len)?;
                (data, None, vec![false; chunk_count])
            }
        };
        Ok(RemoteBlob {
            source,
            len,
            chunks,
            data,
            map,
            state: Mutex::new(State {
                present,
                in_flight: HashSet::new(),
                next: u64::MAX,
                readahead: 0,
            }),
            arrived: Condvar::new(),
            fetched_bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// The blob's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes fetched from the source by this blob's ranges, and the number of requests.
    pub fn fetched(&self) -> (u64, u64) {
        (
            self.fetched_bytes.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

    /// How many chunks are present (fetched now or in an earlier mount), and of how many.
    pub fn present_chunks(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.present.iter().filter(|&&p| p).count() as u64, self.chunks)
    }

    /// The source's description, for messages.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Fetches every missing chunk, in requests of up to 16 MiB, one at a time (it competes
    /// with reads for the link only one request at a time). Stops at the first error.
    pub fn fill(&self) -> io::Result<()> {
        let mut at = 0;
        while at < self.chunks {
            let run = {
                let mut s = self.state.lock();
                while at < self.chunks && (s.present[at as usize] || s.in_flight.contains(&at)) {
                    at += 1;
                }
                let first = at;
                while at < self.chunks
                    && at - first < FILL_REQUEST / CHUNK
                    && !s.present[at as usize]
                    && !s.in_flight.contains(&at)
                {
                    s.in_flight.insert(at);
                    at += 1;
                }
                Run {
                    first,
                    count: at - first,
                }
            };
            if run.count > 0 {
                self.fetch_runs(&[run])?;
            }
        }
        Ok(())
    }

    /// Starts [`Self::fill`] on a thread of its own, which ends when the blob is complete,
    /// fails (a warning), or is dropped.
    pub fn spawn_fill(self: &Arc<Self>) {
        let weak: Weak<RemoteBlob> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("unionmount-fill".into())
            .spawn(move || {
                // Holds the blob only while a piece is fetched, so dropping the layer ends it.
                let mut start = 0;
                loop {
                    let Some(blob) = weak.upgrade() else { return };
                    if start >= blob.chunks {
                        return;
                    }
                    let end = (start + FILL_REQUEST / CHUNK).min(blob.chunks);
                    if let Err(e) = blob.ensure(start, end - 1, false) {
                        log::warn!("{}: background fill stopped: {e}", blob.describe());
                        return;
                    }
                    start = end;
                }
            });
        if let Err(e) = spawned {
            log::warn!("{}: cannot start the background fill: {e}", self.describe());
        }
    }

    /// Asks for [`Self::spawn_fill`] once the mount serves ([`start_pending_fills`]): a
    /// layer is opened before a daemon forks, and threads do not survive the fork.
    pub fn fill_when_serving(self: &Arc<Self>) {
        pending_fills().push(Arc::downgrade(self));
    }

    /// Makes chunks `first..=last` present, fetching those missing and waiting for those
    /// another reader is fetching. `track`: a read, which counts for sequential detection and
    /// may fetch ahead (the background fill does neither).
    fn ensure(&self, first: u64, last: u64, track: bool) -> io::Result<()> {
        loop {
            let runs = {
                let mut s = self.state.lock();
                // Sequential: this read starts where the last one ended (or in its last chunk).
                let sequential = track && (first == s.next || first + 1 == s.next);
                if track {
                    s.next = last + 1;
                }
                let wanted = (first..=last).filter(|&c| !s.present[c as usize]);
                let mut missing = 0;
                let mut waiting = false;
                let mut runs: Vec<Run> = Vec::new();
                for c in wanted {
                    missing += 1;
                    if s.in_flight.contains(&c) {
                        waiting = true;
                        continue;
                    }
                    match runs.last_mut() {
                        Some(r) if r.first + r.count == c => r.count += 1,
                        _ => runs.push(Run { first: c, count: 1 }),
                    }
                }
                if missing == 0 {
                    return Ok(());
                }
                // The window grows with each miss of a sequential run, and only then: reads
                // inside chunks already here say nothing about how far the run goes.
                if track && !runs.is_empty() {
                    s.readahead = if sequential {
                        (s.readahead * 2).clamp(1, MAX_READAHEAD)
                    } else {
                        0
                    };
                }
                // Read-ahead only extends a request that is made anyway.
                if track
                    && let Some(r) = runs.last_mut()
                    && r.first + r.count == last + 1
                {
                    let mut c = last + 1;
                    while c < self.chunks
                        && c <= last + s.readahead
                        && !s.present[c as usize]
                        && !s.in_flight.contains(&c)
                    {
                        r.count += 1;
                        c += 1;
                    }
                }
                if runs.is_empty() && waiting {
                    self.arrived.wait(&mut s);
                    continue;
                }
                for r in &runs {
                    s.in_flight.extend(r.first..r.first + r.count);
                }
                runs
            };
            self.fetch_runs(&runs)?;
        }
    }

    /// Fetches `runs` (already marked in flight), stores and marks each that arrives, and
    /// clears the in-flight marks of all of them whatever happens.
    fn fetch_runs(&self, runs: &[Run]) -> io::Result<()> {
        let mut result = Ok(());
        let mut done = Vec::new();
        for r in runs {
            if result.is_ok() {
                match self.fetch(*r) {
                    Ok(()) => done.push(*r),
                    Err(e) => result = Err(e),
                }
            }
        }
        // The bytes are in the data file either way; a mark that cannot be saved only costs a
        // later mount a fetch, so it is a warning, not a failed read.
        if let Err(e) = self.mark_present(&done) {
            log::warn!("{}: chunk cache: {e}", self.describe());
        }
        let mut s = self.state.lock();
        for r in runs {
            for c in r.first..r.first + r.count {
                s.in_flight.remove(&c);
            }
        }
        for r in &done {
            for c in r.first..r.first + r.count {
                s.present[c as usize] = true;
            }
        }
        drop(s);
        self.arrived.notify_all();
        result
    }

    /// One request: the run's bytes from the source into the data file.
    fn fetch(&self, r: Run) -> io::Result<()> {
        let off = r.first * CHUNK;
        let want = ((r.first + r.count) * CHUNK).min(self.len) - off;
        let named = |cause: &dyn std::fmt::Display| {
            let msg = format!(
                "{}: bytes {off}-{} of {}: {}",
                crate::layer::tar::one_line(&self.describe()),
                off + want,
                self.len,
                crate::layer::tar::one_line(&cause.to_string())
            );
            log::warn!("{msg}");
            io::Error::other(msg)
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let want_usize = usize::try_from(want).map_err(|e| named(&e))?;
        let bytes = self
            .source
            .read_range(off, want_usize)
            .map_err(|e| named(&e))?;
        self.fetched_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len() != want_usize {
            return Err(named(&format!(
                "the source returned {} bytes, expected {want}",
                bytes.len()
            )));
        }
        self.data.write_all_at(&bytes, off).map_err(|e| named(&e))?;
        Ok(())
    }

    /// Persists the present marks of `runs`, after their bytes are durable.
    fn mark_present(&self, runs: &[Run]) -> io::Result<()> {
        let Some(map) = &self.map else {
            return Ok(());
        };
        if runs.is_empty() {
            return Ok(());
        }
        self.data.sync_data()?;
        for r in runs {
            let ones = vec![1u8; r.count as usize];
            map.write_all_at(&ones, MAP_HEADER + r.first)?;
        }
        Ok(())
    }
}

/// A file in `$TMPDIR` unlinked at once: its space is freed when the blob goes away, even if
/// the process does not end cleanly.
fn unnamed_file() -> io::Result<File> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        ".unionmount-chunks-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    fs::remove_file(&path)?;
    Ok(file)
}

/// The present set of a cache shared with other mounts (in this process or others), each of
/// which holds a shared `flock` on the map for as long as it uses the files. Only a mount
/// that can lock them alone resets a map that does not match; `None` when it does not match
/// and others are using it (resetting it under them would hand them zeros).
fn shared_map(data: &File, map: &File, len: u64, chunks: usize) -> io::Result<Option<Vec<bool>>> {
    use rustix::fs::{FlockOperation, flock};
    if flock(map, FlockOperation::NonBlockingLockExclusive).is_ok() {
        let present = load_map(data, map, len, chunks, true)?;
        flock(map, FlockOperation::LockShared)?;
        return Ok(present);
    }
    flock(map, FlockOperation::LockShared)?;
    load_map(data, map, len, chunks, false)
}

/// The present set saved beside the data; when it does not match this blob, a fresh empty
/// cache if `reset` is allowed, else `None`.
fn load_map(
    data: &File,
    map: &File,
    len: u64,
    chunks: usize,
    reset: bool,
) -> io::Result<Option<Vec<bool>>> {
    let mut header = [0u8; MAP_HEADER as usize];
    header[..8].copy_from_slice(&MAP_MAGIC);
    header[8..12].copy_from_slice(&MAP_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(CHUNK as u32).to_le_bytes());
    header[16..24].copy_from_slice(&len.to_le_bytes());
    let want = MAP_HEADER + chunks as u64;
    let mut saved = vec![0u8; want as usize];
    let matches = map.metadata()?.len() == want
        && data.metadata()?.len() == len
        && FileExt::read_exact_at(map, &mut saved, 0).is_ok()
        && saved[..MAP_HEADER as usize] == header
        && saved[MAP_HEADER as usize..].iter().all(|&b| b <= 1);
    if matches {
        return Ok(Some(
            saved[MAP_HEADER as usize..]
                .iter()
                .map(|&b| b == 1)
                .collect(),
        ));
    }
    if !reset {
        return Ok(None);
    }
    // Marks first, then data: a crash in between leaves no mark over stale data.
    map.set_len(0)?;
    data.set_len(0)?;
    data.set_len(len)?;
    map.write_all_at(&header, 0)?;
    map.set_len(want)?;
    Ok(Some(vec![false; chunks]))
}

impl BlobRead for RemoteBlob {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let end = offset.saturating_add(buf.len() as u64).min(self.len);
        self.ensure(offset / CHUNK, (end - 1) / CHUNK, true)?;
        let n = (end - offset) as usize;
        FileExt::read_exact_at(&self.data, &mut buf[..n], offset)?;
        Ok(n)
    }

    fn local_file(&self) -> Option<&File> {
        Some(&self.data)
    }
}

/// Removes the chunk cache of `digest` under `dir` (both files); whether there was one.
pub fn forget(dir: &Path, digest: &Digest) -> bool {
    let chunks = dir.join("chunks");
    let data = fs::remove_file(chunks.join(format!("{}.data", digest.hex()))).is_ok();
    let map = fs::remove_file(chunks.join(format!("{}.map", digest.hex()))).is_ok();
    data || map
}
