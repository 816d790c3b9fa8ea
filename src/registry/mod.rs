//! Registries: pulling images into the store and pushing them out over the OCI distribution
//! API (v2). It sits above the store (registry → store → layers): it uses `image` and
//! `image::store`, and nothing below reaches back into it.
//!
//! - [`reference`](mod@reference): `[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]`, normalised as
//!   docker does.
//! - [`auth`]: credentials (`--creds`, the podman and docker auth files) and challenges.
//! - [`client`]: one registry host: HTTP(S) with timeouts, retries, token and basic auth,
//!   redirects, manifests, blobs (streamed, resumed with `Range`), uploads. `Send + Sync`, a
//!   library API that lazy mounts can share between threads.
//! - [`pull`] and [`push`]: the commands' work, between a [`client::Client`] and the store.
//! - [`lazy`]: registry blobs as range sources for lazy mounts, and the layer-index artifacts
//!   (`push --index`) that spare a lazy mount its first pass.

pub mod auth;
pub mod client;
pub mod lazy;
pub mod pull;
pub mod push;
pub mod reference;

use std::fmt;

pub use client::{Client, ClientOptions, Resolved};
pub use reference::RegistryRef;

use crate::image::store::StoreError;
use crate::layer::blob::Digest;

/// Why talking to a registry failed: one line naming the registry (and the thing asked for)
/// and the cause.
#[derive(Debug)]
pub enum RegistryError {
    /// A malformed reference or argument; the message says all.
    Invalid(String),
    /// No connection (refused, DNS, TLS, timeout) after the retries.
    Connect {
        registry: String,
        cause: String,
    },
    /// The registry answered with an error status.
    Status {
        registry: String,
        what: String,
        status: u16,
        detail: String,
    },
    /// Credentials missing or refused.
    Auth {
        registry: String,
        cause: String,
    },
    /// Content did not match its digest (or size).
    Digest {
        what: String,
        expected: Digest,
        actual: String,
    },
    /// The registry sent something we cannot use (bad JSON, an unsupported media type, no
    /// manifest for the platform).
    Protocol {
        registry: String,
        cause: String,
    },
    /// A local file (staging a blob, reading one to push).
    Io(String, std::io::Error),
    Store(StoreError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Invalid(m) => f.write_str(m),
            RegistryError::Connect { registry, cause } => {
                write!(f, "registry {registry}: cannot connect: {cause}")
            }
            RegistryError::Status {
                registry,
                what,
                status,
                detail,
            } => {
                write!(f, "registry {registry}: {what}: HTTP {status}")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            RegistryError::Auth { registry, cause } => {
                write!(f, "registry {registry}: {cause}")
            }
            RegistryError::Digest {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: digest mismatch: expected {expected}, got {actual}"
            ),
            RegistryError::Protocol { registry, cause } => {
                write!(f, "registry {registry}: {cause}")
            }
            RegistryError::Io(what, e) => write!(f, "{what}: {e}"),
            RegistryError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError::Store(e)
    }
}

impl RegistryError {
    /// A wrong word on the command line (exit code 2), as opposed to a failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, RegistryError::Invalid(_))
    }
}
