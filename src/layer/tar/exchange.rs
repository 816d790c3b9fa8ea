//! A remote layer's saved index as one portable blob, so that one machine's indexing pass can
//! serve others (`push --index` uploads it as an artifact that refers to the image; `mount
//! --lazy` imports it before opening the layer, and then never reads the blob front to back).
//!
//! The blob is the saved index file itself (`persist`: magic, format version, the key
//! naming the layer's digest and diff_id, the blob's size, a checksum), so it is versioned by
//! that header, and importing it runs every check loading a saved index runs, plus checks of
//! the stream state against the blob: a hostile index is refused, never misread. What no
//! check can tell is whether the index describes the blob truthfully (which names are at
//! which offsets): an imported index is trusted as far as whoever served it. Reads through it
//! still only read inside the blob, and decompress with the framing checks of gzip and zstd.

use std::path::Path;

use super::gzip::GzipIndex;
use super::persist::{self, IndexCache, IndexKey, Saved};
use super::source::StreamState;
use crate::layer::blob::Digest;

/// The media type to give an exported index in a registry (an OCI artifact's layer).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.unionmount.tar-index.v1";

/// The saved index of the remote layer `digest` (with `diff_id`, `blob_len` bytes) from the
/// index directory `cache_dir`, as a portable blob. Fails if there is none, or if it cannot
/// serve another machine (a single-frame zstd layer's index points at a local cache file).
pub fn export_index(
    cache_dir: &Path,
    digest: &Digest,
    diff_id: Option<&Digest>,
    blob_len: u64,
) -> Result<Vec<u8>, String> {
    let key = IndexKey::for_remote(digest, diff_id, blob_len);
    let cache = IndexCache::new(cache_dir.to_path_buf());
    let Some((saved, _)) = cache.load_sized(&key) else {
        return Err(format!(
            "layer {digest}: no saved index in {} (mount it lazily once to build one)",
            cache_dir.display()
        ));
    };
    check_portable(&saved, blob_len).map_err(|why| format!("layer {digest}: index {why}"))?;
    persist::encode(&key, &saved).map_err(|e| format!("layer {digest}: index: {e}"))
}

/// Checks `bytes` (from [`export_index`], possibly on another machine, possibly hostile) as
/// the index of the remote layer `digest` and saves it in `cache_dir`, where opening the layer
/// lazily will find it. The error is one line naming the layer and the cause.
pub fn import_index(
    cache_dir: &Path,
    digest: &Digest,
    diff_id: Option<&Digest>,
    blob_len: u64,
    bytes: &[u8],
) -> Result<(), String> {
    let key = IndexKey::for_remote(digest, diff_id, blob_len);
    let refused = |why: String| format!("layer {digest}: imported index refused: {why}");
    let saved = persist::decode(bytes, &key).map_err(refused)?;
    check_portable(&saved, blob_len).map_err(refused)?;
    IndexCache::new(cache_dir.to_path_buf())
        .store(&key, &saved)
        .map_err(|e| format!("layer {digest}: saving the imported index: {e}"))?;
    Ok(())
}

/// The stream state holds together with the index and the blob: a kind that needs nothing
/// local, the tar length the index was checked against, and positions inside the blob.
fn check_portable(saved: &Saved, blob_len: u64) -> Result<(), String> {
    let state = StreamState::decode(&saved.stream_state)?;
    if state.kind() != saved.stream_kind {
        return Err("stream kind in the header and the stream state differ".into());
    }
    let tar_len = match &state {
        StreamState::Plain => blob_len,
        StreamState::Gzip(g) => gzip_len(g, blob_len)?,
        StreamState::ZstdFrames(t) => {
            if t.frames.iter().any(|f| {
                f.raw_off
                    .checked_add(f.raw_len)
                    .is_none_or(|e| e > blob_len)
            }) {
                return Err("a zstd frame lies past the end of the blob".into());
            }
            t.len()
        }
        StreamState::ZstdCacheFile { .. } => {
            return Err(
                "is of a single-frame zstd layer, which is read from a local cache file".into(),
            );
        }
    };
    if tar_len != saved.tar_len {
        return Err(format!(
            "describes {} bytes of tar, its stream state {tar_len}",
            saved.tar_len
        ));
    }
    Ok(())
}

fn gzip_len(g: &GzipIndex, blob_len: u64) -> Result<u64, String> {
    if g.checkpoints.iter().any(|c| c.bit / 8 >= blob_len) {
        return Err("a gzip checkpoint lies past the end of the blob".into());
    }
    Ok(g.len)
}
