//! Real-mount tests: the binary mounts a scoped view with FUSE and the tests look through it
//! with ordinary system calls, as an agent would. They need root and /dev/fuse and fail loudly
//! without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;

mod git;
mod host_changes;
mod inodes;
mod lifecycle;
mod names;
mod normfs;
mod races;
mod scale;
mod status;
mod view;
mod watch;
mod writes;
