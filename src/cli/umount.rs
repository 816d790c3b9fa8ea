//! `unionmount umount MOUNTPOINT`.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, StoreArgs};
use crate::image::store::MountRecord;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount umount /mnt/alpine\n  unionmount umount -l /mnt/busy"
)]
pub struct UmountArgs {
    /// Detach now even if the mount is in use (it goes away when no longer used).
    #[arg(short = 'l', long = "lazy")]
    pub lazy: bool,

    /// The mount point to unmount.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,

    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: UmountArgs) -> Result<(), CliError> {
    // The daemon of a store image's mount, so that we return once it is gone and a `rmi`
    // right after us does not find the image still in use.
    let daemon = std::fs::canonicalize(&args.mountpoint)
        .ok()
        .and_then(|path| {
            MountRecord::list(&args.store.root())
                .ok()?
                .into_iter()
                .find(|r| r.is_live() && r.state.mountpoint == path)
        });
    crate::mount::unmount(&args.mountpoint, args.lazy)?;
    if let Some(record) = daemon
        && !args.lazy
    {
        wait_gone(&record);
    }
    Ok(())
}

/// Waits (up to 10 s) for the daemon of `record` to exit after its mount went away.
pub(crate) fn wait_gone(record: &MountRecord) {
    let Some(pid) = record.pid else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::mount::pid::alive(pid, record.start) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
