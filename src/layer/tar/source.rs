//! Opening a layer blob: which encoding it is, the one indexing pass over it, its digest
//! checks, and the random-access state that lets a later mount read it without that pass.
//!
//! An uncompressed tar with no digest to check is indexed by seeking over file data (the fast
//! path); everything else goes through one sequential read of the blob (`forward`), which
//! feeds the index builder, records the gzip checkpoints or zstd frames, and hashes the
//! stored and the uncompressed bytes at the same time.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::TarError;
use super::ahead::Ahead;
use super::chunk_cache::ChunkCache;
use super::codec::{self, Reader};
use super::forward::{Forward, PlainPass, PositionalReader, Produce, RawReader};
use super::gzip::{GzipIndex, GzipPass, GzipStream};
use super::index::{self, TarIndex};
use super::input::Input;
use super::progress::{self, IndexProgress};
use super::stream::{PlainTar, Stream};
use super::zstd::{CacheFile, FrameTable, ZstdLayout, ZstdPass, ZstdStream};
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRead, Compression, Digest};

/// How a blob's uncompressed stream is reached after indexing: what a saved index keeps so
/// that a later mount can skip the pass ([`reopen`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// The blob is the tar.
    Plain,
    Gzip(Arc<GzipIndex>),
    ZstdFrames(Arc<FrameTable>),
    /// A single-frame zstd blob, decompressed to a cache file: its name under the index
    /// directory (`None`: an unlinked temp file, which cannot be reused) and its length.
    ZstdCacheFile {
        name: Option<String>,
        len: u64,
    },
}

const STATE_VERSION: u8 = 1;

#[allow(dead_code)] // for the persistent index (persist.rs)
impl StreamState {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATE_VERSION);
        out.push(self.kind());
        match self {
            StreamState::Plain => {}
            StreamState::Gzip(g) => g.encode(out),
            StreamState::ZstdFrames(t) => t.encode(out),
            StreamState::ZstdCacheFile { name, len } => {
                codec::put_u64(out, *len);
                codec::put_bytes(out, name.as_deref().unwrap_or("").as_bytes());
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StreamState, String> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != STATE_VERSION {
            return Err(format!(
                "stream state version {version}, expected {STATE_VERSION}"
            ));
        }
        match r.u8()? {
            0 => {
                r.end()?;
                Ok(StreamState::Plain)
            }
            1 => Ok(StreamState::Gzip(Arc::new(GzipIndex::decode(r.rest())?))),
            2 => Ok(StreamState::ZstdFrames(Arc::new(FrameTable::decode(
                r.rest(),
            )?))),
            3 => {
                let len = r.u64()?;
                let name = std::str::from_utf8(r.bytes()?)
                    .map_err(|_| "cache file name is not UTF-8".to_string())?;
                r.end()?;
                let name = (!name.is_empty()).then(|| name.to_string());
                if name
                    .as_deref()
                    .is_some_and(|n| n.contains('/') || n.starts_with('.'))
                {
                    return Err("cache file name is not a plain file name".into());
                }
                Ok(StreamState::ZstdCacheFile { name, len })
            }
            t => Err(format!("unknown stream kind {t}")),
        }
    }

    /// A tag of the kind of stream (the first byte after the version in [`Self::encode`]).
    pub(crate) fn kind(&self) -> u8 {
        match self {
            StreamState::Plain => 0,
            StreamState::Gzip(_) => 1,
            StreamState::ZstdFrames(_) => 2,
            StreamState::ZstdCacheFile { .. } => 3,
        }
    }

    /// What the pass made of the blob, for the log line of a layer ("gzip, 23 checkpoints").
    pub(crate) fn describe(&self) -> String {
        match self {
            StreamState::Plain => "plain tar".into(),
            StreamState::Gzip(g) => match g.checkpoints.len() {
                1 => "gzip, 1 checkpoint".into(),
                n => format!("gzip, {n} checkpoints"),
            },
            StreamState::ZstdFrames(t) => match t.frames.len() {
                1 => "zstd, 1 frame".into(),
                n => format!("zstd, {n} frames"),
            },
            StreamState::ZstdCacheFile { name: Some(_), .. } => {
                "zstd, one frame: decompressed to a cache file beside the index".into()
            }
            StreamState::ZstdCacheFile { name: None, .. } => {
                "zstd, one frame: decompressed to a temporary file".into()
            }
        }
    }

    /// Whether [`reopen`] can use this state in another process.
    pub(crate) fn reusable(&self) -> bool {
        !matches!(self, StreamState::ZstdCacheFile { name: None, .. })
    }
}

/// What opening a blob gives the layer.
pub(super) struct Opened {
    pub file: Arc<dyn BlobRead>,
    pub stream: Arc<dyn Stream>,
    pub state: StreamState,
    pub index: TarIndex,
}

pub(super) fn io_err(path: &Path) -> impl Fn(io::Error) -> TarError + '_ {
    move |source| TarError::Io {
        path: path.to_owned(),
        source,
    }
}

fn decompress_err(path: &Path) -> impl Fn(String) -> TarError + '_ {
    move |cause| TarError::Decompress {
        path: path.to_owned(),
        cause,
    }
}

/// gzip and zstd by their magic numbers (RFC 1952 section 2.3.1; RFC 8878 section 3.1.1,
/// skippable frames 0x184D2A50-5F included); anything else is taken to be a tar. `magic` is
/// the blob's first (up to) 4 bytes.
fn detect(magic: &[u8]) -> Compression {
    match magic {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        [m, 0x2a, 0x4d, 0x18] if m & 0xf0 == 0x50 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Reads up to `n` bytes from the front of `r` (fewer only where it ends).
fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok(head)
}

#[cfg(test)]
thread_local! {
    /// Calls of [`open`] (indexing passes) on this thread: lets a test see that a saved
    /// index spared the pass. Per thread, since the test harness runs tests in parallel.
    pub(super) static PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Opens and indexes a blob in one pass, checking its digests.
pub(super) fn open(input: &Input, options: &LayerOptions) -> Result<Opened, TarError> {
    let path = input.name.as_path();
    let file = Arc::clone(&input.blob);
    let magic_len = input.len.min(4) as usize;
    // A blob with a stream of its own (a remote one) is read once, front to back: its
    // magic comes from the front of that stream rather than from a range request.
    let (kind, mut sequential) = match &input.stream {
        Some(open_stream) => {
            let mut r = open_stream().map_err(io_err(path))?;
            let head = read_head(&mut r, magic_len).map_err(io_err(path))?;
            let kind = match input.compression {
                Compression::Detect => detect(&head),
                c => c,
            };
            let r: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(r));
            (kind, Some(r))
        }
        None => {
            let kind = match input.compression {
                Compression::Detect => {
                    let mut magic = [0u8; 4];
                    file.read_exact_at(&mut magic[..magic_len], input.base)
                        .map_err(io_err(path))?;
                    detect(&magic[..magic_len])
                }
                c => c,
            };
            (kind, None)
        }
    };
    let want_raw = input.digest.is_some();
    let want_tar = input.diff_id.is_some();
    #[cfg(test)]
    PASSES.with(|n| n.set(n.get() + 1));
    let progress = || {
        let digest = input.digest.as_ref().map(|d| d.to_string());
        IndexProgress::start(&progress::label(digest.as_deref(), path), input.len)
    };
    let mut raw = |hash: bool| {
        let reader = sequential.take().unwrap_or_else(|| {
            Box::new(PositionalReader::new(
                Arc::clone(&file),
                input.base,
                input.len,
            ))
        });
        RawReader::new(reader, input.len, hash).with_progress(progress())
    };
    let cache = || ChunkCache::shared(options.chunk_cache_bytes);
    let dec = decompress_err(path);
    let plain =
        || -> Arc<dyn Stream> { Arc::new(PlainTar::new(Arc::clone(&file), input.base, input.len)) };
    match kind {
        Compression::None | Compression::Detect
            if !want_raw && !want_tar && input.stream.is_none() =>
        {
            let stream = plain();
            let index = index::build(&*stream, path)?;
            Ok(Opened {
                file,
                stream,
                state: StreamState::Plain,
                index,
            })
        }
        Compression::None | Compression::Detect => {
            // The stored bytes are the tar: one hash serves both digests.
            let pass = PlainPass { raw: raw(false) };
            let (index, _, _, hash) = run_pass(pass, true, path)?;
            verify(input, hash, hash)?;
            Ok(Opened {
                stream: plain(),
                file,
                state: StreamState::Plain,
                index,
            })
        }
        Compression::Gzip => {
            let pass = GzipPass::new(raw(want_raw)).map_err(|e| dec(e.to_string()))?;
            let (index, pass, _, tar_hash) = run_pass(pass, want_tar, path)?;
            let (gz, raw_hash) = pass.finish().map_err(|e| dec(e.to_string()))?;
            verify(input, raw_hash, tar_hash)?;
            let gz = Arc::new(gz);
            let stream = GzipStream::new(
                Arc::clone(&file),
                input.base,
                input.len,
                Arc::clone(&gz),
                cache(),
            );
            Ok(Opened {
                file,
                stream: Arc::new(stream),
                state: StreamState::Gzip(gz),
                index,
            })
        }
        Compression::Zstd => {
            let (cache_file, names) = cache_file(input, options)?;
            let tmp = names.as_ref().map(|(tmp, _)| tmp.clone());
            let result = open_zstd(input, options, raw(want_raw), cache_file, names);
            if result.is_err()
                && let Some(tmp) = tmp
            {
                let _ = std::fs::remove_file(tmp);
            }
            result
        }
    }
}

fn open_zstd(
    input: &Input,
    options: &LayerOptions,
    raw: RawReader,
    cache_file: CacheFile,
    names: Option<(PathBuf, String)>,
) -> Result<Opened, TarError> {
    let path = input.name.as_path();
    let file = Arc::clone(&input.blob);
    let dec = decompress_err(path);
    let pass = ZstdPass::new(raw, cache_file).map_err(|e| dec(e.to_string()))?;
    let (index, pass, len, tar_hash) = run_pass(pass, input.diff_id.is_some(), path)?;
    let (layout, raw_hash) = pass.finish().map_err(|e| dec(e.to_string()))?;
    verify(input, raw_hash, tar_hash)?;
    let (stream, state): (Arc<dyn Stream>, _) = match layout {
        ZstdLayout::Frames(t) => {
            let t = Arc::new(t);
            let cache = ChunkCache::shared(options.chunk_cache_bytes);
            let s = ZstdStream::new(Arc::clone(&file), input.base, Arc::clone(&t), cache);
            (Arc::new(s), StreamState::ZstdFrames(t))
        }
        ZstdLayout::Single(c) => {
            let name = match names {
                Some((tmp, name)) => {
                    let dir = tmp.parent().unwrap_or(Path::new("."));
                    std::fs::rename(&tmp, dir.join(&name)).map_err(io_err(&tmp))?;
                    Some(name)
                }
                None => None,
            };
            let s = PlainTar::new(Arc::new(c.file), 0, len);
            (Arc::new(s), StreamState::ZstdCacheFile { name, len })
        }
    };
    Ok(Opened {
        file,
        stream,
        state,
        index,
    })
}

/// The cache file a single-frame zstd layer is decompressed into, and when it is kept, its
/// temporary path and final name under the index directory.
fn cache_file(
    input: &Input,
    options: &LayerOptions,
) -> Result<(CacheFile, Option<(PathBuf, String)>), TarError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let create = |p: &Path| {
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(p)
            .map_err(io_err(p))
    };
    match &options.index_cache {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let name = format!("{}.zstd.tar", input.key);
            let tmp = dir.join(format!(".{name}.{unique}.tmp"));
            let file = create(&tmp)?;
            Ok((
                CacheFile {
                    file,
                    path: Some(tmp.clone()),
                },
                Some((tmp, name)),
            ))
        }
        None => {
            let tmp = std::env::temp_dir().join(format!(".unionmount-zstd-{unique}.tar"));
            let file = create(&tmp)?;
            // Unlinked at once: the space is freed when the layer (the last open handle)
            // goes away, even if the process does not end cleanly.
            std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
            Ok((CacheFile { file, path: None }, None))
        }
    }
}

/// The index, the producer (for its random-access state), the stream length and its hash.
type PassOutput<P> = (TarIndex, P, u64, Option<[u8; 32]>);

/// The pass: builds the index over the produced stream, then produces the rest (trailers and
/// padding, which carry the checks). A producer's error is the real cause of any failure.
/// The producer runs on a second thread ([`Ahead`]), the builder on this one.
fn run_pass<P: Produce>(
    producer: P,
    hash_tar: bool,
    path: &Path,
) -> Result<PassOutput<P>, TarError> {
    std::thread::scope(|scope| {
        let forward = Forward::new(Ahead::start(scope, producer), hash_tar);
        let built = index::build(&forward, path);
        if let Some(cause) = forward.error() {
            return Err(decompress_err(path)(cause));
        }
        let index = built?;
        let (ahead, len, hash) = forward.finish().map_err(decompress_err(path))?;
        let producer = ahead
            .join()
            .map_err(|e| decompress_err(path)(e.to_string()))?;
        Ok((index, producer, len, hash))
    })
}

/// Compares the hashes of the pass with the digests the image gave.
fn verify(input: &Input, raw: Option<[u8; 32]>, tar: Option<[u8; 32]>) -> Result<(), TarError> {
    if let (Some(want), Some(found)) = (&input.digest, raw) {
        let found = Digest::from_sha256(&found);
        if found != *want {
            return Err(TarError::DigestMismatch {
                image: input.image.clone(),
                layer: want.clone(),
                found,
            });
        }
    }
    if let (Some(want), Some(found)) = (&input.diff_id, tar) {
        let found = Digest::from_sha256(&found);
        if found != *want {
            return Err(TarError::DiffIdMismatch {
                image: input.image.clone(),
                layer: match &input.digest {
                    Some(d) => d.to_string(),
                    None => input.name.display().to_string(),
                },
                expected: want.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// Rebuilds a blob's stream from a saved state, without reading the blob.
pub(crate) fn reopen(
    input: &Input,
    state: &StreamState,
    options: &LayerOptions,
) -> Result<Arc<dyn Stream>, TarError> {
    let file = &input.blob;
    let cache = || ChunkCache::shared(options.chunk_cache_bytes);
    let stream: Arc<dyn Stream> = match state {
        StreamState::Plain => Arc::new(PlainTar::new(Arc::clone(file), input.base, input.len)),
        StreamState::Gzip(g) => Arc::new(GzipStream::new(
            Arc::clone(file),
            input.base,
            input.len,
            Arc::clone(g),
            cache(),
        )),
        StreamState::ZstdFrames(t) => Arc::new(ZstdStream::new(
            Arc::clone(file),
            input.base,
            Arc::clone(t),
            cache(),
        )),
        StreamState::ZstdCacheFile { name, len } => {
            let stale = |why: &str| TarError::Decompress {
                path: input.name.clone(),
                cause: format!("saved zstd cache file unusable: {why}"),
            };
            let (Some(name), Some(dir)) = (name, &options.index_cache) else {
                return Err(stale("it was a temporary file"));
            };
            let p = dir.join(name);
            let mut f = File::open(&p).map_err(io_err(&p))?;
            let size = f.metadata().map_err(io_err(&p))?.len();
            if size != *len {
                return Err(stale(&format!("{size} bytes, expected {len}")));
            }
            // A cheap sanity check that it holds a tar rather than leftovers.
            let mut head = [0u8; 512];
            if *len >= 512 {
                f.read_exact(&mut head).map_err(io_err(&p))?;
                if !super::extension::checksum_ok(&head) {
                    return Err(stale("it does not start with a tar header"));
                }
            }
            Arc::new(PlainTar::new(Arc::new(f), 0, *len))
        }
    };
    Ok(stream)
}
