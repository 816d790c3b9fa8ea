//! Crash consistency of the image store: the `unionmount` process is killed with SIGKILL at
//! random moments (a seeded generator over the time the command takes uninterrupted) during
//! `pull`, `load -i`, `import`, `commit` and `image prune`. After every kill:
//! - `unionmount images` works and `index.json` parses;
//! - every file under `blobs/sha256/` hashes to its name, and nothing else is there;
//! - every tag resolves (its manifest, config and layers are in `blobs/`) and mounts;
//! - the command run again succeeds and leaves `ingest/` empty (the next writer cleans it)
//!   and no temporary file beside `index.json`.
//!
//! Inputs are big enough that kills land mid-way: a layer of 40 MiB of random data (which
//! also makes `commit` and `import` compress for a while). Seed: `UNIONMOUNT_CRASH_SEED`.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(60);
const BIG: usize = 40 << 20;
const KILLS: usize = 12;

/// The kill moments' generator, seeded from `UNIONMOUNT_CRASH_SEED` (hex) when set.
impl Rng {
    fn seeded(salt: u64) -> Rng {
        let seed = std::env::var("UNIONMOUNT_CRASH_SEED")
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0x5707_ec4a);
        Rng(seed ^ salt)
    }
}

/// Inputs shared by the tests: a big rootfs tar, an OCI layout of it, and a docker archive.
struct Inputs {
    _tmp: tempfile::TempDir,
    rootfs: PathBuf,
    layout: PathBuf,
    archive: PathBuf,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = write_layer(
            &tmp.path().join("rootfs.tar"),
            Form::Tar,
            &[
                file("etc/os-release", "ID=big\n"),
                file("data/big", pseudo_random(BIG, 0xb16)),
                file("data/small", "small\n"),
            ],
        );
        let layout = tmp.path().join("layout");
        write_plain_oci_layout(&layout, "latest", std::slice::from_ref(&rootfs));
        // A docker archive of the same image, through a scratch store.
        let scratch = tmp.path().join("scratch");
        let src = format!("oci:{}:latest", layout.display());
        ok(&["pull", "--root", path(&scratch), &src], "scratch pull");
        ok(
            &[
                "tag",
                "--root",
                path(&scratch),
                &src_name(&layout),
                "big:latest",
            ],
            "tag",
        );
        let archive = tmp.path().join("big-docker.tar");
        ok(
            &[
                "save",
                "--root",
                path(&scratch),
                "-o",
                path(&archive),
                "big:latest",
            ],
            "save",
        );
        fs::remove_dir_all(&scratch).expect("rm scratch");
        Inputs {
            _tmp: tmp,
            rootfs,
            layout,
            archive,
        }
    })
}

/// The name `pull oci:DIR:latest` gives the image (the layout's directory name).
fn src_name(layout: &Path) -> String {
    let name = layout.file_name().and_then(|n| n.to_str()).expect("name");
    format!("{name}:latest")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `unionmount ARGS` to completion and panics unless it succeeds.
fn ok(args: &[&str], what: &str) -> Finished {
    let out = run_unionmount(args, None, TIMEOUT);
    assert!(out.status.success(), "{what}: unionmount {args:?}: {out:?}");
    out
}

fn sha256_file(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read blob");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn json(p: &Path) -> serde_json::Value {
    let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()))
}

fn blob(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// The store's invariants; returns its tags.
fn check_store(root: &Path, what: &str) -> Vec<String> {
    let out = run_unionmount(&["images", "--root", path(root)], None, TIMEOUT);
    assert!(out.status.success(), "{what}: images fails: {out:?}");
    let blobs = root.join("blobs/sha256");
    for e in fs::read_dir(&blobs).expect("read blobs").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: a stray file in blobs/sha256: {name}"
        );
        assert_eq!(
            sha256_file(&e.path()),
            name,
            "{what}: blob {name} does not match its digest"
        );
    }
    let index = json(&root.join("index.json"));
    let mut tags = Vec::new();
    for m in index["manifests"].as_array().expect("manifests") {
        let digest = m["digest"].as_str().expect("digest");
        let mpath = blob(root, digest);
        assert!(mpath.is_file(), "{what}: manifest {digest} is missing");
        let manifest = json(&mpath);
        let mut needed = vec![manifest["config"]["digest"].as_str().expect("config")];
        for l in manifest["layers"].as_array().expect("layers") {
            needed.push(l["digest"].as_str().expect("layer digest"));
        }
        for d in needed {
            assert!(
                blob(root, d).is_file(),
                "{what}: blob {d} of manifest {digest} is missing"
            );
        }
        if let Some(tag) = m["annotations"]["org.opencontainers.image.ref.name"].as_str() {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// Mounts every tag read-only and reads its root.
fn mount_all(root: &Path, tags: &[String], what: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (i, tag) in tags.iter().enumerate() {
        let mnt = mountpoint(tmp.path(), &format!("m{i}"));
        let args = [
            "mount",
            "-f",
            "--read-only",
            "--root",
            path(root),
            tag.as_str(),
            path(&mnt),
        ];
        let um = UnionMount::start(&args, &mnt);
        assert!(
            !names_of(um.path()).is_empty(),
            "{what}: {tag} mounts empty"
        );
        drop(um);
    }
}

/// What the store may hold after a completed writer: no staged blob, no temporary index.
fn assert_clean(root: &Path, what: &str) {
    let ingest = root.join("ingest");
    if ingest.is_dir() {
        let left: Vec<String> = names_of(&ingest);
        assert!(left.is_empty(), "{what}: ingest/ not cleaned: {left:?}");
    }
    let temps: Vec<String> = names_of(root)
        .into_iter()
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{what}: temporary files left: {temps:?}");
}

/// Kills `args` `KILLS` times at random moments within its uninterrupted run time, checking
/// the store after each and then running it to completion. `before` runs (to completion)
/// before each attempt, to give the command work to do again.
fn crash_loop(root: &Path, args: &[&str], before: &dyn Fn(), salt: u64) {
    let mut rng = Rng::seeded(salt);
    let name = args[0];
    before();
    let t = Instant::now();
    ok(args, "calibration");
    let span = t.elapsed();
    let (mut interrupted, started) = (0, Instant::now());
    for it in 0..KILLS {
        before();
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 11 / 10));
        let mut child = Command::new(unionmount_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn unionmount");
        std::thread::sleep(delay);
        let killed = matches!(child.try_wait(), Ok(None));
        if killed {
            // SIGKILL (std's `kill`); a child that has exited and been reaped is left alone.
            child.kill().expect("SIGKILL");
        }
        let (status, _) = wait_or_kill(&mut child, TIMEOUT);
        interrupted += usize::from(killed && !status.success());
        let what = format!("{name}, kill {it} after {delay:?} of {span:?}");
        let tags = check_store(root, &what);
        mount_all(root, &tags, &what);
        ok(args, &format!("{what}: run again"));
        assert_clean(root, &what);
        check_store(root, &format!("{what}, run again"));
    }
    eprintln!(
        "{name}: {KILLS} kills within {span:?}, {interrupted} mid-way; {:?}",
        started.elapsed()
    );
    assert!(interrupted > 0, "{name}: no kill landed mid-way");
}

fn store(tmp: &Path) -> PathBuf {
    let root = tmp.join("store");
    ok(
        &[
            "load",
            "--root",
            path(&root),
            "-i",
            "layers-testdata/demo-docker.tar",
        ],
        "load the demo",
    );
    root
}

#[test]
fn pull_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let inp = inputs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = store(tmp.path());
    let src = format!("oci:{}:latest", inp.layout.display());
    let tag = src_name(&inp.layout);
    let rmi = || {
        let _ = run_unionmount(&["rmi", "--root", path(&root), &tag], None, TIMEOUT);
    };
    crash_loop(&root, &["pull", "--root", path(&root), &src], &rmi, 1);
}

#[test]
fn load_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let inp = inputs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = store(tmp.path());
    let rmi = || {
        let _ = run_unionmount(&["rmi", "--root", path(&root), "big:latest"], None, TIMEOUT);
    };
    crash_loop(
        &root,
        &["load", "--root", path(&root), "-i", path(&inp.archive)],
        &rmi,
        2,
    );
}

#[test]
fn import_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let inp = inputs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = store(tmp.path());
    let rmi = || {
        let _ = run_unionmount(&["rmi", "--root", path(&root), "imported:1"], None, TIMEOUT);
    };
    crash_loop(
        &root,
        &[
            "import",
            "--root",
            path(&root),
            path(&inp.rootfs),
            "imported:1",
        ],
        &rmi,
        3,
    );
}

#[test]
fn commit_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = store(tmp.path());
    let mnt = mountpoint(tmp.path(), "mnt");
    let args = [
        "mount",
        "-f",
        "--root",
        path(&root),
        "unionmount-demo:latest",
        path(&mnt),
    ];
    let um = UnionMount::start(&args, &mnt);
    fs::write(um.join("changed"), pseudo_random(BIG / 2, 0xc0)).expect("write into the mount");
    let mnt_arg = path(um.path()).to_string();
    let rmi = || {
        let _ = run_unionmount(
            &["rmi", "--root", path(&root), "committed:1"],
            None,
            TIMEOUT,
        );
    };
    crash_loop(
        &root,
        &["commit", "--root", path(&root), &mnt_arg, "committed:1"],
        &rmi,
        4,
    );
    drop(um);
}

#[test]
fn prune_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let inp = inputs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = store(tmp.path());
    // Images for prune to delete again each time: a big one and several small ones.
    let src = format!("oci:{}:latest", inp.layout.display());
    let refill = || {
        ok(&["pull", "--root", path(&root), &src], "refill: pull");
        ok(
            &[
                "load",
                "--root",
                path(&root),
                "-i",
                "layers-testdata/demo-docker.tar",
            ],
            "refill: load",
        );
        for n in 0..3 {
            ok(
                &[
                    "tag",
                    "--root",
                    path(&root),
                    "unionmount-demo:latest",
                    &format!("extra:{n}"),
                ],
                "refill: tag",
            );
        }
    };
    crash_loop(
        &root,
        &["image", "prune", "-a", "-f", "--root", path(&root)],
        &refill,
        5,
    );
}
