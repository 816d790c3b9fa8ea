//! Images written by the tools users have, not by our own generator: skopeo re-encodes the
//! demo image as an OCI layout with gzip layers, as one with zstd layers (real zstd frames,
//! unlike the demo's stored blocks) and as a `docker save`-style archive; umoci unpacks the
//! same image the way runtimes do. Every mount must show exactly umoci's tree.
//!
//! skopeo and umoci come from Debian (`.ci/run` installs them). Without them the test is
//! skipped with a message, except under CI, where it fails.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skopeo_copy(args: &[&str], from: &str, to: &str) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .args(args)
        .args([from, to]));
}

#[test]
fn images_written_by_skopeo_mount_as_umoci_unpacks_them() {
    if !root_or_skip() {
        return;
    }
    if !have("skopeo") || !have("umoci") {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo and umoci are needed under CI (apt-get install -y skopeo umoci)"
        );
        eprintln!("SKIPPED: skopeo or umoci is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("layers-testdata/demo-oci");
    let at = |name: &str| -> PathBuf { t.join(name) };
    let oci = |dir: &str, tag: &str| format!("oci:{}:{tag}", at(dir).display());

    skopeo_copy(
        &["--dest-compress", "--dest-compress-format", "gzip"],
        &format!("oci:{}:latest", demo.display()),
        &oci("gz", "v1"),
    );
    skopeo_copy(
        &["--dest-compress", "--dest-compress-format", "zstd"],
        &oci("gz", "v1"),
        &oci("zst", "v1"),
    );
    let archive = at("demo.tar");
    skopeo_copy(
        &[],
        &oci("gz", "v1"),
        &format!("docker-archive:{}:demo:v1", archive.display()),
    );

    // The reference tree: umoci applies the layers the way runtimes do.
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:v1", at("gz").display())])
        .arg(at("bundle")));
    let expected = snapshot(&at("bundle/rootfs"));
    // umoci leaves rootfs/'s own mtime at the time of unpacking (it writes into it after
    // applying the `./` entry); the mount shows the layer's `./` mtime.
    let mut exclusions = Exclusions::default();
    exclusions.ignore_mtime.insert(String::new());

    for (i, reference) in [
        oci("gz", "v1"),
        oci("zst", "v1"),
        format!("docker-archive:{}", archive.display()),
        format!("docker-archive:{}:demo:v1", archive.display()),
    ]
    .iter()
    .enumerate()
    {
        let mnt = mountpoint(t, &format!("mnt{i}"));
        let um = UnionMount::image(reference, &["--no-cache"], &mnt);
        let actual = snapshot(um.path());
        assert_same_tree(reference, &expected, &actual, &exclusions);
        drop(um);
    }
}
