//! The command line: docker-like subcommands, and the fuse-overlayfs spelling
//! `unionmount -o lowerdir=TOP:...:BOTTOM MOUNTPOINT` that podman and buildah use as a
//! `mount_program`, also as mount.fuse3 runs it for `mount -t fuse.unionmount`:
//! `unionmount SOURCE MOUNTPOINT -o OPTIONS`. Words are parsed here once into validated configurations
//! ([`crate::mount::MountConfig`]); nothing past this module sees raw arguments.

pub mod compat;
pub mod mount;
pub mod umount;

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::image::ImageError;
use crate::mount::MountError;

#[derive(Debug, Parser)]
#[command(
    name = "unionmount",
    // `unionmount version X.Y.Z`, the shape fuse-overlayfs prints; podman only shows it.
    version = concat!("version ", env!("CARGO_PKG_VERSION")),
    override_usage = "unionmount <COMMAND>\n       \
                      unionmount [-f] -o lowerdir=TOP:...:BOTTOM[,upperdir=U,workdir=W][,...] \
                      [SOURCE] MOUNTPOINT",
    about = "Mount a stack of read-only layers (directories or tar files) as one merged tree",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// fuse-overlayfs compatible mount options: lowerdir=TOP:...:BOTTOM[,opt...]
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,

    /// Stay in the foreground instead of daemonising.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,

    /// Where to mount (with -o); mount.fuse3 puts the mount source (any word, shown in
    /// /proc/mounts) before it.
    #[arg(value_name = "MOUNTPOINT", num_args = 1..=2)]
    pub targets: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount an image (oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG]), or layers (bottom
    /// first: the last --layer is on top), on MOUNTPOINT.
    #[command(
        override_usage = "unionmount mount [OPTIONS] IMAGE MOUNTPOINT\n       \
                                unionmount mount [OPTIONS] --layer PATH... MOUNTPOINT"
    )]
    Mount(mount::MountArgs),
    /// Unmount a unionmount mount; the daemon serving it exits by itself.
    Umount(umount::UmountArgs),
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Wrong words: exit code 2 like clap's own usage errors.
    Usage(String),
    Image(ImageError),
    Mount(MountError),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Image(e) => e.fmt(f),
            CliError::Mount(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CliError {}

impl From<MountError> for CliError {
    fn from(e: MountError) -> Self {
        CliError::Mount(e)
    }
}

impl From<ImageError> for CliError {
    fn from(e: ImageError) -> Self {
        CliError::Image(e)
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            // A malformed reference is a wrong word, like clap's usage errors.
            CliError::Image(ImageError {
                cause: crate::image::Cause::Reference(_),
                ..
            }) => 2,
            CliError::Image(_) | CliError::Mount(_) => 1,
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Some(Command::Mount(args)) => mount::run(args),
        Some(Command::Umount(args)) => umount::run(args),
        None => {
            if cli.options.is_empty() {
                return Err(CliError::Usage(
                    "nothing to do: use `unionmount mount IMAGE MOUNTPOINT`, \
                     `unionmount mount --layer DIR MOUNTPOINT` or \
                     `unionmount -o lowerdir=TOP:BOTTOM MOUNTPOINT` (see --help)"
                        .into(),
                ));
            }
            let mut targets = cli.targets.into_iter();
            let (source, mountpoint) = match (targets.next(), targets.next()) {
                (None, _) => return Err(CliError::Usage("-o given without a MOUNTPOINT".into())),
                (Some(mountpoint), None) => (None, mountpoint),
                (Some(source), Some(mountpoint)) => {
                    let source = source
                        .into_os_string()
                        .into_string()
                        .map_err(|s| CliError::Usage(format!("mount source {s:?} is not UTF-8")))?;
                    (Some(source), mountpoint)
                }
            };
            let config = compat::parse(&cli.options, source, mountpoint, cli.foreground)?;
            crate::mount::run(&config)?;
            Ok(())
        }
    }
}
