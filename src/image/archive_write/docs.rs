//! The JSON documents of a saved archive (`manifest.json`, the OCI manifest and index),
//! with field names and order as docker writes them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::layer::blob::Digest;

pub(super) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs and maps of strings cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// One image of `manifest.json` (field names and order as docker writes them).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ManifestItem {
    pub(super) config: String,
    /// `null` for an untagged image, as docker writes it.
    pub(super) repo_tags: Option<Vec<String>>,
    pub(super) layers: Vec<String>,
}

/// A descriptor, fields in the order of the OCI Go types docker marshals.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    pub(super) media_type: &'static str,
    pub(super) digest: String,
    pub(super) size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<BTreeMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) platform: Option<Platform>,
}

impl Descriptor {
    pub(super) fn new(media_type: &'static str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type,
            digest: digest.to_string(),
            size,
            annotations: None,
            platform: None,
        }
    }
}

#[derive(Clone, Serialize)]
pub(super) struct Platform {
    pub(super) architecture: String,
    pub(super) os: String,
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub(super) os_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) variant: Option<String>,
}

impl Platform {
    /// The platform a config declares (`architecture`, `os`, `os.version`, `variant`).
    pub(super) fn of(config: &[u8]) -> Result<Platform, String> {
        let value: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| format!("invalid JSON: {e}"))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(Platform {
            architecture: field("architecture").unwrap_or_default(),
            os: field("os").unwrap_or_default(),
            os_version: field("os.version"),
            variant: field("variant"),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OciManifest {
    pub(super) schema_version: u32,
    pub(super) media_type: &'static str,
    pub(super) config: Descriptor,
    pub(super) layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OciIndex {
    pub(super) schema_version: u32,
    pub(super) media_type: &'static str,
    pub(super) manifests: Vec<Descriptor>,
}
