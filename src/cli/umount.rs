//! `unionmount umount MOUNTPOINT`.

use std::path::PathBuf;

use clap::Args;

use super::CliError;

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Detach now even if the mount is in use (it goes away when no longer used).
    #[arg(short = 'l', long = "lazy")]
    pub lazy: bool,

    /// The mount point to unmount.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
}

pub fn run(args: UmountArgs) -> Result<(), CliError> {
    crate::mount::unmount(&args.mountpoint, args.lazy)?;
    Ok(())
}
