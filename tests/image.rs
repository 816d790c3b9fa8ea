//! `unionmount mount IMAGE MOUNTPOINT` on real image formats: the merged tree of an OCI image
//! is what applying its layers in order with GNU tar gives; oci: and docker-archive: give the
//! same tree; a tampered, incomplete or malformed image is a one-line error and no mount.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("layers-testdata")
        .join(rel)
}

fn oci_ref(dir: &Path, suffix: &str) -> String {
    format!("oci:{}{suffix}", dir.display())
}

/// The tree GNU tar gives for `layers` (bottom first), and the snapshot of a mount of
/// `reference`, compared field by field.
fn assert_image_matches_layers(reference: &str, layers: &[PathBuf]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let expected_dir = tmp.path().join("expected");
    std::fs::create_dir(&expected_dir).expect("mkdir expected");
    apply_layers_with_gnu_tar(layers, &expected_dir);
    let expected = snapshot(&expected_dir);
    let um = UnionMount::image(reference, &[], &mountpoint(tmp.path(), "mnt"));
    let actual = snapshot(um.path());
    // Directory sizes are filesystem-specific; everything else must agree.
    assert_same_tree(reference, &expected, &actual, &Exclusions::default());
    assert!(
        actual.nodes.contains_key("etc/app/config.toml"),
        "the top layer is there"
    );
}

/// Uncompressed layers in an OCI layout (runs whatever compressed-layer support exists).
#[test]
fn plain_oci_layout_equals_its_layers_applied_in_order() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tars: Vec<PathBuf> = ["base", "app", "config"]
        .iter()
        .map(|n| testdata(&format!("demo/{n}.tar")))
        .collect();
    let layout = tmp.path().join("layout");
    write_plain_oci_layout(&layout, "v1", &tars);
    assert_image_matches_layers(&oci_ref(&layout, ":v1"), &tars);
}

/// The demo image: gzip and zstd layers.
#[test]
fn demo_oci_image_equals_its_layers_applied_in_order() {
    if !root_or_skip() {
        return;
    }
    let dir = testdata("demo-oci");
    let blobs = oci_layer_blobs(&dir, "latest");
    assert_eq!(blobs.len(), 3);
    assert_image_matches_layers(&oci_ref(&dir, ""), &blobs);
}

#[test]
fn oci_and_docker_archives_give_the_same_tree() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = UnionMount::image(
        &oci_ref(&testdata("demo-oci"), ":latest"),
        &[],
        &mountpoint(tmp.path(), "oci"),
    );
    let want = snapshot(oci.path());
    for (i, reference) in [
        format!("docker-archive:{}", testdata("demo-docker.tar").display()),
        format!(
            "docker-archive:{}:unionmount-demo:latest",
            testdata("demo-docker-oci.tar").display()
        ),
    ]
    .iter()
    .enumerate()
    {
        let um = UnionMount::image(
            reference,
            &[],
            &mountpoint(tmp.path(), &format!("archive{i}")),
        );
        assert_same_tree(
            reference,
            &want,
            &snapshot(um.path()),
            &Exclusions::default(),
        );
    }
}

/// One byte changed in a layer blob (same size, so only its digest can tell): the mount is
/// refused with one line naming the layer's digest.
#[test]
fn tampered_layer_blob_is_refused() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    copy_tree(&testdata("demo-oci"), &layout);
    // The top layer (zstd, stored blocks): a changed byte still decompresses, so only the
    // digest checks can catch it.
    let top = oci_layer_blobs(&layout, "latest").pop().expect("a layer");
    let mut data = std::fs::read(&top).expect("read blob");
    let at = data.len() / 2;
    data[at] ^= 0x20;
    std::fs::write(&top, &data).expect("write blob");
    let digest = format!(
        "sha256:{}",
        top.file_name().and_then(|n| n.to_str()).expect("hex name")
    );
    let mnt = mountpoint(tmp.path(), "mnt");
    let reference = oci_ref(&layout, "");
    assert_one_line_failure(
        &["mount", &reference, mnt.to_str().expect("utf-8")],
        &mnt,
        &[&digest],
    );
}

#[test]
fn broken_images_are_one_line_errors() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = mountpoint(tmp.path(), "mnt");
    let m = mnt.to_str().expect("utf-8").to_string();
    let layout = tmp.path().join("layout");
    copy_tree(&testdata("demo-oci"), &layout);
    let fails = |reference: &str, needles: &[&str]| {
        assert_one_line_failure(&["mount", reference, &m], &mnt, needles);
    };

    fails(
        &oci_ref(&layout, ":v9"),
        &["no image tagged \"v9\"", "tags: latest"],
    );
    fails(
        &format!(
            "docker-archive:{}:other",
            testdata("demo-docker.tar").display()
        ),
        &["no image tagged \"other:latest\"", "unionmount-demo:latest"],
    );
    fails("docker://busybox", &["registries are not supported yet"]);
    fails("busybox", &["no transport"]);
    fails(
        &oci_ref(&tmp.path().join("nowhere"), ""),
        &["nowhere: does not exist"],
    );

    // A missing layer blob.
    let blobs = oci_layer_blobs(&layout, "latest");
    let base = &blobs[0];
    let moved = tmp.path().join("base-blob");
    std::fs::rename(base, &moved).expect("move blob away");
    let hex = base
        .file_name()
        .and_then(|n| n.to_str())
        .expect("hex")
        .to_string();
    fails(
        &oci_ref(&layout, ""),
        &[&format!("blob sha256:{hex} is missing")],
    );
    std::fs::rename(&moved, base).expect("move blob back");

    // index.json that is not JSON.
    std::fs::write(
        layout.join("index.json"),
        "{\"schemaVersion\": 2, \"manifests\": [",
    )
    .expect("write");
    fails(&oci_ref(&layout, ""), &["index.json: invalid JSON"]);
    std::fs::remove_file(layout.join("index.json")).expect("rm index.json");
    fails(&oci_ref(&layout, ""), &["index.json: does not exist"]);

    // Wrong words.
    let usage = |args: &[&str], needle: &str| {
        let out = run_unionmount(args, Some(&mnt), std::time::Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    };
    let demo = oci_ref(&testdata("demo-oci"), "");
    let base_tar = testdata("demo/base.tar");
    let base_tar = base_tar.to_str().expect("utf-8");
    usage(&["mount", &demo, "--layer", base_tar, &m], "not both");
    usage(
        &[
            "mount",
            "--platform",
            "linux/amd64",
            "--layer",
            base_tar,
            &m,
        ],
        "--platform applies to an IMAGE only",
    );
    usage(&["mount", "--platform", "linux", &demo, &m], "want OS/ARCH");
    usage(&["mount", &m], "nothing to mount");
}

/// --platform, --read-only and --cache are accepted with an image.
#[test]
fn image_mount_options() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tars: Vec<PathBuf> = ["base", "app", "config"]
        .iter()
        .map(|n| testdata(&format!("demo/{n}.tar")))
        .collect();
    let layout = tmp.path().join("layout");
    write_plain_oci_layout(&layout, "latest", &tars);
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).expect("mkdir cache");
    let um = UnionMount::image(
        &oci_ref(&layout, ""),
        &[
            "--read-only",
            "--platform",
            "linux/amd64",
            "--cache",
            cache.to_str().expect("utf-8"),
        ],
        &mountpoint(tmp.path(), "mnt"),
    );
    assert_eq!(
        std::fs::read_to_string(um.join("opt/app/VERSION")).expect("read"),
        "1.0.1\n"
    );
}
