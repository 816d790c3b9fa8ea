//! Metadata readahead for directory layers.
//!
//! A walk (`find`, `du`, a container runtime scanning its rootfs) lists a directory, then
//! each of its subdirectories. Answering a listing with attributes (readdirplus) costs the
//! daemon a `statat` per entry, and on a cold cache each one is an ext4 lookup and inode
//! read done while the walker waits: a cold `find` spent half the daemon's time there, on one
//! core, with the other idle. So when a directory has been listed, a background thread lists
//! its subdirectories and stats their entries, bringing their dentries and inodes into the
//! kernel's caches before the walk asks; the serving thread then finds them cached.
//!
//! It only reads metadata the walk is about to read anyway, never follows a symlink, and
//! never leaves the layer (it opens through the layer's own `open_in`). The queue is
//! bounded: when the walk outruns the readahead, listings are dropped rather than queued.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::Weak;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use parking_lot::Mutex;
use rustix::fs::{AtFlags, OFlags};

use crate::layer::NodeId;

/// Listed directories waiting for their subdirectories to be read ahead. A few dozen keep
/// the thread ahead of a depth-first walk; more would only warm what the walk has passed.
const QUEUE: usize = 32;

/// The directories of a layer whose subdirectories were read ahead, so that a directory
/// listed again (its merged listing dropped by a write in it, or by the listings budget) does
/// not send its whole subtree's first level through the thread again. Past [`SEEN`] entries
/// it starts over, rather than grow with the tree.
#[derive(Default)]
pub(super) struct Seen(Mutex<HashSet<NodeId>>);

const SEEN: usize = 1 << 16;

impl Seen {
    /// True the first time `dir` is met.
    pub(super) fn first(&self, dir: NodeId) -> bool {
        let mut dirs = self.0.lock();
        if dirs.len() >= SEEN {
            dirs.clear();
        }
        dirs.insert(dir)
    }
}

/// The subdirectories of one listed directory.
pub(super) struct Listed {
    /// The listed directory (an `O_PATH` descriptor is enough for `openat2`), held weakly: a
    /// layer that is dropped (its descriptor cache with it) is not kept open by its queue.
    pub(super) dir: Weak<OwnedFd>,
    pub(super) subdirs: Vec<CString>,
}

/// The readahead thread of this process, with the pid that started it: threads do not
/// survive the daemon's fork, so a child starts its own.
static THREAD: Mutex<Option<(u32, SyncSender<Listed>)>> = Mutex::new(None);

/// Asks for `listed`'s subdirectories to be read ahead; returns at once (dropping the work
/// when the queue is full or no thread could be started).
pub(super) fn subdirectories(listed: Listed) {
    if listed.subdirs.is_empty() {
        return;
    }
    let pid = std::process::id();
    let mut thread = THREAD.lock();
    if thread.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        *thread = start().map(|tx| (pid, tx));
    }
    let Some((_, tx)) = thread.as_ref() else {
        return;
    };
    match tx.try_send(listed) {
        Ok(()) | Err(TrySendError::Full(_)) => {}
        // The thread is gone (it never exits on its own); let the next call start another.
        Err(TrySendError::Disconnected(_)) => *thread = None,
    }
}

fn start() -> Option<SyncSender<Listed>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    match std::thread::Builder::new()
        .name("readahead".into())
        .spawn(move || serve(rx))
    {
        Ok(_) => Some(tx),
        Err(e) => {
            log::debug!("metadata readahead off: cannot start its thread: {e}");
            None
        }
    }
}

fn serve(rx: Receiver<Listed>) {
    for listed in rx {
        for name in &listed.subdirs {
            let Some(dir) = listed.dir.upgrade() else {
                break;
            };
            read_ahead(&dir, name);
        }
    }
}

/// Lists `name` in `dir` and stats each entry. Errors only mean less was warmed: the serving
/// thread meets (and reports) them itself when the walk gets there.
fn read_ahead(dir: &OwnedFd, name: &CString) {
    let Ok(fd) = super::open_in(dir, name, OFlags::RDONLY | OFlags::DIRECTORY) else {
        return;
    };
    let Ok(mut reader) = rustix::fs::Dir::read_from(&fd) else {
        return;
    };
    while let Some(Ok(entry)) = reader.read() {
        let child = entry.file_name();
        if child != c"." && child != c".." {
            let _ = rustix::fs::statat(&fd, child, AtFlags::SYMLINK_NOFOLLOW);
        }
    }
}
