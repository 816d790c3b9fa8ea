//! Images for tests: the expected merged tree of an image, built independently of unionmount
//! (GNU tar extracts each layer, and OCI whiteouts are applied by hand, as image-spec
//! layer.md describes), OCI layouts written from plain tar layers, and one-line failures.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The layer blobs of the image tagged `tag` in the OCI layout `dir`, bottom first, read with
/// serde_json straight from `index.json` and the manifest (no platform choice: one manifest).
pub fn oci_layer_blobs(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let read = |p: PathBuf| -> serde_json::Value {
        let data = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
    };
    let blob = |digest: &serde_json::Value| {
        let d = digest.as_str().expect("digest string");
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = read(dir.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    let desc = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", dir.display()));
    let manifest = read(blob(&desc["digest"]));
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect()
}

/// Applies tar layers (bottom first; plain, gzip or zstd: GNU tar detects which) to `dest`
/// as the OCI image spec says: in each layer, whiteouts first remove what lower layers put
/// there (`.wh.NAME` the name, `.wh..wh..opq` everything in its directory), then the layer's
/// other entries are extracted over the result.
pub fn apply_layers_with_gnu_tar(layers: &[PathBuf], dest: &Path) {
    for layer in layers {
        let out = Command::new("tar")
            .args(["--quoting-style=literal", "-tf"])
            .arg(layer)
            .output()
            .expect("run tar -t");
        assert!(
            out.status.success(),
            "tar -tf {}: {}",
            layer.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for name in String::from_utf8(out.stdout).expect("utf-8 names").lines() {
            let name = name.trim_start_matches("./").trim_end_matches('/');
            let (parent, base) = name.rsplit_once('/').unwrap_or(("", name));
            let parent = dest.join(parent);
            if base == ".wh..wh..opq" {
                for child in fs::read_dir(&parent).into_iter().flatten().flatten() {
                    remove_any(&child.path());
                }
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                remove_any(&parent.join(hidden));
            }
        }
        let st = Command::new("tar")
            .args(["-xf"])
            .arg(layer)
            .arg("-C")
            .arg(dest)
            .args([
                "--numeric-owner",
                "--same-owner",
                "-p",
                "--xattrs",
                "--xattrs-include=*",
                "--exclude=.wh.*",
            ])
            .status()
            .expect("run tar -x");
        assert!(st.success(), "tar -xf {} failed", layer.display());
    }
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(p).unwrap_or_else(|e| panic!("rm -r {}: {e}", p.display()))
        }
        Ok(_) => fs::remove_file(p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display())),
        Err(_) => {}
    }
}

fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Writes an OCI layout at `dir` holding one image tagged `tag` whose layers are the given
/// plain tar files (bottom first), stored uncompressed.
pub fn write_plain_oci_layout(dir: &Path, tag: &str, tars: &[PathBuf]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |data: &[u8]| {
        let d = sha256(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).expect("write blob");
        d
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for t in tars {
        let data = fs::read(t).unwrap_or_else(|e| panic!("read {}: {e}", t.display()));
        let d = put(&data);
        diff_ids.push(d.clone());
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": data.len()}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).to_string();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config.as_bytes()), "size": config.len()},
        "layers": layers}).to_string();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest.as_bytes()), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

/// Copies a directory tree of regular files (an OCI layout) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("read_dir {}: {e}", from.display())) {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("cp {}: {err}", e.path().display()));
        }
    }
}

/// Runs `unionmount ARGS` (without -f) and checks it fails: exit status != 0, exactly one
/// line on stderr containing every one of `needles`, and nothing mounted on `mnt`.
pub fn assert_one_line_failure<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    mnt: &Path,
    needles: &[&str],
) -> String {
    let out = crate::common::run_unionmount(args, Some(mnt), std::time::Duration::from_secs(30));
    let mounted = crate::common::is_fuse_mount(mnt);
    if mounted {
        let _ = crate::common::umount2(mnt, libc::MNT_DETACH);
    }
    let stderr = out.stderr.trim_end().to_string();
    let argv: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    assert!(
        !out.status.success(),
        "unionmount {argv:?} succeeded; stderr: {stderr}"
    );
    assert!(
        !mounted,
        "unionmount {argv:?} left a mount on {}",
        mnt.display()
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "unionmount {argv:?}: want one line on stderr, got:\n{stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "unionmount {argv:?}: stderr does not contain {n:?}:\n{stderr}"
        );
    }
    stderr
}
