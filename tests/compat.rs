//! unionmount as containers/storage and mount(8) call it: `--version`, the `-o` options
//! podman passes (volatile, id mappings, squashing), and `mount -t fuse...` through
//! mount.fuse3 with the `unionmount SOURCE MOUNTPOINT -o OPTIONS` argv.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn version_prints_one_line_and_succeeds() {
    let out = Command::new(unionmount_bin())
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        format!("unionmount version {}\n", env!("CARGO_PKG_VERSION"))
    );
}

fn owner(path: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// `-o lowerdir=L,upperdir=U,workdir=W,,volatile,uidmapping=...,gidmapping=...,` as podman
/// passes it: stored ids are shown shifted into the host range, unmapped ones as 65534, and a
/// chown through the mount lands in the upper shifted back.
#[test]
fn id_mappings_shift_attributes_and_chown() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("dir")).unwrap();
    fs::write(lower.join("root-file"), b"r").unwrap();
    fs::write(lower.join("dir/user-file"), b"u").unwrap();
    fs::write(lower.join("unmapped"), b"x").unwrap();
    chown(&lower.join("dir/user-file"), 1000, 1001);
    chown(&lower.join("unmapped"), 70000, 70000);
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let mnt = mountpoint(tmp.path(), "mnt");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},,volatile,uidmapping=0:100000:65536,\
         gidmapping=0:200000:1:1:300001:65535,",
        lower.display(),
        upper.display(),
        work.display()
    );
    let m = UnionMount::start(&["-f", "-o", &opts, mnt.to_str().unwrap()], &mnt);

    assert_eq!(owner(&m.join("root-file")), (100000, 200000));
    assert_eq!(owner(&m.join("dir")), (100000, 200000));
    assert_eq!(owner(&m.join("dir/user-file")), (101000, 301001));
    assert_eq!(owner(&m.join("unmapped")), (65534, 65534));
    let listed: Vec<(String, u32)> = fs::read_dir(m.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().uid(),
            )
        })
        .filter(|(n, _)| n == "root-file")
        .collect();
    assert_eq!(listed, vec![("root-file".to_string(), 100000)]);

    // A chown to host ids is stored as container ids; unmapped ones as the overflow id.
    chown(&m.join("dir/user-file"), 101234, 300002);
    assert_eq!(owner(&m.join("dir/user-file")), (101234, 300002));
    assert_eq!(owner(&upper.join("dir/user-file")), (1234, 2));
    chown(&m.join("root-file"), 5, 5);
    assert_eq!(owner(&upper.join("root-file")), (65534, 65534));
    assert_eq!(owner(&m.join("root-file")), (165534, 365534));

    // Created by host root (uid 0, outside the range): stored as the overflow id, like
    // fuse-overlayfs; `volatile` makes fsync a successful no-op.
    let f = fs::File::create(m.join("new")).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(owner(&upper.join("new")), (65534, 65534));
    drop(m);
}

#[test]
fn squash_options_show_one_owner() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    fs::create_dir(&lower).unwrap();
    fs::write(lower.join("f"), b"f").unwrap();
    chown(&lower.join("f"), 1000, 1000);
    for (opts, want) in [
        ("squash_to_root", (0, 0)),
        ("squash_to_uid=7,squash_to_gid=8", (7, 8)),
        ("squash_to_uid=7,squash_to_root", (7, 0)),
    ] {
        let mnt = tmp.path().join(format!("mnt-{}", opts.len()));
        fs::create_dir(&mnt).unwrap();
        let o = format!("lowerdir={},{opts}", lower.display());
        let m = UnionMount::start(&["-f", "-o", &o, mnt.to_str().unwrap()], &mnt);
        assert_eq!(owner(&m.join("f")), want, "{opts}");
        assert_eq!(owner(m.path()).0, want.0, "{opts}");
        drop(m);
    }
}

/// The unionmount daemons serving `mnt` (found by their command line).
fn daemons_serving(mnt: &Path) -> Vec<u32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|arg| arg == want))
                .unwrap_or(false)
        })
        .collect()
}

/// Unmounts with umount(8) and waits for the daemon to exit by itself.
fn umount8_and_wait(mnt: &Path) {
    let daemons = daemons_serving(mnt);
    assert!(!daemons.is_empty(), "no daemon serves {}", mnt.display());
    let out = Command::new("umount")
        .arg(mnt)
        .output()
        .expect("run umount");
    assert!(out.status.success(), "umount: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !daemons_serving(mnt).is_empty() {
        assert!(
            Instant::now() < deadline,
            "daemon still running after umount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn layer_with_file(tmp: &Path) -> std::path::PathBuf {
    let lower = tmp.join("lower");
    fs::create_dir(&lower).unwrap();
    fs::write(lower.join("hello"), b"hi\n").unwrap();
    lower
}

/// `mount -t fuse /path/to/unionmount#SOURCE MNT -o ...`: mount(8) runs mount.fuse3, which
/// runs `unionmount SOURCE MNT -o rw,...,dev,suid`. (mount(8) runs helpers without PATH, so
/// `-t fuse.unionmount` needs unionmount in /usr/local/bin or the like: see README.)
#[test]
fn mount8_with_fuse_type_mounts_and_umount_ends_it() {
    if !root_or_skip() || Command::new("mount.fuse3").arg("-h").output().is_err() {
        eprintln!("SKIPPED: needs root and mount.fuse3 (apt-get install fuse3)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = layer_with_file(tmp.path());
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let mnt = mountpoint(tmp.path(), "mnt");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},noatime,nofail,_netdev,x-test=1",
        lower.display(),
        upper.display(),
        work.display()
    );
    let out = Command::new("mount")
        .args(["-t", "fuse"])
        .arg(format!("{}#images", unionmount_bin()))
        .arg(&mnt)
        .args(["-o", &opts])
        .output()
        .expect("run mount");
    assert!(out.status.success(), "mount: {out:?}");
    let mnt = mnt.canonicalize().unwrap();
    let mounted = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounted
        .lines()
        .find(|l| l.split(' ').nth(1) == mnt.to_str())
        .unwrap_or_else(|| panic!("{} not in /proc/mounts", mnt.display()));
    assert!(line.starts_with("images "), "{line}");
    assert!(line.contains("noatime"), "{line}");
    assert_eq!(fs::read(mnt.join("hello")).unwrap(), b"hi\n");
    fs::write(mnt.join("new"), b"n").unwrap();
    assert_eq!(fs::read(upper.join("new")).unwrap(), b"n");
    umount8_and_wait(&mnt);
    assert!(!is_fuse_mount(&mnt));
}

/// The exact call mount(8) makes for `mount -t fuse.unionmount unionmount MNT -o ...`:
/// `mount.fuse3 unionmount MNT -t unionmount -o ...`, which finds `unionmount` on PATH.
#[test]
fn mount_fuse3_helper_finds_unionmount_on_path() {
    if !root_or_skip() || Command::new("mount.fuse3").arg("-h").output().is_err() {
        eprintln!("SKIPPED: needs root and mount.fuse3 (apt-get install fuse3)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = layer_with_file(tmp.path());
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    symlink(unionmount_bin(), bin.join("unionmount")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mnt = mountpoint(tmp.path(), "mnt");
    let out = Command::new("mount.fuse3")
        .arg("unionmount")
        .arg(&mnt)
        .args(["-t", "unionmount", "-o"])
        .arg(format!("ro,lowerdir={}", lower.display()))
        .env("PATH", path)
        .output()
        .expect("run mount.fuse3");
    assert!(out.status.success(), "mount.fuse3: {out:?}");
    let mnt = mnt.canonicalize().unwrap();
    assert_eq!(fs::read(mnt.join("hello")).unwrap(), b"hi\n");
    let e = fs::write(mnt.join("x"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    umount8_and_wait(&mnt);
    assert!(!is_fuse_mount(&mnt));
}
