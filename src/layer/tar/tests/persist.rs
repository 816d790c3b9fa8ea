//! Saved indexes: a loaded index answers every `Layer` call as the built one did; a stale,
//! truncated or corrupt file is refused (never a panic); writes are atomic and concurrent
//! writers are safe; and the numbers for a 100k-entry layer.

use std::os::unix::fs::FileExt;
use std::time::Instant;

use super::super::index::{self, TarIndex};
use super::super::persist::{
    self, HEADER_BYTES, IndexCache, IndexKey, NODE_BYTES, STREAM_PLAIN, Saved,
};
use super::*;
use crate::layer::blob::{BlobRef, Compression};

fn digest_key(n: u8, blob_len: u64) -> IndexKey {
    IndexKey::new(
        format!("sha256:{}", hex_byte(n).repeat(32)).as_bytes(),
        blob_len,
    )
}

fn hex_byte(n: u8) -> String {
    format!("{n:02x}")
}

/// A fresh index of the layer's tar, as the stream code would hand it over.
fn saved_of(l: &TarLayer) -> Saved {
    Saved {
        index: index::build(&*l.stream, Path::new(&l.name)).unwrap(),
        stream_kind: STREAM_PLAIN,
        tar_len: l.stream.len(),
        stream_state: b"opaque state".to_vec(),
    }
}

/// The same tar file, answered from another index. (Opened afresh rather than assembled
/// field by field, so that this does not depend on what else a `TarLayer` holds.)
fn with_index(l: &TarLayer, index: TarIndex) -> TarLayer {
    let mut fresh = TarLayer::open(Path::new(&l.name)).unwrap();
    fresh.index = index;
    fresh
}

/// Everything the layer says, walked from the root: entries, attributes, listings, link
/// targets, xattrs and (up to `max_read` bytes of) contents. Errors are recorded, not
/// unwrapped, so that a corrupt index can be walked too.
fn dump(l: &TarLayer, max_read: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(root) = l.root() else {
        return vec!["no root".into()];
    };
    let mut stack = vec![(String::new(), root)];
    while let Some((path, e)) = stack.pop() {
        if out.len() > 100_000 {
            out.push("walk cut short".into());
            break;
        }
        out.push(format!("{path}: {:?} opaque={}", e.attr, e.opaque));
        out.push(format!(
            "  attr again {:?}",
            l.attr(e.node).map_err(|e| e.kind())
        ));
        if let Ok(names) = l.list_xattrs(e.node) {
            for n in names {
                let v = l.get_xattr(e.node, &n).map_err(|e| e.kind());
                out.push(format!("  xattr {n:?} = {v:?}"));
            }
        }
        match e.attr.kind {
            Kind::Symlink => out.push(format!(
                "  -> {:?}",
                l.readlink(e.node).map_err(|e| e.kind())
            )),
            Kind::File => match l.open(e.node) {
                Ok(f) => {
                    let max_read = max_read.min(
                        usize::try_from(e.attr.size)
                            .unwrap_or(usize::MAX)
                            .saturating_add(1),
                    );
                    let mut buf = vec![0u8; max_read];
                    let mut got = 0;
                    while got < max_read {
                        match f.read_at(&mut buf[got..], got as u64) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(err) => {
                                out.push(format!("  read error {:?}", err.kind()));
                                break;
                            }
                        }
                    }
                    let sum = buf[..got]
                        .iter()
                        .fold(0u64, |h, &b| h.wrapping_mul(31) ^ u64::from(b));
                    out.push(format!("  {got} bytes, sum {sum:x}"));
                }
                Err(err) => out.push(format!("  open error {:?}", err.kind())),
            },
            Kind::Dir => match l.read_dir(e.node) {
                Ok(mut list) => {
                    list.sort_by(|a, b| a.name.cmp(&b.name));
                    for d in list {
                        out.push(format!("  {:?} {:?} {}", d.name, d.kind, d.ino));
                        match l.lookup(e.node, &d.name) {
                            Ok(Some(child)) => {
                                let p = format!("{path}/{}", d.name.to_string_lossy());
                                stack.push((p, child));
                            }
                            other => out.push(format!("  lookup: {:?}", other.map(|_| ()))),
                        }
                    }
                }
                Err(err) => out.push(format!("  read_dir error {:?}", err.kind())),
            },
            _ => {}
        }
    }
    out
}

/// GNU tar, POSIX format: long names and link targets, hard links, xattrs, nanosecond
/// times, a fifo, and sparse files (PAX 1.0 and, in a second archive, old GNU).
fn gnu_fixture(dir: &Path, format: &str) -> TarLayer {
    let src = dir.join(format!("src-{format}"));
    let d = src.join("d");
    let deep = d.join(format!(
        "{}/{}/{}",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    ));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), "deep").unwrap();
    fs::write(d.join("file.txt"), "hello").unwrap();
    fs::hard_link(d.join("file.txt"), d.join("hard")).unwrap();
    fs::write(d.join("n".repeat(120)), "long name").unwrap();
    std::os::unix::fs::symlink("file.txt", d.join("link")).unwrap();
    std::os::unix::fs::symlink("t".repeat(300), d.join("longlink")).unwrap();
    run(Command::new("mkfifo").arg(d.join("fifo")));
    run(Command::new("setfattr")
        .args(["-n", "user.color", "-v", "blue"])
        .arg(d.join("file.txt")));
    run(Command::new("setfattr")
        .args(["-n", "user.dir", "-v", "x"])
        .arg(&d));
    run(Command::new("touch")
        .args(["-h", "-d", "@1700000000.123456789"])
        .arg(d.join("file.txt")));
    let f = fs::File::create(d.join("sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"hello", 1 << 20).unwrap();
    let g = fs::File::create(d.join("many")).unwrap();
    for i in 0..40u64 {
        g.write_all_at(format!("chunk {i}").as_bytes(), i * 65536 + 100)
            .unwrap();
    }
    let mut args = vec![format!("--format={format}"), "--sparse".into(), "d".into()];
    if format == "posix" {
        args.extend(["--xattrs".into(), "--xattrs-include=user.*".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    gnu_tar(&src, "layer.tar", &args).1
}

/// Hand-made: whiteouts of both conventions, opaque directories (marker and xattr),
/// devices, later entries replacing earlier ones (leaving unreachable nodes behind).
fn whiteout_fixture(dir: &Path) -> TarLayer {
    let mut t = Tb::new();
    t.file("etc/.wh.passwd", "")
        .file("etc/.wh..wh..opq", "")
        .file("keep/.wh.both", "")
        .file("keep/both", "real")
        .file(".wh.gone", "")
        .dev(EntryType::Char, "ovl/hidden", 0, 0)
        .dev(EntryType::Char, "dev/null", 1, 3)
        .dev(EntryType::Block, "dev/sda", 8, 0)
        .file("wdir/.wh.sub", "")
        .file("wdir/sub/x", "x")
        .file("was-dir/child", "c")
        .file("was-dir", "now a file")
        .file("twice", "first")
        .file("twice", "second")
        .link(EntryType::Link, "twice-link", "twice")
        .link(EntryType::Symlink, "sym", "/etc/passwd");
    t.pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("ovl", 0o755);
    let path = dir.join("layer.tar");
    fs::write(&path, t.bytes()).unwrap();
    TarLayer::open(&path).unwrap()
}

fn fixtures(dir: &Path) -> Vec<TarLayer> {
    vec![
        gnu_fixture(dir, "posix"),
        gnu_fixture(dir, "gnu"),
        whiteout_fixture(dir),
    ]
}

#[test]
fn a_loaded_index_answers_as_the_built_one() {
    let dir = TempDir::new().unwrap();
    let cache = IndexCache::new(dir.path().join("cache/indexes"));
    let mut seen = Vec::new();
    for (i, l) in fixtures(dir.path()).into_iter().enumerate() {
        let key = digest_key(i as u8, 1234);
        let saved = saved_of(&l);
        let bytes = persist::encode(&key, &saved).unwrap();
        cache.store(&key, &saved).unwrap();
        let loaded = cache.load(&key).expect("load what was stored");
        assert_eq!(loaded.stream_kind, STREAM_PLAIN);
        assert_eq!(loaded.tar_len, l.stream.len());
        assert_eq!(loaded.stream_state, b"opaque state");
        // Saving what was loaded gives the same bytes: nothing lost, nothing invented.
        assert_eq!(persist::encode(&key, &loaded).unwrap(), bytes);
        let before = dump(&l, usize::MAX >> 1);
        let after = dump(&with_index(&l, loaded.index), usize::MAX >> 1);
        assert_eq!(before, after);
        seen.extend(before);
    }
    // The fixtures did exercise what they are meant to.
    for what in [
        "user.color",
        "Whiteout",
        "opaque=true",
        "Symlink",
        "CharDev",
        "3145728 bytes",
    ] {
        assert!(
            seen.iter().any(|s| s.contains(what)),
            "no {what} in {seen:#?}"
        );
    }
    // The directory is created private to its owner.
    let mode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn stale_keys_are_refused() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let dir = TempDir::new().unwrap();
    let cache = IndexCache::new(dir.path().to_owned());
    let key = digest_key(1, 500);
    cache.store(&key, &saved_of(&l)).unwrap();
    assert!(cache.load(&key).is_some());
    assert!(cache.load(&digest_key(1, 501)).is_none(), "other blob size");
    assert!(cache.load(&digest_key(2, 500)).is_none(), "other digest");

    // A file saved for one key, found under another key's name.
    let only_file = |d: &Path| fs::read_dir(d).unwrap().next().unwrap().unwrap().path();
    let other_dir = TempDir::new().unwrap();
    let other_cache = IndexCache::new(other_dir.path().to_owned());
    let other = digest_key(3, 500);
    other_cache.store(&other, &saved_of(&l)).unwrap();
    fs::copy(only_file(dir.path()), only_file(other_dir.path())).unwrap();
    assert!(
        other_cache.load(&other).is_none(),
        "key inside the file differs"
    );

    // Another format version, checksum and all.
    let mut bytes = persist::encode(&key, &saved_of(&l)).unwrap();
    bytes[8..12].copy_from_slice(&(persist::VERSION + 1).to_le_bytes());
    persist::seal(&mut bytes);
    assert!(
        persist::decode(&bytes, &key)
            .unwrap_err()
            .contains("version")
    );
}

#[test]
fn a_changed_tar_file_has_another_key() {
    let d = TempDir::new().unwrap();
    whiteout_fixture(d.path());
    let path = d.path().join("layer.tar");
    let blob = |offset, len| BlobRef {
        path: path.clone(),
        offset,
        len,
        compression: Compression::None,
        digest: None,
        diff_id: None,
        image: None,
    };
    let len = fs::metadata(&path).unwrap().len();
    let key = IndexKey::for_blob(&blob(0, len)).unwrap();
    assert_eq!(key, IndexKey::for_blob(&blob(0, len)).unwrap());
    assert_ne!(
        key,
        IndexKey::for_blob(&blob(512, len - 512)).unwrap(),
        "byte range"
    );
    run(Command::new("touch").args(["-d", "@1000"]).arg(&path));
    assert_ne!(key, IndexKey::for_blob(&blob(0, len)).unwrap(), "mtime");
    let with_digest = BlobRef {
        digest: Some(crate::layer::blob::Digest::from_sha256(&[7; 32])),
        ..blob(0, len)
    };
    // The digests the blob was checked against are part of the key, besides the file.
    let plain = IndexKey::for_blob(&blob(0, len)).unwrap();
    let digested = IndexKey::for_blob(&with_digest).unwrap();
    assert_ne!(plain, digested, "digest");
    assert_eq!(digested, IndexKey::for_blob(&with_digest).unwrap());
    let with_diff_id = BlobRef {
        diff_id: Some(crate::layer::blob::Digest::from_sha256(&[8; 32])),
        ..with_digest.clone()
    };
    assert_ne!(
        digested,
        IndexKey::for_blob(&with_diff_id).unwrap(),
        "diff_id"
    );
}

#[test]
fn load_or_build_builds_once_then_loads() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let dir = TempDir::new().unwrap();
    let cache = IndexCache::new(dir.path().join("idx"));
    let blob = BlobRef {
        path: d.path().join("layer.tar"),
        offset: 0,
        len: l.stream.len(),
        compression: Compression::None,
        digest: None,
        diff_id: None,
        image: None,
    };
    let builds = std::cell::Cell::new(0);
    let go = || {
        reuse::load_or_build(Some(&cache), &key_of(&blob), || {
            builds.set(builds.get() + 1);
            Ok(saved_of(&l))
        })
        .unwrap()
    };
    let expect = dump(&l, 1 << 20);
    for (i, want_builds) in [1, 1, 1].into_iter().enumerate() {
        let (s, origin) = go();
        assert_eq!(builds.get(), want_builds);
        match origin {
            reuse::Origin::Built { saved, .. } => {
                assert_eq!(i, 0, "built once");
                assert!(saved.is_some_and(|bytes| bytes > 0), "{origin:?}");
            }
            reuse::Origin::Loaded { bytes, .. } => {
                assert!(i > 0 && bytes > 0, "{origin:?}")
            }
        }
        assert_eq!(dump(&with_index(&l, s.index), 1 << 20), expect);
    }
    // One byte of the saved file flipped: refused, rebuilt, saved again.
    let files: Vec<_> = fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one index, no temporary files left: {files:?}"
    );
    let f = fs::OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.write_all_at(b"\xff", 200).unwrap();
    go();
    assert_eq!(builds.get(), 2);
    go();
    assert_eq!(builds.get(), 2);
    // Build errors pass through, and are not saved.
    let err = reuse::load_or_build(
        Some(&cache),
        &key_of(&BlobRef {
            len: 1,
            ..blob.clone()
        }),
        || {
            Err(TarError::NotTar {
                path: "x".into(),
                cause: "test".into(),
            })
        },
    );
    assert!(err.is_err());
    // No cache: always builds.
    reuse::load_or_build(None, &key_of(&blob), || {
        builds.set(builds.get() + 1);
        Ok(saved_of(&l))
    })
    .unwrap();
    assert_eq!(builds.get(), 3);
}

#[test]
fn a_failed_save_is_not_an_error() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("file"), "").unwrap();
    // The cache directory cannot be created under a regular file.
    let cache = IndexCache::new(dir.path().join("file/indexes"));
    assert!(cache.store(&digest_key(1, 1), &saved_of(&l)).is_err());
    let blob = BlobRef {
        path: d.path().join("layer.tar"),
        offset: 0,
        len: l.stream.len(),
        compression: Compression::None,
        digest: None,
        diff_id: None,
        image: None,
    };
    let (s, _) = reuse::load_or_build(Some(&cache), &key_of(&blob), || Ok(saved_of(&l))).unwrap();
    assert_eq!(s.index.len(), l.index.len());
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn truncated_and_corrupt_files_are_refused() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let key = digest_key(9, 77);
    let bytes = persist::encode(&key, &saved_of(&l)).unwrap();
    assert!(persist::decode(&bytes, &key).is_ok());
    for len in 0..bytes.len() {
        assert!(
            persist::decode(&bytes[..len], &key).is_err(),
            "cut at {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(persist::decode(&longer, &key).is_err(), "trailing byte");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for case in 0..3000 {
        let mut bad = bytes.clone();
        let flips = 1 + rng.below(3);
        for _ in 0..flips {
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
        }
        assert!(persist::decode(&bad, &key).is_err(), "case {case}");
    }
}

/// Corruption the checksum cannot see (the file is resealed after each change, as a buggy or
/// hostile writer would): the checks refuse it, or what they accept is walked end to end
/// through the `Layer` calls without a panic.
#[test]
fn resealed_corruption_never_panics() {
    let dir = TempDir::new().unwrap();
    let layers = [gnu_fixture(dir.path(), "gnu"), whiteout_fixture(dir.path())];
    let key = digest_key(5, 5);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut accepted) = (0, 0);
    for l in &layers {
        let bytes = persist::encode(&key, &saved_of(l)).unwrap();
        let body = HEADER_BYTES + key_len(&key);
        for _ in 0..2000 {
            let mut bad = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                let at = body + rng.below(bad.len() - body);
                match rng.below(3) {
                    0 => bad[at] ^= 1 << rng.below(8),
                    1 => bad[at] = rng.next() as u8,
                    _ => bad[at] = [0, 0xff, 1, 0x7f][rng.below(4)],
                }
            }
            persist::seal(&mut bad);
            match persist::decode(&bad, &key) {
                Err(_) => refused += 1,
                Ok(s) => {
                    accepted += 1;
                    dump(&with_index(l, s.index), 1 << 16);
                }
            }
        }
    }
    eprintln!("resealed corruption: {refused} refused, {accepted} accepted and walked");
    assert!(refused > 1000, "{refused}");
}

fn key_len(key: &IndexKey) -> usize {
    let bytes = persist::encode(
        key,
        &Saved {
            index: TarIndex::from_parts(
                vec![index::Node::with_flag_bits(0)],
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            stream_kind: 0,
            tar_len: 0,
            stream_state: Vec::new(),
        },
    )
    .unwrap();
    bytes.len() - HEADER_BYTES - NODE_BYTES
}

/// Each structural check, by name: a change that keeps the checksum valid but breaks the
/// tables is refused with the reason.
#[test]
fn inconsistent_tables_are_refused() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let key = digest_key(4, 4);
    let bytes = persist::encode(&key, &saved_of(&l)).unwrap();
    let nodes_at = HEADER_BYTES + key_len(&key);
    let n_nodes = l.index.len();
    let children_at = nodes_at + n_nodes * NODE_BYTES;
    let root_children = l.index.node(index::ROOT).unwrap().nchildren as usize;
    let node_field = |node: usize, field: usize| nodes_at + node * NODE_BYTES + field;
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("root is not a directory", node_field(0, 12), vec![0]),
        ("unknown kind", node_field(1, 12), vec![9]),
        ("unknown flags", node_field(1, 13), vec![0x80]),
        (
            "parent out of range",
            node_field(1, 0),
            u32::MAX.to_le_bytes().to_vec(),
        ),
        (
            "name past the arena",
            node_field(1, 4),
            u32::MAX.to_le_bytes().to_vec(),
        ),
        (
            "object out of range",
            node_field(1, 56),
            (n_nodes as u32).to_le_bytes().to_vec(),
        ),
        (
            "extras out of range",
            node_field(1, 60),
            77u32.to_le_bytes().to_vec(),
        ),
        (
            "children past the table",
            node_field(0, 68),
            u32::MAX.to_le_bytes().to_vec(),
        ),
        (
            "child out of range",
            children_at,
            u32::MAX.to_le_bytes().to_vec(),
        ),
        (
            "root listed as a child",
            children_at,
            0u32.to_le_bytes().to_vec(),
        ),
        (
            "mtime nanoseconds",
            node_field(1, 28),
            1_000_000_000u32.to_le_bytes().to_vec(),
        ),
    ];
    for (what, at, patch) in cases {
        let mut bad = bytes.clone();
        bad[at..at + patch.len()].copy_from_slice(&patch);
        persist::seal(&mut bad);
        let err = persist::decode(&bad, &key).expect_err(what);
        eprintln!("{what}: {err}");
    }
    // Two children of the root swapped: no longer sorted.
    assert!(root_children >= 2);
    let mut bad = bytes.clone();
    let first = l.index.node(index::ROOT).unwrap().children as usize;
    let (a, b) = (children_at + first * 4, children_at + first * 4 + 4);
    let tmp: [u8; 4] = bad[a..a + 4].try_into().unwrap();
    bad.copy_within(b..b + 4, a);
    bad[b..b + 4].copy_from_slice(&tmp);
    persist::seal(&mut bad);
    assert!(persist::decode(&bad, &key).unwrap_err().contains("sorted"));
}

#[test]
fn concurrent_writers_of_one_key() {
    let d = TempDir::new().unwrap();
    let l = whiteout_fixture(d.path());
    let dir = TempDir::new().unwrap();
    let cache = IndexCache::new(dir.path().join("idx"));
    let key = digest_key(8, 8);
    let expect = dump(&l, 1 << 20);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..10 {
                    cache.store(&key, &saved_of(&l)).unwrap();
                    // Whatever a reader finds is complete.
                    if let Some(got) = cache.load(&key) {
                        assert_eq!(dump(&with_index(&l, got.index), 1 << 20), expect);
                    }
                }
            });
        }
    });
    let files: Vec<_> = fs::read_dir(cache.dir()).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary files left");
    assert!(cache.load(&key).is_some());
}

#[test]
fn default_dir_is_absolute() {
    let d = IndexCache::default_dir();
    assert!(d.is_absolute() && d.ends_with("indexes"), "{}", d.display());
    if rustix::process::geteuid().is_root() {
        assert_eq!(d, Path::new("/var/lib/unionmount/indexes"));
    }
}

/// Numbers for the README: `cargo test --release --lib scale_100k_saved -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn scale_100k_saved_index() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big.tar");
    write_100k_tar(&path);
    let start = Instant::now();
    let l = TarLayer::open(&path).unwrap();
    let built = start.elapsed();
    let cache = IndexCache::new(dir.path().join("idx"));
    let key = digest_key(1, l.stream.len());
    let saved = saved_of(&l);
    let start = Instant::now();
    cache.store(&key, &saved).unwrap();
    let stored = start.elapsed();
    let file = fs::read_dir(cache.dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let size = fs::metadata(&file).unwrap().len();
    let mut best = std::time::Duration::MAX;
    let mut layer = l;
    for _ in 0..5 {
        let start = Instant::now();
        let loaded = cache.load(&key).unwrap();
        layer.index = loaded.index;
        let e = get(&layer, "usr/share/pkg345/sub24/file-012345.txt").unwrap();
        assert_eq!(e.attr.size, 18);
        best = best.min(start.elapsed());
    }
    let bytes = fs::read(&file).unwrap();
    let start = Instant::now();
    let decoded = persist::decode(&bytes, &key).unwrap();
    let decode = start.elapsed();
    let mut copy = bytes.clone();
    let start = Instant::now();
    persist::seal(&mut copy);
    let hash = start.elapsed();
    eprintln!(
        "{} nodes: build {built:?}; saved index {size} bytes ({} B/node, {} B/entry); \
         store {stored:?} (with fsync); load to first lookup {best:?} (decode {decode:?}, of \
         which sha256 ~{hash:?})",
        decoded.index.len(),
        size / decoded.index.len() as u64,
        size / 100_000
    );
    assert!(best.as_millis() < 100);
}

/// The saved-index key of a local blob, as opening it computes it.
fn key_of(blob: &BlobRef) -> Result<IndexKey, String> {
    IndexKey::for_blob(blob).map_err(|e| e.to_string())
}
