//! The JSON documents of an image (OCI image-spec v1.1, and Docker's image manifest v2
//! schema 2 which it was derived from), read with serde: image index / manifest list,
//! manifest, image config, and the media types that say which is which.
//!
//! Only the fields unionmount uses are typed; unknown fields are ignored, as the specs ask of
//! readers. Fields that `inspect` and `history` will show (created, author, the runtime config,
//! history) are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layer::blob::{Compression, Digest};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer media types (image-spec layer.md), as written by `image::pack`.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's schema 1 manifests (signed or not): long deprecated, refused by name.
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The annotation that carries a tag in an OCI layout's `index.json` (image-spec
/// annotations.md, image-layout.md).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a descriptor points at, as far as resolving an image goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Index,
    Manifest,
}

/// Classifies a manifest-level media type; `Err` with the reason for anything else.
pub fn doc_kind(media_type: &str) -> Result<DocKind, String> {
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(DocKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(DocKind::Manifest),
        t if DOCKER_SCHEMA1.contains(&t) => {
            Err(format!("Docker schema 1 manifests ({t}) are not supported"))
        }
        t => Err(format!("unsupported manifest media type {t:?}")),
    }
}

/// Whether a config media type is an image config (and not, say, an artifact's).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// The compression of a layer media type; `Err` with the reason for anything that is not a
/// filesystem layer. Non-distributable ("foreign") layers are read like the others when their
/// blob is present.
pub fn layer_compression(media_type: &str) -> Result<Compression, String> {
    let oci = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.")
        .or_else(|| {
            media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
        });
    let docker = media_type
        .strip_prefix("application/vnd.docker.image.rootfs.diff.")
        .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs.foreign.diff."));
    match (oci, docker) {
        (Some("tar"), _) | (_, Some("tar")) => Ok(Compression::None),
        (Some("tar+gzip"), _) | (_, Some("tar.gzip")) => Ok(Compression::Gzip),
        (Some("tar+zstd"), _) | (_, Some("tar.zstd")) => Ok(Compression::Zstd),
        _ => Err(format!("unsupported layer media type {media_type:?}")),
    }
}

/// A content descriptor (image-spec descriptor.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Required by the spec; some old writers leave it out of index entries, in which case
    /// the document's own `mediaType` (or its shape) decides.
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// The digest, validated.
    pub fn digest(&self) -> Result<Digest, String> {
        Digest::parse(&self.digest)
    }

    /// The size, which must not be negative.
    pub fn size(&self) -> Result<u64, String> {
        u64::try_from(self.size)
            .map_err(|_| format!("negative size {} for {}", self.size, self.digest))
    }

    /// The tag of an `index.json` entry.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }
}

/// The `platform` of an index entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
pub struct PlatformSpec {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// An image index (OCI) or manifest list (Docker); also the shape of `index.json`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image manifest (OCI, or Docker v2 schema 2).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    /// Bottom layer first.
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Just enough of a manifest-level document to tell an index from a manifest when no
/// descriptor says which it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocShape {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub layers: Option<serde::de::IgnoredAny>,
}

impl DocShape {
    /// The media type the document declares, or the one its fields imply.
    pub fn implied_media_type(&self) -> &str {
        match (&self.media_type, &self.manifests, &self.layers) {
            (Some(t), _, _) if !t.is_empty() => t,
            (_, Some(_), _) => OCI_INDEX,
            (_, _, Some(_)) => OCI_MANIFEST,
            _ => "",
        }
    }
}

/// An image configuration (image-spec config.md; Docker's is the same for these fields).
#[derive(Clone, Debug, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Option<Vec<History>>,
}

/// `rootfs`: the uncompressed digests of the layers, bottom first.
#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// The execution parameters of a container (`config` in the image config). Docker writes
/// `null` for empty values, hence the options.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// One step of the image's history, bottom first; `empty_layer` steps made no layer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct History {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// The validated `rootfs.diff_ids`.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, String> {
        if self.rootfs.kind != "layers" {
            return Err(format!(
                "config rootfs.type is {:?}, want \"layers\"",
                self.rootfs.kind
            ));
        }
        self.rootfs
            .diff_ids
            .iter()
            .map(|d| Digest::parse(d).map_err(|e| format!("config rootfs.diff_ids: {e}")))
            .collect()
    }
}

/// The `oci-layout` file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutVersion {
    pub image_layout_version: String,
}

/// One entry of a docker-archive's `manifest.json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Bottom layer first; paths of members of the archive.
    pub layers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        use Compression::*;
        for (t, c) in [
            ("application/vnd.oci.image.layer.v1.tar", None),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Zstd),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                None,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Gzip,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                Zstd,
            ),
            ("application/vnd.docker.image.rootfs.diff.tar", None),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip),
            ("application/vnd.docker.image.rootfs.diff.tar.zstd", Zstd),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Gzip,
            ),
        ] {
            assert_eq!(layer_compression(t), Ok(c), "{t}");
        }
        for t in [
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "application/vnd.oci.image.config.v1+json",
            "",
        ] {
            assert!(layer_compression(t).is_err(), "{t}");
        }
    }

    #[test]
    fn manifest_media_types() {
        assert_eq!(doc_kind(OCI_INDEX), Ok(DocKind::Index));
        assert_eq!(doc_kind(DOCKER_MANIFEST_LIST), Ok(DocKind::Index));
        assert_eq!(doc_kind(OCI_MANIFEST), Ok(DocKind::Manifest));
        assert_eq!(doc_kind(DOCKER_MANIFEST), Ok(DocKind::Manifest));
        assert!(
            doc_kind(DOCKER_SCHEMA1[1])
                .unwrap_err()
                .contains("schema 1")
        );
        assert!(doc_kind("text/plain").is_err());
    }

    #[test]
    fn docker_config_with_nulls_parses() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":["sh"],
            "Entrypoint":null,"Labels":null,"ExposedPorts":{"80/tcp":{}}},"container_config":{},
            "rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x","empty_layer":true}]}"#;
        let c: ImageConfig = serde_json::from_str(json).unwrap();
        let rc = c.config.unwrap();
        assert_eq!(rc.cmd.unwrap(), ["sh"]);
        assert!(rc.env.is_none());
        assert_eq!(c.history.unwrap()[0].empty_layer, Some(true));
    }

    #[test]
    fn malformed_documents_are_errors() {
        // Missing rootfs, wrong types, negative sizes, bad digests.
        assert!(serde_json::from_str::<ImageConfig>(r#"{"os":"linux"}"#).is_err());
        assert!(
            serde_json::from_str::<ImageConfig>(r#"{"rootfs":{"type":"layers","diff_ids":"x"}}"#)
                .is_err()
        );
        let c: ImageConfig =
            serde_json::from_str(r#"{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#)
                .unwrap();
        assert!(c.diff_ids().unwrap_err().contains("malformed digest"));
        let c: ImageConfig =
            serde_json::from_str(r#"{"rootfs":{"type":"x","diff_ids":[]}}"#).unwrap();
        assert!(c.diff_ids().is_err());
        assert!(serde_json::from_str::<Manifest>(r#"{"schemaVersion":2,"layers":[]}"#).is_err());
        let d: Descriptor =
            serde_json::from_str(r#"{"mediaType":"x","digest":"sha256:00","size":-1}"#).unwrap();
        assert!(d.size().is_err() && d.digest().is_err());
        assert!(serde_json::from_str::<Index>(r#"{"schemaVersion":2,"manifests":[{}]}"#).is_err());
        assert!(serde_json::from_str::<Vec<ArchiveEntry>>(r#"[{"Config":"c.json"}]"#).is_err());
    }

    #[test]
    fn shape_implies_a_media_type() {
        let s: DocShape = serde_json::from_str(r#"{"manifests":[]}"#).unwrap();
        assert_eq!(s.implied_media_type(), OCI_INDEX);
        let s: DocShape = serde_json::from_str(r#"{"layers":[],"config":{}}"#).unwrap();
        assert_eq!(s.implied_media_type(), OCI_MANIFEST);
        let s: DocShape =
            serde_json::from_str(&format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#)).unwrap();
        assert_eq!(s.implied_media_type(), DOCKER_MANIFEST);
    }
}
