//! Reading an OCI image layout (image-spec image-layout.md) in place: `oci-layout`,
//! `index.json`, `blobs/sha256/HEX`.
//!
//! An image is chosen in `index.json` by tag (`org.opencontainers.image.ref.name`), digest or
//! position; image indexes (also nested ones, and several `index.json` entries sharing a tag)
//! are narrowed to one manifest by platform. The manifest and config are read whole and
//! checked against their descriptors; the layers become byte ranges of their blob files.

use std::path::{Path, PathBuf};

use super::oci::{self, Descriptor, DocKind, DocShape, ImageConfig, Index, Manifest};
use super::platform::{self, Platform};
use super::reference::{Reference, Select};
use super::{Cause, Errors, Image, ImageError, MAX_JSON_BYTES};
use crate::layer::blob::{BlobRef, Digest, LayerSource};

/// How deep indexes may nest before we call it a loop.
const MAX_INDEX_DEPTH: usize = 4;

/// An opened layout: its directory and `index.json`.
struct Layout<'a> {
    e: &'a Errors<'a>,
    dir: PathBuf,
    index: Index,
}

/// Resolves one image of the layout at `dir`.
pub fn resolve(
    reference: &Reference,
    dir: &Path,
    select: &Select,
    platform: &Platform,
) -> Result<Image, ImageError> {
    let name = reference.to_string();
    let e = Errors(&name);
    let layout = Layout::open(&e, dir)?;
    let desc = layout.select(select, platform)?;
    let (manifest_digest, manifest, manifest_raw) = layout.manifest(&desc, platform, 0)?;
    let (config_digest, config, config_raw) = layout.config(&manifest)?;
    let diff_ids = config.diff_ids().map_err(|m| e.invalid(m))?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(e.err(Cause::LayerCount {
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        }));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        layers.push(LayerSource::Blob(layout.layer(desc, diff_id, &name)?));
    }
    // Manifests list layers bottom first; mounts stack them top first.
    layers.reverse();
    Ok(Image {
        reference: name.clone(),
        manifest_digest: Some(manifest_digest),
        config_digest: Some(config_digest),
        config,
        layers,
        manifest_raw: Some(manifest_raw),
        config_raw,
        repo_tags: Vec::new(),
    })
}

impl<'a> Layout<'a> {
    fn open(e: &'a Errors<'a>, dir: &Path) -> Result<Layout<'a>, ImageError> {
        // Absolute, so the daemon finds the blobs whatever its working directory.
        let dir = std::fs::canonicalize(dir).map_err(|err| e.io(dir, err))?;
        if !dir.is_dir() {
            return Err(e.err(Cause::NotALayout(format!(
                "{} is not a directory",
                dir.display()
            ))));
        }
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            return Err(e.err(Cause::NotALayout(format!(
                "{} is missing",
                marker.display()
            ))));
        }
        let version: oci::LayoutVersion = super::parse_json(
            e,
            "oci-layout",
            &super::read_small(e, "oci-layout", &marker)?,
        )?;
        if version.image_layout_version.split('.').next() != Some("1") {
            return Err(e.err(Cause::Unsupported(format!(
                "image layout version {:?} is not supported (want 1.x)",
                version.image_layout_version
            ))));
        }
        let index_path = dir.join("index.json");
        let index: Index = super::parse_json(
            e,
            "index.json",
            &super::read_small(e, "index.json", &index_path)?,
        )?;
        if index.schema_version != 2 {
            return Err(e.err(Cause::Unsupported(format!(
                "index.json: schemaVersion {} is not supported (want 2)",
                index.schema_version
            ))));
        }
        Ok(Layout { e, dir, index })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .index
            .manifests
            .iter()
            .filter_map(|d| d.ref_name().map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// The `index.json` entry the reference names.
    fn select(&self, select: &Select, platform: &Platform) -> Result<Descriptor, ImageError> {
        let all = &self.index.manifests;
        let tagged = |tag: &str| -> Vec<Descriptor> {
            all.iter()
                .filter(|d| d.ref_name() == Some(tag))
                .cloned()
                .collect()
        };
        match select {
            Select::Tag(tag) => {
                let found = tagged(tag);
                if found.is_empty() {
                    return Err(self.e.err(Cause::UnknownTag {
                        tag: tag.clone(),
                        tags: self.tags(),
                    }));
                }
                self.by_platform(&found, platform)
            }
            Select::Default => {
                let latest = tagged("latest");
                if !latest.is_empty() {
                    return self.by_platform(&latest, platform);
                }
                match all.len() {
                    0 => Err(self.e.invalid("index.json lists no images")),
                    1 => Ok(all[0].clone()),
                    // Several untagged entries that differ by platform are one image.
                    _ if all
                        .iter()
                        .all(|d| d.platform.is_some() && d.ref_name().is_none()) =>
                    {
                        self.by_platform(all, platform)
                    }
                    n => Err(self.e.invalid(format!(
                        "index.json lists {n} images and none is tagged \"latest\": name one \
                         (tags: {})",
                        self.tags().join(", ")
                    ))),
                }
            }
            Select::Index(i) => all.get(*i).cloned().ok_or_else(|| {
                self.e.invalid(format!(
                    "index.json has {} entries, so @{i} is out of range",
                    all.len()
                ))
            }),
            Select::Digest(d) => {
                if let Some(found) = all.iter().find(|x| x.digest == d.as_str()) {
                    return Ok(found.clone());
                }
                self.untracked(d)
            }
        }
    }

    /// A descriptor for a manifest or index that is in `blobs/` but not in `index.json`.
    fn untracked(&self, digest: &Digest) -> Result<Descriptor, ImageError> {
        let path = self.blob_path(digest);
        if !path.exists() {
            return Err(self.e.err(Cause::MissingBlob(digest.clone())));
        }
        let what = format!("manifest {digest}");
        let data = super::read_small(self.e, &what, &path)?;
        super::verify(self.e, &what, &data, data.len() as u64, digest)?;
        let shape: DocShape = super::parse_json(self.e, &what, &data)?;
        Ok(Descriptor {
            media_type: shape.implied_media_type().to_string(),
            digest: digest.to_string(),
            size: data.len() as i64,
            annotations: None,
            platform: None,
            urls: None,
        })
    }

    /// The entry of `list` that fits `platform` best; a list of one is taken as it is.
    fn by_platform(
        &self,
        list: &[Descriptor],
        platform: &Platform,
    ) -> Result<Descriptor, ImageError> {
        match platform::best_fit(list, platform) {
            Some(d) => Ok(d.clone()),
            None => Err(self.e.err(Cause::NoPlatform {
                want: platform.to_string(),
                have: list
                    .iter()
                    .map(|d| platform::describe(d.platform.as_ref()))
                    .collect(),
            })),
        }
    }

    /// Reads a small blob whole and checks it against its descriptor.
    fn read_blob(&self, desc: &Descriptor, what: &str) -> Result<(Digest, Vec<u8>), ImageError> {
        let digest = desc
            .digest()
            .map_err(|m| self.e.invalid(format!("{what}: {m}")))?;
        let size = desc
            .size()
            .map_err(|m| self.e.invalid(format!("{what}: {m}")))?;
        let what = format!("{what} {digest}");
        if size > MAX_JSON_BYTES {
            return Err(self.e.err(Cause::TooLarge(what)));
        }
        let path = self.blob_path(&digest);
        let data = super::read_small(self.e, &what, &path).map_err(|err| match err.cause {
            Cause::Io(_, io) if io.kind() == std::io::ErrorKind::NotFound => {
                self.e.err(Cause::MissingBlob(digest.clone()))
            }
            _ => err,
        })?;
        super::verify(self.e, &what, &data, size, &digest)?;
        Ok((digest, data))
    }

    /// Follows `desc` (an index or a manifest) to one manifest.
    fn manifest(
        &self,
        desc: &Descriptor,
        platform: &Platform,
        depth: usize,
    ) -> Result<(Digest, Manifest, Vec<u8>), ImageError> {
        if depth > MAX_INDEX_DEPTH {
            return Err(self.e.invalid(format!(
                "image indexes nest more than {MAX_INDEX_DEPTH} deep at {}",
                desc.digest
            )));
        }
        let (digest, data) = self.read_blob(desc, "manifest")?;
        let what = format!("manifest {digest}");
        let media_type = if desc.media_type.is_empty() {
            let shape: DocShape = super::parse_json(self.e, &what, &data)?;
            shape.implied_media_type().to_string()
        } else {
            desc.media_type.clone()
        };
        let kind = oci::doc_kind(&media_type)
            .map_err(|m| self.e.err(Cause::Unsupported(format!("{what}: {m}"))))?;
        match kind {
            DocKind::Index => {
                let index: Index = super::parse_json(self.e, &format!("index {digest}"), &data)?;
                let next = self.by_platform(&index.manifests, platform)?;
                self.manifest(&next, platform, depth + 1)
            }
            DocKind::Manifest => {
                let manifest: Manifest = super::parse_json(self.e, &what, &data)?;
                if manifest.schema_version != 2 {
                    return Err(self.e.err(Cause::Unsupported(format!(
                        "{what}: schemaVersion {} is not supported (want 2)",
                        manifest.schema_version
                    ))));
                }
                Ok((digest, manifest, data))
            }
        }
    }

    fn config(&self, manifest: &Manifest) -> Result<(Digest, ImageConfig, Vec<u8>), ImageError> {
        let mt = &manifest.config.media_type;
        if !oci::is_image_config(mt) {
            return Err(self.e.err(Cause::Unsupported(format!(
                "config media type {mt:?} is not an image config (is this an artifact?)"
            ))));
        }
        let (digest, data) = self.read_blob(&manifest.config, "config")?;
        let config = super::parse_json(self.e, &format!("config {digest}"), &data)?;
        Ok((digest, config, data))
    }

    /// A layer as a byte range of its blob file, after checking the file has the size the
    /// descriptor gives (the digest is checked when the layer is indexed).
    fn layer(
        &self,
        desc: &Descriptor,
        diff_id: Digest,
        image: &str,
    ) -> Result<BlobRef, ImageError> {
        let digest = desc
            .digest()
            .map_err(|m| self.e.invalid(format!("layer {}: {m}", desc.digest)))?;
        let what = format!("layer {digest}");
        let size = desc
            .size()
            .map_err(|m| self.e.invalid(format!("{what}: {m}")))?;
        let compression = oci::layer_compression(&desc.media_type)
            .map_err(|m| self.e.err(Cause::Unsupported(format!("{what}: {m}"))))?;
        let path = self.blob_path(&digest);
        let meta = std::fs::metadata(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => self.e.err(Cause::MissingBlob(digest.clone())),
            _ => self.e.io(&path, err),
        })?;
        if !meta.is_file() {
            return Err(self
                .e
                .invalid(format!("{}: not a regular file", path.display())));
        }
        if meta.len() != size {
            return Err(self.e.err(Cause::SizeMismatch {
                what,
                expected: size,
                actual: meta.len(),
            }));
        }
        Ok(BlobRef {
            path,
            offset: 0,
            len: size,
            compression,
            digest: Some(digest),
            diff_id: Some(diff_id),
            image: Some(image.to_string()),
        })
    }
}
