//! Real-mount tests of the overlay and direct write modes (SPEC §3 and §4): the binary mounts
//! a scoped view with FUSE and the tests write through it with ordinary system calls, then
//! look at the view, OVERLAY and SOURCE. They need root and /dev/fuse and fail loudly without
//! them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../view/harness.rs"]
mod harness;

mod agent_own;
mod crash;
mod direct;
mod git;
mod matrix;
mod model;
mod overlay;
mod rules;
mod support;
