//! `unionmount commit`, `import`, `squash`, `save` and `export`: making images and archives
//! from mounts, tarballs and the store.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, StoreArgs};
use crate::image::archive_write::{self, SaveImage};
use crate::image::pack::{self, PackMode};
use crate::image::store::commit::NewImage;
use crate::image::store::{Store, StoredImage, normalize_name};
use crate::layer::blob::Compression;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount commit /mnt/app myapp:v2 -m 'add config'\n  \
                        unionmount commit -c 'CMD [\"/app\"]' -c 'ENV MODE=prod' /mnt/app myapp:v3"
)]
pub struct CommitArgs {
    /// The mount: its mountpoint, or its NAME as `ps` shows it (a prefix will do).
    #[arg(value_name = "MOUNTPOINT|MOUNT")]
    pub mount: String,
    /// The new image's name (none: an untagged image).
    #[arg(value_name = "NAME[:TAG]")]
    pub name: Option<String>,
    /// The commit message (the history entry's comment).
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// The author.
    #[arg(short = 'a', long = "author")]
    pub author: Option<String>,
    /// A Dockerfile instruction for the new config: CMD, ENTRYPOINT, ENV, LABEL, WORKDIR,
    /// USER, EXPOSE, VOLUME, STOPSIGNAL. Repeatable.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_commit(args: CommitArgs) -> Result<(), CliError> {
    let tag = args.name.as_deref().map(normalize_name).transpose()?;
    let store = args.store.open()?;
    let record = super::ps::find_mount(store.root(), &args.mount)?;
    let Some(manifest) = &record.state.manifest else {
        return Err(CliError::Usage(format!(
            "{}: a mount of {}, not of an image of the store (pull it first, then mount it by \
             name)",
            args.mount, record.state.image
        )));
    };
    let base = store.find(&manifest.to_string()).map_err(|_| {
        CliError::Usage(format!(
            "{}: its image ({}) is no longer in the store",
            args.mount, record.state.image
        ))
    })?;
    // The new image refers to the base's layers: they must be in the store.
    let base = super::load::complete_lazy(&store, base, &record.state.image, "commit")?;
    if record.is_live() {
        sync(&record.state.mountpoint);
    }
    let layer = store.stage_tree(&record.state.upper(), PackMode::Diff)?;
    let image = store.create_image(
        Some(&base),
        false,
        layer,
        &NewImage {
            message: args.message,
            author: args.author,
            changes: args.changes,
            created_by: "unionmount commit".into(),
            tag,
        },
    )?;
    println!("{}", image.config_digest);
    Ok(())
}

/// Flushes what the mount's daemon has written to the upper's filesystem (the daemon writes
/// through to its files, so this is a belt over the braces).
fn sync(mountpoint: &Path) {
    if let Ok(dir) = File::open(mountpoint) {
        let _ = rustix::fs::syncfs(&dir);
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount import rootfs.tar.gz mybase:1\n  \
                        tar -C dir -c . | unionmount import - mybase:2 -c 'CMD [\"sh\"]'"
)]
pub struct ImportArgs {
    /// A rootfs tarball (plain, gzip or zstd), or - for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    /// The new image's name (none: untagged).
    #[arg(value_name = "NAME[:TAG]")]
    pub name: Option<String>,
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// A Dockerfile instruction for the config (CMD, ENV, ...). Repeatable.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_import(args: ImportArgs) -> Result<(), CliError> {
    let tag = args.name.as_deref().map(normalize_name).transpose()?;
    let store = args.store.open()?;
    let layer = if args.file.as_os_str() == "-" {
        store.stage_tarball(std::io::stdin().lock())?
    } else {
        let file = File::open(&args.file)
            .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
        store.stage_tarball(file)?
    };
    let source = if args.file.as_os_str() == "-" {
        "-".to_string()
    } else {
        args.file.display().to_string()
    };
    let image = store.create_image(
        None,
        false,
        layer,
        &NewImage {
            message: Some(
                args.message
                    .unwrap_or_else(|| format!("Imported from {source}")),
            ),
            author: None,
            changes: args.changes,
            created_by: String::new(),
            tag,
        },
    )?;
    println!("{}", image.config_digest);
    Ok(())
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  unionmount squash myapp:v3 myapp:flat")]
pub struct SquashArgs {
    /// The image to flatten.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The name of the one-layer image.
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_squash(args: SquashArgs) -> Result<(), CliError> {
    let tag = normalize_name(&args.name)?;
    let store = args.store.open()?;
    let base = store.find(&args.image)?;
    let base = super::load::complete_lazy(&store, base, &args.image, "squash")?;
    let layer = with_image_mounted(&store, &base, &args.image, |dir| {
        Ok(store.stage_tree(dir, PackMode::Flat)?)
    })?;
    let image = store.create_image(
        Some(&base),
        true,
        layer,
        &NewImage {
            message: args.message,
            author: None,
            changes: Vec::new(),
            created_by: format!("unionmount squash {}", args.image),
            tag: Some(tag),
        },
    )?;
    println!("{}", image.config_digest);
    Ok(())
}

/// Mounts `image` read-only on a private temporary directory for `f`, then unmounts it.
fn with_image_mounted<T>(
    store: &Store,
    image: &StoredImage,
    name: &str,
    f: impl FnOnce(&Path) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let resolved = store.image(image, name)?;
    let dir = std::env::temp_dir().join(format!(
        "unionmount-flatten-{}-{}",
        std::process::id(),
        &image.config_digest.hex()[..12]
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Usage(format!("{}: {e}", dir.display())))?;
    let config = crate::mount::MountConfig {
        layers: resolved.layers,
        layer_options: crate::layer::LayerOptions {
            index_cache: Some(store.index_dir()),
            ..Default::default()
        },
        mountpoint: dir.clone(),
        foreground: false,
        upper: None,
        fsname: "unionmount".into(),
        flags: Vec::new(),
        allow_other: false,
        serve: Default::default(),
        pid_file: None,
    };
    if let Err(e) = crate::mount::run(&config) {
        let _ = std::fs::remove_dir(&dir);
        return Err(e.into());
    }
    let result = f(&dir);
    let unmounted = crate::mount::unmount(&dir, false);
    if unmounted.is_ok() {
        let _ = std::fs::remove_dir(&dir);
    }
    let value = result?;
    unmounted?;
    Ok(value)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount save -o images.tar alpine:3.19 myapp:v2\n  \
                        unionmount save alpine > alpine.tar"
)]
pub struct SaveArgs {
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_save(args: SaveArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    // Lazily pulled images are completed first (that takes the store's write lock).
    for name in &args.images {
        super::load::complete_lazy(&store, store.find(name)?, name, "save")?;
    }
    let _lock = store.lock(false)?;
    let mut images = Vec::new();
    for name in &args.images {
        let stored = store.find(name)?;
        let image = store.image(&stored, name)?;
        // A name that is a tag saves under that tag only, as docker does; an ID saves all.
        let tags = match crate::image::store::remove::name_as_tag(name) {
            Some(t) if stored.tags.contains(&t) => vec![t],
            _ => stored.tags.clone(),
        };
        images.push(
            SaveImage::from_image(&image, tags, stored.config_raw.clone())
                .map_err(|e| CliError::Usage(e.to_string()))?,
        );
    }
    write_out(args.output.as_deref(), |out| {
        archive_write::save(&images, out).map_err(|e| CliError::Usage(e.to_string()))
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount export /mnt/app -o app-rootfs.tar\n  \
                        unionmount export alpine:3.19 > rootfs.tar"
)]
pub struct ExportArgs {
    /// A mountpoint (its merged tree as it is now) or an image of the store.
    #[arg(value_name = "MOUNTPOINT|IMAGE")]
    pub source: String,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_export(args: ExportArgs) -> Result<(), CliError> {
    let path = Path::new(&args.source);
    let flat = |dir: &Path| -> Result<(), CliError> {
        write_out(args.output.as_deref(), |out| {
            pack::pack(dir, PackMode::Flat, Compression::None, out)
                .map(|_| ())
                .map_err(|e| CliError::Usage(e.to_string()))
        })
    };
    if path.is_dir() {
        return flat(path);
    }
    let store = args.store.open()?;
    let image = store.find(&args.source)?;
    let image = super::load::complete_lazy(&store, image, &args.source, "export")?;
    with_image_mounted(&store, &image, &args.source, flat)
}

/// Runs `write` on FILE (created through a temp name and renamed when complete, so a failed
/// write leaves no partial archive) or on standard output.
fn write_out(
    output: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<(), CliError>,
) -> Result<(), CliError> {
    match output {
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush()
                .map_err(|e| CliError::Usage(format!("standard output: {e}")))
        }
        Some(file) => {
            let mut tmp = file.as_os_str().to_owned();
            tmp.push(format!(".tmp-{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let result = (|| {
                let f = File::create(&tmp)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", tmp.display())))?;
                let mut out = BufWriter::new(f);
                write(&mut out)?;
                let f = out
                    .into_inner()
                    .map_err(|e| CliError::Usage(format!("{}: {}", file.display(), e.error())))?;
                f.sync_all()
                    .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
                std::fs::rename(&tmp, file)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}
