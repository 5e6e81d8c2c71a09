//! The file-system logic: which entries of SOURCE the view shows, and serving them.
//!
//! [`Scope`] decides visibility for one path at a time through file descriptors rooted at
//! SOURCE. The inode table and request methods build on it. Nothing here knows about fuser.

mod scope;

pub use scope::{HiddenReason, Scope, Verdict};
