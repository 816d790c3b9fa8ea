//! Owner ids as fuse-overlayfs shifts them: `uidmapping=`/`gidmapping=` and the
//! `squash_to_root`/`squash_to_uid=`/`squash_to_gid=` options.
//!
//! containers/storage passes each range as `ContainerID:HostID:Size`, several joined by `:`.
//! fuse-overlayfs (`find_mapping` in its main.c) reads the files of the layers and the upper as
//! holding *container* ids, as in the image, and shows them shifted into the host range; ids
//! coming in (the caller of a create, the arguments of a chown) go the other way before they
//! reach the upper. An id outside every range becomes the overflow id 65534 in either
//! direction; with no ranges at all ids pass unchanged. Squashing only changes what is shown.
//!
//! The adapter (`fuse.rs`) applies an [`Ownership`] at its boundary with the union, so the
//! union only ever sees ids as they are stored.

use std::fmt;

/// The kernel's default overflow uid/gid (`/proc/sys/kernel/overflowuid`), shown for an id
/// outside every range, as fuse-overlayfs does.
pub const OVERFLOW_ID: u32 = 65534;

/// One `ContainerID:HostID:Size` range: `stored..stored+len` on disk is shown as
/// `shown..shown+len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// The first id as the layers and the upper store it (the container's id).
    pub stored: u32,
    /// The first id as the mount shows it (the host's id).
    pub shown: u32,
    pub len: u32,
}

impl IdRange {
    fn shift(id: u32, from: u32, to: u32, len: u32) -> Option<u32> {
        let offset = id.checked_sub(from)?;
        (offset < len).then(|| to + offset)
    }
}

/// A set of non-overlapping ranges; empty means ids pass unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<IdRange>,
}

/// Why a mapping was refused; the text quotes what was given.
#[derive(Debug, PartialEq, Eq)]
pub struct IdMapError(String);

impl fmt::Display for IdMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdMapError {}

impl IdMap {
    /// Parses `C:H:N[:C:H:N...]`. Ranges must be non-empty, fit in 32 bits and not overlap
    /// (fuse-overlayfs would silently let the last one win; the kernel's `uid_map` refuses).
    pub fn parse(text: &str) -> Result<IdMap, IdMapError> {
        let err = |why: &str| IdMapError(format!("{text:?}: {why} (want C:H:N[:C:H:N...])"));
        let numbers = text
            .split(':')
            .map(|n| {
                n.parse::<u32>()
                    .map_err(|_| err(&format!("{n:?} is not an id")))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        if numbers.len() % 3 != 0 {
            return Err(err("not a multiple of three numbers"));
        }
        let mut ranges: Vec<IdRange> = Vec::new();
        for triple in numbers.chunks_exact(3) {
            let range = IdRange {
                stored: triple[0],
                shown: triple[1],
                len: triple[2],
            };
            let end = |start: u32| u64::from(start) + u64::from(range.len);
            if range.len == 0 {
                return Err(err("a range of size 0"));
            }
            if end(range.stored) > 1 << 32 || end(range.shown) > 1 << 32 {
                return Err(err("a range past 4294967295"));
            }
            let overlaps = |a: u32, b: u32, b_len: u32| {
                u64::from(a) < u64::from(b) + u64::from(b_len) && u64::from(b) < end(a)
            };
            if ranges.iter().any(|r| {
                overlaps(range.stored, r.stored, r.len) || overlaps(range.shown, r.shown, r.len)
            }) {
                return Err(err("overlapping ranges"));
            }
            ranges.push(range);
        }
        Ok(IdMap { ranges })
    }

    pub fn is_identity(&self) -> bool {
        self.ranges.is_empty()
    }

    /// A stored id as the mount shows it.
    pub fn shown(&self, stored: u32) -> u32 {
        if self.is_identity() {
            return stored;
        }
        self.ranges
            .iter()
            .find_map(|r| IdRange::shift(stored, r.stored, r.shown, r.len))
            .unwrap_or(OVERFLOW_ID)
    }

    /// An id from a request (caller, chown argument) as it is stored.
    pub fn stored(&self, shown: u32) -> u32 {
        if self.is_identity() {
            return shown;
        }
        self.ranges
            .iter()
            .find_map(|r| IdRange::shift(shown, r.shown, r.stored, r.len))
            .unwrap_or(OVERFLOW_ID)
    }
}

/// Everything that changes owners between the union and the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    pub uids: IdMap,
    pub gids: IdMap,
    /// `squash_to_uid=N` (or 0 for `squash_to_root`): every object is shown owned by N.
    pub squash_uid: Option<u32>,
    pub squash_gid: Option<u32>,
}

impl Ownership {
    pub fn is_identity(&self) -> bool {
        self.uids.is_identity()
            && self.gids.is_identity()
            && self.squash_uid.is_none()
            && self.squash_gid.is_none()
    }

    /// The owner shown for stored ids.
    pub fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.squash_uid.unwrap_or_else(|| self.uids.shown(uid)),
            self.squash_gid.unwrap_or_else(|| self.gids.shown(gid)),
        )
    }

    pub fn stored_uid(&self, uid: u32) -> u32 {
        self.uids.stored(uid)
    }

    pub fn stored_gid(&self, gid: u32) -> u32 {
        self.gids.stored(gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_shift_both_ways_and_unmapped_ids_overflow() {
        // What podman passes for a rootless user with a subuid range.
        let m = IdMap::parse("0:1000:1:1:100000:65536").unwrap();
        assert_eq!(m.shown(0), 1000);
        assert_eq!(m.shown(1), 100000);
        assert_eq!(m.shown(65536), 165535);
        assert_eq!(m.shown(65537), OVERFLOW_ID);
        assert_eq!(m.stored(1000), 0);
        assert_eq!(m.stored(100000), 1);
        assert_eq!(m.stored(165535), 65536);
        assert_eq!(m.stored(0), OVERFLOW_ID);
        assert_eq!(m.stored(165536), OVERFLOW_ID);
        for id in [0, 1, 500, 65536] {
            assert_eq!(m.stored(m.shown(id)), id);
        }
    }

    #[test]
    fn no_ranges_is_the_identity() {
        let m = IdMap::default();
        assert!(m.is_identity());
        assert_eq!((m.shown(7), m.stored(u32::MAX)), (7, u32::MAX));
        assert!(Ownership::default().is_identity());
    }

    #[test]
    fn the_top_of_the_id_space_does_not_overflow() {
        let m = IdMap::parse("4294967295:0:1").unwrap();
        assert_eq!(m.shown(u32::MAX), 0);
        assert_eq!(m.stored(0), u32::MAX);
        assert_eq!(m.shown(0), OVERFLOW_ID);
        let m = IdMap::parse("0:4294967290:6").unwrap();
        assert_eq!(m.shown(5), u32::MAX);
    }

    #[test]
    fn bad_mappings_are_refused_with_the_text() {
        for bad in [
            "",
            "0:1000",
            "0:1000:1:5",
            "a:1:1",
            "-1:0:1",
            "0:0:0",
            "0:0:4294967297",
            "2:0:4294967295",
            "0:100:10:5:200:10",
            "0:100:10:50:105:10",
            "0:100:1:",
            "0::1",
        ] {
            let e = IdMap::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn squashing_changes_only_what_is_shown() {
        let own = Ownership {
            uids: IdMap::parse("0:1000:10").unwrap(),
            gids: IdMap::default(),
            squash_uid: None,
            squash_gid: Some(5),
        };
        assert!(!own.is_identity());
        assert_eq!(own.shown(3, 3), (1003, 5));
        assert_eq!((own.stored_uid(1003), own.stored_gid(5)), (3, 5));
    }
}
