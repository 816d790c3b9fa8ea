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

/// The demo's plain tar layers, bottom first.
fn demo_tars() -> Vec<PathBuf> {
    ["base", "app", "config"]
        .iter()
        .map(|n| testdata(&format!("demo/{n}.tar")))
        .collect()
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
    let tars = demo_tars();
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
    fails("docker://busybox", &["`unionmount pull` the image first"]);
    // A bare name is looked up in the store (an empty one here).
    let root = tmp.path().join("store");
    let root = root.to_str().expect("utf-8 path");
    assert_one_line_failure(
        &["mount", "--root", root, "busybox", &m],
        &mnt,
        &["image \"busybox\" not found"],
    );
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
    usage(
        &["mount", "--chunk-cache", "lots", &demo, &m],
        "--chunk-cache",
    );
    usage(
        &["mount", "--chunk-cache", "1.5G", &demo, &m],
        "--chunk-cache",
    );
}

/// --platform, --read-only, --cache and --chunk-cache are accepted with an image.
#[test]
fn image_mount_options() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let tars = demo_tars();
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
            "--chunk-cache",
            "16M",
        ],
        &mountpoint(tmp.path(), "mnt"),
    );
    assert_eq!(
        std::fs::read_to_string(um.join("opt/app/VERSION")).expect("read"),
        "1.0.1\n"
    );
}

/// `unionmount mount -f --cache CACHE IMAGE MNT` with the per-layer debug log on: the mount
/// guard and what the daemon said about each layer (see `TarLayer::open_blob`). Read-only: only
/// the mount's own opening of the layers is logged, and nothing is written to the store.
fn mount_logged(reference: &str, cache: &Path, mnt: &Path) -> UnionMount {
    let args = [
        "mount",
        "-f",
        "--read-only",
        "--cache",
        cache.to_str().expect("utf-8"),
        reference,
        mnt.to_str().expect("utf-8"),
    ];
    UnionMount::start_with_env(&args, &[("RUST_LOG", "unionmount=debug")], mnt)
}

/// The log lines about `digest`.
fn lines_about<'a>(log: &'a str, digest: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(&format!("{digest}:")))
        .collect()
}

/// The demo image's layer digests (`sha256:HEX`, the blob file names).
fn demo_layer_digests(layout: &Path) -> Vec<String> {
    oci_layer_blobs(layout, "latest")
        .iter()
        .map(|b| {
            let hex = b.file_name().and_then(|n| n.to_str()).expect("hex name");
            format!("sha256:{hex}")
        })
        .collect()
}

/// The second mount of an image loads every layer's saved index and indexes none: the log
/// says so per layer, and the tree is the same. (That a loaded index reads no blob data is
/// what the unit test `a_saved_index_spares_the_pass_and_a_corrupt_one_is_rebuilt` counts.)
#[test]
fn a_second_mount_loads_every_index_instead_of_reading_the_layers() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = testdata("demo-oci");
    let reference = oci_ref(&layout, "");
    let cache = tmp.path().join("cache");
    let digests = demo_layer_digests(&layout);
    assert_eq!(digests.len(), 3);

    let first = mount_logged(&reference, &cache, &mountpoint(tmp.path(), "first"));
    let want = snapshot(first.path());
    let log = first.stderr_text();
    first.unmount_and_wait();
    for d in &digests {
        let lines = lines_about(&log, d);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(": indexed ") && l.contains("; saved (")),
            "first mount, {d}: indexed and saved; log:\n{log}"
        );
    }

    let second = mount_logged(&reference, &cache, &mountpoint(tmp.path(), "second"));
    assert_same_tree(
        "second mount",
        &want,
        &snapshot(second.path()),
        &Exclusions::default(),
    );
    let log = second.stderr_text();
    for d in &digests {
        let lines = lines_about(&log, d);
        assert!(
            lines.iter().any(|l| l.contains(": loaded saved index (")),
            "second mount, {d}: loaded; log:\n{log}"
        );
    }
    assert!(
        !log.contains(": indexed "),
        "second mount indexed a layer; log:\n{log}"
    );
}

/// A saved index that was tampered with or cut short is refused and rebuilt (and saved
/// again), and the mount shows the same tree.
#[test]
fn corrupt_saved_indexes_are_rebuilt_and_the_mount_still_works() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = testdata("demo-oci");
    let reference = oci_ref(&layout, "");
    let cache = tmp.path().join("cache");
    let first = mount_logged(&reference, &cache, &mountpoint(tmp.path(), "first"));
    let want = snapshot(first.path());
    first.unmount_and_wait();

    let mut saved: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("read cache dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    saved.sort();
    assert_eq!(saved.len(), 3, "one saved index per layer: {saved:?}");
    for (i, path) in saved.iter().enumerate() {
        let mut bytes = std::fs::read(path).expect("read index");
        if i == 0 {
            bytes.truncate(bytes.len() / 2);
        } else {
            let at = bytes.len() / 2 + i;
            bytes[at] ^= 0x40;
        }
        std::fs::write(path, &bytes).expect("write index");
    }

    let second = mount_logged(&reference, &cache, &mountpoint(tmp.path(), "second"));
    assert_same_tree(
        "mount over corrupt indexes",
        &want,
        &snapshot(second.path()),
        &Exclusions::default(),
    );
    let log = second.stderr_text();
    second.unmount_and_wait();
    for d in demo_layer_digests(&layout) {
        let lines = lines_about(&log, &d);
        assert!(
            lines.iter().any(|l| l.contains("not using saved index")),
            "{d}: the corrupt index is refused; log:\n{log}"
        );
        assert!(
            lines.iter().any(|l| l.contains(": indexed ")),
            "{d}: and rebuilt; log:\n{log}"
        );
    }

    // The rebuilt indexes were saved over the bad ones.
    let third = mount_logged(&reference, &cache, &mountpoint(tmp.path(), "third"));
    let log = third.stderr_text();
    assert!(!log.contains(": indexed "), "log:\n{log}");
    assert_same_tree(
        "mount over rebuilt indexes",
        &want,
        &snapshot(third.path()),
        &Exclusions::default(),
    );
}
