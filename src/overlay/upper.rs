//! The overlay's upper layer: how `upper/` reads (which names are entries, whiteouts and opaque
//! markers), and [`Upper`], the index of all three that a mount keeps in step with `upper/`,
//! with the usage counted against `[limits]`.
//!
//! The index is built from `upper/` at mount and kept in step by the write path, which is the
//! only writer while the mount holds the overlay's lock, so resolving a path never needs a walk
//! of `upper/`. Namespace changes (copy-up, create, rename, remove) are serialised by
//! [`Upper::ns`]; reads only take the index's read lock.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::{OPAQUE_MARKER, Overlay, WHITEOUT_PREFIX};
use crate::path::{NAME_MAX, Name, RelPath};
use crate::sys::{self, FileType, Open};
use crate::view::{FsError, FsResult};

/// What the file system needs to know about upper/ when it mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpperIndex {
    /// Every path in upper/ (files, directories, symlinks, others), not the `.wh.` markers.
    pub entries: BTreeSet<RelPath>,
    /// View paths deleted by a whiteout.
    pub whiteouts: BTreeSet<RelPath>,
    /// Directories holding the opaque marker (the root included when it holds one).
    pub opaque: BTreeSet<RelPath>,
    /// Sum of the sizes of regular files.
    pub bytes: u64,
    /// Number of entries, whiteouts and opaque markers included.
    pub files: u64,
}

/// What one name in upper/ stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperName {
    /// An ordinary entry.
    Entry(Name),
    /// `.wh.NAME`: NAME is deleted.
    Whiteout(Name),
    /// `.wh..wh..opq`.
    Opaque,
    /// A `.wh.` name that names nothing valid (e.g. `.wh.` alone); ignored.
    Invalid,
}

impl UpperName {
    /// Classifies a name read from an upper directory.
    pub fn classify(name: &Name) -> UpperName {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_MARKER {
            return UpperName::Opaque;
        }
        match bytes.strip_prefix(WHITEOUT_PREFIX) {
            Some(rest) => match Name::new(rest) {
                Ok(target) => UpperName::Whiteout(target),
                Err(_) => UpperName::Invalid,
            },
            None => UpperName::Entry(name.clone()),
        }
    }
}

/// The `.wh.NAME` marker for `name`, or `None` when there is none: the result would be longer
/// than a name may be, or `name` is `.wh..opq`, whose marker would be the opaque marker.
pub fn whiteout_name(name: &Name) -> Option<Name> {
    let mut bytes = WHITEOUT_PREFIX.to_vec();
    bytes.extend_from_slice(name.as_bytes());
    if bytes == OPAQUE_MARKER {
        return None;
    }
    Name::new(&bytes).ok()
}

impl Overlay {
    /// Walks upper/ (through descriptors, never following symlinks) and returns what the file
    /// system needs at mount: every upper path (files, dirs, symlinks; not the .wh.* markers),
    /// the whiteouts (view paths deleted), the opaque directories, and the usage (bytes = sum of
    /// regular file sizes, files = number of entries incl. whiteouts).
    pub fn scan(&self) -> io::Result<UpperIndex> {
        let mut index = UpperIndex::default();
        let mut stack = vec![RelPath::root()];
        while let Some(dir_path) = stack.pop() {
            let dir = sys::resolve(self.upper(), &dir_path, Open::Dir)?;
            for entry in sys::read_dir(dir.as_fd())? {
                let Ok(name) = Name::new(&entry.name) else {
                    continue;
                };
                match UpperName::classify(&name) {
                    UpperName::Opaque => {
                        index.opaque.insert(dir_path.clone());
                        index.files += 1;
                    }
                    UpperName::Whiteout(target) => {
                        index.whiteouts.insert(dir_path.join(&target));
                        index.files += 1;
                    }
                    UpperName::Invalid => {
                        tracing::warn!(dir = %dir_path, name = %name, "ignoring an invalid whiteout name in the overlay");
                    }
                    UpperName::Entry(name) => {
                        let st = match sys::stat_at(dir.as_fd(), &name) {
                            Ok(st) => st,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let path = dir_path.join(&name);
                        index.files += 1;
                        match st.kind {
                            FileType::File => index.bytes = index.bytes.saturating_add(st.size),
                            FileType::Dir => stack.push(path.clone()),
                            _ => {}
                        }
                        index.entries.insert(path);
                    }
                }
            }
        }
        Ok(index)
    }
}

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
    pub(super) ns: Mutex<()>,
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
pub fn whiteout_for(name: &Name) -> FsResult<Name> {
    whiteout_name(name).ok_or(
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::super::UPPER;
    use super::super::tests::{fixture, p};
    use super::*;

    #[test]
    fn whiteouts_read_back_as_the_name_they_were_made_for() {
        let name = |b: &[u8]| Name::new(b).unwrap_or_else(|e| panic!("{e}"));
        for target in [&b"a"[..], b".wh.", b".wh.x", b".wh..wh..opq", &[b'n'; 251]] {
            let marker = whiteout_name(&name(target));
            assert_eq!(
                marker.map(|m| UpperName::classify(&m)),
                Some(UpperName::Whiteout(name(target)))
            );
        }
        // `.wh..opq` would be whited out by the opaque marker, `n`*252 by a name past NAME_MAX.
        assert_eq!(whiteout_name(&name(b".wh..opq")), None);
        assert_eq!(whiteout_name(&name(&[b'n'; 252])), None);
    }

    #[test]
    fn scan_finds_entries_whiteouts_and_opaque_dirs() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let up = f.overlay.join(UPPER);
        std::fs::create_dir_all(up.join("a/b")).unwrap();
        std::fs::write(up.join("a/b/f"), b"12345").unwrap();
        std::fs::write(up.join("top"), b"xy").unwrap();
        std::fs::write(up.join("a/.wh.gone"), b"").unwrap();
        std::fs::write(up.join(".wh.old"), b"").unwrap();
        std::fs::write(up.join("a/b/.wh..wh..opq"), b"").unwrap();
        std::fs::write(up.join(".wh."), b"").unwrap();
        symlink("/etc", up.join("link")).unwrap();
        // A symlink to a directory is listed, never entered.
        std::fs::create_dir(f.source.join("outside")).unwrap();
        std::fs::write(f.source.join("outside/secret"), b"zzzzzzzz").unwrap();
        symlink(f.source.join("outside"), up.join("a/escape")).unwrap();
        let index = ov.scan().unwrap();
        let set = |v: &[&str]| v.iter().map(|s| p(s)).collect::<BTreeSet<_>>();
        assert_eq!(
            index.entries,
            set(&["a", "a/b", "a/b/f", "top", "link", "a/escape"])
        );
        assert_eq!(index.whiteouts, set(&["a/gone", "old"]));
        assert_eq!(index.opaque, set(&["a/b"]));
        assert_eq!(index.bytes, 7);
        assert_eq!(index.files, 9);
    }
}
