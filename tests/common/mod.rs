//! Shared test harness: mount guards (unionmount and kernel overlayfs), layer descriptions
//! written as directories or tars, and tree snapshots compared with a readable diff.
//!
//! Each integration test binary includes this module and uses only part of it.
#![allow(dead_code)]

pub mod image;
pub mod layers;
pub mod mount;
pub mod proxy;
pub mod registry;
pub mod rng;
pub mod snapshot;

#[allow(unused_imports)]
pub use image::*;
#[allow(unused_imports)]
pub use layers::*;
#[allow(unused_imports)]
pub use mount::*;
#[allow(unused_imports)]
pub use rng::Rng;
#[allow(unused_imports)]
pub use snapshot::*;

use std::path::{Path, PathBuf};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that mount need root (mount(2) for overlayfs, and FUSE without fusermount3). Call at
/// the top of such a test: `if !root_or_skip() { return; }`. Without root the test is skipped
/// with a message on stderr, except under CI (`CI` set), where a skip would hide failures and
/// the test fails instead. As root it always runs.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs root and CI is set: run the suite as root (see .ci/run)"
    );
    eprintln!("SKIPPED: this test needs root (mount(2), FUSE without fusermount3)");
    false
}

/// Panics unless running as root (for the guards, which cannot work otherwise).
pub fn require_root() {
    assert!(
        is_root(),
        "mounting needs root; guard the test with root_or_skip()"
    );
}

/// Panics clearly if FUSE is not usable here.
pub fn require_fuse() {
    require_root();
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: load the fuse module (and chmod 0666 /dev/fuse)"
    );
}

/// A fresh temporary directory with a mount point directory `name` inside it.
pub fn mountpoint(tmp: &Path, name: &str) -> PathBuf {
    let p = tmp.join(name);
    std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    p
}

/// The errno of an io::Error, with a message naming the operation if there is none.
pub fn errno_of<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), expected an error"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: non-OS error {e}")),
    }
}

/// What a finished `unionmount` invocation left: exit status, stdout and stderr.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `unionmount ARGS` to completion with stdin closed and stdout/stderr going to files (so
/// a daemon that keeps them open cannot block us), waiting at most `timeout`. If it is still
/// running then, it is killed and the test fails; any FUSE mount it left on `mnt` is removed.
pub fn run_unionmount<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    mnt: Option<&Path>,
    timeout: std::time::Duration,
) -> Finished {
    let dir = tempfile::tempdir().expect("tempdir for output capture");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = std::process::Command::new(unionmount_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"))
        .spawn()
        .expect("spawn unionmount");
    let (status, killed) = wait_or_kill(&mut child, timeout);
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if killed {
        if let Some(m) = mnt {
            let _ = umount2(m, libc::MNT_DETACH);
        }
        let argv: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        panic!("unionmount {argv:?} still running after {timeout:?}; killed. stderr:\n{stderr}");
    }
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Pids of processes other than us whose command line contains `arg` as one argument and whose
/// first argument names the unionmount binary: the daemon serving a given mount point.
pub fn daemon_pids_with_arg(arg: &Path) -> Vec<u32> {
    use std::os::unix::ffi::OsStrExt;
    let want = arg.as_os_str().as_bytes();
    let me = std::process::id();
    let mut pids = Vec::new();
    for ent in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !process_alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_ours = args.first().is_some_and(|a0| a0.ends_with(b"unionmount"));
        if is_ours && args.contains(&want) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` exists and has not exited (a zombie has exited).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain spaces.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for `pid` to exit.
pub fn wait_pid_gone(pid: u32, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    !process_alive(pid)
}

/// Names listed by std::fs::read_dir (no `.` and `..`), in listing order.
pub fn names_of(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect()
}

/// Panics naming the first duplicates if `names` has any.
pub fn assert_no_duplicates(what: &str, names: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    let dups: Vec<&String> = names.iter().filter(|n| !seen.insert(n.as_str())).collect();
    assert!(
        dups.is_empty(),
        "{what}: {} duplicate names, first: {:?}",
        dups.len(),
        &dups[..dups.len().min(5)]
    );
}

/// Names returned by opendir/readdir(3), including `.` and `..`.
pub fn raw_readdir(dir: &Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    assert!(
        !d.is_null(),
        "opendir {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
    let mut out = Vec::new();
    loop {
        // SAFETY: `d` is an open DIR* that we close only after the loop.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        out.push(name.to_string_lossy().into_owned());
    }
    // SAFETY: `d` came from opendir and is closed once.
    unsafe { libc::closedir(d) };
    out
}

/// A copy of the program `exe` in `dir` that any user may run, for tests that run programs
/// as another user: the build directory may be where only root can reach (a checkout under
/// /root). `dir` must be searchable by that user. Copied by `cp` in a process of its own, so
/// no other thread's child can inherit a write descriptor of the copy and make running it
/// fail with ETXTBSY.
pub fn runnable_by_anyone(exe: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join(exe.file_name().expect("a program file name"));
    let status = std::process::Command::new("cp")
        .arg(exe)
        .arg(&copy)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp {} {}", exe.display(), copy.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}
