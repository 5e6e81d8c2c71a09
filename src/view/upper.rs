//! The overlay's upper layer as the view uses it: which view paths live in `upper/`, which
//! lower paths are deleted (whiteouts) or shadowed (opaque directories), and the usage counted
//! against `[limits]`.
//!
//! The index is built from `upper/` at mount and kept in step by the write path, which is the
//! only writer while the mount holds the overlay's lock, so resolving a path never needs a walk
//! of `upper/`. Namespace changes (copy-up, create, rename, remove) are serialised by
//! [`Upper::ns`]; reads only take the index's read lock.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::overlay::{Overlay, UpperIndex, WHITEOUT_PREFIX};
use crate::path::{NAME_MAX, Name, RelPath};
use crate::sys::{self, Open};
use crate::view::{FsError, FsResult};

/// The limits of `[limits]`; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpperLimits {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

/// The upper layer of a mounted overlay.
pub struct Upper {
    overlay: Overlay,
    index: RwLock<UpperIndex>,
    /// Held across every namespace change of the upper layer.
    pub ns: Mutex<()>,
    limits: UpperLimits,
    bytes: AtomicU64,
    files: AtomicU64,
    seq: AtomicU64,
}

/// Adds `delta` to a usage counter, never below zero.
fn add_signed(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(delta.unsigned_abs()))
        });
    }
}

/// Whether `path` or one of its ancestors is in `set`.
fn self_or_ancestor_in(set: &BTreeSet<RelPath>, path: &RelPath) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut p = path.clone();
    loop {
        if set.contains(&p) {
            return true;
        }
        if !p.pop() {
            return false;
        }
    }
}

/// Every member of `set` at or beneath `path`, found by one range query (the set is
/// ordered, so the paths beneath one directory lie together).
fn at_or_beneath(set: &BTreeSet<RelPath>, path: &RelPath) -> Vec<RelPath> {
    let own = set.get(path).cloned();
    own.into_iter()
        .chain(set.range(path.beneath_bounds()).cloned())
        .collect()
}

/// Moves every member of `set` at or beneath `from` to the same place beneath `to`.
fn move_prefix(set: &mut BTreeSet<RelPath>, from: &RelPath, to: &RelPath) {
    for old in at_or_beneath(set, from) {
        set.remove(&old);
        if let Some(rest) = old.as_bytes().get(from.as_bytes().len()..) {
            let mut bytes = to.as_bytes().to_vec();
            bytes.extend_from_slice(rest);
            if let Ok(new) = RelPath::parse(&bytes) {
                set.insert(new);
            }
        }
    }
}

/// Removes every member of `set` at or beneath `path`.
fn remove_prefix(set: &mut BTreeSet<RelPath>, path: &RelPath) {
    for old in at_or_beneath(set, path) {
        set.remove(&old);
    }
}

/// Whether `name` is reserved for the overlay's own markers (`.wh.*`).
pub fn is_reserved(name: &Name) -> bool {
    name.as_bytes().starts_with(WHITEOUT_PREFIX)
}

/// The whiteout marker's name for `name`; a name too long to carry the prefix cannot be
/// deleted from the overlay (`ENAMETOOLONG`), nor can `.wh..opq`, whose marker would be the
/// opaque marker (`EINVAL`, like the other reserved names).
pub fn whiteout_name(name: &Name) -> FsResult<Name> {
    crate::overlay::whiteout_name(name).ok_or(
        if WHITEOUT_PREFIX.len() + name.as_bytes().len() > NAME_MAX {
            FsError::NameTooLong
        } else {
            FsError::Invalid
        },
    )
}

impl Upper {
    /// Indexes `upper/` of a freshly opened (and locked) overlay.
    pub fn new(overlay: Overlay, limits: UpperLimits) -> io::Result<Upper> {
        let index = overlay.scan()?;
        Ok(Upper {
            bytes: AtomicU64::new(index.bytes),
            files: AtomicU64::new(index.files),
            overlay,
            index: RwLock::new(index),
            ns: Mutex::new(()),
            limits,
            seq: AtomicU64::new(0),
        })
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The descriptor of `upper/`.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.overlay.upper()
    }

    /// Opens `path` in `upper/`.
    pub fn resolve(&self, path: &RelPath, how: Open) -> io::Result<OwnedFd> {
        sys::resolve(self.overlay.upper(), path, how)
    }

    /// Whether `path` lives in `upper/`.
    pub fn contains(&self, path: &RelPath) -> bool {
        path.is_root() || self.index.read().entries.contains(path)
    }

    /// Whether SOURCE's `path` is hidden by the overlay: it or an ancestor was deleted, or an
    /// ancestor is an opaque directory.
    pub fn hides_lower(&self, path: &RelPath) -> bool {
        let index = self.index.read();
        if self_or_ancestor_in(&index.whiteouts, path) {
            return true;
        }
        path.parent()
            .is_some_and(|parent| self_or_ancestor_in(&index.opaque, &parent))
    }

    /// Whether the upper directory `path` shadows its lower counterpart entirely.
    pub fn is_opaque(&self, path: &RelPath) -> bool {
        self.index.read().opaque.contains(path)
    }

    /// Whether `path` itself carries a whiteout.
    pub fn whited_out(&self, path: &RelPath) -> bool {
        self.index.read().whiteouts.contains(path)
    }

    /// A fresh name for a scratch entry in `work/`.
    pub fn temp_name(&self) -> FsResult<Name> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        Name::new(format!("tmp.{}.{n}", std::process::id()).as_bytes())
            .map_err(|_| FsError::Invalid)
    }

    /// Refuses with `ENOSPC` if `files` more entries would pass `overlay_files`.
    pub fn reserve_files(&self, files: u64) -> FsResult<()> {
        match self.limits.files {
            Some(limit) if self.files.load(Ordering::Relaxed) + files > limit => {
                Err(FsError::NoSpace)
            }
            _ => Ok(()),
        }
    }

    /// Refuses with `ENOSPC` if `bytes` more would pass `overlay_bytes`.
    pub fn reserve_bytes(&self, bytes: u64) -> FsResult<()> {
        match self.limits.bytes {
            Some(limit) if self.bytes.load(Ordering::Relaxed).saturating_add(bytes) > limit => {
                Err(FsError::NoSpace)
            }
            _ => Ok(()),
        }
    }

    /// Counts bytes added (or, negative, freed) in `upper/`.
    pub fn add_bytes(&self, delta: i64) {
        add_signed(&self.bytes, delta);
    }

    fn add_files(&self, delta: i64) {
        add_signed(&self.files, delta);
    }

    /// `path` now lives in `upper/` (its whiteout, if any, is gone).
    pub fn note_created(&self, path: &RelPath, bytes: u64) {
        let mut index = self.index.write();
        if index.entries.insert(path.clone()) {
            self.add_files(1);
        }
        if index.whiteouts.remove(path) {
            self.add_files(-1);
        }
        drop(index);
        self.add_bytes(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// `path` is marked opaque.
    pub fn note_opaque(&self, path: &RelPath) {
        self.index.write().opaque.insert(path.clone());
    }

    /// `path` (and everything beneath it) left `upper/`; with `whiteout`, a whiteout now hides
    /// the lower entry.
    pub fn note_removed(&self, path: &RelPath, freed_bytes: u64, whiteout: bool) {
        let mut index = self.index.write();
        let before = index.entries.len() + index.whiteouts.len();
        remove_prefix(&mut index.entries, path);
        remove_prefix(&mut index.whiteouts, path);
        remove_prefix(&mut index.opaque, path);
        if whiteout {
            index.whiteouts.insert(path.clone());
        }
        let after = index.entries.len() + index.whiteouts.len();
        drop(index);
        self.add_files(after as i64 - before as i64);
        self.add_bytes(-i64::try_from(freed_bytes).unwrap_or(i64::MAX));
    }

    /// `from` was renamed to `to` inside `upper/` (replacing whatever `to` was); with
    /// `whiteout`, a whiteout now hides the lower `from`.
    pub fn note_renamed(&self, from: &RelPath, to: &RelPath, whiteout: bool) {
        let mut index = self.index.write();
        let before = index.entries.len() + index.whiteouts.len();
        remove_prefix(&mut index.entries, to);
        remove_prefix(&mut index.whiteouts, to);
        remove_prefix(&mut index.opaque, to);
        move_prefix(&mut index.entries, from, to);
        move_prefix(&mut index.whiteouts, from, to);
        move_prefix(&mut index.opaque, from, to);
        if whiteout {
            index.whiteouts.insert(from.clone());
        }
        let after = index.entries.len() + index.whiteouts.len();
        drop(index);
        self.add_files(after as i64 - before as i64);
    }

    /// `a` and `b` (both in `upper/`) swapped places.
    pub fn note_exchanged(&self, a: &RelPath, b: &RelPath) {
        let mut guard = self.index.write();
        let index = &mut *guard;
        let Ok(tmp) = RelPath::parse(b"\x01scopefs-exchange") else {
            return;
        };
        for set in [&mut index.entries, &mut index.opaque] {
            move_prefix(set, a, &tmp);
            move_prefix(set, b, a);
            move_prefix(set, &tmp, b);
        }
    }
}
