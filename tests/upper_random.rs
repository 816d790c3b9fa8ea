//! Random operation sequences on the writable upper, differentially: proptest draws a sequence
//! of operations over a small fixed name space (so they collide: over whiteouts, over opaque
//! directories, deleting and recreating), and the same sequence runs in lockstep on kernel
//! overlayfs (the oracle) and on unionmount, each over the same lower layers with a fresh
//! upper. Then: the result of every operation (success, or which errno) must agree, the merged
//! trees must agree, and each engine's upper, mounted afterwards by kernel overlayfs, must show
//! exactly the tree that engine showed (interchangeability).
//!
//! Accepted differences:
//! - Directory renames the kernel refuses with `EXDEV` (a directory with lower content, when
//!   overlayfs runs without `redirect_dir`) and unionmount carries out by copying the tree up.
//!   For such a step the kernel side is done as on a plain filesystem instead: `cp -al` of
//!   the merged tree to the new name (directories copied, all else hard-linked, so objects
//!   keep their identity and outside hard links) and `rm -rf` of the old one (an exchange goes through a
//!   temporary name), after an `rmdir` of a target directory, whose `ENOTEMPTY` is then the
//!   expected result.
//! - Modification times that the sequence itself set: a path whose mtime is from this run on
//!   both sides is not compared (the two mounts run at different moments); one that is old on
//!   either side must match exactly (copy-up keeps times).
//!
//! Cases: `PROPTEST_CASES` (default 48) sequences of up to 24 operations, from a fixed seed
//! unless `PROPTEST_RNG_SEED` is set, so a run is repeatable. Failing sequences are kept in
//! `tests/upper_random.proptest-regressions` and replayed first.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every path an operation may name. The lowers give each a different starting state.
const PATHS: &[&str] = &[
    "x", "y", "a", "b", "c", "a/x", "a/y", "a/d", "a/d/x", "b/x", "b/y", "b/d", "b/d/x", "c/x",
];
const TARGETS: &[&str] = &["x", "a/x", "../x", "nowhere"];
const DATA: &[&str] = &["", "1\n", "hello world\n"];
const XATTR: &str = "user.t";

/// Two lower layers, bottom first:
/// - `a` is merged from both, `a/d` is empty in the merged view (its only file whited out);
/// - `b` is opaque in the top layer (hiding `b/x`, `b/d` below);
/// - `c` is whited out in the top layer; `y` is a symlink to `a/x`.
fn lowers() -> Vec<Vec<Entry>> {
    vec![
        vec![
            root().mtime(1_600_000_000, 0),
            file("x", "x0\n"),
            symlink("y", "a/x"),
            file("a/x", "ax0\n").xattr(XATTR, "lower"),
            file("a/d/x", "adx0\n"),
            file("b/x", "bx0\n"),
            file("b/d/x", "bdx0\n"),
            file("c/x", "cx0\n"),
        ],
        vec![
            file("a/y", "ay1\n").mode(0o600),
            whiteout("a/d/x"),
            opaque("b"),
            file("b/y", "by1\n").mode(0o640).xattr(XATTR, "top"),
            whiteout("c"),
        ],
    ]
}

#[derive(Clone, Copy, Debug)]
enum WriteHow {
    /// `O_CREAT | O_TRUNC`, like `echo > path`.
    Create,
    /// `O_CREAT | O_EXCL`.
    CreateNew,
    /// `O_APPEND` of an existing file.
    Append,
    /// A write at offset 0 of an existing file, without truncating it.
    Overwrite,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Write(WriteHow, &'static str, &'static str),
    Truncate(&'static str, u64),
    Mkdir(&'static str),
    Unlink(&'static str),
    Rmdir(&'static str),
    /// From, to, `renameat2` flags.
    Rename(&'static str, &'static str, u32),
    Chmod(&'static str, u32),
    /// Target, path.
    Symlink(&'static str, &'static str),
    /// Existing path, new path.
    Link(&'static str, &'static str),
    SetXattr(&'static str, &'static str),
    RemoveXattr(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let path = || prop::sample::select(PATHS);
    let how = prop_oneof![
        Just(WriteHow::Create),
        Just(WriteHow::CreateNew),
        Just(WriteHow::Append),
        Just(WriteHow::Overwrite),
    ];
    let flags = prop_oneof![
        3 => Just(0),
        1 => Just(libc::RENAME_NOREPLACE),
        1 => Just(libc::RENAME_EXCHANGE),
    ];
    prop_oneof![
        4 => (how, path(), prop::sample::select(DATA)).prop_map(|(h, p, d)| Op::Write(h, p, d)),
        1 => (path(), prop::sample::select(&[0u64, 1, 5][..])).prop_map(|(p, l)| Op::Truncate(p, l)),
        3 => path().prop_map(Op::Mkdir),
        2 => path().prop_map(Op::Unlink),
        2 => path().prop_map(Op::Rmdir),
        4 => (path(), path(), flags).prop_map(|(f, t, fl)| Op::Rename(f, t, fl)),
        1 => (path(), prop::sample::select(&[0o600u32, 0o755][..]))
            .prop_map(|(p, m)| Op::Chmod(p, m)),
        1 => (prop::sample::select(TARGETS), path()).prop_map(|(t, p)| Op::Symlink(t, p)),
        1 => (path(), path()).prop_map(|(f, t)| Op::Link(f, t)),
        1 => (path(), prop::sample::select(&["1", "two"][..]))
            .prop_map(|(p, v)| Op::SetXattr(p, v)),
        1 => path().prop_map(Op::RemoveXattr),
    ]
}

/// Success, or the errno.
type Outcome = Result<(), i32>;

fn errno(r: std::io::Result<()>) -> Outcome {
    r.map_err(|e| {
        e.raw_os_error()
            .unwrap_or_else(|| panic!("non-OS error {e}"))
    })
}

fn rc(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn cpath(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// Applies `op` to the tree at `root`.
fn apply(root: &Path, op: Op) -> Outcome {
    let p = |rel: &str| root.join(rel);
    let xname = std::ffi::CString::new(XATTR).expect("no NUL");
    errno(match op {
        Op::Write(how, path, data) => {
            let mut o = fs::OpenOptions::new();
            match how {
                WriteHow::Create => o.write(true).create(true).truncate(true),
                WriteHow::CreateNew => o.write(true).create_new(true),
                WriteHow::Append => o.append(true),
                WriteHow::Overwrite => o.write(true),
            };
            o.open(p(path)).and_then(|mut f| match how {
                WriteHow::Overwrite => f.write_all_at(data.as_bytes(), 0),
                _ => f.write_all(data.as_bytes()),
            })
        }
        Op::Truncate(path, len) => fs::OpenOptions::new()
            .write(true)
            .open(p(path))
            .and_then(|f| f.set_len(len)),
        Op::Mkdir(path) => fs::create_dir(p(path)),
        Op::Unlink(path) => fs::remove_file(p(path)),
        Op::Rmdir(path) => fs::remove_dir(p(path)),
        Op::Rename(from, to, flags) => {
            let (a, b) = (cpath(&p(from)), cpath(&p(to)));
            // SAFETY: valid NUL-terminated paths; AT_FDCWD for both directories.
            rc(unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    flags,
                )
            })
        }
        Op::Chmod(path, mode) => fs::set_permissions(p(path), fs::Permissions::from_mode(mode)),
        Op::Symlink(target, path) => std::os::unix::fs::symlink(target, p(path)),
        Op::Link(from, to) => fs::hard_link(p(from), p(to)),
        Op::SetXattr(path, value) => {
            let c = cpath(&p(path));
            // SAFETY: valid NUL-terminated strings and a buffer of the given length.
            rc(unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    xname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            })
        }
        Op::RemoveXattr(path) => {
            let c = cpath(&p(path));
            // SAFETY: valid NUL-terminated strings.
            rc(unsafe { libc::lremovexattr(c.as_ptr(), xname.as_ptr()) })
        }
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// `cp -a --link`: directories copied with their attributes, everything else hard-linked, so
/// each object keeps its identity (and its hard links outside the tree) as in a real rename.
fn cp_al(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-al").arg(from).arg(to));
}

fn rm_rf(p: &Path) {
    run(Command::new("rm").arg("-rf").arg(p));
}

/// A directory rename the kernel refused with `EXDEV`, done on the kernel's merged tree as on
/// a plain filesystem (see the module comment). The VFS has already checked everything but
/// the emptiness of a target directory.
fn rename_by_copy(root: &Path, from: &str, to: &str, flags: u32) -> Outcome {
    let (f, t) = (root.join(from), root.join(to));
    if flags & libc::RENAME_EXCHANGE != 0 {
        let tmp = root.join(".exchange");
        cp_al(&f, &tmp);
        rm_rf(&f);
        cp_al(&t, &f);
        rm_rf(&t);
        cp_al(&tmp, &t);
        rm_rf(&tmp);
        return Ok(());
    }
    if fs::symlink_metadata(&t).is_ok_and(|m| m.is_dir()) {
        errno(fs::remove_dir(&t))?;
    }
    cp_al(&f, &t);
    rm_rf(&f);
    Ok(())
}

/// Paths whose mtime both snapshots show as set during this run (at or after `since`).
fn fresh_mtimes(a: &Snapshot, b: &Snapshot, since: i64) -> Exclusions {
    let ignore_mtime: BTreeSet<String> = a
        .nodes
        .iter()
        .filter(|(p, n)| n.mtime.0 >= since && b.nodes.get(*p).is_some_and(|m| m.mtime.0 >= since))
        .map(|(p, _)| p.clone())
        .collect();
    Exclusions {
        ignore_mtime,
        ..Exclusions::default()
    }
}

fn upper_work(tmp: &Path, who: &str) -> (PathBuf, PathBuf) {
    let (u, w) = (
        tmp.join(format!("{who}-upper")),
        tmp.join(format!("{who}-work")),
    );
    fs::create_dir(&u).expect("mkdir upper");
    fs::create_dir(&w).expect("mkdir work");
    (u, w)
}

/// One case: `ops` in lockstep on both engines, then the comparisons.
fn check_sequence(lower: &[PathBuf], ops: &[Op]) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
        - 1;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ku, kw) = upper_work(tmp.path(), "kernel");
    let (uu, uw) = upper_work(tmp.path(), "union");
    let kernel = KernelOverlay::with_upper(lower, &ku, &kw, &mountpoint(tmp.path(), "kmnt"));
    let um = UnionMount::with_upper(lower, &uu, &uw, &mountpoint(tmp.path(), "umnt"));

    let mut log = String::new();
    let mut mismatch = false;
    for (i, &op) in ops.iter().enumerate() {
        let mut expected = apply(kernel.path(), op);
        let mut note = "";
        if let (Op::Rename(from, to, flags), Err(libc::EXDEV)) = (op, expected) {
            expected = rename_by_copy(kernel.path(), from, to, flags);
            note = " (kernel: EXDEV, done by copy)";
        }
        let ours = apply(um.path(), op);
        let bad = expected != ours;
        mismatch |= bad;
        log.push_str(&format!(
            "  {i:2}: {op:?} -> kernel {expected:?}, unionmount {ours:?}{note}{}\n",
            if bad { "  <-- differs" } else { "" }
        ));
    }
    assert!(!mismatch, "operation results differ:\n{log}");

    let expected = snapshot(kernel.path());
    let actual = snapshot(um.path());
    assert_same_tree(
        &format!("merged tree after\n{log}"),
        &expected,
        &actual,
        &fresh_mtimes(&expected, &actual, since),
    );
    drop(kernel);
    um.unmount_and_wait();
    assert!(
        names_of(&uw.join("work")).is_empty(),
        "unionmount's work dir not empty\n{log}"
    );

    for (who, upper, work, written) in [
        ("kernel", &ku, &kw, &expected),
        ("unionmount", &uu, &uw, &actual),
    ] {
        let again = KernelOverlay::with_upper(
            lower,
            upper,
            work,
            &mountpoint(tmp.path(), &format!("{who}-read")),
        );
        assert_same_tree(
            &format!("{who}'s upper mounted by the kernel, after\n{log}"),
            written,
            &snapshot(again.path()),
            &Exclusions::default(),
        );
    }
}

#[test]
fn random_operation_sequences_match_kernel_overlayfs() {
    if !root_or_skip() {
        return;
    }
    let base = Config::default();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .map_or(32, |_| base.cases);
    let rng_seed = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => base.rng_seed,
        None => RngSeed::Fixed(0x756e_696f_6e6d_6e74),
    };
    let config = Config {
        cases,
        rng_seed,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        // Each case mounts four times: bound the shrinking.
        max_shrink_time: 180_000,
        ..base
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = write_stack(tmp.path(), Form::OverlayDir, &lowers());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..24), |ops| {
        check_sequence(&lower, &ops);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
