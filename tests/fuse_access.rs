//! When FUSE cannot be used, `unionmount` says why and what to do in one line, and exits
//! non-zero: `/dev/fuse` missing or not accessible to the user, `fusermount3` missing, and
//! `allow_other` without `user_allow_other` in /etc/fuse.conf. Each runs as uid 65534
//! (`setpriv`) inside a private mount namespace (`unshare -m`) where a stand-in is bind
//! mounted over the real path, so the host's /dev/fuse, fusermount3 and fuse.conf are never
//! changed under the tests running beside these.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// `sh -c SCRIPT` as root in a new mount namespace (private propagation, so nothing made
/// there is seen outside). `$UM` is the binary, `$AS_NOBODY` runs a command as uid 65534.
fn in_own_mount_ns(script: &str, env: &[(&str, &str)], tmp: &Path) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("UM", runnable_by_anyone(Path::new(unionmount_bin()), tmp))
        .env(
            "AS_NOBODY",
            "setpriv --reuid=65534 --regid=65534 --clear-groups --",
        )
        .env("HOME", "/nonexistent")
        .envs(env.iter().copied())
        .output()
        .expect("run unshare")
}

fn tools_or_skip() -> bool {
    if !root_or_skip() {
        return false;
    }
    for tool in ["unshare", "setpriv"] {
        if Command::new(tool).arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} missing (util-linux)"
            );
            eprintln!("SKIPPED: {tool} missing");
            return false;
        }
    }
    true
}

/// A layer and a mountpoint that uid 65534 may use, in a fresh temp dir.
fn fixture() -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let layer = write_layer(&tmp.path().join("layer"), Form::OciDir, &[file("f", "f\n")]);
    let mnt = mountpoint(tmp.path(), "mnt");
    std::os::unix::fs::chown(&mnt, Some(65534), Some(65534)).expect("chown");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    (tmp, s(&layer), s(&mnt))
}

/// The command failed with exactly one line on stderr that contains every one of `want`.
fn assert_refused(what: &str, out: &Output, want: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded: {out:?}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{what}: not one line: {stderr}"
    );
    for w in want {
        assert!(stderr.contains(w), "{what}: no {w:?} in: {stderr}");
    }
}

#[test]
fn a_fuse_device_the_user_cannot_open_names_the_fix() {
    if !tools_or_skip() {
        return;
    }
    let (tmp, layer, mnt) = fixture();
    // The CI machine's default: the device exists, mode 0600, root's.
    let dev = tmp.path().join("fuse-0600");
    let status = Command::new("mknod")
        .args(["-m", "0600"])
        .arg(&dev)
        .args(["c", "10", "229"])
        .status()
        .expect("mknod");
    assert!(status.success());
    let script = format!(
        "mount --bind {} /dev/fuse && $AS_NOBODY $UM mount --layer {layer} {mnt}",
        dev.display()
    );
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert_refused(
        "mode 0600",
        &out,
        &[
            "/dev/fuse",
            "mode 0600",
            "uid 65534",
            "chmod 0666 /dev/fuse",
            "group",
        ],
    );
    assert!(!is_fuse_mount(Path::new(&mnt)));
}

#[test]
fn a_missing_fuse_device_says_to_load_the_module() {
    if !tools_or_skip() {
        return;
    }
    let (tmp, layer, mnt) = fixture();
    // An empty /dev, as in a container started without the device.
    let script = format!("mount -t tmpfs none /dev && $AS_NOBODY $UM mount --layer {layer} {mnt}");
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert_refused(
        "no device",
        &out,
        &["/dev/fuse does not exist", "modprobe fuse"],
    );
    // Root too: it mounts without fusermount3, but not without the device.
    let script = format!("mount -t tmpfs none /dev && $UM mount --layer {layer} {mnt}");
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert_refused("no device, root", &out, &["/dev/fuse does not exist"]);
}

#[test]
fn a_missing_fusermount3_says_to_install_fuse3() {
    if !tools_or_skip() {
        return;
    }
    let (tmp, layer, mnt) = fixture();
    let Some(fusermount) = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "fusermount3 missing (fuse3)"
        );
        eprintln!("SKIPPED: fusermount3 is not installed");
        return;
    };
    // /dev/null over it: the name is there, but it is no program.
    let script = format!(
        "mount --bind /dev/null {fusermount} && $AS_NOBODY $UM mount --layer {layer} {mnt}"
    );
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert_refused(
        "no fusermount3",
        &out,
        &["fusermount3 is not installed", "apt-get install fuse3"],
    );
    // fuser's own override names the program it would run.
    let out = in_own_mount_ns(
        &format!("$AS_NOBODY $UM mount --layer {layer} {mnt}"),
        &[("FUSERMOUNT_PATH", "/nonexistent/fusermount3")],
        tmp.path(),
    );
    assert_refused(
        "FUSERMOUNT_PATH",
        &out,
        &["FUSERMOUNT_PATH=/nonexistent/fusermount3"],
    );
}

#[test]
fn allow_other_without_user_allow_other_names_fuse_conf() {
    if !tools_or_skip() {
        return;
    }
    let (tmp, layer, mnt) = fixture();
    let conf = tmp.path().join("fuse.conf");
    fs::write(&conf, "# user_allow_other\nmount_max = 1000\n").expect("write");
    let opts = format!("lowerdir={layer},allow_other");
    let script = format!(
        "mount --bind {} /etc/fuse.conf && $AS_NOBODY $UM -o {opts} {mnt}",
        conf.display()
    );
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert_refused(
        "allow_other",
        &out,
        &["allow_other", "user_allow_other", "/etc/fuse.conf"],
    );

    // With the line, the user's mount is open to others: root reads it, then unmounts.
    fs::write(&conf, "user_allow_other\n").expect("write");
    let script = format!(
        "mount --bind {conf} /etc/fuse.conf && $AS_NOBODY $UM -o {opts} {mnt} || exit 1
         trap 'umount -l {mnt}' EXIT
         cat {mnt}/f",
        conf = conf.display()
    );
    let out = in_own_mount_ns(&script, &[], tmp.path());
    assert!(
        out.status.success(),
        "allow_other with user_allow_other: {out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "f\n");
}
