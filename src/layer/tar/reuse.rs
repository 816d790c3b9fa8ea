//! Reusing saved indexes: load a layer's index from the cache directory, or build it with the
//! indexing pass and save it, and say which happened (with sizes and times) so that opening
//! the layer can log one line about it.

use std::time::{Duration, Instant};

use super::TarError;
use super::persist::{IndexCache, IndexKey, Saved};

/// Where [`load_or_build`] got an index, for the caller's one log line per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Read from a saved file of `bytes` bytes.
    Loaded { bytes: u64, took: Duration },
    /// Built by the pass; `saved` is the size of the file it was saved to, `None` without a
    /// cache or when saving failed (which is logged as a warning).
    Built { took: Duration, saved: Option<u64> },
}

/// Loads the index of a blob (by its `key`) from `cache`, or builds it with `build` and saves
/// it. Without a cache, or if the blob's key cannot be had, it only builds. A failed save is a
/// warning: the mount goes on with the index it built.
pub(crate) fn load_or_build(
    cache: Option<&IndexCache>,
    key: &Result<IndexKey, String>,
    build: impl FnOnce() -> Result<Saved, TarError>,
) -> Result<(Saved, Origin), TarError> {
    // Builds, times the pass, and saves to `to` when given.
    let built = |to: Option<(&IndexCache, &IndexKey)>, start: Instant| {
        let saved = build()?;
        let took = start.elapsed();
        let stored = to.and_then(|(cache, key)| match cache.store(key, &saved) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log::warn!(
                    "{}: could not save its index in {}: {e}",
                    key.describe(),
                    cache.dir().display()
                );
                None
            }
        });
        let origin = Origin::Built {
            took,
            saved: stored,
        };
        Ok((saved, origin))
    };
    let start = Instant::now();
    let Some(cache) = cache else {
        return built(None, start);
    };
    // The key is taken before building: if the file changes while it is read, the index is
    // saved under the old identity, which nothing will ask for again.
    let key = match key {
        Ok(key) => key,
        Err(why) => {
            log::debug!("{why}; indexing without saving");
            return built(None, start);
        }
    };
    if let Some((saved, bytes)) = cache.load_sized(key) {
        let took = start.elapsed();
        return Ok((saved, Origin::Loaded { bytes, took }));
    }
    // The pass is timed from here: a failed load costs a read, not an indexing.
    built(Some((cache, key)), Instant::now())
}
