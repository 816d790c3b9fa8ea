//! The image model: turns an image reference into the layers a mount stacks, with the digests
//! each layer must match. No filesystem-mount code lives here.
//!
//! [`reference`](mod@reference) parses `oci:DIR[:TAG]` and `docker-archive:FILE[:NAME:TAG]`; [`layout`] reads
//! an OCI image layout and [`archive`] a `docker save` archive, both in place; [`oci`] holds
//! the JSON documents and media types. Every manifest and config read is checked against its
//! descriptor's size and sha256 here (they are small); layer blobs are only checked for size
//! here, and for digest and diff_id by the layer code when it first indexes them.

pub mod archive;
pub mod archive_write;
pub mod layout;
pub mod oci;
pub mod pack;
pub mod platform;
pub mod reference;
pub mod store;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::layer::blob::{Digest, LayerSource};
use oci::ImageConfig;
use platform::Platform;
use reference::{Location, Reference};

/// The largest JSON document (index, manifest, config, `manifest.json`) read into memory.
/// Real ones are kilobytes; registries cap manifests at 4 MiB.
pub const MAX_JSON_BYTES: u64 = 16 << 20;

/// An image resolved to its layers.
#[derive(Clone, Debug)]
pub struct Image {
    /// The reference as written (names the image in messages).
    pub reference: String,
    /// Digest of the manifest, where there is one (an OCI layout, or an archive that nests
    /// one); `None` for an old-style docker archive.
    pub manifest_digest: Option<Digest>,
    /// Digest of the config (the image ID docker shows).
    pub config_digest: Option<Digest>,
    pub config: ImageConfig,
    /// The layers, topmost first (as [`crate::mount::MountConfig`] stacks them).
    pub layers: Vec<LayerSource>,
    /// The manifest as read (verified against its digest), where there is one.
    pub manifest_raw: Option<Vec<u8>>,
    /// The config as read; its sha256 is `config_digest`.
    pub config_raw: Vec<u8>,
    /// The tags a docker archive gives the image (`RepoTags`, in docker's short form).
    pub repo_tags: Vec<String>,
}

/// Why an image could not be resolved: the image (reference as written) and the cause.
#[derive(Debug)]
pub struct ImageError {
    pub image: String,
    pub cause: Cause,
}

/// What went wrong, each naming the thing (file, blob, tag) concerned.
#[derive(Debug)]
pub enum Cause {
    /// The reference itself is malformed or unsupported; the message says all.
    Reference(String),
    Io(PathBuf, io::Error),
    NotALayout(String),
    MissingBlob(Digest),
    Json(String, String),
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    TooLarge(String),
    UnknownTag {
        tag: String,
        tags: Vec<String>,
    },
    NoPlatform {
        want: String,
        have: Vec<String>,
    },
    LayerCount {
        layers: usize,
        diff_ids: usize,
    },
    Unsupported(String),
    Invalid(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Cause::Reference(m) = &self.cause {
            return f.write_str(m);
        }
        write!(f, "image {}: ", self.image)?;
        match &self.cause {
            Cause::Reference(_) => Ok(()),
            Cause::Io(p, e) if e.kind() == io::ErrorKind::NotFound => {
                write!(f, "{}: does not exist", p.display())
            }
            Cause::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Cause::NotALayout(m) => write!(f, "not an OCI image layout: {m}"),
            Cause::MissingBlob(d) => write!(f, "blob {d} is missing"),
            Cause::Json(what, e) => write!(f, "{what}: invalid JSON: {e}"),
            Cause::DigestMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: digest mismatch: expected {expected}, got {actual}"
            ),
            Cause::SizeMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: size mismatch: expected {expected} bytes, got {actual}"
            ),
            Cause::TooLarge(what) => {
                write!(
                    f,
                    "{what}: larger than the {MAX_JSON_BYTES}-byte limit for JSON documents"
                )
            }
            Cause::UnknownTag { tag, tags } if tags.is_empty() => {
                write!(f, "no image tagged {tag:?} (no tags at all)")
            }
            Cause::UnknownTag { tag, tags } => {
                write!(f, "no image tagged {tag:?} (tags: {})", tags.join(", "))
            }
            Cause::NoPlatform { want, have } => write!(
                f,
                "no manifest for platform {want} (have: {}; choose with --platform)",
                have.join(", ")
            ),
            Cause::LayerCount { layers, diff_ids } => write!(
                f,
                "the manifest lists {layers} layers but the config has {diff_ids} diff_ids"
            ),
            Cause::Unsupported(m) | Cause::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ImageError {}

/// Resolves `reference` to its layers. `platform` chooses among a multi-platform index
/// (default: this machine).
pub fn resolve(reference: &Reference, platform: Option<&Platform>) -> Result<Image, ImageError> {
    let host = Platform::host();
    let platform = platform.unwrap_or(&host);
    match &reference.location {
        Location::Oci { dir, select } => layout::resolve(reference, dir, select, platform),
        Location::DockerArchive { file, select } => archive::resolve(reference, file, select),
    }
}

/// Parses and resolves a reference as typed on the command line.
pub fn resolve_str(text: &str, platform: Option<&Platform>) -> Result<Image, ImageError> {
    let reference = Reference::parse(text).map_err(|m| ImageError {
        image: text.to_string(),
        cause: Cause::Reference(m),
    })?;
    resolve(&reference, platform)
}

/// Error constructor bound to one image.
pub(crate) struct Errors<'a>(pub &'a str);

impl Errors<'_> {
    pub fn err(&self, cause: Cause) -> ImageError {
        ImageError {
            image: self.0.to_string(),
            cause,
        }
    }
    pub fn io(&self, path: &Path, e: io::Error) -> ImageError {
        self.err(Cause::Io(path.to_path_buf(), e))
    }
    pub fn invalid(&self, m: impl Into<String>) -> ImageError {
        self.err(Cause::Invalid(m.into()))
    }
}

/// Checks `data` against a descriptor's size and digest.
pub(crate) fn verify(
    e: &Errors,
    what: &str,
    data: &[u8],
    size: u64,
    digest: &Digest,
) -> Result<(), ImageError> {
    if data.len() as u64 != size {
        return Err(e.err(Cause::SizeMismatch {
            what: what.to_string(),
            expected: size,
            actual: data.len() as u64,
        }));
    }
    let actual = sha256_of(data);
    if actual != *digest {
        return Err(e.err(Cause::DigestMismatch {
            what: what.to_string(),
            expected: digest.clone(),
            actual,
        }));
    }
    Ok(())
}

pub(crate) fn sha256_of(data: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(data))
}

/// Parses a JSON document; the error names `what`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    e: &Errors,
    what: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data)
        .map_err(|err| e.err(Cause::Json(what.to_string(), err.to_string())))
}

/// Reads a small file whole, refusing one over [`MAX_JSON_BYTES`].
pub(crate) fn read_small(e: &Errors, what: &str, path: &Path) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|err| e.io(path, err))?;
    let mut data = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|err| e.io(path, err))?;
    if data.len() as u64 > MAX_JSON_BYTES {
        return Err(e.err(Cause::TooLarge(what.to_string())));
    }
    Ok(data)
}
