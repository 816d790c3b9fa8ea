//! Writing a `docker save` archive: the layout Docker 25+ writes, which is at once a docker
//! archive (`manifest.json`, `repositories`) and an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/`), so `docker load`, `podman load`, skopeo (`docker-archive:`
//! and `oci-archive:`) and our own [`super::archive`] reader all accept it.
//!
//! Layers are written uncompressed, as `docker save` does, so every layer blob is named by its
//! diff_id. A tar header needs the member's size before its data, and a compressed layer's
//! uncompressed size is not recorded anywhere, so every layer is read twice: a first pass
//! decompresses it to count its bytes and check its diff_id (before anything of the archive is
//! written, so a bad layer leaves the output empty), and the writing pass decompresses it again
//! and checks size and digest once more (the source could change in between). That costs CPU
//! but no temporary disk space.
//!
//! The output is deterministic: members sorted by path, mtime 0, owner 0:0, modes 0644/0755,
//! JSON with a fixed field order. Each blob is written once, however many images share it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use super::oci::{ImageConfig, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME};
use super::reference::normalize_repo_tag;
use super::{Image, sha256_of};
use crate::layer::blob::{BlobRef, Compression, Digest, LayerSource};

mod docs;
#[cfg(test)]
mod tests;

use docs::{Descriptor, ManifestItem, OciIndex, OciManifest, Platform, to_json};

/// The media type of an uncompressed layer in the OCI manifests (what Docker 25 writes).
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The annotation containerd (and Docker 25's save) puts the full image name in.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// Docker writes it with this spacing; readers parse JSON, so only the bytes depend on it.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion": "1.0.0"}"#;
const COPY_BUFFER: usize = 256 << 10;

/// One image to save.
#[derive(Debug)]
pub struct SaveImage {
    /// Tags as docker writes them in `RepoTags` (`alpine:3.19`, `example.com/app:v1`); longer
    /// forms (`docker.io/library/alpine`) are shortened and a missing tag is `latest`. Empty
    /// for an untagged image.
    pub repo_tags: Vec<String>,
    /// The image config exactly as stored; its sha256 is the image ID.
    pub config: Vec<u8>,
    /// Bottom layer first, one per `rootfs.diff_ids` entry of the config.
    pub layers: Vec<SaveLayer>,
}

/// One layer of an image to save.
#[derive(Debug)]
pub struct SaveLayer {
    /// The sha256 of the uncompressed tar; the bytes read are checked against it.
    pub diff_id: Digest,
    pub data: LayerData,
}

/// Where a layer's bytes come from. Each source is read twice (see the module docs).
pub enum LayerData {
    /// A byte range of a file, compressed as stated (gzip and zstd are decompressed).
    Blob(BlobRef),
    /// Opens the layer's uncompressed tar stream; must give the same bytes each time.
    Open(Box<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>),
}

impl fmt::Debug for LayerData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerData::Blob(b) => f.debug_tuple("Blob").field(b).finish(),
            LayerData::Open(_) => f.write_str("Open(..)"),
        }
    }
}

impl SaveImage {
    /// The image `image` (as resolved from any source) under `repo_tags`; `config` is its
    /// config as stored, which must hash to `image.config_digest` when that is known.
    pub fn from_image(
        image: &Image,
        repo_tags: Vec<String>,
        config: Vec<u8>,
    ) -> Result<SaveImage, SaveError> {
        let what = || image.reference.clone();
        let id = sha256_of(&config);
        if let Some(expected) = &image.config_digest
            && *expected != id
        {
            return Err(SaveError::Config {
                image: what(),
                reason: format!("the config given hashes to {id}, not {expected}"),
            });
        }
        let diff_ids = image
            .config
            .diff_ids()
            .map_err(|reason| SaveError::Config {
                image: what(),
                reason,
            })?;
        if diff_ids.len() != image.layers.len() {
            return Err(SaveError::Config {
                image: what(),
                reason: format!(
                    "{} layers but {} diff_ids",
                    image.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        // Image layers are topmost first; archives list them bottom first.
        let layers = image
            .layers
            .iter()
            .rev()
            .zip(diff_ids)
            .map(|(source, diff_id)| match source {
                LayerSource::Blob(blob) => Ok(SaveLayer {
                    diff_id,
                    data: LayerData::Blob(blob.clone()),
                }),
                LayerSource::Path(p) => Err(SaveError::Config {
                    image: what(),
                    reason: format!("layer {} is a path, not an image blob", p.display()),
                }),
                LayerSource::Remote(r) => Err(SaveError::Config {
                    image: what(),
                    reason: format!("layer {} is remote, not a local blob", r.digest),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(SaveImage {
            repo_tags,
            config,
            layers,
        })
    }
}

/// Why an archive could not be written.
#[derive(Debug)]
pub enum SaveError {
    /// A tag docker would not load, or one given to two different images.
    Tag { tag: String, reason: String },
    /// The config is not valid JSON, or does not list the layers given.
    Config { image: String, reason: String },
    /// A layer's bytes could not be read.
    Read {
        image: String,
        layer: String,
        cause: io::Error,
    },
    /// A layer's uncompressed bytes do not hash to its diff_id.
    DiffIdMismatch {
        image: String,
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    /// A layer read differently on the writing pass than on the first (its source changed).
    Changed {
        image: String,
        layer: String,
        reason: String,
    },
    /// The output could not be written.
    Write(io::Error),
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Tag { tag, reason } => write!(f, "tag {tag:?}: {reason}"),
            SaveError::Config { image, reason } => write!(f, "image {image}: config: {reason}"),
            SaveError::Read {
                image,
                layer,
                cause,
            } => write!(f, "image {image}: {layer}: {cause}"),
            SaveError::DiffIdMismatch {
                image,
                layer,
                expected,
                actual,
            } => write!(
                f,
                "image {image}: {layer}: its uncompressed content has digest {actual}, \
                 but its diff_id is {expected}"
            ),
            SaveError::Changed {
                image,
                layer,
                reason,
            } => write!(
                f,
                "image {image}: {layer}: changed while being saved ({reason})"
            ),
            SaveError::Write(e) => write!(f, "writing the archive: {e}"),
        }
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaveError::Read { cause, .. } | SaveError::Write(cause) => Some(cause),
            _ => None,
        }
    }
}

/// Writes `images` as one `docker save` archive to `out`. Every layer is read and checked
/// before the first byte is written, so on a bad layer or tag `out` stays untouched. The same
/// image (same config) given twice is saved once with the tags of both.
pub fn save(images: &[SaveImage], out: impl Write) -> Result<(), SaveError> {
    let plan = Plan::build(images)?;
    plan.write(out)
}

/// An image after validation: its ID, tags split into repository and tag, layers by diff_id.
struct Entry<'a> {
    id: Digest,
    label: String,
    /// `(familiar repository, tag)`, e.g. `("alpine", "3.19")`.
    tags: Vec<(String, String)>,
    config: &'a [u8],
    platform: Platform,
    diff_ids: Vec<Digest>,
}

/// A layer blob to write: the first source seen for its diff_id and its measured size.
struct LayerBlob<'a> {
    data: &'a LayerData,
    image: String,
    layer: String,
    size: u64,
}

enum Blob<'a> {
    Bytes(Vec<u8>),
    Layer(LayerBlob<'a>),
}

/// Everything to write, decided and checked before writing starts.
struct Plan<'a> {
    /// Members under `blobs/sha256/`, by hex digest (so sorted as docker's tar walk is).
    blobs: BTreeMap<String, Blob<'a>>,
    manifest_json: Vec<u8>,
    repositories: Option<Vec<u8>>,
    index_json: Vec<u8>,
}

impl<'a> Plan<'a> {
    fn build(images: &'a [SaveImage]) -> Result<Plan<'a>, SaveError> {
        let mut entries: Vec<Entry<'a>> = Vec::new();
        let mut tag_owner: HashMap<String, Digest> = HashMap::new();
        let mut layers: HashMap<Digest, LayerBlob<'a>> = HashMap::new();
        for image in images {
            let entry = Entry::check(image)?;
            for (repo, tag) in &entry.tags {
                let full = format!("{repo}:{tag}");
                match tag_owner.get(&full) {
                    Some(owner) if *owner != entry.id => {
                        return Err(SaveError::Tag {
                            tag: full,
                            reason: format!("given to two images ({owner} and {})", entry.id),
                        });
                    }
                    _ => {
                        tag_owner.insert(full, entry.id.clone());
                    }
                }
            }
            let count = image.layers.len();
            for (i, layer) in image.layers.iter().enumerate() {
                if layers.contains_key(&layer.diff_id) {
                    continue;
                }
                let label = layer_label(i, count, layer);
                let size = measure(&entry.label, &label, layer)?;
                layers.insert(
                    layer.diff_id.clone(),
                    LayerBlob {
                        data: &layer.data,
                        image: entry.label.clone(),
                        layer: label,
                        size,
                    },
                );
            }
            match entries.iter_mut().find(|e| e.id == entry.id) {
                Some(same) => {
                    for t in entry.tags {
                        if !same.tags.contains(&t) {
                            same.tags.push(t);
                        }
                    }
                }
                None => entries.push(entry),
            }
        }

        let mut blobs: BTreeMap<String, Blob<'a>> = BTreeMap::new();
        let mut manifest = Vec::with_capacity(entries.len());
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut index = Vec::new();
        for entry in &entries {
            let layer_descs: Vec<Descriptor> = entry
                .diff_ids
                .iter()
                .map(|d| Descriptor::new(OCI_LAYER_TAR, d, layers[d].size))
                .collect();
            let oci_manifest = OciManifest {
                schema_version: 2,
                media_type: OCI_MANIFEST,
                config: Descriptor {
                    platform: Some(entry.platform.clone()),
                    ..Descriptor::new(OCI_CONFIG, &entry.id, entry.config.len() as u64)
                },
                layers: layer_descs,
            };
            let manifest_bytes = to_json(&oci_manifest);
            let manifest_digest = sha256_of(&manifest_bytes);
            let manifest_desc = Descriptor {
                platform: Some(entry.platform.clone()),
                ..Descriptor::new(OCI_MANIFEST, &manifest_digest, manifest_bytes.len() as u64)
            };
            if entry.tags.is_empty() {
                index.push(manifest_desc.clone());
            }
            for (repo, tag) in &entry.tags {
                let annotations = BTreeMap::from([
                    (CONTAINERD_IMAGE_NAME, format!("{}:{tag}", full_name(repo))),
                    (REF_NAME, tag.clone()),
                ]);
                index.push(Descriptor {
                    annotations: Some(annotations),
                    ..manifest_desc.clone()
                });
                // Docker 25 names the top layer here by its diff_id (it was the v1 layer ID).
                if let Some(top) = entry.diff_ids.last() {
                    repositories
                        .entry(repo.clone())
                        .or_default()
                        .insert(tag.clone(), top.hex().to_string());
                }
            }
            blobs.insert(
                entry.id.hex().to_string(),
                Blob::Bytes(entry.config.to_vec()),
            );
            blobs.insert(
                manifest_digest.hex().to_string(),
                Blob::Bytes(manifest_bytes),
            );
            manifest.push(ManifestItem {
                config: blob_path(&entry.id),
                repo_tags: (!entry.tags.is_empty()).then(|| {
                    entry
                        .tags
                        .iter()
                        .map(|(repo, tag)| format!("{repo}:{tag}"))
                        .collect()
                }),
                layers: entry.diff_ids.iter().map(blob_path).collect(),
            });
        }
        for (diff_id, layer) in layers {
            blobs.insert(diff_id.hex().to_string(), Blob::Layer(layer));
        }

        // Docker writes these two with Go's json.Encoder, which ends them with a newline.
        let mut manifest_json = to_json(&manifest);
        manifest_json.push(b'\n');
        let repositories = (!repositories.is_empty()).then(|| {
            let mut bytes = to_json(&repositories);
            bytes.push(b'\n');
            bytes
        });
        let index_json = to_json(&OciIndex {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: index,
        });
        Ok(Plan {
            blobs,
            manifest_json,
            repositories,
            index_json,
        })
    }

    fn write(self, out: impl Write) -> Result<(), SaveError> {
        let mut tar = tar::Builder::new(out);
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        for (hex, blob) in &self.blobs {
            let path = format!("blobs/sha256/{hex}");
            match blob {
                Blob::Bytes(bytes) => append_file(&mut tar, &path, bytes)?,
                Blob::Layer(layer) => append_layer(&mut tar, &path, hex, layer)?,
            }
        }
        append_file(&mut tar, "index.json", &self.index_json)?;
        append_file(&mut tar, "manifest.json", &self.manifest_json)?;
        append_file(&mut tar, "oci-layout", OCI_LAYOUT)?;
        if let Some(repositories) = &self.repositories {
            append_file(&mut tar, "repositories", repositories)?;
        }
        tar.into_inner()
            .and_then(|mut out| out.flush())
            .map_err(SaveError::Write)
    }
}

impl<'a> Entry<'a> {
    /// Checks an image's tags and config against its layers.
    fn check(image: &'a SaveImage) -> Result<Entry<'a>, SaveError> {
        let id = sha256_of(&image.config);
        let label = image.repo_tags.first().cloned().unwrap_or(id.to_string());
        let config_err = |reason: String| SaveError::Config {
            image: label.clone(),
            reason,
        };
        let mut tags = Vec::new();
        for tag in &image.repo_tags {
            let split = split_tag(tag)?;
            if !tags.contains(&split) {
                tags.push(split);
            }
        }
        let config: ImageConfig = serde_json::from_slice(&image.config)
            .map_err(|e| config_err(format!("invalid JSON: {e}")))?;
        let diff_ids = config.diff_ids().map_err(&config_err)?;
        let given: Vec<Digest> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
        if diff_ids != given {
            return Err(config_err(format!(
                "rootfs.diff_ids lists {} layers ({}) but {} were given ({})",
                diff_ids.len(),
                join(&diff_ids),
                given.len(),
                join(&given)
            )));
        }
        let platform = Platform::of(&image.config).map_err(&config_err)?;
        Ok(Entry {
            id,
            label,
            tags,
            config: &image.config,
            platform,
            diff_ids,
        })
    }
}

fn join(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `alpine:3.19` → `("alpine", "3.19")`, in docker's short form, or why docker would refuse it.
fn split_tag(tag: &str) -> Result<(String, String), SaveError> {
    let bad = |reason: &str| SaveError::Tag {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if tag.contains('@') {
        return Err(bad("a saved image is tagged NAME[:TAG], not by digest"));
    }
    let short = normalize_repo_tag(tag).ok_or_else(|| bad("not a valid NAME[:TAG]"))?;
    let colon = short
        .rfind(':')
        .ok_or_else(|| bad("not a valid NAME[:TAG]"))?;
    let (repo, tag_part) = (&short[..colon], &short[colon + 1..]);
    // reference.FamiliarName also drops `library/` from a one-part Docker Hub name.
    let repo = match repo.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest,
        _ => repo,
    };
    let path = match repo.split_once('/') {
        Some((domain, path)) if is_domain(domain) => path,
        _ => repo,
    };
    if path.contains(':') {
        return Err(bad("only the registry part of a name may hold a port"));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository names must be lowercase"));
    }
    Ok((repo.to_string(), tag_part.to_string()))
}

/// Whether the first part of a name is a registry (docker's rule: it has a `.` or a `:`, or
/// is `localhost`).
fn is_domain(part: &str) -> bool {
    part.contains(['.', ':']) || part == "localhost"
}

/// `alpine` → `docker.io/library/alpine`, `me/app` → `docker.io/me/app`, others unchanged.
fn full_name(repo: &str) -> String {
    match repo.split_once('/') {
        Some((domain, _)) if is_domain(domain) => repo.to_string(),
        Some(_) => format!("docker.io/{repo}"),
        None => format!("docker.io/library/{repo}"),
    }
}

fn layer_label(i: usize, count: usize, layer: &SaveLayer) -> String {
    let source = match &layer.data {
        LayerData::Blob(b) if b.offset == 0 => b.path.display().to_string(),
        LayerData::Blob(b) => format!("{} at byte {}", b.path.display(), b.offset),
        LayerData::Open(_) => "a stream".to_string(),
    };
    format!(
        "layer {} of {count} ({}, from {source})",
        i + 1,
        layer.diff_id
    )
}

/// The first pass: the layer's uncompressed size, its diff_id checked.
fn measure(image: &str, label: &str, layer: &SaveLayer) -> Result<u64, SaveError> {
    let read_err = |cause| SaveError::Read {
        image: image.to_string(),
        layer: label.to_string(),
        cause,
    };
    let mut reader = open(&layer.data).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let actual = Digest::from_sha256(&hasher.finalize());
    if actual != layer.diff_id {
        return Err(SaveError::DiffIdMismatch {
            image: image.to_string(),
            layer: label.to_string(),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    Ok(size)
}

/// The uncompressed tar stream of a layer.
fn open(data: &LayerData) -> io::Result<Box<dyn Read + Send>> {
    let blob = match data {
        LayerData::Open(open) => return open(),
        LayerData::Blob(blob) => blob,
    };
    let mut file = File::open(&blob.path)?;
    let compression = match blob.compression {
        Compression::Detect => {
            let mut magic = [0u8; 4];
            file.seek(SeekFrom::Start(blob.offset))?;
            let n = (&mut file).take(blob.len.min(4)).read(&mut magic)?;
            match &magic[..n] {
                [0x1f, 0x8b, ..] => Compression::Gzip,
                [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
                _ => Compression::None,
            }
        }
        c => c,
    };
    file.seek(SeekFrom::Start(blob.offset))?;
    let range = BufReader::with_capacity(COPY_BUFFER, file.take(blob.len));
    Ok(match compression {
        // Multi-member: `pigz` and concatenated layers write several gzip members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(range)),
        // The decoder reads frame after frame, as the zstd format allows.
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(range)?),
        Compression::None | Compression::Detect => Box::new(range),
    })
}

/// The writing pass's reader: yields exactly `size` bytes and checks them against the digest
/// the first pass saw, recording what went wrong so the error can name the layer.
struct Checked {
    inner: Box<dyn Read + Send>,
    remaining: u64,
    hasher: Sha256,
    expected: Digest,
    /// Set when the source, not the output, failed.
    failure: Option<Failure>,
    /// The whole layer was read and checked.
    done: bool,
}

enum Failure {
    Read(io::Error),
    Changed(String),
    Mismatch(Digest),
}

impl Checked {
    fn fail(&mut self, failure: Failure) -> io::Error {
        let e = io::Error::other("layer source failed");
        self.failure = Some(failure);
        e
    }
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("layer source failed"));
        }
        if self.done {
            return Ok(0);
        }
        if self.remaining == 0 {
            // The end: the source must end here too, with the same digest.
            let mut probe = [0u8; 1];
            let extra = loop {
                match self.inner.read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.fail(Failure::Read(e))),
                    Ok(n) => break n,
                }
            };
            if extra > 0 {
                return Err(self.fail(Failure::Changed(
                    "it is longer than on the first pass".into(),
                )));
            }
            let actual = Digest::from_sha256(&std::mem::take(&mut self.hasher).finalize());
            if actual != self.expected {
                return Err(self.fail(Failure::Mismatch(actual)));
            }
            self.done = true;
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) if want > 0 => {
                return Err(self.fail(Failure::Changed(
                    "it is shorter than on the first pass".into(),
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.fail(Failure::Read(e))),
        };
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<(), SaveError> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, io::empty())
        .map_err(SaveError::Write)
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> Result<(), SaveError> {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    tar.append_data(&mut h, path, data)
        .map_err(SaveError::Write)
}

fn append_layer<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    hex: &str,
    layer: &LayerBlob,
) -> Result<(), SaveError> {
    let read_err = |cause| SaveError::Read {
        image: layer.image.clone(),
        layer: layer.layer.clone(),
        cause,
    };
    let expected =
        Digest::parse(&format!("sha256:{hex}")).map_err(|m| read_err(io::Error::other(m)))?;
    let mut reader = Checked {
        inner: open(layer.data).map_err(read_err)?,
        remaining: layer.size,
        hasher: Sha256::new(),
        expected: expected.clone(),
        failure: None,
        done: false,
    };
    let mut h = header(tar::EntryType::Regular, 0o644, layer.size);
    // `append_data` copies until the reader ends, so the end-of-layer check runs inside it.
    let result = tar.append_data(&mut h, path, &mut reader);
    match (result, reader.failure) {
        (Ok(()), None) if reader.done => Ok(()),
        (Ok(()), None) => Err(SaveError::Changed {
            image: layer.image.clone(),
            layer: layer.layer.clone(),
            reason: "its end was not checked".into(),
        }),
        (_, Some(Failure::Read(cause))) => Err(read_err(cause)),
        (_, Some(Failure::Changed(reason))) => Err(SaveError::Changed {
            image: layer.image.clone(),
            layer: layer.layer.clone(),
            reason,
        }),
        (_, Some(Failure::Mismatch(actual))) => Err(SaveError::DiffIdMismatch {
            image: layer.image.clone(),
            layer: layer.layer.clone(),
            expected,
            actual,
        }),
        (Err(e), None) => Err(SaveError::Write(e)),
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
