//! `unionmount mount IMAGE MOUNTPOINT` and `unionmount mount --layer PATH... MOUNTPOINT`.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::image::platform::Platform;
use crate::layer::LayerOptions;
use crate::layer::blob::LayerSource;
use crate::layer::tar::IndexCache;
use crate::mount::MountConfig;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// IMAGE MOUNTPOINT, or MOUNTPOINT alone with --layer. IMAGE is oci:DIR[:TAG],
    /// oci:DIR@sha256:DIGEST or docker-archive:FILE[:NAME:TAG]; MOUNTPOINT is where to mount.
    // One list rather than two positionals, so that options may come between them.
    #[arg(value_name = "IMAGE|MOUNTPOINT", num_args = 1..=2, required = true)]
    pub targets: Vec<std::ffi::OsString>,

    /// A layer: an extracted directory or a tar file. Repeat it, bottom layer first.
    #[arg(long = "layer", value_name = "PATH")]
    pub layers: Vec<PathBuf>,

    /// With IMAGE: the platform to take from a multi-platform image (default: this machine).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// Mount read-only (the only mode for now; a writable upper comes later).
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Keep tar-layer indexes in DIR between mounts (default: indexes/ under the store
    /// root, $UNIONMOUNT_ROOT or /var/lib/unionmount as root, else ~/.cache/unionmount).
    #[arg(long = "cache", value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Index tar layers afresh and keep nothing on disk.
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Memory for decompressed chunks of gzip and zstd layers, shared by all layers of the
    /// mount: bytes, or a number with K, M, G or T (powers of 1024). The default, 64M, suits
    /// a laptop; a bigger cache helps when many large files are read at random.
    #[arg(long = "chunk-cache", value_name = "SIZE", value_parser = parse_size)]
    pub chunk_cache: Option<usize>,

    /// Stay in the foreground instead of daemonising.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,

    /// Do not let other users see the mount (the default as root is to let them, with the
    /// usual permission checks).
    #[arg(long = "private")]
    pub private: bool,
}

/// The layers to stack, topmost first, from an image reference or the `--layer` list.
fn layers(args: &MountArgs, image: Option<&str>) -> Result<Vec<LayerSource>, CliError> {
    match (image, args.layers.is_empty()) {
        (Some(_), false) => Err(CliError::Usage(
            "give either an IMAGE or --layer PATH..., not both".into(),
        )),
        (None, true) => Err(CliError::Usage(
            "nothing to mount: give an IMAGE (oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG]) \
             or --layer PATH..."
                .into(),
        )),
        (None, false) => {
            if args.platform.is_some() {
                return Err(CliError::Usage(
                    "--platform applies to an IMAGE only".into(),
                ));
            }
            // Users list layers bottom first, like image manifests; the union wants top first.
            Ok(args
                .layers
                .iter()
                .rev()
                .cloned()
                .map(LayerSource::Path)
                .collect())
        }
        (Some(image), true) => {
            let platform = match &args.platform {
                Some(p) => Some(Platform::parse(p).map_err(CliError::Usage)?),
                None => None,
            };
            let image = crate::image::resolve_str(image, platform.as_ref())?;
            Ok(image.layers)
        }
    }
}

pub fn run(args: MountArgs) -> Result<(), CliError> {
    let (image, mountpoint) = match args.targets.as_slice() {
        [mountpoint] => (None, PathBuf::from(mountpoint)),
        [image, mountpoint] => {
            let image = image.to_str().ok_or_else(|| {
                CliError::Usage(format!("image reference {image:?} is not UTF-8"))
            })?;
            (Some(image.to_string()), PathBuf::from(mountpoint))
        }
        _ => {
            return Err(CliError::Usage(
                "want IMAGE MOUNTPOINT, or --layer PATH... MOUNTPOINT".into(),
            ));
        }
    };
    let layers = layers(&args, image.as_deref())?;
    let index_cache = match (args.no_cache, args.cache) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => Some(IndexCache::default_dir()),
    };
    let defaults = LayerOptions::default();
    let layer_options = LayerOptions {
        index_cache,
        chunk_cache_bytes: args.chunk_cache.unwrap_or(defaults.chunk_cache_bytes),
    };
    let config = MountConfig {
        layers,
        layer_options,
        mountpoint,
        foreground: args.foreground,
        upper: None,
        fsname: "unionmount".into(),
        flags: Vec::new(),
        allow_other: !args.private && rustix::process::geteuid().is_root(),
    };
    crate::mount::run(&config)?;
    Ok(())
}

/// A size as `64M`, `1G`, `512k` or plain bytes (`1048576`, `100B`); `iB` or `B` after the
/// unit is accepted (`64MiB`), and every unit is a power of 1024, as for `truncate -s` or `dd`.
/// clap puts the option's name in front of the error.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 64M, 1G or 1048576)"))?;
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G or T, or plain bytes)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is too big"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in [
            "",
            "M",
            "-1",
            "1.5G",
            "64X",
            "64 M",
            "1B2",
            "99999999999T",
            "B",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
