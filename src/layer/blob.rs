//! Where a layer's bytes come from when it is an image blob: a byte range of a file (a blob
//! of an OCI layout, or a member of a `docker save` archive read in place), its compression,
//! and the digests it must match.
//!
//! The image model (`crate::image`) fills these in from manifests and configs; the layer code
//! only reads bytes and checks digests, so it never needs to know about images.

use std::fmt;
use std::path::PathBuf;

/// A content digest, `sha256:<64 lowercase hex>` (the only algorithm images use in practice;
/// OCI image-spec descriptor.md, "Digests").
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; anything else is refused with the reason.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(format!(
                "unsupported digest {s:?} (only sha256 is supported)"
            ));
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "malformed digest {s:?} (want sha256: and 64 lowercase hex digits)"
            ));
        }
        Ok(Digest(s.to_string()))
    }

    /// Builds a digest from a finished sha256 hash.
    pub fn from_sha256(hash: &[u8]) -> Digest {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in hash {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, as used for file names under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// Not stated (a local file, or an unknown media type): decided by the magic bytes.
    Detect,
}

/// A layer stored as a blob: `len` bytes at `offset` of the file at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub compression: Compression,
    /// sha256 of the blob's bytes as stored; checked when the blob is first indexed.
    pub digest: Option<Digest>,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`); checked likewise.
    pub diff_id: Option<Digest>,
    /// For messages: which image the blob belongs to (e.g. `oci:layout:latest`).
    pub image: Option<String>,
}

/// What a mount is given as one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSource {
    /// A directory (extracted layer) or a tar file, possibly compressed, given by path.
    Path(PathBuf),
    /// A blob of an image.
    Blob(BlobRef),
}

impl fmt::Display for LayerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSource::Path(p) => write!(f, "{}", p.display()),
            LayerSource::Blob(b) => match (&b.image, &b.digest) {
                (Some(image), Some(d)) => write!(f, "{d} of {image}"),
                (None, Some(d)) => write!(f, "{d}"),
                _ => write!(f, "{}@{}+{}", b.path.display(), b.offset, b.len),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_validated() {
        let hex = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.hex(), hex);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha512:{hex}")).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert_eq!(
            Digest::from_sha256(&[0xab; 32]).as_str(),
            format!("sha256:{}", "ab".repeat(32))
        );
    }
}
