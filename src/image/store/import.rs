//! Bringing images into the store: `pull oci:DIR[:TAG]`, `pull docker-archive:FILE`, and
//! `load -i FILE` (a `docker save` archive or an OCI archive).
//!
//! Blobs are copied into `ingest/` while their sha256 is computed, checked against the digest
//! the source names, fsynced, and only then renamed into `blobs/sha256/`: nothing half-copied
//! or unverified is ever visible there. A whole-file source is first offered to the
//! filesystem as a reflink (FICLONE; btrfs and XFS share the data, ext4 says no and we copy).
//! Hard links are deliberately not used: the source is the user's file, and an edit to it
//! would change a blob behind its digest. Each layer is then indexed from its store blob,
//! which checks its diff_id and saves the index so that the first mount is instant.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{Store, StoreError, StoredImage, io_err};
use crate::image::oci::{self, Descriptor, Index, Manifest};
use crate::image::{Image, reference::Reference};
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRef, Compression, Digest, LayerSource};

/// The annotation of an `index.json` entry with the image's unpacked size (the sum of its
/// layers' tar streams), which `images` shows as SIZE.
pub const UNPACKED_SIZE: &str = "io.unionmount.unpacked-size";

impl Store {
    /// Copies `image` (resolved from a layout or archive) into the store and gives it `tags`
    /// (docker's short `NAME:TAG` form). With no tags it is kept untagged. Returns the stored
    /// image.
    pub fn import(&self, image: &Image, tags: &[String]) -> Result<StoredImage, StoreError> {
        self.import_staged(image, tags, &HashMap::new())
    }

    /// [`Store::import`] of an image some of whose layer blobs were already copied into
    /// `ingest/` and checked against their digests (a registry pull downloads them before it
    /// takes the lock): those files are renamed into `blobs/` instead of copied again.
    pub fn import_staged(
        &self,
        image: &Image,
        tags: &[String],
        staged: &HashMap<Digest, PathBuf>,
    ) -> Result<StoredImage, StoreError> {
        let _lock = self.lock(true)?;
        self.clean_ingest();
        self.removing_added_on_error(|added| self.import_locked(image, tags, staged, added))
    }

    /// Runs `f`, which lists in the vector it is given every blob it brings into the store;
    /// if it fails, those blobs are removed again (nothing refers to them).
    fn removing_added_on_error<T>(
        &self,
        f: impl FnOnce(&mut Vec<Digest>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut added = Vec::new();
        let result = f(&mut added);
        if result.is_err() {
            for digest in added {
                let _ = std::fs::remove_file(self.blob_path(&digest));
            }
        }
        result
    }

    fn import_locked(
        &self,
        image: &Image,
        tags: &[String],
        staged: &HashMap<Digest, PathBuf>,
        added: &mut Vec<Digest>,
    ) -> Result<StoredImage, StoreError> {
        let name = &image.reference;
        let config_digest = crate::image::sha256_of(&image.config_raw);
        if image
            .config_digest
            .as_ref()
            .is_some_and(|d| *d != config_digest)
        {
            return Err(StoreError::Layer(format!(
                "image {name}: config does not match its digest"
            )));
        }
        // Layers bottom first, as manifests list them.
        let mut layer_descs = Vec::new();
        let mut unpacked = 0u64;
        for source in image.layers.iter().rev() {
            let LayerSource::Blob(blob) = source else {
                return Err(StoreError::Invalid(format!(
                    "image {name}: only image layers can be imported"
                )));
            };
            let (digest, size, compression) = match blob.digest.as_ref().and_then(|d| staged.get(d))
            {
                Some(tmp) => self.adopt_staged(blob, tmp, added)?,
                None => self.ingest_blob(blob, name, added)?,
            };
            let stored = BlobRef {
                path: self.blob_path(&digest),
                offset: 0,
                len: size,
                compression,
                digest: Some(digest.clone()),
                diff_id: blob.diff_id.clone(),
                image: Some(name.clone()),
            };
            let options = LayerOptions {
                index_cache: Some(self.index_dir()),
                ..LayerOptions::default()
            };
            let layer = crate::layer::tar::TarLayer::open_blob(&stored, &options).map_err(|e| {
                StoreError::Layer(crate::layer::tar::one_line(&e.to_string()).into())
            })?;
            unpacked += layer.tar_len();
            layer_descs.push(Descriptor {
                media_type: layer_media_type(compression).to_string(),
                digest: digest.to_string(),
                size: size as i64,
                annotations: None,
                platform: None,
                urls: None,
            });
        }
        self.put_small_blob(&config_digest, &image.config_raw, added)?;
        let manifest_raw = match &image.manifest_raw {
            Some(raw) => raw.clone(),
            None => {
                let manifest = Manifest {
                    schema_version: 2,
                    media_type: Some(oci::OCI_MANIFEST.into()),
                    config: Descriptor {
                        media_type: oci::OCI_CONFIG.into(),
                        digest: config_digest.to_string(),
                        size: image.config_raw.len() as i64,
                        annotations: None,
                        platform: None,
                        urls: None,
                    },
                    layers: layer_descs,
                    annotations: None,
                };
                serde_json::to_vec(&manifest)
                    .map_err(|e| StoreError::Invalid(format!("image {name}: manifest: {e}")))?
            }
        };
        let manifest_digest = crate::image::sha256_of(&manifest_raw);
        self.put_small_blob(&manifest_digest, &manifest_raw, added)?;

        let mut stored = self.load(&manifest_digest.to_string(), &[])?;
        stored.unpacked_size = Some(unpacked);
        self.record(&stored, tags)?;
        added.clear();
        let images = self.images()?;
        images
            .into_iter()
            .find(|i| i.manifest_digest == manifest_digest)
            .ok_or_else(|| StoreError::Corrupt(format!("image {manifest_digest} vanished")))
    }

    /// Lists `image` in `index.json` (untagged unless it is listed already), gives it `tags`
    /// and notes its unpacked size on its entries. Callers hold the exclusive lock.
    pub(crate) fn record(&self, image: &StoredImage, tags: &[String]) -> Result<(), StoreError> {
        let mut index = self.read_index()?;
        let digest = image.manifest_digest.as_str();
        if !index.manifests.iter().any(|d| d.digest == digest) {
            index.manifests.push(entry_for(image, None));
        }
        for tag in tags {
            super::set_tag(&mut index, image, tag);
        }
        // An image whose blobs are all here now (a complete pull of one pulled lazily) is
        // lazy no more.
        let complete = self.missing_blobs(image).is_empty();
        for entry in index.manifests.iter_mut().filter(|d| d.digest == digest) {
            let annotations = entry.annotations.get_or_insert_with(BTreeMap::new);
            if let Some(size) = image.unpacked_size {
                annotations.insert(UNPACKED_SIZE.into(), size.to_string());
            }
            if complete {
                annotations.remove(super::LAZY);
            }
            if annotations.is_empty() {
                entry.annotations = None;
            }
        }
        self.write_index(&index)
    }

    /// Records an image of a registry without its layer blobs (`pull --lazy`): writes its
    /// config and manifest (checked against their digests), lists it with `tags`, and marks
    /// it lazy with the repository (`HOST/REPO`) its layers are read from, unless the store
    /// has every layer blob already. The caller has indexed every layer into
    /// [`Store::index_dir`]; `unpacked` is the sum of their tar sizes.
    pub fn import_lazy(
        &self,
        manifest_raw: &[u8],
        config_raw: &[u8],
        tags: &[String],
        unpacked: u64,
        source: &str,
    ) -> Result<StoredImage, StoreError> {
        let _lock = self.lock(true)?;
        self.clean_ingest();
        let manifest_digest = crate::image::sha256_of(manifest_raw);
        let config_digest = crate::image::sha256_of(config_raw);
        let manifest: Manifest = serde_json::from_slice(manifest_raw).map_err(|e| {
            StoreError::Invalid(format!("manifest {manifest_digest}: invalid JSON: {e}"))
        })?;
        if manifest.config.digest != config_digest.as_str() {
            return Err(StoreError::Invalid(format!(
                "manifest {manifest_digest}: its config is {}, not the one given ({config_digest})",
                manifest.config.digest
            )));
        }
        self.removing_added_on_error(|added| {
            self.put_small_blob(&config_digest, config_raw, added)?;
            self.put_small_blob(&manifest_digest, manifest_raw, added)?;
            let mut stored = self.load(manifest_digest.as_str(), &[])?;
            stored.unpacked_size = Some(unpacked);
            stored.source = Some(source.to_string());
            stored.lazy = !self.missing_blobs(&stored).is_empty();
            self.record(&stored, tags)?;
            let mut index = self.read_index()?;
            for entry in index
                .manifests
                .iter_mut()
                .filter(|d| d.digest == manifest_digest.as_str())
            {
                let annotations = entry.annotations.get_or_insert_with(BTreeMap::new);
                annotations.insert(super::SOURCE.into(), source.to_string());
                if stored.lazy {
                    annotations.insert(super::LAZY.into(), "true".into());
                }
            }
            self.write_index(&index)?;
            self.find(manifest_digest.as_str())
        })
    }

    /// Moves a verified blob from `ingest/` into `blobs/` (unless the store has it by now).
    fn adopt_staged(
        &self,
        blob: &BlobRef,
        tmp: &Path,
        added: &mut Vec<Digest>,
    ) -> Result<(Digest, u64, Compression), StoreError> {
        let digest = blob
            .digest
            .clone()
            .ok_or_else(|| StoreError::Invalid(format!("{}: no digest", tmp.display())))?;
        let dest = self.blob_path(&digest);
        if dest.exists() {
            let _ = std::fs::remove_file(tmp);
        } else {
            std::fs::rename(tmp, &dest).map_err(io_err(&dest))?;
            added.push(digest.clone());
        }
        let compression = match blob.compression {
            Compression::Detect => detect(&File::open(&dest).map_err(io_err(&dest))?, 0, &dest)?,
            c => c,
        };
        Ok((digest, blob.len, compression))
    }

    /// A new file in `ingest/` named after this process (so that `clean_ingest` leaves it
    /// alone while we live), for a blob being downloaded before the lock is taken.
    pub fn staging_file(&self) -> Result<(PathBuf, File), StoreError> {
        let ingest = self.root.join("ingest");
        std::fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        let tmp = ingest.join(format!(
            "{}-{}",
            std::process::id(),
            INGEST_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok((tmp, file))
    }

    /// Sets an annotation on every `index.json` entry of the image with this manifest digest
    /// (e.g. the registry repository it was pulled from).
    pub fn annotate(&self, manifest: &Digest, key: &str, value: &str) -> Result<(), StoreError> {
        let _lock = self.lock(true)?;
        let mut index = self.read_index()?;
        for entry in index
            .manifests
            .iter_mut()
            .filter(|d| d.digest == manifest.as_str())
        {
            entry
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.to_string(), value.to_string());
        }
        self.write_index(&index)
    }

    /// The annotations of the image's first `index.json` entry.
    pub fn annotations(&self, manifest: &Digest) -> Result<BTreeMap<String, String>, StoreError> {
        let index = self.read_index()?;
        Ok(index
            .manifests
            .into_iter()
            .find(|d| d.digest == manifest.as_str())
            .and_then(|d| d.annotations)
            .unwrap_or_default())
    }

    /// Copies one layer blob in (unless the store has it), checking its digest. Returns the
    /// digest, size and compression of the stored blob.
    fn ingest_blob(
        &self,
        blob: &BlobRef,
        image: &str,
        added: &mut Vec<Digest>,
    ) -> Result<(Digest, u64, Compression), StoreError> {
        let source = File::open(&blob.path).map_err(io_err(&blob.path))?;
        let compression = match blob.compression {
            Compression::Detect => detect(&source, blob.offset, &blob.path)?,
            c => c,
        };
        if let Some(digest) = &blob.digest
            && self.blob_path(digest).exists()
        {
            return Ok((digest.clone(), blob.len, compression));
        }
        let (tmp, digest) = self.copy_in(&source, blob)?;
        if let Some(expected) = &blob.digest
            && *expected != digest
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::Layer(format!(
                "image {image}: layer {expected}: digest mismatch: the blob hashes to {digest}"
            )));
        }
        let dest = self.blob_path(&digest);
        if dest.exists() {
            let _ = std::fs::remove_file(&tmp);
        } else {
            std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            added.push(digest.clone());
        }
        Ok((digest, blob.len, compression))
    }

    /// Copies the blob's byte range to a new file in `ingest/`, hashing it; returns the file
    /// (fsynced) and the digest.
    fn copy_in(&self, source: &File, blob: &BlobRef) -> Result<(PathBuf, Digest), StoreError> {
        let ingest = self.root.join("ingest");
        std::fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        let tmp = ingest.join(format!(
            "{}-{}",
            std::process::id(),
            INGEST_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = (|| -> io::Result<Digest> {
            let out = File::create(&tmp)?;
            let whole = blob.offset == 0 && source.metadata()?.len() == blob.len;
            let cloned = whole && rustix::fs::ioctl_ficlone(&out, source).is_ok();
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            let reader = if cloned { &out } else { source };
            while pos < blob.len {
                let want = buf.len().min((blob.len - pos) as usize);
                let n = reader.read_at(&mut buf[..want], blob.offset * u64::from(!cloned) + pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("blob ends after {pos} of {} bytes", blob.len),
                    ));
                }
                hash.update(&buf[..n]);
                if !cloned {
                    (&out).write_all(&buf[..n])?;
                }
                pos += n as u64;
            }
            out.sync_all()?;
            Ok(Digest::from_sha256(&hash.finalize()))
        })();
        match result {
            Ok(d) => Ok((tmp, d)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(StoreError::Io(blob.path.clone(), e))
            }
        }
    }

    /// Writes a small document blob (config, manifest) unless present.
    pub(crate) fn put_small_blob(
        &self,
        digest: &Digest,
        data: &[u8],
        added: &mut Vec<Digest>,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            return Ok(());
        }
        let rel = Path::new("blobs/sha256").join(digest.hex());
        self.write_atomic(&rel, data)?;
        added.push(digest.clone());
        Ok(())
    }

    /// Removes what interrupted imports left in `ingest/`. Every name there carries the pid
    /// of the process that made it; files of live processes (a `commit` or `import` staging
    /// its layer before it takes the lock) are left alone.
    pub(crate) fn clean_ingest(&self) {
        if let Ok(entries) = std::fs::read_dir(self.root.join("ingest")) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let owner = name
                    .split(['-', '.'])
                    .find(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
                if owner.is_some_and(|pid| Path::new("/proc").join(pid).exists()) {
                    continue;
                }
                if path.is_dir() {
                    let _ = std::fs::remove_dir_all(&path);
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    /// `load -i FILE`: every image of a `docker save` archive (with its RepoTags) or of an
    /// OCI archive (a tar of an image layout; tags from its ref names).
    pub fn load_archive(&self, file: &Path) -> Result<Vec<StoredImage>, StoreError> {
        let kind = archive_kind(file)?;
        let escaped = escape_path(file);
        match kind {
            ArchiveKind::Docker(count) => {
                let mut out = Vec::new();
                for n in 0..count {
                    let text = format!("docker-archive:{escaped}:@{n}");
                    let image = crate::image::resolve_str(&text, None)?;
                    let tags = image.repo_tags.clone();
                    out.push(self.import(&image, &tags)?);
                }
                Ok(out)
            }
            ArchiveKind::Oci => {
                let dir = self.unpack_oci_archive(file)?;
                let result = self.pull_layout(&dir, None, None);
                let _ = std::fs::remove_dir_all(&dir);
                result
            }
        }
    }

    /// Imports the images of the OCI layout at `dir`: the one `select` names (a ref name), or
    /// all entries. Each is tagged by its ref name when that is a full `NAME:TAG`, else as
    /// `DIRNAME:REF` (`fallback_repo`, default the directory's name), as podman does.
    pub fn pull_layout(
        &self,
        dir: &Path,
        select: Option<&str>,
        fallback_repo: Option<&str>,
    ) -> Result<Vec<StoredImage>, StoreError> {
        let index_path = dir.join("index.json");
        let data = std::fs::read(&index_path).map_err(io_err(&index_path))?;
        let index: Index = serde_json::from_slice(&data).map_err(|e| {
            StoreError::Invalid(format!("{}: invalid JSON: {e}", index_path.display()))
        })?;
        let repo = fallback_repo.map(str::to_string).unwrap_or_else(|| {
            let base = std::fs::canonicalize(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
                .unwrap_or_default();
            let slug: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let slug = slug
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string();
            if slug.is_empty() {
                "image".into()
            } else {
                slug
            }
        });
        let escaped = escape_path(dir);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (n, desc) in index.manifests.iter().enumerate() {
            let ref_name = desc.ref_name();
            if select.is_some_and(|s| ref_name != Some(s)) {
                continue;
            }
            // Several platform entries of one tag resolve to one image here.
            let text = match ref_name {
                Some(r) => format!("oci:{escaped}:{r}"),
                None => format!("oci:{escaped}:@{n}"),
            };
            if !seen.insert(text.clone()) {
                continue;
            }
            let tag = ref_name.map(|r| tag_for_ref_name(r, &repo, desc));
            let image = crate::image::resolve_str(&text, None)?;
            let tags: Vec<String> = tag.into_iter().collect();
            out.push(self.import(&image, &tags)?);
        }
        if out.is_empty() {
            return Err(match select {
                Some(s) => StoreError::NotFound(format!("oci:{}:{s}", dir.display())),
                None => StoreError::Invalid(format!("{}: lists no images", index_path.display())),
            });
        }
        Ok(out)
    }

    /// Extracts the layout files of an OCI archive (`oci-layout`, `index.json`,
    /// `blobs/sha256/*`) into a fresh directory under `ingest/`; other members are ignored and
    /// no member can land outside the directory.
    fn unpack_oci_archive(&self, file: &Path) -> Result<PathBuf, StoreError> {
        let dir = self
            .root
            .join("ingest")
            .join(format!("load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io_err(&dir))?;
        let bad = |e: io::Error| {
            StoreError::Invalid(format!(
                "{}: not a readable tar archive: {e}",
                file.display()
            ))
        };
        let reader = File::open(file).map_err(io_err(file))?;
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(bad)?.into_owned();
            let name = path.to_string_lossy().trim_start_matches("./").to_string();
            let keep = match name.as_str() {
                "oci-layout" | "index.json" => true,
                _ => name.strip_prefix("blobs/sha256/").is_some_and(|hex| {
                    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
                }),
            };
            if !keep {
                continue;
            }
            let dest = dir.join(&name);
            let mut out = File::create(&dest).map_err(io_err(&dest))?;
            io::copy(&mut entry, &mut out).map_err(bad)?;
        }
        Ok(dir)
    }
}

static INGEST_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The tag an OCI ref name gives: a full `NAME:TAG` as it is, a bare tag (`latest`, as
/// skopeo writes `oci:DIR:latest`) under `repo`, unless containerd's image-name annotation
/// says more.
fn tag_for_ref_name(ref_name: &str, repo: &str, desc: &Descriptor) -> String {
    if let Some(full) = desc
        .annotations
        .as_ref()
        .and_then(|a| a.get("io.containerd.image.name"))
        .and_then(|n| crate::image::reference::normalize_repo_tag(n))
    {
        return full;
    }
    if (ref_name.contains(':') || ref_name.contains('/'))
        && let Some(t) = crate::image::reference::normalize_repo_tag(ref_name)
    {
        return t;
    }
    crate::image::reference::normalize_repo_tag(&format!("{repo}:{ref_name}"))
        .unwrap_or_else(|| format!("{repo}:latest"))
}

enum ArchiveKind {
    /// A `docker save` archive with this many images in `manifest.json`.
    Docker(usize),
    Oci,
}

/// Whether `file` is a docker archive (has `manifest.json`) or an OCI archive (has
/// `oci-layout`); Docker 25 archives are both and are read as docker archives, which keeps
/// their RepoTags.
fn archive_kind(file: &Path) -> Result<ArchiveKind, StoreError> {
    let bad = |e: io::Error| {
        StoreError::Invalid(format!(
            "{}: not a readable tar archive: {e}",
            file.display()
        ))
    };
    let mut reader = File::open(file).map_err(io_err(file))?;
    let mut magic = [0u8; 4];
    let n = reader.read(&mut magic).map_err(io_err(file))?;
    if matches!(&magic[..n], [0x1f, 0x8b, ..] | [0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(StoreError::Invalid(format!(
            "{}: compressed archives are not supported: decompress it first (gunzip, unzstd)",
            file.display()
        )));
    }
    let reader = File::open(file).map_err(io_err(file))?;
    let mut archive = tar::Archive::new(reader);
    let mut oci = false;
    for entry in archive.entries_with_seek().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        match path.trim_start_matches("./") {
            "manifest.json" => {
                let mut data = Vec::new();
                (&mut entry)
                    .take(crate::image::MAX_JSON_BYTES)
                    .read_to_end(&mut data)
                    .map_err(bad)?;
                let list: Vec<serde_json::Value> = serde_json::from_slice(&data).map_err(|e| {
                    StoreError::Invalid(format!("{}: manifest.json: {e}", file.display()))
                })?;
                return Ok(ArchiveKind::Docker(list.len()));
            }
            "oci-layout" => oci = true,
            _ => {}
        }
    }
    if oci {
        Ok(ArchiveKind::Oci)
    } else {
        Err(StoreError::Invalid(format!(
            "{}: neither a docker archive (no manifest.json) nor an OCI archive (no oci-layout)",
            file.display()
        )))
    }
}

/// A path as a reference spells it (`:` and `\` before `:` escaped).
fn escape_path(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// The compression of a blob that does not say, from its first bytes.
fn detect(file: &File, offset: u64, path: &Path) -> Result<Compression, StoreError> {
    let mut magic = [0u8; 4];
    let n = file.read_at(&mut magic, offset).map_err(io_err(path))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

pub fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => oci::OCI_LAYER_GZIP,
        Compression::Zstd => oci::OCI_LAYER_ZSTD,
        _ => oci::OCI_LAYER,
    }
}

/// A new `index.json` entry for `image`, with `tag` as its ref name (or none).
pub(crate) fn entry_for(image: &StoredImage, tag: Option<&str>) -> Descriptor {
    let mut annotations = BTreeMap::new();
    if let Some(tag) = tag {
        annotations.insert(oci::REF_NAME.to_string(), tag.to_string());
    }
    if let Some(size) = image.unpacked_size {
        annotations.insert(UNPACKED_SIZE.to_string(), size.to_string());
    }
    if let Some(source) = &image.source {
        annotations.insert(super::SOURCE.to_string(), source.clone());
    }
    if image.lazy {
        annotations.insert(super::LAZY.to_string(), "true".to_string());
    }
    Descriptor {
        media_type: image.manifest_media_type.clone(),
        digest: image.manifest_digest.to_string(),
        size: image.manifest_size as i64,
        annotations: (!annotations.is_empty()).then_some(annotations),
        platform: None,
        urls: None,
    }
}

/// Parses a reference for messages that must name it.
pub fn parse_reference(text: &str) -> Result<Reference, StoreError> {
    Reference::parse(text).map_err(StoreError::Invalid)
}
