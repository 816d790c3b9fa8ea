//! `unionmount push IMAGE [docker://]HOST/NAME[:TAG]`: a store image to a registry.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::load::RegistryArgs;
use super::{CliError, StoreArgs};
use crate::registry::RegistryRef;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    unionmount push app:1.0 localhost:5000/app:1.0\n  \
    unionmount push localhost:5000/app:1.0   (the image's own name)\n  \
    unionmount push --creds me:secret app docker://registry.example.com/team/app:latest\n  \
    unionmount push --tls-verify=false app 10.0.0.5:5000/app\n  \
    unionmount push --index localhost:5000/app:1.0   (its layer indexes, for mount --lazy)")]
pub struct PushArgs {
    /// The image in the store (name, ID or digest).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to: [docker://]HOST[:PORT]/NAME[:TAG] (default: IMAGE itself, when it names a
    /// registry).
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Also push the layer indexes of the image as the registry has it, as an OCI artifact
    /// referring to it, so that `mount --lazy` elsewhere skips reading each layer once. With
    /// IMAGE and DESTINATION the image is pushed first; with one reference (a registry
    /// image) only its indexes are. A layer whose index is not saved is read once to build it.
    #[arg(long = "index")]
    pub index: bool,
    /// With --index: where saved indexes are (default: indexes/ under the store root).
    #[arg(long = "cache", value_name = "DIR", requires = "index")]
    pub cache: Option<PathBuf>,
    /// With --index: the platform to take from a multi-platform image.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        requires = "index"
    )]
    pub platform: Option<String>,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: PushArgs) -> Result<(), CliError> {
    let destination = args.destination.as_deref().unwrap_or(&args.image);
    if !super::load::is_registry_source(destination) {
        return Err(CliError::Usage(format!(
            "push destination {destination:?}: not a registry reference (want \
             [docker://]HOST[:PORT]/NAME[:TAG], HOST with a `.` or `:`, or localhost)"
        )));
    }
    let target = RegistryRef::parse(destination).map_err(CliError::Usage)?;
    let client = Arc::new(args.registry.client(&target)?);
    if !args.index || args.destination.is_some() {
        let store = args.store.open()?;
        // A lazy image's absent layers can only be had for free (HEAD, cross-repository
        // mount) on the registry they are in; for another one they are fetched first.
        let stored = store.find(&args.image)?;
        let same_registry = stored.source.as_deref().is_some_and(|source| {
            source
                .split_once('/')
                .is_some_and(|(host, _)| host == target.host)
        });
        if !same_registry {
            super::load::complete_lazy(&store, stored, &args.image, "push")?;
        }
        crate::registry::push::push(&store, &client, &args.image, &target, args.quiet)?;
    }
    if args.index {
        let platform = match &args.platform {
            Some(p) => crate::image::platform::Platform::parse(p).map_err(CliError::Usage)?,
            None => crate::image::platform::Platform::host(),
        };
        let dir = match &args.cache {
            Some(dir) => dir.clone(),
            None => args.store.root().join("indexes"),
        };
        let pushed = crate::registry::lazy::push_indexes(&client, &target, &platform, &dir)?;
        if !args.quiet {
            println!(
                "{target}: layer indexes: {} ({} built by reading the layer{})",
                pushed.digest,
                pushed.built,
                if pushed.fallback {
                    "; referrers tag written"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
