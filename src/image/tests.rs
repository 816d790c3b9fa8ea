//! Resolving the demo image (layers-testdata/) through every transport, and layouts and
//! archives built here with one thing wrong each.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::oci::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use super::platform::Platform;
use super::{Image, resolve_str, sha256_of};
use crate::layer::blob::{BlobRef, Compression, LayerSource};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("layers-testdata")
        .join(rel)
}

fn blobs(image: &Image) -> Vec<&BlobRef> {
    image
        .layers
        .iter()
        .map(|l| match l {
            LayerSource::Blob(b) => b,
            other => panic!("not a blob: {other:?}"),
        })
        .collect()
}

/// The demo's plain layers, topmost first, and their sha256 (the diff_ids).
fn demo_tars() -> Vec<(Vec<u8>, String)> {
    ["config", "app", "base"]
        .iter()
        .map(|n| {
            let data = std::fs::read(testdata(&format!("demo/{n}.tar"))).unwrap();
            let digest = sha256_of(&data).to_string();
            (data, digest)
        })
        .collect()
}

fn error(reference: &str) -> String {
    let e = resolve_str(reference, None).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn demo_oci_layout_resolves_topmost_first() {
    let reference = format!("oci:{}", testdata("demo-oci").display());
    let image = resolve_str(&reference, None).unwrap();
    let b = blobs(&image);
    let tars = demo_tars();
    assert_eq!(b.len(), 3);
    let compressions: Vec<_> = b.iter().map(|b| b.compression).collect();
    assert_eq!(
        compressions,
        [Compression::Zstd, Compression::Gzip, Compression::Gzip]
    );
    for (blob, (_, diff_id)) in b.iter().zip(&tars) {
        assert_eq!(blob.diff_id.as_ref().unwrap().as_str(), diff_id);
        let digest = blob.digest.as_ref().unwrap();
        assert!(blob.path.is_absolute() && blob.path.ends_with(digest.hex()));
        assert_eq!(
            (blob.offset, blob.len),
            (0, std::fs::metadata(&blob.path).unwrap().len())
        );
        assert_eq!(blob.image.as_deref(), Some(reference.as_str()));
    }
    assert_eq!(
        image
            .config
            .config
            .as_ref()
            .unwrap()
            .cmd
            .as_deref()
            .unwrap(),
        ["/usr/bin/hello"]
    );
    // The same image by tag, by index and by manifest digest.
    let digest = image.manifest_digest.clone().unwrap();
    for r in [
        format!("{reference}:latest"),
        format!("{reference}:@0"),
        format!("{reference}@{digest}"),
    ] {
        assert_eq!(resolve_str(&r, None).unwrap().layers.len(), 3, "{r}");
    }
}

#[test]
fn demo_docker_archives_are_byte_ranges_of_the_plain_layers() {
    let oci = resolve_str(&format!("oci:{}", testdata("demo-oci").display()), None).unwrap();
    for (file, digests) in [("demo-docker.tar", false), ("demo-docker-oci.tar", true)] {
        for suffix in [
            "",
            ":unionmount-demo",
            ":unionmount-demo:latest",
            ":docker.io/library/unionmount-demo",
            ":@0",
        ] {
            let reference = format!("docker-archive:{}{suffix}", testdata(file).display());
            let image = resolve_str(&reference, None).unwrap();
            assert_eq!(image.config_digest, oci.config_digest, "{reference}");
            let data = std::fs::read(testdata(file)).unwrap();
            for (blob, (tar, diff_id)) in blobs(&image).iter().zip(demo_tars()) {
                let range = blob.offset as usize..(blob.offset + blob.len) as usize;
                assert!(
                    data[range] == tar[..],
                    "{reference}: byte range of {diff_id}"
                );
                assert_eq!(blob.diff_id.as_ref().unwrap().as_str(), diff_id);
                assert_eq!(blob.compression, Compression::Detect);
                // The nested OCI layout names layers by digest; the classic one does not.
                assert_eq!(blob.digest.is_some(), digests, "{reference}");
                if digests {
                    assert_eq!(blob.digest.as_ref().unwrap().as_str(), diff_id);
                }
            }
        }
    }
}

/// An OCI layout written blob by blob, so that a test can break one thing.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Fixture { dir }
    }

    fn reference(&self, suffix: &str) -> String {
        format!("oci:{}{suffix}", self.dir.path().display())
    }

    /// Stores a blob; returns its descriptor.
    fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let digest = sha256_of(data);
        std::fs::write(
            self.dir.path().join("blobs/sha256").join(digest.hex()),
            data,
        )
        .unwrap();
        json!({"mediaType": media_type, "digest": digest.to_string(), "size": data.len()})
    }

    fn json_blob(&self, media_type: &str, doc: &Value) -> Value {
        self.blob(media_type, doc.to_string().as_bytes())
    }

    /// A one-layer image (layer media type `layer_type`); returns the manifest descriptor.
    fn image(&self, layer: &[u8], layer_type: &str, diff_ids: usize) -> Value {
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": vec![sha256_of(layer).to_string(); diff_ids]}});
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": self.json_blob(OCI_CONFIG, &config),
            "layers": [self.blob(layer_type, layer)]});
        self.json_blob(OCI_MANIFEST, &manifest)
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.path().join("index.json"), index.to_string()).unwrap();
    }

    fn tagged(mut desc: Value, tag: &str) -> Value {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        desc
    }

    fn with_platform(mut desc: Value, platform: &str) -> Value {
        let p = Platform::parse(platform).unwrap();
        desc["platform"] = json!({"os": p.os, "architecture": p.arch, "variant": p.variant});
        desc
    }
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

#[test]
fn tags_platforms_and_nested_indexes() {
    let f = Fixture::new();
    let amd = Fixture::with_platform(f.image(b"amd64 layer", TAR, 1), "linux/amd64");
    let arm = Fixture::with_platform(f.image(b"arm64 layer", TAR, 1), "linux/arm64/v8");
    let armv6 = Fixture::with_platform(f.image(b"armv6 layer", TAR, 1), "linux/arm/v6");
    let armv7 = Fixture::with_platform(f.image(b"armv7 layer", TAR, 1), "linux/arm/v7");
    let inner = f.json_blob(
        OCI_INDEX,
        &json!({"schemaVersion": 2,
        "manifests": [amd, arm, armv6, armv7]}),
    );
    let outer = f.json_blob(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "manifests": [inner]}),
    );
    f.index(vec![
        Fixture::tagged(outer, "multi"),
        Fixture::tagged(f.image(b"one", TAR, 1), "one"),
    ]);
    let diff_id = |reference: &str, platform: Option<&str>| {
        let p = platform.map(|p| Platform::parse(p).unwrap());
        let image = resolve_str(reference, p.as_ref()).unwrap();
        blobs(&image)[0].diff_id.clone().unwrap()
    };
    let multi = f.reference(":multi");
    assert_eq!(
        diff_id(&multi, Some("linux/arm64")),
        sha256_of(b"arm64 layer")
    );
    assert_eq!(
        diff_id(&multi, Some("linux/arm")),
        sha256_of(b"armv7 layer")
    );
    assert_eq!(
        diff_id(&multi, Some("linux/arm/v6")),
        sha256_of(b"armv6 layer")
    );
    let host = Platform::host();
    if host.arch == "amd64" {
        assert_eq!(diff_id(&multi, None), sha256_of(b"amd64 layer"));
    }
    let e = resolve_str(&multi, Some(&Platform::parse("linux/s390x").unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no manifest for platform linux/s390x") && e.contains("linux/arm/v7"),
        "{e}"
    );
    assert_eq!(diff_id(&f.reference(":one"), None), sha256_of(b"one"));
    // No tag, no "latest", two images: refused, naming the tags.
    let e = error(&f.reference(""));
    assert!(
        e.contains("none is tagged \"latest\"") && e.contains("multi, one"),
        "{e}"
    );
    let e = error(&f.reference(":two"));
    assert!(
        e.ends_with("no image tagged \"two\" (tags: multi, one)"),
        "{e}"
    );
    assert!(error(&f.reference(":@5")).contains("@5 is out of range"));
}

#[test]
fn broken_layouts_are_one_line_errors() {
    let f = Fixture::new();
    let r = f.reference("");
    assert!(
        error(&r).contains("index.json: does not exist"),
        "{}",
        error(&r)
    );
    std::fs::write(f.dir.path().join("index.json"), "{not json").unwrap();
    assert!(
        error(&r).contains("index.json: invalid JSON"),
        "{}",
        error(&r)
    );
    std::fs::write(f.dir.path().join("index.json"), r#"{"schemaVersion":2}"#).unwrap();
    assert!(
        error(&r).contains("missing field `manifests`"),
        "{}",
        error(&r)
    );
    std::fs::write(
        f.dir.path().join("index.json"),
        vec![b' '; (super::MAX_JSON_BYTES + 1) as usize],
    )
    .unwrap();
    assert!(error(&r).contains("limit"), "{}", error(&r));

    // A layer media type we cannot read.
    f.index(vec![f.image(
        b"l",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        1,
    )]);
    assert!(
        error(&r).contains("unsupported layer media type"),
        "{}",
        error(&r)
    );
    // diff_ids and layers disagree.
    f.index(vec![f.image(b"l", TAR, 2)]);
    assert!(
        error(&r).contains("lists 1 layers but the config has 2 diff_ids"),
        "{}",
        error(&r)
    );
    // A missing layer blob, then a layer blob of the wrong size.
    let desc = f.image(b"layer", TAR, 1);
    f.index(vec![desc]);
    let layer_path = f
        .dir
        .path()
        .join("blobs/sha256")
        .join(sha256_of(b"layer").hex());
    std::fs::remove_file(&layer_path).unwrap();
    let e = error(&r);
    assert!(
        e.ends_with(&format!("blob {} is missing", sha256_of(b"layer"))),
        "{e}"
    );
    std::fs::write(&layer_path, b"layer!").unwrap();
    assert!(
        error(&r).contains("size mismatch: expected 5 bytes, got 6"),
        "{}",
        error(&r)
    );
    // A manifest whose bytes do not match its digest.
    let desc = f.image(b"x", TAR, 1);
    let digest = desc["digest"].as_str().unwrap().to_string();
    let path = f
        .dir
        .path()
        .join("blobs/sha256")
        .join(&digest["sha256:".len()..]);
    let mut data = std::fs::read(&path).unwrap();
    data[0] = b' ';
    std::fs::write(&path, &data).unwrap();
    f.index(vec![desc]);
    let e = error(&r);
    assert!(
        e.contains(&format!(
            "manifest {digest}: digest mismatch: expected {digest}, got sha256:"
        )),
        "{e}"
    );
    // An artifact, not an image.
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": f.json_blob("application/vnd.example.thing+json", &json!({})), "layers": []});
    f.index(vec![f.json_blob(OCI_MANIFEST, &manifest)]);
    assert!(
        error(&r).contains("is not an image config"),
        "{}",
        error(&r)
    );
    // A layout version from the future.
    std::fs::write(
        f.dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    assert!(
        error(&r).contains("layout version \"2.0.0\" is not supported"),
        "{}",
        error(&r)
    );
    std::fs::remove_file(f.dir.path().join("oci-layout")).unwrap();
    assert!(
        error(&r).contains("not an OCI image layout"),
        "{}",
        error(&r)
    );
    assert!(error("oci:/nonexistent/layout").contains("/nonexistent/layout: does not exist"));
}

/// A docker archive with the given members (name, data), in order.
fn archive(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join("a.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
    path
}

#[test]
fn broken_archives_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let config = json!({"rootfs": {"type": "layers", "diff_ids": [sha256_of(b"l").to_string()]}})
        .to_string();
    let two = json!([
        {"Config": "c.json", "RepoTags": ["a:1"], "Layers": ["l.tar"]},
        {"Config": "c.json", "RepoTags": ["b:2", "docker.io/library/c:3"], "Layers": ["l.tar"]}
    ])
    .to_string();
    let path = archive(
        tmp.path(),
        &[
            ("manifest.json", two.as_bytes()),
            ("c.json", config.as_bytes()),
            ("l.tar", b"l"),
        ],
    );
    let r = format!("docker-archive:{}", path.display());
    let e = error(&r);
    assert!(
        e.contains("holds 2 images") && e.contains("a:1, b:2, docker.io/library/c:3"),
        "{e}"
    );
    assert_eq!(
        resolve_str(&format!("{r}:c:3"), None).unwrap().layers.len(),
        1
    );
    assert_eq!(
        resolve_str(&format!("{r}:@1"), None).unwrap().layers.len(),
        1
    );
    assert!(error(&format!("{r}:d")).contains("no image tagged \"d:latest\""));

    let missing = json!([{"Config": "c.json", "Layers": ["gone.tar"]}]).to_string();
    let path = archive(
        tmp.path(),
        &[
            ("manifest.json", missing.as_bytes()),
            ("c.json", config.as_bytes()),
        ],
    );
    assert!(
        error(&format!("docker-archive:{}", path.display()))
            .contains("member \"gone.tar\" is missing")
    );

    let path = archive(tmp.path(), &[("manifest.json", b"[{]")]);
    assert!(
        error(&format!("docker-archive:{}", path.display()))
            .contains("manifest.json: invalid JSON")
    );

    // A config named by a digest it does not have.
    let name = format!("{}.json", "0".repeat(64));
    let m = json!([{"Config": name, "Layers": ["l.tar"]}]).to_string();
    let path = archive(
        tmp.path(),
        &[
            ("manifest.json", m.as_bytes()),
            (&name, config.as_bytes()),
            ("l.tar", b"l"),
        ],
    );
    assert!(error(&format!("docker-archive:{}", path.display())).contains("digest mismatch"));

    let gz = tmp.path().join("a.tar.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    assert!(error(&format!("docker-archive:{}", gz.display())).contains("gzip-compressed"));
    std::fs::write(&gz, vec![7u8; 700]).unwrap();
    assert!(
        error(&format!("docker-archive:{}", gz.display())).contains("not a readable tar archive")
    );

    // Cut inside the layer member: its byte range runs past the end.
    let path = archive(
        tmp.path(),
        &[
            (
                "manifest.json",
                json!([{"Config": "c.json", "Layers": ["l.tar"]}])
                    .to_string()
                    .as_bytes(),
            ),
            ("c.json", config.as_bytes()),
            ("l.tar", &[b'l'; 4000]),
        ],
    );
    let data = std::fs::read(&path).unwrap();
    let cut = data
        .windows(100)
        .position(|w| w.iter().all(|b| *b == b'l'))
        .unwrap()
        + 200;
    std::fs::write(&path, &data[..cut]).unwrap();
    let e = error(&format!("docker-archive:{}", path.display()));
    assert!(
        e.contains("runs past the end") || e.contains("not a readable tar"),
        "{e}"
    );
}
