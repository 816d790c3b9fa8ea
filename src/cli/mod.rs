//! The command line: docker-like subcommands, and the fuse-overlayfs spelling
//! `unionmount -o lowerdir=TOP:...:BOTTOM MOUNTPOINT` that podman and buildah use as a
//! `mount_program`, also as mount.fuse3 runs it for `mount -t fuse.unionmount`:
//! `unionmount SOURCE MOUNTPOINT -o OPTIONS`. Words are parsed here once into validated configurations
//! ([`crate::mount::MountConfig`]); nothing past this module sees raw arguments.

pub mod commit;
pub mod compat;
pub mod format;
pub mod images;
pub mod inspect;
pub mod listing;
pub mod load;
pub mod mount;
pub mod ps;
pub mod push;
pub mod tag;
pub mod umount;

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::image::ImageError;
use crate::image::store::StoreError;
use crate::mount::MountError;
use crate::registry::RegistryError;

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
    /// List the images of the store.
    #[command(visible_alias = "ls")]
    Images(images::ImagesArgs),
    /// Show images' details as JSON (like `docker image inspect`).
    Inspect(inspect::InspectArgs),
    /// Show the history of an image.
    History(inspect::HistoryArgs),
    /// Give an image another name.
    Tag(tag::TagArgs),
    /// Remove images (untag; delete with the last tag).
    Rmi(tag::RmiArgs),
    /// Remove dangling (or, with -a, all unmounted) images.
    Prune(tag::PruneArgs),
    /// Load images from a `docker save` archive or an OCI archive.
    Load(load::LoadArgs),
    /// Copy images into the store from a registry, an OCI layout or a docker archive.
    Pull(load::PullArgs),
    /// Copy an image of the store to a registry.
    Push(push::PushArgs),
    /// List the live mounts of images.
    #[command(visible_alias = "mounts")]
    Ps(ps::PsArgs),
    /// Remove mounts' state: their upper (the changes), work directory and record.
    Rm(ps::RmArgs),
    /// Turn a mount's changes into a new image.
    Commit(commit::CommitArgs),
    /// Make a one-layer image from a rootfs tarball.
    Import(commit::ImportArgs),
    /// Flatten an image into a one-layer image.
    Squash(commit::SquashArgs),
    /// Write images to a `docker save` archive (docker load and podman load read it).
    Save(commit::SaveArgs),
    /// Write a mount's or an image's merged tree as one tar.
    Export(commit::ExportArgs),
    /// Manage images (docker's `image` group).
    #[command(subcommand)]
    Image(ImageCommand),
}

/// `unionmount image ...`, the same commands under docker's group names.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the images of the store.
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Show images' details as JSON.
    Inspect(inspect::InspectArgs),
    /// Show the history of an image.
    History(inspect::HistoryArgs),
    /// Give an image another name.
    Tag(tag::TagArgs),
    /// Remove images.
    Rm(tag::RmiArgs),
    /// Remove dangling (or, with -a, all unmounted) images.
    Prune(tag::PruneArgs),
    /// Load images from an archive.
    Load(load::LoadArgs),
    /// Copy images into the store.
    Pull(load::PullArgs),
    /// Copy an image to a registry.
    Push(push::PushArgs),
    /// Make a one-layer image from a rootfs tarball.
    Import(commit::ImportArgs),
    /// Write images to a `docker save` archive.
    Save(commit::SaveArgs),
}

/// The store option every store command takes.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store root (default: $UNIONMOUNT_ROOT, else /var/lib/unionmount as root, else
    /// $XDG_DATA_HOME/unionmount).
    #[arg(long = "root", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl StoreArgs {
    pub fn root(&self) -> PathBuf {
        crate::image::store::root(self.root.as_deref())
    }

    /// Opens (creating if need be) the store.
    pub fn open(&self) -> Result<crate::image::store::Store, CliError> {
        if self.root.as_ref().is_some_and(|r| r.as_os_str().is_empty()) {
            return Err(CliError::Usage("--root: empty path".into()));
        }
        Ok(crate::image::store::Store::open(&self.root())?)
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Wrong words: exit code 2 like clap's own usage errors.
    Usage(String),
    Image(ImageError),
    Mount(MountError),
    Store(StoreError),
    Registry(RegistryError),
    /// Errors already printed one per line (e.g. by `rmi A B`); only the exit code is left.
    Reported,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Image(e) => e.fmt(f),
            CliError::Mount(e) => e.fmt(f),
            CliError::Store(e) => e.fmt(f),
            CliError::Registry(e) => e.fmt(f),
            CliError::Reported => Ok(()),
        }
    }
}

impl std::error::Error for CliError {}

impl From<MountError> for CliError {
    fn from(e: MountError) -> Self {
        CliError::Mount(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Image(e) => CliError::Image(e),
            e => CliError::Store(e),
        }
    }
}

impl From<RegistryError> for CliError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(e) => e.into(),
            RegistryError::Invalid(m) => CliError::Usage(m),
            e => CliError::Registry(e),
        }
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
            CliError::Store(StoreError::Invalid(_)) => 2,
            CliError::Image(_)
            | CliError::Mount(_)
            | CliError::Store(_)
            | CliError::Registry(_)
            | CliError::Reported => 1,
        }
    }
}

/// The arguments as clap should see them. mount.fuse3 runs `unionmount SOURCE MOUNTPOINT -o
/// OPTIONS`, and SOURCE is any word (fstab examples say `images`), which clap would take
/// for a subcommand of that name: when `-o` carries `lowerdir=`, the words that are not
/// options are moved behind `--`, so they can only be SOURCE and MOUNTPOINT.
pub fn helper_argv(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let Some((prog, rest)) = args.split_first() else {
        return args;
    };
    let mut options = Vec::new();
    let mut words = Vec::new();
    let mut lowerdir = false;
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "-o" {
            let Some(value) = iter.next() else {
                return args;
            };
            lowerdir |= value.to_string_lossy().contains("lowerdir=");
            options.push(arg.clone());
            options.push(value.clone());
        } else if let Some(value) = text.strip_prefix("-o") {
            lowerdir |= value.contains("lowerdir=");
            options.push(arg.clone());
        } else if text == "--" {
            words.extend(iter.by_ref().cloned());
        } else if text.starts_with('-') && text.len() > 1 {
            options.push(arg.clone());
        } else {
            words.push(arg.clone());
        }
    }
    if !lowerdir || words.is_empty() || words.len() > 2 {
        return args;
    }
    let mut out = vec![prog.clone()];
    out.extend(options);
    out.push("--".into());
    out.extend(words);
    out
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Some(Command::Mount(args)) => mount::run(args),
        Some(Command::Umount(args)) => umount::run(args),
        Some(Command::Images(args) | Command::Image(ImageCommand::Ls(args))) => images::run(args),
        Some(Command::Inspect(args) | Command::Image(ImageCommand::Inspect(args))) => {
            inspect::run_inspect(args)
        }
        Some(Command::History(args) | Command::Image(ImageCommand::History(args))) => {
            inspect::run_history(args)
        }
        Some(Command::Tag(args) | Command::Image(ImageCommand::Tag(args))) => tag::run_tag(args),
        Some(Command::Rmi(args) | Command::Image(ImageCommand::Rm(args))) => tag::run_rmi(args),
        Some(Command::Prune(args) | Command::Image(ImageCommand::Prune(args))) => {
            tag::run_prune(args)
        }
        Some(Command::Load(args) | Command::Image(ImageCommand::Load(args))) => {
            load::run_load(args)
        }
        Some(Command::Pull(args) | Command::Image(ImageCommand::Pull(args))) => {
            load::run_pull(args)
        }
        Some(Command::Push(args) | Command::Image(ImageCommand::Push(args))) => push::run(args),
        Some(Command::Ps(args)) => ps::run(args),
        Some(Command::Rm(args)) => ps::run_rm(args),
        Some(Command::Commit(args)) => commit::run_commit(args),
        Some(Command::Import(args) | Command::Image(ImageCommand::Import(args))) => {
            commit::run_import(args)
        }
        Some(Command::Squash(args)) => commit::run_squash(args),
        Some(Command::Save(args) | Command::Image(ImageCommand::Save(args))) => {
            commit::run_save(args)
        }
        Some(Command::Export(args)) => commit::run_export(args),
        None if cli.options.is_empty() && cli.targets.len() == 2 => {
            // `unionmount IMAGE MOUNTPOINT`, the short form of `mount`.
            let args = mount::MountArgs::short_form(
                cli.targets
                    .into_iter()
                    .map(PathBuf::into_os_string)
                    .collect(),
                cli.foreground,
            );
            mount::run(args)
        }
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
