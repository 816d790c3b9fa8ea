//! Shared test harness: mount guards (unionmount and kernel overlayfs), layer descriptions
//! written as directories or tars, and tree snapshots compared with a readable diff.
//!
//! Each integration test binary includes this module and uses only part of it.
#![allow(dead_code)]

pub mod layers;
pub mod mount;
pub mod snapshot;

pub use layers::*;
pub use mount::*;
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
    assert!(is_root(), "mounting needs root; guard the test with root_or_skip()");
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
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("{what}: non-OS error {e}")),
    }
}
