//! Bad input on the command line: every case exits non-zero with exactly one line on stderr
//! that names the offending path or option, and mounts nothing.

mod common;

use common::*;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `unionmount ARGS` (no -f, so a wrongly accepted mount does not block the test), and
/// checks the failure: exit status != 0, one line on stderr containing `names`, and no mount
/// left on `mnt`.
fn assert_fails(args: &[OsString], mnt: &Path, names: &str) {
    let was_mounted = mount_type(mnt).is_some();
    let out = run_unionmount(args, Some(mnt), TIMEOUT);
    let mounted_now = mount_type(mnt).is_some() && !was_mounted || is_fuse_mount(mnt);
    if mounted_now {
        let _ = umount2(mnt, libc::MNT_DETACH);
    }
    let stderr = out.stderr.trim_end();
    let mut problems = Vec::new();
    if out.status.success() {
        problems.push(format!("exited successfully ({})", out.status));
    }
    if mounted_now {
        problems.push(format!("left a FUSE mount on {}", mnt.display()));
    }
    if stderr.lines().count() != 1 {
        problems.push(format!(
            "stderr has {} lines, want 1",
            stderr.lines().count()
        ));
    }
    if !stderr.contains(names) {
        problems.push(format!("stderr does not name {names:?}"));
    }
    assert!(
        problems.is_empty(),
        "unionmount {args:?}:\n  {}\nstderr:\n{stderr}\nstdout:\n{}",
        problems.join("\n  "),
        out.stdout
    );
}

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_owned()).collect()
}

/// A valid one-layer tar and a mount point in a fresh temp dir.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layer = write_layer(&tmp.path().join("ok.tar"), Form::Tar, &[file("f", "f\n")]);
    let mnt = mountpoint(tmp.path(), "mnt");
    (tmp, layer, mnt)
}

#[test]
fn missing_layer_path_is_named() {
    let (tmp, _, mnt) = setup();
    let missing = tmp.path().join("does-not-exist");
    assert_fails(
        &args(&[&"mount", &"--layer", &missing, &mnt]),
        &mnt,
        missing.to_str().expect("utf-8"),
    );
}

#[test]
fn missing_layer_among_good_ones_is_named() {
    let (tmp, layer, mnt) = setup();
    let missing = tmp.path().join("missing-top.tar");
    assert_fails(
        &args(&[&"mount", &"--layer", &layer, &"--layer", &missing, &mnt]),
        &mnt,
        missing.to_str().expect("utf-8"),
    );
}

#[test]
fn file_that_is_not_a_tar_is_named() {
    let (tmp, _, mnt) = setup();
    let bogus = tmp.path().join("notatar.tar");
    std::fs::write(
        &bogus,
        "this is a text file, not a tar archive\n".repeat(40),
    )
    .expect("write");
    assert_fails(
        &args(&[&"mount", &"--layer", &bogus, &mnt]),
        &mnt,
        bogus.to_str().expect("utf-8"),
    );
}

#[test]
fn truncated_tar_is_named() {
    let (tmp, _, mnt) = setup();
    let big = write_layer(
        &tmp.path().join("big.tar"),
        Form::Tar,
        &[file("big", pseudo_random(10_000, 3))],
    );
    let bytes = std::fs::read(&big).expect("read tar");
    // Cut inside the data of the entry: its header promises more bytes than exist.
    let truncated = tmp.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..3000]).expect("write");
    assert_fails(
        &args(&[&"mount", &"--layer", &truncated, &mnt]),
        &mnt,
        truncated.to_str().expect("utf-8"),
    );
}

#[test]
fn missing_mountpoint_is_named() {
    let (tmp, layer, _) = setup();
    let mnt = tmp.path().join("no-such-mountpoint");
    assert_fails(
        &args(&[&"mount", &"--layer", &layer, &mnt]),
        &mnt,
        mnt.to_str().expect("utf-8"),
    );
}

#[test]
fn mountpoint_that_is_a_file_is_named() {
    let (tmp, layer, _) = setup();
    let mnt = tmp.path().join("a-file");
    std::fs::write(&mnt, "x").expect("write");
    assert_fails(
        &args(&[&"mount", &"--layer", &layer, &mnt]),
        &mnt,
        mnt.to_str().expect("utf-8"),
    );
}

#[test]
fn mountpoint_already_mounted_is_named() {
    if !root_or_skip() {
        return;
    }
    let (_tmp, layer, mnt) = setup();
    let _busy = SysMount::tmpfs(&mnt);
    assert_fails(
        &args(&[&"mount", &"--layer", &layer, &mnt]),
        &mnt,
        mnt.to_str().expect("utf-8"),
    );
}

#[test]
fn lowerdir_with_missing_dir_is_named() {
    let (tmp, layer, mnt) = setup();
    let missing = tmp.path().join("missing-lower");
    let opt = format!("lowerdir={}:{}", missing.display(), layer.display());
    assert_fails(
        &args(&[&"-o", &opt, &mnt]),
        &mnt,
        missing.to_str().expect("utf-8"),
    );
}

#[test]
fn unknown_mount_option_is_rejected_by_name() {
    let (_tmp, layer, mnt) = setup();
    let opt = format!("lowerdir={},frobnicate=1", layer.display());
    assert_fails(&args(&[&"-o", &opt, &mnt]), &mnt, "frobnicate");
}

/// No layer at all is a usage error (clap's multi-line usage text is acceptable here).
#[test]
fn mount_without_layers_fails() {
    let (_tmp, _, mnt) = setup();
    let out = run_unionmount(&args(&[&"mount", &mnt]), Some(&mnt), TIMEOUT);
    let mounted = is_fuse_mount(&mnt);
    if mounted {
        let _ = umount2(&mnt, libc::MNT_DETACH);
    }
    assert!(
        !out.status.success() && !mounted,
        "mount without layers: {out:?}"
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "mount without layers: nothing on stderr"
    );
}

#[test]
fn umount_of_something_not_mounted_fails() {
    let (_tmp, _, mnt) = setup();
    let out = run_unionmount(&args(&[&"umount", &mnt]), None, TIMEOUT);
    assert!(
        !out.status.success(),
        "umount of a plain directory succeeded: {out:?}"
    );
    let stderr = out.stderr.trim_end();
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr should be one line:\n{stderr}"
    );
    assert!(
        stderr.contains(mnt.to_str().expect("utf-8")),
        "stderr should name the mountpoint:\n{stderr}"
    );
}
