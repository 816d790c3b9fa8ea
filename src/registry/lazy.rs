//! Lazy mounts of unmodified registry images, and the layer indexes that spare other machines
//! the first pass.
//!
//! - [`HttpBlob`]: a layer blob of a registry as a [`RangeSource`]: `Range` GETs for reads,
//!   and for the one indexing pass a stream made of large consecutive ranges (each retried
//!   and resumed by the client, so a cut connection costs one range, not the pass).
//! - [`open_image`]: a reference resolved to its layers as [`LayerSource::Remote`], topmost
//!   first as mounts stack them, after importing the image's published indexes when the
//!   registry has them.
//! - [`push_indexes`]: each layer's saved index pushed as one OCI artifact whose `subject`
//!   is the image manifest (distribution spec 1.1: the referrers API, and where a registry
//!   has none, the tag-schema fallback `sha256-<hex>`, an index of the referrers kept by
//!   read-modify-write). The image itself is not touched, so its digests do not change.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::RegistryError;
use super::client::{BlobData, Client, Resolved};
use super::reference::RegistryRef;
use crate::image::oci::{self, ImageConfig};
use crate::image::platform::Platform;
use crate::layer::blob::{Digest, LayerSource, RangeSource, RemoteBlobRef};
use crate::layer::tar::{INDEX_MEDIA_TYPE, export_index, import_index};

/// The `artifactType` of the manifest that carries an image's layer indexes.
pub const INDEX_ARTIFACT_TYPE: &str = "application/vnd.unionmount.layer-index.v1";

/// The annotation on each index blob naming the image layer it indexes.
pub const LAYER_ANNOTATION: &str = "org.unionmount.layer.digest";

/// The OCI empty descriptor's media type, and its content `{}` (image-spec manifest.md,
/// "Guidance for an Empty Descriptor").
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";

/// Bytes per request of the indexing pass's stream.
const STREAM_PIECE: u64 = 8 << 20;

/// Most bytes one index blob may have (a few MiB is usual; checkpoints grow with the blob).
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// One layer blob of a registry repository, read by ranges.
pub struct HttpBlob {
    client: Arc<Client>,
    repo: String,
    digest: Digest,
    len: u64,
}

impl HttpBlob {
    pub fn new(client: Arc<Client>, repo: &str, digest: Digest, len: u64) -> HttpBlob {
        HttpBlob {
            client,
            repo: repo.to_string(),
            digest,
            len,
        }
    }
}

impl RangeSource for HttpBlob {
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = (len as u64).min(self.len.saturating_sub(offset));
        if len == 0 {
            return Ok(Vec::new());
        }
        // The client retries failed requests and resumes cut bodies; what it returns short
        // is the blob's end, which `len` already stops at.
        let data = self
            .client
            .blob_range(&self.repo, &self.digest, offset, len)?;
        if (data.len() as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the registry sent {} of {len} bytes at {offset}",
                    self.describe(),
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn stream(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(PieceStream {
            blob: HttpBlob {
                client: Arc::clone(&self.client),
                repo: self.repo.clone(),
                digest: self.digest.clone(),
                len: self.len,
            },
            pos: offset,
            piece: Vec::new(),
            at: 0,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{} of docker://{}/{}",
            self.digest,
            self.client.name(),
            self.repo
        )
    }
}

/// The blob front to back as consecutive ranges of [`STREAM_PIECE`] bytes.
struct PieceStream {
    blob: HttpBlob,
    /// The blob offset after the current piece.
    pos: u64,
    piece: Vec<u8>,
    at: usize,
}

impl Read for PieceStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            if self.pos >= self.blob.len {
                return Ok(0);
            }
            let want = STREAM_PIECE.min(self.blob.len - self.pos) as usize;
            self.piece = self.blob.read_range(self.pos, want)?;
            self.pos += self.piece.len() as u64;
            self.at = 0;
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A registry image ready to mount lazily.
pub struct LazyImage {
    pub resolved: Resolved,
    /// Topmost first, as mounts stack them.
    pub layers: Vec<LayerSource>,
    /// Layers whose index came from an index artifact in the registry.
    pub imported: usize,
}

/// One layer as the manifest and config describe it.
#[derive(Clone, Debug)]
pub struct RemoteLayer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

/// The layers of a resolved image, bottom first, with their diff_ids from the config.
pub fn layers_of(resolved: &Resolved) -> Result<Vec<RemoteLayer>, RegistryError> {
    let bad = |m: String| RegistryError::Protocol {
        registry: String::new(),
        cause: format!("image {}: {m}", resolved.manifest_digest),
    };
    let config: ImageConfig = serde_json::from_slice(&resolved.config_raw)
        .map_err(|e| bad(format!("config: invalid JSON: {e}")))?;
    let diff_ids = config.diff_ids().map_err(bad)?;
    if diff_ids.len() != resolved.layers.len() {
        return Err(bad(format!(
            "the manifest lists {} layers, the config {} diff_ids",
            resolved.layers.len(),
            diff_ids.len()
        )));
    }
    resolved
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(desc, diff_id)| {
            Ok(RemoteLayer {
                digest: desc.digest().map_err(bad)?,
                diff_id,
                size: desc.size().map_err(bad)?,
                media_type: desc.media_type.clone(),
            })
        })
        .collect()
}

/// Resolves `reference` for a lazy mount: its layers as remote blobs read through the chunk
/// cache under `index_dir` (`None`: temporary files), with `fill` to fetch each whole blob in
/// the background once the mount serves. With an index directory, indexes the registry
/// publishes for the image are imported first (a failure to find or import one only means the
/// layer gets its indexing pass).
pub fn open_image(
    client: &Arc<Client>,
    reference: &RegistryRef,
    platform: &Platform,
    index_dir: Option<&Path>,
    fill: bool,
) -> Result<LazyImage, RegistryError> {
    let resolved = client.resolve(reference, platform)?;
    let layers = layers_of(&resolved)?;
    let image = format!("docker://{}/{}", reference.host, reference.repo);
    let mut sources = Vec::with_capacity(layers.len());
    for layer in &layers {
        let compression =
            oci::layer_compression(&layer.media_type).map_err(|m| RegistryError::Protocol {
                registry: client.name().to_string(),
                cause: format!("{image}: layer {}: {m}", layer.digest),
            })?;
        let source: Arc<dyn RangeSource> = Arc::new(HttpBlob::new(
            Arc::clone(client),
            &reference.repo,
            layer.digest.clone(),
            layer.size,
        ));
        sources.push(LayerSource::Remote(RemoteBlobRef {
            source,
            digest: layer.digest.clone(),
            diff_id: Some(layer.diff_id.clone()),
            compression,
            image: Some(image.clone()),
            fill,
        }));
    }
    sources.reverse();
    let imported = match index_dir {
        Some(dir) => import_published(client, &reference.repo, &resolved, &layers, dir),
        None => 0,
    };
    Ok(LazyImage {
        resolved,
        layers: sources,
        imported,
    })
}

/// The layers of a store image pulled with `--lazy` (from `Store::image`, topmost first),
/// each whose blob file the store does not have turned into a remote layer read by ranges
/// from `repo` of `client`'s registry (through the chunk cache of the mount's index
/// directory, where `pull --lazy` saved its index). `fill` fetches those whole in the
/// background once the mount serves. Layers the store has are left as they are.
pub fn remote_layers(
    client: &Arc<Client>,
    repo: &str,
    layers: Vec<LayerSource>,
    fill: bool,
) -> Result<Vec<LayerSource>, RegistryError> {
    layers
        .into_iter()
        .map(|layer| match layer {
            LayerSource::Blob(blob) if !blob.path.exists() => {
                let digest = blob.digest.clone().ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "{}: a layer without a digest cannot be read from a registry",
                        blob.path.display()
                    ))
                })?;
                let source: Arc<dyn RangeSource> = Arc::new(HttpBlob::new(
                    Arc::clone(client),
                    repo,
                    digest.clone(),
                    blob.len,
                ));
                Ok(LayerSource::Remote(RemoteBlobRef {
                    source,
                    digest,
                    diff_id: blob.diff_id,
                    compression: blob.compression,
                    image: blob.image,
                    fill,
                }))
            }
            other => Ok(other),
        })
        .collect()
}

/// Imports the indexes the registry publishes for the image, for the layers `dir` has no
/// index of yet. Returns how many were imported; problems are logged, never fatal.
fn import_published(
    client: &Client,
    repo: &str,
    resolved: &Resolved,
    layers: &[RemoteLayer],
    dir: &Path,
) -> usize {
    let missing: Vec<&RemoteLayer> = layers
        .iter()
        .filter(|l| export_index(dir, &l.digest, Some(&l.diff_id), l.size).is_err())
        .collect();
    if missing.is_empty() {
        return 0;
    }
    let artifact = match find_artifact(client, repo, &resolved.manifest_digest) {
        Ok(Some(a)) => a,
        Ok(None) => {
            log::info!(
                "{repo}@{}: no published layer indexes",
                resolved.manifest_digest
            );
            return 0;
        }
        Err(e) => {
            log::warn!("looking for published layer indexes: {e}");
            return 0;
        }
    };
    let mut imported = 0;
    for layer in missing {
        let Some(desc) = artifact.layers.iter().find(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(LAYER_ANNOTATION))
                .is_some_and(|d| d == layer.digest.as_str())
        }) else {
            continue;
        };
        let result = fetch_blob(client, repo, desc, MAX_INDEX_BYTES).and_then(|bytes| {
            import_index(dir, &layer.digest, Some(&layer.diff_id), layer.size, &bytes)
                .map_err(RegistryError::Invalid)
        });
        match result {
            Ok(()) => imported += 1,
            Err(e) => log::warn!("{e}; the layer is indexed by reading it"),
        }
    }
    imported
}

/// The newest index artifact that refers to `subject`: from the referrers API, else from the
/// tag-schema fallback.
fn find_artifact(
    client: &Client,
    repo: &str,
    subject: &Digest,
) -> Result<Option<oci::Manifest>, RegistryError> {
    let newest = |index: ReferrersIndex| {
        index
            .manifests
            .into_iter()
            .rev()
            .find(|d| artifact_type(d) == Some(INDEX_ARTIFACT_TYPE))
    };
    // A registry may have the API and still keep an artifact under the tag (one pushed by a
    // client that saw it not listed), so the tag is looked at too.
    let from_api = referrers_api(client, repo, subject)?.and_then(newest);
    let found = match from_api {
        Some(desc) => Some(desc),
        None => fallback_index(client, repo, subject)?.and_then(newest),
    };
    let Some(desc) = found else {
        return Ok(None);
    };
    let digest = desc.digest().map_err(|m| protocol(client, m))?;
    let (_, raw, _) = client.get_manifest(repo, digest.as_str())?;
    let manifest: oci::Manifest = serde_json::from_slice(&raw).map_err(|e| {
        protocol(
            client,
            format!("index artifact {repo}@{digest}: invalid JSON: {e}"),
        )
    })?;
    Ok(Some(manifest))
}

/// The `artifactType` of a referrers entry.
fn artifact_type(desc: &ReferrerDescriptor) -> Option<&str> {
    desc.artifact_type.as_deref()
}

/// A descriptor of a referrers index: a manifest descriptor with its `artifactType`.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerDescriptor {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl ReferrerDescriptor {
    fn digest(&self) -> Result<Digest, String> {
        Digest::parse(&self.digest)
    }
}

#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<ReferrerDescriptor>,
}

/// The referrers of `subject` by the API; `None` where the registry has no such API (404,
/// or another error status from a registry that does not know the route).
fn referrers_api(
    client: &Client,
    repo: &str,
    subject: &Digest,
) -> Result<Option<ReferrersIndex>, RegistryError> {
    match client.get_referrers(repo, subject) {
        Ok(Some(raw)) => Ok(Some(parse_index(client, repo, &raw)?)),
        Ok(None) | Err(RegistryError::Status { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_index(client: &Client, repo: &str, raw: &[u8]) -> Result<ReferrersIndex, RegistryError> {
    serde_json::from_slice(raw)
        .map_err(|e| protocol(client, format!("referrers of {repo}: invalid JSON: {e}")))
}

/// The tag the fallback keeps referrers of `subject` under (distribution spec 1.1,
/// "Referrers Tag Schema").
fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

fn fallback_index(
    client: &Client,
    repo: &str,
    subject: &Digest,
) -> Result<Option<ReferrersIndex>, RegistryError> {
    match client.get_manifest(repo, &fallback_tag(subject)) {
        Ok((_, raw, _)) => Ok(Some(parse_index(client, repo, &raw)?)),
        Err(RegistryError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn protocol(client: &Client, cause: String) -> RegistryError {
    RegistryError::Protocol {
        registry: client.name().to_string(),
        cause,
    }
}

/// A blob of at most `max` bytes read whole and checked against its descriptor.
fn fetch_blob(
    client: &Client,
    repo: &str,
    desc: &oci::Descriptor,
    max: u64,
) -> Result<Vec<u8>, RegistryError> {
    let digest = desc.digest().map_err(|m| protocol(client, m))?;
    let size = desc.size().map_err(|m| protocol(client, m))?;
    if size > max {
        return Err(protocol(
            client,
            format!("index blob {digest}: {size} bytes is too large"),
        ));
    }
    let mut data = Vec::new();
    client
        .blob_reader(repo, &digest, 0)?
        .take(size + 1)
        .read_to_end(&mut data)
        .map_err(|e| protocol(client, format!("index blob {digest}: {e}")))?;
    let actual = crate::image::sha256_of(&data);
    if actual != digest || data.len() as u64 != size {
        return Err(RegistryError::Digest {
            what: format!("registry {}: {repo}: index blob", client.name()),
            expected: digest,
            actual: format!("{actual} ({} bytes)", data.len()),
        });
    }
    Ok(data)
}

/// What [`push_indexes`] did.
#[derive(Debug)]
pub struct PushedIndexes {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// Layers whose index had to be built by reading the blob (none was saved).
    pub built: usize,
    /// Whether the referrers tag (the fallback) was written.
    pub fallback: bool,
}

/// Pushes the saved indexes of `target`'s layers (as the registry has the image) as an index
/// artifact referring to its manifest. A layer without a saved index in `index_dir` is
/// indexed first, by reading its blob once.
pub fn push_indexes(
    client: &Arc<Client>,
    target: &RegistryRef,
    platform: &Platform,
    index_dir: &Path,
) -> Result<PushedIndexes, RegistryError> {
    let repo = &target.repo;
    let lazy = open_image(client, target, platform, Some(index_dir), false)?;
    let layers = layers_of(&lazy.resolved)?;
    let mut built = 0;
    let mut blobs = Vec::with_capacity(layers.len());
    // `lazy.layers` is topmost first; `layers` bottom first.
    for (layer, source) in layers.iter().zip(lazy.layers.iter().rev()) {
        let exported =
            match export_index(index_dir, &layer.digest, Some(&layer.diff_id), layer.size) {
                Ok(bytes) => bytes,
                Err(_) => {
                    let options = crate::layer::LayerOptions {
                        index_cache: Some(index_dir.to_path_buf()),
                        ..Default::default()
                    };
                    crate::layer::open(source, &options).map_err(RegistryError::Invalid)?;
                    built += 1;
                    export_index(index_dir, &layer.digest, Some(&layer.diff_id), layer.size)
                        .map_err(RegistryError::Invalid)?
                }
            };
        blobs.push((layer, exported));
    }
    let empty = crate::image::sha256_of(EMPTY_JSON);
    client.put_blob(repo, &empty, BlobData::Bytes(EMPTY_JSON), None)?;
    let mut descriptors = Vec::with_capacity(blobs.len());
    for (layer, bytes) in &blobs {
        let digest = crate::image::sha256_of(bytes);
        client.put_blob(repo, &digest, BlobData::Bytes(bytes), None)?;
        descriptors.push(serde_json::json!({
            "mediaType": INDEX_MEDIA_TYPE,
            "digest": digest.as_str(),
            "size": bytes.len(),
            "annotations": { LAYER_ANNOTATION: layer.digest.as_str() },
        }));
    }
    let subject = &lazy.resolved;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": INDEX_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": empty.as_str(),
            "size": EMPTY_JSON.len(),
        },
        "layers": descriptors,
        "subject": {
            "mediaType": subject.manifest_media_type,
            "digest": subject.manifest_digest.as_str(),
            "size": subject.manifest_raw.len(),
        },
    });
    let raw = serde_json::to_vec(&manifest)
        .map_err(|e| RegistryError::Invalid(format!("index artifact: {e}")))?;
    let digest = crate::image::sha256_of(&raw);
    client.put_manifest(repo, digest.as_str(), oci::OCI_MANIFEST, &raw)?;
    // A registry that indexes `subject` lists the artifact by the referrers API at once; for
    // any other the fallback tag is written (distribution spec 1.1, "Pushing Manifests with
    // Subject").
    let listed = referrers_api(client, repo, &subject.manifest_digest)?
        .is_some_and(|index| index.manifests.iter().any(|d| d.digest == digest.as_str()));
    let fallback = !listed;
    if fallback {
        let mut index = fallback_index(client, repo, &subject.manifest_digest)?.unwrap_or_default();
        // Earlier index artifacts of this image are superseded by this one.
        index
            .manifests
            .retain(|d| artifact_type(d) != Some(INDEX_ARTIFACT_TYPE));
        index.manifests.push(ReferrerDescriptor {
            media_type: oci::OCI_MANIFEST.to_string(),
            digest: digest.to_string(),
            size: raw.len() as i64,
            artifact_type: Some(INDEX_ARTIFACT_TYPE.to_string()),
            annotations: None,
        });
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_INDEX,
            "manifests": index.manifests,
        });
        let raw = serde_json::to_vec(&doc)
            .map_err(|e| RegistryError::Invalid(format!("referrers index: {e}")))?;
        client.put_manifest(
            repo,
            &fallback_tag(&subject.manifest_digest),
            oci::OCI_INDEX,
            &raw,
        )?;
    }
    Ok(PushedIndexes {
        digest,
        built,
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_descriptor_is_the_spec_one() {
        assert_eq!(
            crate::image::sha256_of(EMPTY_JSON).as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(fallback_tag(&d), format!("sha256-{}", "ab".repeat(32)));
    }
}
