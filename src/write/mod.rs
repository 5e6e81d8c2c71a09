//! Write layers (SPEC §3): where a change the view allows is made.
//!
//! The view decides whether a change may happen — with which errno, under which rule — and
//! then asks its layer to make it, one call per operation, handing over the entries it found
//! and checked. [`Direct`] makes every change in SOURCE itself; the overlay's layer
//! ([`crate::overlay::Upper`]) makes them in `upper/`, copying SOURCE's entries up first, and
//! shapes what the view shows of SOURCE (whiteouts, opaque directories). A read-only view has
//! no layer at all.
//!
//! A new write mode is one new file here beside `direct.rs`, implementing [`WriteLayer`], and
//! one variant of [`WriteMode`] that the daemon maps to it. A layer never decides what the agent
//! may do: no policy, no audit log. It acts on the entries the view hands it through their own
//! descriptors, and on everything else only through descriptors beneath SOURCE's root or its
//! own.

mod direct;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use parking_lot::MutexGuard;

pub use direct::Direct;

use crate::confine::Confinement;
use crate::path::{Name, RelPath};
use crate::policy::WriteMode;
use crate::sys::write::{self as w, SetTime};
use crate::sys::{self, Open, Stat};
use crate::view::{Caller, FsError, FsResult, Located, Scope};

/// Where a new entry (or a new name) goes: the view directory, the entry's view path and its
/// name in that directory.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub dir: &'a RelPath,
    pub path: &'a RelPath,
    pub name: &'a Name,
}

/// What [`WriteLayer::make`] makes; every mode is final (umask applied, setuid and setgid
/// stripped by the view).
#[derive(Debug, Clone, Copy)]
pub enum New<'a> {
    /// A regular file, opened for reading and writing.
    File { mode: u32 },
    /// `mknod`: a FIFO, a socket or an empty regular file; `mode` carries the type bits.
    Node { mode: u32 },
    /// A symlink to this target.
    Symlink { target: &'a [u8] },
    /// A directory.
    Dir { mode: u32 },
}

/// A directory of the layer's own tree, listed: a descriptor of it and its entries (the
/// layer's markers left out), each with its attributes.
#[derive(Debug)]
pub struct OwnDir {
    pub fd: OwnedFd,
    pub entries: Vec<(Name, Stat)>,
}

/// Where a change of attributes is written.
#[derive(Debug)]
pub enum Target {
    /// Through the descriptor the entry was located (and checked) by.
    InPlace,
    /// By name in this directory: a copy the layer just made of the entry.
    ByName(OwnedFd, Name),
}

/// One write mode's way of making changes. See the module documentation.
pub trait WriteLayer: Send + Sync {
    /// The write mode this layer serves.
    fn mode(&self) -> WriteMode;

    /// Adds what the threads serving the view must reach to `rules`; `source` is SOURCE's root.
    fn confine<'a>(&'a self, source: BorrowedFd<'a>, rules: &mut Confinement<'a>);

    /// The root of the layer's own tree, where the entries it holds live apart from SOURCE;
    /// `None` for a layer that changes SOURCE itself (the methods below, up to
    /// [`WriteLayer::can_hold`], then describe no tree: SOURCE shows as it is).
    fn own_root(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Whether the entry at `path` lives in the layer's own tree.
    fn holds(&self, _path: &RelPath) -> bool {
        false
    }

    /// Whether SOURCE's `path` is hidden by the layer: deleted, or beneath a directory of the
    /// layer that shadows SOURCE's.
    fn hides_lower(&self, _path: &RelPath) -> bool {
        false
    }

    /// What SOURCE held at `path` when the layer first changed it, if the layer recorded it:
    /// a copied-up file keeps showing SOURCE's inode number.
    fn origin(&self, _path: &RelPath) -> Option<crate::overlay::LowerState> {
        None
    }

    /// Whether SOURCE's entries of the directory `dir` show beside the layer's own.
    fn merges_lower(&self, _dir: &RelPath) -> bool {
        true
    }

    /// Whether the layer deleted SOURCE's `path` itself.
    fn deleted(&self, _path: &RelPath) -> bool {
        false
    }

    /// The layer's own directory `dir`, listed; `None` for a layer without a tree of its own.
    fn list_own(&self, _dir: &RelPath) -> FsResult<Option<OwnDir>> {
        Ok(None)
    }

    /// Whether the layer can hold an entry at `path` at all.
    fn can_hold(&self, _path: &RelPath) -> bool {
        true
    }

    /// Whether writes through files the layer opens count against a byte limit
    /// ([`WriteLayer::reserve_bytes`], [`WriteLayer::add_bytes`]).
    fn counts_bytes(&self) -> bool {
        false
    }

    /// Refuses with `ENOSPC` if `bytes` more would pass the layer's byte limit.
    fn reserve_bytes(&self, _bytes: u64) -> FsResult<()> {
        Ok(())
    }

    /// Counts bytes added (or, negative, freed) in files the layer holds.
    fn add_bytes(&self, _delta: i64) {}

    /// Held across a change of names, for as long as the caller keeps the guard; `None` when
    /// the layer needs no lock.
    fn lock_names(&self) -> Option<MutexGuard<'_, ()>> {
        None
    }

    /// Makes the new entry `new` at `at`, owned by `caller`; a new regular file comes back
    /// open. Callers hold [`WriteLayer::lock_names`].
    fn make(
        &self,
        scope: &Scope,
        at: At<'_>,
        new: New<'_>,
        caller: Caller,
    ) -> FsResult<Option<File>>;

    /// Gives the visible non-directory `src` (at view path `from`) the new name `at`. Callers
    /// hold [`WriteLayer::lock_names`].
    fn link(&self, scope: &Scope, src: (&RelPath, &Located), at: At<'_>) -> FsResult<()>;

    /// Removes the entry `located` at `at` (an empty directory, or anything else). Callers
    /// hold [`WriteLayer::lock_names`].
    fn remove(&self, scope: &Scope, at: At<'_>, located: &Located) -> FsResult<()>;

    /// Renames `from` (found as the first `Located`) to `to` (found as the second, if anything
    /// is there), with `RENAME_EXCHANGE` or `RENAME_NOREPLACE` in `flags`. Callers hold
    /// [`WriteLayer::lock_names`].
    fn rename(
        &self,
        scope: &Scope,
        from: (At<'_>, &Located),
        to: (At<'_>, Option<&Located>),
        flags: u32,
    ) -> FsResult<()>;

    /// Opens the regular file `located` at `path` for reading and writing. Callers hold
    /// [`WriteLayer::lock_names`].
    fn open_for_write(&self, scope: &Scope, path: &RelPath, located: &Located) -> FsResult<File>;

    /// Where attributes of the entry `located` at `path` are changed. Callers hold
    /// [`WriteLayer::lock_names`].
    fn change_target(&self, scope: &Scope, path: &RelPath, located: &Located) -> FsResult<Target>;

    /// Makes the name of the file at `path`, written through a handle, durable.
    fn sync_entry(&self, _path: &RelPath) -> FsResult<()> {
        Ok(())
    }

    /// Makes the entries of the view directory `path` durable where the layer keeps them.
    fn sync_dir(&self, scope: &Scope, path: &RelPath) -> FsResult<()>;
}

/// The failure of a syscall on an entry that was found: its errno as it is.
pub(crate) fn io(err: io::Error) -> FsError {
    FsError::Io(err)
}

/// The last component of `path`; the root has none (`EPERM`).
pub(crate) fn last_name(path: &RelPath) -> FsResult<Name> {
    path.file_name()
        .and_then(|n| Name::new(n).ok())
        .ok_or(FsError::NotPermitted)
}

/// Makes `new` as `name` in the directory `dir` and gives it to `caller`; a new regular file
/// comes back open. The one way both layers make an entry in place.
pub(crate) fn make_in(
    dir: BorrowedFd<'_>,
    name: &Name,
    new: New<'_>,
    caller: Caller,
) -> FsResult<Option<File>> {
    let file = match new {
        New::File { mode } => {
            let fd = w::create_file(dir, name, mode).map_err(io)?;
            // The daemon's own umask took bits away that the caller's left.
            w::chmod_fd(fd.as_fd(), mode & 0o7777).map_err(io)?;
            Some(File::from(fd))
        }
        New::Node { mode } => {
            w::mknod(dir, name, mode).map_err(io)?;
            exact_mode(dir, name, mode)?;
            None
        }
        New::Symlink { target } => {
            w::symlink(target, dir, name).map_err(io)?;
            None
        }
        New::Dir { mode } => {
            w::mkdir(dir, name, mode).map_err(io)?;
            exact_mode(dir, name, mode)?;
            None
        }
    };
    let (gid, setgid) = group_in(dir, caller)?;
    if let (New::Dir { mode }, true) = (new, setgid) {
        exact_mode(dir, name, mode | libc::S_ISGID)?;
    }
    w::chown_at(dir, name, caller.uid, gid).map_err(io)?;
    Ok(file)
}

/// The group of a new entry made by `caller` in the directory `dir`, and whether a new
/// directory there takes the setgid bit: in a setgid directory, the directory's group and yes
/// (as the file system would have done), else the caller's group and no.
pub(crate) fn group_in(dir: BorrowedFd<'_>, caller: Caller) -> FsResult<(u32, bool)> {
    let parent = sys::fstat(dir)?;
    Ok(if parent.perm & libc::S_ISGID != 0 {
        (parent.gid, true)
    } else {
        (caller.gid, false)
    })
}

/// Gives the entry just made as `name` in `dir` the permission bits of `mode`, which the
/// daemon's umask may have narrowed; through a descriptor of the entry itself (never a
/// symlink put in its place).
fn exact_mode(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> FsResult<()> {
    let fd = sys::resolve(dir, &RelPath::root().join(name), Open::Path).map_err(io)?;
    if sys::fstat(fd.as_fd())?.kind == sys::FileType::Symlink {
        return Err(FsError::Io(io::Error::from_raw_os_error(libc::EIO)));
    }
    w::chmod_fd(fd.as_fd(), mode & 0o7777).map_err(io)
}

impl Target {
    /// Opens the regular file `located` (at `path`, in the layer whose root is `root`) for
    /// writing: through its own descriptor in place, else the copy by name.
    pub fn open_file(
        &self,
        root: BorrowedFd<'_>,
        path: &RelPath,
        located: &Located,
    ) -> FsResult<File> {
        match self {
            Target::InPlace => {
                sys::reopen_regular(root, path, located.fd.as_fd(), &located.stat, true)
            }
            Target::ByName(dir, name) => {
                sys::open_regular(dir.as_fd(), &RelPath::root().join(name), true)
            }
        }
        .map_err(FsError::resolving)
    }

    /// Opens the entry (a regular file or a directory, of kind `dir`) for its extended
    /// attributes: `in_place` opens the located entry itself.
    pub fn open_for_xattr(
        &self,
        dir: bool,
        in_place: impl FnOnce() -> FsResult<Option<OwnedFd>>,
    ) -> FsResult<OwnedFd> {
        match self {
            Target::InPlace => in_place()?.ok_or(FsError::NotPermitted),
            Target::ByName(parent, name) => {
                let rel = RelPath::root().join(name);
                if dir {
                    sys::resolve(parent.as_fd(), &rel, Open::Dir)
                } else {
                    sys::open_regular(parent.as_fd(), &rel, false).map(OwnedFd::from)
                }
                .map_err(FsError::resolving)
            }
        }
    }

    /// `chmod` of the entry whose located descriptor is `fd`.
    pub fn chmod(&self, fd: BorrowedFd<'_>, mode: u32) -> FsResult<()> {
        match self {
            Target::ByName(dir, name) => w::chmod_at(dir.as_fd(), name, mode),
            Target::InPlace => w::chmod_fd(fd, mode),
        }
        .map_err(io)
    }

    /// `chown` (`u32::MAX`: unchanged) of the entry whose located descriptor is `fd`.
    pub fn chown(&self, fd: BorrowedFd<'_>, uid: u32, gid: u32) -> FsResult<()> {
        match self {
            Target::ByName(dir, name) => w::chown_at(dir.as_fd(), name, uid, gid),
            Target::InPlace => w::chown_fd(fd, uid, gid),
        }
        .map_err(io)
    }

    /// `utimensat` of the entry whose located descriptor is `fd`.
    pub fn set_times(&self, fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> FsResult<()> {
        match self {
            Target::ByName(dir, name) => w::set_times_at(dir.as_fd(), name, atime, mtime),
            Target::InPlace => w::set_times_fd(fd, atime, mtime),
        }
        .map_err(io)
    }
}
