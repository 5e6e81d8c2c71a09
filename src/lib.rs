//! scopefs: a FUSE file system that gives an AI agent a scoped view of a real directory.
//!
//! A request travels one way: [`fuse`] converts the kernel's arguments and calls the [`view`],
//! which asks the [`policy`] whether a path may be seen and reaches SOURCE only through the
//! file-descriptor calls of [`sys`]. Nothing below `view` knows about the kernel.

#![deny(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod confine;
pub mod daemon;
pub mod fuse;
pub mod git;
pub mod overlay;
pub mod path;
pub mod policy;
#[allow(unsafe_code)]
pub mod sys;
pub mod view;
pub mod write;
