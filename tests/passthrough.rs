//! FUSE passthrough on a writable mount (root only: registering a backing file takes
//! CAP_SYS_ADMIN). Open upper files are read and written by the kernel itself; lower files
//! are read through the daemon with their page cache kept. The kernel allows one backing file
//! per node and no mixing of passthrough and page-cached opens of a node, so opens that
//! overlap a copy-up must all keep working.

mod common;

use common::*;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Dirs {
    tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let [lower, upper, work] = ["lower", "upper", "work"].map(|d| tmp.path().join(d));
    for d in [&lower, &upper, &work] {
        fs::create_dir(d).expect("mkdir");
    }
    let mnt = mountpoint(tmp.path(), "mnt");
    Dirs {
        tmp,
        lower,
        upper,
        work,
        mnt,
    }
}

/// A writable mount of `d`, with extra `-o` options (`,nopassthrough`).
fn mount(d: &Dirs, extra: &str) -> UnionMount {
    UnionMount::with_upper_and(&[&d.lower], &d.upper, &d.work, extra, &d.mnt)
}

fn pread(f: &File, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let n = f.read_at(&mut buf, 0).expect("pread");
    buf.truncate(n);
    buf
}

/// What an open descriptor of an upper file reads after the upper file is changed behind
/// the mount's back: the kernel reading the upper file itself sees the change; a read
/// through the daemon is answered from the page cache the first read filled.
fn read_after_change_behind(d: &Dirs, extra: &str) -> Vec<u8> {
    fs::write(d.upper.join("f"), "old data").expect("write upper file");
    let um = mount(d, extra);
    let f = File::open(um.join("f")).expect("open through the mount");
    assert_eq!(pread(&f, 64), b"old data");
    fs::OpenOptions::new()
        .write(true)
        .open(d.upper.join("f"))
        .expect("open upper file")
        .write_all_at(b"NEW", 0)
        .expect("change upper file");
    let seen = pread(&f, 64);
    drop(f);
    um.unmount_and_wait();
    seen
}

#[test]
fn upper_files_are_served_by_the_kernel_unless_turned_off() {
    if !root_or_skip() {
        return;
    }
    assert_eq!(
        read_after_change_behind(&dirs(), ""),
        b"NEW data",
        "an open upper file is read by the kernel from the upper file"
    );
    assert_eq!(
        read_after_change_behind(&dirs(), ",nopassthrough"),
        b"old data",
        "with nopassthrough, reads come through the daemon and its page cache"
    );
}

#[test]
fn an_upper_the_kernel_refuses_to_pass_through_is_served_by_the_daemon() {
    if !root_or_skip() {
        return;
    }
    // The upper and work directories on a kernel overlayfs: a stacked filesystem, which the
    // kernel refuses as backing for a FUSE mount of stack depth 1 (ELOOP).
    let mut d = dirs();
    let base = d.tmp.path().join("ovl");
    let [lo, up, wk] = ["lo", "up", "wk"].map(|n| base.join(n));
    for p in [&lo, &up, &wk] {
        fs::create_dir_all(p).expect("mkdir");
    }
    let overlay = KernelOverlay::with_upper(&[&lo], &up, &wk, &mountpoint(&base, "merged"));
    let merged = overlay.path();
    d.upper = merged.join("upper");
    d.work = merged.join("work");
    fs::create_dir(&d.upper).expect("mkdir upper");
    fs::create_dir(&d.work).expect("mkdir work");

    assert_eq!(
        read_after_change_behind(&d, ""),
        b"old data",
        "reads come through the daemon once the kernel refuses the backing file"
    );
    // Everything else works as without passthrough.
    let um = mount(&d, "");
    fs::write(um.join("g"), "first\n").expect("create");
    let mut f = OpenOptions::new()
        .append(true)
        .open(um.join("g"))
        .expect("reopen for append");
    f.write_all(b"second\n").expect("append");
    drop(f);
    assert_eq!(
        fs::read_to_string(um.join("g")).expect("read back"),
        "first\nsecond\n"
    );
    um.unmount_and_wait();
    assert_eq!(
        fs::read_to_string(d.upper.join("g")).expect("upper file"),
        "first\nsecond\n"
    );
}

#[test]
fn opens_overlapping_a_copy_up_all_work() {
    if !root_or_skip() {
        return;
    }
    let d = dirs();
    fs::write(d.lower.join("f"), "lower bytes\n").expect("write lower file");
    let um = mount(&d, "");
    let p = um.join("f");

    // A read-only open of the lower file, kept open across the copy-up.
    let ro_lower = File::open(&p).expect("open lower file");
    assert_eq!(pread(&ro_lower, 64), b"lower bytes\n");
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .expect("open for writing (copy-up) while a read-only open lasts");
    rw.write_all_at(b"UPPER", 0).expect("write after copy-up");
    assert_eq!(pread(&rw, 64), b"UPPER bytes\n");
    let ro_upper = File::open(&p).expect("open the copied-up file while both last");
    assert_eq!(pread(&ro_upper, 64), b"UPPER bytes\n");
    drop((ro_lower, rw, ro_upper));

    // Opens that start once the copy-up is done, overlapping one another.
    let mut reader = File::open(&p).expect("open copied-up file");
    let mut appender = OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("open for append");
    appender.write_all(b"appended\n").expect("append");
    let mut all = String::new();
    reader.read_to_string(&mut all).expect("read");
    assert_eq!(all, "UPPER bytes\nappended\n");
    let mut rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .expect("open for writing");
    rw.set_len(5).expect("ftruncate");
    rw.seek(SeekFrom::End(0)).expect("seek");
    rw.write_all(b"!\n").expect("write at end");
    assert_eq!(pread(&reader, 64), b"UPPER!\n");
    drop((reader, appender, rw));
    assert_eq!(
        fs::read_to_string(&p).expect("read again"),
        "UPPER!\n",
        "a fresh open sees the last write"
    );

    // Another process sees it, and so does the upper.
    let out = Command::new("cat").arg(&p).output().expect("run cat");
    assert_eq!(out.stdout, b"UPPER!\n");
    um.unmount_and_wait();
    assert_eq!(
        fs::read_to_string(d.upper.join("f")).expect("upper file"),
        "UPPER!\n"
    );
    assert_eq!(
        fs::read_to_string(d.lower.join("f")).expect("lower file"),
        "lower bytes\n",
        "the lower layer is never written"
    );
}

/// Files written through the mount are mapped and executed from the upper file.
#[test]
fn a_binary_written_through_the_mount_runs_and_maps() {
    if !root_or_skip() {
        return;
    }
    let d = dirs();
    let um = mount(&d, "");
    let exe = um.join("true-copy");
    let original = Path::new("/bin/true");
    fs::copy(original, &exe).expect("copy a binary in through the mount");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let status = Command::new(&exe).status().expect("execute the copy");
    assert!(status.success(), "{} exited with {status}", exe.display());
    assert_eq!(
        fs::read(&exe).expect("read back"),
        fs::read(original).expect("read original")
    );
    um.unmount_and_wait();
    assert_eq!(
        fs::read(d.upper.join("true-copy")).expect("upper copy"),
        fs::read(original).expect("read original")
    );
}

/// A shared writable mapping of a copied-up file writes to the upper file.
#[test]
fn shared_mapping_writes_reach_the_upper() {
    if !root_or_skip() {
        return;
    }
    let d = dirs();
    fs::write(d.lower.join("m"), [b'.'; 8192]).expect("write lower file");
    let um = mount(&d, "");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(um.join("m"))
        .expect("open for writing");
    // SAFETY: a fresh shared mapping of an open 8 KiB file; nothing else maps it.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(
        map,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is 8192 bytes long and writable; it is unmapped right after.
    let rc = unsafe {
        std::ptr::copy_nonoverlapping(b"mapped".as_ptr(), map.cast::<u8>().add(4096), 6);
        let rc = libc::msync(map, 8192, libc::MS_SYNC);
        libc::munmap(map, 8192);
        rc
    };
    assert_eq!(rc, 0, "msync: {}", std::io::Error::last_os_error());
    drop(f);
    let through = fs::read(um.join("m")).expect("read through the mount");
    assert_eq!(&through[4096..4102], b"mapped");
    um.unmount_and_wait();
    let upper = fs::read(d.upper.join("m")).expect("upper file");
    assert_eq!(&upper[4096..4102], b"mapped");
    assert_eq!(&upper[..4], b"....");
}
