//! New images made in the store: `commit` (a mount's upper as a new layer on its image),
//! `import` (a rootfs tarball as a one-layer image) and `squash` (an image's merged tree as
//! one layer). Each writes its layer blob through `ingest/`, then a new config (diff_ids and
//! history extended, `-c` changes applied) and manifest, then tags the result.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Store, StoreError, StoredImage, io_err, now_rfc3339};
use crate::image::oci::{self, Descriptor, Manifest};
use crate::image::pack::{self, PackMode, PackedLayer};
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRef, Compression, Digest};

/// What `commit`, `import` and `squash` record besides the layer.
#[derive(Clone, Debug, Default)]
pub struct NewImage {
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD, ENTRYPOINT, ENV, LABEL,
    /// WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL).
    pub changes: Vec<String>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// The tag to give it (`NAME:TAG`, short form), or none.
    pub tag: Option<String>,
}

/// A layer written to `ingest/`, not yet in `blobs/`.
pub struct StagedLayer {
    path: PathBuf,
    pub packed: PackedLayer,
}

impl Store {
    /// Packs the tree at `dir` (an overlayfs upper with [`PackMode::Diff`], a merged tree
    /// with [`PackMode::Flat`]) into a gzip layer in `ingest/`.
    pub fn stage_tree(&self, dir: &Path, mode: PackMode) -> Result<StagedLayer, StoreError> {
        let path = self.ingest_file("layer")?;
        let result = (|| {
            let file = File::create(&path).map_err(io_err(&path))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let packed = pack::pack(dir, mode, Compression::Gzip, &mut out)
                .map_err(|e| StoreError::Layer(e.to_string()))?;
            let file = out
                .into_inner()
                .map_err(|e| StoreError::Io(path.clone(), e.into_error()))?;
            file.sync_all().map_err(io_err(&path))?;
            Ok(packed)
        })();
        match result {
            Ok(packed) => Ok(StagedLayer { path, packed }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Copies a rootfs tarball (plain, gzip or zstd; `-` style readers too) into `ingest/`
    /// as a plain tar layer, hashing it on the way.
    pub fn stage_tarball(&self, input: impl Read) -> Result<StagedLayer, StoreError> {
        let path = self.ingest_file("import")?;
        let result = (|| {
            let mut input = io::BufReader::with_capacity(1 << 20, input);
            let magic = io::BufRead::fill_buf(&mut input)
                .map_err(|e| StoreError::Invalid(format!("reading the tarball: {e}")))?
                .to_vec();
            let mut reader: Box<dyn Read> = match magic.as_slice() {
                [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(input)),
                [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
                    zstd::stream::read::Decoder::with_buffer(input)
                        .map_err(|e| StoreError::Invalid(format!("zstd: {e}")))?,
                ),
                _ => Box::new(input),
            };
            let mut out = File::create(&path).map_err(io_err(&path))?;
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| StoreError::Invalid(format!("reading the tarball: {e}")))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err(&path))?;
                size += n as u64;
            }
            if size == 0 {
                return Err(StoreError::Invalid("the tarball is empty".into()));
            }
            out.sync_all().map_err(io_err(&path))?;
            let digest = Digest::from_sha256(&hash.finalize());
            Ok(PackedLayer {
                digest: digest.clone(),
                diff_id: digest,
                size,
                tar_size: size,
                media_type: oci::OCI_LAYER,
            })
        })();
        match result {
            Ok(packed) => Ok(StagedLayer { path, packed }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn ingest_file(&self, what: &str) -> Result<PathBuf, StoreError> {
        let ingest = self.root.join("ingest");
        std::fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(ingest.join(format!("{what}-{}-{nanos}", std::process::id())))
    }

    /// Makes a new image: `base`'s layers (all of them, or none when `replace_layers`) plus
    /// `layer` on top, with `base`'s config (or a fresh one) changed as `new` says. The new
    /// layer is indexed (which also checks it is a readable tar) before anything is tagged.
    pub fn create_image(
        &self,
        base: Option<&StoredImage>,
        replace_layers: bool,
        layer: StagedLayer,
        new: &NewImage,
    ) -> Result<StoredImage, StoreError> {
        let _lock = self.lock(true)?;
        // What killed commits and imports left (this one's own staged layer is kept: its
        // name carries our live pid).
        self.clean_ingest();
        let staged = layer.path.clone();
        let result = self.create_locked(base, replace_layers, layer, new);
        let _ = std::fs::remove_file(staged);
        result
    }

    fn create_locked(
        &self,
        base: Option<&StoredImage>,
        replace_layers: bool,
        layer: StagedLayer,
        new: &NewImage,
    ) -> Result<StoredImage, StoreError> {
        let packed = &layer.packed;
        // The base must still be there: a removal may have run since it was looked up.
        let base = match base {
            Some(b) => Some(self.find(&b.manifest_digest.to_string()).map_err(|_| {
                StoreError::NotFound(format!(
                    "{} (the mount's image was removed)",
                    b.config_digest
                ))
            })?),
            None => None,
        };
        // An image on top of a lazily pulled one would refer to layer blobs the store lacks
        // (the CLI completes the base first; this is the store's own guard).
        if let Some(b) = &base
            && !replace_layers
            && !self.missing_blobs(b).is_empty()
        {
            let name = b
                .tags
                .first()
                .cloned()
                .unwrap_or_else(|| b.config_digest.to_string());
            return Err(b.lazy_error(&name, "commit", None));
        }
        let blob = self.blob_path(&packed.digest);
        if !blob.exists() {
            std::fs::rename(&layer.path, &blob).map_err(io_err(&blob))?;
        }
        let stored_blob = BlobRef {
            path: blob.clone(),
            offset: 0,
            len: packed.size,
            compression: oci::layer_compression(packed.media_type).unwrap_or(Compression::Detect),
            digest: Some(packed.digest.clone()),
            diff_id: Some(packed.diff_id.clone()),
            image: new.tag.clone(),
        };
        let options = LayerOptions {
            index_cache: Some(self.index_dir()),
            ..LayerOptions::default()
        };
        if let Err(e) = crate::layer::tar::TarLayer::open_blob(&stored_blob, &options) {
            let _ = std::fs::remove_file(&blob);
            return Err(StoreError::Layer(format!(
                "the new layer is not a readable tar: {}",
                crate::layer::tar::one_line(&e.to_string())
            )));
        }

        let now = now_rfc3339();
        let mut config: Value = match &base {
            Some(b) => serde_json::from_slice(&b.config_raw)
                .map_err(|e| StoreError::Corrupt(format!("config {}: {e}", b.config_digest)))?,
            None => json!({
                "architecture": crate::image::platform::Platform::host().arch,
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
        };
        let Some(obj) = config.as_object_mut() else {
            return Err(StoreError::Corrupt(
                "the base config is not a JSON object".into(),
            ));
        };
        obj.insert("created".into(), Value::String(now.clone()));
        if let Some(author) = &new.author {
            obj.insert("author".into(), Value::String(author.clone()));
        }
        let rootfs = obj
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if replace_layers {
            rootfs["diff_ids"] = json!([]);
        }
        if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            ids.push(Value::String(packed.diff_id.to_string()));
        }
        let mut entry = serde_json::Map::new();
        entry.insert("created".into(), Value::String(now));
        entry.insert("created_by".into(), Value::String(new.created_by.clone()));
        if let Some(author) = &new.author {
            entry.insert("author".into(), Value::String(author.clone()));
        }
        if let Some(message) = &new.message {
            entry.insert("comment".into(), Value::String(message.clone()));
        }
        let history = obj.entry("history").or_insert_with(|| json!([]));
        if replace_layers {
            *history = json!([]);
        }
        if let Some(h) = history.as_array_mut() {
            h.push(Value::Object(entry));
        }
        let runtime = obj.entry("config").or_insert_with(|| json!({}));
        if runtime.is_null() {
            *runtime = json!({});
        }
        for change in &new.changes {
            apply_change(runtime, change)?;
        }
        let config_raw =
            serde_json::to_vec(&config).map_err(|e| StoreError::Invalid(format!("config: {e}")))?;
        let config_digest = crate::image::sha256_of(&config_raw);
        let mut added = Vec::new();
        self.put_small_blob(&config_digest, &config_raw, &mut added)?;

        let mut layers: Vec<Descriptor> = match (&base, replace_layers) {
            (Some(b), false) => b.manifest.layers.clone(),
            _ => Vec::new(),
        };
        layers.push(Descriptor {
            media_type: packed.media_type.to_string(),
            digest: packed.digest.to_string(),
            size: packed.size as i64,
            annotations: None,
            platform: None,
            urls: None,
        });
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: oci::OCI_CONFIG.into(),
                digest: config_digest.to_string(),
                size: config_raw.len() as i64,
                annotations: None,
                platform: None,
                urls: None,
            },
            layers,
            annotations: None,
        };
        let manifest_raw = serde_json::to_vec(&manifest)
            .map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        let manifest_digest = crate::image::sha256_of(&manifest_raw);
        self.put_small_blob(&manifest_digest, &manifest_raw, &mut added)?;

        let unpacked = match (&base, replace_layers) {
            (Some(b), false) => b.unpacked_size.unwrap_or(0),
            _ => 0,
        } + packed.tar_size;
        let mut stored = self.load(&manifest_digest.to_string(), &[])?;
        stored.unpacked_size = Some(unpacked);
        self.record(&stored, new.tag.as_slice())?;
        self.find(&manifest_digest.to_string())
    }
}

/// Applies one Dockerfile-style instruction to a runtime config (`Cmd`, `Env`...), as
/// `docker commit -c` / `docker import -c` do.
pub fn apply_change(runtime: &mut Value, change: &str) -> Result<(), StoreError> {
    let bad = |m: &str| StoreError::Invalid(format!("change {change:?}: {m}"));
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((change, ""));
    let Some(obj) = runtime.as_object_mut() else {
        return Err(bad("the config is not an object"));
    };
    if rest.is_empty() {
        return Err(bad("missing its argument"));
    }
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            obj.insert("Cmd".into(), exec_form(rest, true));
        }
        "ENTRYPOINT" => {
            obj.insert("Entrypoint".into(), exec_form(rest, true));
        }
        "ENV" => {
            let pairs = key_values(rest).ok_or_else(|| bad("want KEY=VALUE... or KEY VALUE"))?;
            let env = obj.entry("Env").or_insert_with(|| json!([]));
            if env.is_null() {
                *env = json!([]);
            }
            let list = env.as_array_mut().ok_or_else(|| bad("Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(Value::String(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest).ok_or_else(|| bad("want KEY=VALUE..."))?;
            let labels = obj.entry("Labels").or_insert_with(|| json!({}));
            if labels.is_null() {
                *labels = json!({});
            }
            let map = labels
                .as_object_mut()
                .ok_or_else(|| bad("Labels is not a map"))?;
            for (k, v) in pairs {
                map.insert(k, Value::String(v));
            }
        }
        "WORKDIR" => {
            obj.insert("WorkingDir".into(), Value::String(unquote(rest)));
        }
        "USER" => {
            obj.insert("User".into(), Value::String(unquote(rest)));
        }
        "STOPSIGNAL" => {
            obj.insert("StopSignal".into(), Value::String(unquote(rest)));
        }
        "EXPOSE" | "VOLUME" => {
            let (key, items): (&str, Vec<String>) = if word.eq_ignore_ascii_case("EXPOSE") {
                let ports = rest
                    .split_whitespace()
                    .map(|p| {
                        if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        }
                    })
                    .collect();
                ("ExposedPorts", ports)
            } else {
                let vols = match exec_form(rest, false) {
                    Value::Array(a) => a
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                ("Volumes", vols)
            };
            let set = obj.entry(key).or_insert_with(|| json!({}));
            if set.is_null() {
                *set = json!({});
            }
            let map = set.as_object_mut().ok_or_else(|| bad("not a map"))?;
            for item in items {
                map.insert(item, json!({}));
            }
        }
        other => {
            return Err(bad(&format!(
                "unsupported instruction {other} (CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, \
                 EXPOSE, VOLUME, STOPSIGNAL)"
            )));
        }
    }
    Ok(())
}

/// `["a","b"]` as a list; otherwise the shell form (`/bin/sh -c "..."` when `shell`, else
/// the words).
fn exec_form(rest: &str, shell: bool) -> Value {
    if rest.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(rest)
        && items.iter().all(Value::is_string)
    {
        return Value::Array(items);
    }
    if shell {
        json!(["/bin/sh", "-c", rest])
    } else {
        Value::Array(
            rest.split_whitespace()
                .map(|w| Value::String(w.to_string()))
                .collect(),
        )
    }
}

/// `K=V K2="V 2"` pairs, or the old `K V...` form (one pair).
fn key_values(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut pairs = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        match chars.peek() {
            Some('"') | Some('\'') => {
                let quote = chars.next()?;
                for c in chars.by_ref() {
                    if c == quote {
                        break;
                    }
                    value.push(c);
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        if key.is_empty() {
            return None;
        }
        pairs.push((key, value));
    }
    Some(pairs)
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker() {
        let mut c = json!({"Env": ["PATH=/bin", "A=1"], "Labels": null});
        for change in [
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /init --verbose",
            "ENV A=2 B=\"two words\"",
            "ENV C three",
            "LABEL org.example=yes",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
        ] {
            apply_change(&mut c, change).unwrap();
        }
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/init --verbose"]));
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=two words", "C=three"])
        );
        assert_eq!(c["Labels"], json!({"org.example": "yes"}));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert!(apply_change(&mut c, "RUN make").is_err());
        assert!(apply_change(&mut c, "CMD").is_err());
    }
}
