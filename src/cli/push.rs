//! `unionmount push IMAGE [docker://]HOST/NAME[:TAG]`: a store image to a registry.

use clap::Args;

use super::load::RegistryArgs;
use super::{CliError, StoreArgs};
use crate::registry::RegistryRef;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    unionmount push app:1.0 localhost:5000/app:1.0\n  \
    unionmount push localhost:5000/app:1.0   (the image's own name)\n  \
    unionmount push --creds me:secret app docker://registry.example.com/team/app:latest\n  \
    unionmount push --tls-verify=false app 10.0.0.5:5000/app")]
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
    let client = args.registry.client(&target)?;
    let store = args.store.open()?;
    crate::registry::push::push(&store, &client, &args.image, &target, args.quiet)?;
    Ok(())
}
