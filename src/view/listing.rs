//! Directory listings: `opendir` takes a snapshot of the visible entries, read on the first
//! `readdir`; `readdir` and `readdirplus` hand it out from an offset. Offsets are dense and
//! synthetic, numbered here only: 1 is `.`, 2 is `..`, 3 and on the visible entries, so none
//! says anything of SOURCE's own entries (hidden ones included).

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::numbers::Known;
use super::{Caller, Entry, FsError, FsResult, Layer, Located, Opened, ROOT, View};
use crate::path::{Name, RelPath};
use crate::sys::{FileType, Stat};

/// One listed directory entry.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub name: Name,
    pub attr: Stat,
    /// The layer it comes from.
    pub layer: Layer,
    /// Its inode generation, for an entry of SOURCE in a view that shows SOURCE's numbers.
    pub generation: Option<u64>,
}

/// A snapshot of a directory's visible entries, taken at `opendir`.
#[derive(Debug)]
pub(super) struct DirSnapshot {
    /// The directory's own node and its parent, for `.` and `..`.
    ino: u64,
    parent: u64,
    path: RelPath,
    /// The entries and the inode table's generation when they were read: on the first
    /// `readdir`, since a directory the kernel still has cached is never read at all.
    items: OnceLock<(Vec<DirItem>, u64)>,
}

/// One entry of a `readdir` listing, as the kernel is given it.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// Where the entry after this one starts.
    pub offset: u64,
    /// The node of `.` and `..`; none for the directory's own entries, which `readdir` hands
    /// out without a lookup (`readdirplus` or `lookup` gives their nodes).
    pub node: Option<u64>,
    pub kind: FileType,
    pub name: &'a OsStr,
}

/// One entry of a `readdirplus` listing, as the kernel is given it: a directory's own entries
/// count as a lookup of the node, given back if the kernel does not take the entry.
#[derive(Debug, Clone, Copy)]
pub struct ListedPlus<'a> {
    /// Where the entry after this one starts.
    pub offset: u64,
    pub name: &'a OsStr,
    pub entry: Entry,
}

/// A place in a listing: `.` or `..`, or an entry of the directory.
enum Slot<'a> {
    Dot { ino: u64, name: &'static str },
    Item(&'a DirItem),
}

impl View {
    /// `opendir`: snapshots the visible entries.
    pub fn opendir(&self, ino: u64, caller: Caller) -> FsResult<Opened> {
        if self.skips_opens() {
            return Err(FsError::NoOpen);
        }
        let (dir, located) = self.snapshot(ino)?;
        self.read_of(&caller, &dir.path);
        let keep_cache = self.keep_cache(ino, &located.stat);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().insert(fh, Arc::new(dir));
        Ok(Opened {
            fh,
            keep_cache,
            cache_listing: self.listings_last(ino),
            file: None,
        })
    }

    /// A snapshot, not yet read, of directory node `ino`, with what its path holds now.
    pub(super) fn snapshot(&self, ino: u64) -> FsResult<(DirSnapshot, Located)> {
        let (path, located) = self.node(ino)?;
        if located.stat.kind != FileType::Dir {
            return Err(FsError::NotDir);
        }
        let parent = self.inodes.read().parent(ino).unwrap_or(ROOT);
        let dir = DirSnapshot {
            ino,
            parent,
            path,
            items: OnceLock::new(),
        };
        Ok((dir, located))
    }

    /// The entries of an open directory, read on the first call.
    fn dir_items<'a>(&self, dir: &'a DirSnapshot) -> FsResult<&'a [DirItem]> {
        if let Some((items, _)) = dir.items.get() {
            return Ok(items);
        }
        let generation = self.inodes.read().generation();
        let located = self.locate(&dir.path)?;
        let items = self.list(&dir.path, &located)?;
        Ok(&dir.items.get_or_init(|| (items, generation)).0)
    }

    /// The listing of directory node `ino` read without an open handle: a new one when the
    /// kernel starts at `offset` 0, else the one it is part way through.
    fn listing(&self, ino: u64, offset: u64) -> FsResult<Arc<DirSnapshot>> {
        if offset > 0
            && let Some(dir) = self.listings.lock().get(&ino)
        {
            return Ok(dir.clone());
        }
        let dir = Arc::new(self.snapshot(ino)?.0);
        self.listings.lock().insert(ino, dir.clone());
        Ok(dir)
    }

    /// The kernel has read all of the listing of `ino` it started.
    fn listing_done(&self, ino: u64) {
        self.listings.lock().remove(&ino);
    }

    /// The snapshot of an open directory.
    fn dir(&self, fh: u64) -> FsResult<Arc<DirSnapshot>> {
        self.dirs.lock().get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// For `readdirplus`: the entry of a listed item, counted as a kernel lookup; `None` when
    /// the item is gone. A snapshot older than a removal or rename made through the view is
    /// looked at again (the kernel holds the directory against changes while it reads it), so
    /// the kernel is never handed an entry for a name that no longer exists, or the node of
    /// another file.
    fn lookup_item(&self, dir: &DirSnapshot, item: &DirItem) -> Option<Entry> {
        let (mut attr, mut layer) = (item.attr, item.layer);
        let listed = dir.items.get().map_or(0, |(_, generation)| *generation);
        let stale = self.inodes.read().generation() != listed;
        // A directory handed to the kernel is watched, as at lookup.
        let watch = self.watches.is_some() && attr.kind == FileType::Dir;
        let mut found = None;
        if stale || watch {
            let path = self.path(dir.ino).ok()?.join(&item.name);
            let now = self.locate(&path).ok()?;
            attr = now.stat;
            layer = now.layer;
            found = Some((path, now));
        }
        let path = match &found {
            Some((path, _)) => path.clone(),
            None => self.path(dir.ino).ok()?.join(&item.name),
        };
        let known = match &found {
            Some((_, located)) => Known::Fd(std::os::fd::AsFd::as_fd(&located.fd)),
            None => Known::Generation(item.generation),
        };
        let ino = self.node_for(dir.ino, (&item.name, &path), (layer, &attr), known);
        if let Some((path, mut located)) = found
            && located.stat.kind == FileType::Dir
        {
            self.watch_dir(ino, &path, &mut located);
            attr = located.stat;
        }
        Some(self.entry(Some(dir.ino), ino, attr))
    }

    /// `releasedir`.
    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }

    /// The snapshot `readdir` reads: the open directory `fh`'s, or, where the kernel lists
    /// directories without opening them, node `ino`'s own.
    fn listing_of(&self, ino: u64, fh: u64, offset: u64) -> FsResult<Arc<DirSnapshot>> {
        if self.unopened(fh) {
            self.listing(ino, offset)
        } else {
            self.dir(fh)
        }
    }

    /// Walks the listing of `ino` (open as `fh`) from `offset`, calling `each` with every place
    /// and its offset until `each` says the kernel's buffer is full.
    fn walk(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut each: impl FnMut(&DirSnapshot, u64, Slot<'_>) -> bool,
    ) -> FsResult<()> {
        let dir = self.listing_of(ino, fh, offset)?;
        let dots = [(dir.ino, "."), (dir.parent, "..")];
        for (i, (ino, name)) in dots.iter().enumerate().skip(offset as usize) {
            let dot = Slot::Dot { ino: *ino, name };
            if each(&dir, i as u64 + 1, dot) {
                return Ok(());
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        let items = self.dir_items(&dir)?;
        if skip >= items.len() && self.unopened(fh) {
            self.listing_done(ino);
        }
        for (i, item) in items.iter().enumerate().skip(skip) {
            if each(&dir, i as u64 + 3, Slot::Item(item)) {
                break;
            }
        }
        Ok(())
    }

    /// `readdir` of `ino` (open as `fh`) from `offset`: each entry goes to `add`, which says
    /// whether the kernel's buffer is full.
    pub fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(Listed<'_>) -> bool,
    ) -> FsResult<()> {
        self.walk(ino, fh, offset, |_, offset, slot| match slot {
            Slot::Dot { ino, name } => add(Listed {
                offset,
                node: Some(ino),
                kind: FileType::Dir,
                name: OsStr::new(name),
            }),
            Slot::Item(item) => add(Listed {
                offset,
                node: None,
                kind: item.attr.kind,
                name: item.name.as_os_str(),
            }),
        })
    }

    /// `readdirplus` of `ino` (open as `fh`) from `offset`: each entry goes to `add`, which
    /// says whether the kernel's buffer is full. An entry removed since the snapshot is left
    /// out; the node of one the kernel did not take is given back.
    pub fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(ListedPlus<'_>) -> bool,
    ) -> FsResult<()> {
        self.walk(ino, fh, offset, |dir, offset, slot| match slot {
            Slot::Dot { ino, name } => {
                // The kernel takes no reference on "." and "..", so no lookup is counted.
                let Ok(attr) = self.stat_of(ino, None) else {
                    return false;
                };
                let entry = Entry {
                    ino,
                    attr,
                    ttl: self.cache.ttl(),
                    generation: 0,
                };
                add(ListedPlus {
                    offset,
                    name: OsStr::new(name),
                    entry,
                })
            }
            Slot::Item(item) => {
                let Some(entry) = self.lookup_item(dir, item) else {
                    return false;
                };
                let name = item.name.as_os_str();
                let full = add(ListedPlus {
                    offset,
                    name,
                    entry,
                });
                if full {
                    // Not sent: give back the reference just taken.
                    self.forget(entry.ino, 1);
                }
                full
            }
        })
    }
}
