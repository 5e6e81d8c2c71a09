//! FUSE passthrough for the read-only opens of a read-only view: the kernel reads the SOURCE
//! file directly, at native speed, after the daemon has checked the open against the policy.
//!
//! The kernel backs every open of one inode by the same file, so a backing id is made once per
//! node, from the file the first open checked, and shared by the handles open on it; it goes
//! when the last of them is released. A later open of the node that checked another file (the
//! name was given to another file since) must not be served from the first one: it gets no
//! backing, and the node is given up for a new one ([`Attached::Other`]). Passthrough is only
//! offered where nothing can write (deny mode): a copy-up could otherwise leave an open inode
//! backed by the wrong file.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Weak};

use fuser::BackingId;
use parking_lot::Mutex;

/// A file of SOURCE, as (device, inode).
pub type FileId = (u64, u64);

/// The backing ids in use, by node and by open handle.
#[derive(Debug, Default)]
pub struct Backings {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_node: HashMap<u64, (FileId, Weak<BackingId>)>,
    by_handle: HashMap<u64, Arc<BackingId>>,
}

/// What [`Backings::attach`] found.
#[derive(Debug)]
pub enum Attached {
    /// The backing id of the handle: the node's, made from the file the handle opened.
    Backing(Arc<BackingId>),
    /// The node is backed by another file than the one this handle opened.
    Other,
}

impl Backings {
    /// The backing id for handle `fh` open on `node`, for the file `file` it opened: the
    /// node's existing one when it is of that file, or a new one made by `make` when the node
    /// has none.
    pub fn attach(
        &self,
        node: u64,
        fh: u64,
        file: FileId,
        make: impl FnOnce() -> io::Result<BackingId>,
    ) -> io::Result<Attached> {
        let mut inner = self.inner.lock();
        let existing = inner
            .by_node
            .get(&node)
            .and_then(|(of, weak)| Some((*of, weak.upgrade()?)));
        let backing = match existing {
            Some((of, _)) if of != file => return Ok(Attached::Other),
            Some((_, backing)) => backing,
            None => {
                let made = Arc::new(make()?);
                inner.by_node.insert(node, (file, Arc::downgrade(&made)));
                made
            }
        };
        inner.by_handle.insert(fh, backing.clone());
        Ok(Attached::Backing(backing))
    }

    /// Handle `fh` was released; its node's backing id goes with its last handle.
    pub fn release(&self, node: u64, fh: u64) {
        let mut inner = self.inner.lock();
        inner.by_handle.remove(&fh);
        if inner
            .by_node
            .get(&node)
            .is_some_and(|(_, weak)| weak.strong_count() == 0)
        {
            inner.by_node.remove(&node);
        }
    }
}
