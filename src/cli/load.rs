//! `unionmount load -i FILE` and `unionmount pull SOURCE`: images into the store.

use std::path::PathBuf;

use clap::Args;

use super::format::truncate_id;
use super::{CliError, StoreArgs};
use crate::image::reference::{Location, Reference, Select};
use crate::image::store::{Store, StoredImage};
use crate::registry::auth::Credentials;
use crate::registry::pull::PullOptions;
use crate::registry::{Client, ClientOptions, RegistryRef};

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
#[command(after_help = "Examples:\n  \
    unionmount pull docker://localhost:5000/app:1.0\n  \
    unionmount pull localhost:5000/app@sha256:...\n  \
    unionmount pull --platform linux/arm64 --creds me:secret registry.example.com/team/app\n  \
    unionmount pull --tls-verify=false docker://10.0.0.5:5000/app\n  \
    unionmount pull oci:./layout:latest\n  \
    unionmount pull docker-archive:busybox.tar\n  \
    unionmount pull oci:./layout   (every image)")]
pub struct PullArgs {
    /// docker://HOST[:PORT]/NAME[:TAG|@DIGEST] (or HOST/NAME... when HOST has a `.` or `:` or
    /// is localhost), oci:DIR[:TAG] (without TAG: every image of the layout) or
    /// docker-archive:FILE[:NAME:TAG] (without NAME: every image of the archive).
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// With a multi-platform image, the platform to take (default: this machine).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// With a registry image: store its manifest, config and layer indexes but not its layer
    /// blobs (each layer is read once to index it, unless the registry has its index, see
    /// `push --index`); `mount NAME` then reads files by HTTP range requests as they are
    /// used. A later pull without --lazy completes it.
    #[arg(long = "lazy")]
    pub lazy: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How to reach a registry (`pull` and `push`).
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry credentials (default: the auth files: $REGISTRY_AUTH_FILE,
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json).
    #[arg(long = "creds", value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Require HTTPS with a verified certificate (false: any certificate, or plain HTTP).
    /// localhost registries are always plain HTTP.
    #[arg(
        long = "tls-verify",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub tls_verify: bool,
}

impl RegistryArgs {
    /// A client for `reference`'s registry.
    pub fn client(&self, reference: &RegistryRef) -> Result<Client, CliError> {
        let creds = match &self.creds {
            Some(c) => Some(Credentials::parse(c).map_err(CliError::Usage)?),
            None => None,
        };
        let options = ClientOptions {
            creds,
            tls_verify: self.tls_verify,
            ..ClientOptions::default()
        };
        Ok(Client::new(&reference.host, &options))
    }
}

/// Whether a pull source names a registry image rather than a transport reference.
pub fn is_registry_source(text: &str) -> bool {
    if text.starts_with("docker://") {
        return true;
    }
    !super::mount::TRANSPORTS.iter().any(|t| text.starts_with(t)) && RegistryRef::is_registry(text)
}

pub fn run_pull(args: PullArgs) -> Result<(), CliError> {
    if is_registry_source(&args.source) {
        return run_registry_pull(args);
    }
    if args.lazy {
        return Err(CliError::Usage(format!(
            "--lazy {:?}: not a registry reference (want docker://HOST[:PORT]/NAME[:TAG|@DIGEST])",
            args.source
        )));
    }
    let reference = Reference::parse(&args.source).map_err(|m| {
        // `pull busybox` as docker users type it: say how to name a Docker Hub image.
        let m = if m.contains("no transport")
            && crate::image::reference::normalize_repo_tag(&args.source).is_some()
        {
            format!("{m}, or docker://{} for a registry image", args.source)
        } else {
            m
        };
        crate::image::ImageError {
            image: args.source.clone(),
            cause: crate::image::Cause::Reference(m),
        }
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

fn run_registry_pull(args: PullArgs) -> Result<(), CliError> {
    let reference = RegistryRef::parse(&args.source).map_err(CliError::Usage)?;
    let platform = match &args.platform {
        Some(p) => Some(crate::image::platform::Platform::parse(p).map_err(CliError::Usage)?),
        None => None,
    };
    let client = args.registry.client(&reference)?;
    let store = args.store.open()?;
    let options = PullOptions {
        platform,
        quiet: args.quiet,
    };
    if args.lazy {
        let client = std::sync::Arc::new(client);
        crate::registry::pull::pull_lazy(&store, &client, &reference, &options)?;
    } else {
        crate::registry::pull::pull(&store, &client, &reference, &options)?;
    }
    Ok(())
}

/// The registry reference and client a lazy store image's layers are read from.
pub fn lazy_source(
    image: &StoredImage,
    name: &str,
    registry: &RegistryArgs,
) -> Result<(RegistryRef, Client), CliError> {
    let source = image.source.as_deref().ok_or_else(|| {
        CliError::Usage(format!(
            "image {name}: pulled with --lazy, but the store does not say from where (pull it \
             again)"
        ))
    })?;
    let reference = RegistryRef::parse(&format!("docker://{source}@{}", image.manifest_digest))
        .map_err(CliError::Usage)?;
    let client = registry.client(&reference)?;
    Ok((reference, client))
}

/// Makes a lazily pulled image complete before an operation that needs its layer blobs
/// (`save`, `export`, `push`, `squash`, `commit`): pulls it from where it came from,
/// by digest (no tag changes), with the default registry settings. Returns the image as
/// stored now; an image that is complete already is returned as it is. A failure names the
/// image and says to `pull` it without `--lazy`.
pub fn complete_lazy(
    store: &Store,
    image: StoredImage,
    name: &str,
    what: &str,
) -> Result<StoredImage, CliError> {
    if !image.lazy || store.missing_blobs(&image).is_empty() {
        return Ok(image);
    }
    let registry = RegistryArgs {
        creds: None,
        tls_verify: true,
    };
    let fetched = lazy_source(&image, name, &registry).and_then(|(reference, client)| {
        let options = PullOptions {
            platform: None,
            quiet: true,
        };
        log::info!(
            "image {name} was pulled with --lazy: fetching its layers from docker://{} for {what}",
            reference.full_name()
        );
        Ok(crate::registry::pull::pull(
            store, &client, &reference, &options,
        )?)
    });
    match fetched {
        Ok(pulled) => Ok(pulled.image),
        Err(e) => Err(CliError::Store(image.lazy_error(
            name,
            what,
            Some(&e.to_string()),
        ))),
    }
}
