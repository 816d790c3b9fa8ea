//! POSIX ACLs against kernel overlayfs (root only): a lower layer's ACLs grant and refuse
//! access beyond the mode bits, a directory's default ACL replaces the umask for what is made
//! in it (and is passed on to new directories), and chmod and setfacl of lower files copy them
//! up with their ACLs. The same shell script runs on both engines (as root, and as uid 65534
//! through `setpriv`); what it prints, and the ACLs the uppers are left with, must be equal.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The lower layer: `f` readable by uid 65534 through a named entry only, `g` readable by
/// everyone but uid 65534, `d` writable by uid 65534 with a default ACL, `plain` without ACLs.
fn lower(dir: &Path) {
    fs::create_dir_all(dir.join("d")).unwrap();
    fs::create_dir_all(dir.join("plain")).unwrap();
    for (name, mode) in [("f", 0o600), ("g", 0o644), ("h", 0o644)] {
        fs::write(dir.join(name), format!("{name} data\n")).unwrap();
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(dir.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(dir.join("plain"), fs::Permissions::from_mode(0o777)).unwrap();
    for (args, path) in [
        ("-m u:65534:r", "f"),
        ("-m u:65534:-", "g"),
        ("-m u:65534:rwx", "d"),
        ("-d -m u::rwx,g::r-x,u:65534:rwx,o::-", "d"),
    ] {
        let out = Command::new("setfacl")
            .args(args.split(' '))
            .arg(dir.join(path))
            .output()
            .expect("run setfacl (apt-get install acl)");
        assert!(out.status.success(), "setfacl {args} {path}: {out:?}");
    }
}

/// A temporary directory uid 65534 can reach, with the lower layer in it; `None` when the
/// test is skipped (not root).
fn fixture() -> Option<(tempfile::TempDir, PathBuf)> {
    if !root_or_skip() {
        return None;
    }
    require_fuse();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let low = tmp.path().join("lower");
    lower(&low);
    Some((tmp, low))
}

/// Operations on the mount at `$1`, printing each outcome and then the attributes and ACLs
/// of everything involved.
const SCRIPT: &str = r#"
cd "$1" || exit 1
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c "umask 022; $1" >/dev/null 2>&1; echo "nobody: $1 -> $?"; }
root() { sh -c "$1" >/dev/null 2>&1; echo "root: $1 -> $?"; }
nobody 'cat f'
nobody 'cat g'
nobody 'cat h'
nobody 'echo x > d/n'
nobody 'mkdir d/sub && echo y > d/sub/m'
nobody 'umask 077; echo z > d/n2'
nobody 'mkfifo d/fifo'
nobody 'ln -s n d/link'
root 'umask 022; echo a > plain/a; mkdir plain/b'
root 'umask 077; echo c > plain/c'
root 'chmod 0640 f'
nobody 'cat f'
root 'setfacl -m u:65534:r h'
nobody 'cat h'
root 'setfacl -x u:65534 g'
nobody 'cat g'
for p in f g h d d/n d/sub d/sub/m d/n2 d/fifo d/link plain/a plain/b plain/c; do
    stat -c '%n %A %u %g' "$p"
    [ -L "$p" ] || getfacl -n -c "$p" 2>&1 | grep -v '^$'
done
"#;

fn run_script(mnt: &Path) -> String {
    let out = Command::new("sh")
        .args(["-c", SCRIPT, "sh"])
        .arg(mnt)
        .output()
        .expect("run sh");
    assert!(out.status.success(), "script on {}: {out:?}", mnt.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Every object's ACLs in an upper directory, by relative name, sorted.
fn upper_acls(upper: &Path) -> String {
    let out = Command::new("sh")
        .current_dir(upper)
        .args([
            "-c",
            "find . ! -type l | sort | while read -r p; do stat -c '%n %A %u %g' \"$p\"; \
             getfacl -n -c \"$p\"; done",
        ])
        .output()
        .expect("run find");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn acls_grant_refuse_and_pass_on_as_in_overlayfs() {
    let Some((tmp, low)) = fixture() else {
        return;
    };
    let mut outputs = Vec::new();
    for engine in ["kernel", "unionmount"] {
        let base = tmp.path().join(engine);
        let (upper, work) = (base.join("upper"), base.join("work"));
        fs::create_dir_all(&upper).unwrap();
        fs::create_dir_all(&work).unwrap();
        let mnt = mountpoint(&base, "mnt");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let printed = if engine == "kernel" {
            let m = KernelOverlay::with_upper(&[&low], &upper, &work, &mnt);
            run_script(m.path())
        } else {
            let m = UnionMount::with_upper(&[&low], &upper, &work, &mnt);
            run_script(m.path())
        };
        outputs.push((printed, upper_acls(&upper)));
    }
    let (kernel, ours) = (&outputs[0], &outputs[1]);
    // The script must have seen ACLs at work, or the comparison proves nothing.
    for line in [
        "nobody: cat f -> 0",
        "nobody: cat g -> 1",
        "nobody: echo x > d/n -> 0",
    ] {
        assert!(
            kernel.0.contains(line),
            "kernel overlayfs: {line}?\n{}",
            kernel.0
        );
    }
    assert!(kernel.0.contains("user:65534:rwx"), "{}", kernel.0);
    assert_eq!(ours.0, kernel.0, "through the mounts");
    assert_eq!(ours.1, kernel.1, "left in the uppers");
}

/// A read-only mount enforces the lower layer's ACLs too.
#[test]
fn a_read_only_mount_enforces_lower_acls() {
    let Some((tmp, low)) = fixture() else {
        return;
    };
    let um = UnionMount::layers(&[&low], &mountpoint(tmp.path(), "mnt"));
    let cat = |name: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(um.join(name))
            .output()
            .expect("run setpriv")
            .status
            .success()
    };
    assert!(cat("f"), "a named entry grants what the mode bits refuse");
    assert!(!cat("g"), "a named entry refuses what the mode bits grant");
    assert!(cat("h"));
}
