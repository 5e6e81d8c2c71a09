//! The write path of the view (SPEC §3): every change is checked against the policy, then made
//! in the writable layer — the overlay's `upper/` (copying entries up from SOURCE first) or, in
//! direct mode, SOURCE itself. A read-only view refuses them all with `EROFS`.
//!
//! Order of the checks, so that answers depend only on the operation and the policy: a
//! reserved `.wh.*` name is `EINVAL`; an existing entry that is hidden is `ENOENT`; a new name
//! that is hidden or not allowed is `EACCES` whether or not something hidden is there; a path
//! the policy does not make writable is `EACCES`. Copy-up builds the copy in `work/` and renames
//! it into place, so a crash leaves the old state or the new one.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::{Entry, FsError, FsResult, Handle, Layer, Located, View, Writes};
use crate::overlay::{self, LowerState, Upper};
use crate::path::{Name, RelPath};
use crate::policy::{Decision, Kind, Writability};
use crate::sys::write::{self as w, SetTime};
use crate::sys::{self, FileType, Open, Stat};
use crate::view::scope::kind_of;

/// The setuid and setgid bits, stripped from everything the view writes.
const SETID: u32 = libc::S_ISUID | libc::S_ISGID;

/// The name of the opaque-directory marker.
const OPAQUE: &[u8] = crate::overlay::OPAQUE_MARKER;

/// Who asks for a change: new entries belong to this uid and gid.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// The changes of one `setattr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

fn last_name(path: &RelPath) -> FsResult<Name> {
    path.file_name()
        .and_then(|n| Name::new(n).ok())
        .ok_or(FsError::NotPermitted)
}

fn io(err: std::io::Error) -> FsError {
    FsError::Io(err)
}

impl View {
    /// Refuses every change in a read-only view.
    fn ensure_writes(&self, path: &RelPath) -> FsResult<()> {
        match self.writes {
            Writes::Deny => Err(self.refuse(path, FsError::ReadOnly, "writes.mode=deny")),
            Writes::Direct | Writes::Overlay(_) => Ok(()),
        }
    }

    /// Whether the policy lets `path` (of `kind`) change; the refusal names the rule. In
    /// overlay mode nothing at or beneath a SOURCE name `.wh.*` can change: its copy in
    /// `upper/` would read as a whiteout.
    fn check_policy_writable(&self, path: &RelPath, kind: Kind) -> FsResult<()> {
        if self.upper().is_some()
            && path
                .components()
                .any(|c| c.starts_with(crate::overlay::WHITEOUT_PREFIX))
        {
            return Err(self.refuse(
                path,
                FsError::Access,
                "names .wh.* are reserved for the overlay",
            ));
        }
        match self.scope.matcher().writable(path, kind) {
            Writability::Writable(_) => Ok(()),
            Writability::NotWritable => {
                Err(self.refuse(path, FsError::Access, "writes.writable: no pattern matches"))
            }
            Writability::Protected(rule) => Err(self.refuse(path, FsError::Access, rule)),
        }
    }

    /// Whether the existing, visible entry at `path` may be changed.
    pub(super) fn check_writable(&self, path: &RelPath, st: &Stat) -> FsResult<()> {
        self.ensure_writes(path)?;
        self.check_policy_writable(path, kind_of(st))
    }

    /// The existing, visible, writable entry of node `ino`.
    fn writable_node(&self, ino: u64) -> FsResult<(RelPath, Located)> {
        self.ensure_writes(&self.path(ino)?)?;
        let (path, located) = self.node(ino)?;
        self.check_writable(&path, &located.stat)?;
        Ok((path, located))
    }

    /// The existing, visible, writable entry `name` of `parent`.
    fn writable_child(&self, parent: u64, name: &Name) -> FsResult<(RelPath, RelPath, Located)> {
        let dir = self.path(parent)?;
        self.ensure_writes(&dir.join(name))?;
        let (path, located) = self.locate_child(&dir, name)?;
        self.check_writable(&path, &located.stat)?;
        Ok((dir, path, located))
    }

    /// Checks a name an entry of `kind` is to be made at (or renamed or linked onto): not
    /// reserved, visible, writable, and not hiding anything of SOURCE.
    fn check_new_name(&self, path: &RelPath, kind: Kind) -> FsResult<()> {
        let matcher = self.scope.matcher();
        if !matcher.is_visible(path, kind) {
            let rule = match matcher.decide(path, kind) {
                Decision::Hidden(rule) => rule.to_string(),
                _ => "view.allow: no pattern matches".to_string(),
            };
            return Err(self.refuse(path, FsError::Access, rule));
        }
        self.check_policy_writable(path, kind)?;
        if self.lower_hidden_at(path) {
            return Err(self.refuse(
                path,
                FsError::Access,
                "SOURCE has an entry here that the view hides",
            ));
        }
        Ok(())
    }

    /// Whether SOURCE has something at `path` that the view hides (and the overlay has not
    /// deleted): writing a name over it would destroy what the agent cannot see. That includes
    /// an entry of another name that SOURCE's file system matches to this one.
    fn lower_hidden_at(&self, path: &RelPath) -> bool {
        if self
            .upper()
            .is_some_and(|u| u.contains(path) || u.hides_lower(path))
        {
            return false;
        }
        let (Some(dir), Ok(name)) = (path.parent(), last_name(path)) else {
            return false;
        };
        match self.scope.find(path) {
            Ok((fd, st, true)) => !self
                .scope
                .own_name(&dir, &name, (&st, fd.as_fd()))
                .unwrap_or(false),
            Ok((_, _, false)) => true,
            Err(e) => e.raw_os_error() != Some(libc::ENOENT),
        }
    }

    /// A symlink keeps its target when it moves, so it may only move where the view would
    /// still show it (under `symlinks = "contain"`, a relative target can leave SOURCE from a
    /// shallower directory).
    fn check_symlink_moves(&self, entry: &Located, to: &RelPath) -> FsResult<()> {
        if entry.stat.kind != FileType::Symlink {
            return Ok(());
        }
        let target = sys::readlink(entry.fd.as_fd()).map_err(io)?;
        if self.scope.symlink_allowed(to, &target) {
            Ok(())
        } else {
            Err(self.refuse(
                to,
                FsError::Access,
                "symlinks: the target would not be in the view from here",
            ))
        }
    }

    /// A new entry `name` in `parent`: the directory's path and the entry's.
    fn new_entry(&self, parent: u64, name: &Name, kind: Kind) -> FsResult<(RelPath, RelPath)> {
        let dir = self.path(parent)?;
        self.ensure_writes(&dir.join(name))?;
        if overlay::is_reserved(name) {
            return Err(self.refuse(
                &dir.join(name),
                FsError::Invalid,
                "names .wh.* are reserved for the overlay",
            ));
        }
        if self.locate(&dir)?.stat.kind != FileType::Dir {
            return Err(FsError::NotDir);
        }
        let path = dir.join(name);
        self.check_new_name(&path, kind)?;
        if self.locate_opt(&path)?.is_some() {
            return Err(FsError::Exists);
        }
        Ok((dir, path))
    }

    /// What SOURCE has at `path` now, for the overlay's provenance.
    fn lower_state(&self, path: &RelPath) -> LowerState {
        let st = sys::resolve(self.scope.root(), path, Open::Path)
            .and_then(|fd| sys::fstat(fd.as_fd()))
            .ok();
        LowerState::of(st.as_ref())
    }

    /// Records, as the provenance of `path`, the SOURCE entry `st` it is copied up from (the
    /// one checked, not whatever the path holds a moment later).
    fn record_copied(&self, upper: &Upper, path: &RelPath, st: &Stat) -> FsResult<()> {
        upper
            .overlay()
            .record_origin(path, LowerState::of(Some(st)))
            .map_err(io)
    }

    fn record(&self, upper: &Upper, path: &RelPath) -> FsResult<()> {
        upper
            .overlay()
            .record_origin(path, self.lower_state(path))
            .map_err(io)
    }

    /// The directory where entries of `dir` are made: its copy in `upper/` (copied up if
    /// needed) in overlay mode, SOURCE's own in direct mode. Overlay callers hold `ns`.
    fn writable_dir(&self, dir: &RelPath) -> FsResult<OwnedFd> {
        match &self.writes {
            Writes::Overlay(upper) => self.copy_up_dir(upper, dir),
            Writes::Direct => {
                sys::resolve(self.scope.root(), dir, Open::Path).map_err(FsError::resolving)
            }
            Writes::Deny => Err(FsError::ReadOnly),
        }
    }

    /// Copies the directory `path` (and its ancestors) up into `upper/`, empty, with its
    /// mode, owner and times. Returns an `O_PATH` descriptor of the copy.
    fn copy_up_dir(&self, upper: &Upper, path: &RelPath) -> FsResult<OwnedFd> {
        if upper.contains(path) {
            return upper.resolve(path, Open::Path).map_err(FsError::resolving);
        }
        let parent = path.parent().unwrap_or_default();
        let parent_fd = self.copy_up_dir(upper, &parent)?;
        let name = last_name(path)?;
        if upper.hides_lower(path) {
            return Err(FsError::NotFound);
        }
        let (_, st, visible) = self.scope.find(path).map_err(FsError::resolving)?;
        if !visible || st.kind != FileType::Dir {
            return Err(FsError::NotFound);
        }
        upper.reserve_files(1)?;
        self.record_copied(upper, path, &st)?;
        let work = upper.overlay().work();
        let tmp = upper.temp_name()?;
        w::mkdir(work, &tmp, 0o700).map_err(io)?;
        let placed = (|| {
            w::chmod_at(work, &tmp, st.perm & !SETID)?;
            w::chown_at(work, &tmp, st.uid, st.gid)?;
            w::set_times_at(work, &tmp, SetTime::At(st.atime), SetTime::At(st.mtime))?;
            w::rename(work, &tmp, parent_fd.as_fd(), &name, w::RENAME_NOREPLACE)
        })();
        if let Err(e) = placed {
            let _ = w::unlink(work, &tmp, true);
            return Err(io(e));
        }
        upper.note_created(path, 0);
        upper.resolve(path, Open::Path).map_err(FsError::resolving)
    }

    /// Makes sure the entry at `path` lives in `upper/`, copying it up from SOURCE if needed.
    /// Returns the upper directory holding it and its name. Callers hold `ns`.
    fn copy_up(
        &self,
        upper: &Upper,
        path: &RelPath,
        located: &Located,
    ) -> FsResult<(OwnedFd, Name)> {
        let name = last_name(path)?;
        let parent = path.parent().unwrap_or_default();
        let dir_fd = self.copy_up_dir(upper, &parent)?;
        // `located` was found before `ns` was taken: another request may have copied it up since.
        if located.layer == Layer::Upper || upper.contains(path) {
            return Ok((dir_fd, name));
        }
        // Or deleted it: copying it up now would bring it back.
        if upper.hides_lower(path) {
            return Err(FsError::NotFound);
        }
        let st = located.stat;
        match st.kind {
            FileType::Dir => {
                self.copy_up_dir(upper, path)?;
                return Ok((dir_fd, name));
            }
            FileType::CharDevice | FileType::BlockDevice => return Err(FsError::NotPermitted),
            FileType::File | FileType::Symlink | FileType::Fifo | FileType::Socket => {}
        }
        upper.reserve_files(1)?;
        if st.kind == FileType::File {
            upper.reserve_bytes(st.size)?;
        }
        self.record_copied(upper, path, &st)?;
        let work = upper.overlay().work();
        let tmp = upper.temp_name()?;
        let made = self.copy_into_work(work, &tmp, path, located);
        let placed = made.and_then(|()| {
            w::chown_at(work, &tmp, st.uid, st.gid).map_err(io)?;
            w::set_times_at(work, &tmp, SetTime::At(st.atime), SetTime::At(st.mtime))
                .map_err(io)?;
            w::rename(work, &tmp, dir_fd.as_fd(), &name, w::RENAME_NOREPLACE).map_err(io)
        });
        if let Err(e) = placed {
            let _ = w::unlink(work, &tmp, false);
            return Err(e);
        }
        let bytes = if st.kind == FileType::File {
            st.size
        } else {
            0
        };
        upper.note_created(path, bytes);
        Ok((dir_fd, name))
    }

    /// Builds the copy of the lower entry at `path` as `tmp` in `work/`: contents, mode
    /// without setuid/setgid, `user.*` attributes; the data is synced before it is renamed in.
    fn copy_into_work(
        &self,
        work: BorrowedFd<'_>,
        tmp: &Name,
        path: &RelPath,
        located: &Located,
    ) -> FsResult<()> {
        let st = located.stat;
        match st.kind {
            FileType::File => {
                // The file that was checked, through its own descriptor: its name may lead to
                // another file by now (one the view hides).
                let src =
                    sys::reopen_regular(self.scope.root(), path, located.fd.as_fd(), &st, false)
                        .map_err(FsError::resolving)?;
                let dst = File::from(w::create_file(work, tmp, 0o600).map_err(io)?);
                // `std::io::copy` copies between files with `copy_file_range` where it can.
                std::io::copy(&mut &src, &mut &dst).map_err(io)?;
                if let Ok(names) = sys::listxattr(src.as_fd()) {
                    for attr in names.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
                        if let Ok(value) = sys::getxattr(src.as_fd(), attr) {
                            w::setxattr(dst.as_fd(), attr, &value, 0).map_err(io)?;
                        }
                    }
                }
                w::fchmod(dst.as_fd(), st.perm & !SETID).map_err(io)?;
                dst.sync_all().map_err(io)?;
            }
            FileType::Symlink => {
                let target = sys::readlink(located.fd.as_fd()).map_err(io)?;
                w::symlink(&target, work, tmp).map_err(io)?;
            }
            FileType::Fifo | FileType::Socket => {
                let kind = if st.kind == FileType::Fifo {
                    libc::S_IFIFO
                } else {
                    libc::S_IFSOCK
                };
                w::mknod(work, tmp, kind | (st.perm & !SETID)).map_err(io)?;
            }
            FileType::Dir | FileType::CharDevice | FileType::BlockDevice => {
                return Err(FsError::NotPermitted);
            }
        }
        Ok(())
    }

    /// The directory and name of the writable copy of `path`: copied up in overlay mode,
    /// SOURCE's own in direct mode. Overlay callers hold `ns`.
    fn writable_copy(&self, path: &RelPath, located: &Located) -> FsResult<(OwnedFd, Name)> {
        match &self.writes {
            Writes::Overlay(upper) => self.copy_up(upper, path, located),
            Writes::Direct => {
                let name = last_name(path)?;
                let dir = sys::resolve(
                    self.scope.root(),
                    &path.parent().unwrap_or_default(),
                    Open::Path,
                )
                .map_err(FsError::resolving)?;
                Ok((dir, name))
            }
            Writes::Deny => Err(FsError::ReadOnly),
        }
    }

    /// After making `name` (at `path`) in the upper directory `dir`: drops its whiteout and
    /// counts it.
    fn finish_new(&self, dir: BorrowedFd<'_>, name: &Name, path: &RelPath) -> FsResult<()> {
        if let Some(upper) = self.upper() {
            if upper.whited_out(path) {
                let wh = overlay::whiteout_for(name)?;
                w::unlink(dir, &wh, false).map_err(io)?;
            }
            upper.note_created(path, 0);
        }
        Ok(())
    }

    fn new_entry_reply(&self, parent: u64, name: &Name, path: &RelPath) -> FsResult<Entry> {
        self.wrote(path);
        let located = self.locate(path)?;
        let ino =
            self.inodes
                .write()
                .lookup(parent, name, Self::file_key(located.layer, &located.stat));
        Ok(Entry {
            ino,
            attr: self.sanitise(ino, located.stat),
        })
    }

    fn lock_ns(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.upper().map(|u| u.ns.lock())
    }

    /// Makes the new entry `name` of `parent` (at `path` in the directory `dir`) with `make`
    /// in the writable layer, owned by `caller`: what create, mknod and symlink share.
    fn make_entry<T>(
        &self,
        parent: u64,
        name: &Name,
        (dir, path): (&RelPath, &RelPath),
        caller: Caller,
        make: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<T>,
    ) -> FsResult<(Entry, T)> {
        let _ns = self.lock_ns();
        let dir_fd = self.writable_dir(dir)?;
        if let Some(upper) = self.upper() {
            upper.reserve_files(1)?;
            self.record(upper, path)?;
        }
        let made = make(dir_fd.as_fd()).map_err(io)?;
        w::chown_at(dir_fd.as_fd(), name, caller.uid, caller.gid).map_err(io)?;
        self.finish_new(dir_fd.as_fd(), name, path)?;
        Ok((self.new_entry_reply(parent, name, path)?, made))
    }

    /// `create`: a new regular file, opened for reading and writing.
    pub fn create(
        &self,
        parent: u64,
        name: &Name,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> FsResult<(Entry, u64)> {
        let (dir, path) = self.new_entry(parent, name, Kind::NonDir)?;
        let (entry, fd) = self.make_entry(parent, name, (&dir, &path), caller, |dir_fd| {
            w::create_file(dir_fd, name, mode & !umask & 0o7777 & !SETID)
        })?;
        let fh = self.add_handle(Handle {
            file: File::from(fd),
            node: entry.ino,
            upper: self.upper().is_some(),
            path: Some(path),
        });
        Ok((entry, fh))
    }

    /// `mknod`: FIFOs, sockets and empty regular files; device nodes are `EPERM`.
    pub fn mknod(
        &self,
        parent: u64,
        name: &Name,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> FsResult<Entry> {
        let kind = mode & libc::S_IFMT;
        if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
            let path = self.path(parent)?.join(name);
            self.ensure_writes(&path)?;
            return Err(self.refuse(&path, FsError::NotPermitted, "device nodes are never made"));
        }
        let pkind = if kind == libc::S_IFDIR {
            Kind::Dir
        } else {
            Kind::NonDir
        };
        let (dir, path) = self.new_entry(parent, name, pkind)?;
        let made = self.make_entry(parent, name, (&dir, &path), caller, |dir_fd| {
            w::mknod(dir_fd, name, kind | (mode & !umask & 0o7777 & !SETID))
        });
        Ok(made?.0)
    }

    /// `mkdir`. In overlay mode the new directory is built in `work/` and renamed in; where
    /// SOURCE had something at that path (deleted earlier) it is marked opaque.
    pub fn mkdir(
        &self,
        parent: u64,
        name: &Name,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> FsResult<Entry> {
        let (dir, path) = self.new_entry(parent, name, Kind::Dir)?;
        let mode = mode & !umask & 0o7777 & !SETID;
        let _ns = self.lock_ns();
        let dir_fd = self.writable_dir(&dir)?;
        match self.upper() {
            None => {
                w::mkdir(dir_fd.as_fd(), name, mode).map_err(io)?;
                w::chown_at(dir_fd.as_fd(), name, caller.uid, caller.gid).map_err(io)?;
            }
            Some(upper) => {
                upper.reserve_files(1)?;
                let opaque = self.lower_state(&path) != LowerState::Absent;
                self.record(upper, &path)?;
                let work = upper.overlay().work();
                let tmp = upper.temp_name()?;
                w::mkdir(work, &tmp, 0o700).map_err(io)?;
                let built = (|| -> FsResult<()> {
                    if opaque {
                        let inner = sys::open_child_dir(work, &tmp).map_err(io)?;
                        let marker = Name::new(OPAQUE).map_err(|_| FsError::Invalid)?;
                        drop(w::create_file(inner.as_fd(), &marker, 0).map_err(io)?);
                    }
                    w::chmod_at(work, &tmp, mode).map_err(io)?;
                    w::chown_at(work, &tmp, caller.uid, caller.gid).map_err(io)?;
                    // The whiteout, if any, goes after the rename (in finish_new): a crash
                    // in between leaves both, and the new directory wins.
                    w::rename(work, &tmp, dir_fd.as_fd(), name, w::RENAME_NOREPLACE).map_err(io)
                })();
                if let Err(e) = built {
                    let _ = self.remove_upper_dir(work, &tmp);
                    return Err(e);
                }
                if opaque {
                    upper.note_opaque(&path);
                }
            }
        }
        self.finish_new(dir_fd.as_fd(), name, &path)?;
        self.new_entry_reply(parent, name, &path)
    }

    /// `symlink`. Under `symlinks = "contain"` a link the view would not show (absolute,
    /// leaving SOURCE, or onto a hidden path) is refused with `EACCES`.
    pub fn symlink(
        &self,
        parent: u64,
        name: &Name,
        target: &[u8],
        caller: Caller,
    ) -> FsResult<Entry> {
        let (dir, path) = self.new_entry(parent, name, Kind::NonDir)?;
        if !self.scope.symlink_allowed(&path, target) {
            return Err(self.refuse(
                &path,
                FsError::Access,
                "symlinks: the target would not be in the view",
            ));
        }
        let made = self.make_entry(parent, name, (&dir, &path), caller, |dir_fd| {
            w::symlink(target, dir_fd, name)
        });
        Ok(made?.0)
    }

    /// `link`: a new name for a visible non-directory.
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &Name) -> FsResult<Entry> {
        self.ensure_writes(&self.path(new_parent)?.join(new_name))?;
        let (src_path, src) = self.node(ino)?;
        if src.stat.kind == FileType::Dir {
            return Err(FsError::NotPermitted);
        }
        // A new name is a new way to write the same file: only a writable file gets one.
        self.check_writable(&src_path, &src.stat)?;
        let (dir, path) = self.new_entry(new_parent, new_name, Kind::NonDir)?;
        let _ns = self.lock_ns();
        let (src_dir, src_name) = self.writable_copy(&src_path, &src)?;
        let dir_fd = self.writable_dir(&dir)?;
        if let Some(upper) = self.upper() {
            upper.reserve_files(1)?;
            self.record(upper, &path)?;
        }
        if self.upper().is_none() && src.stat.kind == FileType::File {
            // SOURCE's own file: the one checked, through its own descriptor (its name may
            // lead to a file the view hides by now).
            let from = (src_dir.as_fd(), &src_name);
            w::link_open(src.fd.as_fd(), from, dir_fd.as_fd(), new_name)
        } else {
            w::link(src_dir.as_fd(), &src_name, dir_fd.as_fd(), new_name)
        }
        .map_err(io)?;
        if self.upper().is_some()
            && let Ok(copy) = self.locate(&src_path)
        {
            // The source may have just been copied up: its node now stands for that file, and
            // the new name joins it.
            if let Some(key) = Self::file_key(copy.layer, &copy.stat) {
                self.inodes.write().set_file(ino, key);
            }
        }
        self.finish_new(dir_fd.as_fd(), new_name, &path)?;
        self.new_entry_reply(new_parent, new_name, &path)
    }

    /// Removes an upper directory holding nothing but overlay markers.
    fn remove_upper_dir(&self, dir: BorrowedFd<'_>, name: &Name) -> FsResult<()> {
        let inner = sys::open_child_dir(dir, name).map_err(io)?;
        for entry in sys::read_dir(inner.as_fd()).map_err(io)? {
            let Ok(child) = Name::new(&entry.name) else {
                continue;
            };
            if !overlay::is_reserved(&child) {
                return Err(FsError::NotEmpty);
            }
            w::unlink(inner.as_fd(), &child, false).map_err(io)?;
        }
        w::unlink(dir, name, true).map_err(io)
    }

    /// Whether SOURCE has anything at `path` that the overlay lets through.
    fn lower_present(&self, upper: &Upper, path: &RelPath) -> bool {
        !upper.hides_lower(path) && self.lower_state(path) != LowerState::Absent
    }

    /// `unlink` (`dir` false) and `rmdir` (`dir` true).
    pub fn remove(&self, parent: u64, name: &Name, dir: bool) -> FsResult<()> {
        let (dir_path, path, located) = self.writable_child(parent, name)?;
        let is_dir = located.stat.kind == FileType::Dir;
        if dir && !is_dir {
            return Err(FsError::NotDir);
        }
        if !dir && is_dir {
            return Err(FsError::IsDir);
        }
        let _names = self.changing_names();
        let _ns = self.lock_ns();
        // Found before `ns` was taken: another request may have removed or replaced it since.
        let located = self.locate(&path)?;
        if (located.stat.kind == FileType::Dir) != is_dir {
            return Err(FsError::NotFound);
        }
        if dir && !self.list(&path, &located)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        match self.upper() {
            None => {
                let dir_fd = self.writable_dir(&dir_path)?;
                w::unlink(dir_fd.as_fd(), name, dir).map_err(io)?;
            }
            Some(upper) => {
                // Whatever can refuse the removal is checked before anything changes: the
                // whiteout must fit in a name, and in the file limit.
                let lower = self.lower_present(upper, &path);
                let whiteout = if lower {
                    upper.reserve_files(1)?;
                    Some(overlay::whiteout_for(name)?)
                } else {
                    None
                };
                let dir_fd = self.copy_up_dir(upper, &dir_path)?;
                self.record(upper, &path)?;
                let mut freed = 0;
                // Found before `ns` was taken: another request may have copied it up since.
                if located.layer == Layer::Upper || upper.contains(&path) {
                    if dir {
                        self.remove_upper_dir(dir_fd.as_fd(), name)?;
                    } else {
                        if located.layer == Layer::Upper
                            && located.stat.kind == FileType::File
                            && located.stat.nlink <= 1
                        {
                            freed = located.stat.size;
                        }
                        w::unlink(dir_fd.as_fd(), name, false).map_err(io)?;
                    }
                }
                if let Some(wh) = &whiteout {
                    drop(w::create_file(dir_fd.as_fd(), wh, 0).map_err(io)?);
                }
                upper.note_removed(&path, freed, lower);
            }
        }
        self.inodes.write().detach(parent, name);
        self.wrote(&path);
        Ok(())
    }

    /// `rename`, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`; other flags are `EINVAL`. In
    /// overlay mode a directory that exists in SOURCE cannot move (`EXDEV`, tools copy
    /// instead), as with overlayfs.
    pub fn rename(
        &self,
        parent: u64,
        name: &Name,
        new_parent: u64,
        new_name: &Name,
        flags: u32,
    ) -> FsResult<()> {
        self.ensure_writes(&self.path(parent)?.join(name))?;
        if flags & !(w::RENAME_NOREPLACE | w::RENAME_EXCHANGE) != 0
            || flags == w::RENAME_NOREPLACE | w::RENAME_EXCHANGE
        {
            return Err(FsError::Invalid);
        }
        if overlay::is_reserved(name) || overlay::is_reserved(new_name) {
            return Err(FsError::Invalid);
        }
        let exchange = flags & w::RENAME_EXCHANGE != 0;
        let (from_dir, from, src) = self.writable_child(parent, name)?;
        let to_dir = self.path(new_parent)?;
        let to = to_dir.join(new_name);
        if self.locate(&to_dir)?.stat.kind != FileType::Dir {
            return Err(FsError::NotDir);
        }
        self.check_new_name(&to, kind_of(&src.stat))?;
        self.check_symlink_moves(&src, &to)?;
        let dst = self.locate_opt(&to)?;
        if let Some(d) = &dst {
            self.check_writable(&to, &d.stat)?;
            if exchange {
                self.check_new_name(&from, kind_of(&d.stat))?;
                self.check_symlink_moves(d, &from)?;
            }
        }
        match (&dst, exchange) {
            (None, true) => return Err(FsError::NotFound),
            (Some(_), false) if flags & w::RENAME_NOREPLACE != 0 => return Err(FsError::Exists),
            _ => {}
        }
        if from == to {
            return Ok(());
        }
        if to.starts_with(&from) || (exchange && from.starts_with(&to)) {
            return Err(FsError::Invalid);
        }
        let src_dir = src.stat.kind == FileType::Dir;
        let _names = self.changing_names();
        let _ns = self.lock_ns();
        // Found before `ns` was taken: another request may have moved or removed it since.
        let src = self.locate(&from)?;
        if (src.stat.kind == FileType::Dir) != src_dir {
            return Err(FsError::NotFound);
        }
        let dst = self.locate_opt(&to)?;
        match (&dst, exchange) {
            (None, true) => return Err(FsError::NotFound),
            (Some(_), false) if flags & w::RENAME_NOREPLACE != 0 => return Err(FsError::Exists),
            _ => {}
        }
        if let (Some(d), false) = (&dst, exchange) {
            let dst_dir = d.stat.kind == FileType::Dir;
            if src_dir && !dst_dir {
                return Err(FsError::NotDir);
            }
            if !src_dir && dst_dir {
                return Err(FsError::IsDir);
            }
            if dst_dir && !self.list(&to, d)?.is_empty() {
                return Err(FsError::NotEmpty);
            }
        }
        match self.upper() {
            None => {
                let from_fd = self.writable_dir(&from_dir)?;
                let to_fd = self.writable_dir(&to_dir)?;
                w::rename(from_fd.as_fd(), name, to_fd.as_fd(), new_name, flags).map_err(io)?;
            }
            Some(upper) => self.rename_upper(
                upper,
                (&from, name, &src),
                (&to, new_name, dst.as_ref()),
                exchange,
            )?,
        }
        self.wrote(&from);
        self.wrote(&to);
        let mut inodes = self.inodes.write();
        if exchange {
            inodes.exchange(parent, name, new_parent, new_name);
        } else {
            inodes.rename(parent, name, new_parent, new_name);
        }
        Ok(())
    }

    fn rename_upper(
        &self,
        upper: &Upper,
        (from, name, src): (&RelPath, &Name, &Located),
        (to, new_name, dst): (&RelPath, &Name, Option<&Located>),
        exchange: bool,
    ) -> FsResult<()> {
        let src_dir = src.stat.kind == FileType::Dir;
        let from_lower = self.lower_present(upper, from);
        let to_lower = self.lower_present(upper, to);
        if src_dir && from_lower {
            return Err(FsError::CrossDevice);
        }
        if exchange && dst.is_some_and(|d| d.stat.kind == FileType::Dir) && to_lower {
            return Err(FsError::CrossDevice);
        }
        // Whatever can refuse the rename is checked before anything changes: the whiteout
        // left at the old name must fit in a name, and in the file limit.
        let whiteout = if from_lower && !exchange {
            upper.reserve_files(1)?;
            Some(overlay::whiteout_for(name)?)
        } else {
            None
        };
        self.record(upper, from)?;
        self.record(upper, to)?;
        let (from_fd, _) = self.copy_up(upper, from, src)?;
        let to_fd = self.copy_up_dir(upper, &to.parent().unwrap_or_default())?;
        if exchange {
            if let Some(d) = dst {
                self.copy_up(upper, to, d)?;
            }
            w::rename(
                from_fd.as_fd(),
                name,
                to_fd.as_fd(),
                new_name,
                w::RENAME_EXCHANGE,
            )
            .map_err(io)?;
            upper.note_exchanged(from, to);
            return Ok(());
        }
        if let Some(d) = dst {
            if d.layer == Layer::Upper && d.stat.kind == FileType::Dir {
                // Empty in the view; only markers can be left in it.
                self.remove_upper_dir(to_fd.as_fd(), new_name)?;
            }
        }
        w::rename(from_fd.as_fd(), name, to_fd.as_fd(), new_name, 0).map_err(io)?;
        if src_dir && to_lower && !upper.is_opaque(from) {
            let moved = sys::open_child_dir(to_fd.as_fd(), new_name).map_err(io)?;
            let marker = Name::new(OPAQUE).map_err(|_| FsError::Invalid)?;
            drop(w::create_file(moved.as_fd(), &marker, 0).map_err(io)?);
        }
        if upper.whited_out(to) {
            let wh = overlay::whiteout_for(new_name)?;
            w::unlink(to_fd.as_fd(), &wh, false).map_err(io)?;
        }
        if let Some(wh) = &whiteout {
            drop(w::create_file(from_fd.as_fd(), wh, 0).map_err(io)?);
        }
        upper.note_renamed(from, to, from_lower);
        if src_dir && to_lower {
            upper.note_opaque(to);
        }
        Ok(())
    }

    /// Opens node `ino` for writing: copied up first in overlay mode.
    pub(super) fn open_for_write(&self, ino: u64) -> FsResult<Handle> {
        // Located under `ns`: the name found is opened by path below, so no other request may
        // rename it away in between (a file with several names may be found under another).
        let _ns = self.lock_ns();
        let (path, located) = self.writable_node(ino)?;
        match located.stat.kind {
            FileType::File => {}
            FileType::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Access),
        }
        let file = match self.upper() {
            // The copy in upper/, which only the view changes (and `ns` is held).
            Some(upper) => {
                self.copy_up(upper, &path, &located)?;
                sys::open_regular(upper.root(), &path, true)
            }
            // SOURCE's own file: the one checked, through its own descriptor.
            None => {
                let (fd, st) = (located.fd.as_fd(), &located.stat);
                sys::reopen_regular(self.scope.root(), &path, fd, st, true)
            }
        }
        .map_err(FsError::resolving)?;
        Ok(Handle {
            file,
            node: ino,
            upper: self.upper().is_some(),
            path: Some(path),
        })
    }

    /// `write` through an open handle; in overlay mode growth counts against
    /// `overlay_bytes`.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let handle = self.handle(fh)?;
        let path = handle.path.clone().unwrap_or_default();
        self.ensure_writes(&path)?;
        let growth = self.growth(&handle, offset.saturating_add(data.len() as u64))?;
        handle.file.write_all_at(data, offset).map_err(io)?;
        self.wrote(&path);
        if let (Some(upper), true) = (self.upper(), handle.upper) {
            upper.add_bytes(i64::try_from(growth).unwrap_or(i64::MAX));
        }
        u32::try_from(data.len()).map_err(|_| FsError::Invalid)
    }

    /// How much a file grows if it ends at `end`, refused past the overlay's byte limit.
    fn growth(&self, handle: &Handle, end: u64) -> FsResult<u64> {
        let (Some(upper), true) = (self.upper(), handle.upper) else {
            return Ok(0);
        };
        let size = sys::fstat(handle.file.as_fd())?.size;
        let growth = end.saturating_sub(size);
        upper.reserve_bytes(growth).map_err(|e| {
            self.refuse(
                &handle.path.clone().unwrap_or_default(),
                e,
                "limits.overlay_bytes",
            )
        })?;
        Ok(growth)
    }

    /// `fallocate` through an open handle.
    pub fn fallocate(&self, fh: u64, mode: i32, offset: u64, len: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        self.ensure_writes(&handle.path.clone().unwrap_or_default())?;
        let growth = if mode & libc::FALLOC_FL_KEEP_SIZE == 0 {
            self.growth(&handle, offset.saturating_add(len))?
        } else {
            0
        };
        w::fallocate(handle.file.as_fd(), mode, offset, len).map_err(io)?;
        if let (Some(upper), true) = (self.upper(), handle.upper) {
            upper.add_bytes(i64::try_from(growth).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// `fsync`: the file's data and, in overlay mode, the directory entry of its copy.
    pub fn fsync(&self, fh: u64, data_only: bool) -> FsResult<()> {
        let handle = self.handle(fh)?;
        w::fsync(handle.file.as_fd(), data_only).map_err(io)?;
        if let (Some(upper), Some(path)) = (self.upper(), &handle.path) {
            if let Ok(dir) = upper.resolve(&path.parent().unwrap_or_default(), Open::Dir) {
                w::fsync(dir.as_fd(), false).map_err(io)?;
            }
        }
        Ok(())
    }

    /// `fsyncdir`: the directory's entries where the view writes them: its copy in `upper/` in
    /// overlay mode (none yet: nothing of it was changed), SOURCE's directory in direct mode,
    /// nothing in deny mode.
    pub fn fsync_dir(&self, ino: u64) -> FsResult<()> {
        let (path, _) = self.node(ino)?;
        let dir = match &self.writes {
            Writes::Deny => return Ok(()),
            Writes::Direct => sys::resolve(self.scope.root(), &path, Open::Dir),
            Writes::Overlay(upper) if !upper.contains(&path) => return Ok(()),
            Writes::Overlay(upper) => upper.resolve(&path, Open::Dir),
        };
        let dir = dir.map_err(FsError::resolving)?;
        w::fsync(dir.as_fd(), false).map_err(io)
    }

    /// `setattr`: mode (setuid/setgid stripped), owner, size and times.
    pub fn setattr(
        &self,
        ino: u64,
        set: SetAttr,
        fh: Option<u64>,
        caller: Caller,
    ) -> FsResult<Stat> {
        let (path, located) = self.writable_node(ino)?;
        if path.is_root() {
            return Err(FsError::NotPermitted);
        }
        let st = located.stat;
        if caller.uid != 0 {
            let uid_change = set.uid.is_some_and(|u| u != st.uid);
            let gid_change = set.gid.is_some_and(|g| g != st.gid);
            if uid_change || (gid_change && caller.uid != st.uid) {
                return Err(FsError::NotPermitted);
            }
        }
        let _ns = self.lock_ns();
        // An entry already in the writable layer is changed through the descriptor it was
        // located and checked by; one still only in SOURCE is copied up and changed by name.
        let in_place = match &self.writes {
            Writes::Overlay(upper) => located.layer == Layer::Upper && upper.contains(&path),
            Writes::Direct => true,
            Writes::Deny => false,
        };
        let by_name = if in_place {
            None
        } else {
            Some(self.writable_copy(&path, &located)?)
        };
        if let Some(size) = set.size {
            if st.kind != FileType::File {
                return Err(if st.kind == FileType::Dir {
                    FsError::IsDir
                } else {
                    FsError::Invalid
                });
            }
            let handle = match fh.and_then(|fh| self.files.lock().get(&fh).cloned()) {
                Some(h) if h.path.is_some() => h,
                _ => std::sync::Arc::new(Handle {
                    file: match by_name {
                        None => {
                            let root = self.layer_root(located.layer);
                            sys::reopen_regular(root, &path, located.fd.as_fd(), &st, true)
                        }
                        Some(_) => sys::open_regular(self.layer_root_for_write(), &path, true),
                    }
                    .map_err(FsError::resolving)?,
                    node: ino,
                    upper: self.upper().is_some(),
                    path: Some(path.clone()),
                }),
            };
            let before = sys::fstat(handle.file.as_fd())?.size;
            self.growth(&handle, size)?;
            w::truncate(handle.file.as_fd(), size).map_err(io)?;
            if let (Some(upper), true) = (self.upper(), handle.upper) {
                upper.add_bytes(size as i64 - before as i64);
            }
        }
        let fd = located.fd.as_fd();
        if let Some(mode) = set.mode {
            if st.kind != FileType::Symlink {
                let mode = mode & 0o7777 & !SETID;
                match &by_name {
                    Some((dir, name)) => w::chmod_at(dir.as_fd(), name, mode),
                    None => w::chmod_fd(fd, mode),
                }
                .map_err(io)?;
            }
        }
        if set.uid.is_some() || set.gid.is_some() {
            let (uid, gid) = (set.uid.unwrap_or(u32::MAX), set.gid.unwrap_or(u32::MAX));
            match &by_name {
                Some((dir, name)) => w::chown_at(dir.as_fd(), name, uid, gid),
                None => w::chown_fd(fd, uid, gid),
            }
            .map_err(io)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let atime = set.atime.unwrap_or(SetTime::Keep);
            let mtime = set.mtime.unwrap_or(SetTime::Keep);
            match &by_name {
                Some((dir, name)) => w::set_times_at(dir.as_fd(), name, atime, mtime),
                None => w::set_times_fd(fd, atime, mtime),
            }
            .map_err(io)?;
        }
        self.wrote(&path);
        let stat = match by_name {
            Some(_) => self.locate(&path)?.stat,
            None => sys::fstat(fd)?,
        };
        Ok(self.sanitise(ino, stat))
    }

    /// The root of the layer writes go to.
    fn layer_root_for_write(&self) -> BorrowedFd<'_> {
        match self.upper() {
            Some(upper) => upper.root(),
            None => self.scope.root(),
        }
    }

    /// `setxattr` and `removexattr` (`value` `None`): only `user.*` attributes.
    pub fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> FsResult<()> {
        let (path, located) = self.writable_node(ino)?;
        if !name.starts_with(b"user.") {
            return Err(self.refuse(
                &path,
                FsError::NotSupported,
                "only user.* extended attributes",
            ));
        }
        if !matches!(located.stat.kind, FileType::File | FileType::Dir) {
            return Err(FsError::NotPermitted);
        }
        let _ns = self.lock_ns();
        let fd = match self.upper() {
            // The copy in upper/, which only the view changes (and `ns` is held).
            Some(upper) => {
                self.copy_up(upper, &path, &located)?;
                if located.stat.kind == FileType::Dir {
                    upper.resolve(&path, Open::Dir)
                } else {
                    sys::open_regular(upper.root(), &path, false).map(OwnedFd::from)
                }
                .map_err(FsError::resolving)?
            }
            // SOURCE's own entry: the one checked, through its own descriptor.
            None => self
                .xattr_fd(&path, &located)?
                .ok_or(FsError::NotPermitted)?,
        };
        match value {
            Some(value) => w::setxattr(fd.as_fd(), name, value, flags).map_err(io)?,
            None => w::removexattr(fd.as_fd(), name).map_err(io)?,
        }
        self.wrote(&path);
        Ok(())
    }
}
