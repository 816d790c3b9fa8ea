//! unionmount: a userspace (FUSE) union filesystem for container images.
//!
//! Data flows one way: [`layer`] sources (extracted directories, tar files read in place)
//! are merged by [`union`] into one tree, which [`fuse`] serves to the kernel and [`mount`]
//! mounts, daemonises and unmounts. [`image`] turns image references (OCI layouts, docker
//! archives) into layer sources. [`cli`] turns command lines into mount configurations.

pub mod cli;
pub mod fuse;
pub mod idmap;
pub mod image;
pub mod layer;
pub mod mount;
pub mod union;
