//! Lazy mounts of registry images (`mount --lazy`) against a real registry (Debian's
//! `docker-registry`) on 127.0.0.1, through a counting proxy: the tree equals the pulled
//! image's, reading one small file of a 200 MiB image transfers a small fraction of it, the
//! layer indexes pushed with `push --index` spare a fresh machine the first pass, `--fill`
//! fetches the rest in the background of the daemon; and faults (registry down, 404, auth
//! refused, a connection cut during a read).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::registry::{Registry, free_port, registry_or_skip};
use common::*;
use unionmount::image::platform::Platform;
use unionmount::registry::{Client, ClientOptions, RegistryRef};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Big files of the test image: this many, of [`BIG_FILE`] bytes each, of noise.
const BIG_FILES: usize = 200;
const BIG_FILE: usize = 1 << 20;
const SMALL_FILES: usize = 100;

/// `unionmount ARGS --root ROOT`, which must succeed: its stdout.
fn run(root: &Path, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--root", root.to_str().expect("utf-8 root")]);
    let out = run_unionmount(&all, None, TIMEOUT);
    assert!(
        out.status.success(),
        "unionmount {all:?}: {}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// `unionmount ARGS --root ROOT` must fail with one line on stderr holding every needle,
/// and leave no mount on `mnt`.
fn fails(root: &Path, args: &[&str], mnt: &Path, needles: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--root", root.to_str().expect("utf-8 root")]);
    let out = run_unionmount(&all, Some(mnt), TIMEOUT);
    let stderr = out.stderr.trim_end().to_string();
    assert!(!out.status.success(), "{all:?} succeeded");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{all:?}: want one line:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{all:?}: {n:?} not in: {stderr}");
    }
    assert!(
        !is_fuse_mount(mnt),
        "{all:?} left a mount on {}",
        mnt.display()
    );
    stderr
}

/// A mount made by the daemon (`mount` without `-f`); unmounted on drop with `umount`, which
/// waits for the daemon to exit (so that the mountpoint can be used again at once).
struct Daemon {
    mnt: PathBuf,
    root: PathBuf,
}

impl Daemon {
    fn mount(root: &Path, args: &[&str], mnt: &Path) -> Daemon {
        require_fuse();
        let mut all = vec!["mount"];
        all.extend_from_slice(args);
        all.push(mnt.to_str().expect("utf-8 mountpoint"));
        run(root, &all);
        assert!(is_fuse_mount(mnt), "{all:?}: no mount");
        Daemon {
            mnt: mnt.to_path_buf(),
            root: root.to_path_buf(),
        }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let root = self.root.to_str().unwrap_or_default();
        let mnt = self.mnt.to_str().unwrap_or_default();
        let out = run_unionmount(&["umount", mnt, "--root", root], None, TIMEOUT);
        if !out.status.success() {
            eprintln!("umount {mnt}: {}", out.stderr);
            // The daemon ends by itself once the kernel closes the session.
            let _ = umount2(&self.mnt, libc::MNT_DETACH);
        }
    }
}

/// Noise of a big file, from its number.
fn big_file(n: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0000 + n as u64);
    let mut out = Vec::with_capacity(BIG_FILE);
    while out.len() < BIG_FILE {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(BIG_FILE);
    out
}

fn small_file(n: usize) -> Vec<u8> {
    format!("small file {n}\n").repeat(n % 7 + 1).into_bytes()
}

/// A gzip layer, the same bytes every run: `etc/small-NNN.txt` (text), `data/NN/big-NNN.bin`
/// (noise), a symlink. `big` big files.
fn write_layer(path: &Path, big: usize, small: usize) {
    let file = std::fs::File::create(path).expect("create layer");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    };
    let dir = |tar: &mut tar::Builder<_>, name: &str| {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, name, std::io::empty())
            .expect("tar dir");
    };
    dir(&mut tar, "etc/");
    dir(&mut tar, "data/");
    for n in 0..small {
        let data = small_file(n);
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        tar.append_data(&mut h, format!("etc/small-{n:03}.txt"), &data[..])
            .expect("tar file");
    }
    for n in 0..big {
        if n % 20 == 0 {
            dir(&mut tar, &format!("data/{:02}/", n / 20));
        }
        let data = big_file(n);
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o600);
        tar.append_data(
            &mut h,
            format!("data/{:02}/big-{n:03}.bin", n / 20),
            &data[..],
        )
        .expect("tar file");
    }
    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    tar.append_link(&mut h, "etc/link", "small-001.txt")
        .expect("tar symlink");
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|mut f| f.flush())
        .expect("finish layer");
}

/// The manifest digest and layer sizes of `host/repo:tag` as the registry has it.
fn registry_image(host: &str, repo_tag: &str) -> (String, Vec<u64>) {
    let client = Client::new(host, &ClientOptions::default());
    let reference = RegistryRef::parse(&format!("{host}/{repo_tag}")).expect("reference");
    let resolved = client
        .resolve(&reference, &Platform::host())
        .expect("resolve");
    let sizes = resolved
        .layers
        .iter()
        .map(|d| d.size().expect("size"))
        .collect();
    (resolved.manifest_digest.to_string(), sizes)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

#[test]
fn a_lazy_mount_reads_little_matches_the_pulled_tree_and_uses_pushed_indexes() {
    if !registry_or_skip() || !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start();
    let host = registry.host();
    let proxy = Proxy::start(registry.port);
    let via = format!("docker://localhost:{}/big:1", proxy.port);
    let store = |name: &str| tmp.path().join(name);

    // The image: one ~200 MiB gzip layer, imported and pushed straight to the registry.
    let layer = tmp.path().join("layer.tar.gz");
    write_layer(&layer, BIG_FILES, SMALL_FILES);
    let a = store("a");
    run(&a, &["import", layer.to_str().unwrap(), "big:1"]);
    run(&a, &["push", "-q", "big:1", &format!("{host}/big:1")]);
    let (digest, sizes) = registry_image(&host, "big:1");
    let blob: u64 = sizes.iter().sum();
    assert!(blob > 190 << 20, "the layer is {blob} bytes");

    // (b) A lazy mount: the first pass streams the layer once; then one small file costs a
    // few chunks.
    let c = store("c");
    let mnt_c = mountpoint(tmp.path(), "lazy");
    proxy.reset_served();
    let started = Instant::now();
    let lazy = Daemon::mount(&c, &["--lazy", "--read-only", &via], &mnt_c);
    let pass = proxy.served();
    let pass_time = started.elapsed();
    assert!(pass >= blob, "the first pass read {pass} of {blob} bytes");
    proxy.reset_served();
    let small = std::fs::read(lazy.path().join("etc/small-042.txt")).expect("read small");
    assert_eq!(small, small_file(42));
    let one_file = proxy.served();
    eprintln!(
        "lazy mount of a {} gzip layer: first pass {} in {pass_time:?}; one small file then \
         {} ({:.2} %)",
        mib(blob),
        mib(pass),
        mib(one_file),
        one_file as f64 * 100.0 / blob as f64
    );
    assert!(
        one_file * 20 < blob,
        "reading one small file transferred {one_file} of {blob} bytes"
    );
    let ps = run(&c, &["ps"]);
    assert!(
        ps.contains("docker://"),
        "ps does not list the lazy mount:\n{ps}"
    );

    // (a) The tree equals the pulled image's.
    let b = store("b");
    run(&b, &["pull", "-q", &format!("{host}/big:1")]);
    let mnt_b = mountpoint(tmp.path(), "pulled");
    let pulled = Daemon::mount(&b, &["--read-only", &format!("{host}/big:1")], &mnt_b);
    assert_same_tree(
        "lazy mount vs pulled image",
        &snapshot(pulled.path()),
        &snapshot(lazy.path()),
        &Exclusions::default(),
    );
    drop(pulled);
    drop(lazy);

    // (c) The indexes pushed next to the image spare an empty cache the first pass; the
    // image's digest does not change.
    let pushed = run(&c, &["push", "--index", &format!("docker://{host}/big:1")]);
    assert!(pushed.contains("(0 built"), "{pushed}");
    let fallback = pushed.contains("referrers tag written");
    assert_eq!(
        registry_image(&host, "big:1").0,
        digest,
        "the image changed"
    );
    let d = store("d");
    let mnt_d = mountpoint(tmp.path(), "indexed");
    proxy.reset_served();
    let indexed = Daemon::mount(&d, &["--lazy", "--read-only", &via], &mnt_d);
    let at_mount = proxy.served();
    for n in [0, 77, BIG_FILES - 1] {
        let path = format!("data/{:02}/big-{n:03}.bin", n / 20);
        let data = std::fs::read(indexed.path().join(&path)).expect("read big");
        assert!(data == big_file(n), "{path}: wrong data");
    }
    assert_eq!(
        std::fs::read(indexed.path().join("etc/link")).expect("read link"),
        small_file(1)
    );
    let after_reads = proxy.served();
    eprintln!(
        "with pushed indexes ({}): mount {} ; three 1 MiB files then {}",
        if fallback {
            "referrers tag fallback"
        } else {
            "referrers API"
        },
        mib(at_mount),
        mib(after_reads - at_mount)
    );
    assert!(
        at_mount * 20 < blob,
        "a mount with a published index transferred {at_mount} of {blob} bytes"
    );
    drop(indexed);

    // --fill: the daemon (forked after the layers were opened) fetches the rest.
    let e = store("e");
    let mnt_e = mountpoint(tmp.path(), "filled");
    proxy.reset_served();
    let filled = Daemon::mount(&e, &["--lazy", "--fill", "--read-only", &via], &mnt_e);
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.served() < blob && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        proxy.served() >= blob,
        "--fill fetched {} of {blob} bytes",
        proxy.served()
    );
    std::thread::sleep(Duration::from_millis(300));
    proxy.reset_served();
    let data = std::fs::read(filled.path().join("data/05/big-100.bin")).expect("read");
    assert!(data == big_file(100));
    assert_eq!(
        proxy.served(),
        0,
        "a read after the fill went to the registry"
    );
    drop(filled);
}

/// A server that answers every request with 401 and a basic challenge.
fn refusing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                    let head = format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\n\
                         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn lazy_mount_faults_give_one_line_or_a_retry() {
    if !registry_or_skip() || !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start();
    let host = registry.host();
    let layer = tmp.path().join("layer.tar.gz");
    write_layer(&layer, 12, 5);
    let a = tmp.path().join("a");
    run(&a, &["import", layer.to_str().unwrap(), "small:1"]);
    run(&a, &["push", "-q", "small:1", &format!("{host}/small:1")]);
    let mnt = mountpoint(tmp.path(), "mnt");
    let x = tmp.path().join("x");

    // Registry down; no such tag; auth refused.
    let down = format!("docker://localhost:{}/small:1", free_port());
    fails(
        &x,
        &["mount", "--lazy", &down, mnt.to_str().unwrap()],
        &mnt,
        &["cannot connect"],
    );
    fails(
        &x,
        &[
            "mount",
            "--lazy",
            &format!("{host}/small:nope"),
            mnt.to_str().unwrap(),
        ],
        &mnt,
        &["HTTP 404"],
    );
    let refusing = format!("localhost:{}/small:1", refusing_server());
    fails(
        &x,
        &[
            "mount",
            "--lazy",
            "--creds",
            "me:wrong",
            &refusing,
            mnt.to_str().unwrap(),
        ],
        &mnt,
        &["authentication refused"],
    );
    fails(
        &x,
        &["mount", "--lazy", "small:1", mnt.to_str().unwrap()],
        &mnt,
        &["--lazy"],
    );
    let ps = run(&x, &["ps", "-q"]);
    assert_eq!(ps.trim(), "", "failed mounts left records");

    // A connection cut during a read: the read is retried (or fails with EIO), a later read
    // works, the mount stays up.
    // The index is built by a first mount straight from the registry, so that through the
    // proxy only the read carries data (the proxy counts the bytes of each connection).
    let direct = format!("docker://{host}/small:1");
    drop(Daemon::mount(&x, &["--lazy", "--read-only", &direct], &mnt));
    let proxy = Proxy::start(registry.port);
    let via = format!("docker://localhost:{}/small:1", proxy.port);
    let lazy = Daemon::mount(&x, &["--lazy", "--read-only", &via], &mnt);
    assert!(
        proxy.served() < 64 << 10,
        "the mount read {} bytes",
        proxy.served()
    );
    proxy.cut_once_after(256 << 10);
    let path = lazy.path().join("data/00/big-007.bin");
    match std::fs::read(&path) {
        Ok(data) => assert!(data == big_file(7), "wrong data after a retried read"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
    }
    let data = std::fs::read(&path).expect("read after the cut");
    assert!(data == big_file(7), "wrong data after the cut");
    assert_eq!(proxy.cuts(), 1, "the proxy cut no connection");
    assert!(is_fuse_mount(lazy.path()), "the mount went away");
    drop(lazy);

    // A lazily pulled image whose registry has gone: `save` cannot fetch its layers and
    // says so in one line; the store is as it was, and rmi still works.
    let gone = Proxy::start(registry.port);
    let name = format!("localhost:{}/small:1", gone.port);
    let z = tmp.path().join("z");
    run(&z, &["pull", "--lazy", "-q", &format!("docker://{name}")]);
    drop(gone);
    let archive = tmp.path().join("small.tar");
    fails(
        &z,
        &["save", "-o", archive.to_str().unwrap(), &name],
        &mnt,
        &[&name, "without --lazy", "cannot connect"],
    );
    assert!(!archive.exists(), "a failed save left an archive");
    assert_eq!(blobs(&z).len(), 2);
    assert!(inspected_lazy(&z, &name));
    run(&z, &["rmi", &name]);
    assert_eq!(blobs(&z), Vec::<String>::new());

    // The registry serves a corrupt layer (same size, other bytes): the first pass sees it.
    let client = Client::new(&host, &ClientOptions::default());
    let reference = RegistryRef::parse(&format!("{host}/small:1")).expect("reference");
    let resolved = client
        .resolve(&reference, &Platform::host())
        .expect("resolve");
    let layer_digest = resolved.layers[0].digest.clone();
    let file = registry.blob_file(&layer_digest);
    let mut data = std::fs::read(&file).expect("registry blob");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).expect("tamper");
    let y = tmp.path().join("y");
    fails(
        &y,
        &["mount", "--lazy", &direct, mnt.to_str().unwrap()],
        &mnt,
        &[&layer_digest],
    );
}

#[test]
fn a_lazy_mount_keeps_its_changes_in_the_store_and_is_listed() {
    if !registry_or_skip() || !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start();
    let host = registry.host();
    let layer = tmp.path().join("layer.tar.gz");
    write_layer(&layer, 2, 3);
    let a = tmp.path().join("a");
    run(&a, &["import", layer.to_str().unwrap(), "tiny:1"]);
    // The image, then its index, built here by reading the layer once.
    let pushed = run(
        &a,
        &["push", "--index", "tiny:1", &format!("{host}/tiny:1")],
    );
    assert!(pushed.contains("(1 built"), "{pushed}");
    let image = format!("docker://{host}/tiny:1");
    let mnt = mountpoint(tmp.path(), "mnt");
    let x = tmp.path().join("x");

    // Writable by default, like a store image: the upper lives under the store's mounts/.
    let lazy = Daemon::mount(&x, &["--lazy", &image], &mnt);
    std::fs::write(lazy.path().join("etc/new.txt"), b"written\n").expect("write");
    std::fs::remove_file(lazy.path().join("etc/small-000.txt")).expect("remove");
    let ps = run(&x, &["ps", "--format", "{{.Image}} {{.Mountpoint}}"]);
    assert_eq!(
        ps.trim(),
        format!("docker://{host}/tiny:1 {}", mnt.display()),
        "{ps}"
    );
    drop(lazy);
    let again = Daemon::mount(&x, &["--lazy", &image], &mnt);
    assert_eq!(
        std::fs::read(again.path().join("etc/new.txt")).expect("read"),
        b"written\n"
    );
    assert!(!again.path().join("etc/small-000.txt").exists());
    assert_eq!(
        std::fs::read(again.path().join("etc/small-002.txt")).expect("read"),
        small_file(2)
    );
    drop(again);
}

/// Files (not directories) under `dir`, recursively; none if it does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn blobs(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = files_under(&store.join("blobs/sha256"))
        .iter()
        .filter_map(|p| Some(format!("sha256:{}", p.file_name()?.to_str()?)))
        .collect();
    names.sort();
    names
}

/// `inspect NAME`'s `Metadata.Lazy`.
fn inspected_lazy(store: &Path, name: &str) -> bool {
    let out = run(store, &["inspect", name]);
    let value: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    value[0]["Metadata"]["Lazy"].as_bool().unwrap_or(false)
}

#[test]
fn pull_lazy_stores_no_layer_blob_mounts_by_name_and_is_completed_by_save_or_pull() {
    if !registry_or_skip() || !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start();
    let host = registry.host();
    let proxy = Proxy::start(registry.port);
    let name = format!("localhost:{}/big:1", proxy.port);
    let via = format!("docker://{name}");
    let store = |n: &str| tmp.path().join(n);

    let layer = tmp.path().join("layer.tar.gz");
    write_layer(&layer, BIG_FILES, SMALL_FILES);
    let a = store("a");
    run(&a, &["import", layer.to_str().unwrap(), "big:1"]);
    run(&a, &["push", "-q", "big:1", &format!("{host}/big:1")]);
    let (digest, sizes) = registry_image(&host, "big:1");
    let blob: u64 = sizes.iter().sum();

    // pull --lazy: one pass over the layer, no layer blob stored, listed like a pull.
    let l = store("l");
    proxy.reset_served();
    let started = Instant::now();
    let out = run(&l, &["pull", "--lazy", &via]);
    let pass = proxy.served();
    eprintln!(
        "pull --lazy of a {} layer: {} transferred in {:?}",
        mib(blob),
        mib(pass),
        started.elapsed()
    );
    assert!(out.contains("Indexed"), "{out}");
    assert!(
        pass >= blob && pass < blob + blob / 20,
        "pull --lazy transferred {pass} bytes for a {blob}-byte layer"
    );
    let stored = blobs(&l);
    assert_eq!(stored.len(), 2, "blobs of a lazy pull: {stored:?}");
    assert!(stored.contains(&digest), "{stored:?}");
    let images = run(&l, &["images"]);
    assert!(
        images.contains(&format!("localhost:{}/big", proxy.port)),
        "{images}"
    );
    assert!(inspected_lazy(&l, &name));

    // mount NAME reads by ranges: one small file costs a few chunks.
    let mnt_l = mountpoint(tmp.path(), "lazy");
    let lazy = Daemon::mount(&l, &["--read-only", &name], &mnt_l);
    proxy.reset_served();
    let small = std::fs::read(lazy.path().join("etc/small-042.txt")).expect("read small");
    assert_eq!(small, small_file(42));
    let one_file = proxy.served();
    eprintln!(
        "mount of the lazily pulled image: one small file {} ({:.2} %)",
        mib(one_file),
        one_file as f64 * 100.0 / blob as f64
    );
    assert!(
        one_file * 20 < blob,
        "reading one small file transferred {one_file} of {blob} bytes"
    );
    // The tree equals a normal pull's.
    let b = store("b");
    run(&b, &["pull", "-q", &format!("{host}/big:1")]);
    let mnt_b = mountpoint(tmp.path(), "pulled");
    let pulled = Daemon::mount(&b, &["--read-only", &format!("{host}/big:1")], &mnt_b);
    assert_same_tree(
        "mount of a lazy pull vs pulled image",
        &snapshot(pulled.path()),
        &snapshot(lazy.path()),
        &Exclusions::default(),
    );
    drop(pulled);
    drop(lazy);
    assert_eq!(blobs(&l).len(), 2, "mounting stored a blob");

    // Its index, pushed from the lazy store, spares the next lazy pull its pass.
    let pushed = run(&l, &["push", "--index", &format!("docker://{host}/big:1")]);
    assert!(pushed.contains("(0 built"), "{pushed}");

    // push to the registry it came from: the layer is mounted across repositories, so the
    // absent blob is never needed.
    proxy.reset_served();
    let out = run(
        &l,
        &["push", &name, &format!("localhost:{}/copy:1", proxy.port)],
    );
    assert!(out.contains("Mounted from big"), "{out}");
    assert!(
        proxy.served() * 20 < blob,
        "push sent {} bytes",
        proxy.served()
    );
    assert_eq!(registry_image(&host, "copy:1").0, digest);

    // rmi: the image, its index and its chunk cache go; prune has nothing left to trip on.
    let removed = run(&l, &["rmi", &name]);
    assert!(removed.contains("Deleted:"), "{removed}");
    assert_eq!(blobs(&l), Vec::<String>::new());
    let left = files_under(&l.join("indexes"));
    assert!(left.is_empty(), "rmi left index files: {left:?}");
    run(&l, &["image", "prune", "-a", "-f"]);

    // With the pushed index: a lazy pull transfers next to nothing; `save` completes it.
    let m = store("m");
    proxy.reset_served();
    run(&m, &["pull", "--lazy", "-q", &via]);
    let indexed = proxy.served();
    eprintln!("pull --lazy with a pushed index: {}", mib(indexed));
    assert!(indexed * 20 < blob, "transferred {indexed} of {blob} bytes");
    assert_eq!(blobs(&m).len(), 2);
    let archive = tmp.path().join("big.tar");
    run(&m, &["save", "-o", archive.to_str().unwrap(), &name]);
    let saved = std::fs::metadata(&archive).expect("archive").len();
    assert!(saved > blob, "the archive has {saved} bytes");
    assert_eq!(blobs(&m).len(), 3, "save did not complete the image");
    assert!(!inspected_lazy(&m, &name));

    // A normal pull after a lazy one completes the image.
    let n = store("n");
    run(&n, &["pull", "--lazy", "-q", &via]);
    assert!(inspected_lazy(&n, &name));
    run(&n, &["pull", "-q", &via]);
    assert_eq!(blobs(&n).len(), 3);
    assert!(!inspected_lazy(&n, &name));
    let mnt_n = mountpoint(tmp.path(), "complete");
    let complete = Daemon::mount(&n, &["--read-only", &name], &mnt_n);
    proxy.reset_served();
    let data = std::fs::read(complete.path().join("data/05/big-100.bin")).expect("read");
    assert!(data == big_file(100));
    assert_eq!(proxy.served(), 0, "a complete image read from the registry");
    drop(complete);
}
