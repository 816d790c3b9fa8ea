//! FUSE passthrough for upper files: the kernel reads and writes an open upper file itself,
//! with no request to the daemon, from the page cache the upper's filesystem keeps anyway.
//!
//! The kernel's rules (fs/fuse/iomode.c) shape what is decided here, per node:
//! - every open of a node served by passthrough must name the same backing file, and an open
//!   without passthrough fails (EIO) while one with it lasts;
//! - an open with passthrough fails while an open without it (page-cached by FUSE) lasts.
//!
//! So only upper files are passed through: a lower file's node moves to another file at
//! copy-up, which would break the first rule. And each node counts its opens in whichever mode
//! its first open set, until the last one is released. Our counts rise before the kernel's
//! (at the reply) and fall after them (at the release the kernel sends once its file is
//! gone), so a mode we pick never conflicts with opens the kernel still has.
//!
//! A create's descriptor is served by the daemon ([`Passthrough::daemon_open`]); later opens
//! of the new file are passed through.
//!
//! Registering a backing file needs CAP_SYS_ADMIN; the first refusal turns passthrough off
//! for the mount and every open is then served by the daemon, as without it.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};

use fuser::{BackingId, Errno, FileHandle, FopenFlags, ReplyOpen};
use log::{error, info};
use parking_lot::Mutex;

/// How a node's current opens are served.
enum Io {
    /// By the daemon.
    Daemon { opens: u32 },
    /// By the kernel from one upper file (identified by device and inode number).
    Backed {
        id: BackingId,
        file: (u64, u64),
        opens: u32,
    },
}

pub(super) struct Passthrough {
    /// The kernel agreed to passthrough at init: opens are counted per node.
    on: bool,
    /// No more backing files are registered (the kernel refused one); nodes already backed
    /// keep their backing file until their last open ends.
    refused: AtomicBool,
    nodes: Mutex<HashMap<u64, Io>>,
}

impl Passthrough {
    pub fn off() -> Passthrough {
        Passthrough {
            on: false,
            refused: AtomicBool::new(false),
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// Turns passthrough on, once the kernel has agreed to it at init (before any open).
    pub fn enable(&mut self) {
        self.on = true;
    }

    /// Replies to an open of node `ino` whose data is `upper` (an upper file) or, with
    /// `None`, a lower layer's.
    pub fn reply(&self, ino: u64, upper: Option<&File>, reply: Opened) {
        if !self.on {
            return reply.cached();
        }
        let mut nodes = self.nodes.lock();
        match nodes.get_mut(&ino) {
            Some(Io::Daemon { opens }) => {
                *opens += 1;
                reply.cached();
            }
            Some(Io::Backed { id, file, opens }) => {
                if upper.and_then(file_key) == Some(*file) {
                    *opens += 1;
                    reply.passthrough(id);
                } else {
                    // Not reachable while a node's data stays in the upper once copied up;
                    // the kernel would fail this open (EIO) anyway.
                    error!("node {ino}: an open of another file than the one passed through");
                    reply.failed(Errno::EIO);
                }
            }
            None => {
                let backed = upper
                    .filter(|_| !self.refused.load(Ordering::Relaxed))
                    .and_then(|f| Some((f, file_key(f)?)));
                let Some((upper, key)) = backed else {
                    nodes.insert(ino, Io::Daemon { opens: 1 });
                    return reply.cached();
                };
                match reply.open_backing(upper.as_fd()) {
                    Ok(id) => {
                        reply.passthrough(&id);
                        nodes.insert(
                            ino,
                            Io::Backed {
                                id,
                                file: key,
                                opens: 1,
                            },
                        );
                    }
                    Err(e) => {
                        if refuses_passthrough(&e) {
                            info!(
                                "reads and writes go through the daemon: passthrough refused ({e})"
                            );
                            self.refused.store(true, Ordering::Relaxed);
                        }
                        nodes.insert(ino, Io::Daemon { opens: 1 });
                        reply.cached();
                    }
                }
            }
        }
    }

    /// Counts an open that the daemon serves whatever the node's data (a create's: see
    /// `FuseAdapter::create`). False if the node's opens are passed through, which the kernel
    /// would not let a page-cached open join.
    pub fn daemon_open(&self, ino: u64) -> bool {
        if !self.on {
            return true;
        }
        match self
            .nodes
            .lock()
            .entry(ino)
            .or_insert(Io::Daemon { opens: 0 })
        {
            Io::Daemon { opens } => {
                *opens += 1;
                true
            }
            Io::Backed { .. } => false,
        }
    }

    /// An open of node `ino` ended (the kernel's release); the last one frees its mode and
    /// backing file.
    pub fn release(&self, ino: u64) {
        if !self.on {
            return;
        }
        let mut nodes = self.nodes.lock();
        let last = match nodes.get_mut(&ino) {
            Some(Io::Daemon { opens } | Io::Backed { opens, .. }) => {
                *opens -= 1;
                *opens == 0
            }
            None => false,
        };
        if last {
            // Dropping a BackingId closes it in the kernel.
            nodes.remove(&ino);
        }
    }
}

/// What tells backing files apart: device and inode number (`None` if `fstat` fails, and the
/// open is then served by the daemon).
fn file_key(f: &File) -> Option<(u64, u64)> {
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// Errors that say passthrough cannot work on this mount at all: no CAP_SYS_ADMIN (EPERM), the
/// upper on a stacked filesystem (ELOOP), a kernel without it (ENOTTY, EOPNOTSUPP, EINVAL).
fn refuses_passthrough(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::ELOOP | libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

/// An open's reply, with what it carries besides the way it is served.
pub(super) struct Opened {
    pub reply: ReplyOpen,
    pub fh: FileHandle,
    pub flags: FopenFlags,
}

impl Opened {
    /// Registers `fd` with the kernel as a backing file.
    fn open_backing(&self, fd: BorrowedFd<'_>) -> io::Result<BackingId> {
        self.reply.open_backing(fd)
    }

    /// Replies without passthrough: reads and writes come to the daemon.
    fn cached(self) {
        self.reply.opened(self.fh, self.flags);
    }

    /// Replies with passthrough to `id`.
    fn passthrough(self, id: &BackingId) {
        self.reply.opened_passthrough(self.fh, self.flags, id);
    }

    fn failed(self, err: Errno) {
        self.reply.error(err);
    }
}
