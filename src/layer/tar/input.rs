//! A layer blob as the indexing pass and the streams see it, wherever its bytes are: a byte
//! range of a local file ([`BlobRef`]), or a remote blob read by ranges through its chunk
//! cache ([`RemoteBlobRef`]), which also has a sequential stream for the one pass.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::TarError;
use super::persist::IndexKey;
use super::source::io_err;
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRead, BlobRef, Compression, Digest, RangeSource, RemoteBlobRef};
use crate::layer::remote::RemoteBlob;

/// Opens the sequential reader of a blob for the pass.
pub(super) type OpenStream = Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// A blob to index or reopen.
#[derive(Clone)]
pub(crate) struct Input {
    /// The blob in error messages (a path, or a remote blob's description).
    pub name: PathBuf,
    /// The layer's name: its digest when it has one, else its file.
    pub display: String,
    /// Random access to the blob's stored bytes: `len` bytes at `base`.
    pub blob: Arc<dyn BlobRead>,
    pub base: u64,
    pub len: u64,
    pub compression: Compression,
    pub digest: Option<Digest>,
    pub diff_id: Option<Digest>,
    pub image: Option<String>,
    /// Stem of the names of derived files (a zstd cache file): the digest's hex, or a hash of
    /// where the blob is.
    pub key: String,
    /// Where a saved index of this blob is kept, or why it has no key.
    pub index_key: Result<IndexKey, String>,
    /// A sequential reader for the pass (remote blobs); `None` reads `blob` front to back.
    pub stream: Option<OpenStream>,
    /// The remote blob behind `blob`, for statistics and the background fill.
    pub remote: Option<Arc<RemoteBlob>>,
}

impl Input {
    /// A byte range of a local file, opened and checked to lie inside the file.
    pub(crate) fn local(blob: &BlobRef) -> Result<Input, TarError> {
        let path = &blob.path;
        let file = File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        if blob
            .offset
            .checked_add(blob.len)
            .is_none_or(|end| end > size)
        {
            return Err(io_err(path)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the layer's {} bytes at offset {} lie past the end of the file ({size} bytes)",
                    blob.len, blob.offset
                ),
            )));
        }
        let key = match &blob.digest {
            Some(d) => d.hex().to_string(),
            None => {
                let mut h = Sha256::new();
                h.update(blob.path.as_os_str().as_encoded_bytes());
                h.update(blob.offset.to_le_bytes());
                h.update(blob.len.to_le_bytes());
                format!("path-{}", &Digest::from_sha256(&h.finalize()).hex()[..32])
            }
        };
        let display = match (&blob.digest, blob.offset) {
            (Some(d), _) => d.to_string(),
            (None, 0) => blob.path.display().to_string(),
            (None, off) => format!("{}@{off}", blob.path.display()),
        };
        Ok(Input {
            name: blob.path.clone(),
            display,
            blob: Arc::new(file),
            base: blob.offset,
            len: blob.len,
            compression: blob.compression,
            digest: blob.digest.clone(),
            diff_id: blob.diff_id.clone(),
            image: blob.image.clone(),
            key,
            index_key: IndexKey::for_blob(blob)
                .map_err(|e| format!("{}: no index key ({e})", blob.path.display())),
            stream: None,
            remote: None,
        })
    }

    /// A remote blob, its chunk cache opened under the index directory (or in a temporary
    /// file without one).
    pub(crate) fn remote(r: &RemoteBlobRef, options: &LayerOptions) -> Result<Input, TarError> {
        let name = PathBuf::from(r.source.describe());
        let blob = RemoteBlob::open(
            Arc::clone(&r.source),
            &r.digest,
            options.index_cache.as_deref(),
        )
        .map_err(|e| TarError::Io {
            path: name.clone(),
            source: io::Error::new(e.kind(), format!("opening its chunk cache: {e}")),
        })?;
        let blob = Arc::new(blob);
        let source: Arc<dyn RangeSource> = Arc::clone(&r.source);
        Ok(Input {
            name,
            display: r.digest.to_string(),
            blob: Arc::clone(&blob) as Arc<dyn BlobRead>,
            base: 0,
            len: r.source.len(),
            compression: r.compression,
            digest: Some(r.digest.clone()),
            diff_id: r.diff_id.clone(),
            image: r.image.clone(),
            key: r.digest.hex().to_string(),
            index_key: Ok(IndexKey::for_remote(
                &r.digest,
                r.diff_id.as_ref(),
                r.source.len(),
            )),
            stream: Some(Arc::new(move || source.stream(0))),
            remote: Some(blob),
        })
    }
}
