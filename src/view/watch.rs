//! inotify watches on the SOURCE directories the kernel holds, so that a change made
//! underneath the view (by the host, not through the view) can be told to the kernel at once
//! and the kernel may otherwise keep what it cached for long.
//!
//! A watch on a directory reports its own changes and those of its entries: creations,
//! removals and renames of names in it, writes to and attribute changes of its files. What
//! a watch covers may be cached for long; what none covers keeps the short cache time. So a
//! directory that cannot be watched (a file system whose changes inotify does not see, no
//! watches left) costs speed, never freshness.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches as InotifyWatches};
use parking_lot::Mutex;

use crate::sys;

/// File systems whose every change is made by this kernel, so inotify sees it: local disk
/// file systems, tmpfs and overlayfs. Network and FUSE file systems are left out.
const LOCAL_FILE_SYSTEMS: &[i64] = &[
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0xCA45_1A4E, // bcachefs
    0x794C_7630, // overlayfs
];

/// What is reported: every change to a directory's names and to its entries' data and
/// attributes, and the end of the watch.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

/// The watched directories, by node and by watch.
pub struct Watches {
    state: Mutex<State>,
}

struct State {
    inotify: InotifyWatches,
    /// Per watch, its descriptor and the nodes it covers (one directory can have several
    /// nodes when it was renamed underneath while the kernel held it).
    by_wd: HashMap<i32, (WatchDescriptor, Vec<u64>)>,
    by_node: HashMap<u64, i32>,
    /// Whether adding a watch has failed for want of watches (reported once).
    exhausted: bool,
    /// Whether events can no longer be read, so no watch may be relied on.
    abandoned: bool,
}

/// Whether [`Watches::watch`] added a watch, found one, or could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    Added,
    Already,
    No,
}

impl Watches {
    /// A new inotify instance: the watches, and the instance whose events the caller reads.
    pub fn new() -> std::io::Result<(Watches, Inotify)> {
        let inotify = Inotify::init()?;
        let watches = Watches {
            state: Mutex::new(State {
                inotify: inotify.watches(),
                by_wd: HashMap::new(),
                by_node: HashMap::new(),
                exhausted: false,
                abandoned: false,
            }),
        };
        Ok((watches, inotify))
    }

    /// Whether changes on the file system of `fd` are all seen by inotify.
    pub fn local(fd: BorrowedFd<'_>) -> bool {
        sys::fs_magic(fd).is_ok_and(|magic| LOCAL_FILE_SYSTEMS.contains(&magic))
    }

    /// Watches directory `fd` as node `ino`.
    pub fn watch(&self, ino: u64, fd: BorrowedFd<'_>) -> Watched {
        let mut state = self.state.lock();
        if state.by_node.contains_key(&ino) {
            return Watched::Already;
        }
        if state.abandoned || !Self::local(fd) {
            return Watched::No;
        }
        // The descriptor's own magic link: the directory it holds, with no name resolved.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let wd = match state.inotify.add(&path, mask()) {
            Ok(wd) => wd,
            Err(e) => {
                if !state.exhausted {
                    state.exhausted = true;
                    tracing::warn!(
                        error = %e,
                        "cannot watch more directories; changes under them show after the short cache time (raise fs.inotify.max_user_watches)"
                    );
                }
                return Watched::No;
            }
        };
        let id = wd.get_watch_descriptor_id();
        state.by_node.insert(ino, id);
        state
            .by_wd
            .entry(id)
            .or_insert((wd, Vec::new()))
            .1
            .push(ino);
        Watched::Added
    }

    /// Whether node `ino` is watched.
    pub fn is_watched(&self, ino: u64) -> bool {
        self.state.lock().by_node.contains_key(&ino)
    }

    /// The kernel forgot node `ino`: its watch goes when no other node needs it.
    pub fn unwatch(&self, ino: u64) {
        let mut state = self.state.lock();
        let Some(id) = state.by_node.remove(&ino) else {
            return;
        };
        let Some((_, nodes)) = state.by_wd.get_mut(&id) else {
            return;
        };
        nodes.retain(|&n| n != ino);
        if nodes.is_empty()
            && let Some((wd, _)) = state.by_wd.remove(&id)
        {
            // Fails only when the kernel already dropped the watch.
            let _ = state.inotify.remove(wd);
        }
    }

    /// The nodes watch `id` covers.
    pub fn nodes(&self, id: i32) -> Vec<u64> {
        self.state
            .lock()
            .by_wd
            .get(&id)
            .map(|(_, nodes)| nodes.clone())
            .unwrap_or_default()
    }

    /// The kernel ended watch `id` (its directory was removed): what it covered is no longer
    /// watched.
    pub fn ended(&self, id: i32) {
        let mut state = self.state.lock();
        if let Some((_, nodes)) = state.by_wd.remove(&id) {
            for node in nodes {
                state.by_node.remove(&node);
            }
        }
    }

    /// Gives up every watch: nothing counts as watched, and no new watch is added.
    pub fn abandon(&self) {
        let mut state = self.state.lock();
        state.by_wd.clear();
        state.by_node.clear();
        state.exhausted = true;
        state.abandoned = true;
    }
}
