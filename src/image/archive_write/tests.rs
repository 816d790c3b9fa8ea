//! Saving the demo image (from its OCI layout and from its docker archive), then reading the
//! archive back: with our own reader (as a docker archive, and unpacked as an OCI layout) and,
//! where it is installed, with skopeo.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::*;
use crate::image::{Image, resolve_str};

const TAG: &str = "unionmount-demo:latest";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("layers-testdata")
        .join(rel)
}

/// The demo's plain layer tars, bottom first (their sha256 are the diff_ids).
fn demo_tars() -> Vec<Vec<u8>> {
    ["base", "app", "config"]
        .iter()
        .map(|n| std::fs::read(testdata(&format!("demo/{n}.tar"))).unwrap())
        .collect()
}

fn demo_oci() -> Image {
    let reference = format!("oci:{}:latest", testdata("demo-oci").display());
    resolve_str(&reference, None).unwrap()
}

/// The demo config as stored in the OCI layout (the docker archives hold the same bytes).
fn demo_config(image: &Image) -> Vec<u8> {
    let digest = image.config_digest.as_ref().unwrap();
    std::fs::read(testdata("demo-oci/blobs/sha256").join(digest.hex())).unwrap()
}

fn demo_save(tags: &[&str]) -> SaveImage {
    let image = demo_oci();
    let config = demo_config(&image);
    SaveImage::from_image(&image, tags.iter().map(|t| t.to_string()).collect(), config).unwrap()
}

fn save_to(dir: &Path, name: &str, images: &[SaveImage]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    save(images, std::io::BufWriter::new(file)).unwrap();
    path
}

/// Every member of an archive in order: name, header, data.
fn members(path: &Path) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let header = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, header, data)
        })
        .collect()
}

fn member_json(path: &Path, name: &str) -> Value {
    let (_, _, data) = members(path)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no member {name}"));
    serde_json::from_slice(&data).unwrap()
}

/// The layers of a resolved image, bottom first, as (diff_id, stored digest, bytes).
fn layer_bytes(image: &Image) -> Vec<(Digest, Option<Digest>, Vec<u8>)> {
    image
        .layers
        .iter()
        .rev()
        .map(|l| match l {
            LayerSource::Blob(b) => {
                let mut data = vec![0u8; b.len as usize];
                std::fs::File::open(&b.path)
                    .unwrap()
                    .read_exact_at(&mut data, b.offset)
                    .unwrap();
                (b.diff_id.clone().unwrap(), b.digest.clone(), data)
            }
            other => panic!("not a blob: {other:?}"),
        })
        .collect()
}

fn diff_ids(image: &Image) -> Vec<Digest> {
    image.config.diff_ids().unwrap()
}

/// Checks that `back` (read from a saved archive) is the demo image with uncompressed layers.
fn assert_is_demo(back: &Image, original: &Image) {
    assert_eq!(back.config_digest, original.config_digest);
    assert_eq!(diff_ids(back), diff_ids(original));
    let layers = layer_bytes(back);
    assert_eq!(layers.len(), 3);
    for ((diff_id, digest, data), tar) in layers.iter().zip(demo_tars()) {
        assert_eq!(digest.as_ref(), Some(diff_id), "blob named by its diff_id");
        assert_eq!(sha256_of(data), *diff_id);
        assert!(*data == tar, "layer {diff_id} differs from the demo tar");
    }
}

fn unpack(archive: &Path, dir: &Path) {
    tar::Archive::new(std::fs::File::open(archive).unwrap())
        .unpack(dir)
        .unwrap();
}

fn skopeo() -> bool {
    let found = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("note: skopeo is not installed; skipping the skopeo checks");
    }
    found
}

fn skopeo_inspect(args: &[&str]) -> Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn demo_saves_in_the_docker_25_layout() {
    let dir = tempfile::tempdir().unwrap();
    let original = demo_oci();
    let file = save_to(dir.path(), "demo.tar", &[demo_save(&[TAG])]);

    let all = members(&file);
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    let id = original.config_digest.clone().unwrap();
    let ids = diff_ids(&original);
    let manifest_hex = {
        let index = member_json(&file, "index.json");
        let d = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        d["sha256:".len()..].to_string()
    };
    let mut blobs: Vec<String> = ids
        .iter()
        .chain([&id])
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .chain([format!("blobs/sha256/{manifest_hex}")])
        .collect();
    blobs.sort();
    let mut expected = vec!["blobs/", "blobs/sha256/"];
    expected.extend(blobs.iter().map(String::as_str));
    expected.extend(["index.json", "manifest.json", "oci-layout", "repositories"]);
    assert_eq!(names, expected);
    for (name, h, _) in &all {
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0),
            "{name}"
        );
    }

    let layer_paths: Vec<String> = ids
        .iter()
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .collect();
    assert_eq!(
        member_json(&file, "manifest.json"),
        json!([{
            "Config": format!("blobs/sha256/{}", id.hex()),
            "RepoTags": [TAG],
            "Layers": layer_paths,
        }])
    );
    assert_eq!(
        member_json(&file, "repositories"),
        json!({"unionmount-demo": {"latest": ids[2].hex()}})
    );
    assert_eq!(
        member_json(&file, "oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = member_json(&file, "index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"],
        json!({
            "io.containerd.image.name": "docker.io/library/unionmount-demo:latest",
            "org.opencontainers.image.ref.name": "latest",
        })
    );
    assert_eq!(
        entry["platform"],
        json!({"architecture": original.config.architecture, "os": original.config.os})
    );
    let manifest = member_json(&file, &format!("blobs/sha256/{manifest_hex}"));
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["digest"], id.as_str());
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
    let tars = demo_tars();
    for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(layer["mediaType"], OCI_LAYER_TAR);
        assert_eq!(layer["digest"], ids[i].as_str());
        assert_eq!(layer["size"], tars[i].len());
    }
}

#[test]
fn saved_demo_reads_back_as_a_docker_archive() {
    let dir = tempfile::tempdir().unwrap();
    let original = demo_oci();
    let file = save_to(dir.path(), "demo.tar", &[demo_save(&[TAG])]);
    for reference in [
        format!("docker-archive:{}", file.display()),
        format!("docker-archive:{}:{TAG}", file.display()),
        format!(
            "docker-archive:{}:docker.io/library/unionmount-demo",
            file.display()
        ),
    ] {
        let back = resolve_str(&reference, None).unwrap();
        assert_is_demo(&back, &original);
    }
}

#[test]
fn saved_demo_reads_back_as_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let original = demo_oci();
    let file = save_to(dir.path(), "demo.tar", &[demo_save(&[TAG])]);
    let layout = dir.path().join("layout");
    unpack(&file, &layout);
    let back = resolve_str(&format!("oci:{}:latest", layout.display()), None).unwrap();
    assert_is_demo(&back, &original);
    for layer in &back.layers {
        let LayerSource::Blob(b) = layer else {
            panic!("not a blob")
        };
        assert_eq!(b.compression, Compression::None);
    }
}

#[test]
fn saving_is_deterministic_whatever_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let from_oci = save_to(dir.path(), "a.tar", &[demo_save(&[TAG])]);
    let again = save_to(dir.path(), "b.tar", &[demo_save(&[TAG])]);

    // The classic docker archive of the same image: uncompressed layers, found by magic.
    let reference = format!("docker-archive:{}", testdata("demo-docker.tar").display());
    let docker = resolve_str(&reference, None).unwrap();
    let config = demo_config(&demo_oci());
    let image = SaveImage::from_image(&docker, vec![TAG.into()], config).unwrap();
    let from_docker = save_to(dir.path(), "c.tar", &[image]);

    let bytes = std::fs::read(&from_oci).unwrap();
    assert!(bytes == std::fs::read(again).unwrap());
    assert!(bytes == std::fs::read(from_docker).unwrap());
}

#[test]
fn skopeo_reads_the_saved_archive() {
    if !skopeo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let original = demo_oci();
    let file = save_to(dir.path(), "demo.tar", &[demo_save(&[TAG])]);
    let ids: Vec<String> = diff_ids(&original).iter().map(|d| d.to_string()).collect();
    let archive = format!("docker-archive:{}", file.display());

    let info = skopeo_inspect(&[&archive]);
    assert_eq!(info["Layers"], json!(ids));
    let config = skopeo_inspect(&["--config", &archive]);
    assert_eq!(config["rootfs"]["diff_ids"], json!(ids));
    let tagged = skopeo_inspect(&[&format!("{archive}:{TAG}")]);
    assert_eq!(tagged["Layers"], json!(ids));

    // The same file read as an OCI archive goes through index.json and the OCI manifest.
    let oci = skopeo_inspect(&[&format!("oci-archive:{}", file.display())]);
    assert_eq!(oci["Layers"], json!(ids));
    assert_eq!(
        oci["Digest"].as_str().unwrap(),
        member_json(&file, "index.json")["manifests"][0]["digest"]
    );
}

#[test]
fn shared_layers_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let original = demo_oci();
    let ids = diff_ids(&original);
    // A second image made of the demo's bottom two layers.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ids[0].as_str(), ids[1].as_str()]},
    }))
    .unwrap();
    let mut base = demo_save(&[]);
    base.layers.truncate(2);
    let base = SaveImage {
        repo_tags: vec!["example.com/base:two".into()],
        config,
        layers: base.layers,
    };
    let file = save_to(
        dir.path(),
        "two.tar",
        &[demo_save(&["demo:one"]), base, demo_save(&["demo:also"])],
    );

    let all = members(&file);
    let mut names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    let blob_count = names
        .iter()
        .filter(|n| n.len() > 13 && n.starts_with("blobs/sha256/"))
        .count();
    assert_eq!(blob_count, 3 + 2 + 2, "3 layers, 2 configs, 2 manifests");
    names.dedup();
    assert_eq!(names.len(), all.len(), "no member twice");

    // The demo, given twice, is one entry with both tags.
    let manifest = member_json(&file, "manifest.json");
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["RepoTags"], json!(["demo:one", "demo:also"]));
    assert_eq!(
        member_json(&file, "repositories"),
        json!({
            "demo": {"one": ids[2].hex(), "also": ids[2].hex()},
            "example.com/base": {"two": ids[1].hex()},
        })
    );

    for (tag, count) in [
        ("demo:one", 3),
        ("demo:also", 3),
        ("example.com/base:two", 2),
    ] {
        let back = resolve_str(&format!("docker-archive:{}:{tag}", file.display()), None)
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(back.layers.len(), count, "{tag}");
        assert_eq!(diff_ids(&back)[..], ids[..count]);
    }
    let layout = dir.path().join("layout");
    unpack(&file, &layout);
    let back = resolve_str(&format!("oci:{}:two", layout.display()), None).unwrap();
    assert_eq!(diff_ids(&back)[..], ids[..2]);
    let index = std::fs::read(layout.join("index.json")).unwrap();
    let index: Value = serde_json::from_slice(&index).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/demo:one",
            "docker.io/library/demo:also",
            "example.com/base:two"
        ]
    );

    if skopeo() {
        let archive = format!("docker-archive:{}", file.display());
        let info = skopeo_inspect(&[&format!("{archive}:example.com/base:two")]);
        assert_eq!(info["Layers"], json!([ids[0].as_str(), ids[1].as_str()]));
    }
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_an_error() {
    let mut image = demo_save(&[TAG]);
    // Swap the sources of the bottom two layers: each now reads the other's bytes.
    let (a, b) = image.layers.split_at_mut(1);
    std::mem::swap(&mut a[0].data, &mut b[0].data);
    let mut out = Vec::new();
    let err = save(&[image], &mut out).unwrap_err();
    let SaveError::DiffIdMismatch {
        layer,
        expected,
        actual,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    let ids = diff_ids(&demo_oci());
    assert_eq!((expected, actual), (&ids[0], &ids[1]));
    assert!(layer.starts_with("layer 1 of 3"), "{layer}");
    let message = err.to_string();
    assert!(message.contains(TAG) && message.contains("demo-oci/blobs/sha256/"));
    assert!(out.is_empty(), "nothing is written when a layer is bad");
}

/// A layer whose stream gives `first` on the first open and `second` after.
fn changing_layer(first: Vec<u8>, second: Vec<u8>) -> SaveImage {
    let diff_id = sha256_of(&first);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
    }))
    .unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let open = move || -> std::io::Result<Box<dyn Read + Send>> {
        let data = match opened.fetch_add(1, Ordering::SeqCst) {
            0 => first.clone(),
            _ => second.clone(),
        };
        Ok(Box::new(std::io::Cursor::new(data)))
    };
    SaveImage {
        repo_tags: vec!["changing:1".into()],
        config,
        layers: vec![SaveLayer {
            diff_id,
            data: LayerData::Open(Box::new(open)),
        }],
    }
}

#[test]
fn a_layer_that_changes_between_passes_is_an_error() {
    let tar = demo_tars().remove(0);
    let mut flipped = tar.clone();
    flipped[600] ^= 1;
    let mut longer = tar.clone();
    longer.extend_from_slice(&[0; 512]);
    let shorter = tar[..tar.len() - 512].to_vec();
    for (second, want) in [
        (flipped, "digest"),
        (longer, "longer"),
        (shorter, "shorter"),
    ] {
        let err = save(&[changing_layer(tar.clone(), second)], Vec::new()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("layer 1 of 1"), "{message}");
        match want {
            "digest" => assert!(matches!(err, SaveError::DiffIdMismatch { .. }), "{err}"),
            w => assert!(
                matches!(&err, SaveError::Changed { reason, .. } if reason.contains(w)),
                "{err}"
            ),
        }
    }
    // An unchanging stream saves and reads back.
    let dir = tempfile::tempdir().unwrap();
    let file = save_to(dir.path(), "s.tar", &[changing_layer(tar.clone(), tar)]);
    let back = resolve_str(&format!("docker-archive:{}", file.display()), None).unwrap();
    assert_eq!(back.layers.len(), 1);
}

#[test]
fn an_untagged_image_has_no_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = save_to(dir.path(), "u.tar", &[demo_save(&[])]);
    let names: Vec<String> = members(&file).into_iter().map(|(n, _, _)| n).collect();
    assert!(!names.contains(&"repositories".to_string()));
    assert_eq!(
        member_json(&file, "manifest.json")[0]["RepoTags"],
        Value::Null
    );
    let index = member_json(&file, "index.json");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert!(index["manifests"][0].get("annotations").is_none());
    let back = resolve_str(&format!("docker-archive:{}", file.display()), None).unwrap();
    assert_is_demo(&back, &demo_oci());
}

#[test]
fn tags_are_shortened_and_checked() {
    let ok: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        ("alpine", ("alpine", "latest")),
        ("alpine:3.19", ("alpine", "3.19")),
        ("docker.io/library/alpine:3", ("alpine", "3")),
        ("library/alpine:3", ("alpine", "3")),
        ("docker.io/me/app", ("me/app", "latest")),
        ("localhost:5000/app:v1", ("localhost:5000/app", "v1")),
        ("example.com/a/b:c", ("example.com/a/b", "c")),
    ]);
    for (tag, (repo, t)) in ok {
        assert_eq!(split_tag(tag).unwrap(), (repo.into(), t.into()), "{tag}");
    }
    for tag in [
        "App:1",
        "me/App:1",
        "alpine@sha256:0000",
        "a:b:c",
        "",
        "alpine:",
        "x/:1",
    ] {
        assert!(split_tag(tag).is_err(), "{tag:?}");
    }
    assert_eq!(full_name("alpine"), "docker.io/library/alpine");
    assert_eq!(full_name("me/app"), "docker.io/me/app");
    assert_eq!(full_name("localhost/app"), "localhost/app");
    assert_eq!(full_name("example.com/app"), "example.com/app");

    // One tag cannot name two images.
    let mut other = demo_save(&["demo:x"]);
    other.config.push(b' ');
    let err = save(&[demo_save(&["demo:x"]), other], Vec::new()).unwrap_err();
    assert!(matches!(err, SaveError::Tag { .. }), "{err}");
    let err = save(&[demo_save(&["Demo:x"])], Vec::new()).unwrap_err();
    assert!(err.to_string().contains("lowercase"), "{err}");
}

#[test]
fn a_config_that_does_not_list_the_layers_is_an_error() {
    let mut image = demo_save(&[TAG]);
    image.layers.pop();
    let err = save(&[image], Vec::new()).unwrap_err();
    assert!(
        matches!(&err, SaveError::Config { reason, .. } if reason.contains("3 layers")),
        "{err}"
    );
    let mut image = demo_save(&[TAG]);
    image.config = b"not json".to_vec();
    let err = save(&[image], Vec::new()).unwrap_err();
    assert!(err.to_string().contains("invalid JSON"), "{err}");
}
