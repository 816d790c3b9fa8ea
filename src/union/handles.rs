//! Open file and directory handles, sharded so that reads on many threads do not contend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

const SHARDS: usize = 32;

/// A table from handle numbers (the FUSE `fh`) to open objects.
pub struct Handles<T> {
    shards: Vec<RwLock<HashMap<u64, T>>>,
    next: AtomicU64,
}

impl<T: Clone> Handles<T> {
    pub fn new() -> Handles<T> {
        Handles {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next: AtomicU64::new(1),
        }
    }

    fn shard(&self, fh: u64) -> &RwLock<HashMap<u64, T>> {
        &self.shards[(fh as usize) % SHARDS]
    }

    pub fn insert(&self, value: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(fh).write().insert(fh, value);
        fh
    }

    pub fn get(&self, fh: u64) -> Option<T> {
        self.shard(fh).read().get(&fh).cloned()
    }

    /// Any entry for which `pred` holds (a scan of every shard: for rare paths only).
    pub fn find(&self, pred: impl Fn(&T) -> bool) -> Option<T> {
        self.shards
            .iter()
            .find_map(|s| s.read().values().find(|v| pred(v)).cloned())
    }

    pub fn remove(&self, fh: u64) -> Option<T> {
        self.shard(fh).write().remove(&fh)
    }
}

impl<T: Clone> Default for Handles<T> {
    fn default() -> Self {
        Self::new()
    }
}
