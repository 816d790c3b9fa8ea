//! Fuzzing with proptest (stable Rust, no mount needed): the tar index builder on mutated
//! archives, the gzip and zstd random-access readers against the bytes they must produce, the
//! OCI layout readers on random JSON, and the `-o` option parser on random strings. Every
//! target must return (a value or an error), never panic, and whatever it accepts must then be
//! usable: a layer that opens is walked and read whole.
//!
//! In the suite each target runs a few seconds with a fixed seed (see [`cases`]);
//! `scripts/fuzz [CASES]` runs them long with `PROPTEST_CASES` and a fresh seed. A failing case
//! prints the seed and the shrunk input; add it to the regression tests at the end of this file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sha2::Digest as _;
use unionmount::layer::blob::LayerSource;
use unionmount::layer::tar::TarLayer;
use unionmount::layer::{Kind, Layer, LayerOptions, NodeId};

/// The suite's configuration: `default` cases (overridden by `PROPTEST_CASES`), a fixed seed
/// (overridden by `PROPTEST_RNG_SEED`), no failure files written (the regressions live here).
fn cases(default: u32) -> Config {
    Config {
        cases: default,
        rng_seed: RngSeed::Fixed(0x5eed_1e55),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- using what opened

/// Walks a layer from its root: every directory listed and looked up, every file read whole
/// (in uneven pieces), every link read. The walk is bounded, so a layer that claims a huge
/// file is read only at its start and end.
fn walk(layer: &dyn Layer) {
    let root = match layer.root() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut stack = vec![root.node];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = layer.read_dir(dir) else {
            continue;
        };
        for e in entries {
            seen += 1;
            if seen > 20_000 {
                return;
            }
            let Ok(Some(found)) = layer.lookup(dir, &e.name) else {
                continue;
            };
            let _ = layer.attr(found.node);
            let _ = layer.list_xattrs(found.node);
            match found.attr.kind {
                Kind::Dir => stack.push(found.node),
                Kind::File => read_all(layer, found.node, found.attr.size),
                Kind::Symlink => {
                    let _ = layer.readlink(found.node);
                }
                _ => {}
            }
        }
    }
}

fn read_all(layer: &dyn Layer, node: NodeId, size: u64) {
    let Ok(data) = layer.open(node) else {
        return;
    };
    let mut buf = vec![0u8; 7000];
    let mut off = 0;
    while off < size.min(1 << 20) {
        match data.read_at(&mut buf, off) {
            Ok(0) | Err(_) => break,
            Ok(n) => off += n as u64,
        }
    }
    let _ = data.read_at(&mut buf, size.saturating_sub(100));
    let _ = data.read_at(&mut buf, size);
    let _ = data.read_at(&mut buf, u64::MAX - 10);
}

/// A file in a temp dir holding `bytes`.
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

/// Opens `bytes` as a layer file through the public entry point (which detects gzip and zstd)
/// and walks it if it opened.
fn open_and_walk(name: &str, bytes: &[u8], options: &LayerOptions) {
    let (_dir, path) = temp_file(name, bytes);
    if let Ok(layer) = unionmount::layer::open(&LayerSource::Path(path), options) {
        walk(&*layer);
    }
}

// ---------------------------------------------------------------- tar index builder

/// A small tar that uses most of the format: PAX records (path, mtime, xattrs, size), GNU
/// long names and links, hard and symbolic links, whiteouts, a device, directories out of
/// order, and a file over a block.
fn sample_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| {
        let mut b = tar::Builder::new(Vec::new());
        let add = |b: &mut tar::Builder<Vec<u8>>,
                   path: &str,
                   ty: tar::EntryType,
                   data: &[u8],
                   link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(ty);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                b.append_link(&mut h, path, l).expect("append link");
            } else {
                b.append_data(&mut h, path, data).expect("append");
            }
        };
        add(&mut b, "d/", tar::EntryType::Directory, b"", None);
        add(&mut b, "d/a", tar::EntryType::Regular, b"hello\n", None);
        add(&mut b, "d/big", tar::EntryType::Regular, &[7u8; 1500], None);
        add(
            &mut b,
            &"long/".repeat(30),
            tar::EntryType::Directory,
            b"",
            None,
        );
        add(&mut b, "d/sym", tar::EntryType::Symlink, b"", Some("a"));
        add(&mut b, "d/hard", tar::EntryType::Link, b"", Some("d/a"));
        add(&mut b, "d/.wh.gone", tar::EntryType::Regular, b"", None);
        add(&mut b, "e/.wh..wh..opq", tar::EntryType::Regular, b"", None);
        add(&mut b, "e/f", tar::EntryType::Regular, b"in e\n", None);
        b.append_pax_extensions([
            ("path", &b"pax/named\nwith newline"[..]),
            ("mtime", b"1700000000.5"),
            ("SCHILY.xattr.user.x", b"v\n1"),
        ])
        .expect("pax");
        add(
            &mut b,
            "placeholder",
            tar::EntryType::Regular,
            b"pax data",
            None,
        );
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(0).expect("major");
        h.set_device_minor(0).expect("minor");
        h.set_size(0);
        b.append_data(&mut h, "d/whiteout-dev", &b""[..])
            .expect("dev");
        add(&mut b, "z", tar::EntryType::Regular, b"last", None);
        b.into_inner().expect("finish tar")
    })
}

/// One change to an archive.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte.
    Flip(usize, u8),
    /// Overwrite bytes (a numeric field with digits, say).
    Write(usize, Vec<u8>),
    /// Cut the archive.
    Truncate(usize),
    /// Insert a PAX header with these records at a block boundary.
    InsertPax(usize, Vec<(String, Vec<u8>)>),
    /// Insert raw bytes.
    Insert(usize, Vec<u8>),
}

fn pax_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("path".to_string()),
        Just("linkpath".to_string()),
        Just("size".to_string()),
        Just("uid".to_string()),
        Just("mtime".to_string()),
        Just("GNU.sparse.major".to_string()),
        Just("GNU.sparse.minor".to_string()),
        Just("GNU.sparse.name".to_string()),
        Just("GNU.sparse.realsize".to_string()),
        Just("GNU.sparse.map".to_string()),
        Just("SCHILY.xattr.user.k".to_string()),
        Just("SCHILY.xattr.trusted.overlay.opaque".to_string()),
        "[a-zA-Z.]{1,12}",
    ]
}

fn pax_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{0,22}".prop_map(String::into_bytes),
        "-?[0-9]{1,5}(\\.[0-9]{0,12})?".prop_map(String::into_bytes),
        "[0-9,]{0,40}".prop_map(String::into_bytes),
        "(\\.\\./|/|[a-z]{1,3}/|\\.wh\\.){0,6}[a-z.]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    let at = 0..len;
    prop_oneof![
        4 => (at.clone(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        3 => (at.clone(), prop_oneof![
                "[0-7 ]{1,12}".prop_map(String::into_bytes),
                "[0-9x\\x80\\xff]{1,12}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 1..12),
            ]).prop_map(|(i, b)| Mutation::Write(i, b)),
        1 => at.clone().prop_map(Mutation::Truncate),
        2 => (at.clone(), prop::collection::vec((pax_key(), pax_value()), 1..4))
            .prop_map(|(i, r)| Mutation::InsertPax(i, r)),
        1 => (at, prop::collection::vec(any::<u8>(), 1..600))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

/// A PAX `x` header (with its checksum) and its data, padded to blocks.
fn pax_header(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body_len = k.len() + v.len() + 3;
        let mut n = body_len + 1;
        while n.to_string().len() + body_len != n {
            n = n.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{n} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/x").expect("path");
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn apply(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b ^= x;
                }
            }
            Mutation::Write(i, w) => {
                for (k, &b) in w.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i % len + k) {
                        *slot = b;
                    }
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::InsertPax(i, records) => {
                let at = (i % len) / 512 * 512;
                let at = at.min(bytes.len());
                bytes.splice(at..at, pax_header(records));
            }
            Mutation::Insert(i, raw) => {
                let at = (i % len).min(bytes.len());
                bytes.splice(at..at, raw.iter().copied());
            }
        }
    }
    bytes
}

/// Opens `bytes` as a plain tar and walks it if it opened; errors must be one line.
fn open_tar(bytes: &[u8]) {
    let (_dir, path) = temp_file("f.tar", bytes);
    match TarLayer::open(&path) {
        Ok(layer) => walk(&layer),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "two lines: {msg}");
            assert!(msg.contains("f.tar"), "does not name the file: {msg}");
        }
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    /// Byte flips, overwritten fields, truncations and inserted PAX records of a valid tar.
    #[test]
    fn tar_index_survives_mutations(
        muts in prop::collection::vec(mutation(sample_tar().len()), 1..6)
    ) {
        open_tar(&apply(sample_tar().to_vec(), &muts));
    }

    /// Archives of random headers: each a valid checksum over random fields, so the builder
    /// gets past the checksum and meets the fields themselves.
    #[test]
    fn tar_index_survives_random_headers(
        blocks in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 512), prop::sample::select(
                b"0125673SDLKxgV\0".to_vec()), 0..3000u64),
            1..6,
        )
    ) {
        let mut out = Vec::new();
        for (raw, ty, size) in blocks {
            let mut h = tar::Header::from_byte_slice(&raw).clone();
            h.as_mut_bytes()[156] = ty;
            if size % 2 == 0 {
                h.set_size(size);
            }
            if size % 3 == 0 {
                h.as_mut_bytes()[257..265].copy_from_slice(b"ustar\x0000");
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            let data = (h.entry_size().unwrap_or(0).min(4000) as usize).next_multiple_of(512);
            out.extend(std::iter::repeat_n(b'x', data));
        }
        out.extend_from_slice(&[0u8; 1024]);
        open_tar(&out);
    }
}

// ---------------------------------------------------------------- gzip and zstd readers

/// Semi-compressible bytes: runs, text and noise, from a seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 5 {
            0 => out.extend_from_slice(b"the quick brown fox jumps over the lazy dog "),
            1 => out.extend(std::iter::repeat_n(
                (x >> 8) as u8,
                (x >> 16) as usize % 300,
            )),
            _ => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    out.truncate(len);
    out
}

/// A tar of files with the given sizes (from `seed`), and the files' contents.
fn make_tar(seed: u64, sizes: &[usize]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut files = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let data = content(seed.wrapping_add(i as u64), size);
        let name = format!("dir{}/file{i}", i % 3);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, &data[..]).expect("append");
        files.push((name, data));
    }
    (b.into_inner().expect("tar"), files)
}

#[derive(Clone, Copy, Debug)]
enum Codec {
    /// Level, and how many members the stream is split into.
    Gzip(u32, usize),
    /// Level, and how many frames.
    Zstd(i32, usize),
}

fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    let parts = |n: usize| -> Vec<&[u8]> {
        let step = data.len().div_ceil(n.max(1)).max(1);
        data.chunks(step).collect()
    };
    match codec {
        Codec::Gzip(level, n) => {
            let mut out = Vec::new();
            for part in parts(n) {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                e.write_all(part).expect("gzip");
                out.extend(e.finish().expect("gzip"));
            }
            out
        }
        Codec::Zstd(level, n) => parts(n)
            .into_iter()
            .flat_map(|p| zstd::bulk::compress(p, level).expect("zstd"))
            .collect(),
    }
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        (0..=9u32, 1..4usize).prop_map(|(l, n)| Codec::Gzip(l, n)),
        (1..=6i32, 1..4usize).prop_map(|(l, n)| Codec::Zstd(l, n)),
    ]
}

/// Opens a compressed layer and returns it with its files' node ids.
fn open_compressed(bytes: &[u8], budget: usize) -> (tempfile::TempDir, Arc<dyn Layer>) {
    let (dir, path) = temp_file("layer.tar.x", bytes);
    let options = LayerOptions {
        index_cache: None,
        chunk_cache_bytes: budget,
    };
    let layer = unionmount::layer::open(&LayerSource::Path(path), &options)
        .unwrap_or_else(|e| panic!("a valid layer was refused: {e}"));
    (dir, layer)
}

fn node_of(layer: &dyn Layer, path: &str) -> NodeId {
    let mut node = layer.root().expect("root").node;
    for c in path.split('/') {
        node = layer
            .lookup(node, std::ffi::OsStr::new(c))
            .expect("lookup")
            .unwrap_or_else(|| panic!("{path} missing"))
            .node;
    }
    node
}

/// One large gzip layer (several checkpoint spans, checkpoints off byte boundaries) opened
/// once per chunk-cache budget, with the files it holds.
/// An opened layer (with the temp dir holding its file) and the files it holds.
type Opened = (tempfile::TempDir, Arc<dyn Layer>, Vec<(String, Vec<u8>)>);

fn big_gzip(budget: usize) -> &'static Opened {
    static LAYERS: OnceLock<Vec<Opened>> = OnceLock::new();
    let all = LAYERS.get_or_init(|| {
        let (tar, files) = make_tar(99, &[3 << 20, 5 << 20, 1 << 20, 4 << 20, 12345]);
        let gz = compress(Codec::Gzip(6, 2), &tar);
        [0usize, 1 << 20, 64 << 20]
            .into_iter()
            .map(|b| {
                let (d, l) = open_compressed(&gz, b);
                (d, l, files.clone())
            })
            .collect()
    });
    match budget {
        0 => &all[0],
        1 => &all[1],
        _ => &all[2],
    }
}

proptest! {
    #![proptest_config(cases(400))]

    /// Random small layers in random encodings: every file reads back exactly, at random
    /// offsets and lengths.
    #[test]
    fn compressed_layers_read_back_exactly(
        seed in any::<u64>(),
        sizes in prop::collection::vec(0..300_000usize, 1..6),
        codec in codec(),
        budget in prop::sample::select(vec![0usize, 100_000, 64 << 20]),
        reads in prop::collection::vec((any::<usize>(), any::<u64>(), 0..70_000usize), 1..20),
    ) {
        let (tar, files) = make_tar(seed, &sizes);
        let (_dir, layer) = open_compressed(&compress(codec, &tar), budget);
        for (pick, off, len) in reads {
            let (name, data) = &files[pick % files.len()];
            let off = off % (data.len() as u64 + 10);
            let file = layer.open(node_of(&*layer, name)).expect("open");
            let mut buf = vec![0u8; len];
            let n = file.read_at(&mut buf, off).expect("read");
            let want = data.get(off as usize..).unwrap_or_default();
            let want = &want[..want.len().min(len)];
            prop_assert!(n <= want.len());
            prop_assert_eq!(&buf[..n], &want[..n], "{} at {}+{}", name, off, len);
            // A short count is allowed only at the end of the file.
            prop_assert!(n == want.len() || n > 0, "no progress at {}", off);
        }
    }
}

proptest! {
    #![proptest_config(cases(300))]

    /// Random reads of a multi-span gzip layer, under three chunk-cache budgets.
    #[test]
    fn gzip_checkpoint_reads_match(
        budget in 0..3usize,
        reads in prop::collection::vec((any::<usize>(), any::<u64>(), 1..300_000usize), 1..8),
    ) {
        let (_d, layer, files) = big_gzip(budget);
        for (pick, off, len) in reads {
            let (name, data) = &files[pick % files.len()];
            let off = off % data.len() as u64;
            let file = layer.open(node_of(&**layer, name)).expect("open");
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                match file.read_at(&mut buf[got..], off + got as u64).expect("read") {
                    0 => break,
                    n => got += n,
                }
            }
            let end = (off as usize + len).min(data.len());
            prop_assert_eq!(&buf[..got], &data[off as usize..end], "{} at {}", name, off);
        }
    }

    /// Garbage behind a gzip or zstd magic, or a valid stream with bytes flipped or cut:
    /// an error or a usable layer, never a panic.
    #[test]
    fn compressed_garbage_is_an_error(
        codec in codec(),
        seed in any::<u64>(),
        garbage in prop::collection::vec(any::<u8>(), 0..3000),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 0..4),
        cut in any::<usize>(),
        raw in any::<bool>(),
    ) {
        let bytes = if raw {
            let magic: &[u8] = match codec {
                Codec::Gzip(..) => b"\x1f\x8b\x08\x00",
                Codec::Zstd(..) => b"\x28\xb5\x2f\xfd",
            };
            [magic, &garbage].concat()
        } else {
            let (tar, _) = make_tar(seed, &[garbage.len() * 7, 100]);
            let mut c = compress(codec, &tar);
            for (i, x) in &flips {
                let len = c.len();
                c[i % len] ^= x;
            }
            let keep = c.len() - cut % (c.len() / 2 + 1);
            c.truncate(keep);
            c
        };
        open_and_walk("g.tar.x", &bytes, &LayerOptions::default());
    }
}

// ---------------------------------------------------------------- OCI layout readers

/// A tiny deterministic generator for the OCI shapes (they depend on each other's digests,
/// which proptest strategies cannot express directly; the seed is the shrinkable input).
struct Rng(std::cell::Cell<u64>);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(std::cell::Cell::new(seed | 1))
    }

    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }

    fn below(&self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn string(&self) -> String {
        const WORDS: &[&str] = &[
            "",
            "latest",
            "sha256:",
            "amd64",
            "linux",
            "arm64",
            "v8",
            "layers",
            "../..",
            "\0",
            "\u{1F600}",
            "application/vnd.oci.image.manifest.v1+json",
            "null",
            "-1",
        ];
        let mut s = String::new();
        for _ in 0..self.below(3) {
            s.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
        }
        s
    }

    /// Any JSON value, up to `depth` deep.
    fn value(&self, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        match self.below(if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(2)),
            2 => match self.below(4) {
                0 => Value::from(self.next()),
                1 => Value::from(-(self.below(1 << 40) as i64)),
                2 => Value::from(self.below(600)),
                _ => serde_json::Number::from_f64(self.next() as f64 / 7.0)
                    .map_or(Value::Null, Value::Number),
            },
            3 | 4 => Value::String(self.string()),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.string(), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }

    /// `good` most of the time, else a random value.
    fn maybe(&self, good: serde_json::Value) -> serde_json::Value {
        if self.chance(40) { self.value(3) } else { good }
    }
}

/// `[desc]`, sometimes followed by a random value.
fn junk_after(r: &Rng, desc: serde_json::Value) -> serde_json::Value {
    if r.chance(8) {
        serde_json::json!([desc, r.value(2)])
    } else {
        serde_json::json!([desc])
    }
}

fn sha(data: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Writes a random OCI layout into `dir`: mostly well-formed documents linked by their real
/// digests, with random values in random places, random media types, sizes and tags.
fn random_layout(dir: &Path, seed: u64) {
    use serde_json::json;
    let r = Rng::new(seed);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |data: &[u8]| -> String {
        let d = sha(data);
        std::fs::write(blobs.join(&d[7..]), data).expect("write blob");
        d
    };
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &b"abc"[..]).expect("tar");
        b.into_inner().expect("tar")
    };
    let layer_digest = put(&layer);
    let media = |r: &Rng, good: &str| -> serde_json::Value {
        match r.below(24) {
            0 => json!("application/vnd.oci.image.layer.v1.tar+gzip"),
            1 => json!("application/vnd.oci.image.index.v1+json"),
            2 => r.value(1),
            _ => json!(good),
        }
    };
    let layer_desc = |r: &Rng| {
        let m = media(r, "application/vnd.oci.image.layer.v1.tar");
        let size = r.maybe(json!(layer.len()));
        let digest = r.maybe(json!(layer_digest));
        r.maybe(json!({"mediaType": m, "digest": digest, "size": size}))
    };
    let n_layers = r.below(3);
    let layers: Vec<_> = (0..n_layers).map(|_| layer_desc(&r)).collect();
    let n_diff_ids = if r.chance(8) { r.below(3) } else { n_layers };
    let diff_ids: Vec<_> = (0..n_diff_ids)
        .map(|_| r.maybe(json!(sha(&layer))))
        .collect();
    let platform = json!({"architecture": r.maybe(json!("amd64")), "os": r.maybe(json!("linux"))});
    let config = r.maybe(json!({
        "architecture": r.maybe(json!("amd64")),
        "os": r.maybe(json!("linux")),
        "rootfs": r.maybe(json!({
            "type": r.maybe(json!("layers")),
            "diff_ids": r.maybe(json!(diff_ids)),
        })),
        "config": r.maybe(json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]})),
    }));
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_digest = put(&config_bytes);
    let config_desc = json!({
        "mediaType": media(&r, "application/vnd.oci.image.config.v1+json"),
        "digest": r.maybe(json!(config_digest)),
        "size": r.maybe(json!(config_bytes.len())),
    });
    let manifest = r.maybe(json!({
        "schemaVersion": r.maybe(json!(2)),
        "mediaType": media(&r, "application/vnd.oci.image.manifest.v1+json"),
        "config": r.maybe(config_desc),
        "layers": r.maybe(json!(layers)),
    }));
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let manifest_digest = put(&manifest_bytes);
    let mut desc = json!({
        "mediaType": media(&r, "application/vnd.oci.image.manifest.v1+json"),
        "digest": r.maybe(json!(manifest_digest)),
        "size": r.maybe(json!(manifest_bytes.len())),
        "annotations": r.maybe(json!({
            "org.opencontainers.image.ref.name": r.maybe(json!("latest")),
        })),
        "platform": r.maybe(platform),
    });
    // Sometimes wrap the manifest in a nested image index (or several).
    for _ in 0..r.below(3) {
        let nested = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": junk_after(&r, desc.clone())});
        let bytes = serde_json::to_vec(&nested).expect("json");
        let d = put(&bytes);
        desc = json!({"mediaType": media(&r, "application/vnd.oci.image.index.v1+json"),
            "digest": d, "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}});
    }
    let index = r.maybe(json!({
        "schemaVersion": r.maybe(json!(2)),
        "manifests": r.maybe(junk_after(&r, desc)),
    }));
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write index.json");
    let marker = if r.chance(16) {
        serde_json::to_vec(&r.value(2)).expect("json")
    } else {
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
    };
    std::fs::write(dir.join("oci-layout"), marker).expect("write oci-layout");
}

proptest! {
    #![proptest_config(cases(1500))]

    /// Random layouts resolve to an image or an error; an image's layers then open or fail.
    #[test]
    fn oci_layouts_resolve_or_fail(seed in any::<u64>(), tag in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        random_layout(dir.path(), seed);
        let reference = if tag {
            format!("oci:{}:latest", dir.path().display())
        } else {
            format!("oci:{}", dir.path().display())
        };
        if let Ok(image) = unionmount::image::resolve_str(&reference, None) {
            for layer in &image.layers {
                if let Ok(l) = unionmount::layer::open(layer, &LayerOptions::default()) {
                    walk(&*l);
                }
            }
        }
    }

    /// Arbitrary bytes as index.json, and arbitrary JSON values.
    #[test]
    fn oci_index_json_of_any_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            any::<u64>().prop_map(|s| serde_json::to_vec(&Rng::new(s).value(4)).expect("json")),
        ]
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write");
        std::fs::write(dir.path().join("index.json"), &bytes).expect("write");
        let _ = unionmount::image::resolve_str(&format!("oci:{}", dir.path().display()), None);
    }
}

/// The generator is worth its cases only if it reaches past the first document often enough:
/// some layouts must resolve to an image, and some fail only deep in the manifest or config.
#[test]
fn oci_generator_reaches_images() {
    let mut images = 0;
    for seed in 0..300u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        random_layout(dir.path(), seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let reference = format!("oci:{}:latest", dir.path().display());
        images += usize::from(unionmount::image::resolve_str(&reference, None).is_ok());
    }
    assert!(images >= 30, "only {images} of 300 random layouts resolved");
}

// ---------------------------------------------------------------- `-o` option parser

fn option_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("lowerdir=".to_string()),
        Just("upperdir=".to_string()),
        Just("workdir=".to_string()),
        Just("uidmapping=".to_string()),
        Just("gidmapping=".to_string()),
        Just("squash_to_uid=".to_string()),
        Just("fsync=".to_string()),
        Just("fsname=".to_string()),
        Just("ro".to_string()),
        Just("rw".to_string()),
        Just("volatile".to_string()),
        Just("squash_to_root".to_string()),
        Just("x-systemd.automount".to_string()),
        Just("/nonexistent-a".to_string()),
        Just("0:1000:65536".to_string()),
        Just("4294967295".to_string()),
        Just("-1".to_string()),
        "[,:=\\\\]{1,3}",
        "[a-z0-9/._-]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(20000))]

    /// Random `-o` words: a configuration or an error naming the problem, never a panic.
    #[test]
    fn option_parser_never_panics(
        words in prop::collection::vec(prop::collection::vec(option_word(), 0..8), 0..3),
        source in proptest::option::of("[a-z/]{0,8}"),
    ) {
        let opts: Vec<String> = words.into_iter().map(|w| w.concat()).collect();
        let parsed = unionmount::cli::compat::parse(&opts, source, PathBuf::from("/mnt"), false);
        if let Err(e) = parsed {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

// ---------------------------------------------------------------- regressions

/// Inputs that once failed a target above, kept as plain tests.
#[test]
fn regressions() {
    // (None yet from these targets: the bugs this file's corpus found are regression-tested in
    // src/layer/tar/tests/{corrupt,compressed}.rs, where they were fixed.)
    open_tar(&apply(sample_tar().to_vec(), &[Mutation::Truncate(0)]));
}
