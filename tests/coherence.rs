//! Kernel caching on a writable mount: whatever the entry, attribute and page caches keep, a
//! change made through the mount is seen at once by another process (a fresh `cat`, `stat`
//! or `ls`, run right after the change, with no sleep), for upper-only files, copied-up lower
//! files, names removed and renamed, and names created over a whiteout.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The standard output of `prog args`, run as another process; panics if it fails.
fn other(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn cat(p: &Path) -> String {
    other("cat", &[p.to_str().expect("utf-8 path")])
}

/// `SIZE MODE` of `p` as another process sees it.
fn size_mode(p: &Path) -> String {
    other("stat", &["-c", "%s %a", p.to_str().expect("utf-8 path")])
        .trim()
        .to_string()
}

fn exists_for_other(p: &Path) -> bool {
    Command::new("test")
        .arg("-e")
        .arg(p)
        .status()
        .expect("run test")
        .success()
}

#[test]
fn changes_through_the_mount_are_seen_at_once_by_other_processes() {
    seen_at_once("");
}

/// The same without passthrough (as for an unprivileged user): every read and write goes
/// through the daemon and the FUSE page cache, which lower files keep across opens.
#[test]
fn changes_are_seen_at_once_without_passthrough_too() {
    seen_at_once(",nopassthrough");
}

fn seen_at_once(extra: &str) {
    if !root_or_skip() {
        return;
    }
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("d")).expect("mkdir lower");
    fs::write(lower.join("d/lower.txt"), "lower\n").expect("write lower file");
    fs::write(lower.join("d/gone.txt"), "to remove\n").expect("write lower file");
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    fs::create_dir(&upper).expect("mkdir upper");
    fs::create_dir(&work).expect("mkdir work");
    let mnt = mountpoint(tmp.path(), "mnt");
    let um = UnionMount::with_upper_and(&[&lower], &upper, &work, extra, &mnt);
    let p = |rel: &str| um.join(rel);

    // Fill the caches first: names, attributes and pages.
    assert_eq!(cat(&p("d/lower.txt")), "lower\n");
    assert_eq!(size_mode(&p("d/lower.txt")), "6 644");
    assert_eq!(cat(&p("d/gone.txt")), "to remove\n");

    // A new file, then rewritten, appended to, truncated, chmodded.
    fs::write(p("d/new.txt"), "one\n").expect("create");
    assert_eq!(cat(&p("d/new.txt")), "one\n");
    assert_eq!(size_mode(&p("d/new.txt")), "4 644");
    fs::write(p("d/new.txt"), "rewritten\n").expect("rewrite");
    assert_eq!(cat(&p("d/new.txt")), "rewritten\n");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(p("d/new.txt"))
        .expect("open for append");
    f.write_all(b"more\n").expect("append");
    // Still open: another process sees the data written so far.
    assert_eq!(cat(&p("d/new.txt")), "rewritten\nmore\n");
    assert_eq!(size_mode(&p("d/new.txt")), "15 644");
    drop(f);
    fs::OpenOptions::new()
        .write(true)
        .open(p("d/new.txt"))
        .expect("open for write")
        .set_len(3)
        .expect("truncate");
    assert_eq!(cat(&p("d/new.txt")), "rew");
    fs::set_permissions(p("d/new.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(size_mode(&p("d/new.txt")), "3 600");

    // A lower file changed (copied up) after its pages and attributes were cached.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(p("d/lower.txt"))
        .expect("open lower file for append");
    f.write_all(b"appended\n").expect("append to lower file");
    drop(f);
    assert_eq!(cat(&p("d/lower.txt")), "lower\nappended\n");
    assert_eq!(size_mode(&p("d/lower.txt")), "15 644");

    // Removed, then created again over the whiteout; renamed.
    fs::remove_file(p("d/gone.txt")).expect("unlink lower file");
    assert!(!exists_for_other(&p("d/gone.txt")));
    fs::write(p("d/gone.txt"), "back\n").expect("create over whiteout");
    assert_eq!(cat(&p("d/gone.txt")), "back\n");
    fs::rename(p("d/new.txt"), p("d/renamed.txt")).expect("rename");
    assert!(!exists_for_other(&p("d/new.txt")));
    assert_eq!(cat(&p("d/renamed.txt")), "rew");
    // The created file's name and attributes are cached long: the same name made again,
    // and a hard link whose other name goes, are seen as they are now.
    fs::write(p("d/new.txt"), "second\n").expect("create the name again");
    assert_eq!(cat(&p("d/new.txt")), "second\n");
    fs::hard_link(p("d/new.txt"), p("d/link.txt")).expect("hard link");
    let links = |rel: &str| other("stat", &["-c", "%h", p(rel).to_str().expect("utf-8 path")]);
    assert_eq!(links("d/new.txt").trim(), "2");
    fs::remove_file(p("d/new.txt")).expect("unlink");
    assert!(!exists_for_other(&p("d/new.txt")));
    assert_eq!(links("d/link.txt").trim(), "1");
    assert_eq!(cat(&p("d/link.txt")), "second\n");
    let listed = other("ls", &[p("d").to_str().expect("utf-8 path")]);
    assert_eq!(listed, "gone.txt\nlink.txt\nlower.txt\nrenamed.txt\n");

    um.unmount_and_wait();
    assert_eq!(
        fs::read_to_string(upper.join("d/lower.txt")).expect("upper copy"),
        "lower\nappended\n"
    );
}
