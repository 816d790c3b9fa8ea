//! `push` of a store image to a registry: each layer and the config unless the repository
//! has it (`HEAD`), mounted from the repository the image was pulled from when that is on the
//! same registry, else uploaded; then the manifest, byte for byte as stored, so that its
//! digest does not change.

use std::io::Write;

use super::RegistryError;
use super::client::{BlobData, Client, Upload};
use super::pull::SOURCE;
use super::reference::RegistryRef;
use crate::image::store::Store;
use crate::layer::blob::Digest;

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    /// Blobs per outcome.
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

/// Pushes the store image `image` (any name `images` accepts) to `target`.
pub fn push(
    store: &Store,
    client: &Client,
    image: &str,
    target: &RegistryRef,
    quiet: bool,
) -> Result<Pushed, RegistryError> {
    let say = |line: String| {
        if !quiet {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    };
    // Readers' lock: no `rmi` or `prune` removes the blobs while they are sent.
    let _lock = store.lock(false)?;
    let stored = store.find(image)?;
    let manifest_raw = store.read_blob(&stored.manifest_digest)?;
    if let Some(want) = &target.digest
        && *want != stored.manifest_digest
    {
        return Err(RegistryError::Invalid(format!(
            "push {target}: the image's manifest is {}, not the digest given",
            stored.manifest_digest
        )));
    }
    let mount_from = store
        .annotations(&stored.manifest_digest)?
        .get(SOURCE)
        .and_then(|source| {
            let (host, repo) = source.split_once('/')?;
            (host == target.host && repo != target.repo).then(|| repo.to_string())
        });
    say(format!(
        "The push refers to repository [{}]",
        target.full_name()
    ));
    client.ping()?;
    let mut pushed = Pushed {
        digest: stored.manifest_digest.clone(),
        size: manifest_raw.len() as u64,
        uploaded: 0,
        mounted: 0,
        existed: 0,
    };
    let mut count = |outcome: &Upload| match outcome {
        Upload::Exists => pushed.existed += 1,
        Upload::Mounted(_) => pushed.mounted += 1,
        Upload::Pushed => pushed.uploaded += 1,
    };
    // docker lists the top layer first.
    for desc in stored.manifest.layers.iter().rev() {
        let digest = desc
            .digest()
            .map_err(|m| RegistryError::Invalid(format!("image {image}: layer {m}")))?;
        let size = desc
            .size()
            .map_err(|m| RegistryError::Invalid(format!("image {image}: layer {m}")))?;
        let path = store.blob_path(&digest);
        let absent = !path.exists();
        let outcome = client
            .put_blob(
                &target.repo,
                &digest,
                BlobData::File(&path, size),
                mount_from.as_deref(),
            )
            .map_err(|e| match e {
                // A layer of a lazy image the registry had neither in the repository nor
                // could mount from where it was pulled.
                RegistryError::Io(..) if absent => {
                    RegistryError::Store(stored.lazy_error(image, "push", None))
                }
                e => e,
            })?;
        let short = &digest.hex()[..12.min(digest.hex().len())];
        match &outcome {
            Upload::Exists => say(format!("{short}: Layer already exists")),
            Upload::Mounted(from) => say(format!("{short}: Mounted from {from}")),
            Upload::Pushed => say(format!("{short}: Pushed")),
        }
        count(&outcome);
    }
    let outcome = client.put_blob(
        &target.repo,
        &stored.config_digest,
        BlobData::Bytes(&stored.config_raw),
        mount_from.as_deref(),
    )?;
    count(&outcome);
    let reference = target
        .tag
        .clone()
        .unwrap_or_else(|| stored.manifest_digest.to_string());
    let digest = client.put_manifest(
        &target.repo,
        &reference,
        &stored.manifest_media_type,
        &manifest_raw,
    )?;
    say(format!(
        "{}: digest: {digest} size: {}",
        target.tag.as_deref().unwrap_or("latest"),
        manifest_raw.len()
    ));
    pushed.digest = digest;
    Ok(pushed)
}
