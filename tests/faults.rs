//! Faults around a live daemon:
//! - a tar layer truncated under the mount (reads of what was cut off fail with `EIO`, the rest
//!   keeps working), or deleted under it (reads go on through the descriptor the daemon holds);
//! - unmounting a busy mount (`unionmount umount` and `fusermount3 -u` report busy, `umount -l`
//!   detaches while a reader goes on, the daemon exits once the last file is closed);
//! - SIGKILL of the daemon during loops of lower-directory renames (tree copies), file renames
//!   and write+fsync: remounted with the same upper, every tree is complete under exactly one
//!   name, fsync'ed data is there, the work directory is cleaned, and kernel overlayfs reads
//!   the upper as the same tree.
//!
//! A panic inside a request handler is covered by the unit test of `guarded` in `src/fuse.rs`
//! (there is no way to provoke one from outside, on purpose).

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const BIG: usize = 4 << 20;

/// A directory layer, and the entries of a tar layer over it: a small file at the start of
/// the tar, a big one in the middle, a small one at the end.
fn layers(tmp: &Path) -> (PathBuf, Vec<Entry>, Vec<u8>) {
    let dir = write_layer(
        &tmp.join("l0"),
        Form::OverlayDir,
        &[file("d/keep", "kept\n"), file("a-early", "hidden\n")],
    );
    let big = pseudo_random(BIG, 0xb16);
    let entries = vec![
        file("a-early", "early\n"),
        file("m-big", &big),
        file("z-late", "late\n"),
    ];
    (dir, entries, big)
}

fn gzip(tar: &Path) -> PathBuf {
    let out = tar.with_extension("tar.gz");
    let data = fs::read(tar).expect("read tar");
    let mut enc = flate2::write::GzEncoder::new(
        File::create(&out).expect("create tar.gz"),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).expect("gzip");
    enc.finish().expect("gzip finish");
    out
}

fn errno(r: std::io::Result<Vec<u8>>) -> Result<usize, i32> {
    r.map(|v| v.len())
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

#[test]
fn truncated_tar_layer_fails_reads_with_eio_and_the_rest_keeps_working() {
    if !root_or_skip() {
        return;
    }
    for compressed in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, entries, big) = layers(tmp.path());
        let mut tar = write_layer(&tmp.path().join("l1.tar"), Form::Tar, &entries);
        if compressed {
            tar = gzip(&tar);
        }
        let what = if compressed { "tar.gz" } else { "tar" };
        let mut um = UnionMount::layers(&[&dir, &tar], &mountpoint(tmp.path(), "mnt"));
        assert_eq!(
            fs::read(um.join("a-early")).expect("read a-early"),
            b"early\n"
        );

        let len = fs::metadata(&tar).expect("stat tar").len();
        OpenOptions::new()
            .write(true)
            .open(&tar)
            .and_then(|f| f.set_len(len / 2))
            .expect("truncate the tar");

        for (name, want) in [("m-big", &big[..]), ("z-late", b"late\n")] {
            match fs::read(um.join(name)) {
                // A compressed layer may still hold the data decompressed (its chunk cache):
                // then it must be the right data.
                Ok(data) if compressed => {
                    assert!(data == want, "{what}: {name} read back wrong after the cut")
                }
                r => assert_eq!(
                    errno(r),
                    Err(libc::EIO),
                    "{what}: reading {name}, cut off the layer, must fail with EIO"
                ),
            }
        }
        // Metadata comes from the index and stays; the rest of the tree keeps working.
        assert_eq!(
            fs::metadata(um.join("m-big")).expect("stat m-big").len(),
            BIG as u64
        );
        assert_eq!(fs::read(um.join("d/keep")).expect("read d/keep"), b"kept\n");
        assert_eq!(
            fs::read(um.join("a-early")).expect("read a-early"),
            b"early\n"
        );
        let mut names = names_of(um.path());
        names.sort();
        assert_eq!(names, ["a-early", "d", "m-big", "z-late"], "{what}");
        assert!(um.running(), "{what}: the daemon died");
        let status = um.unmount_and_wait();
        assert!(status.success(), "{what}: exit status {status}");
    }
}

#[test]
fn deleted_tar_layer_keeps_serving_through_its_descriptor() {
    if !root_or_skip() {
        return;
    }
    for compressed in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, entries, big) = layers(tmp.path());
        let mut tar = write_layer(&tmp.path().join("l1.tar"), Form::Tar, &entries);
        if compressed {
            tar = gzip(&tar);
        }
        let what = if compressed { "tar.gz" } else { "tar" };
        let mut um = UnionMount::layers(&[&dir, &tar], &mountpoint(tmp.path(), "mnt"));
        fs::remove_file(&tar).expect("delete the tar");
        // Nothing was read yet: these reads reach the deleted blob.
        match fs::read(um.join("m-big")) {
            Ok(data) => assert!(data == big, "{what}: m-big read back wrong"),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: m-big: {e}"),
        }
        assert_eq!(fs::read(um.join("z-late")).expect("read z-late"), b"late\n");
        assert_eq!(fs::read(um.join("d/keep")).expect("read d/keep"), b"kept\n");
        assert!(um.running(), "{what}: the daemon died");
        let status = um.unmount_and_wait();
        assert!(status.success(), "{what}: exit status {status}");
    }
}

/// Removes a background mount and kills its daemon if the test fails half way.
struct Cleanup {
    mnt: PathBuf,
    pid: Option<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
        if let Some(pid) = self.pid
            && !wait_pid_gone(pid, Duration::from_secs(5))
        {
            // SAFETY: kill(2) of the daemon found serving our own unique mount point.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn umount_cli(mnt: &Path, root: &Path, lazy: bool) -> Finished {
    let mut args: Vec<std::ffi::OsString> = vec!["umount".into()];
    if lazy {
        args.push("-l".into());
    }
    args.extend(["--root".into(), root.into(), mnt.into()]);
    run_unionmount(&args, None, TIMEOUT)
}

fn assert_busy(what: &str, out: &Finished, mnt: &Path) {
    let stderr = out.stderr.trim_end();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} of a busy mount: want exit 1, got {out:?}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: want one line on stderr, got:\n{stderr}"
    );
    assert!(stderr.contains("busy"), "{what}: stderr: {stderr}");
    assert!(is_fuse_mount(mnt), "{what} unmounted a busy mount");
}

#[test]
fn busy_mount_refuses_umount_and_detaches_lazily_under_a_reader() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, entries, big) = layers(tmp.path());
    let tar = write_layer(&tmp.path().join("l1.tar"), Form::Tar, &entries);
    let mnt = mountpoint(tmp.path(), "mnt")
        .canonicalize()
        .expect("canonical mnt");
    let root = tmp.path().join("store");
    let mut cleanup = Cleanup {
        mnt: mnt.clone(),
        pid: None,
    };
    let args: Vec<std::ffi::OsString> = vec![
        "mount".into(),
        "--layer".into(),
        dir.into(),
        "--layer".into(),
        tar.into(),
        mnt.clone().into(),
    ];
    let out = run_unionmount(&args, Some(&mnt), TIMEOUT);
    let pids = daemon_pids_with_arg(&mnt);
    cleanup.pid = pids.first().copied();
    assert!(out.status.success(), "mount: {out:?}");
    assert_eq!(
        pids.len(),
        1,
        "one daemon serves {}: {pids:?}",
        mnt.display()
    );
    let pid = pids[0];

    // A file held open: both unmount commands refuse, with one line.
    let held = File::open(mnt.join("a-early")).expect("open a-early");
    assert_busy("unionmount umount", &umount_cli(&mnt, &root, false), &mnt);
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .stdin(Stdio::null())
        .output()
        .expect("run fusermount3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("busy"),
        "fusermount3 -u of a busy mount: {out:?}"
    );
    assert!(is_fuse_mount(&mnt), "fusermount3 unmounted a busy mount");

    // A reader in a loop over a big file.
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, read, path) = (stop.clone(), read.clone(), mnt.join("m-big"));
        thread::spawn(move || -> Result<(), String> {
            let f = File::open(&path).map_err(|e| format!("open: {e}"))?;
            let mut buf = vec![0u8; 256 << 10];
            let mut off = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let n = f
                    .read_at(&mut buf, off as u64)
                    .map_err(|e| format!("read at {off}: {e}"))?;
                if buf[..n] != big[off..off + n] {
                    return Err(format!("wrong data at {off}"));
                }
                read.fetch_add(n as u64, Ordering::Relaxed);
                off = if n == 0 { 0 } else { off + n };
            }
            Ok(())
        })
    };
    while read.load(Ordering::Relaxed) < (BIG as u64) {
        thread::sleep(Duration::from_millis(5));
    }
    assert_busy("unionmount umount", &umount_cli(&mnt, &root, false), &mnt);

    let t = Instant::now();
    let out = umount_cli(&mnt, &root, true);
    assert!(out.status.success(), "umount -l: {out:?}");
    assert!(mount_type(&mnt).is_none(), "umount -l left the mount");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "umount -l took {:?}",
        t.elapsed()
    );
    // Detached, the reader goes on through its descriptor.
    let before = read.load(Ordering::Relaxed);
    let t = Instant::now();
    while read.load(Ordering::Relaxed) < before + BIG as u64 && t.elapsed() < TIMEOUT {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    reader
        .join()
        .expect("reader thread")
        .expect("reads after umount -l");
    assert!(
        read.load(Ordering::Relaxed) >= before + BIG as u64,
        "the reader stalled after umount -l"
    );
    assert!(process_alive(pid), "the daemon left while a file was open");
    drop(held);
    assert!(
        wait_pid_gone(pid, Duration::from_secs(10)),
        "daemon {pid} still running after the last file of its detached mount was closed"
    );
}

/// Lower trees renamed in the crash test, each `FILES` files of `FILE_SIZE` bytes.
const TREES: usize = 6;
const FILES: usize = 24;
const FILE_SIZE: usize = 96 << 10;
/// One journal record: fsync'ed one by one.
const RECORD: usize = 4096;

fn record(k: usize) -> Vec<u8> {
    let mut r = pseudo_random(RECORD, 0x4ec0_0000 + k as u64);
    r[..8].copy_from_slice(&(k as u64).to_le_bytes());
    r
}

fn tree_file(t: usize, f: usize) -> Vec<u8> {
    pseudo_random(FILE_SIZE + f, (t * 1000 + f) as u64)
}

/// What the workers completed before the kill.
#[derive(Default)]
struct Progress {
    /// Trees whose rename returned.
    moved: Vec<bool>,
    /// Lower files whose rename returned.
    files_moved: Vec<bool>,
    /// Journal records written and fsync'ed.
    synced: usize,
    /// The last `state` written by write + fsync + rename over.
    state: Option<usize>,
}

/// Renames trees `t{i}` to `m{i}` and files `f{i}` to `g{i}`, in turn.
fn renamer(mnt: &Path, p: &Mutex<Progress>) {
    for i in 0..TREES {
        if fs::rename(mnt.join(format!("t{i}")), mnt.join(format!("m{i}"))).is_err() {
            return;
        }
        p.lock().expect("progress").moved[i] = true;
        if fs::rename(mnt.join(format!("f{i}")), mnt.join(format!("g{i}"))).is_err() {
            return;
        }
        p.lock().expect("progress").files_moved[i] = true;
    }
}

/// Appends journal records with an fsync after each, and replaces `state` atomically.
fn journaler(mnt: &Path, p: &Mutex<Progress>, stop: &AtomicBool) {
    let Ok(mut j) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(mnt.join("journal"))
    else {
        return;
    };
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        if j.write_all(&record(k)).and_then(|_| j.sync_data()).is_err() {
            return;
        }
        k += 1;
        p.lock().expect("progress").synced = k;
        let tmp = mnt.join("state.tmp");
        let r = File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(format!("state {k}\n").as_bytes())?;
                f.sync_all()
            })
            .and_then(|_| fs::rename(&tmp, mnt.join("state")));
        if r.is_err() {
            return;
        }
        p.lock().expect("progress").state = Some(k);
    }
}

/// The merged tree after a kill, through a fresh mount of the same upper.
fn check_after_kill(mnt: &Path, p: &Progress, what: &str) {
    for i in 0..TREES {
        let (t, m) = (mnt.join(format!("t{i}")), mnt.join(format!("m{i}")));
        let (has_t, has_m) = (t.exists(), m.exists());
        assert!(
            has_t != has_m,
            "{what}: tree {i} under {} (t{i}: {has_t}, m{i}: {has_m})",
            if has_t { "both names" } else { "no name" }
        );
        assert!(
            !p.moved[i] || has_m,
            "{what}: t{i} was renamed before the kill but m{i} is missing"
        );
        let root = if has_t { t } else { m };
        let mut names = names_of(&root);
        names.sort();
        let mut want: Vec<String> = (0..FILES).map(|f| format!("x{f:02}")).collect();
        want.sort();
        assert_eq!(names, want, "{what}: tree {i} ({})", root.display());
        for f in 0..FILES {
            let data = fs::read(root.join(format!("x{f:02}"))).expect("read tree file");
            assert!(
                data == tree_file(i, f),
                "{what}: {}/x{f:02} is torn ({} bytes)",
                root.display(),
                data.len()
            );
        }
        let (f, g) = (mnt.join(format!("f{i}")), mnt.join(format!("g{i}")));
        assert!(
            f.exists() != g.exists(),
            "{what}: file {i} under both or no names"
        );
        assert!(!p.files_moved[i] || g.exists(), "{what}: g{i} missing");
        let data = fs::read(if g.exists() { g } else { f }).expect("read moved file");
        assert!(data == tree_file(99, i), "{what}: file {i} is torn");
    }
    let journal = fs::read(mnt.join("journal")).unwrap_or_default();
    let whole = journal.len() / RECORD;
    assert!(
        whole >= p.synced,
        "{what}: the journal holds {whole} records, {} were fsync'ed",
        p.synced
    );
    for k in 0..whole {
        assert!(
            journal[k * RECORD..(k + 1) * RECORD] == record(k)[..],
            "{what}: journal record {k} is damaged"
        );
    }
    match fs::read_to_string(mnt.join("state")) {
        Ok(s) => {
            let n: usize = s
                .strip_prefix("state ")
                .and_then(|r| r.strip_suffix('\n'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what}: state is torn: {s:?}"));
            assert!(
                p.state.is_none_or(|st| n >= st),
                "{what}: state {n} older than the last replaced ({:?})",
                p.state
            );
        }
        Err(e) => assert!(
            p.state.is_none(),
            "{what}: state was replaced but is gone: {e}"
        ),
    }
}

#[test]
fn sigkill_during_tree_renames_and_fsync_keeps_the_upper_consistent() {
    if !root_or_skip() {
        return;
    }
    let seed = std::env::var("UNIONMOUNT_CRASH_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0xdead_7ee5);
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut entries = Vec::new();
    for t in 0..TREES {
        for f in 0..FILES {
            entries.push(file(&format!("t{t}/x{f:02}"), tree_file(t, f)));
        }
        entries.push(file(&format!("f{t}"), tree_file(99, t)));
    }
    let lower = write_layer(&tmp.path().join("lower"), Form::OverlayDir, &entries);
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    let mnt = mountpoint(tmp.path(), "mnt");
    let kmnt = mountpoint(tmp.path(), "kmnt");
    let fresh = || {
        for d in [&upper, &work] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir(d).expect("mkdir");
        }
    };

    // One uninterrupted round: how long the renames take, so that kills land inside.
    fresh();
    let um = UnionMount::with_upper(&[&lower], &upper, &work, &mnt);
    let progress = Mutex::new(Progress {
        moved: vec![false; TREES],
        files_moved: vec![false; TREES],
        ..Progress::default()
    });
    let t = Instant::now();
    renamer(um.path(), &progress);
    let span = t.elapsed().max(Duration::from_millis(10));
    check_after_kill(
        um.path(),
        &progress.lock().expect("progress"),
        "calibration",
    );
    um.unmount_and_wait();

    let iterations = 20;
    let (mut interrupted, mut leftovers) = (0, 0);
    let started = Instant::now();
    for it in 0..iterations {
        fresh();
        let um = UnionMount::with_upper(&[&lower], &upper, &work, &mnt);
        let progress = Arc::new(Mutex::new(Progress {
            moved: vec![false; TREES],
            files_moved: vec![false; TREES],
            ..Progress::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = [0, 1]
            .into_iter()
            .map(|w| {
                let (mnt, progress, stop) =
                    (um.path().to_path_buf(), progress.clone(), stop.clone());
                thread::spawn(move || {
                    if w == 0 {
                        renamer(&mnt, &progress);
                    } else {
                        journaler(&mnt, &progress, &stop);
                    }
                })
            })
            .collect();
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 3 / 2));
        thread::sleep(delay);
        um.signal(libc::SIGKILL);
        let status = um.wait_exit();
        assert!(!status.success(), "the daemon survived SIGKILL");
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        let p = std::mem::take(&mut *progress.lock().expect("progress"));
        if p.moved.iter().any(|m| !m) {
            interrupted += 1;
        }
        if fs::read_dir(work.join("work")).is_ok_and(|mut d| d.next().is_some()) {
            leftovers += 1;
        }
        let what = format!("iteration {it}, kill after {delay:?} (seed {seed:#x})");

        let um = UnionMount::with_upper(&[&lower], &upper, &work, &mnt);
        assert!(
            names_of(&work.join("work")).is_empty(),
            "{what}: work/work not cleaned at mount"
        );
        check_after_kill(um.path(), &p, &what);
        let ours = snapshot(um.path());
        let status = um.unmount_and_wait();
        assert!(status.success(), "{what}: exit status {status}");
        let kernel = KernelOverlay::with_upper(&[&lower], &upper, &work, &kmnt);
        assert_same_tree(
            &format!("{what}: the upper through kernel overlayfs vs unionmount"),
            &snapshot(kernel.path()),
            &ours,
            &Exclusions::default(),
        );
    }
    eprintln!(
        "tree-rename crash test: seed {seed:#x}, {iterations} kills within {span:?} rounds; \
         {interrupted} interrupted the renames, {leftovers} left staged objects; {:?}",
        started.elapsed()
    );
    assert!(interrupted > 0, "no kill landed inside the renames");
}
