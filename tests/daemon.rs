//! The mount lifecycle: background mode returns once the tree is visible and the daemon exits
//! after `unionmount umount`; foreground mode unmounts cleanly on SIGTERM/SIGINT and exits once
//! unmounted from outside.

mod common;

use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);
const EXIT: Duration = Duration::from_secs(5);

fn two_layers(tmp: &Path) -> Vec<PathBuf> {
    // Directory layers: the lifecycle does not depend on the tar reader.
    write_stack(
        tmp,
        Form::OverlayDir,
        &[
            vec![
                file("etc/os-release", "ID=base\n"),
                file("etc/motd", "base\n"),
            ],
            vec![file("etc/os-release", "ID=top\n"), whiteout("etc/motd")],
        ],
    )
}

/// Removes a background mount and kills its daemon if a test fails half way.
struct Cleanup<'a> {
    mnt: &'a Path,
    pids: Vec<u32>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = umount2(self.mnt, libc::MNT_DETACH);
        for &pid in &self.pids {
            if !wait_pid_gone(pid, EXIT) {
                // SAFETY: kill(2) on a pid found serving our unique mount point.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

/// The tree must be visible the moment the command returns: no polling here.
fn assert_tree_visible(mnt: &Path) {
    assert!(
        is_fuse_mount(mnt),
        "{} is not a FUSE mount when the command returned",
        mnt.display()
    );
    let os = std::fs::read_to_string(mnt.join("etc/os-release")).expect("read etc/os-release");
    assert_eq!(os, "ID=top\n");
    assert!(!mnt.join("etc/motd").exists(), "etc/motd is whited out");
}

fn one_daemon(mnt: &Path) -> u32 {
    let pids = daemon_pids_with_arg(mnt);
    assert_eq!(
        pids.len(),
        1,
        "expected one daemon process serving {}, found {pids:?}",
        mnt.display()
    );
    pids[0]
}

#[test]
fn background_mount_then_umount_subcommand() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let mnt = mountpoint(tmp.path(), "mnt")
        .canonicalize()
        .expect("canonical mnt");
    let mut cleanup = Cleanup {
        mnt: &mnt,
        pids: vec![],
    };
    let mut argv: Vec<std::ffi::OsString> = vec!["mount".into()];
    for l in &layers {
        argv.push("--layer".into());
        argv.push(l.into());
    }
    argv.push(mnt.clone().into());
    let out = run_unionmount(&argv, Some(&mnt), TIMEOUT);
    let pid = daemon_pids_with_arg(&mnt);
    cleanup.pids = pid.clone();
    assert!(out.status.success(), "unionmount mount failed: {out:?}");
    assert_tree_visible(&mnt);
    let pid = one_daemon(&mnt);

    let out = run_unionmount(
        &["umount".into(), mnt.clone().into_os_string()],
        None,
        TIMEOUT,
    );
    assert!(out.status.success(), "unionmount umount failed: {out:?}");
    assert!(
        mount_type(&mnt).is_none(),
        "{} still mounted after unionmount umount",
        mnt.display()
    );
    assert!(
        wait_pid_gone(pid, EXIT),
        "daemon {pid} still running {EXIT:?} after unionmount umount"
    );
}

/// The fuse-overlayfs spelling in background mode, unmounted with umount(8) as podman's
/// fallback would.
#[test]
fn background_lowerdir_mount_then_system_umount() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let mnt = mountpoint(tmp.path(), "mnt")
        .canonicalize()
        .expect("canonical mnt");
    let mut cleanup = Cleanup {
        mnt: &mnt,
        pids: vec![],
    };
    let opt = format!("lowerdir={}", lowerdir_value(&layers));
    let out = run_unionmount(
        &["-o".into(), opt.into(), mnt.clone().into_os_string()],
        Some(&mnt),
        TIMEOUT,
    );
    cleanup.pids = daemon_pids_with_arg(&mnt);
    assert!(
        out.status.success(),
        "unionmount -o lowerdir= failed: {out:?}"
    );
    assert_tree_visible(&mnt);
    let pid = one_daemon(&mnt);
    let st = std::process::Command::new("umount")
        .arg(&mnt)
        .status()
        .expect("run umount(8)");
    assert!(st.success(), "umount {} failed", mnt.display());
    assert!(
        wait_pid_gone(pid, EXIT),
        "daemon {pid} still running {EXIT:?} after umount(8)"
    );
}

/// `out=$(unionmount mount ...)` must return: the daemon may not keep the caller's stdout or
/// stderr open once the parent has exited.
#[test]
fn background_mount_releases_callers_pipes() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let mnt = mountpoint(tmp.path(), "mnt")
        .canonicalize()
        .expect("canonical mnt");
    let mut cleanup = Cleanup {
        mnt: &mnt,
        pids: vec![],
    };
    let mut child = std::process::Command::new(unionmount_bin())
        .arg("mount")
        .args(
            layers
                .iter()
                .flat_map(|l| [std::ffi::OsStr::new("--layer"), l.as_os_str()]),
        )
        .arg(&mnt)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn unionmount");
    let (status, killed) = wait_or_kill(&mut child, TIMEOUT);
    cleanup.pids = daemon_pids_with_arg(&mnt);
    assert!(!killed && status.success(), "unionmount mount: {status}");
    let mut pipes = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = pipes.0.read_to_end(&mut sink);
        let _ = pipes.1.read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let eof = rx.recv_timeout(EXIT).is_ok();
    let _ = umount2(&mnt, libc::MNT_DETACH);
    assert!(
        eof,
        "the daemon still holds the caller's stdout/stderr after the parent exited"
    );
}

/// `unionmount -f` given `sig`: the mount goes away and the daemon exits 0.
fn foreground_signal_unmounts_cleanly(sig: libc::c_int, name: &str) {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "mnt"));
    assert_tree_visible(um.path());
    let path = um.path().to_path_buf();
    let status = um.stop_with(sig);
    assert!(
        status.success(),
        "unionmount -f exited with {status} on {name}"
    );
    assert!(mount_type(&path).is_none(), "still mounted after {name}");
}

#[test]
fn foreground_sigterm_unmounts_cleanly() {
    foreground_signal_unmounts_cleanly(libc::SIGTERM, "SIGTERM");
}

#[test]
fn foreground_sigint_unmounts_cleanly() {
    foreground_signal_unmounts_cleanly(libc::SIGINT, "SIGINT");
}

/// SIGTERM while a file is open in the mount: the mount leaves the mount table at once (a lazy
/// unmount, like `umount -l`), and the daemon exits 0 at the latest once that file is closed.
/// (Serving the open file until it is closed, or failing it with ENOTCONN as libfuse does, are
/// both accepted; hanging on to the mount point is not.)
#[test]
fn foreground_sigterm_with_open_file() {
    use std::io::Read;
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let mut um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "mnt"));
    let path = um.path().to_path_buf();
    let mut open =
        std::fs::File::open(um.join("etc/os-release")).expect("open a file in the mount");
    um.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + EXIT;
    while mount_type(&path).is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        mount_type(&path).is_none(),
        "{} still in the mount table {EXIT:?} after SIGTERM with a file open",
        path.display()
    );
    if um.running() {
        let mut s = String::new();
        open.read_to_string(&mut s)
            .expect("read the open file while the daemon still serves it");
        assert_eq!(s, "ID=top\n");
    }
    drop(open);
    let status = um.wait_exit();
    assert!(
        status.success(),
        "unionmount -f exited with {status} on SIGTERM with a file open"
    );
}

#[test]
fn foreground_exits_when_unmounted_from_outside() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layers = two_layers(tmp.path());
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "mnt"));
    let status = um.unmount_and_wait();
    assert!(
        status.success(),
        "unionmount -f exited with {status} after umount"
    );
}
