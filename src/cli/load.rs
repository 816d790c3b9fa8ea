//! `unionmount load -i FILE` and `unionmount pull SOURCE`: images into the store.

use std::path::PathBuf;

use clap::Args;

use super::format::truncate_id;
use super::{CliError, StoreArgs};
use crate::image::reference::{Location, Reference, Select};
use crate::image::store::StoredImage;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount load -i busybox.tar\n  unionmount load < busybox.tar"
)]
pub struct LoadArgs {
    /// The archive: a `docker save` tar or an OCI archive (default: standard input).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_load(args: LoadArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    let images = match &args.input {
        Some(file) => store.load_archive(file)?,
        None => {
            // Archives are read in place, so standard input is spooled to the store first.
            let spool = store
                .root()
                .join("ingest")
                .join(format!("stdin-{}.tar", std::process::id()));
            std::fs::create_dir_all(spool.parent().unwrap_or(store.root()))
                .map_err(|e| CliError::Usage(format!("{}: {e}", spool.display())))?;
            let copied = std::fs::File::create(&spool)
                .and_then(|mut f| std::io::copy(&mut std::io::stdin().lock(), &mut f));
            let result = match copied {
                Ok(0) => Err(CliError::Usage(
                    "nothing on standard input: give the archive with -i FILE".into(),
                )),
                Ok(_) => store.load_archive(&spool).map_err(CliError::from),
                Err(e) => Err(CliError::Usage(format!("reading standard input: {e}"))),
            };
            let _ = std::fs::remove_file(&spool);
            result?
        }
    };
    if !args.quiet {
        report(&images);
    }
    Ok(())
}

/// docker's lines: `Loaded image: NAME:TAG`, or `Loaded image ID: sha256:...` for an
/// untagged one.
fn report(images: &[StoredImage]) {
    for image in images {
        if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.config_digest);
        }
        for tag in &image.tags {
            println!("Loaded image: {tag}");
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount pull oci:./layout:latest\n  unionmount pull \
                        docker-archive:busybox.tar\n  unionmount pull oci:./layout   (every image)"
)]
pub struct PullArgs {
    /// oci:DIR[:TAG] (without TAG: every image of the layout) or
    /// docker-archive:FILE[:NAME:TAG] (without NAME: every image of the archive).
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// With a multi-platform image, the platform to take (default: this machine).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_pull(args: PullArgs) -> Result<(), CliError> {
    let reference = Reference::parse(&args.source).map_err(|m| crate::image::ImageError {
        image: args.source.clone(),
        cause: crate::image::Cause::Reference(m),
    })?;
    let platform = match &args.platform {
        Some(p) => Some(crate::image::platform::Platform::parse(p).map_err(CliError::Usage)?),
        None => None,
    };
    let store = args.store.open()?;
    let images = match &reference.location {
        Location::Oci {
            dir,
            select: Select::Default,
        } if platform.is_none() => store.pull_layout(dir, None, None)?,
        Location::Oci {
            dir,
            select: Select::Tag(tag),
        } if platform.is_none() => store.pull_layout(dir, Some(tag), None)?,
        Location::DockerArchive {
            file,
            select: Select::Default,
        } => store.load_archive(file)?,
        _ => {
            let image = crate::image::resolve(&reference, platform.as_ref())?;
            let tags = image.repo_tags.clone();
            vec![store.import(&image, &tags)?]
        }
    };
    if !args.quiet {
        for image in &images {
            let name = image
                .tags
                .first()
                .cloned()
                .unwrap_or_else(|| truncate_id(image.config_digest.hex()).to_string());
            println!("{name}: pulled {}", image.manifest_digest);
        }
    }
    Ok(())
}
