//! Lazily read remote layers, against a fake remote: a [`RangeSource`] over a local file that
//! counts the bytes and requests it serves (ranges apart from the one pass's stream) and can
//! fail or stall on demand. Laziness is measured, not assumed: reading one small file of a
//! ~200 MiB gzip layer must fetch under 5 % of it.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::compressed::{gzip, sample_tar, sha, snapshot, zstd_frames, zstd_single};
use super::*;
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRead, BlobRef, Compression, Digest, RangeSource, RemoteBlobRef};
use crate::layer::remote::{CHUNK, RemoteBlob};

/// A remote blob that is a local file, counting what it serves.
struct FakeRemote {
    file: fs::File,
    len: u64,
    range_bytes: AtomicU64,
    ranges: AtomicU64,
    stream_bytes: Arc<AtomicU64>,
    /// The next this many range requests fail.
    fail_next: AtomicU64,
    /// Each range request first sleeps this long (milliseconds).
    delay_ms: AtomicU64,
}

impl FakeRemote {
    fn new(path: &Path) -> Arc<FakeRemote> {
        let file = fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len();
        Arc::new(FakeRemote {
            file,
            len,
            range_bytes: AtomicU64::new(0),
            ranges: AtomicU64::new(0),
            stream_bytes: Arc::new(AtomicU64::new(0)),
            fail_next: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
        })
    }

    fn range_bytes(&self) -> u64 {
        self.range_bytes.load(Ordering::SeqCst)
    }

    fn ranges(&self) -> u64 {
        self.ranges.load(Ordering::SeqCst)
    }

    fn stream_bytes(&self) -> u64 {
        self.stream_bytes.load(Ordering::SeqCst)
    }
}

impl RangeSource for FakeRemote {
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected: connection reset by peer",
            ));
        }
        self.ranges.fetch_add(1, Ordering::SeqCst);
        let end = (offset + len as u64).min(self.len);
        let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
        FileExt::read_exact_at(&self.file, &mut buf, offset)?;
        self.range_bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(buf)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn stream(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(CountingReader {
            file: self.file.try_clone()?,
            pos: offset,
            count: Arc::clone(&self.stream_bytes),
        }))
    }

    fn describe(&self) -> String {
        "sha256:fake of fake://registry/app:1".into()
    }
}

struct CountingReader {
    file: fs::File,
    pos: u64,
    count: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = FileExt::read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        self.count.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn remote_ref(src: &Arc<FakeRemote>, digest: Digest, diff_id: Option<Digest>) -> RemoteBlobRef {
    RemoteBlobRef {
        diff_id,
        image: Some("docker://registry/app:1".into()),
        ..RemoteBlobRef::new(Arc::clone(src) as Arc<dyn RangeSource>, digest)
    }
}

fn cached(dir: &Path) -> LayerOptions {
    LayerOptions {
        index_cache: Some(dir.join("indexes")),
        ..LayerOptions::default()
    }
}

fn local(path: &Path) -> TarLayer {
    let len = fs::metadata(path).unwrap().len();
    let blob = BlobRef {
        path: path.to_path_buf(),
        offset: 0,
        len,
        compression: Compression::Detect,
        digest: None,
        diff_id: None,
        image: None,
    };
    TarLayer::open_blob(&blob, &LayerOptions::default()).unwrap()
}

/// splitmix64 bytes: incompressible, and the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn small_file(i: u64) -> Vec<u8> {
    let mut v = format!("small file {i}\n").into_bytes();
    v.extend_from_slice(&noise(i + 10_000, 200 + (i as usize * 13) % 700));
    v
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A ~200 MiB gzip layer: 50 incompressible 4 MiB files, 300 small files in the middle of
/// the archive, 1500 compressible text files, a symlink and a hard link. Its digest and
/// diff_id. Level 2, since zlib-rs at level 1 writes the whole stream as one deflate block,
/// which no layer builder does and which leaves no checkpoint to start from.
fn big_gzip(path: &Path) -> (Digest, Digest) {
    let gz = flate2::write::GzEncoder::new(
        io::BufWriter::new(fs::File::create(path).unwrap()),
        flate2::Compression::new(2),
    );
    let mut b = tar::Builder::new(HashingWriter {
        inner: gz,
        hash: Sha256::new(),
    });
    let add = |b: &mut tar::Builder<_>, p: &str, data: &[u8]| {
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, p, data).unwrap();
    };
    for i in 0..50u64 {
        add(&mut b, &format!("big/r{i:02}.bin"), &noise(i, 4 << 20));
        if i == 25 {
            for s in 0..300 {
                add(&mut b, &format!("small/s{s:03}"), &small_file(s));
            }
        }
    }
    for t in 0..1500u64 {
        let text: String = (0..400)
            .map(|l| format!("text file {t} line {l}: the lazy layer reads by ranges\n"))
            .collect();
        add(&mut b, &format!("text/t{t:04}.txt"), text.as_bytes());
    }
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "small/link", "s001").unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "small/hard", "small/s002").unwrap();
    let hashing = b.into_inner().unwrap();
    let diff_id = Digest::from_sha256(&hashing.hash.finalize());
    hashing.inner.finish().unwrap().flush().unwrap();
    let mut h = Sha256::new();
    io::copy(&mut fs::File::open(path).unwrap(), &mut h).unwrap();
    (Digest::from_sha256(&h.finalize()), diff_id)
}

/// Paths, attributes and content hashes of a whole layer.
fn hashed_tree(l: &TarLayer) -> Vec<(String, Attr, String)> {
    snapshot_with(l, |data| sha(data).to_string())
}

fn snapshot_with(l: &TarLayer, f: impl Fn(&[u8]) -> String) -> Vec<(String, Attr, String)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), l.root().unwrap())];
    while let Some((path, e)) = stack.pop() {
        let data = match e.attr.kind {
            Kind::File => f(&read(l, &path)),
            Kind::Symlink => f(&l.readlink(e.node).unwrap()),
            Kind::Dir => {
                for d in l.read_dir(e.node).unwrap() {
                    let child = l.lookup(e.node, &d.name).unwrap().unwrap();
                    stack.push((format!("{path}/{}", d.name.to_string_lossy()), child));
                }
                String::new()
            }
            _ => String::new(),
        };
        out.push((path, e.attr, data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn passes() -> usize {
    source::PASSES.with(|n| n.get())
}

#[test]
fn a_big_gzip_layer_reads_one_file_with_a_few_ranges() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big.tar.gz");
    let t = Instant::now();
    let (digest, diff_id) = big_gzip(&path);
    let len = fs::metadata(&path).unwrap().len();
    eprintln!(
        "built a {:.1} MiB gzip layer in {:.1} s",
        len as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    assert!(len > 190 << 20, "{len}");
    let opts = cached(dir.path());
    let src = FakeRemote::new(&path);
    let r = remote_ref(&src, digest.clone(), Some(diff_id.clone()));

    // The first open: the one pass over the stream (digests checked), no ranges.
    let t = Instant::now();
    let layer = TarLayer::open_remote(&r, &opts).unwrap();
    eprintln!(
        "indexed lazily in {:.2} s: {}",
        t.elapsed().as_secs_f64(),
        layer.stream_state().describe()
    );

    assert_eq!(src.stream_bytes(), len);
    assert_eq!(src.ranges(), 0);

    // One small file in the middle: a few ranges, well under 5 % of the blob.
    let t = Instant::now();
    assert_eq!(read(&layer, "small/s150"), small_file(150));
    let fetched = src.range_bytes();
    eprintln!(
        "read small/s150 in {:.1} ms: {} ranges, {fetched} bytes ({:.2} % of the blob)",
        t.elapsed().as_secs_f64() * 1e3,
        src.ranges(),
        fetched as f64 * 100.0 / len as f64
    );
    assert!(fetched > 0 && fetched * 20 < len, "{fetched} of {len}");
    // Read again: nothing more fetched.
    assert_eq!(read(&layer, "small/s150"), small_file(150));
    let link = must(&layer, "small/link");
    assert_eq!(layer.readlink(link.node).unwrap(), b"s001".to_vec());
    assert_eq!(src.range_bytes(), fetched);
    drop(layer);

    // A second open: the saved index, no pass, and nothing fetched until a read; the chunks
    // fetched before are on disk, so the same read fetches nothing.
    let before = passes();
    let layer = TarLayer::open_remote(&r, &opts).unwrap();
    assert_eq!(passes(), before, "the saved index spares the pass");
    assert_eq!(src.stream_bytes(), len);
    assert_eq!(src.range_bytes(), fetched);
    assert_eq!(read(&layer, "small/s150"), small_file(150));
    assert_eq!(read(&layer, "small/hard"), small_file(2));
    assert_eq!(src.range_bytes(), fetched, "served from the chunk cache");
    assert!(
        dir.path()
            .join("indexes/chunks")
            .join(format!("{}.map", digest.hex()))
            .exists()
    );
    // Another file elsewhere is fetched then.
    let text = read(&layer, "text/t1400.txt");
    assert!(text.starts_with(b"text file 1400 line 0"));
    assert!(src.range_bytes() > fetched);

    // The whole tree reads like the same blob opened as a local file, and no byte of the
    // blob was fetched twice.
    let t = Instant::now();
    let lazy = hashed_tree(&layer);
    eprintln!(
        "read the whole layer lazily in {:.2} s ({} ranges, {} bytes)",
        t.elapsed().as_secs_f64(),
        src.ranges(),
        src.range_bytes()
    );
    assert!(lazy == hashed_tree(&local(&path)), "trees differ");
    assert!(src.range_bytes() <= len);
    let blob = layer.remote_blob().unwrap();
    assert_eq!(blob.fetched().0, src.range_bytes() - fetched);
}

/// A sample layer (GNU tar, PAX, sparse, long names) in every encoding, read lazily, reads
/// like the local file; a small file costs a chunk or two; a single-frame zstd layer is served
/// from its cache file without any range.
#[test]
fn every_encoding_reads_lazily_like_the_local_file() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let diff_id = sha(&tar);
    for (name, blob, compression) in [
        ("plain", tar.clone(), Compression::None),
        ("gzip", gzip(&tar, 6), Compression::Gzip),
        ("zstd-frames", zstd_frames(&tar), Compression::Zstd),
        ("zstd-single", zstd_single(&tar), Compression::Detect),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, &blob).unwrap();
        let src = FakeRemote::new(&path);
        let r = RemoteBlobRef {
            compression,
            ..remote_ref(&src, sha(&blob), Some(diff_id.clone()))
        };
        let opts = cached(dir.path());
        let layer = TarLayer::open_remote(&r, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(src.stream_bytes(), blob.len() as u64, "{name}");
        let e = must(&layer, "small/3/f10");
        let data = layer.open(e.node).unwrap();
        let mut buf = vec![0u8; e.attr.size as usize];
        data.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, super::compressed::content(10, 370), "{name}");
        let one = src.range_bytes();
        eprintln!(
            "{name}: one small file fetched {one} of {} bytes",
            blob.len()
        );
        match name {
            "zstd-single" => assert_eq!(one, 0, "{name}: served from the cache file"),
            "gzip" => assert!(one <= 6 * CHUNK, "{name}: {one}"),
            _ => assert!(one <= 2 * CHUNK, "{name}: {one}"),
        }
        assert!(
            snapshot(&layer) == snapshot(&local(&path)),
            "{name}: trees differ"
        );
        assert!(src.range_bytes() <= blob.len() as u64, "{name}");
        if name == "zstd-single" {
            assert_eq!(src.range_bytes(), 0);
        }
    }
}

#[test]
fn concurrent_reads_of_one_chunk_fetch_it_once_and_the_cache_survives() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("blob");
    let bytes = noise(5, (3 * CHUNK + 1234) as usize);
    fs::write(&path, &bytes).unwrap();
    let digest = sha(&bytes);
    let src = FakeRemote::new(&path);
    src.delay_ms.store(100, Ordering::SeqCst);
    let blob = Arc::new(
        RemoteBlob::open(
            Arc::clone(&src) as Arc<dyn RangeSource>,
            &digest,
            Some(dir.path()),
        )
        .unwrap(),
    );
    let at = CHUNK + CHUNK / 2;
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let blob = Arc::clone(&blob);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                let off = at + i * 4096;
                assert_eq!(blob.read_at(&mut buf, off).unwrap(), 4096);
                (off, buf)
            })
        })
        .collect();
    for t in threads {
        let (off, buf) = t.join().unwrap();
        assert!(buf[..] == bytes[off as usize..off as usize + 4096]);
    }
    assert_eq!(src.ranges(), 1);
    assert_eq!(src.range_bytes(), CHUNK);
    // Reads spanning chunks fetch only the missing ones, once; the tail chunk is short.
    let mut all = vec![0u8; bytes.len()];
    blob.read_exact_at(&mut all, 0).unwrap();
    assert!(all == bytes);
    assert_eq!(src.range_bytes(), bytes.len() as u64);
    assert_eq!(blob.present_chunks(), (4, 4));
    // A damaged map is not reset under a mount using it: another mount caches elsewhere.
    let map_path = dir
        .path()
        .join("chunks")
        .join(format!("{}.map", digest.hex()));
    let good_map = fs::read(&map_path).unwrap();
    fs::write(&map_path, b"garbage").unwrap();
    let other = RemoteBlob::open(
        Arc::clone(&src) as Arc<dyn RangeSource>,
        &digest,
        Some(dir.path()),
    )
    .unwrap();
    assert_eq!(other.present_chunks(), (0, 4));
    drop(other);
    let mut again = vec![0u8; bytes.len()];
    blob.read_exact_at(&mut again, 0).unwrap();
    assert!(again == bytes);
    fs::write(&map_path, good_map).unwrap();
    drop(blob);

    // Another process (a new blob over the same directory) finds every chunk present.
    let src2 = FakeRemote::new(&path);
    let blob = RemoteBlob::open(
        Arc::clone(&src2) as Arc<dyn RangeSource>,
        &digest,
        Some(dir.path()),
    )
    .unwrap();
    assert_eq!(blob.present_chunks(), (4, 4));
    let mut all = vec![0u8; bytes.len()];
    blob.read_exact_at(&mut all, 0).unwrap();
    assert!(all == bytes);
    assert_eq!(src2.ranges(), 0);

    // A cache saved for a blob of another length is reset, not misread.
    let shorter = &bytes[..(2 * CHUNK) as usize];
    fs::write(&path, shorter).unwrap();
    let src3 = FakeRemote::new(&path);
    let blob = RemoteBlob::open(
        Arc::clone(&src3) as Arc<dyn RangeSource>,
        &digest,
        Some(dir.path()),
    )
    .unwrap();
    assert_eq!(blob.present_chunks(), (0, 2));
}

#[test]
fn sequential_reads_fetch_ahead_in_one_request() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("blob");
    let bytes = noise(6, (12 * CHUNK) as usize);
    fs::write(&path, &bytes).unwrap();
    let src = FakeRemote::new(&path);
    let blob =
        RemoteBlob::open(Arc::clone(&src) as Arc<dyn RangeSource>, &sha(&bytes), None).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut off = 0;
    while off < bytes.len() as u64 {
        let n = blob.read_at(&mut buf, off).unwrap();
        assert!(buf[..n] == bytes[off as usize..off as usize + n]);
        off += n as u64;
    }
    assert_eq!(src.range_bytes(), bytes.len() as u64);
    // 1 + 2 + 4 + 4 + 1 chunks instead of 12 requests.
    assert!(src.ranges() <= 6, "{} requests", src.ranges());
}

#[test]
fn a_failed_fetch_is_an_error_and_the_next_read_retries() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let blob = gzip(&tar, 6);
    let path = dir.path().join("layer.tar.gz");
    fs::write(&path, &blob).unwrap();
    let src = FakeRemote::new(&path);
    let r = remote_ref(&src, sha(&blob), Some(sha(&tar)));
    let layer = TarLayer::open_remote(&r, &cached(dir.path())).unwrap();
    let e = must(&layer, "big2");
    let data = layer.open(e.node).unwrap();
    let mut buf = vec![0u8; 100_000];
    src.fail_next.store(1, Ordering::SeqCst);
    let err = data.read_at(&mut buf, 3 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), None, "answered EIO by the FUSE adapter");
    let msg = err.to_string();
    assert!(
        msg.contains("fake://registry/app:1") && msg.contains("injected") && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(layer.remote_blob().unwrap().present_chunks().0, 0);
    // Nothing was marked present: the next read fetches again and reads right.
    assert_eq!(data.read_at(&mut buf, 3 << 20).unwrap(), buf.len());
    let want = super::compressed::content(1001, (5 << 20) + 12345);
    assert!(buf[..] == want[3 << 20..(3 << 20) + buf.len()]);
    // The stream failing during the pass is an open error naming the blob.
    let bad = RemoteBlobRef {
        diff_id: None,
        ..remote_ref(&src, sha(b"other"), None)
    };
    let err = TarLayer::open_remote(&bad, &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, TarError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("docker://registry/app:1"), "{err}");
}

#[test]
fn fill_fetches_the_whole_blob_once_in_large_requests() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("blob");
    let bytes = noise(9, (40 * CHUNK + 5) as usize);
    fs::write(&path, &bytes).unwrap();
    let src = FakeRemote::new(&path);
    let blob = Arc::new(
        RemoteBlob::open(
            Arc::clone(&src) as Arc<dyn RangeSource>,
            &sha(&bytes),
            Some(dir.path()),
        )
        .unwrap(),
    );
    let mut buf = vec![0u8; 10];
    blob.read_at(&mut buf, 20 * CHUNK).unwrap();
    blob.spawn_fill();
    let start = Instant::now();
    while blob.present_chunks().0 < 41 {
        assert!(start.elapsed() < Duration::from_secs(20), "fill stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(src.range_bytes(), bytes.len() as u64);
    assert!(src.ranges() <= 5, "{} requests", src.ranges());
    blob.fill().unwrap();
    let mut all = vec![0u8; bytes.len()];
    blob.read_exact_at(&mut all, 0).unwrap();
    assert!(all == bytes);
    assert_eq!(src.range_bytes(), bytes.len() as u64);
}

/// One machine's index, exported and imported on another, spares the pass there; a damaged
/// or foreign one is refused without a panic.
#[test]
fn an_exported_index_spares_the_pass_elsewhere() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let blob = gzip(&tar, 6);
    let path = dir.path().join("layer.tar.gz");
    fs::write(&path, &blob).unwrap();
    let (digest, diff_id, len) = (sha(&blob), sha(&tar), blob.len() as u64);
    let a = dir.path().join("a");
    let src = FakeRemote::new(&path);
    let r = remote_ref(&src, digest.clone(), Some(diff_id.clone()));
    let layer = TarLayer::open_remote(&r, &cached(&a)).unwrap();
    let want = snapshot(&layer);
    drop(layer);
    let exported = export_index(&a.join("indexes"), &digest, Some(&diff_id), len).unwrap();
    assert!(exported.starts_with(b"UMTIDX"));

    let b = dir.path().join("b");
    let b_idx = b.join("indexes");
    for cut in (0..exported.len()).step_by(exported.len() / 40 + 1) {
        assert!(import_index(&b_idx, &digest, Some(&diff_id), len, &exported[..cut]).is_err());
    }
    for i in (0..exported.len()).step_by(exported.len() / 60 + 1) {
        let mut bad = exported.clone();
        bad[i] ^= 0x40;
        assert!(import_index(&b_idx, &digest, Some(&diff_id), len, &bad).is_err());
    }
    let other = sha(b"another layer");
    let err = import_index(&b_idx, &other, Some(&diff_id), len, &exported).unwrap_err();
    assert!(err.contains(other.as_str()) && !err.contains('\n'), "{err}");
    assert!(import_index(&b_idx, &digest, None, len, &exported).is_err());
    assert!(import_index(&b_idx, &digest, Some(&diff_id), len + 1, &exported).is_err());
    // Resealed (checksum fixed up) damage to the stream state: refused, or if it passes, the
    // layer's reads fail or return wrong bytes, never panic or read outside the blob.
    let state_len = u64::from_le_bytes(exported[64..72].try_into().unwrap()) as usize;
    let state_at = exported.len() - state_len;
    let hostile = dir.path().join("hostile");
    let mut accepted = 0;
    for (k, i) in (state_at..state_at + 120.min(state_len))
        .step_by(7)
        .enumerate()
    {
        let mut bad = exported.clone();
        bad[i] ^= 0x80 | (k as u8);
        crate::layer::tar::persist::seal(&mut bad);
        let h_idx = hostile.join(format!("{k}/indexes"));
        if import_index(&h_idx, &digest, Some(&diff_id), len, &bad).is_err() {
            continue;
        }
        accepted += 1;
        let src = FakeRemote::new(&path);
        let r = remote_ref(&src, digest.clone(), Some(diff_id.clone()));
        let opts = cached(&hostile.join(k.to_string()));
        if let Ok(l) = TarLayer::open_remote(&r, &opts) {
            for f in ["big1", "big2", "small/3/f10"] {
                let e = must(&l, f);
                let data = l.open(e.node).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                let _ = data.read_at(&mut buf, e.attr.size / 2);
            }
        }
        assert!(src.range_bytes() <= len);
    }
    eprintln!("resealed damage to the stream state: {accepted} of 18 imports accepted");
    import_index(&b_idx, &digest, Some(&diff_id), len, &exported).unwrap();

    let src2 = FakeRemote::new(&path);
    let r2 = remote_ref(&src2, digest.clone(), Some(diff_id.clone()));
    let before = passes();
    let layer = TarLayer::open_remote(&r2, &cached(&b)).unwrap();
    assert_eq!(passes(), before);
    assert_eq!(src2.stream_bytes(), 0);
    assert_eq!(src2.ranges(), 0);
    assert!(snapshot(&layer) == want);

    // A single-frame zstd layer's index names a local cache file: not exportable.
    let zpath = dir.path().join("layer.tar.zst");
    let z = zstd_single(&tar);
    fs::write(&zpath, &z).unwrap();
    let zsrc = FakeRemote::new(&zpath);
    let zr = remote_ref(&zsrc, sha(&z), None);
    TarLayer::open_remote(&zr, &cached(&a)).unwrap();
    let err = export_index(&a.join("indexes"), &sha(&z), None, z.len() as u64).unwrap_err();
    assert!(err.contains("single-frame zstd"), "{err}");
}
