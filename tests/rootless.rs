//! A writable mount made and used by an ordinary user (uid 65534 through `setpriv`, mounting
//! with fusermount3): the changes land in the upper in the form an unprivileged overlayfs
//! writes (char 0/0 whiteouts, which need no privilege; `user.overlay.opaque` where
//! `trusted.` is refused; copied-up files owned by the user), and kernel overlayfs mounted
//! with `userxattr` over that upper shows the same tree as kernel overlayfs that made the
//! same changes itself as root (the oracle), but for the owners of what was copied up.
//!
//! Also as uid 65534: the library mounting in process (this test binary runs itself as
//! that user for the `nobody_*` halves), read-only stacks of directory and tar layers
//! compared with kernel overlayfs, writes with copy-up, whiteouts and opaque directories,
//! and `uidmapping=`/`gidmapping=` inside a user namespace (`unshare -r`).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use unionmount::testing::dir;

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

    let bin = runnable_by_anyone(Path::new(unionmount_bin()), tmp.path());
    let bin = bin.to_str().expect("utf-8");
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

/// Set (to the fixture directory) when this test binary runs itself as uid 65534.
const NOBODY_ENV: &str = "UNIONMOUNT_TEST_AS_NOBODY";

/// Runs the test `name` of this binary as uid 65534, with `NOBODY_ENV` set to `dir`, and
/// fails with its output if it fails.
fn run_self_as_nobody(name: &str, dir: &Path) {
    let exe = runnable_by_anyone(&std::env::current_exe().expect("current_exe"), dir);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(NOBODY_ENV, dir)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run setpriv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} as uid 65534:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

/// The fixture directory when running as nobody, `None` otherwise (the test is then the
/// root half's business, and passes at once).
fn nobody_fixture() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os(NOBODY_ENV)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        NOBODY,
        "{NOBODY_ENV} is for uid 65534"
    );
    Some(dir.into())
}

fn setpriv_or_skip() -> bool {
    if !root_or_skip() {
        return false;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "setpriv missing (util-linux)"
        );
        eprintln!("SKIPPED: setpriv missing");
        return false;
    }
    true
}

/// Root's files, readable by everyone, with what a union has to get right: a whiteout, an
/// opaque directory, symlinks, hard links, a fifo, owners, modes, times and a user xattr.
fn readable_stack() -> Vec<Vec<Entry>> {
    vec![
        vec![
            file("etc/motd", "base\n"),
            file("etc/gone", "gone\n"),
            file("d/x", "x\n").owner(1000, 1000),
            file("d/y", "y\n").mode(0o755),
            file("usr/lib/a", pseudo_random(100_000, 7)).xattr("user.origin", "base"),
            hardlink("usr/lib/b", "usr/lib/a"),
            symlink("lib", "usr/lib"),
            fifo("run/pipe"),
        ],
        vec![
            dir("etc").mode(0o775).mtime(1_650_000_000, 5),
            file("etc/motd", "top\n").mtime(1_700_000_000, 123_456_789),
            whiteout("etc/gone"),
            opaque("d"),
            file("d/z", "z\n"),
            symlink("usr/lib/c", "a"),
        ],
    ]
}

#[test]
fn as_nobody_the_library_mounts_dir_and_tar_layers_like_the_kernel() {
    if !setpriv_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let layers = readable_stack();
    let ovl = write_stack(tmp.path(), Form::OverlayDir, &layers);
    let kernel = KernelOverlay::mount(&ovl, &mountpoint(tmp.path(), "kernel"));
    // Our two forms, in place for the user to mount.
    for (name, form) in [("oci", Form::OciDir), ("tar", Form::Tar)] {
        let layers = write_stack(tmp.path(), form, &layers);
        fs::write(
            tmp.path().join(format!("{name}.list")),
            layers
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect::<String>(),
        )
        .expect("write");
        chown_nobody(&mountpoint(tmp.path(), &format!("mnt-{name}")));
    }
    let _ = kernel.path();
    run_self_as_nobody("nobody_mounts_read_only_stacks", tmp.path());
    drop(kernel);
}

/// The uid 65534 half of the test above: the kernel's view is the oracle for both forms.
#[test]
fn nobody_mounts_read_only_stacks() {
    let Some(dir) = nobody_fixture() else {
        return;
    };
    let want = snapshot(&dir.join("kernel"));
    for (path, there) in [
        ("d/z", true),
        ("usr/lib/b", true),
        ("d/x", false),
        ("etc/gone", false),
    ] {
        assert_eq!(
            want.nodes.contains_key(path),
            there,
            "the kernel's view: {path}"
        );
    }
    for name in ["oci", "tar"] {
        let list = fs::read_to_string(dir.join(format!("{name}.list"))).expect("list");
        let mut stack = unionmount::LayerStack::new();
        for layer in list.lines() {
            stack = stack.layer(layer);
        }
        let mounted = stack.mount(dir.join(format!("mnt-{name}"))).expect("mount");
        let got = snapshot(mounted.path());
        assert_same_tree(name, &want, &got, &Exclusions::default());
        mounted.unmount().expect("unmount");
    }
}

#[test]
fn as_nobody_the_library_writes_copy_ups_whiteouts_and_opaque_dirs() {
    if !setpriv_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    run_self_as_nobody("nobody_writes_through_the_library", tmp.path());
}

/// The uid 65534 half of the test above: described layers written by the user, mounted
/// writable in process, changed, and the upper checked for the unprivileged form.
#[test]
fn nobody_writes_through_the_library() {
    use std::os::unix::fs::MetadataExt;
    if nobody_fixture().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = mountpoint(tmp.path(), "mnt");
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    // A tar says who owns what: the user, so that the user may change it.
    let tar: Vec<Entry> = [
        root(),
        dir("etc"),
        file("etc/motd", "motd\n"),
        file("etc/gone", "gone\n"),
        dir("d"),
        file("d/x", "x\n"),
        dir("keep"),
        file("keep/a", "a\n"),
    ]
    .into_iter()
    .map(|e| e.owner(NOBODY, NOBODY))
    .collect();
    let mounted = unionmount::LayerStack::new()
        .layer_from(&tar, Form::Tar)
        .expect("tar layer")
        .layer_from(&[opaque("d"), file("d/y", "y\n")], Form::OverlayDir)
        .expect("dir layer")
        .writable(&upper, &work)
        .mount(&mnt)
        .expect("mount");
    let m = mounted.path();
    assert_eq!(
        names_of(&m.join("d")),
        ["y"],
        "opaque in a user's dir layer"
    );
    fs::OpenOptions::new()
        .append(true)
        .open(m.join("etc/motd"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more\n"))
        .expect("append: copy-up");
    fs::remove_file(m.join("etc/gone")).expect("rm: whiteout");
    fs::remove_dir_all(m.join("d")).expect("rm -r");
    fs::create_dir(m.join("d")).expect("mkdir over a whiteout: opaque");
    fs::write(m.join("d/new"), "new\n").expect("write");
    fs::rename(m.join("keep"), m.join("moved")).expect("rename a lower dir");
    assert_eq!(
        fs::read_to_string(m.join("etc/motd")).expect("read"),
        "motd\nmore\n"
    );
    assert_eq!(names_of(&m.join("d")), ["new"]);
    assert_eq!(fs::read_to_string(m.join("moved/a")).expect("read"), "a\n");
    assert!(!m.join("etc/gone").exists() && !m.join("keep").exists());
    mounted.unmount().expect("unmount");

    let kind = |rel: &str| {
        fs::symlink_metadata(upper.join(rel))
            .expect(rel)
            .file_type()
    };
    assert!(kind("etc/gone").is_char_device(), "whiteout");
    assert!(kind("keep").is_char_device(), "whiteout of the moved dir");
    let x = xattrs_of(&upper.join("d"));
    assert_eq!(
        x.get("user.overlay.opaque").map(Vec::as_slice),
        Some(&b"y"[..]),
        "{x:?}"
    );
    let motd = fs::metadata(upper.join("etc/motd")).expect("copied up");
    assert_eq!((motd.uid(), motd.gid()), (NOBODY, NOBODY));
    assert_eq!(
        fs::read_to_string(upper.join("etc/motd")).expect("read"),
        "motd\nmore\n"
    );

    // allow_other is the user's only with `user_allow_other` in /etc/fuse.conf; without it
    // the library refuses in one line naming the file, before any mount is tried.
    let conf = fs::read_to_string(unionmount::mount::FUSE_CONF).unwrap_or_default();
    let allowed = conf
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other");
    let result = unionmount::LayerStack::new()
        .layer_from(&[file("f", "f")], Form::Tar)
        .expect("layer")
        .allow_other(true)
        .mount(&mnt);
    match result {
        Ok(mounted) => {
            assert!(allowed, "allow_other without user_allow_other was mounted");
            mounted.unmount().expect("unmount");
        }
        Err(e) => {
            assert!(!allowed, "allow_other refused although allowed: {e}");
            let e = e.to_string();
            assert!(
                e.contains("user_allow_other") && e.contains("/etc/fuse.conf"),
                "{e}"
            );
        }
    }
    assert!(!is_fuse_mount(&mnt));
}

#[test]
fn in_a_user_namespace_uidmapping_and_gidmapping_map_owners() {
    if !setpriv_or_skip() {
        return;
    }
    let probe = as_nobody(&["unshare", "--user", "--map-root-user", "--mount", "true"]);
    if !probe.status.success() {
        // Kernels may forbid unprivileged user namespaces (a sysctl); say so plainly.
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare -rm as uid 65534 fails here: {probe:?}"
        );
        eprintln!("SKIPPED: no unprivileged user namespaces: {probe:?}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // Ownership lives in the tar headers: container ids 0 and 1000, whatever the host has.
    let tar = write_layer(
        &tmp.path().join("l.tar"),
        Form::Tar,
        &[
            root().owner(1000, 1000),
            file("by0", "0\n"),
            file("by1000", "1000\n").owner(1000, 1000),
        ],
    );
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).expect("mkdir");
        chown_nobody(&p);
        p
    };
    let (mnt, store) = (dir("mnt"), dir("store"));
    // Inside, uid 0 is the user (65534 outside) and every other id is unmapped: container
    // id 1000 is shown as 0, and container id 0, which maps to nothing, as the overflow id.
    let script = format!(
        "set -e
         {bin} -o lowerdir={tar},uidmapping=1000:0:1,gidmapping=1000:0:1 {mnt}
         trap '{bin} umount {mnt}' EXIT
         stat -c '%u:%g %n' {mnt}/by1000 {mnt}/by0 {mnt}
         cat {mnt}/by1000",
        bin = runnable_by_anyone(Path::new(unionmount_bin()), tmp.path()).display(),
        tar = tar.display(),
        mnt = mnt.display(),
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
        ])
        .env("HOME", "/nonexistent")
        .env("UNIONMOUNT_ROOT", &store)
        .output()
        .expect("run unshare");
    assert!(out.status.success(), "mount in a user namespace: {out:?}");
    let m = mnt.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("0:0 {m}/by1000\n65534:65534 {m}/by0\n0:0 {m}\n1000\n")
    );
    assert!(!is_fuse_mount(&mnt));
}
