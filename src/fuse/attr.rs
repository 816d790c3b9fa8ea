//! Union attributes as FUSE attributes: kinds, times, device numbers, and the owners shown
//! (shifted or squashed by the mount's [`Ownership`]). Every attribute the adapter sends goes
//! through [`file_attr`], so no reply can show an unmapped owner.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

use crate::idmap::Ownership;
use crate::layer::{Kind, Timespec};
use crate::union::{Stat, TimeSet};

pub(super) fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File | Kind::Whiteout => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

/// A layer time as `SystemTime`. Tar headers may hold any 64-bit time; one that `SystemTime`
/// cannot represent is clamped to the epoch rather than allowed to panic the daemon.
fn system_time(t: Timespec) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    let time = if t.sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.sec as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
    };
    time.and_then(|t| t.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

/// The 32-bit `rdev` FUSE carries: the kernel decodes it with `new_decode_dev`.
fn fuse_rdev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// The attributes sent for `stat`, its owner as `ownership` shows it.
pub(super) fn file_attr(stat: &Stat, ownership: &Ownership) -> FileAttr {
    let a = &stat.attr;
    let (uid, gid) = ownership.shown(a.uid, a.gid);
    FileAttr {
        ino: INodeNo(stat.st_ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid,
        gid,
        rdev: fuse_rdev(a.rdev),
        blksize: 4096,
        flags: 0,
    }
}

/// The `dev_t` from the 32-bit `rdev` FUSE carries (`new_encode_dev`).
pub(super) fn from_fuse_rdev(rdev: u32) -> u64 {
    let major = (rdev & 0xfff00) >> 8;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

/// A time a setattr asks for, as the union takes it (times before 1970 included).
pub(super) fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => {
            let (sec, nsec) = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    d.subsec_nanos(),
                ),
                Err(e) => {
                    let d = e.duration();
                    let sec = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                    match d.subsec_nanos() {
                        0 => (sec, 0),
                        n => (sec - 1, 1_000_000_000 - n),
                    }
                }
            };
            TimeSet::At(Timespec { sec, nsec })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::IdMap;
    use crate::layer::Attr;

    #[test]
    fn extreme_times_do_not_panic() {
        for sec in [i64::MAX, i64::MIN, -1, 0, 1_700_000_000] {
            let _ = system_time(Timespec {
                sec,
                nsec: 999_999_999,
            });
        }
        assert_eq!(
            system_time(Timespec {
                sec: -1,
                nsec: 500_000_000
            }),
            UNIX_EPOCH - Duration::from_millis(500)
        );
    }

    fn stat(uid: u32, gid: u32) -> Stat {
        Stat {
            st_ino: 5,
            attr: Attr {
                perm: 0o644,
                uid,
                gid,
                ..Attr::zeroed(Kind::File)
            },
        }
    }

    #[test]
    fn owners_are_shown_through_the_ownership() {
        let plain = file_attr(&stat(1, 2), &Ownership::default());
        assert_eq!((plain.uid, plain.gid), (1, 2));
        let shifted = Ownership {
            uids: IdMap::parse("0:100000:65536").unwrap(),
            gids: IdMap::parse("0:200000:10").unwrap(),
            ..Ownership::default()
        };
        let a = file_attr(&stat(1, 20), &shifted);
        assert_eq!((a.uid, a.gid), (100001, crate::idmap::OVERFLOW_ID));
        let squashed = Ownership {
            squash_uid: Some(0),
            squash_gid: Some(0),
            ..shifted
        };
        let a = file_attr(&stat(1, 2), &squashed);
        assert_eq!((a.uid, a.gid), (0, 0));
    }
}
