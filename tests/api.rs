//! The library as a downstream crate uses it: only the public API (`LayerStack`, `Mounted`,
//! the `testing` feature's layer descriptions), none of tests/common. Needs root (or
//! fusermount3) and /dev/fuse.

use std::fs;
use std::path::Path;

use unionmount::LayerStack;
use unionmount::testing::{Form, dir, file, hardlink, opaque, symlink, whiteout, write_stack};

fn fuse_usable() -> bool {
    let root = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let ok =
        Path::new("/dev/fuse").exists() && (root || Path::new("/usr/bin/fusermount3").exists());
    if !ok {
        eprintln!("no FUSE here: skipped");
    }
    ok
}

fn tree(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = tmp.join("base");
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/motd"), "base\n").unwrap();
    fs::write(base.join("etc/gone"), "gone\n").unwrap();
    let app = tmp.join("app");
    fs::create_dir_all(app.join("etc")).unwrap();
    fs::write(app.join("etc/motd"), "app\n").unwrap();
    // An OCI whiteout: `etc/gone` is deleted by this layer.
    fs::write(app.join("etc/.wh.gone"), "").unwrap();
    (base, app)
}

fn is_mounted(p: &Path) -> bool {
    let p = fs::canonicalize(p).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

#[test]
fn an_in_process_mount_merges_writes_and_unmounts_on_drop() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, app) = tree(tmp.path());
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = LayerStack::new()
        .layer(&base)
        .layer(&app)
        .writable(tmp.path().join("upper"), tmp.path().join("work"))
        .mount(&mnt)
        .unwrap();
    assert_eq!(
        fs::read_to_string(mounted.path().join("etc/motd")).unwrap(),
        "app\n"
    );
    assert!(!mounted.path().join("etc/gone").exists());
    fs::write(mounted.path().join("etc/new"), "new\n").unwrap();
    drop(mounted);
    assert!(!is_mounted(&mnt), "dropping the guard unmounts");
    assert_eq!(
        fs::read_to_string(tmp.path().join("upper/etc/new")).unwrap(),
        "new\n"
    );
    assert!(!base.join("etc/new").exists(), "lowers untouched");
}

#[test]
fn a_panic_while_mounted_still_unmounts() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = tree(tmp.path());
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let m = mnt.clone();
    let result = std::panic::catch_unwind(move || {
        let mounted = LayerStack::new().layer(&base).mount(&m).unwrap();
        assert!(mounted.path().join("etc/motd").exists());
        panic!("the test body fails");
    });
    assert!(result.is_err());
    assert!(!is_mounted(&mnt), "unwinding unmounts");
}

#[test]
fn a_spawned_mount_runs_the_binary_and_reports_its_errors() {
    if !fuse_usable() {
        return;
    }
    // SAFETY: no other thread of this test binary reads or writes the environment.
    unsafe { std::env::set_var("UNIONMOUNT_BIN", env!("CARGO_BIN_EXE_unionmount")) };
    let tmp = tempfile::tempdir().unwrap();
    let (base, app) = tree(tmp.path());
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = LayerStack::new()
        .layer(&base)
        .layer(&app)
        .spawn(&mnt)
        .unwrap();
    assert_eq!(
        fs::read_to_string(mounted.path().join("etc/motd")).unwrap(),
        "app\n"
    );
    mounted.unmount().unwrap();
    assert!(!is_mounted(&mnt));

    let missing = tmp.path().join("no-such-layer");
    let err = LayerStack::new().layer(&missing).spawn(&mnt).unwrap_err();
    assert!(err.to_string().contains("no-such-layer"), "{err}");
    assert!(!is_mounted(&mnt));
}

#[test]
fn images_are_layers_too() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let demo = concat!(
        "oci:",
        env!("CARGO_MANIFEST_DIR"),
        "/layers-testdata/demo-oci:latest"
    );
    let mounted = LayerStack::new().image(demo).unwrap().mount(&mnt).unwrap();
    assert!(mounted.path().join("etc/os-release").exists());
    let err = LayerStack::new().image("oci:/nowhere:latest").unwrap_err();
    assert!(err.to_string().contains("/nowhere"), "{err}");
}

#[test]
fn described_layers_mount_in_every_form() {
    if !fuse_usable() {
        return;
    }
    let base = [
        file("etc/motd", "base\n").mode(0o600).owner(1, 2),
        file("etc/gone", "gone\n"),
        file("var/cache/old", "old\n"),
        file("usr/lib/a", "a\n"),
        hardlink("usr/lib/b", "usr/lib/a"),
    ];
    let top = [
        file("etc/motd", "top\n").xattr("user.k", "v"),
        whiteout("etc/gone"),
        opaque("var/cache"),
        dir("empty").mode(0o700),
        symlink("lib", "usr/lib"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, (form_low, form_top)) in [
        (Form::Tar, Form::Tar),
        (Form::OciDir, Form::OverlayDir),
        (Form::OverlayDir, Form::OciDir),
    ]
    .into_iter()
    .enumerate()
    {
        let mnt = tmp.path().join(format!("mnt{i}"));
        fs::create_dir(&mnt).unwrap();
        let mounted = LayerStack::new()
            .layer_from(&base, form_low)
            .unwrap()
            .layer_from(&top, form_top)
            .unwrap()
            .mount(&mnt)
            .unwrap();
        let m = mounted.path();
        let what = format!("{form_low:?} under {form_top:?}");
        assert_eq!(
            fs::read_to_string(m.join("etc/motd")).unwrap(),
            "top\n",
            "{what}"
        );
        assert!(!m.join("etc/gone").exists(), "{what}");
        assert_eq!(
            fs::read_dir(m.join("var/cache")).unwrap().count(),
            0,
            "{what}"
        );
        assert_eq!(
            fs::read_to_string(m.join("lib/b")).unwrap(),
            "a\n",
            "{what}"
        );
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            fs::metadata(m.join("usr/lib/a")).unwrap(),
            fs::metadata(m.join("usr/lib/b")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "{what}: hard links");
        assert_eq!(
            fs::metadata(m.join("empty")).unwrap().mode() & 0o7777,
            0o700
        );
        drop(mounted);
        assert!(!is_mounted(&mnt));
    }

    // The same descriptions, written where the test wants them.
    let stack = write_stack(tmp.path(), Form::Tar, &[base.to_vec(), top.to_vec()]).unwrap();
    assert_eq!(stack.len(), 2);
    assert!(stack.iter().all(|p| p.is_file()));
    let err = write_stack(tmp.path(), Form::Tar, &[vec![hardlink("x", "nowhere")]]).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}
