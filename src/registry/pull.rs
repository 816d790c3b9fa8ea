//! `pull` from a registry into the store.
//!
//! The manifest (chosen for the platform from an index) and config are fetched and checked
//! first; then the layers the store lacks are downloaded in parallel into `ingest/` without
//! the store lock (files named after our pid, which `clean_ingest` leaves alone while we
//! live), each hashed as it streams and checked against its digest; only then does the import
//! take the lock, rename them into `blobs/`, index each layer (which checks its diff_id) and
//! record the image. Any failure removes what this pull staged or added.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest as _, Sha256};

use super::RegistryError;
use super::client::{Client, Hashing};
use super::reference::RegistryRef;
use crate::image::Image;
use crate::image::oci::{self, ImageConfig};
use crate::image::platform::Platform;
use crate::image::store::{Store, StoredImage};
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRef, Compression, Digest, LayerSource};
use crate::layer::tar::TarLayer;

pub use crate::image::store::SOURCE;

/// How many layers download at once (docker's default is 3).
const PARALLEL: usize = 3;

/// How a pull reports.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    pub platform: Option<Platform>,
    /// Nothing on stdout, no bars.
    pub quiet: bool,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub image: StoredImage,
    /// The digest `pull` prints: the index's when the reference named one.
    pub digest: Digest,
    /// Layers downloaded (the rest the store had); for `pull_lazy`, layers indexed.
    pub downloaded: usize,
}

/// Prints one of docker's progress lines, unless quiet.
fn progress_line(options: &PullOptions, line: String) {
    if !options.quiet {
        println!("{line}");
        let _ = std::io::stdout().flush();
    }
}

/// Checks that the registry answers, then prints docker's first line (`TAG: Pulling from
/// REPO`, with `how` after it) when the image is named by tag.
fn begin(
    client: &Client,
    reference: &RegistryRef,
    options: &PullOptions,
    how: &str,
) -> Result<(), RegistryError> {
    client.ping()?;
    if let Some(tag) = &reference.tag
        && reference.digest.is_none()
    {
        progress_line(
            options,
            format!("{tag}: Pulling from {}{how}", reference.repo),
        );
    }
    Ok(())
}

/// Pulls `reference` into `store`.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &RegistryRef,
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let host = Platform::host();
    let platform = options.platform.as_ref().unwrap_or(&host);
    let say = |line: String| progress_line(options, line);
    begin(client, reference, options, "")?;
    let resolved = client.resolve(reference, platform)?;
    let name = reference.to_string();
    let bad = |m: String| RegistryError::Protocol {
        registry: client.name().to_string(),
        cause: format!("{name}: {m}"),
    };
    let config: ImageConfig = serde_json::from_slice(&resolved.config_raw).map_err(|e| {
        bad(format!(
            "config {}: invalid JSON: {e}",
            resolved.config_digest
        ))
    })?;
    let diff_ids = config.diff_ids().map_err(&bad)?;
    if diff_ids.len() != resolved.layers.len() {
        return Err(bad(format!(
            "the manifest lists {} layers but the config has {} diff_ids",
            resolved.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for desc in &resolved.layers {
        let digest = desc.digest().map_err(&bad)?;
        let size = desc.size().map_err(&bad)?;
        let compression = oci::layer_compression(&desc.media_type).map_err(&bad)?;
        layers.push((digest, size, compression));
    }

    let wanted: Vec<&(Digest, u64, Compression)> = {
        let mut seen = std::collections::HashSet::new();
        layers
            .iter()
            .filter(|(d, _, _)| seen.insert(d.clone()))
            .collect()
    };
    let staged = Mutex::new(HashMap::<Digest, PathBuf>::new());
    let result = download(store, client, reference, &wanted, &staged, options);
    let staged = staged.into_inner().unwrap_or_else(|p| p.into_inner());
    let cleanup = |staged: &HashMap<Digest, PathBuf>| {
        for path in staged.values() {
            let _ = std::fs::remove_file(path);
        }
    };
    let downloaded = match result {
        Ok(n) => n,
        Err(e) => {
            cleanup(&staged);
            return Err(e);
        }
    };

    let image = Image {
        reference: name.clone(),
        manifest_digest: Some(resolved.manifest_digest.clone()),
        config_digest: Some(resolved.config_digest.clone()),
        config,
        layers: layers
            .iter()
            .zip(diff_ids)
            .map(|((digest, size, compression), diff_id)| {
                LayerSource::Blob(BlobRef {
                    path: staged
                        .get(digest)
                        .cloned()
                        .unwrap_or_else(|| store.blob_path(digest)),
                    offset: 0,
                    len: *size,
                    compression: *compression,
                    digest: Some(digest.clone()),
                    diff_id: Some(diff_id),
                    image: Some(name.clone()),
                })
            })
            .rev()
            .collect(),
        manifest_raw: Some(resolved.manifest_raw.clone()),
        config_raw: resolved.config_raw.clone(),
        repo_tags: Vec::new(),
    };
    let tags: Vec<String> = reference.store_tag().into_iter().collect();
    let result = store.import_staged(&image, &tags, &staged);
    cleanup(&staged);
    let image = result?;
    store.annotate(&image.manifest_digest, SOURCE, &reference.full_name())?;
    let digest = resolved
        .index_digest
        .clone()
        .unwrap_or_else(|| resolved.manifest_digest.clone());
    say(format!("Digest: {digest}"));
    match reference.store_tag() {
        Some(tag) if downloaded > 0 => say(format!("Status: Downloaded newer image for {tag}")),
        Some(tag) => say(format!("Status: Image is up to date for {tag}")),
        None => say(format!(
            "Status: Downloaded image {}@{digest}",
            reference.short_name()
        )),
    }
    say(name);
    Ok(Pulled {
        image,
        digest,
        downloaded,
    })
}

/// `pull --lazy`: brings `reference` into `store` without its layer blobs. The manifest and
/// config are stored; every layer the store lacks is indexed into the store's `indexes/`,
/// from the index artifact the registry publishes for the image (`push --index`) when there
/// is one, else by one streaming pass over the blob (which checks its digest and diff_id);
/// the image is tagged as a pull would and marked lazy, so that `mount NAME` reads its layers
/// by ranges through the chunk cache under `indexes/chunks/`.
pub fn pull_lazy(
    store: &Store,
    client: &Arc<Client>,
    reference: &RegistryRef,
    options: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let host = Platform::host();
    let platform = options.platform.as_ref().unwrap_or(&host);
    let say = |line: String| progress_line(options, line);
    begin(client, reference, options, " (lazily)")?;
    let index_dir = store.index_dir();
    let lazy = super::lazy::open_image(client, reference, platform, Some(&index_dir), false)?;
    let name = reference.to_string();
    let layer_options = LayerOptions {
        index_cache: Some(index_dir),
        ..LayerOptions::default()
    };
    let mut unpacked = 0u64;
    let mut indexed = 0;
    // Bottom first, as `docker pull` lists them.
    for source in lazy.layers.iter().rev() {
        let LayerSource::Remote(remote) = source else {
            continue;
        };
        let short = &remote.digest.hex()[..12.min(remote.digest.hex().len())];
        let local = store.blob_path(&remote.digest);
        let failed = |e: crate::layer::tar::TarError| {
            RegistryError::Invalid(format!(
                "{name}: layer {}: {}",
                remote.digest,
                crate::layer::tar::one_line(&e.to_string())
            ))
        };
        let (tar_len, status) = if local.exists() {
            let blob = BlobRef {
                path: local,
                offset: 0,
                len: remote.source.len(),
                compression: remote.compression,
                digest: Some(remote.digest.clone()),
                diff_id: remote.diff_id.clone(),
                image: Some(name.clone()),
            };
            let layer = TarLayer::open_blob(&blob, &layer_options).map_err(failed)?;
            (layer.tar_len(), "Already exists")
        } else {
            let layer = TarLayer::open_remote(remote, &layer_options).map_err(failed)?;
            indexed += 1;
            (layer.tar_len(), "Indexed")
        };
        unpacked += tar_len;
        say(format!("{short}: {status}"));
    }
    let tags: Vec<String> = reference.store_tag().into_iter().collect();
    let image = store.import_lazy(
        &lazy.resolved.manifest_raw,
        &lazy.resolved.config_raw,
        &tags,
        unpacked,
        &reference.full_name(),
    )?;
    let digest = lazy
        .resolved
        .index_digest
        .clone()
        .unwrap_or_else(|| lazy.resolved.manifest_digest.clone());
    say(format!("Digest: {digest}"));
    if lazy.imported > 0 {
        say(format!(
            "Layer indexes: {} taken from the registry",
            lazy.imported
        ));
    }
    let what = reference
        .store_tag()
        .unwrap_or_else(|| format!("{}@{digest}", reference.short_name()));
    say(format!(
        "Status: Indexed image for {what} (layers are read from the registry when used)"
    ));
    say(name);
    Ok(Pulled {
        image,
        digest,
        downloaded: indexed,
    })
}

/// Downloads the layers the store lacks into `ingest/`, a few at a time, with a bar each
/// on a terminal (a line each otherwise). Fills `staged`; returns how many were downloaded.
fn download(
    store: &Store,
    client: &Client,
    reference: &RegistryRef,
    layers: &[&(Digest, u64, Compression)],
    staged: &Mutex<HashMap<Digest, PathBuf>>,
    options: &PullOptions,
) -> Result<usize, RegistryError> {
    let bars = !options.quiet && std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if bars {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{prefix}: {msg:<12} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let line = |short: &str, status: &str| {
        if !options.quiet && !bars {
            println!("{short}: {status}");
        }
    };
    let mut todo = Vec::new();
    for (digest, size, _) in layers {
        let short = &digest.hex()[..12.min(digest.hex().len())];
        if store.blob_path(digest).exists() {
            let bar = multi.add(ProgressBar::new(*size).with_style(style.clone()));
            bar.set_prefix(short.to_string());
            bar.finish_with_message("Already exists");
            line(short, "Already exists");
        } else {
            let bar = multi.add(ProgressBar::new(*size).with_style(style.clone()));
            bar.set_prefix(short.to_string());
            bar.set_message("Waiting");
            todo.push((digest.clone(), *size, bar));
        }
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(todo.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((digest, size, bar)) = todo.get(i) else {
                        break;
                    };
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let short = &digest.hex()[..12.min(digest.hex().len())];
                    bar.set_message("Downloading");
                    match fetch_blob(store, client, &reference.repo, digest, *size, bar, staged) {
                        Ok(()) => {
                            bar.finish_with_message("Pull complete");
                            line(short, "Pull complete");
                        }
                        Err(e) => {
                            bar.abandon_with_message("Failed");
                            failed.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(todo.len()),
    }
}

/// Streams one blob into a new `ingest/` file, hashing it; keeps it (in `staged`) only if
/// size and digest match.
fn fetch_blob(
    store: &Store,
    client: &Client,
    repo: &str,
    digest: &Digest,
    size: u64,
    bar: &ProgressBar,
    staged: &Mutex<HashMap<Digest, PathBuf>>,
) -> Result<(), RegistryError> {
    let (tmp, file) = store.staging_file()?;
    let result = (|| -> Result<(), RegistryError> {
        let reader = client.blob_reader(repo, digest, 0)?;
        let mut hashing = Hashing {
            inner: reader.take(size + 1),
            hash: Sha256::new(),
            count: 0,
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = hashing
                .read(&mut buf)
                .map_err(|e| RegistryError::Protocol {
                    registry: client.name().to_string(),
                    cause: format!("blob {repo}@{digest}: {e}"),
                })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| RegistryError::Io(tmp.display().to_string(), e))?;
            bar.inc(n as u64);
        }
        out.flush()
            .map_err(|e| RegistryError::Io(tmp.display().to_string(), e))?;
        drop(out);
        let actual = Digest::from_sha256(&hashing.hash.finalize());
        if hashing.count != size || actual != *digest {
            return Err(RegistryError::Digest {
                what: format!("registry {}: blob {repo}@{digest}", client.name()),
                expected: digest.clone(),
                actual: format!("{actual} ({} of {size} bytes)", hashing.count),
            });
        }
        file.sync_all()
            .map_err(|e| RegistryError::Io(tmp.display().to_string(), e))
    })();
    match result {
        Ok(()) => {
            staged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest.clone(), tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
