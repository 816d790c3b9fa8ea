//! Decompressed chunks of compressed layers, kept in one bounded LRU per budget.
//!
//! A chunk is what one random access decompresses anyway (a gzip checkpoint interval, a piece
//! of a zstd frame), so keeping it makes the next read nearby free. Layers opened with the same
//! `chunk_cache_bytes` share one cache (in practice: all layers of a mount), so the budget is
//! per mount rather than per layer; each layer takes a unique id for its keys and drops its
//! chunks when it goes away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use lru::LruCache;
use parking_lot::Mutex;

/// (layer id, chunk number within the layer).
type Key = (u64, u64);

/// A byte-bounded LRU of decompressed chunks.
pub(crate) struct ChunkCache {
    budget: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<Key, Arc<[u8]>>,
    bytes: usize,
}

impl ChunkCache {
    pub(crate) fn new(budget: usize) -> ChunkCache {
        ChunkCache {
            budget,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The cache shared by every layer opened with this budget while any of them is alive.
    pub(crate) fn shared(budget: usize) -> Arc<ChunkCache> {
        static CACHES: OnceLock<Mutex<HashMap<usize, Weak<ChunkCache>>>> = OnceLock::new();
        let mut map = CACHES.get_or_init(Default::default).lock();
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(cache) = map.get(&budget).and_then(Weak::upgrade) {
            return cache;
        }
        let cache = Arc::new(ChunkCache::new(budget));
        map.insert(budget, Arc::downgrade(&cache));
        cache
    }

    /// A fresh id for a layer's keys.
    pub(crate) fn layer_id() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn get(&self, layer: u64, chunk: u64) -> Option<Arc<[u8]>> {
        self.inner.lock().lru.get(&(layer, chunk)).cloned()
    }

    /// Keeps `data` unless it alone exceeds the budget; evicts least recently used chunks.
    pub(crate) fn put(&self, layer: u64, chunk: u64, data: Arc<[u8]>) {
        if data.len() > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        inner.bytes += data.len();
        if let Some(old) = inner.lru.put((layer, chunk), data) {
            inner.bytes -= old.len();
        }
        while inner.bytes > self.budget {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Drops every chunk of `layer`.
    pub(crate) fn forget(&self, layer: u64) {
        let mut inner = self.inner.lock();
        let keys: Vec<Key> = inner
            .lru
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.0 == layer)
            .collect();
        for k in keys {
            if let Some(old) = inner.lru.pop(&k) {
                inner.bytes -= old.len();
            }
        }
    }

    /// Bytes held, for tests and statistics.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_to_budget() {
        let c = ChunkCache::new(10);
        c.put(1, 0, Arc::from(vec![0u8; 4]));
        c.put(1, 1, Arc::from(vec![0u8; 4]));
        assert!(c.get(1, 0).is_some()); // 0 is now the most recent
        c.put(2, 0, Arc::from(vec![0u8; 4]));
        assert!(c.get(1, 1).is_none());
        assert!(c.get(1, 0).is_some() && c.get(2, 0).is_some());
        assert_eq!(c.bytes(), 8);
        c.put(3, 0, Arc::from(vec![0u8; 11]));
        assert!(c.get(3, 0).is_none());
        c.forget(1);
        assert_eq!(c.bytes(), 4);
    }
}
