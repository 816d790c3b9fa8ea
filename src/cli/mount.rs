//! `unionmount mount --layer PATH... MOUNTPOINT`.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::layer::LayerOptions;
use crate::layer::blob::LayerSource;
use crate::mount::MountConfig;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// A layer: an extracted directory or a tar file. Repeat it, bottom layer first.
    #[arg(long = "layer", value_name = "PATH", required = true)]
    pub layers: Vec<PathBuf>,

    /// Stay in the foreground instead of daemonising.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,

    /// Do not let other users see the mount (the default as root is to let them, with the
    /// usual permission checks).
    #[arg(long = "private")]
    pub private: bool,

    /// Where to mount.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
}

pub fn run(args: MountArgs) -> Result<(), CliError> {
    // Users list layers bottom first, like image manifests; the union wants top first.
    let layers = args
        .layers
        .into_iter()
        .rev()
        .map(LayerSource::Path)
        .collect();
    let config = MountConfig {
        layers,
        layer_options: LayerOptions::default(),
        mountpoint: args.mountpoint,
        foreground: args.foreground,
        fsname: "unionmount".into(),
        flags: Vec::new(),
        allow_other: !args.private && rustix::process::geteuid().is_root(),
    };
    crate::mount::run(&config)?;
    Ok(())
}
