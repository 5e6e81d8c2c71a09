//! FUSE passthrough for the read-only opens of a read-only view: the kernel reads the SOURCE
//! file directly, at native speed, after the daemon has checked the open against the policy.
//!
//! The kernel wants every open of one inode backed by the same file, so a backing id is made
//! once per node and shared by the handles open on it; it goes when the last of them is
//! released. Passthrough is only offered where nothing can write (deny mode): a copy-up could
//! otherwise leave an open inode backed by the wrong file.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Weak};

use fuser::BackingId;
use parking_lot::Mutex;

/// The backing ids in use, by node and by open handle.
#[derive(Debug, Default)]
pub struct Backings {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_node: HashMap<u64, Weak<BackingId>>,
    by_handle: HashMap<u64, Arc<BackingId>>,
}

impl Backings {
    /// The backing id for handle `fh` open on `node`: the node's existing one, or a new one
    /// made by `make`.
    pub fn attach(
        &self,
        node: u64,
        fh: u64,
        make: impl FnOnce() -> io::Result<BackingId>,
    ) -> io::Result<Arc<BackingId>> {
        let mut inner = self.inner.lock();
        let backing = match inner.by_node.get(&node).and_then(Weak::upgrade) {
            Some(existing) => existing,
            None => {
                let made = Arc::new(make()?);
                inner.by_node.insert(node, Arc::downgrade(&made));
                made
            }
        };
        inner.by_handle.insert(fh, backing.clone());
        Ok(backing)
    }

    /// Handle `fh` was released; its node's backing id goes with its last handle.
    pub fn release(&self, node: u64, fh: u64) {
        let mut inner = self.inner.lock();
        inner.by_handle.remove(&fh);
        if inner
            .by_node
            .get(&node)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            inner.by_node.remove(&node);
        }
    }
}
