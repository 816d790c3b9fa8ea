//! Directory listings served to the kernel: `readdir` and `readdirplus` read one merged
//! listing (a handle's, or the directory node's on a read-only mount), from an offset that is
//! an entry's index + 1, so a continued read resumes right after the last entry sent.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use fuser::{FileAttr, FileHandle, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use log::debug;

use super::attr::file_type;
use super::{FuseAdapter, to_errno};
use crate::layer::Kind;
use crate::union::{Listed, Listing, Stat};

impl FuseAdapter {
    /// The listing a readdir reads: its handle's, or without one (see `no_opendir`) the
    /// directory node's.
    fn listing(&self, ino: INodeNo, fh: FileHandle) -> io::Result<Arc<Listing>> {
        if self.no_opendir && fh.0 == 0 {
            self.union.listing_of_dir(ino.0)
        } else {
            self.union.listing(fh.0)
        }
    }

    pub(super) fn serve_readdir(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = match self.listing(ino, fh) {
            Ok(l) => l,
            Err(e) => return reply.error(to_errno(&e)),
        };
        for (i, e) in from_offset(&listing, offset) {
            // The offset of an entry is where the next readdir continues.
            if reply.add(INodeNo(e.st_ino), i as u64 + 1, file_type(e.kind), &e.name) {
                break;
            }
        }
        reply.ok()
    }

    pub(super) fn serve_readdirplus(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listing = match self.listing(ino, fh) {
            Ok(l) => l,
            Err(e) => return reply.error(to_errno(&e)),
        };
        for (i, e) in from_offset(&listing, offset) {
            let next = i as u64 + 1;
            if *e.name == *"." || *e.name == *".." {
                // The kernel does not link `.` and `..` from readdirplus and takes no
                // lookup reference on them; node id 0 says "no entry attributes".
                let attr = FileAttr {
                    ino: INodeNo(e.st_ino),
                    ..self.attr(&self.dot_stat(ino.0))
                };
                if reply.add(
                    INodeNo(0),
                    next,
                    &e.name,
                    &Duration::ZERO,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
                continue;
            }
            match self.union.lookup_listed(&listing, e) {
                Ok((child, stat)) => {
                    let full = reply.add(
                        INodeNo(child),
                        next,
                        &e.name,
                        &self.ttl,
                        &self.attr(&stat),
                        Generation(0),
                    );
                    if full {
                        // Not sent: the kernel will not count this lookup.
                        self.union.forget(child, 1);
                        break;
                    }
                }
                // Vanished from a layer since the listing was taken: skip the name.
                Err(err) => debug!("readdirplus: {:?}: {err}", e.name),
            }
        }
        reply.ok()
    }

    /// Attributes used for `.`/`..` in readdirplus replies (the kernel ignores them, but the
    /// record needs some).
    fn dot_stat(&self, ino: u64) -> Stat {
        self.union.getattr(ino).unwrap_or_else(|_| Stat {
            st_ino: ino,
            attr: crate::layer::Attr {
                perm: 0o755,
                ..crate::layer::Attr::zeroed(Kind::Dir)
            },
        })
    }
}

/// The entries of a listing from a readdir offset on; the offset given with an entry is its
/// index + 1, so a continued readdir resumes right after the last entry sent.
fn from_offset(listing: &Listing, offset: u64) -> impl Iterator<Item = (usize, &Listed)> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    listing.entries.iter().enumerate().skip(start)
}
