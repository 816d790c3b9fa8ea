//! Differential tests: the same layers through kernel overlayfs (the oracle) and through
//! unionmount, compared as full tree snapshots; plus readdir, read-only, statfs, inode and
//! concurrency checks on a unionmount mount.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tempfile::TempDir;

const MIB: usize = 1 << 20;

/// A `security.capability` value (vfs_cap_data revision 2, effective, CAP_NET_RAW permitted),
/// as `setcap cap_net_raw+ep` writes it; the kernel validates the format.
fn net_raw_capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted[1]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[1]
    v
}

fn long_path() -> String {
    format!("long/{}/{}", "d".repeat(120), "f".repeat(150))
}

/// Three layers, bottom first, covering the cases the union has to get right.
fn stack() -> Vec<Vec<Entry>> {
    let mut base = vec![
        root().mtime(1_600_000_100, 0),
        file("etc/os-release", "ID=demo\n"),
        file("etc/motd", "base motd\n"),
        file("etc/hostname", "base\n"),
        file("etc/empty", ""),
        file("etc/passwd", "root:x:0:0::/root:/bin/sh\n").mtime(1_600_000_000, 123_456_789),
        file("etc/shadow", "root:*:1::::::\n")
            .mode(0o640)
            .owner(0, 42),
        file("etc/nomode", "unreadable for non-root\n").mode(0o000),
        file("etc/xattr-file", "x\n")
            .xattr("user.k", "v")
            .xattr("user.bin", [0u8, 1, 255]),
        dir_("opt")
            .xattr("user.dir", "1")
            .mtime(1_500_000_000, 999_999_999),
        // A file that becomes a directory, and a directory that becomes a file, one layer up.
        file("ftd", "file to dir\n"),
        file("dtf/inside", "dir to file\n"),
        // Whiteout targets.
        file("gone_file", "bye\n"),
        file("gone_dir/sub/a", "a\n"),
        dir_("gone_dir/empty"),
        // Made opaque one layer up.
        file("var/cache/a", "cache a\n"),
        file("var/cache/sub/b", "cache b\n"),
        file("var/log/syslog", "log\n"),
        // Nested merges.
        file("usr/share/doc/a/README", "a readme base\n"),
        file("usr/share/doc/b/README", "b readme\n"),
        // Symlinks: relative, absolute (dangling here), dangling relative, to a directory.
        symlink("bin", "usr/bin"),
        symlink("usr/bin/sh", "/bin/bash"),
        symlink("dangling", "nowhere/at/all"),
        symlink("etc-link", "etc"),
        // A hardlink group of three; one member is replaced one layer up.
        file("usr/bin/a", "#!/bin/sh\necho a\n").mode(0o755),
        hardlink("usr/bin/a2", "usr/bin/a"),
        hardlink("usr/bin/a3", "usr/bin/a"),
        file("usr/bin/su", "suid\n").mode(0o4755),
        file("usr/bin/wall", "sgid\n").mode(0o2755).owner(0, 5),
        file("usr/bin/ping", "cap\n")
            .mode(0o755)
            .xattr("security.capability", net_raw_capability()),
        dir_("tmp").mode(0o1777),
        dir_("home/user").mode(0o700).owner(1000, 1000),
        file("home/user/.profile", "PS1='$ '\n")
            .owner(1000, 1000)
            .mtime(1_650_000_000, 1),
        fifo("run/initctl").mode(0o600),
        chardev("dev/null", 1, 3).mode(0o666),
        chardev("dev/tty1", 4, 1).mode(0o620).owner(0, 5),
        blockdev("dev/loop0", 7, 0).mode(0o660).owner(0, 6),
        file("data/big.bin", pseudo_random(MIB, 7)),
        // A directory replaced by a symlink one layer up.
        file("lib/libc.so", "elf\n"),
        dir_("srv/www"),
        file("srv/www/index.html", "<html>\n"),
        // Names beyond ustar's 100/155 bytes: PAX `path` and `linkpath` records in tars.
        file(&long_path(), "long name\n"),
        symlink("longlink", &"t".repeat(200)),
        hardlink("long-hardlink", &long_path()),
    ];
    for i in 0..5000 {
        base.push(file(&format!("data/many/f{i:04}"), format!("{i}\n")));
    }

    let mut middle = vec![
        root().mtime(1_600_000_200, 0).mode(0o751),
        file("etc/motd", "middle motd\n")
            .mode(0o600)
            .owner(5, 6)
            .mtime(1_600_000_300, 42),
        file("etc/xattr-file", "x2\n").xattr("user.other", "only this"),
        whiteout("etc/hostname"),
        whiteout("etc/does-not-exist-below"),
        dir_("ftd").mode(0o750),
        file("ftd/inner", "now a dir\n"),
        file("dtf", "now a file\n"),
        whiteout("gone_file"),
        whiteout("gone_dir"),
        opaque("var/cache").mtime(1_600_000_400, 500),
        file("var/cache/x", "fresh\n"),
        file("var/log/messages", "more log\n"),
        file("usr/share/doc/a/README", "a readme middle\n"),
        file("usr/share/doc/c/README", "c readme\n"),
        file("usr/bin/a3", "replaced\n"),
        symlink("lib", "usr/lib"),
        file("opt/app/bin/app", "#!/bin/sh\n").mode(0o755),
        file("opt/app/lib/libapp.so", "lib\n"),
    ];
    for i in 1000..1100 {
        middle.push(file(&format!("data/many/f{i:04}"), format!("middle {i}\n")));
    }

    let mut top = vec![
        root().mtime(1_600_000_300, 7),
        file("etc/hostname", "top\n"),
        file("var/cache/y", "above the opaque dir\n"),
        file("usr/share/doc/a/NEWS", "news\n"),
        // Opaque over a merged directory, and an empty opaque directory.
        opaque("srv"),
        file("srv/only", "only this\n"),
        opaque("opt/app"),
    ];
    for i in 0..50 {
        top.push(whiteout(&format!("data/many/f{i:04}")));
    }
    for i in 0..100 {
        top.push(file(&format!("data/many/g{i:04}"), ""));
    }
    vec![base, middle, top]
}

/// Between kernel overlayfs and unionmount, directory `st_size` is left out: overlayfs reports
/// the size of the topmost real directory (4096 on ext4), a FUSE filesystem whatever it
/// synthesises, and neither is meaningful for a merged directory. Directory `st_nlink` is not
/// in the snapshot at all (overlayfs reports 1 for merged directories). Everything else —
/// kind, mode, uid, gid, mtime with nanoseconds, contents, link targets, rdev, xattrs, nlink
/// of non-directories, hardlink groups — must match, also for tar layers: the tar writer
/// emits the root (`./`) and every parent directory explicitly with the same attributes as
/// the directory form, so no directory of that stack is synthesised.
fn kernel_exclusions() -> Exclusions {
    Exclusions::default()
}

struct Fixture {
    // Fields drop in order: the mounts go before the directory holding them.
    kernel: KernelOverlay,
    tmp: TempDir,
}

/// The overlayfs-style stack mounted by the kernel, in a fresh temp dir.
fn kernel_fixture(layers: &[Vec<Entry>]) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = write_stack(tmp.path(), Form::OverlayDir, layers);
    let kernel = KernelOverlay::mount(&dirs, &mountpoint(tmp.path(), "kernel"));
    Fixture { kernel, tmp }
}

fn compare_with_kernel(form: Form) {
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), form, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    let expected = snapshot(fx.kernel.path());
    let actual = snapshot(um.path());
    assert_same_tree(
        &format!("{form:?} layers vs kernel overlayfs"),
        &expected,
        &actual,
        &kernel_exclusions(),
    );
}

/// The oracle itself sees what the description says: a check of the harness, so that the
/// differential tests below compare trees that really contain the cases they claim to.
#[test]
fn harness_kernel_overlay_shows_the_described_cases() {
    if !root_or_skip() {
        return;
    }
    let fx = kernel_fixture(&stack());
    let s = snapshot(fx.kernel.path());
    let n = |p: &str| {
        s.nodes
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from kernel tree"))
    };
    let read = |p: &str| std::fs::read_to_string(fx.kernel.path().join(p)).expect(p);
    assert_eq!(read("etc/motd"), "middle motd\n");
    assert_eq!(read("etc/hostname"), "top\n");
    for gone in [
        "gone_file",
        "gone_dir",
        "var/cache/a",
        "var/cache/sub",
        "srv/www",
        "opt/app/bin",
    ] {
        assert!(!s.nodes.contains_key(gone), "{gone} should be hidden");
    }
    assert!(s.nodes.contains_key("var/cache/x") && s.nodes.contains_key("var/cache/y"));
    assert_eq!(n("ftd").kind, 'd');
    assert_eq!(n("dtf").kind, 'f');
    assert_eq!(n("lib").kind, 'l');
    assert_eq!(n("usr/bin/su").mode, 0o4755);
    assert_eq!(n("tmp").mode, 0o1777);
    assert_eq!(n("etc/passwd").mtime, (1_600_000_000, 123_456_789));
    assert_eq!(n("dev/null").rdev, Some((1, 3)));
    assert_eq!(
        n("etc/xattr-file")
            .xattrs
            .get("user.other")
            .map(Vec::as_slice),
        Some(&b"only this"[..])
    );
    assert!(n("usr/bin/ping").xattrs.contains_key("security.capability"));
    assert_eq!(n("").mode, 0o755);
    assert_eq!(n("").mtime, (1_600_000_300, 7));
    let group: BTreeSet<String> = ["usr/bin/a", "usr/bin/a2"].map(String::from).into();
    assert!(
        s.hardlinks.contains(&group),
        "hardlink groups: {:?}",
        s.hardlinks
    );
    let many = s
        .nodes
        .keys()
        .filter(|p| p.starts_with("data/many/"))
        .count();
    assert_eq!(many, 5000 - 50 + 100);
    assert_eq!(n("data/big.bin").size, MIB as u64);
}

/// The comparison itself notices each kind of difference (no mount needed: plain directories).
#[test]
fn harness_diff_reports_each_difference() {
    // Writing the layers chowns to root.
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = vec![
        file("same", "s"),
        file("content", "a"),
        file("mode", "m"),
        file("mtime", "t").mtime(1_600_000_000, 1),
        file("xattr", "x").xattr("user.k", "1"),
        symlink("link", "a"),
        file("gone", "g"),
        file("h1", "h"),
        hardlink("h2", "h1"),
    ];
    let changed = vec![
        file("same", "s"),
        file("content", "b"),
        file("mode", "m").mode(0o600),
        file("mtime", "t").mtime(1_600_000_000, 2),
        file("xattr", "x").xattr("user.k", "2"),
        symlink("link", "b"),
        file("extra", "e"),
        file("h1", "h"),
        file("h2", "h"),
    ];
    let a = write_layer(&tmp.path().join("a"), Form::OverlayDir, &base);
    let b = write_layer(&tmp.path().join("b"), Form::OverlayDir, &changed);
    let d = diff(&snapshot(&a), &snapshot(&b), &Exclusions::default());
    let text = d.join("\n");
    for needle in [
        "content: sha256",
        "mode: mode: expected 0644, actual 0600",
        "mtime: mtime: expected 1600000000.000000001, actual 1600000000.000000002",
        "xattr: xattrs",
        "link: link",
        "gone: missing",
        "extra: unexpected",
        "hardlink group",
        "h1: nlink",
    ] {
        assert!(text.contains(needle), "diff lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("same:"), "identical file reported:\n{text}");
    assert!(diff(&snapshot(&a), &snapshot(&a), &Exclusions::default()).is_empty());
}

/// The tar form of a layer, extracted by GNU tar, is the same tree as the directory form: a
/// check of the tar writer (PAX mtime, xattrs, long names, devices, hardlinks).
#[test]
fn harness_tar_form_extracts_like_dir_form() {
    if !root_or_skip() {
        return;
    }
    let layers = vec![stack().remove(0)];
    let fx = kernel_fixture(&layers);
    let tars = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let extracted = mountpoint(fx.tmp.path(), "extracted");
    let st = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--delay-directory-restore",
            "-xpf",
        ])
        .arg(&tars[0])
        .arg("-C")
        .arg(&extracted)
        .status()
        .expect("run tar");
    assert!(st.success(), "tar -x failed");
    let from_tar = KernelOverlay::mount(&[&extracted], &mountpoint(fx.tmp.path(), "k2"));
    // Both sides are kernel overlayfs over ext4/tmpfs directories: even directory sizes match.
    let ex = Exclusions {
        compare_dir_sizes: true,
        ..Exclusions::default()
    };
    assert_same_tree(
        "GNU tar extraction vs dir form",
        &snapshot(fx.kernel.path()),
        &snapshot(from_tar.path()),
        &ex,
    );
}

#[test]
fn overlay_dir_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::OverlayDir);
}

/// Directory layers with OCI markers (as containers/storage leaves them) read like the
/// overlayfs-style ones do through the kernel.
#[test]
fn oci_dir_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::OciDir);
}

#[test]
fn tar_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_with_kernel(Form::Tar);
}

/// Binary xattr values — a newline, NUL and 0xff bytes, a file capability whose bytes contain
/// 0x0a — survive a tar layer (PAX records are length-prefixed, so any byte may appear).
#[test]
fn tar_binary_xattr_values_match_kernel() {
    if !root_or_skip() {
        return;
    }
    let mut cap = net_raw_capability();
    cap[4] = 0x0a; // permitted: CAP_DAC_OVERRIDE | CAP_FOWNER (bits 1 and 3)
    let layers = vec![
        vec![file("base", "b\n")],
        vec![
            file("nl", "x").xattr("user.nl", "line one\nline two\n"),
            file("bytes", "x").xattr("user.bin", [0u8, 10, 255, 0, 10]),
            file("cap", "x")
                .mode(0o755)
                .xattr("security.capability", cap),
            dir_("dir").xattr("user.only-newline", "\n"),
        ],
    ];
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree(
        "binary xattrs in tar vs kernel",
        &snapshot(fx.kernel.path()),
        &snapshot(um.path()),
        &kernel_exclusions(),
    );
}

/// Tars as GNU tar writes them (`--format=posix` with xattrs, and `--format=gnu` with its
/// `L`/`K` long-name entries), from the OCI-marker directory form of the stack. The gnu format
/// keeps neither xattrs nor sub-second mtimes, so that variant uses a description without them.
#[test]
fn gnu_tar_posix_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    compare_gnu_tar(stack(), "posix");
}

#[test]
fn gnu_tar_gnu_format_layers_match_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers: Vec<Vec<Entry>> = stack()
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|e| {
                    let secs = e.modified().0;
                    e.without_xattrs().mtime(secs, 0)
                })
                .collect()
        })
        .collect();
    compare_gnu_tar(layers, "gnu");
}

fn compare_gnu_tar(layers: Vec<Vec<Entry>>, format: &str) {
    let fx = kernel_fixture(&layers);
    let oci_dirs = write_stack(fx.tmp.path(), Form::OciDir, &layers);
    let tars: Vec<PathBuf> = oci_dirs
        .iter()
        .map(|dir| {
            let tar = dir.with_extension(format!("{format}.tar"));
            let mut cmd = std::process::Command::new("tar");
            cmd.arg(format!("--format={format}"))
                .args(["--sort=name", "--numeric-owner", "-cf"])
                .arg(&tar)
                .arg("-C")
                .arg(dir);
            if format == "posix" {
                cmd.args(["--xattrs", "--xattrs-include=*"]);
            }
            let out = cmd.arg(".").output().expect("run GNU tar");
            assert!(
                out.status.success(),
                "tar -c: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tar
        })
        .collect();
    let um = UnionMount::layers(&tars, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree(
        &format!("GNU tar --format={format} layers vs kernel"),
        &snapshot(fx.kernel.path()),
        &snapshot(um.path()),
        &kernel_exclusions(),
    );
}

/// A directory layer's symlink is never followed while merging: a directory above a symlink
/// hides it (it does not merge with the symlink's target), in every layer form.
#[test]
fn symlink_below_a_directory_is_not_merged() {
    if !root_or_skip() {
        return;
    }
    let layers = vec![
        vec![
            symlink("etc", "/etc"),
            symlink("rel", "../../.."),
            file("real/x", "x"),
        ],
        vec![
            file("etc/mine", "mine\n"),
            file("rel/mine", "mine\n"),
            symlink("real/y", "/"),
        ],
    ];
    let fx = kernel_fixture(&layers);
    for form in [Form::OverlayDir, Form::OciDir, Form::Tar] {
        let ours = write_stack(fx.tmp.path(), form, &layers);
        let um = UnionMount::layers(
            &ours,
            &mountpoint(fx.tmp.path(), &format!("union-{form:?}")),
        );
        assert_same_tree(
            &format!("{form:?}: symlinks below directories vs kernel"),
            &snapshot(fx.kernel.path()),
            &snapshot(um.path()),
            &kernel_exclusions(),
        );
        // The host's /etc/passwd must not show through the merged `etc/` (a real directory above
        // the layer's `etc -> /etc` symlink).
        assert!(
            !um.join("etc/passwd").exists(),
            "{form:?}: a lookup went through a lower layer's symlink to the host"
        );
    }
}

/// Sparse files as GNU tar stores them (old GNU sparse headers with `--format=gnu`, PAX sparse
/// 1.0 with `--format=posix`) read back with their holes as zeros.
#[test]
fn gnu_tar_sparse_files_read_back() {
    use std::os::unix::fs::FileExt;
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = mountpoint(tmp.path(), "src");
    let sparse = |name: &str, size: u64, chunks: &[(u64, &[u8])]| {
        let f = std::fs::File::create(src.join(name)).expect("create sparse file");
        f.set_len(size).expect("set_len");
        for (off, data) in chunks {
            f.write_all_at(data, *off).expect("write chunk");
        }
    };
    sparse(
        "holes",
        8 << 20,
        &[
            (0, b"start"),
            (3 << 20, &[7u8; 5000]),
            ((8 << 20) - 3, b"end"),
        ],
    );
    sparse("all-hole", 5 << 20, &[]);
    sparse("trailing-hole", 2 << 20, &[(4096, b"data")]);
    let mut layers = Vec::new();
    for (format, extra) in [("gnu", None), ("posix", Some("--sparse-version=1.0"))] {
        let tar = tmp.path().join(format!("sparse-{format}.tar"));
        let mut cmd = std::process::Command::new("tar");
        cmd.arg(format!("--format={format}")).arg("--sparse");
        if let Some(x) = extra {
            cmd.arg(x);
        }
        let out = cmd
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "tar -c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        layers.push(tar);
    }
    for tar in &layers {
        let mnt = mountpoint(
            tmp.path(),
            &format!(
                "m-{}",
                tar.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
            ),
        );
        let um = UnionMount::layers(&[tar], &mnt);
        for name in ["holes", "all-hole", "trailing-hole"] {
            let want = std::fs::read(src.join(name)).expect("read source");
            let got = std::fs::read(um.join(name))
                .unwrap_or_else(|e| panic!("{}: read {name}: {e}", tar.display()));
            assert_eq!(got.len(), want.len(), "{}: size of {name}", tar.display());
            let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                first_diff.is_none(),
                "{}: {name} differs from byte {first_diff:?}",
                tar.display()
            );
        }
    }
}

/// One stack mixing the three encodings: tar at the bottom, OCI dir in the middle, overlayfs
/// dir on top.
#[test]
fn mixed_layer_forms_match_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = vec![
        write_layer(&fx.tmp.path().join("m0.tar"), Form::Tar, &layers[0]),
        write_layer(&fx.tmp.path().join("m1"), Form::OciDir, &layers[1]),
        write_layer(&fx.tmp.path().join("m2"), Form::OverlayDir, &layers[2]),
    ];
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree(
        "mixed layers vs kernel",
        &snapshot(fx.kernel.path()),
        &snapshot(um.path()),
        &kernel_exclusions(),
    );
}

/// The fuse-overlayfs spelling `-o lowerdir=TOP:...:BOTTOM` gives the same tree.
#[test]
fn lowerdir_option_matches_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = stack();
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::lowerdir(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree(
        "-o lowerdir= vs kernel",
        &snapshot(fx.kernel.path()),
        &snapshot(um.path()),
        &kernel_exclusions(),
    );
}

/// A single layer is served as it is (the kernel needs two lowers; the guard adds an empty one).
#[test]
fn single_layer_matches_kernel() {
    if !root_or_skip() {
        return;
    }
    let layers = vec![stack().remove(0)];
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), Form::Tar, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));
    assert_same_tree(
        "single tar layer vs kernel",
        &snapshot(fx.kernel.path()),
        &snapshot(um.path()),
        &kernel_exclusions(),
    );
}

/// Tars from real images often lack entries for parent directories. Those directories must
/// appear (as directories, with the file reachable); their mode, owner and mtime are not
/// specified by the OCI image spec, so only their existence and kind are checked.
#[test]
fn tar_without_parent_entries_gets_synthesised_dirs() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tar_path = tmp.path().join("bare.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).expect("create tar"));
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_size(6);
        b.append_data(&mut h, "a/b/c/deep.txt", &b"deep!\n"[..])
            .expect("append");
        b.finish().expect("finish tar");
    }
    let um = UnionMount::layers(&[&tar_path], &mountpoint(tmp.path(), "union"));
    for d in ["a", "a/b", "a/b/c"] {
        let m = std::fs::symlink_metadata(um.join(d)).unwrap_or_else(|e| panic!("lstat {d}: {e}"));
        assert!(
            m.is_dir(),
            "{d} should be a synthesised directory, is {:?}",
            m.file_type()
        );
    }
    assert_eq!(
        std::fs::read(um.join("a/b/c/deep.txt")).expect("read deep.txt"),
        b"deep!\n"
    );
    let names: Vec<String> = std::fs::read_dir(um.path())
        .expect("read_dir root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(names, ["a"], "root lists exactly the synthesised parent");
}

/// An absolute symlink is shown as a link with its target unchanged; the daemon does not resolve
/// it against the host.
#[test]
fn absolute_symlinks_are_not_followed_by_the_daemon() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let l = write_layer(
        &tmp.path().join("l.tar"),
        Form::Tar,
        &[symlink("hostetc", "/etc"), file("f", "f\n")],
    );
    let um = UnionMount::layers(&[&l], &mountpoint(tmp.path(), "union"));
    let m = std::fs::symlink_metadata(um.join("hostetc")).expect("lstat hostetc");
    assert!(m.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(um.join("hostetc")).expect("readlink"),
        PathBuf::from("/etc")
    );
}

/// A merged directory of 100k entries (60k below, 60k above with 20k overlapping, 100 of the
/// lower-only names whited out) lists completely, without duplicates, like the kernel lists it.
#[test]
fn readdir_of_100k_entries_dir_layers() {
    if root_or_skip() {
        readdir_of_100k_entries_is_complete(Form::OverlayDir);
    }
}

#[test]
fn readdir_of_100k_entries_tar_layers() {
    if root_or_skip() {
        readdir_of_100k_entries_is_complete(Form::Tar);
    }
}

fn readdir_of_100k_entries_is_complete(form: Form) {
    let mut lower = vec![];
    let mut upper = vec![];
    for i in 0..60_000 {
        lower.push(file(&format!("big/f{i:06}"), ""));
    }
    for i in 40_000..100_100 {
        upper.push(file(&format!("big/f{i:06}"), ""));
    }
    for i in 0..100 {
        upper.push(whiteout(&format!("big/f{i:06}")));
    }
    let layers = vec![lower, upper];
    let fx = kernel_fixture(&layers);
    let ours = write_stack(fx.tmp.path(), form, &layers);
    let um = UnionMount::layers(&ours, &mountpoint(fx.tmp.path(), "union"));

    let mut kernel_names = names_of(&fx.kernel.path().join("big"));
    let mut union_names = names_of(&um.join("big"));
    assert_eq!(kernel_names.len(), 100_000, "harness: kernel count");
    assert_no_duplicates("union readdir of big/", &union_names);
    assert_eq!(union_names.len(), 100_000, "union readdir count of big/");
    kernel_names.sort();
    union_names.sort();
    assert!(
        kernel_names == union_names,
        "union big/ lists other names than the kernel"
    );

    // The same through raw readdir(3), with `.` and `..`.
    let raw = raw_readdir(&um.join("big"));
    assert_eq!(raw.len(), 100_002, "raw readdir count including . and ..");
    assert_no_duplicates("raw readdir of big/", &raw);
}
