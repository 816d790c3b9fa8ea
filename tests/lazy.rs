//! A remote layer mounted lazily, through a real FUSE mount: the tree it shows equals the same
//! blob mounted as a local file, a fetch that fails is EIO to the reader and the next read
//! retries, and a second mount reads from the saved index and the chunk cache.
//!
//! The remote is a `RangeSource` over a local file that counts what it serves (the registry
//! side is tested with the registry client).

mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use sha2::{Digest as _, Sha256};
use unionmount::LayerStack;
use unionmount::layer::blob::{Compression, Digest, LayerSource, RangeSource, RemoteBlobRef};

struct FileRemote {
    file: fs::File,
    len: u64,
    range_bytes: AtomicU64,
    stream_bytes: Arc<AtomicU64>,
    fail_next: AtomicU64,
}

impl RangeSource for FileRemote {
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected: connection reset",
            ));
        }
        let end = (offset + len as u64).min(self.len);
        let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        self.range_bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(buf)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn stream(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let mut f = self.file.try_clone()?;
        io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
        let count = Arc::clone(&self.stream_bytes);
        Ok(Box::new(Counted(f, count)))
    }

    fn describe(&self) -> String {
        "sha256:... of file-remote://test".into()
    }
}

struct Counted(fs::File, Arc<AtomicU64>);

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn sha_file(p: &Path) -> Digest {
    Digest::from_sha256(&Sha256::digest(fs::read(p).unwrap()))
}

/// A layer with a bit of everything, and files large enough to span several chunks.
fn layer_entries() -> Vec<Entry> {
    let mut v = vec![
        dir_("etc").mode(0o755),
        file("etc/os-release", "ID=lazy\n"),
        file("etc/shadow", "root:*:1::::::\n").mode(0o600),
        symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        file("usr/bin/tool", pseudo_random(3 << 20, 1)).mode(0o755),
        hardlink("usr/bin/tool-alias", "usr/bin/tool"),
        file("usr/lib/big.so", pseudo_random(5 << 20, 2)).xattr("user.note", "lazy"),
        fifo("run/pipe"),
        whiteout("var/gone"),
        opaque("opt"),
        file("opt/one", "1\n").owner(1000, 1000),
    ];
    for i in 0..200 {
        v.push(file(
            &format!("usr/share/doc/pkg{}/README{i}", i % 13),
            format!("package {i}\n").repeat(i + 1),
        ));
    }
    v
}

#[test]
fn a_lazily_mounted_layer_shows_the_same_tree_as_the_local_blob() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = write_layer(&tmp.path().join("layer.tar"), Form::Tar, &layer_entries());
    let gz_path = tmp.path().join("layer.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).unwrap(),
        flate2::Compression::new(6),
    );
    gz.write_all(&fs::read(&tar).unwrap()).unwrap();
    gz.finish().unwrap();
    let len = fs::metadata(&gz_path).unwrap().len();
    let remote = Arc::new(FileRemote {
        file: fs::File::open(&gz_path).unwrap(),
        len,
        range_bytes: AtomicU64::new(0),
        stream_bytes: Arc::new(AtomicU64::new(0)),
        fail_next: AtomicU64::new(0),
    });
    let source = || {
        LayerSource::Remote(RemoteBlobRef {
            diff_id: Some(sha_file(&tar)),
            compression: Compression::Gzip,
            image: Some("docker://localhost/lazy:1".into()),
            ..RemoteBlobRef::new(
                Arc::clone(&remote) as Arc<dyn RangeSource>,
                sha_file(&gz_path),
            )
        })
    };
    let cache = tmp.path().join("cache");

    let local_mnt = mountpoint(tmp.path(), "local");
    let local = LayerStack::new().layer(&gz_path).mount(&local_mnt).unwrap();
    let lazy_mnt = mountpoint(tmp.path(), "lazy");
    let lazy = LayerStack::new()
        .index_cache(&cache)
        .source(source())
        .mount(&lazy_mnt)
        .unwrap();
    assert_eq!(remote.stream_bytes.load(Ordering::SeqCst), len);
    assert_eq!(remote.range_bytes.load(Ordering::SeqCst), 0);

    // While fetches fail, reading is EIO (the kernel retries a failed read-ahead page with a
    // read of its own, so the remote stays down for a while); once it is back, the next read
    // fetches again: nothing failed was cached.
    remote.fail_next.store(1000, Ordering::SeqCst);
    let big = lazy.path().join("usr/lib/big.so");
    let read_len = |p: &Path| fs::read(p).map(|v| v.len());
    assert_eq!(errno_of("read big.so", read_len(&big)), libc::EIO);
    remote.fail_next.store(0, Ordering::SeqCst);
    assert!(fs::read(&big).unwrap() == pseudo_random(5 << 20, 2));

    let ex = Exclusions::default();
    assert_same_tree(
        "lazy mount vs local blob",
        &snapshot(local.path()),
        &snapshot(lazy.path()),
        &ex,
    );
    let fetched = remote.range_bytes.load(Ordering::SeqCst);
    assert!(fetched > 0 && fetched <= len, "{fetched} of {len}");
    drop(lazy);

    // A second mount: the saved index and the cached chunks; nothing read from the remote.
    let lazy = LayerStack::new()
        .index_cache(&cache)
        .source(source())
        .mount(&lazy_mnt)
        .unwrap();
    assert_same_tree(
        "second lazy mount vs local blob",
        &snapshot(local.path()),
        &snapshot(lazy.path()),
        &ex,
    );
    assert_eq!(remote.stream_bytes.load(Ordering::SeqCst), len);
    assert_eq!(remote.range_bytes.load(Ordering::SeqCst), fetched);
    drop(lazy);
    drop(local);
}
