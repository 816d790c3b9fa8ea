//! Compressed layers and byte ranges: every encoding of one archive (made by GNU tar, with
//! PAX long names, a sparse file and files larger than a checkpoint span) must read exactly
//! like the plain tar; random reads across checkpoints; digest checks; broken streams; the
//! saved random-access state.

use std::io::Write;
use std::process::Stdio;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRef, Compression, Digest};
use crate::layer::tar::source::StreamState;

/// Deterministic bytes that compress somewhat (text-like runs mixed with noise).
pub(super) fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(4) {
            out.extend_from_slice(b"the quick brown fox jumps over the lazy dog ");
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// A plain tar made by GNU tar (PAX format, sparse file, long names), ~14 MiB.
pub(super) fn sample_tar(dir: &Path) -> Vec<u8> {
    let root = dir.join("src");
    let long = "d".repeat(60);
    fs::create_dir_all(root.join(format!("{long}/{long}"))).unwrap();
    for i in 0..300u64 {
        let p = root.join(format!("small/{}/f{i}", i % 7));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content(i, (i as usize * 37) % 3000)).unwrap();
    }
    fs::write(root.join("big1"), content(1000, 6 << 20)).unwrap();
    fs::write(root.join("big2"), content(1001, (5 << 20) + 12345)).unwrap();
    fs::write(root.join(format!("{long}/{long}/long-named")), b"deep").unwrap();
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"middle", 1 << 20).unwrap();
    std::os::unix::fs::symlink("big1", root.join("link")).unwrap();
    let tar = dir.join("sample.tar");
    run(Command::new("/usr/bin/tar")
        .current_dir(&root)
        // Nearly the same archive on every run: no times, owners or pid-named pax headers.
        // (The sparse file's header name still holds tar's pid: GNU tar fixes that format.)
        .args([
            "--format=pax",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "--mtime=@1700000000",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--sparse",
            "--sort=name",
            "-cf",
        ])
        .arg(&tar)
        .arg("."));
    fs::read(&tar).unwrap()
}

fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

pub(super) fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    pipe(
        Command::new("gzip").arg(format!("-{level}")).arg("-c"),
        data,
    )
}

pub(super) fn zstd_single(data: &[u8]) -> Vec<u8> {
    pipe(Command::new("zstd").args(["-q", "-c", "-3"]), data)
}

/// Independent frames of 1 MiB each, as the seekable format and chunked writers make them.
pub(super) fn zstd_frames(data: &[u8]) -> Vec<u8> {
    data.chunks(1 << 20)
        .flat_map(|c| ::zstd::bulk::compress(c, 3).unwrap())
        .collect()
}

pub(super) fn sha(data: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(data))
}

/// Writes `blob` between garbage and returns the reference to its range.
fn in_range(dir: &Path, name: &str, blob: &[u8]) -> BlobRef {
    let mut file = content(7, 1000);
    file.extend_from_slice(blob);
    file.extend_from_slice(&content(8, 777));
    let path = dir.join(name);
    fs::write(&path, &file).unwrap();
    BlobRef {
        path,
        offset: 1000,
        len: blob.len() as u64,
        compression: Compression::Detect,
        digest: None,
        diff_id: None,
        image: Some("oci:test:latest".into()),
    }
}

/// Everything a layer shows: paths, attributes, contents, link targets.
pub(super) fn snapshot(l: &TarLayer) -> Vec<(String, Attr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), l.root().unwrap())];
    while let Some((path, e)) = stack.pop() {
        let data = match e.attr.kind {
            Kind::File => read(l, &path),
            Kind::Symlink => l.readlink(e.node).unwrap(),
            Kind::Dir => {
                for d in l.read_dir(e.node).unwrap() {
                    let child = l.lookup(e.node, &d.name).unwrap().unwrap();
                    stack.push((format!("{path}/{}", d.name.to_string_lossy()), child));
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        out.push((path, e.attr, data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn options() -> LayerOptions {
    LayerOptions::default()
}

#[test]
fn every_encoding_reads_like_the_plain_tar() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let plain = snapshot(&TarLayer::open(&dir.path().join("sample.tar")).unwrap());
    assert!(plain.len() > 300);
    let split = tar.len() / 3 + 123; // mid-entry, not on a block boundary
    let mut members = gzip(&tar[..split], 6);
    members.extend(gzip(&tar[split..], 1));
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("plain", tar.clone(), 0),
        ("gzip-1", gzip(&tar, 1), 1),
        ("gzip-9", gzip(&tar, 9), 1),
        ("gzip-members", members, 1),
        ("zstd-single", zstd_single(&tar), 3),
        ("zstd-frames", zstd_frames(&tar), 2),
    ];
    for (name, blob, kind) in cases {
        for digests in [false, true] {
            let mut b = in_range(dir.path(), name, &blob);
            if digests {
                b.digest = Some(sha(&blob));
                b.diff_id = Some(sha(&tar));
            }
            let l = TarLayer::open_blob(&b, &options()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(l.stream_state().kind(), kind, "{name}");
            assert_eq!(l.stream.len(), tar.len() as u64, "{name}");
            assert!(snapshot(&l) == plain, "{name}: differs from the plain tar");
        }
    }
}

#[test]
fn gzip_checkpoints_every_span_and_random_reads_match() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    // A checkpoint inside a deflate stream sits at whatever bit its block ended on; 1 in 8 is
    // byte-aligned. The reads below must cross one that is not, so take the first level whose
    // stream has one (each of the two inner checkpoints is aligned by chance, per level).
    let is_unaligned =
        |c: &crate::layer::tar::gzip::Checkpoint| !c.member && !c.bit.is_multiple_of(8);
    let b = [6, 1, 9, 4, 7]
        .into_iter()
        .map(|level| in_range(dir.path(), &format!("g{level}"), &gzip(&tar, level)))
        .find(|b| {
            let l = TarLayer::open_blob(b, &options()).unwrap();
            let StreamState::Gzip(g) = l.stream_state() else {
                panic!("not gzip")
            };
            g.checkpoints.iter().skip(1).any(is_unaligned)
        })
        .expect("no gzip level gave a checkpoint off a byte boundary");
    // A zero budget caches nothing, so every read inflates from its checkpoint.
    for budget in [0, 64 << 20] {
        let opts = LayerOptions {
            chunk_cache_bytes: budget,
            ..options()
        };
        let l = TarLayer::open_blob(&b, &opts).unwrap();
        let StreamState::Gzip(g) = l.stream_state() else {
            panic!("not gzip")
        };
        assert!(
            g.checkpoints.len() >= 3,
            "{} checkpoints",
            g.checkpoints.len()
        );
        let mut x = 12345u64;
        for _ in 0..300 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = (x >> 11) % tar.len() as u64;
            let len = ((x >> 40) % 300_000) as usize;
            let mut buf = vec![0u8; len];
            l.stream.read_exact_at(&mut buf, off).ok();
            let end = (off as usize + len).min(tar.len());
            assert_eq!(
                buf[..end - off as usize],
                tar[off as usize..end],
                "at {off}+{len}"
            );
        }
        // Reads straddling every checkpoint.
        for c in g.checkpoints.iter().skip(1) {
            let mut buf = vec![0u8; 1000];
            l.stream.read_exact_at(&mut buf, c.out - 500).unwrap();
            assert_eq!(buf, tar[c.out as usize - 500..c.out as usize + 500]);
        }
    }
}

#[test]
fn zstd_frames_are_read_one_at_a_time() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let b = in_range(dir.path(), "z", &zstd_frames(&tar));
    let l = TarLayer::open_blob(&b, &options()).unwrap();
    let StreamState::ZstdFrames(t) = l.stream_state() else {
        panic!("not a frame table")
    };
    assert_eq!(t.frames.len(), tar.len().div_ceil(1 << 20));
    for off in (0..tar.len()).step_by(333_333) {
        let mut buf = vec![0u8; 70_000.min(tar.len() - off)];
        l.stream.read_exact_at(&mut buf, off as u64).unwrap();
        assert_eq!(buf, tar[off..off + buf.len()]);
    }
}

#[test]
fn single_frame_zstd_cache_file_is_kept_under_the_index_dir() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let blob = zstd_single(&tar);
    let mut b = in_range(dir.path(), "z", &blob);
    b.digest = Some(sha(&blob));
    let cache = dir.path().join("indexes");
    let opts = LayerOptions {
        index_cache: Some(cache.clone()),
        ..options()
    };
    let l = TarLayer::open_blob(&b, &opts).unwrap();
    let StreamState::ZstdCacheFile {
        name: Some(name),
        len,
    } = l.stream_state()
    else {
        panic!("no named cache file")
    };
    assert_eq!(fs::read(cache.join(name)).unwrap(), tar);
    assert_eq!(*len, tar.len() as u64);
    // The cache file and the saved index, and no temporary file left.
    let mut names: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".idx")), "{names:?}");
}

#[test]
fn digest_mismatches_name_the_image_and_layer() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    for blob in [tar.clone(), gzip(&tar, 1), zstd_frames(&tar)] {
        let mut b = in_range(dir.path(), "x", &blob);
        let wrong = sha(b"something else");
        b.digest = Some(wrong.clone());
        let e = TarLayer::open_blob(&b, &options()).unwrap_err();
        assert!(matches!(e, TarError::DigestMismatch { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "image oci:test:latest: layer {wrong}: content does not match its digest \
                 (found {})",
                sha(&blob)
            )
        );
        b.digest = Some(sha(&blob));
        b.diff_id = Some(wrong.clone());
        let e = TarLayer::open_blob(&b, &options()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "image oci:test:latest: layer {}: uncompressed content {} does not match the \
                 config's diff_id {wrong}",
                sha(&blob),
                sha(&tar)
            )
        );
    }
}

#[test]
fn broken_streams_are_errors_not_panics() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    for blob in [gzip(&tar, 6), zstd_single(&tar), zstd_frames(&tar)] {
        let n = blob.len();
        let mut cases = vec![
            blob[..n / 2].to_vec(),
            blob[..n - 3].to_vec(),
            blob[..10].to_vec(),
        ];
        for at in [n / 5, n / 2, n - 6] {
            let mut bad = blob.clone();
            bad[at] ^= 0x55;
            bad[at + 1] ^= 0xaa;
            cases.push(bad);
        }
        for (i, bad) in cases.iter().enumerate() {
            let mut b = in_range(dir.path(), "bad", bad);
            b.diff_id = Some(sha(&tar));
            let e = TarLayer::open_blob(&b, &options()).err();
            let e = e.unwrap_or_else(|| panic!("case {i} opened"));
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let b = in_range(dir.path(), "bad", &blob[..n / 2]);
        let e = TarLayer::open_blob(&b, &options()).unwrap_err();
        assert!(matches!(e, TarError::Decompress { .. }), "{e}");
    }
    // Not compressed and not a tar.
    let b = in_range(dir.path(), "junk", &[0x1f]);
    assert!(TarLayer::open_blob(&b, &options()).is_err());
}

#[test]
fn a_gzip_bomb_streams_through_bounded_memory() {
    // 256 MiB of zeros as one file: ~250 KiB compressed, never held in memory at once.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(256 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "zeros", std::io::repeat(0).take(256 << 20))
        .unwrap();
    let tar = t.into_inner().unwrap();
    let dir = TempDir::new().unwrap();
    let b = in_range(dir.path(), "bomb", &gzip(&tar, 9));
    drop(tar);
    let l = TarLayer::open_blob(&b, &options()).unwrap();
    let e = must(&l, "zeros");
    let f = l.open(e.node).unwrap();
    let mut buf = vec![1u8; 4096];
    assert_eq!(f.read_at(&mut buf, (256 << 20) - 4096).unwrap(), 4096);
    assert!(buf.iter().all(|&b| b == 0));
}

use std::io::Read as _;

#[test]
fn saved_state_rebuilds_the_same_stream() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let cache = dir.path().join("indexes");
    let opts = LayerOptions {
        index_cache: Some(cache),
        ..options()
    };
    for blob in [
        tar.clone(),
        gzip(&tar, 6),
        zstd_frames(&tar),
        zstd_single(&tar),
    ] {
        let b = in_range(dir.path(), "s", &blob);
        let l = TarLayer::open_blob(&b, &opts).unwrap();
        let mut bytes = Vec::new();
        l.stream_state().encode(&mut bytes);
        let state = StreamState::decode(&bytes).unwrap();
        assert_eq!(&state, l.stream_state());
        assert!(state.reusable());
        // Garbage and truncations are refused, never a panic.
        for cut in (0..bytes.len()).step_by(bytes.len() / 50 + 1) {
            let _ = StreamState::decode(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(97) {
            flipped[i] ^= 0xff;
        }
        let _ = StreamState::decode(&flipped);
        let input = input::Input::local(&b).unwrap();
        let stream = source::reopen(&input, &state, &opts).unwrap();
        let mut all = vec![0u8; tar.len()];
        stream.read_exact_at(&mut all, 0).unwrap();
        assert!(all == tar);
    }
    assert!(StreamState::decode(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
}

/// The reuse the saved index is for: a second open of a gzip blob (with digests, as an image
/// gives them) reads the same tree without an indexing pass; a corrupted saved index costs one
/// pass again, and the layer still reads right.
#[test]
fn a_saved_index_spares_the_pass_and_a_corrupt_one_is_rebuilt() {
    let dir = TempDir::new().unwrap();
    let tar = sample_tar(dir.path());
    let blob = gzip(&tar, 6);
    let mut b = in_range(dir.path(), "g", &blob);
    b.digest = Some(sha(&blob));
    b.diff_id = Some(sha(&tar));
    let cache = dir.path().join("indexes");
    let opts = LayerOptions {
        index_cache: Some(cache.clone()),
        ..options()
    };
    let passes = || source::PASSES.with(|n| n.get());
    let plain = snapshot(&TarLayer::open(&dir.path().join("sample.tar")).unwrap());
    let before = passes();
    let open = || TarLayer::open_blob(&b, &opts).unwrap();
    assert!(snapshot(&open()) == plain, "first open");
    assert_eq!(passes(), before + 1, "the first open indexes the blob");
    for _ in 0..2 {
        let l = open();
        assert!(matches!(l.stream_state(), StreamState::Gzip(_)));
        assert!(snapshot(&l) == plain, "reopened from the saved index");
    }
    assert_eq!(
        passes(),
        before + 1,
        "no pass while the saved index is good"
    );

    let idx: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert_eq!(idx.len(), 1, "{idx:?}");
    // A byte in the middle of the node table: only the checksum can tell.
    let mut saved = fs::read(&idx[0]).unwrap();
    let at = saved.len() / 2;
    saved[at] ^= 0x01;
    fs::write(&idx[0], &saved).unwrap();
    assert!(snapshot(&open()) == plain, "after the corruption");
    assert_eq!(passes(), before + 2, "a corrupt index is rebuilt");
    assert!(snapshot(&open()) == plain);
    assert_eq!(passes(), before + 2, "and the rebuilt one is used");
    // Truncated: the same.
    fs::write(&idx[0], &saved[..saved.len() / 3]).unwrap();
    assert!(snapshot(&open()) == plain, "after the truncation");
    assert_eq!(passes(), before + 3);
}

/// A gzip member whose tar holds one file of `groups * 2064 + 1` zeros written as ONE fixed-
/// Huffman deflate block (a literal zero, then copies of 258 bytes at distance 1), with the
/// tar header before it and the padding and end blocks after it in stored blocks.
fn gzip_one_block(groups: usize) -> (Vec<u8>, Vec<u8>) {
    struct Bits {
        out: Vec<u8>,
        n: usize,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: usize, msb_first: bool) {
            for i in 0..count {
                let bit = if msb_first {
                    (value >> (count - 1 - i)) & 1
                } else {
                    (value >> i) & 1
                };
                if self.n.is_multiple_of(8) {
                    self.out.push(0);
                }
                *self.out.last_mut().unwrap() |= (bit as u8) << (self.n % 8);
                self.n += 1;
            }
        }
        fn align(&mut self) {
            self.n = self.n.div_ceil(8) * 8;
        }
        fn stored(&mut self, data: &[u8], last: bool) {
            self.put(u32::from(last), 1, false);
            self.put(0, 2, false);
            self.align();
            let len = data.len() as u16;
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(data);
            self.n = self.out.len() * 8;
        }
    }
    let size = 1 + groups * 8 * 258;
    let mut h = Header::new_ustar();
    h.set_path("oneblock").unwrap();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tail = vec![0u8; size.next_multiple_of(512) - size];
    tail.extend_from_slice(&[0u8; 1024]);
    let mut tar = h.as_bytes().to_vec();
    tar.resize(512 + size, 0);
    tar.extend_from_slice(&tail);

    let mut b = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
        n: 80,
    };
    b.stored(h.as_bytes(), false);
    b.put(0, 1, false); // not the last block
    b.put(1, 2, false); // fixed Huffman
    b.put(0x30, 8, true); // literal 0
    for _ in 0..groups * 8 {
        b.put(0xc5, 8, true); // length 258
        b.put(0, 5, true); // distance 1
    }
    b.put(0, 7, true); // end of block
    b.stored(&tail, true);
    let mut crc = flate2::Crc::new();
    crc.update(&tar);
    b.out.extend_from_slice(&crc.sum().to_le_bytes());
    b.out.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    (b.out, tar)
}

/// Regression: a span has no upper bound (no checkpoint can fall inside one deflate block), and
/// a read inflated and allocated the whole span at once: 1 GiB of memory (twice) to read 64 KiB
/// of a file of zeros made of one 512 MiB block, redone on every read once the span outgrew
/// the chunk cache, so reading the file through took hours. Spans are now inflated in pieces,
/// and a cursor lets the next piece go on where the last stopped.
#[test]
fn gzip_one_huge_block_reads_in_pieces() {
    let dir = TempDir::new().unwrap();
    // 24 MiB of zeros in one block: six pieces.
    let (gz, tar) = gzip_one_block((24 << 20) / 2064);
    let b = in_range(dir.path(), "one", &gz);
    for budget in [0, 64 << 20] {
        let opts = LayerOptions {
            chunk_cache_bytes: budget,
            ..options()
        };
        let l = TarLayer::open_blob(&b, &opts).unwrap_or_else(|e| panic!("{e}"));
        let StreamState::Gzip(g) = l.stream_state() else {
            panic!("not gzip")
        };
        assert!(g.checkpoints.len() <= 2, "{:?}", g.checkpoints.len());
        assert_eq!(l.tar_len(), tar.len() as u64);
        // Backwards, so that no cursor helps, then forwards across every piece boundary.
        let mut offsets: Vec<u64> = (0..6).map(|k| k * (4 << 20) + 100).collect();
        offsets.reverse();
        offsets.extend((1..6).map(|k| k * (4 << 20) - 700));
        for off in offsets {
            let mut buf = vec![0u8; 5000];
            let end = (off as usize + buf.len()).min(tar.len());
            let n = end - off as usize;
            l.stream.read_exact_at(&mut buf[..n], off).unwrap();
            assert_eq!(buf[..n], tar[off as usize..end], "at {off}");
        }
        assert_eq!(read(&l, "oneblock").len(), tar.len() - 512 - 1024 - 511);
    }
}

/// Regression: a gzip bomb (1000x) took a 32 KiB checkpoint window for every 4 MiB of output,
/// 8x its own size in memory (80 MiB for 10 MB of blob). A checkpoint now also waits for
/// 256 KiB of input.
#[test]
fn gzip_bomb_checkpoints_are_bounded_by_the_blob() {
    let dir = TempDir::new().unwrap();
    let mut h = Header::new_ustar();
    h.set_path("zeros").unwrap();
    let size = 512u64 << 20;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..size >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    let gz = enc.finish().unwrap();
    let b = in_range(dir.path(), "bomb", &gz);
    let l = TarLayer::open_blob(&b, &options()).unwrap();
    let StreamState::Gzip(g) = l.stream_state() else {
        panic!("not gzip")
    };
    let windows: usize = g.checkpoints.iter().map(|c| c.window.len()).sum();
    assert!(
        windows <= gz.len() / 8 + (32 << 10),
        "{} checkpoints, {windows} bytes of windows for a blob of {}",
        g.checkpoints.len(),
        gz.len()
    );
    let mut buf = vec![1u8; 4096];
    l.stream.read_exact_at(&mut buf, 512 + size - 4096).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}
