//! The file-system logic: which entries of SOURCE the view shows, and serving them.
//!
//! [`View`] holds the inode table and open handles and answers each request with a
//! [`FsResult`]; [`Scope`] decides visibility through descriptors rooted at SOURCE. Every
//! operation that takes a node resolves its path afresh and judges it again, so the view follows
//! changes underneath and never serves what has become hidden. Nothing here knows about fuser.

mod error;
mod inodes;
mod scope;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

pub use error::{FsError, FsResult};
pub use inodes::ROOT;
pub use scope::{Found, HiddenReason, Judged, Scope, Verdict};

use crate::path::{Name, RelPath};
use crate::policy::{HardlinkMode, Matcher};
use crate::sys::{self, FileType, FsStat, Open, Stat};
use inodes::Inodes;

/// An entry as the kernel is given it: the node id and its (sanitised) attributes.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub ino: u64,
    pub attr: Stat,
}

/// One listed directory entry.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub name: Name,
    pub attr: Stat,
}

/// A snapshot of a directory's visible entries, taken at `opendir`.
#[derive(Debug)]
pub struct DirSnapshot {
    /// The directory's own node and its parent, for `.` and `..`.
    pub ino: u64,
    pub parent: u64,
    pub items: Vec<DirItem>,
}

/// The scoped view of one SOURCE.
pub struct View {
    scope: Scope,
    inodes: RwLock<Inodes>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    next_fh: AtomicU64,
}

/// Open flags that ask for write access of some kind.
const WRITE_FLAGS: i32 =
    libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT;

impl View {
    /// A view of `source` under the compiled policy.
    pub fn new(source: &Path, matcher: Arc<Matcher>) -> std::io::Result<View> {
        Ok(View {
            scope: Scope::open(source, matcher)?,
            inodes: RwLock::new(Inodes::new()),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        })
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn path(&self, ino: u64) -> FsResult<RelPath> {
        self.inodes.read().path(ino).ok_or(FsError::NotFound)
    }

    /// What the kernel sees of `st` as node `ino`: a synthetic inode number, directory sizes and
    /// link counts that say nothing of hidden entries.
    fn sanitise(&self, ino: u64, mut st: Stat) -> Stat {
        st.ino = ino;
        match st.kind {
            FileType::Dir => {
                st.nlink = 1;
                st.size = 4096;
                st.blocks = 8;
            }
            _ if self.scope.matcher().hardlinks() == HardlinkMode::Keep => st.nlink = 1,
            _ => {}
        }
        st
    }

    /// Resolves node `ino` and judges it again; hidden or gone is `NotFound`.
    fn node(&self, ino: u64) -> FsResult<(RelPath, std::os::fd::OwnedFd, Stat)> {
        let path = self.path(ino)?;
        let (fd, st, visible) = self.scope.find(&path).map_err(FsError::resolving)?;
        if !visible {
            return Err(FsError::NotFound);
        }
        Ok((path, fd, st))
    }

    /// `lookup`: the child `name` of `parent`, if it exists and is visible.
    pub fn lookup(&self, parent: u64, name: &Name) -> FsResult<Entry> {
        let dir_path = self.path(parent)?;
        let dir =
            sys::resolve(self.scope.root(), &dir_path, Open::Path).map_err(FsError::resolving)?;
        let found = self
            .scope
            .find_child(dir.as_fd(), &dir_path, name)
            .map_err(FsError::resolving)?
            .ok_or(FsError::NotFound)?;
        if !found.visible {
            return Err(FsError::NotFound);
        }
        let st = found.stat;
        let ino = self.inodes.write().lookup(parent, name);
        Ok(Entry {
            ino,
            attr: self.sanitise(ino, st),
        })
    }

    /// `forget`: the kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.write().forget(ino, n);
    }

    /// `getattr`.
    pub fn getattr(&self, ino: u64) -> FsResult<Stat> {
        let (_, _, st) = self.node(ino)?;
        Ok(self.sanitise(ino, st))
    }

    /// `readlink`: the target as stored (only links the policy shows get this far).
    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (_, fd, st) = self.node(ino)?;
        if st.kind != FileType::Symlink {
            return Err(FsError::Invalid);
        }
        Ok(sys::readlink(fd.as_fd())?)
    }

    /// `open` of a regular file for reading. Write access is refused: the view is read-only.
    pub fn open(&self, ino: u64, flags: i32) -> FsResult<u64> {
        if flags & WRITE_FLAGS != 0 {
            return Err(FsError::ReadOnly);
        }
        let (path, _, st) = self.node(ino)?;
        if st.kind != FileType::File {
            return Err(FsError::Access);
        }
        let file = sys::open_regular(self.scope.root(), &path).map_err(FsError::resolving)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(fh, Arc::new(file));
        Ok(fh)
    }

    /// `read` from an open file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let file = self
            .files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match file.read_at(rest, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// `release` of an open file.
    pub fn release(&self, fh: u64) {
        self.files.lock().remove(&fh);
    }

    /// `opendir`: snapshots the visible entries.
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let (path, _, st) = self.node(ino)?;
        if st.kind != FileType::Dir {
            return Err(FsError::NotDir);
        }
        let items = self
            .scope
            .list(&path)
            .map_err(FsError::resolving)?
            .into_iter()
            .map(|(name, attr)| DirItem { name, attr })
            .collect();
        let parent = self.inodes.read().parent(ino).unwrap_or(ROOT);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .insert(fh, Arc::new(DirSnapshot { ino, parent, items }));
        Ok(fh)
    }

    /// The snapshot of an open directory.
    pub fn dir(&self, fh: u64) -> FsResult<Arc<DirSnapshot>> {
        self.dirs.lock().get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// For `readdirplus`: the entry of a listed item, counted as a kernel lookup.
    pub fn lookup_item(&self, parent: u64, item: &DirItem) -> Entry {
        let ino = self.inodes.write().lookup(parent, &item.name);
        Entry {
            ino,
            attr: self.sanitise(ino, item.attr),
        }
    }

    /// `releasedir`.
    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }

    /// `statfs`: SOURCE's space, with synthetic file counts (they would count hidden files).
    pub fn statfs(&self) -> FsResult<FsStat> {
        Ok(sys::statvfs(self.scope.root())?)
    }

    /// Opens node `ino` for attribute access, if it is of a kind that can carry `user.*`
    /// attributes (regular files and directories).
    fn xattr_fd(&self, ino: u64) -> FsResult<Option<std::os::fd::OwnedFd>> {
        let (path, _, st) = self.node(ino)?;
        Ok(match st.kind {
            FileType::File => Some(
                sys::open_regular(self.scope.root(), &path)
                    .map_err(FsError::resolving)?
                    .into(),
            ),
            FileType::Dir => Some(
                sys::resolve(self.scope.root(), &path, Open::Dir).map_err(FsError::resolving)?,
            ),
            _ => None,
        })
    }

    /// `getxattr`: only `user.*` attributes exist in the view.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let fd = self.xattr_fd(ino)?;
        if !name.starts_with(b"user.") {
            return Err(FsError::NoData);
        }
        let Some(fd) = fd else {
            return Err(FsError::NoData);
        };
        Ok(sys::getxattr(fd.as_fd(), name)?)
    }

    /// `listxattr`: the `user.*` names, NUL-terminated.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let Some(fd) = self.xattr_fd(ino)? else {
            return Ok(Vec::new());
        };
        let all = sys::listxattr(fd.as_fd())?;
        let mut out = Vec::new();
        for name in all.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
            out.extend_from_slice(name);
            out.push(0);
        }
        Ok(out)
    }

    /// `access`: visible nodes may be read; writing is refused in a read-only view.
    pub fn access(&self, ino: u64, mask: i32) -> FsResult<()> {
        self.node(ino)?;
        if mask & libc::W_OK != 0 {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// Any operation that would change the view: refused, the view is read-only. Names and
    /// nodes are checked first so that a malformed request is still told apart.
    pub fn write_denied(&self) -> FsError {
        FsError::ReadOnly
    }
}
