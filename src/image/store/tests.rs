//! Unit tests of the store: import, names, tags, removal and garbage collection on a temp
//! root, with the demo image the repository ships.

use super::remove::{PruneFilter, Removal};
use super::*;

fn demo(store: &Store, tag: &str) -> StoredImage {
    let image = crate::image::resolve_str(
        concat!(
            "oci:",
            env!("CARGO_MANIFEST_DIR"),
            "/layers-testdata/demo-oci:latest"
        ),
        None,
    )
    .expect("demo image");
    store.import(&image, &[tag.to_string()]).expect("import")
}

fn blob_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .expect("blobs")
        .count()
}

#[test]
fn an_imported_image_is_found_by_tag_id_and_digest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let image = demo(&store, "demo:1");
    assert_eq!(image.tags, ["demo:1"]);
    // Config, manifest and three layers, each once; a second import adds nothing.
    assert_eq!(blob_count(&store), 5);
    demo(&store, "demo:1");
    assert_eq!(blob_count(&store), 5);
    assert_eq!(store.images().expect("images").len(), 1);
    let id = image.config_digest.hex().to_string();
    for name in [
        "demo:1".to_string(),
        id[..6].to_string(),
        format!("sha256:{id}"),
        image.manifest_digest.to_string(),
        format!("demo@{}", image.manifest_digest),
    ] {
        assert_eq!(
            store.find(&name).expect(&name).manifest_digest,
            image.manifest_digest
        );
    }
    assert!(matches!(store.find("demo:2"), Err(StoreError::NotFound(_))));
    assert!(store.find("demo@sha256:00").is_err());
    // The layers were indexed (and their diff_ids checked) on the way in.
    let indexes = std::fs::read_dir(store.index_dir())
        .expect("indexes")
        .count();
    assert_eq!(indexes, 3);
    // The store is a layout our own reader (and so skopeo's) can resolve by tag.
    let text = format!("oci:{}:demo:1", store.root().display());
    let back = crate::image::resolve_str(&text, None).expect("resolve store as a layout");
    assert_eq!(back.config_digest.as_ref(), Some(&image.config_digest));
}

#[test]
fn tags_move_and_leave_dangling_images() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let first = demo(&store, "app:latest");
    store.tag("app", "app:v1").expect("tag");
    assert_eq!(
        store.find("app:v1").expect("v1").tags,
        ["app:latest", "app:v1"]
    );
    // A second image under both tags: the first keeps nothing and is dangling.
    let mut image = crate::image::resolve_str(
        concat!(
            "docker-archive:",
            env!("CARGO_MANIFEST_DIR"),
            "/layers-testdata/demo-docker.tar"
        ),
        None,
    )
    .expect("archive");
    image.repo_tags.clear();
    let second = store
        .import(&image, &["app:latest".into(), "app:v1".into()])
        .expect("import");
    assert_ne!(first.manifest_digest, second.manifest_digest);
    let images = store.images().expect("images");
    let old = images
        .iter()
        .find(|i| i.manifest_digest == first.manifest_digest)
        .expect("the old image stays");
    assert!(old.is_dangling());
    // Same config, two manifests: the ID prefix is ambiguous, the digest is not.
    let id = &first.config_digest.hex()[..8];
    assert!(matches!(store.find(id), Err(StoreError::Ambiguous(..))));
    let report = store
        .prune(PruneFilter {
            all: false,
            until: None,
        })
        .expect("prune");
    assert_eq!(
        report.removed,
        [Removal::Deleted(first.config_digest.clone())]
    );
    assert!(report.reclaimed > 0);
    assert_eq!(store.images().expect("images").len(), 1);
    // The gzip/zstd layers went; the docker archive's plain ones stay.
    for layer in first.layer_digests() {
        assert!(!store.blob_path(&layer).exists(), "{layer}");
    }
    for layer in second.layer_digests() {
        assert!(store.blob_path(&layer).exists(), "{layer}");
    }
}

#[test]
fn rmi_untags_then_deletes_and_collects_blobs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    demo(&store, "a:1");
    store.tag("a:1", "a:2").expect("tag");
    store.tag("a:1", "b:1").expect("tag");
    let (removed, _) = store.remove("a:2", false).expect("untag");
    assert_eq!(removed, [Removal::Untagged("a:2".into())]);
    assert_eq!(blob_count(&store), 5);
    // By ID while tagged in two repositories: needs -f.
    let id = store.find("a:1").expect("a").config_digest;
    assert!(matches!(
        store.remove(&id.to_string(), false),
        Err(StoreError::Conflict(_))
    ));
    let (removed, freed) = store.remove(&id.to_string(), true).expect("force");
    assert_eq!(
        removed,
        [
            Removal::Untagged("a:1".into()),
            Removal::Untagged("b:1".into()),
            Removal::Deleted(id)
        ]
    );
    assert!(freed > 0);
    assert_eq!(blob_count(&store), 0);
    assert_eq!(
        std::fs::read_dir(store.index_dir())
            .expect("indexes")
            .count(),
        0
    );
    assert!(store.images().expect("images").is_empty());
}

#[test]
fn an_interrupted_import_leaves_nothing_visible() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    // What a killed import leaves: a partial file in ingest/, nothing in blobs/ or index.json.
    std::fs::create_dir_all(store.root().join("ingest")).expect("ingest");
    std::fs::write(store.root().join("ingest/123-0"), b"partial").expect("write");
    assert_eq!(blob_count(&store), 0);
    demo(&store, "x:1");
    assert_eq!(
        std::fs::read_dir(store.root().join("ingest"))
            .expect("ingest")
            .count(),
        0
    );
}

#[test]
fn a_layer_that_does_not_match_its_digest_is_refused_and_leaves_no_blob() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/layers-testdata/demo-oci"
        ))
        .arg(&layout)
        .status()
        .expect("cp");
    assert!(status.success());
    let image = crate::image::resolve_str(&format!("oci:{}:latest", layout.display()), None)
        .expect("resolve");
    let crate::layer::blob::LayerSource::Blob(top) = &image.layers[0] else {
        panic!("blob layer");
    };
    let mut data = std::fs::read(&top.path).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&top.path, data).expect("write");
    let store = Store::open(&tmp.path().join("store")).expect("open");
    let e = store
        .import(&image, &["bad:1".into()])
        .expect_err("tampered");
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert_eq!(blob_count(&store), 0, "no blob of the failed import stays");
    assert!(store.images().expect("images").is_empty());
}

#[test]
fn times_round_trip() {
    assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
    assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
    for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
        assert_eq!(parse_rfc3339(&rfc3339(secs, 0)), Some(secs));
    }
    assert_eq!(
        parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
        Some(1_700_000_000)
    );
    assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("yesterday"), None);
}

#[test]
fn names_split_and_normalise() {
    assert_eq!(split_tag("alpine:3.19"), ("alpine", "3.19"));
    assert_eq!(
        split_tag("localhost:5000/app"),
        ("localhost:5000/app", "latest")
    );
    assert_eq!(
        normalize_name("docker.io/library/alpine").unwrap(),
        "alpine:latest"
    );
    assert!(matches!(
        normalize_name("Bad Name"),
        Err(StoreError::Invalid(_))
    ));
}

/// A pid that no process has (beyond the kernel's pid_max).
const DEAD_PID: u32 = 999_999_999;

/// Regression (tests/store_crash.rs): a killed `commit` or `import` leaves its staged layer
/// in ingest/; the next `commit` or `import` used to keep it forever (only pulls, loads and
/// removals cleaned ingest/).
#[test]
fn commit_and_import_clean_what_killed_ones_left_in_ingest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let ingest = store.root().join("ingest");
    std::fs::create_dir_all(&ingest).expect("ingest");
    for name in ["layer", "import"] {
        std::fs::write(ingest.join(format!("{name}-{DEAD_PID}-1")), b"partial").expect("write");
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "f", &b"abc"[..]).expect("tar");
    let data = tar.into_inner().expect("tar");
    let layer = store.stage_tarball(&data[..]).expect("stage");
    store
        .create_image(None, false, layer, &commit::NewImage::default())
        .expect("create image");
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .expect("ingest")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in ingest/: {left:?}");
}

/// Regression (tests/store_crash.rs): `write_atomic` staged its copy beside the target, so
/// a kill left `.HEX.tmp-PID` under blobs/sha256 (a file that is not its digest) or
/// `.index.json.tmp-PID` in the root, forever. It stages in ingest/ now, named after the
/// pid, where the next writer removes it.
#[test]
fn atomic_writes_stage_in_ingest_where_leftovers_are_cleaned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    demo(&store, "demo:1");
    let strays = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') || n.contains("tmp"))
            .collect()
    };
    assert!(strays(store.root()).is_empty());
    assert!(strays(&store.root().join("blobs/sha256")).is_empty());
    // What a write killed between its create and its rename leaves now.
    let left = store
        .root()
        .join(format!("ingest/atomic-{DEAD_PID}-index.json"));
    std::fs::write(&left, b"{\"schemaVer").expect("write");
    demo(&store, "demo:2");
    assert!(!left.exists(), "a dead writer's staged index.json was kept");
}

/// The demo image's manifest and config, as a registry would send them for `pull --lazy`.
fn demo_documents() -> (Vec<u8>, Vec<u8>, StoredImage) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let full = Store::open(tmp.path()).expect("open");
    let image = demo(&full, "demo:1");
    let manifest = full.read_blob(&image.manifest_digest).expect("manifest");
    (manifest, image.config_raw.clone(), image)
}

#[test]
fn a_lazy_image_without_blobs_is_listed_removed_and_completed() {
    let (manifest, config, full) = demo_documents();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let image = store
        .import_lazy(
            &manifest,
            &config,
            &["demo:1".into()],
            1234,
            "localhost:5000/demo",
        )
        .expect("import lazy");
    assert_eq!(image.manifest_digest, full.manifest_digest);
    assert!(image.lazy);
    assert_eq!(image.source.as_deref(), Some("localhost:5000/demo"));
    assert_eq!(image.size(), 1234);
    // Only the manifest and config are stored.
    assert_eq!(blob_count(&store), 2);
    assert_eq!(store.missing_blobs(&image).len(), 3);
    // The layers are there to be read from elsewhere: paths with no file behind them.
    let layers = store.image(&image, "demo:1").expect("image").layers;
    assert_eq!(layers.len(), 3);
    for layer in &layers {
        let crate::layer::blob::LayerSource::Blob(b) = layer else {
            panic!("not a blob layer: {layer:?}");
        };
        assert!(!b.path.exists());
    }
    // A new tag keeps the mark and the source.
    let tagged = store.tag("demo:1", "demo:2").expect("tag");
    assert!(tagged.lazy);
    assert_eq!(tagged.source.as_deref(), Some("localhost:5000/demo"));
    let err = tagged.lazy_error("demo:2", "save", None).to_string();
    assert!(
        err.contains("demo:2") && err.contains("without --lazy"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    // rmi of a lazy image: no blob to miss, its remote indexes and chunk caches go.
    let dir = store.index_dir();
    std::fs::create_dir_all(dir.join("chunks")).expect("chunks dir");
    let layer = image.layer_digests()[0].clone();
    for ext in ["data", "map"] {
        std::fs::write(
            dir.join("chunks").join(format!("{}.{ext}", layer.hex())),
            b"x",
        )
        .expect("chunk file");
    }
    store.remove("demo:2", false).expect("untag");
    let (removed, _) = store.remove("demo:1", false).expect("rmi");
    assert!(removed.contains(&Removal::Deleted(image.config_digest.clone())));
    assert_eq!(blob_count(&store), 0);
    let chunks = std::fs::read_dir(dir.join("chunks"))
        .expect("chunks")
        .count();
    assert_eq!(chunks, 0, "the chunk cache of a removed lazy layer stays");

    // prune of a dangling lazy image.
    store
        .import_lazy(&manifest, &config, &[], 1, "localhost:5000/demo")
        .expect("import lazy untagged");
    let report = store
        .prune(PruneFilter {
            all: false,
            until: None,
        })
        .expect("prune");
    assert_eq!(report.removed.len(), 1, "{:?}", report.removed);
    assert_eq!(blob_count(&store), 0);

    // A complete import of the same image drops the mark; a lazy pull of a complete image
    // does not set it.
    store
        .import_lazy(
            &manifest,
            &config,
            &["demo:1".into()],
            1,
            "localhost:5000/demo",
        )
        .expect("import lazy");
    let complete = demo(&store, "demo:1");
    assert!(!complete.lazy);
    assert!(!store.find("demo:1").expect("find").lazy);
    assert!(store.missing_blobs(&complete).is_empty());
    let again = store
        .import_lazy(
            &manifest,
            &config,
            &["demo:1".into()],
            1,
            "localhost:5000/demo",
        )
        .expect("import lazy of a complete image");
    assert!(!again.lazy);
    assert_eq!(again.source.as_deref(), Some("localhost:5000/demo"));
}

#[test]
fn a_lazy_import_refuses_a_config_its_manifest_does_not_name() {
    let (manifest, _, _) = demo_documents();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let err = store
        .import_lazy(&manifest, b"{}", &["demo:1".into()], 1, "h/r")
        .expect_err("wrong config");
    assert!(err.to_string().contains("config"), "{err}");
    assert_eq!(blob_count(&store), 0);
}
