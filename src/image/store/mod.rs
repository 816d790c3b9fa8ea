//! The local image store (DESIGN.md, "The store"): a directory that is itself an OCI image
//! layout, so skopeo (`oci:ROOT:NAME:TAG`), umoci and podman read it as it is.
//!
//! ```text
//! ROOT/oci-layout, index.json, blobs/sha256/HEX   the layout; a tag is an index.json entry
//!                                                  whose ref.name annotation is `NAME:TAG`
//! ROOT/ingest/                                     blobs being copied in (never under blobs/)
//! ROOT/indexes/                                    saved tar-layer indexes
//! ROOT/mounts/NAME/                                one mount's upper, work and record
//! ROOT/lock                                        flock: shared to read, exclusive to write
//! ```
//!
//! An image is a manifest. Each of its tags is one `index.json` entry; an image with no tag
//! left (replaced by a newer image of the same name, as `docker load` does) keeps one entry
//! without a ref name and is listed as dangling (`<none>:<none>`). `index.json` is only ever
//! replaced whole (temp file, fsync, rename), and blobs enter through `ingest/` after their
//! digest is checked, so a crash leaves either the old state or the new one.

pub mod commit;
pub mod import;
pub mod mounts;
pub mod remove;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use super::reference::normalize_repo_tag;
use super::{Image, ImageError};
use crate::layer::blob::{BlobRef, Digest, LayerSource};

pub use mounts::{MountRecord, MountState, image_key, mount_name, root};

/// When a tag was last set on an image (RFC 3339), kept as an annotation of its `index.json`
/// entry; `inspect` shows it as `Metadata.LastTagTime`.
pub const TAG_TIME: &str = "io.unionmount.tag-time";

/// The `index.json` annotation naming the registry repository an image was pulled from
/// (`HOST/REPO`): a push to the same registry mounts its blobs from there, and the layers of
/// a lazy image are read from there.
pub const SOURCE: &str = "io.unionmount.source";

/// The `index.json` annotation (`true`) of an image pulled with `pull --lazy`: the store has
/// its manifest and config, and its layers' indexes in `indexes/`, but not (all of) its layer
/// blobs; they are read from [`SOURCE`] by ranges. A complete pull of it drops the mark.
pub const LAZY: &str = "io.unionmount.lazy";

/// Why a store operation failed; one line naming the image, blob or path.
#[derive(Debug)]
pub enum StoreError {
    Io(PathBuf, io::Error),
    /// No image by that name, digest or ID.
    NotFound(String),
    /// An ID prefix that fits several images.
    Ambiguous(String, usize),
    /// The store's own files are not what they should be.
    Corrupt(String),
    /// Reading an image (a source, or one in the store) failed.
    Image(ImageError),
    /// A layer of an image being imported is broken (digest, diff_id, tar).
    Layer(String),
    /// The operation would break something in use and needs `-f`.
    Conflict(String),
    /// A wrong name or argument.
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            StoreError::NotFound(name) => write!(f, "image {name:?} not found"),
            StoreError::Ambiguous(prefix, n) => {
                write!(
                    f,
                    "image {prefix:?} is ambiguous: {n} images match (name it by tag or by its \
                     manifest digest, see `images --digests`)"
                )
            }
            StoreError::Corrupt(m) => write!(f, "store is damaged: {m}"),
            StoreError::Image(e) => e.fmt(f),
            StoreError::Layer(m) | StoreError::Conflict(m) | StoreError::Invalid(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<ImageError> for StoreError {
    fn from(e: ImageError) -> Self {
        StoreError::Image(e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| StoreError::Io(path.to_path_buf(), e)
}

/// An open store.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held store lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// One image of the store, with all its tags.
#[derive(Clone, Debug)]
pub struct StoredImage {
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    /// The manifest blob's size and media type, for `index.json` entries.
    pub manifest_size: u64,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// The config as stored (what `inspect` shows fields of).
    pub config_raw: Vec<u8>,
    /// Tags in docker's short form, sorted.
    pub tags: Vec<String>,
    /// The latest time a tag was set on it, RFC 3339.
    pub last_tag_time: Option<String>,
    /// The sum of its layers' tar sizes, when the import measured it.
    pub unpacked_size: Option<u64>,
    /// Pulled with `--lazy`: layer blobs may be absent (see [`LAZY`]).
    pub lazy: bool,
    /// The registry repository it was pulled from (`HOST/REPO`, see [`SOURCE`]).
    pub source: Option<String>,
}

impl StoredImage {
    /// The image ID docker shows: the config digest.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The image's size as docker shows it: its layers unpacked; for an image whose import
    /// did not measure that, the bytes its blobs take.
    pub fn size(&self) -> u64 {
        if let Some(size) = self.unpacked_size {
            return size;
        }
        let layers: i64 = self.manifest.layers.iter().map(|l| l.size.max(0)).sum();
        (layers + self.manifest.config.size.max(0)) as u64
    }

    /// Layer digests, bottom first.
    pub fn layer_digests(&self) -> Vec<Digest> {
        self.manifest
            .layers
            .iter()
            .filter_map(|l| l.digest().ok())
            .collect()
    }

    /// `NAME@sha256:MANIFEST` for each repository the image is tagged in.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .tags
            .iter()
            .map(|t| format!("{}@{}", split_tag(t).0, self.manifest_digest))
            .collect();
        repos.dedup();
        repos
    }

    pub fn is_dangling(&self) -> bool {
        self.tags.is_empty()
    }

    /// The error of an operation (`what`) that needs the layer blobs of an image pulled with
    /// `--lazy` and could not get them (`cause`, when it tried).
    pub fn lazy_error(&self, name: &str, what: &str, cause: Option<&str>) -> StoreError {
        let source = self.source.as_deref().unwrap_or("its registry");
        let tried = cause.map(|c| format!(", and fetching them failed: {c}"));
        StoreError::Conflict(format!(
            "image {name}: {what} needs its layer blobs, which a lazy pull did not store{}; \
             run `unionmount pull docker://{source}@{}` (without --lazy) first",
            tried.unwrap_or_default(),
            self.manifest_digest
        ))
    }
}

/// `NAME:TAG` split at the tag's colon (a registry port's colon belongs to the name).
pub fn split_tag(tag: &str) -> (&str, &str) {
    let slash = tag.rfind('/').map_or(0, |i| i + 1);
    match tag[slash..].rfind(':') {
        Some(i) => (&tag[..slash + i], &tag[slash + i + 1..]),
        None => (tag, "latest"),
    }
}

/// A name as users type it (`alpine`, `alpine:3.19`, `docker.io/library/alpine`) in the short
/// form tags are kept in; the error says why a name is not valid.
pub fn normalize_name(name: &str) -> Result<String, StoreError> {
    // Stricter than archive RepoTags are read: lowercase, and a colon only for a registry's
    // port in the first part (docker's reference grammar).
    let valid = normalize_repo_tag(name).filter(|tag| {
        let repo = split_tag(tag).0;
        repo.split('/').enumerate().all(|(i, part)| {
            let (host, port) = match part.split_once(':') {
                Some((h, p)) if i == 0 && repo.contains('/') => (h, Some(p)),
                Some(_) => return false,
                None => (part, None),
            };
            !host.is_empty()
                && !host.bytes().any(|b| b.is_ascii_uppercase())
                && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    valid.ok_or_else(|| {
        StoreError::Invalid(format!(
            "invalid image name {name:?} (want NAME[:TAG]: lowercase letters, digits, and . _ - \
             separators, /-separated parts)"
        ))
    })
}

impl Store {
    /// The store at `root`, created (as an empty layout) if missing.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        let blobs = root.join("blobs/sha256");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&blobs)
            .map_err(io_err(&blobs))?;
        let store = Store {
            root: std::fs::canonicalize(root).map_err(io_err(root))?,
        };
        let marker = store.root.join("oci-layout");
        if !marker.exists() {
            let _lock = store.lock(true)?;
            if !marker.exists() {
                store.write_atomic(
                    Path::new("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
            }
            if !store.root.join("index.json").exists() {
                store.write_index(&Index {
                    schema_version: 2,
                    media_type: Some(oci::OCI_INDEX.into()),
                    manifests: Vec::new(),
                    annotations: None,
                })?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Where saved tar-layer indexes of the store's layers live.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("indexes")
    }

    /// Takes the store lock: `exclusive` for anything that changes `index.json` or `blobs/`,
    /// shared to resolve and open images without a writer removing blobs underneath.
    pub fn lock(&self, exclusive: bool) -> Result<Lock, StoreError> {
        use rustix::fs::FlockOperation;
        let path = self.root.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        rustix::fs::flock(&file, op).map_err(|e| StoreError::Io(path, e.into()))?;
        Ok(Lock { _file: file })
    }

    /// Writes `data` to `ROOT/rel` atomically: a temp file beside it, fsync, rename, fsync
    /// of the directory.
    pub(crate) fn write_atomic(&self, rel: &Path, data: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        // Staged in ingest/ (same filesystem), named after our pid: a copy a kill leaves
        // half-written is removed by the next writer's `clean_ingest`, and never sits under
        // blobs/sha256 with a name that is not its digest.
        let ingest = self.root.join("ingest");
        let tmp = ingest.join(format!(
            "atomic-{}-{}",
            std::process::id(),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let result = (|| -> io::Result<()> {
            std::fs::create_dir_all(&ingest)?;
            let mut file = File::create(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io_err(&path))
    }

    pub(crate) fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("index.json");
        let data = std::fs::read(&path).map_err(io_err(&path))?;
        let index: Index = serde_json::from_slice(&data)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        if index.schema_version != 2 {
            return Err(StoreError::Corrupt(format!(
                "{}: schemaVersion {} (want 2)",
                path.display(),
                index.schema_version
            )));
        }
        Ok(index)
    }

    /// Replaces `index.json`; callers hold the exclusive lock.
    pub(crate) fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let mut data = serde_json::to_vec_pretty(index)
            .map_err(|e| StoreError::Corrupt(format!("index.json: {e}")))?;
        data.push(b'\n');
        self.write_atomic(Path::new("index.json"), &data)
    }

    /// Reads a small blob of the store and checks its digest.
    pub(crate) fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Corrupt(format!("blob {digest} is missing")));
            }
            Err(e) => return Err(StoreError::Io(path, e)),
        };
        let actual = super::sha256_of(&data);
        if actual != *digest {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} does not match its digest (it hashes to {actual})"
            )));
        }
        Ok(data)
    }

    /// Every image, grouped from the `index.json` entries, oldest entry first.
    pub fn images(&self) -> Result<Vec<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let mut order: Vec<String> = Vec::new();
        let mut by_digest: BTreeMap<String, Vec<&Descriptor>> = BTreeMap::new();
        for d in &index.manifests {
            let entry = by_digest.entry(d.digest.clone()).or_default();
            if entry.is_empty() {
                order.push(d.digest.clone());
            }
            entry.push(d);
        }
        let mut images = Vec::with_capacity(order.len());
        for digest in order {
            let entries = &by_digest[&digest];
            images.push(self.load(&digest, entries)?);
        }
        Ok(images)
    }

    fn load(&self, digest: &str, entries: &[&Descriptor]) -> Result<StoredImage, StoreError> {
        let manifest_digest =
            Digest::parse(digest).map_err(|e| StoreError::Corrupt(format!("index.json: {e}")))?;
        let data = self.read_blob(&manifest_digest)?;
        let manifest: Manifest = serde_json::from_slice(&data).map_err(|e| {
            StoreError::Corrupt(format!("manifest {manifest_digest}: invalid JSON: {e}"))
        })?;
        let config_digest = manifest
            .config
            .digest()
            .map_err(|e| StoreError::Corrupt(format!("manifest {manifest_digest}: {e}")))?;
        let config_raw = self.read_blob(&config_digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_raw).map_err(|e| {
            StoreError::Corrupt(format!("config {config_digest}: invalid JSON: {e}"))
        })?;
        let mut tags: Vec<String> = entries
            .iter()
            .filter_map(|d| d.ref_name().map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        let last_tag_time = entries
            .iter()
            .filter_map(|d| d.annotations.as_ref()?.get(TAG_TIME).cloned())
            .max();
        let unpacked_size = entries
            .iter()
            .filter_map(|d| {
                d.annotations
                    .as_ref()?
                    .get(import::UNPACKED_SIZE)?
                    .parse()
                    .ok()
            })
            .next();
        let annotation = |key: &str| {
            entries
                .iter()
                .find_map(|d| d.annotations.as_ref()?.get(key).cloned())
        };
        let lazy = annotation(LAZY).is_some_and(|v| v == "true");
        let source = annotation(SOURCE);
        let manifest_media_type = manifest
            .media_type
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| oci::OCI_MANIFEST.to_string());
        Ok(StoredImage {
            manifest_digest,
            manifest,
            manifest_size: data.len() as u64,
            manifest_media_type,
            config_digest,
            config,
            config_raw,
            tags,
            last_tag_time,
            unpacked_size,
            lazy,
            source,
        })
    }

    /// Finds an image as docker does: a tag (`NAME[:TAG]`), `NAME@sha256:DIGEST` or
    /// `sha256:DIGEST` (manifest digest or image ID), or a unique prefix of an image ID.
    pub fn find(&self, name: &str) -> Result<StoredImage, StoreError> {
        let images = self.images()?;
        find_in(&images, name).cloned()
    }

    /// The layer blobs of `image` the store does not have (those of an image pulled with
    /// `--lazy`), bottom first.
    pub fn missing_blobs(&self, image: &StoredImage) -> Vec<Digest> {
        let mut missing: Vec<Digest> = image
            .layer_digests()
            .into_iter()
            .filter(|d| !self.blob_path(d).exists())
            .collect();
        missing.dedup();
        missing
    }

    /// The image as layers to mount (blob files of the store, topmost first). For an image
    /// pulled with `--lazy` some of these files do not exist: the caller reads those layers
    /// from the image's [`StoredImage::source`] instead (see `registry::lazy`).
    pub fn image(&self, stored: &StoredImage, name: &str) -> Result<Image, StoreError> {
        let diff_ids = stored
            .config
            .diff_ids()
            .map_err(|m| StoreError::Corrupt(format!("config {}: {m}", stored.config_digest)))?;
        if diff_ids.len() != stored.manifest.layers.len() {
            return Err(StoreError::Corrupt(format!(
                "image {name}: the manifest lists {} layers but the config has {} diff_ids",
                stored.manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (desc, diff_id) in stored.manifest.layers.iter().zip(diff_ids) {
            let bad = |m: String| StoreError::Corrupt(format!("image {name}: layer {m}"));
            let digest = desc.digest().map_err(bad)?;
            let len = desc.size().map_err(bad)?;
            let compression = oci::layer_compression(&desc.media_type).map_err(bad)?;
            layers.push(LayerSource::Blob(BlobRef {
                path: self.blob_path(&digest),
                offset: 0,
                len,
                compression,
                digest: Some(digest),
                diff_id: Some(diff_id),
                image: Some(name.to_string()),
            }));
        }
        layers.reverse();
        Ok(Image {
            reference: name.to_string(),
            manifest_digest: Some(stored.manifest_digest.clone()),
            config_digest: Some(stored.config_digest.clone()),
            config: stored.config.clone(),
            layers,
            manifest_raw: None,
            config_raw: stored.config_raw.clone(),
            repo_tags: stored.tags.clone(),
        })
    }

    /// Points `target` (a name, normalised) at the image `source` names. The image `target`
    /// named before keeps an untagged entry if this was its last tag (it is then dangling).
    pub fn tag(&self, source: &str, target: &str) -> Result<StoredImage, StoreError> {
        let target = normalize_name(target)?;
        let _lock = self.lock(true)?;
        let image = self.find(source)?;
        let mut index = self.read_index()?;
        set_tag(&mut index, &image, &target);
        self.write_index(&index)?;
        self.find(&target)
    }
}

/// Finds `name` among `images` (see [`Store::find`]).
pub fn find_in<'a>(images: &'a [StoredImage], name: &str) -> Result<&'a StoredImage, StoreError> {
    let not_found = || StoreError::NotFound(name.to_string());
    if let Some(hex) = name.strip_prefix("sha256:") {
        return by_hex(images, name, hex, true);
    }
    if let Some((repo, digest)) = name.split_once('@') {
        let digest = Digest::parse(digest)
            .map_err(|e| StoreError::Invalid(format!("image {name:?}: {e}")))?;
        let repo = normalize_name(repo)?;
        let repo = split_tag(&repo).0;
        return images
            .iter()
            .find(|i| i.manifest_digest == digest && i.tags.iter().any(|t| split_tag(t).0 == repo))
            .ok_or_else(not_found);
    }
    if let Some(tag) = normalize_repo_tag(name)
        && let Some(found) = images.iter().find(|i| i.tags.contains(&tag))
    {
        return Ok(found);
    }
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return by_hex(images, name, name, false);
    }
    if normalize_repo_tag(name).is_none() {
        return Err(normalize_name(name).err().unwrap_or_else(not_found));
    }
    Err(not_found())
}

/// The image whose ID (or, with `manifests`, manifest digest) starts with `hex`.
fn by_hex<'a>(
    images: &'a [StoredImage],
    name: &str,
    hex: &str,
    manifests: bool,
) -> Result<&'a StoredImage, StoreError> {
    let hex = hex.to_ascii_lowercase();
    let hits: Vec<&StoredImage> = images
        .iter()
        .filter(|i| {
            i.config_digest.hex().starts_with(&hex)
                || (manifests && i.manifest_digest.hex().starts_with(&hex))
        })
        .collect();
    match hits.as_slice() {
        [] => Err(StoreError::NotFound(name.to_string())),
        [one] => Ok(one),
        // Two manifests may share a config (the same image stored gzip and plain): the ID
        // does not say which, the manifest digest does.
        many => Err(StoreError::Ambiguous(name.to_string(), many.len())),
    }
}

/// Now as RFC 3339 UTC with nanoseconds, the form docker writes times in.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SS[.NNNNNNNNN]Z`.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `+02:00`
/// offsets too); `None` if it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let h = rest.get(1..3)?.parse::<i64>().ok()?;
            let m = rest.get(4..6)?.parse::<i64>().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days-from-civil, the inverse of the algorithm in `rfc3339`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// Moves `tag` to `image` in `index`; the image that loses its last tag keeps an untagged
/// entry, so it stays in the store as a dangling image.
fn set_tag(index: &mut Index, image: &StoredImage, tag: &str) {
    let digest = image.manifest_digest.to_string();
    let previous = index
        .manifests
        .iter()
        .position(|d| d.ref_name() == Some(tag));
    if let Some(pos) = previous {
        let old = index.manifests.remove(pos);
        let still_listed = index.manifests.iter().any(|d| d.digest == old.digest);
        if !still_listed && old.digest != digest {
            let mut untagged = old;
            // The ref name and tag time go; what describes the image (its size) stays.
            if let Some(a) = untagged.annotations.as_mut() {
                a.remove(oci::REF_NAME);
                a.remove(TAG_TIME);
            }
            index.manifests.insert(pos, untagged);
        }
    }
    // The image's untagged entry, if any, gives way to the tag.
    index
        .manifests
        .retain(|d| !(d.digest == digest && d.ref_name().is_none()));
    let mut entry = import::entry_for(image, Some(tag));
    entry
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TAG_TIME.to_string(), now_rfc3339());
    index.manifests.push(entry);
}

#[cfg(test)]
mod tests;
