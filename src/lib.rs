//! unionmount: a userspace (FUSE) union filesystem for container images.
//!
//! Data flows one way: [`layer`] sources (extracted directories, tar files read in place)
//! are merged by [`union`] into one tree, which [`fuse`] serves to the kernel and [`mount`]
//! mounts, daemonises and unmounts. [`image`] turns image references (OCI layouts, docker
//! archives) into layer sources. [`cli`] turns command lines into mount configurations.
//!
//! As a library, [`LayerStack`] mounts a stack of layers at a path and returns a [`Mounted`]
//! guard that unmounts when dropped, also while a failing test unwinds (with the `testing`
//! feature, the `testing` module builds its layers from a short literal description):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if !std::path::Path::new("/dev/fuse").exists() { return Ok(()); }
//! let tmp = tempfile::tempdir()?;
//! let (lower, mnt) = (tmp.path().join("lower"), tmp.path().join("mnt"));
//! std::fs::create_dir_all(lower.join("etc"))?;
//! std::fs::create_dir(&mnt)?;
//! std::fs::write(lower.join("etc/motd"), "hello\n")?;
//!
//! let mounted = unionmount::LayerStack::new().layer(&lower).mount(&mnt)?;
//! assert_eq!(std::fs::read_to_string(mounted.path().join("etc/motd"))?, "hello\n");
//! drop(mounted); // unmounted
//! # Ok(()) }
//! ```

// The commands' doc comments are their `--help` text, where `[:TAG]` means optional, not a
// link.
#[allow(rustdoc::broken_intra_doc_links)]
pub mod cli;
pub mod fuse;
pub mod idmap;
pub mod image;
pub mod layer;
pub mod mount;
pub mod registry;
pub mod stack;
#[cfg(feature = "testing")]
pub mod testing;
pub mod union;

pub use stack::{LayerStack, Mounted};

/// The README's Rust examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
