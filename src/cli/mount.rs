//! `unionmount mount IMAGE MOUNTPOINT` and `unionmount mount --layer PATH... MOUNTPOINT`.
//!
//! An image mount is writable by default: its upper and work directories live in the store,
//! under `ROOT/mounts/NAME/` (see [`crate::image::store`]), so that mounting the same image
//! on the same mountpoint again shows the earlier changes. `--upper DIR` puts them elsewhere,
//! `--read-only` leaves them out. A `--layer` mount is read-only unless given `--upper`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::CliError;
use super::load::RegistryArgs;
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::image::store::{self, MountState, Store};
use crate::image::{Cause, ImageError};
use crate::layer::LayerOptions;
use crate::layer::blob::Digest;
use crate::layer::blob::LayerSource;
use crate::layer::tar::IndexCache;
use crate::mount::{MountConfig, MountError, UpperDirs};
use crate::registry::RegistryRef;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount mount alpine:3.19 /mnt/alpine          (an image of the store; \
                        writable)\n  unionmount mount --read-only oci:./layout:v1 /mnt\n  \
                        unionmount mount --layer base.tar.gz --layer ./app /mnt\n  \
                        unionmount mount --lazy docker://localhost:5000/app:1 /mnt   (reads \
                        what is used, by HTTP ranges)"
)]
pub struct MountArgs {
    /// IMAGE MOUNTPOINT, or MOUNTPOINT alone with --layer. IMAGE is oci:DIR[:TAG],
    /// oci:DIR@sha256:DIGEST or docker-archive:FILE[:NAME:TAG]; MOUNTPOINT is where to mount.
    // One list rather than two positionals, so that options may come between them.
    #[arg(value_name = "IMAGE|MOUNTPOINT", num_args = 1..=2, required = true)]
    pub targets: Vec<std::ffi::OsString>,

    /// A layer: an extracted directory or a tar file. Repeat it, bottom layer first.
    #[arg(long = "layer", value_name = "PATH")]
    pub layers: Vec<PathBuf>,

    /// IMAGE is a registry image, [docker://]HOST[:PORT]/NAME[:TAG|@DIGEST], mounted without
    /// pulling it: each layer is read once to index it (unless the registry has its index,
    /// see `push --index`), then files are fetched by HTTP range requests as they are read,
    /// and cached by chunk under the index cache.
    #[arg(long = "lazy")]
    pub lazy: bool,

    /// With --lazy: fetch the whole of every layer into the chunk cache in the background.
    #[arg(long = "fill", requires = "lazy")]
    pub fill: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// With IMAGE: the platform to take from a multi-platform image (default: this machine).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// No upper: nothing can be changed (the default with --layer). With --upper, that
    /// upper is shown read-only as the top layer.
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Keep changes in DIR (an overlayfs upper directory, created if missing) instead of the
    /// store's mounts/ directory. Makes a --layer mount writable.
    #[arg(long = "upper", value_name = "DIR")]
    pub upper: Option<PathBuf>,

    /// The work directory for --upper, on the same filesystem (created if missing; default:
    /// DIR.work beside the upper).
    #[arg(long = "work", value_name = "DIR", requires = "upper")]
    pub work: Option<PathBuf>,

    /// The store root, holding mounts/ (per-mount upper and work directories of image
    /// mounts) and indexes/ (default: $UNIONMOUNT_ROOT, else /var/lib/unionmount as root,
    /// else $XDG_DATA_HOME/unionmount).
    #[arg(long = "root", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Keep tar-layer indexes in DIR between mounts (default: indexes/ under --root if
    /// given, else under $UNIONMOUNT_ROOT or /var/lib/unionmount as root, else
    /// ~/.cache/unionmount).
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

impl MountArgs {
    /// `unionmount IMAGE MOUNTPOINT`: `mount` with every option at its default.
    pub fn short_form(targets: Vec<std::ffi::OsString>, foreground: bool) -> MountArgs {
        MountArgs {
            targets,
            layers: Vec::new(),
            lazy: false,
            fill: false,
            registry: RegistryArgs {
                creds: None,
                tls_verify: true,
            },
            platform: None,
            read_only: false,
            upper: None,
            work: None,
            root: None,
            cache: None,
            no_cache: false,
            chunk_cache: None,
            foreground,
            private: false,
        }
    }
}

/// What the user asked to mount.
enum Source {
    /// `--layer PATH...`
    Layers,
    /// `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`: read in place.
    Transport(Reference),
    /// A name, ID or digest of an image in the store.
    Stored(String),
    /// `--lazy [docker://]HOST/NAME[:TAG]`: a registry image read by ranges.
    Lazy(RegistryRef),
}

/// Whether `text` is a transport reference (read in place) rather than the name, ID or
/// digest of an image in the store: it starts with a known transport, or it is no valid
/// image name (then `Reference::parse` says what is wrong with it).
pub(crate) fn is_transport(text: &str) -> bool {
    if TRANSPORTS.iter().any(|t| text.starts_with(t)) {
        return true;
    }
    let store_form = text.starts_with("sha256:")
        || text.contains('@')
        || crate::image::reference::normalize_repo_tag(text).is_some();
    !store_form
}

/// The transport prefixes of containers/image (skopeo) that a reference may start with.
pub(crate) const TRANSPORTS: [&str; 7] = [
    "oci:",
    "docker-archive:",
    "docker://",
    "oci-archive:",
    "containers-storage:",
    "docker-daemon:",
    "dir:",
];

/// An image resolved for mounting: its layers, and for a store image the name its mount
/// state is kept under and its manifest.
struct Resolved {
    layers: Vec<LayerSource>,
    stored: Option<(String, Digest)>,
}

/// The layers to stack, topmost first, from an image or the `--layer` list.
fn resolve(
    args: &MountArgs,
    source: &Source,
    store: Option<&Store>,
    index_cache: Option<&Path>,
) -> Result<Resolved, CliError> {
    if !args.layers.is_empty() && !matches!(source, Source::Layers) {
        return Err(CliError::Usage(
            "give either an IMAGE or --layer PATH..., not both".into(),
        ));
    }
    let platform = match &args.platform {
        Some(_) if matches!(source, Source::Layers) => {
            return Err(CliError::Usage(
                "--platform applies to an IMAGE only".into(),
            ));
        }
        Some(p) => Some(Platform::parse(p).map_err(CliError::Usage)?),
        None => None,
    };
    match (source, store) {
        (Source::Layers, _) if args.layers.is_empty() => Err(CliError::Usage(
            "nothing to mount: give an IMAGE (NAME[:TAG], oci:DIR[:TAG], \
             docker-archive:FILE[:NAME:TAG]) or --layer PATH..."
                .into(),
        )),
        // Users list layers bottom first, like image manifests; the union wants top first.
        (Source::Layers, _) => Ok(Resolved {
            layers: args
                .layers
                .iter()
                .rev()
                .cloned()
                .map(LayerSource::Path)
                .collect(),
            stored: None,
        }),
        (Source::Transport(reference), _) => {
            let image = crate::image::resolve(reference, platform.as_ref())?;
            Ok(Resolved {
                layers: image.layers,
                stored: None,
            })
        }
        (Source::Stored(name), Some(store)) => {
            let stored = store.find(name)?;
            let mut image = store.image(&stored, name)?;
            if stored.lazy && !store.missing_blobs(&stored).is_empty() {
                // Pulled with --lazy: the layers the store lacks are read from the registry.
                let (reference, client) = super::load::lazy_source(&stored, name, &args.registry)?;
                image.layers = crate::registry::lazy::remote_layers(
                    &Arc::new(client),
                    &reference.repo,
                    image.layers,
                    false,
                )?;
            }
            // A tag keeps its mount state when the tag moves on; an ID or digest is one image.
            let key = match store::remove::name_as_tag(name) {
                Some(tag) if stored.tags.contains(&tag) => tag,
                _ => stored.config_digest.to_string(),
            };
            Ok(Resolved {
                layers: image.layers,
                stored: Some((key, stored.manifest_digest.clone())),
            })
        }
        (Source::Lazy(reference), _) => {
            let client = Arc::new(args.registry.client(reference)?);
            let platform = platform.unwrap_or_else(Platform::host);
            let image = crate::registry::lazy::open_image(
                &client,
                reference,
                &platform,
                index_cache,
                args.fill,
            )?;
            if image.imported > 0 {
                log::info!(
                    "{reference}: {} layer indexes taken from the registry",
                    image.imported
                );
            }
            Ok(Resolved {
                layers: image.layers,
                stored: None,
            })
        }
        (Source::Stored(name), None) => Err(CliError::Usage(format!(
            "image {name:?}: no store to look it up in"
        ))),
    }
}

pub fn run(args: MountArgs) -> Result<(), CliError> {
    let (source, mountpoint) = match args.targets.as_slice() {
        [mountpoint] => (Source::Layers, PathBuf::from(mountpoint)),
        [image, mountpoint] => {
            let text = image.to_str().ok_or_else(|| {
                CliError::Usage(format!("image reference {image:?} is not UTF-8"))
            })?;
            let source = if args.lazy {
                if !super::load::is_registry_source(text) {
                    return Err(CliError::Usage(format!(
                        "--lazy {text:?}: not a registry reference (want \
                         docker://HOST[:PORT]/NAME[:TAG|@DIGEST])"
                    )));
                }
                Source::Lazy(RegistryRef::parse(text).map_err(CliError::Usage)?)
            } else if is_transport(text) {
                Source::Transport(Reference::parse(text).map_err(|m| ImageError {
                    image: text.to_string(),
                    cause: Cause::Reference(m),
                })?)
            } else {
                Source::Stored(text.to_string())
            };
            (source, PathBuf::from(mountpoint))
        }
        _ => {
            return Err(CliError::Usage(
                "want IMAGE MOUNTPOINT, or --layer PATH... MOUNTPOINT".into(),
            ));
        }
    };
    if args.lazy && !matches!(source, Source::Lazy(_)) {
        return Err(CliError::Usage(
            "--lazy wants a registry IMAGE: docker://HOST[:PORT]/NAME[:TAG]".into(),
        ));
    }
    if args.root.as_ref().is_some_and(|r| r.as_os_str().is_empty()) {
        return Err(CliError::Usage("--root: empty path".into()));
    }
    let root = store::root(args.root.as_deref());
    let store = match source {
        Source::Stored(_) => Some(Store::open(&root)?),
        _ => None,
    };
    // Held until the mount's record exists, so that no rmi or prune removes the image's
    // blobs between resolving and opening them; released before the daemon forks, or the
    // child would hold it for the mount's whole life.
    let lock = match &store {
        Some(s) => Some(s.lock(false)?),
        None => None,
    };
    let index_cache = match (args.no_cache, &args.cache, &store) {
        (true, _, _) => None,
        (false, Some(dir), _) => Some(dir.clone()),
        (false, None, Some(store)) => Some(store.index_dir()),
        // A lazy mount's indexes and chunks are the store's, as a pulled image's would be.
        (false, None, None) if args.root.is_some() || args.lazy => Some(root.join("indexes")),
        (false, None, None) => Some(IndexCache::default_dir()),
    };
    let resolved = resolve(&args, &source, store.as_ref(), index_cache.as_deref())?;
    let mut layers = resolved.layers;
    let defaults = LayerOptions::default();
    let layer_options = LayerOptions {
        index_cache,
        chunk_cache_bytes: args.chunk_cache.unwrap_or(defaults.chunk_cache_bytes),
    };
    let image = match (&source, resolved.stored) {
        (Source::Transport(reference), _) => Some(ImageState::Reference(reference)),
        (Source::Lazy(reference), _) => {
            Some(ImageState::Stored(format!("docker://{reference}"), None))
        }
        (Source::Stored(_), Some((key, manifest))) => Some(ImageState::Stored(key, Some(manifest))),
        _ => None,
    };
    // A read-only mount of a store image is recorded too: `ps` lists it, `rmi` sees it.
    let record_only = match &image {
        Some(ImageState::Stored(key, manifest)) if args.read_only => Some(
            MountState::named(
                &root,
                key.clone(),
                manifest.clone(),
                &crate::mount::check_mountpoint(&mountpoint)?,
            )
            .map_err(|e| MountError::Layer(format!("image {key}: {e}")))?,
        ),
        _ => None,
    };
    let changes = Changes::choose(&args, image, &root, &mountpoint, &layers, &layer_options)?;
    let mut pid_file = None;
    if let Some(state) = &record_only {
        state.register().map_err(|e| dir_error(&state.dir, e))?;
        pid_file = Some(state.pid_file());
    }
    let (upper, fresh_state) = match changes {
        Changes::None => (None, record_only.map(|s| (s, true))),
        Changes::ShowUpper(dir) => {
            layers.insert(0, LayerSource::Path(dir));
            (None, record_only.map(|s| (s, true)))
        }
        Changes::Upper(dirs) => (Some(dirs), None),
        Changes::Store(state) => {
            let fresh = state.create().map_err(|e| dir_error(&state.dir, e))?;
            if fresh && let Err(e) = init_upper_root(&state.upper(), &layers, &layer_options) {
                state.remove_if_unused();
                return Err(e.into());
            }
            let dirs = UpperDirs::new(state.upper(), state.work()).map_err(MountError::Layer)?;
            pid_file = Some(state.pid_file());
            (Some(dirs), Some((state, fresh)))
        }
    };
    drop(lock);
    let config = MountConfig {
        layers,
        layer_options,
        mountpoint,
        foreground: args.foreground,
        upper,
        fsname: "unionmount".into(),
        flags: Vec::new(),
        allow_other: !args.private && rustix::process::geteuid().is_root(),
        serve: Default::default(),
        pid_file: pid_file.clone(),
    };
    let result = crate::mount::run(&config);
    if let (Err(_), Some((state, fresh))) = (&result, fresh_state) {
        // A mount that never came up leaves no empty state (nor a pid) behind.
        if fresh {
            state.remove_if_unused();
        } else {
            let _ = std::fs::remove_file(state.pid_file());
        }
    }
    result?;
    Ok(())
}

/// The image a store-kept upper belongs to.
enum ImageState<'a> {
    Reference(&'a Reference),
    /// A store image (or a lazily mounted registry image): the key its mount state is named
    /// by, and its manifest in the store.
    Stored(String, Option<Digest>),
}

/// Where the mount's changes go.
enum Changes {
    /// Read-only.
    None,
    /// Read-only, with an upper directory shown as the top layer.
    ShowUpper(PathBuf),
    /// The user's --upper (and --work).
    Upper(UpperDirs),
    /// The store's directory for this image and mountpoint.
    Store(MountState),
}

impl Changes {
    fn choose(
        args: &MountArgs,
        image: Option<ImageState>,
        root: &Path,
        mountpoint: &Path,
        layers: &[LayerSource],
        layer_options: &LayerOptions,
    ) -> Result<Changes, CliError> {
        match (&args.upper, args.read_only, image) {
            (Some(upper), true, _) => Ok(Changes::ShowUpper(upper.clone())),
            (None, true, _) | (None, false, None) => Ok(Changes::None),
            (Some(upper), false, _) => {
                let work = match &args.work {
                    Some(work) => work.clone(),
                    None => {
                        let mut name = upper.as_os_str().to_owned();
                        name.push(".work");
                        PathBuf::from(name)
                    }
                };
                let fresh = !upper.exists();
                for dir in [upper, &work] {
                    std::fs::create_dir_all(dir).map_err(|e| dir_error(dir, e))?;
                }
                if fresh {
                    init_upper_root(upper, layers, layer_options)?;
                }
                let dirs = UpperDirs::new(upper.clone(), work).map_err(MountError::Layer)?;
                Ok(Changes::Upper(dirs))
            }
            (None, false, Some(image)) => {
                // The mountpoint is part of the state's name: check it before naming.
                let mountpoint = crate::mount::check_mountpoint(mountpoint)?;
                let state = match image {
                    ImageState::Reference(reference) => {
                        MountState::of(root, reference, &mountpoint)
                            .map_err(|e| MountError::Layer(format!("image {reference}: {e}")))?
                    }
                    ImageState::Stored(key, manifest) => {
                        MountState::named(root, key.clone(), manifest, &mountpoint)
                            .map_err(|e| MountError::Layer(format!("image {key}: {e}")))?
                    }
                };
                Ok(Changes::Store(state))
            }
        }
    }
}

/// Gives a new upper directory the mode, owner and times of the top layer's root: the merged
/// root shows the upper's (as in overlayfs), and a fresh mount should look like the image.
/// containers/storage likewise makes a layer's diff directory with its parent's mode and owner.
fn init_upper_root(
    upper: &Path,
    layers: &[LayerSource],
    options: &LayerOptions,
) -> Result<(), MountError> {
    use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps};
    let Some(top) = layers.first() else {
        return Ok(());
    };
    let root = crate::layer::open(top, options)
        .and_then(|layer| layer.root().map_err(|e| e.to_string()))
        .map_err(MountError::Layer)?;
    let attr = root.attr;
    let fail = |e: rustix::io::Errno| dir_error(upper, e.into());
    let owner = rustix::fs::chown(
        upper,
        Some(rustix::fs::Uid::from_raw(attr.uid)),
        Some(rustix::fs::Gid::from_raw(attr.gid)),
    );
    // Without root the upper stays the user's own, as every file it writes will be.
    match owner {
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(fail(e)),
    }
    rustix::fs::chmod(upper, Mode::from_raw_mode(attr.perm)).map_err(fail)?;
    let time = |t: crate::layer::Timespec| Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.into(),
    };
    let times = Timestamps {
        last_access: time(attr.atime),
        last_modification: time(attr.mtime),
    };
    rustix::fs::utimensat(CWD, upper, &times, AtFlags::empty()).map_err(fail)
}

fn dir_error(dir: &Path, e: std::io::Error) -> MountError {
    MountError::Layer(format!("{}: {e}", dir.display()))
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
    use super::{is_transport, parse_size};

    #[test]
    fn store_names_and_transports_are_told_apart() {
        for name in [
            "busybox",
            "app:v1.0",
            "localhost:5000/app:v1",
            "sha256:ab",
            "a@sha256:ab",
        ] {
            assert!(!is_transport(name), "{name}");
        }
        for t in [
            "oci:dir",
            "oci:dir:v1.0",
            "docker-archive:x.tar",
            "docker://x",
            "/some/dir",
        ] {
            assert!(is_transport(t), "{t}");
        }
    }

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
