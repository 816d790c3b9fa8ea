//! `unionmount mount IMAGE MNT` is writable, with its upper kept per image and mountpoint
//! under the store's `mounts/`; `--upper`/`--work` choose the directories, `--read-only`
//! leaves them out, and `--layer` mounts stay read-only unless given an upper.

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("layers-testdata/demo-oci")
}

fn demo_ref() -> String {
    format!("oci:{}:latest", demo().display())
}

/// `unionmount mount -f ARGS... MNT` with `UNIONMOUNT_ROOT=store`.
fn mount_in(store: &Path, args: &[&str], mnt: &Path) -> UnionMount {
    let mut argv: Vec<OsString> = vec!["mount".into(), "-f".into()];
    argv.extend(args.iter().map(OsString::from));
    argv.push(mnt.into());
    let store = store.to_str().expect("utf-8 path");
    UnionMount::start_with_env(&argv, &[("UNIONMOUNT_ROOT", store)], mnt)
}

/// The per-mount directories under `store/mounts/`.
fn states(store: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(store.join("mounts")) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn assert_erofs(mnt: &Path) {
    assert_eq!(
        errno_of("create", fs::write(mnt.join("etc/new"), "x")),
        libc::EROFS
    );
}

#[test]
fn image_mounts_are_writable_and_keep_changes_per_mountpoint() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let (mnt, other) = (
        mountpoint(tmp.path(), "mnt"),
        mountpoint(tmp.path(), "other"),
    );
    let image = demo_ref();

    let um = mount_in(&store, &[&image], &mnt);
    fs::write(um.join("etc/new"), "made here\n").expect("create");
    fs::remove_file(um.join("etc/os-release")).expect("unlink a lower file");
    um.unmount_and_wait();
    let state = match states(&store).as_slice() {
        [one] => one.clone(),
        other => panic!("want one mount state, got {other:?}"),
    };
    let name = state.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.starts_with("demo-oci-latest_mnt_"), "{name}");
    assert_eq!(
        fs::read_to_string(state.join("upper/etc/new")).expect("in the upper"),
        "made here\n"
    );
    let origin = fs::read_to_string(state.join("origin")).expect("origin");
    let canon = |p: &Path| fs::canonicalize(p).expect("canonicalize");
    assert!(
        origin.contains(&format!("image oci:{}:latest\n", canon(&demo()).display())),
        "{origin}"
    );
    assert!(
        origin.contains(&format!("mountpoint {}\n", canon(&mnt).display())),
        "{origin}"
    );

    // The same image on the same mountpoint: the earlier changes are there.
    let um = mount_in(&store, &[&image], &mnt);
    assert_eq!(
        fs::read_to_string(um.join("etc/new")).expect("kept"),
        "made here\n"
    );
    assert!(!um.join("etc/os-release").exists(), "the deletion is kept");
    um.unmount_and_wait();

    // Another mountpoint: another, fresh upper.
    let um = mount_in(&store, &[&image], &other);
    assert!(!um.join("etc/new").exists());
    assert!(um.join("etc/os-release").exists());
    drop(um);
    assert_eq!(states(&store).len(), 2);

    // --read-only: the image as it is, no upper.
    let um = mount_in(&store, &["--read-only", &image], &mnt);
    assert!(!um.join("etc/new").exists());
    assert!(um.join("etc/os-release").exists());
    assert_erofs(um.path());
    drop(um);

    // --read-only --upper: that upper, shown read-only on top.
    let upper = state.join("upper");
    let um = mount_in(&store, &["--read-only", "--upper", s(&upper), &image], &mnt);
    assert!(um.join("etc/new").exists());
    assert!(!um.join("etc/os-release").exists());
    assert_erofs(um.path());
    drop(um);
    assert_eq!(states(&store).len(), 2, "read-only mounts add no state");
}

#[test]
fn root_and_explicit_upper_choose_where_changes_go() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (env_store, root) = (tmp.path().join("env-store"), tmp.path().join("root"));
    let mnt = mountpoint(tmp.path(), "mnt");
    let image = demo_ref();

    let um = mount_in(&env_store, &["--root", s(&root), &image], &mnt);
    fs::write(um.join("tmp/a"), "a").expect("create");
    drop(um);
    assert_eq!(states(&root).len(), 1, "--root wins over UNIONMOUNT_ROOT");
    assert!(states(&env_store).is_empty());

    // --upper DIR: DIR and DIR.work are made, the store is not used.
    let upper = tmp.path().join("ctr/upper");
    let um = mount_in(&env_store, &["--upper", s(&upper), &image], &mnt);
    fs::write(um.join("tmp/b"), "b").expect("create");
    drop(um);
    assert_eq!(
        fs::read_to_string(upper.join("tmp/b")).expect("in upper"),
        "b"
    );
    assert!(tmp.path().join("ctr/upper.work/work").is_dir());
    assert!(states(&env_store).is_empty());

    // --work DIR chooses the work directory; the upper's content is there again.
    let work = tmp.path().join("ctr/work");
    let um = mount_in(
        &env_store,
        &["--upper", s(&upper), "--work", s(&work), &image],
        &mnt,
    );
    assert_eq!(fs::read_to_string(um.join("tmp/b")).expect("kept"), "b");
    assert!(work.join("work").is_dir());
}

#[test]
fn layer_mounts_are_read_only_unless_given_an_upper() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layer = write_layer(
        &tmp.path().join("layer"),
        Form::OverlayDir,
        &[root(), file("etc/hosts", "lower\n")],
    );
    let mnt = mountpoint(tmp.path(), "mnt");
    let store = tmp.path().join("store");

    let um = mount_in(&store, &["--layer", s(&layer)], &mnt);
    assert_erofs(um.path());
    drop(um);

    let (upper, work) = (tmp.path().join("u"), tmp.path().join("w"));
    let args = [
        "--layer",
        s(&layer),
        "--upper",
        s(&upper),
        "--work",
        s(&work),
    ];
    let um = mount_in(&store, &args, &mnt);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(um.join("etc/hosts"))
        .expect("open for append");
    std::io::Write::write_all(&mut f, b"upper\n").expect("append");
    drop(f);
    um.unmount_and_wait();
    let um = mount_in(&store, &args, &mnt);
    assert_eq!(
        fs::read_to_string(um.join("etc/hosts")).expect("read"),
        "lower\nupper\n"
    );
    drop(um);
    assert_eq!(
        fs::read_to_string(layer.join("etc/hosts")).expect("lower"),
        "lower\n"
    );
    assert!(
        states(&store).is_empty(),
        "--layer mounts never use the store"
    );
}

#[test]
fn failed_mounts_leave_no_state_and_work_needs_upper() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let mnt = mountpoint(tmp.path(), "mnt");
    // A layer blob cut short: the mount fails after its state directory was made.
    let layout = tmp.path().join("layout");
    copy_tree(&demo(), &layout);
    let blob = oci_layer_blobs(&layout, "latest").pop().expect("a layer");
    let data = fs::read(&blob).expect("read blob");
    fs::write(&blob, &data[..data.len() / 2]).expect("truncate blob");
    let image = format!("oci:{}", layout.display());
    let out = run_unionmount(
        &["--root", s(&store), &image, s(&mnt)]
            .iter()
            .fold(vec!["mount"], |mut v, a| {
                v.push(a);
                v
            }),
        Some(&mnt),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success(), "mounted a broken image: {out:?}");
    assert!(!is_fuse_mount(&mnt));
    assert!(states(&store).is_empty(), "left {:?}", states(&store));

    let out = run_unionmount(
        &["mount", "--work", "/tmp/w", &demo_ref(), s(&mnt)],
        Some(&mnt),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--upper"), "{}", out.stderr);
}
