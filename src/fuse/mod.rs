//! The kernel side: everything that speaks the FUSE protocol (through fuser), and nothing else.
//!
//! - [`adapter`]: [`ScopeFs`], the `fuser::Filesystem` over the [`View`](crate::view::View):
//!   each handler decodes the request, makes one call into the view and replies.
//! - [`session`]: mounting the view, the session that serves it, the drain of the requests in
//!   hand, and the unmount.
//! - [`notify`]: the changes the view's watches see under SOURCE, turned into kernel
//!   invalidations.
//! - [`passthrough`]: the backing files the kernel reads directly in a read-only view.
//!
//! Nothing here decides what the view shows, what may change or what the kernel may cache.

pub mod adapter;
pub mod notify;
pub mod passthrough;
pub mod session;

pub use adapter::ScopeFs;
pub use notify::{follow_changes, forget_everything};
pub use session::{MountConfig, MountError, Serving, mount, unmount};
