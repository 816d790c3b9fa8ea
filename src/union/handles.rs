//! Open file and directory handles, sharded so that reads on many threads do not contend.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

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

const RECENT_SHARDS: usize = 32;
const RECENT_PER_SHARD: usize = 8;

/// The last few values opened per key, at most 256 in all: for reads that come without a
/// handle (a read-only mount whose opens the kernel no longer sends), so that one file read
/// in many pieces is opened once, and a walk that reads every file does not hold a
/// descriptor for each.
pub struct Recent<T> {
    shards: Vec<Mutex<Vec<(u64, T)>>>,
}

impl<T: Clone> Recent<T> {
    pub fn new() -> Recent<T> {
        Recent {
            shards: (0..RECENT_SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Vec<(u64, T)>> {
        &self.shards[(key as usize) % RECENT_SHARDS]
    }

    /// The value kept for `key`, or the one `open` makes (kept, pushing out the least
    /// recently used of its shard).
    pub fn get_or_open(&self, key: u64, open: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        {
            let mut shard = self.shard(key).lock();
            if let Some(i) = shard.iter().position(|(k, _)| *k == key) {
                let entry = shard.remove(i);
                let value = entry.1.clone();
                shard.push(entry);
                return Ok(value);
            }
        }
        let value = open()?;
        let mut shard = self.shard(key).lock();
        if !shard.iter().any(|(k, _)| *k == key) {
            if shard.len() >= RECENT_PER_SHARD {
                shard.remove(0);
            }
            shard.push((key, value.clone()));
        }
        Ok(value)
    }
}

impl<T: Clone> Default for Recent<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_last_few_per_shard_and_opens_each_once() {
        let recent: Recent<u64> = Recent::new();
        let opened = std::cell::Cell::new(0);
        let open = |v: u64| {
            opened.set(opened.get() + 1);
            Ok(v)
        };
        assert_eq!(recent.get_or_open(5, || open(50)).unwrap(), 50);
        assert_eq!(recent.get_or_open(5, || open(51)).unwrap(), 50);
        assert_eq!(opened.get(), 1);
        // Keys of one shard: 5 + 32k. Nine of them push the least recently used out.
        for k in 1..=RECENT_PER_SHARD as u64 {
            recent.get_or_open(5 + 32 * k, || open(k)).unwrap();
        }
        assert_eq!(recent.get_or_open(5, || open(52)).unwrap(), 52);
        assert!(
            recent
                .get_or_open(7, || Err(io::Error::other("no")))
                .is_err()
        );
    }
}
