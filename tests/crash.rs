//! Crash safety of copy-up: the daemon is killed with SIGKILL at random moments while large
//! lower files are copied up (each appended to or truncated through the mount). After every
//! kill the dead mount is detached and the same upper and work directories are mounted again;
//! every file must then be either its lower original or its complete new content, both in the
//! merged tree and in the upper itself, and the work directory's staging area must be empty.
//!
//! The moments are drawn from a seeded generator (`UNIONMOUNT_CRASH_SEED`, printed on failure)
//! over the time one round of copy-ups takes here, measured first without a kill.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Lower files and their sizes: 102 MiB in all, some under directories that are copied up
/// first.
const FILES: &[(&str, usize)] = &[
    ("big0", 8 << 20),
    ("a/big1", 12 << 20),
    ("a/b/big2", 16 << 20),
    ("c/big3", 24 << 20),
    ("c/big4", 32 << 20),
    ("big5", 10 << 20),
];
const DIRS: &[&str] = &["a", "a/b", "c"];
const ITERATIONS: usize = 40;
/// Appended by an append operation: less than a page, so one FUSE write and one `pwrite`.
const TAIL: &[u8] = &[0x5a; 1000];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Append,
    Truncate,
}

/// What one file may look like: its content hashes and sizes.
struct Expect {
    original: (u64, u64),
    appended: (u64, u64),
    truncated: (u64, u64),
}

impl Expect {
    fn new_content(&self, op: Op) -> (u64, u64) {
        match op {
            Op::Append => self.appended,
            Op::Truncate => self.truncated,
        }
    }
}

/// A fast 64-bit hash (not cryptographic; we only tell a few known contents apart).
#[derive(Default)]
struct Hash {
    h: u64,
    len: u64,
    pending: Vec<u8>,
}

impl Hash {
    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let need = 8 - self.pending.len();
            let take = need.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == 8 {
                let word = u64::from_le_bytes(self.pending[..].try_into().expect("8 bytes"));
                self.mix(word);
                self.pending.clear();
            }
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        self.pending.extend_from_slice(words.remainder());
    }

    fn mix(&mut self, word: u64) {
        self.h = (self.h ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }

    fn finish(mut self) -> (u64, u64) {
        let rest = std::mem::take(&mut self.pending);
        for b in rest {
            self.mix(u64::from(b) | 0x100);
        }
        (self.h ^ self.len, self.len)
    }
}

fn hash_bytes(data: &[u8]) -> (u64, u64) {
    let mut h = Hash::default();
    h.update(data);
    h.finish()
}

fn hash_file(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Hash::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
    expect: Vec<Expect>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("lower");
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    for d in [&lower, &upper, &work] {
        fs::create_dir(d).expect("mkdir");
    }
    for d in DIRS {
        fs::create_dir_all(lower.join(d)).expect("mkdir lower dir");
    }
    let mut expect = Vec::new();
    for (i, (path, size)) in FILES.iter().enumerate() {
        let data = pseudo_random(*size, 0xc0ff_ee00 + i as u64);
        fs::write(lower.join(path), &data).expect("write lower file");
        let mut h = Hash::default();
        h.update(&data);
        h.update(TAIL);
        expect.push(Expect {
            original: hash_bytes(&data),
            appended: h.finish(),
            truncated: hash_bytes(&data[..size / 2]),
        });
    }
    let mnt = mountpoint(tmp.path(), "mnt");
    Setup {
        _tmp: tmp,
        lower,
        upper,
        work,
        mnt,
        expect,
    }
}

fn mount(s: &Setup) -> UnionMount {
    let args: Vec<&std::ffi::OsStr> = vec![
        "mount".as_ref(),
        "-f".as_ref(),
        "--layer".as_ref(),
        s.lower.as_os_str(),
        "--upper".as_ref(),
        s.upper.as_os_str(),
        "--work".as_ref(),
        s.work.as_os_str(),
        s.mnt.as_os_str(),
    ];
    UnionMount::start(&args, &s.mnt)
}

/// One round: every file in `order` is opened for writing (the copy-up), then appended to or
/// truncated. `done[i]` is set once file `i`'s operation has returned. Stops at the first
/// error (the daemon is gone).
fn round(mnt: &Path, order: &[(usize, Op)], done: &Mutex<Vec<bool>>) {
    for &(i, op) in order {
        let path = mnt.join(FILES[i].0);
        let Ok(mut f) = OpenOptions::new()
            .write(true)
            .append(op == Op::Append)
            .open(&path)
        else {
            return;
        };
        let ok = match op {
            Op::Append => f.write_all(TAIL).is_ok(),
            Op::Truncate => f.set_len((FILES[i].1 / 2) as u64).is_ok(),
        };
        if !ok {
            return;
        }
        if let Ok(mut d) = done.lock() {
            d[i] = true;
        }
    }
}

/// The directory entries of `dir`, recursively, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = fs::read_dir(dir.join(&rel))
            .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.join(&rel).display()));
        for e in entries {
            let e = e.expect("dir entry");
            let name = rel.join(e.file_name());
            if e.file_type().expect("file type").is_dir() {
                stack.push(name.clone());
            }
            out.push(name.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Checks one file (under `root`, the merged tree or the upper) against what may be there:
/// the original, or the complete result of `op`, which must be there if `done`.
fn check_file(what: &str, root: &Path, i: usize, op: Op, done: bool, e: &Expect, seed: u64) {
    let path = root.join(FILES[i].0);
    let got =
        hash_file(&path).unwrap_or_else(|err| panic!("{what}: read {}: {err}", path.display()));
    let new = e.new_content(op);
    if done {
        assert_eq!(
            got, new,
            "{what}: {} ({op:?} completed before the kill) is not the new content \
             (size {} vs {}; seed {seed:#x})",
            FILES[i].0, got.1, new.1
        );
    } else {
        assert!(
            got == e.original || got == new,
            "{what}: {} is torn: size {}, neither the original ({}) nor the {op:?} result ({}); \
             seed {seed:#x}",
            FILES[i].0,
            got.1,
            e.original.1,
            new.1
        );
    }
}

#[test]
fn copy_up_survives_sigkill() {
    if !root_or_skip() {
        return;
    }
    let seed = std::env::var("UNIONMOUNT_CRASH_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x5eed_c0de);
    let mut rng = Rng(seed);
    let s = setup();
    let started = Instant::now();

    // One round without a kill: how long the copy-ups take here, so that kills land inside.
    let um = mount(&s);
    let all: Vec<(usize, Op)> = (0..FILES.len()).map(|i| (i, Op::Append)).collect();
    let t = Instant::now();
    let done = Mutex::new(vec![false; FILES.len()]);
    round(um.path(), &all, &done);
    let mut span = t.elapsed().max(Duration::from_millis(20));
    um.unmount_and_wait();
    for i in 0..FILES.len() {
        check_file(
            "calibration",
            &s.upper,
            i,
            Op::Append,
            true,
            &s.expect[i],
            seed,
        );
    }

    let (mut interrupted, mut leftovers) = (0, 0);
    for iteration in 0..ITERATIONS {
        // Start from the lowers again: an empty upper and work directory.
        for dir in [&s.upper, &s.work] {
            fs::remove_dir_all(dir).expect("clear");
            fs::create_dir(dir).expect("mkdir");
        }
        let mut order: Vec<(usize, Op)> = (0..FILES.len())
            .map(|i| {
                let op = if rng.below(2) == 0 {
                    Op::Append
                } else {
                    Op::Truncate
                };
                (i, op)
            })
            .collect();
        for k in (1..order.len()).rev() {
            order.swap(k, rng.below(k as u64 + 1) as usize);
        }
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64));

        let um = mount(&s);
        let done = Arc::new(Mutex::new(vec![false; FILES.len()]));
        let worker = {
            let (mnt, order, done) = (um.path().to_path_buf(), order.clone(), done.clone());
            thread::spawn(move || {
                let t = Instant::now();
                round(&mnt, &order, &done);
                t.elapsed()
            })
        };
        thread::sleep(delay);
        um.signal(libc::SIGKILL);
        let status = um.wait_exit();
        assert!(!status.success(), "the daemon survived SIGKILL: {status}");
        let took = worker.join().expect("worker thread");
        let done = done.lock().expect("lock").clone();
        if done.iter().any(|d| !d) {
            interrupted += 1;
        } else {
            // Rounds vary with the page cache: follow what they take now.
            span = (span + took) / 2;
        }

        // The upper itself, before any mount cleans it: only known names, no torn file.
        let what = format!("iteration {iteration}, upper after kill at {delay:?}");
        let mut allowed: Vec<String> = DIRS.iter().map(|d| d.to_string()).collect();
        allowed.extend(FILES.iter().map(|(p, _)| p.to_string()));
        for name in tree(&s.upper) {
            assert!(
                allowed.contains(&name),
                "{what}: unexpected {name:?} in the upper (seed {seed:#x})"
            );
        }
        for &(i, op) in &order {
            if s.upper.join(FILES[i].0).exists() {
                check_file(&what, &s.upper, i, op, done[i], &s.expect[i], seed);
            } else {
                assert!(!done[i], "{what}: {} done but not in the upper", FILES[i].0);
            }
        }
        let staged = s.work.join("work");
        if staged.is_dir()
            && fs::read_dir(&staged)
                .expect("readdir work")
                .next()
                .is_some()
        {
            leftovers += 1;
        }

        // Remounted: the merged tree agrees, and the staging area was cleaned.
        let um = mount(&s);
        let what = format!("iteration {iteration}, remounted after kill at {delay:?}");
        let names = fs::read_dir(&staged).expect("readdir work/work").count();
        assert_eq!(names, 0, "{what}: work/work not cleaned at mount");
        for &(i, op) in &order {
            check_file(&what, um.path(), i, op, done[i], &s.expect[i], seed);
        }
        um.unmount_and_wait();
    }
    eprintln!(
        "crash test: seed {seed:#x}, {ITERATIONS} kills within one round of copy-ups \
         (about {span:?}) of the mount; {interrupted} interrupted a round, {leftovers} left \
         staged objects in work/work; {:?} in all",
        started.elapsed()
    );
    assert!(
        interrupted > 0,
        "no kill landed inside a round of copy-ups (seed {seed:#x})"
    );
}
