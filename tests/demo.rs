//! The demo image in layers-testdata/: it is what `scripts/make-testdata` generates (byte for
//! byte), and mounted it shows the merged tree its README describes.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("layers-testdata")
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read testdata file"));
            }
        }
    }
    out
}

/// Re-running the generator gives the committed files, byte for byte.
#[test]
fn make_testdata_reproduces_the_committed_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-testdata");
    let out = Command::new("python3")
        .arg(&script)
        .arg(tmp.path())
        .output()
        .expect("run python3 scripts/make-testdata (is python3 installed?)");
    assert!(
        out.status.success(),
        "make-testdata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = files_under(&testdata());
    let fresh = files_under(tmp.path());
    let committed_data: BTreeMap<_, _> = committed
        .iter()
        .filter(|(k, _)| !k.ends_with(".md"))
        .collect();
    let fresh_names: Vec<_> = fresh.keys().collect();
    let committed_names: Vec<_> = committed_data.keys().copied().collect();
    assert_eq!(
        fresh_names, committed_names,
        "generated file names differ from layers-testdata/"
    );
    for (name, data) in &fresh {
        assert!(
            committed[name] == *data,
            "layers-testdata/{name} differs from what scripts/make-testdata generates: re-run it"
        );
    }
}

fn demo_layers() -> Vec<PathBuf> {
    ["base", "app", "config"]
        .iter()
        .map(|n| testdata().join(format!("demo/{n}.tar")))
        .collect()
}

/// The merged tree of the README, path by path.
#[test]
fn demo_image_merges_as_documented() {
    use std::os::unix::fs::MetadataExt;
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let um = UnionMount::layers(&demo_layers(), &mountpoint(tmp.path(), "demo"));
    let s = snapshot(um.path());
    let listing: Vec<(String, char)> = s
        .nodes
        .iter()
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, n)| (p.clone(), n.kind))
        .collect();
    let want: Vec<(String, char)> = [
        ("bin", 'd'),
        ("bin/hello", 'l'),
        ("etc", 'd'),
        ("etc/app", 'd'),
        ("etc/app/config.toml", 'f'),
        ("etc/motd", 'f'),
        ("etc/os-release", 'f'),
        ("opt", 'd'),
        ("opt/app", 'd'),
        ("opt/app/VERSION", 'f'),
        ("opt/app/bin", 'd'),
        ("opt/app/bin/app", 'f'),
        ("tmp", 'd'),
        ("usr", 'd'),
        ("usr/bin", 'd'),
        ("usr/bin/hello", 'f'),
        ("usr/bin/hello-again", 'f'),
        ("usr/share", 'd'),
        ("var", 'd'),
        ("var/cache", 'd'),
        ("var/cache/app.cache", 'f'),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), *k))
    .collect();
    assert_eq!(listing, want, "merged demo tree (path, kind)");

    let read =
        |p: &str| std::fs::read_to_string(um.join(p)).unwrap_or_else(|e| panic!("read {p}: {e}"));
    assert!(read("etc/os-release").contains("PRETTY_NAME=\"unionmount demo\""));
    assert_eq!(read("etc/motd"), "Welcome to the app layer.\n");
    assert_eq!(read("opt/app/VERSION"), "1.0.1\n");
    assert_eq!(
        read("bin/hello"),
        read("usr/bin/hello"),
        "symlink resolves inside the mount"
    );
    let n = |p: &str| &s.nodes[p];
    assert_eq!(n("bin/hello").link.as_deref(), Some("../usr/bin/hello"));
    assert_eq!(n("usr/bin/hello").mode, 0o755);
    assert_eq!(n("usr/bin/hello").nlink, Some(2));
    assert_eq!(n("tmp").mode, 0o1777);
    assert_eq!(n("etc/app/config.toml").mode, 0o640);
    assert_eq!(n("etc/app/config.toml").mtime, (1_700_000_000, 123_456_789));
    assert_eq!(n("etc/motd").mtime, (1_700_000_000, 0));
    let hello = std::fs::metadata(um.join("usr/bin/hello")).expect("stat hello");
    let again = std::fs::metadata(um.join("usr/bin/hello-again")).expect("stat hello-again");
    assert_eq!(hello.ino(), again.ino(), "hardlink pair shares an inode");

    // The script is executable from the mount (execve through FUSE, the mount is not noexec).
    let out = Command::new(um.join("usr/bin/hello"))
        .output()
        .expect("run hello");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello from the unionmount demo\n"
    );
}
