//! The budget of merged listings kept on directory nodes after their handles close.
//!
//! A listing is kept on its directory's node so that reopening the directory and looking
//! names up in it cost no merge, but a walk of a large tree would keep every directory's
//! listing (about a sixth of the daemon's memory after a walk of 90k entries). Listings are
//! dropped oldest first once their entries pass a budget; a dropped one is merged again when
//! its directory is next read, and lookups meanwhile ask the layers directly.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::{Ino, Listing};

/// Entries of merged listings kept beyond open handles (about 64 bytes each).
pub const LISTING_BUDGET: usize = 16 * 1024;

/// Listings kept on nodes, oldest first, and their entries in total.
pub struct ListingBudget {
    max_entries: usize,
    kept: Mutex<Kept>,
}

/// A listing kept on directory `.0`, with `.2` entries.
type KeptListing = (Ino, Weak<Listing>, usize);

#[derive(Default)]
struct Kept {
    queue: VecDeque<KeptListing>,
    entries: usize,
}

impl ListingBudget {
    pub fn new(max_entries: usize) -> ListingBudget {
        ListingBudget {
            max_entries,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Counts a listing just kept on directory `dir`; returns the older ones to drop from
    /// their nodes (never the one just kept). Only merges come here, not cache hits, so the
    /// lock is off the lookup path.
    pub fn admit(&self, dir: Ino, listing: &Arc<Listing>) -> Vec<(Ino, Weak<Listing>)> {
        let mut kept = self.kept.lock();
        let size = listing.entries.len();
        kept.queue.push_back((dir, Arc::downgrade(listing), size));
        kept.entries += size;
        let mut out = Vec::new();
        while kept.entries > self.max_entries && kept.queue.len() > 1 {
            let Some((ino, weak, n)) = kept.queue.pop_front() else {
                break;
            };
            kept.entries -= n;
            out.push((ino, weak));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Kind;
    use crate::union::Listed;

    fn listing(dir: Ino, n: usize) -> Arc<Listing> {
        let entries = (0..n)
            .map(|i| Listed {
                name: std::ffi::OsStr::new(&format!("n{i}")).into(),
                st_ino: 10 + i as u64,
                from: 0,
                kind: Kind::File,
            })
            .collect();
        Arc::new(Listing { dir, entries })
    }

    #[test]
    fn oldest_go_first_and_the_newest_always_stays() {
        let budget = ListingBudget::new(10);
        let (a, b, c) = (listing(2, 4), listing(3, 4), listing(4, 30));
        assert!(budget.admit(2, &a).is_empty());
        assert!(budget.admit(3, &b).is_empty());
        let out = budget.admit(4, &c);
        let dirs: Vec<Ino> = out.iter().map(|(d, _)| *d).collect();
        assert_eq!(
            dirs,
            vec![2, 3],
            "both older ones go; the oversized newest stays"
        );
        assert!(out[0].1.upgrade().is_some_and(|l| Arc::ptr_eq(&l, &a)));
        let out = budget.admit(5, &listing(5, 1));
        assert_eq!(out.len(), 1, "the oversized one goes once another comes");
    }
}
