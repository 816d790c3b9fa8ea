//! A writable mount made and used by an ordinary user (uid 65534 through `setpriv`, mounting
//! with fusermount3): the changes land in the upper in the form an unprivileged overlayfs
//! writes (char 0/0 whiteouts, which need no privilege; `user.overlay.opaque` where
//! `trusted.` is refused; copied-up files owned by the user), and kernel overlayfs mounted
//! with `userxattr` over that upper shows the same tree as kernel overlayfs that made the
//! same changes itself as root (the oracle), but for the owners of what was copied up.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const NOBODY: u32 = 65534;

/// The changes, as a shell script run in the merged directory.
const SCRIPT: &str = "set -e
echo new > new
echo changed >> etc/motd
rm etc/gone
rm -r d
mkdir d
echo z > d/z
mv keep moved
";

fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run setpriv")
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).expect("chown");
}

#[test]
fn an_ordinary_user_writes_an_upper_the_kernel_reads_with_userxattr() {
    if !root_or_skip() {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("setpriv missing: skipped");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let lower = write_stack(
        tmp.path(),
        Form::OverlayDir,
        // Root's files, which the user may change (the kernel checks permissions as usual).
        &[vec![
            root().mode(0o777),
            dir_("etc").mode(0o777),
            dir_("d").mode(0o777),
            dir_("keep").mode(0o777),
            file("etc/motd", "motd\n").mode(0o666),
            file("etc/gone", "gone\n"),
            file("d/x", "x\n"),
            file("d/y", "y\n"),
            file("keep/a", "a\n").mode(0o644),
        ]],
    );
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).expect("mkdir");
        p
    };
    let (upper, work, mnt) = (dir("upper"), dir("work"), dir("mnt"));
    for p in [&upper, &work, &mnt] {
        chown_nobody(p);
    }

    let bin = unionmount_bin();
    let (l, u, w, m) = (
        lower[0].to_str().expect("utf-8"),
        upper.to_str().expect("utf-8"),
        work.to_str().expect("utf-8"),
        mnt.to_str().expect("utf-8"),
    );
    let out = as_nobody(&[bin, "mount", "--layer", l, "--upper", u, "--work", w, m]);
    assert!(out.status.success(), "mount as nobody: {out:?}");
    let changed = as_nobody(&["sh", "-c", &format!("cd {m} && {SCRIPT}")]);
    let unmounted = as_nobody(&[bin, "umount", m]);
    assert!(changed.status.success(), "changes as nobody: {changed:?}");
    assert!(
        unmounted.status.success(),
        "umount as nobody: {unmounted:?}"
    );
    assert!(!is_fuse_mount(&mnt), "still mounted");

    // The upper, in the unprivileged form.
    let kind = |rel: &str| {
        fs::symlink_metadata(upper.join(rel))
            .expect(rel)
            .file_type()
    };
    assert!(kind("etc/gone").is_char_device(), "whiteout");
    assert!(kind("keep").is_char_device(), "whiteout of the moved dir");
    for opaque in ["d", "moved"] {
        let x = xattrs_of(&upper.join(opaque));
        assert_eq!(
            x.get("user.overlay.opaque").map(Vec::as_slice),
            Some(&b"y"[..]),
            "{opaque}: {x:?}"
        );
        assert!(!x.contains_key("trusted.overlay.opaque"), "{opaque}: {x:?}");
    }
    use std::os::unix::fs::MetadataExt;
    let motd = fs::metadata(upper.join("etc/motd")).expect("copied up");
    assert_eq!(
        (motd.uid(), motd.gid()),
        (NOBODY, NOBODY),
        "kept by the user"
    );

    // The oracle: kernel overlayfs making the same changes as root.
    let (ku, kw) = (tmp.path().join("ku"), tmp.path().join("kw"));
    fs::create_dir(&ku).expect("mkdir");
    fs::create_dir(&kw).expect("mkdir");
    let kernel = KernelOverlay::with_upper(&lower, &ku, &kw, &mountpoint(tmp.path(), "kmnt"));
    let script = SCRIPT.replace("mv keep moved", "cp -a keep moved && rm -r keep");
    let status = Command::new("sh")
        .args(["-c", &script])
        .current_dir(kernel.path())
        .status()
        .expect("sh");
    assert!(status.success());
    let want = snapshot(kernel.path());
    drop(kernel);

    // Kernel overlayfs reads our upper in its userxattr form.
    let seen = overlay_userxattr(&lower, &upper, &dir("w2"), &mountpoint(tmp.path(), "ux"));
    let got = snapshot(&seen);
    let _ = umount2(&seen, libc::MNT_DETACH);
    // Owners and times of what the user made or copied up differ from root's, by design.
    let changed: BTreeSet<String> = ["", "new", "etc", "etc/motd", "d", "d/z", "moved", "moved/a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ex = Exclusions {
        ignore_attrs: changed,
        ..Exclusions::default()
    };
    assert_same_tree(
        "nobody's upper read by the kernel with userxattr",
        &want,
        &got,
        &ex,
    );
}

/// `mount -t overlay -o lowerdir=L,upperdir=U,workdir=W,userxattr MNT`.
fn overlay_userxattr(
    lower: &[std::path::PathBuf],
    upper: &Path,
    work: &Path,
    mnt: &Path,
) -> std::path::PathBuf {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lowerdir_value(lower),
        upper.display(),
        work.display()
    );
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(mnt)
        .output()
        .expect("mount");
    assert!(out.status.success(), "mount {opts}: {out:?}");
    mnt.to_path_buf()
}
