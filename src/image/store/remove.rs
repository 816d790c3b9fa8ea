//! Taking images out of the store: `rmi` (untag, or delete an image's last reference),
//! `image prune` (dangling images, or with `-a` every image no live mount uses), and the
//! garbage collection of blobs no image refers to any more, with their saved indexes.
//!
//! Everything runs under the exclusive store lock. `index.json` is rewritten first and the
//! blobs are deleted after, so a crash in between leaves unreferenced blobs (collected by the
//! next removal), never an image whose blobs are gone.

use super::mounts::MountRecord;
use super::{Store, StoreError, StoredImage, find_in, normalize_name, split_tag};
use crate::layer::blob::{BlobRef, Compression, Digest};
use crate::layer::tar::IndexCache;
use std::collections::HashSet;

/// One line of `rmi` / `prune` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `Untagged: NAME:TAG`
    Untagged(String),
    /// `Deleted: sha256:ID` (the image's config digest)
    Deleted(Digest),
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Untagged(t) => write!(f, "Untagged: {t}"),
            Removal::Deleted(d) => write!(f, "Deleted: {d}"),
        }
    }
}

/// What `prune` did.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub removed: Vec<Removal>,
    /// Bytes of blobs deleted.
    pub reclaimed: u64,
}

/// Which images `prune` removes.
#[derive(Clone, Copy, Debug)]
pub struct PruneFilter {
    /// Every image no live mount uses, not only dangling ones (`-a`).
    pub all: bool,
    /// Only images created before this time (seconds since the epoch; `until=`).
    pub until: Option<i64>,
}

impl Store {
    /// `rmi NAME`: removes a tag, and the image with its last one. `force` untags an image
    /// referenced by ID from all its repositories, and deletes an image a live mount uses
    /// (the mount keeps reading its open blobs until it is unmounted).
    pub fn remove(&self, name: &str, force: bool) -> Result<(Vec<Removal>, u64), StoreError> {
        let _lock = self.lock(true)?;
        let images = self.images()?;
        let image = find_in(&images, name)?.clone();
        let by_tag = name_as_tag(name).filter(|t| image.tags.contains(t));
        let mut removed = Vec::new();
        let mut index = self.read_index()?;
        if let Some(tag) = by_tag
            && image.tags.len() > 1
        {
            // One of several tags: only the tag goes.
            index
                .manifests
                .retain(|d| d.ref_name() != Some(tag.as_str()));
            self.write_index(&index)?;
            return Ok((vec![Removal::Untagged(tag)], 0));
        }
        let repos: HashSet<&str> = image.tags.iter().map(|t| split_tag(t).0).collect();
        if repos.len() > 1 && !force {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in \
                 multiple repositories",
                short_id(&image.config_digest)
            )));
        }
        if !force && let Some(mount) = self.live_mount_of(&image)? {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {} ({}) - image is mounted on {}; unmount it first \
                 or use -f",
                name,
                short_id(&image.config_digest),
                mount.display()
            )));
        }
        let digest = image.manifest_digest.to_string();
        index.manifests.retain(|d| d.digest != digest);
        self.write_index(&index)?;
        removed.extend(image.tags.iter().cloned().map(Removal::Untagged));
        removed.push(Removal::Deleted(image.config_digest.clone()));
        let reclaimed = self.collect_garbage(&[image])?;
        Ok((removed, reclaimed))
    }

    /// `image prune`: removes dangling images (or, with `all`, every image no live mount
    /// uses), then their unreferenced blobs.
    pub fn prune(&self, filter: PruneFilter) -> Result<PruneReport, StoreError> {
        let _lock = self.lock(true)?;
        self.clean_ingest();
        let images = self.images()?;
        let live: HashSet<Digest> = MountRecord::list(self.root())
            .map_err(|e| StoreError::Io(self.root().join("mounts"), e))?
            .into_iter()
            .filter(MountRecord::is_live)
            .filter_map(|r| r.state.manifest)
            .collect();
        let doomed: Vec<StoredImage> = images
            .into_iter()
            .filter(|i| filter.all || i.is_dangling())
            .filter(|i| !live.contains(&i.manifest_digest))
            .filter(|i| match filter.until {
                None => true,
                Some(until) => i
                    .config
                    .created
                    .as_deref()
                    .and_then(super::parse_rfc3339)
                    .is_some_and(|c| c < until),
            })
            .collect();
        let mut report = PruneReport::default();
        if !doomed.is_empty() {
            let gone: HashSet<String> = doomed
                .iter()
                .map(|i| i.manifest_digest.to_string())
                .collect();
            let mut index = self.read_index()?;
            index.manifests.retain(|d| !gone.contains(&d.digest));
            self.write_index(&index)?;
            for image in &doomed {
                report
                    .removed
                    .extend(image.tags.iter().cloned().map(Removal::Untagged));
                report
                    .removed
                    .push(Removal::Deleted(image.config_digest.clone()));
            }
        }
        report.reclaimed = self.collect_garbage(&doomed)?;
        Ok(report)
    }

    /// The mountpoint of a live mount of `image`, if any.
    fn live_mount_of(&self, image: &StoredImage) -> Result<Option<std::path::PathBuf>, StoreError> {
        let records = MountRecord::list(self.root())
            .map_err(|e| StoreError::Io(self.root().join("mounts"), e))?;
        Ok(records
            .into_iter()
            .find(|r| r.is_live() && r.state.manifest.as_ref() == Some(&image.manifest_digest))
            .map(|r| r.state.mountpoint))
    }

    /// Deletes every blob no `index.json` entry reaches, and the saved indexes of the layers
    /// of `removed` images. Returns the bytes freed. Callers hold the exclusive lock.
    fn collect_garbage(&self, removed: &[StoredImage]) -> Result<u64, StoreError> {
        let mut keep = HashSet::new();
        let index = self.read_index()?;
        for desc in &index.manifests {
            self.reach(&desc.digest, &mut keep, 0);
        }
        let cache = IndexCache::new(self.index_dir());
        for image in removed {
            let diff_ids = image.config.diff_ids().unwrap_or_default();
            for (desc, diff_id) in image.manifest.layers.iter().zip(diff_ids) {
                let Ok(digest) = desc.digest() else { continue };
                if keep.contains(digest.as_str()) {
                    continue;
                }
                let len = desc.size.max(0) as u64;
                // A layer read from a registry (a lazy pull, or `mount --lazy` sharing the
                // store's indexes) has its index under a remote key and a chunk cache.
                cache.forget_remote(&digest, Some(&diff_id), len);
                crate::layer::remote::forget(cache.dir(), &digest);
                let blob = BlobRef {
                    path: self.blob_path(&digest),
                    offset: 0,
                    len,
                    compression: Compression::Detect,
                    digest: Some(digest),
                    diff_id: Some(diff_id),
                    image: None,
                };
                cache.forget(&blob);
            }
        }
        let blobs = self.root().join("blobs/sha256");
        let mut freed = 0;
        let entries = std::fs::read_dir(&blobs).map_err(|e| StoreError::Io(blobs.clone(), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(format!("sha256:{name}").as_str()) || !is_hex64(&name) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(entry.path()).is_ok() {
                freed += size;
            }
        }
        Ok(freed)
    }

    /// Adds `digest` and every blob it refers to (config, layers, nested manifests) to `keep`.
    fn reach(&self, digest: &str, keep: &mut HashSet<String>, depth: usize) {
        if !keep.insert(digest.to_string()) || depth > 4 {
            return;
        }
        let Ok(d) = Digest::parse(digest) else { return };
        let path = self.blob_path(&d);
        // Layer blobs are large and never refer to anything: only read small documents.
        if std::fs::metadata(&path).map_or(true, |m| m.len() > crate::image::MAX_JSON_BYTES) {
            return;
        }
        let Ok(data) = std::fs::read(&path) else {
            return;
        };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&data) else {
            return;
        };
        let mut refs = Vec::new();
        if let Some(config) = doc.get("config").and_then(|c| c.get("digest")) {
            refs.push((config.as_str().unwrap_or_default().to_string(), false));
        }
        for (field, nested) in [("layers", false), ("manifests", true), ("blobs", false)] {
            for item in doc
                .get(field)
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(d) = item.get("digest").and_then(|d| d.as_str()) {
                    refs.push((d.to_string(), nested));
                }
            }
        }
        if let Some(subject) = doc.get("subject").and_then(|s| s.get("digest")) {
            refs.push((subject.as_str().unwrap_or_default().to_string(), true));
        }
        for (d, nested) in refs {
            if nested {
                self.reach(&d, keep, depth + 1);
            } else {
                keep.insert(d);
            }
        }
    }
}

fn is_hex64(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The 12-digit ID docker shows.
pub fn short_id(digest: &Digest) -> &str {
    &digest.hex()[..12.min(digest.hex().len())]
}

/// The tag a name given to `rmi` stands for, when it is one (`alpine` → `alpine:latest`).
pub(crate) fn name_as_tag(name: &str) -> Option<String> {
    if name.starts_with("sha256:") || name.contains('@') {
        return None;
    }
    normalize_name(name).ok()
}
