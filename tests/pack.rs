//! Layers written by `image::pack`, checked against independent readers: a kernel overlayfs
//! upper packed in Diff mode and stacked by unionmount on its lower gives the kernel's merged
//! tree; a tree packed in Flat mode and extracted by GNU tar gives the same tree back.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use unionmount::image::pack::{PackMode, pack};
use unionmount::layer::blob::Compression;

fn write_file(p: &Path, data: &[u8]) {
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Changes of every kind made through kernel overlayfs, for its upper to record.
fn change_through_kernel(m: &Path) {
    // Create, and create in a new directory.
    write_file(&m.join("new-file"), b"brand new\n");
    fs::create_dir(m.join("new-dir")).unwrap();
    write_file(&m.join("new-dir/inside"), b"inside\n");
    // Modify a lower file (copy-up) and change only the mode of another (metadata copy-up).
    write_file(&m.join("etc/config"), b"changed\n");
    fs::set_permissions(m.join("etc/mode-only"), fs::Permissions::from_mode(0o600)).unwrap();
    // Delete lower files and a whole lower directory: whiteouts.
    fs::remove_file(m.join("etc/delete-me")).unwrap();
    fs::remove_file(m.join("top-gone")).unwrap();
    fs::remove_dir_all(m.join("gone-dir")).unwrap();
    // Delete a lower directory and make it again: an opaque directory.
    fs::remove_dir_all(m.join("remade")).unwrap();
    fs::create_dir(m.join("remade")).unwrap();
    write_file(&m.join("remade/fresh"), b"fresh\n");
    // Links and xattrs made in the upper.
    std::os::unix::fs::symlink("../etc/config", m.join("new-dir/link")).unwrap();
    fs::hard_link(m.join("new-file"), m.join("new-dir/hard")).unwrap();
    rustix::fs::lsetxattr(
        m.join("new-file"),
        "user.note",
        b"v\x00\xff",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // A file deleted from a directory that stays (a whiteout in a merged directory).
    fs::remove_file(m.join("keep/b")).unwrap();
}

fn build_lower(l: &Path) {
    for d in ["etc", "gone-dir/sub", "remade/sub", "keep"] {
        fs::create_dir_all(l.join(d)).unwrap();
    }
    for (p, data) in [
        ("etc/config", &b"original\n"[..]),
        ("etc/mode-only", b"mode\n"),
        ("etc/delete-me", b"bye\n"),
        ("etc/untouched", b"same\n"),
        ("top-gone", b"top\n"),
        ("gone-dir/sub/deep", b"deep\n"),
        ("remade/old", b"old\n"),
        ("remade/sub/older", b"older\n"),
        ("keep/a", b"a\n"),
        ("keep/b", b"b\n"),
    ] {
        write_file(&l.join(p), data);
    }
}

#[test]
fn diff_of_a_kernel_upper_applies_like_the_kernel_merged_it() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    for d in [&lower, &upper, &work] {
        fs::create_dir(d).unwrap();
    }
    build_lower(&lower);
    let expected = {
        let kernel =
            KernelOverlay::with_upper(&[&lower], &upper, &work, &mountpoint(tmp.path(), "k"));
        change_through_kernel(kernel.path());
        snapshot(kernel.path())
    };
    // What the kernel left: the cases this test means to cover are there.
    assert!(upper.join("remade").exists() && upper.join("etc/delete-me").exists());

    for (compression, name) in [
        (Compression::None, "diff.tar"),
        (Compression::Gzip, "diff.tar.gz"),
        (Compression::Zstd, "diff.tar.zst"),
    ] {
        let file = tmp.path().join(name);
        let out = fs::File::create(&file).unwrap();
        let packed =
            pack(&upper, PackMode::Diff, compression, out).unwrap_or_else(|e| panic!("pack: {e}"));
        assert_eq!(packed.size, fs::metadata(&file).unwrap().len());

        let um = UnionMount::layers(
            &[lower.as_path(), file.as_path()],
            &mountpoint(tmp.path(), &format!("u-{name}")),
        );
        let actual = snapshot(um.path());
        // The root is not a layer entry: the union takes its attributes from elsewhere.
        let ex = Exclusions {
            ignore_attrs: [String::new()].into(),
            ..Exclusions::default()
        };
        assert_same_tree(
            &format!("kernel merged vs lower + packed upper ({name})"),
            &expected,
            &actual,
            &ex,
        );
    }
}

/// GNU tar, an independent reader, extracts a Flat layer to the tree it came from.
#[test]
fn flat_layer_extracts_with_gnu_tar_to_the_same_tree() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let long = "x".repeat(150);
    let entries = vec![
        file("a", "hello").mtime(1_600_000_000, 123_456_789),
        file(&format!("d/{long}"), "long"),
        file("d/e/setuid", "s").mode(0o4755).owner(1000, 3_000_000),
        file("big", pseudo_random(300_000, 7)).xattr("user.x", b"\x00\x01=\n"),
        dir_("d/empty").mode(0o1777).mtime(1_500_000_000, 1),
        symlink("l", &format!("d/{long}")),
        hardlink("d/h", "a"),
        fifo("p"),
        chardev("c", 1, 3),
        blockdev("b", 7, 9),
    ];
    write_layer(&tree, Form::OverlayDir, &entries);
    let file = tmp.path().join("flat.tar");
    pack(
        &tree,
        PackMode::Flat,
        Compression::None,
        fs::File::create(&file).unwrap(),
    )
    .unwrap();
    let out = mountpoint(tmp.path(), "extracted");
    let st = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--delay-directory-restore",
            "-xpf",
        ])
        .arg(&file)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("run tar");
    assert!(st.success(), "tar -x failed");
    let ex = Exclusions {
        compare_dir_sizes: true,
        ignore_attrs: [String::new()].into(),
        ..Exclusions::default()
    };
    assert_same_tree("GNU tar extraction", &snapshot(&tree), &snapshot(&out), &ex);
}

/// Unmounts on drop (also when the test panics).
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = umount2(self.0, libc::MNT_DETACH);
    }
}

/// An upper the kernel wrote with `redirect_dir=on` (a renamed lower directory) or
/// `metacopy=on` (a chmod without a data copy) cannot be a plain layer: refused, naming it.
#[test]
fn diff_refuses_kernel_redirects_and_metacopy() {
    if !root_or_skip() {
        return;
    }
    for (option, change, path) in [
        ("redirect_dir=on", "rename", "renamed"),
        ("metacopy=on", "chmod", "etc/mode-only"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let [lower, upper, work] = ["lower", "upper", "work"].map(|d| tmp.path().join(d));
        for d in [&lower, &upper, &work] {
            fs::create_dir(d).unwrap();
        }
        build_lower(&lower);
        let m = mountpoint(tmp.path(), "m").canonicalize().unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},{option}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let st = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&m)
            .status()
            .expect("run mount(8)");
        assert!(st.success(), "mount -o {opts} failed");
        {
            let _mounted = Unmount(&m);
            match change {
                "rename" => fs::rename(m.join("keep"), m.join("renamed")).unwrap(),
                _ => fs::set_permissions(m.join(path), fs::Permissions::from_mode(0o600)).unwrap(),
            }
        }
        let err = pack(&upper, PackMode::Diff, Compression::None, std::io::sink())
            .expect_err(&format!("{option}: packing should be refused"));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: ", upper.join(path).display())),
            "{option}: {msg}"
        );
        assert!(msg.contains("trusted.overlay."), "{option}: {msg}");
    }
}
