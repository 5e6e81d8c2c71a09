//! The overlay write layer (`writes.mode = "overlay"`): every change the view allows is made in
//! `upper/`, and SOURCE is never written (SPEC §3, §4).
//!
//! An entry of SOURCE is copied up before it changes ([`super::copy_up`]); a deleted SOURCE
//! entry leaves a whiteout `.wh.NAME`; a directory made where SOURCE has something, or moved
//! there, is marked opaque so that SOURCE's entries do not show through it. A directory that
//! exists in SOURCE cannot move (`EXDEV`, as with overlayfs): tools copy it instead. The
//! in-memory index ([`Upper`]) changes with `upper/`, under [`Upper::ns`].

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use parking_lot::MutexGuard;

use super::upper::is_reserved;
use super::{LowerState, OPAQUE_MARKER, Upper, WHITEOUT_PREFIX, whiteout_for};
use crate::confine::Confinement;
use crate::path::{Name, RelPath};
use crate::policy::WriteMode;
use crate::sys::write as w;
use crate::sys::{self, FileType, Open};
use crate::view::{Caller, FsError, FsResult, Layer, Located, Scope};
use crate::write::{At, New, OwnDir, Target, WriteLayer, group_in, io, make_in};

/// Puts the opaque marker in the upper directory `dir`.
fn mark_opaque(dir: BorrowedFd<'_>) -> FsResult<()> {
    let marker = Name::new(OPAQUE_MARKER).map_err(|_| FsError::Invalid)?;
    drop(w::create_file(dir, &marker, 0).map_err(io)?);
    Ok(())
}

impl Upper {
    /// After making `name` (at `path`) in the upper directory `dir`: drops its whiteout and
    /// counts it.
    fn finish_new(&self, dir: BorrowedFd<'_>, name: &Name, path: &RelPath) -> FsResult<()> {
        if self.whited_out(path) {
            let wh = whiteout_for(name)?;
            w::unlink(dir, &wh, false).map_err(io)?;
        }
        self.note_created(path, 0);
        Ok(())
    }

    /// Removes an upper directory holding nothing but overlay markers.
    fn remove_upper_dir(&self, dir: BorrowedFd<'_>, name: &Name) -> FsResult<()> {
        let inner = sys::open_child_dir(dir, name).map_err(io)?;
        for entry in sys::read_dir(inner.as_fd()).map_err(io)? {
            let Ok(child) = Name::new(&entry.name) else {
                continue;
            };
            if !is_reserved(&child) {
                return Err(FsError::NotEmpty);
            }
            w::unlink(inner.as_fd(), &child, false).map_err(io)?;
        }
        w::unlink(dir, name, true).map_err(io)
    }

    /// Whether SOURCE has anything at `path` that the view shows and the overlay lets through.
    fn lower_present(&self, scope: &Scope, path: &RelPath) -> bool {
        !self.hides_lower(path) && self.lower_shown(scope, path)
    }

    /// `mkdir`: the new directory is built in `work/` and renamed in; where SOURCE had
    /// something at that path (deleted earlier) it is marked opaque.
    fn make_dir(&self, scope: &Scope, at: At<'_>, mode: u32, caller: Caller) -> FsResult<()> {
        let dir_fd = self.copy_up_dir(scope, at.dir)?;
        self.reserve_files(1)?;
        // Opaque wherever SOURCE has anything at the name, shown or hidden: nothing of a
        // hidden directory (or of one SOURCE's file system matched to a loose spelling) may
        // show through the agent's own.
        let opaque = self.lower_state(scope, at.path) != LowerState::Absent;
        self.record(scope, at.path)?;
        let work = self.overlay().work();
        let tmp = self.temp_name()?;
        w::mkdir(work, &tmp, 0o700).map_err(io)?;
        let built = (|| -> FsResult<()> {
            if opaque {
                let inner = sys::open_child_dir(work, &tmp).map_err(io)?;
                mark_opaque(inner.as_fd())?;
            }
            let (gid, setgid) = group_in(dir_fd.as_fd(), caller)?;
            let mode = if setgid { mode | libc::S_ISGID } else { mode };
            w::chmod_at(work, &tmp, mode).map_err(io)?;
            w::chown_at(work, &tmp, caller.uid, gid).map_err(io)?;
            // The whiteout, if any, goes after the rename (in finish_new): a crash in between
            // leaves both, and the new directory wins.
            w::rename(work, &tmp, dir_fd.as_fd(), at.name, w::RENAME_NOREPLACE).map_err(io)
        })();
        if let Err(e) = built {
            let _ = self.remove_upper_dir(work, &tmp);
            return Err(e);
        }
        if opaque {
            self.note_opaque(at.path);
        }
        self.finish_new(dir_fd.as_fd(), at.name, at.path)
    }
}

impl WriteLayer for Upper {
    fn mode(&self) -> WriteMode {
        WriteMode::Overlay
    }

    fn confine<'a>(&'a self, source: BorrowedFd<'a>, rules: &mut Confinement<'a>) {
        rules.read.push(source);
        rules.write.push(self.overlay().upper());
        rules.write.push(self.overlay().work());
    }

    fn own_root(&self) -> Option<BorrowedFd<'_>> {
        Some(self.root())
    }

    fn holds(&self, path: &RelPath) -> bool {
        self.contains(path)
    }

    fn hides_lower(&self, path: &RelPath) -> bool {
        Upper::hides_lower(self, path)
    }

    fn origin(&self, path: &RelPath) -> Option<LowerState> {
        self.overlay().origin(path)
    }

    fn merges_lower(&self, dir: &RelPath) -> bool {
        !Upper::hides_lower(self, dir) && !self.is_opaque(dir)
    }

    fn deleted(&self, path: &RelPath) -> bool {
        self.whited_out(path)
    }

    fn list_own(&self, dir: &RelPath) -> FsResult<Option<OwnDir>> {
        let fd = self.resolve(dir, Open::Dir).map_err(FsError::resolving)?;
        let mut out = Vec::new();
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            if is_reserved(&name) {
                continue;
            }
            let Ok(st) = sys::stat_at(fd.as_fd(), &name) else {
                continue;
            };
            out.push((name, st));
        }
        Ok(Some(OwnDir { fd, entries: out }))
    }

    /// Nothing at or beneath a SOURCE name `.wh.*` can be held: its copy in `upper/` would
    /// read as a whiteout.
    fn can_hold(&self, path: &RelPath) -> bool {
        !path.components().any(|c| c.starts_with(WHITEOUT_PREFIX))
    }

    fn counts_bytes(&self) -> bool {
        true
    }

    fn reserve_bytes(&self, bytes: u64) -> FsResult<()> {
        Upper::reserve_bytes(self, bytes)
    }

    fn add_bytes(&self, delta: i64) {
        Upper::add_bytes(self, delta);
    }

    fn lock_names(&self) -> Option<MutexGuard<'_, ()>> {
        Some(self.ns.lock())
    }

    fn make(
        &self,
        scope: &Scope,
        at: At<'_>,
        new: New<'_>,
        caller: Caller,
    ) -> FsResult<Option<File>> {
        if let New::Dir { mode } = new {
            self.make_dir(scope, at, mode, caller)?;
            return Ok(None);
        }
        let dir_fd = self.copy_up_dir(scope, at.dir)?;
        self.reserve_files(1)?;
        self.record(scope, at.path)?;
        let file = make_in(dir_fd.as_fd(), at.name, new, caller)?;
        self.finish_new(dir_fd.as_fd(), at.name, at.path)?;
        Ok(file)
    }

    fn link(&self, scope: &Scope, (from, src): (&RelPath, &Located), at: At<'_>) -> FsResult<()> {
        let (src_dir, src_name) = self.copy_up(scope, from, src)?;
        let dir_fd = self.copy_up_dir(scope, at.dir)?;
        self.reserve_files(1)?;
        self.record(scope, at.path)?;
        w::link(src_dir.as_fd(), &src_name, dir_fd.as_fd(), at.name).map_err(io)?;
        self.finish_new(dir_fd.as_fd(), at.name, at.path)
    }

    fn remove(&self, scope: &Scope, at: At<'_>, located: &Located) -> FsResult<()> {
        let dir = located.stat.kind == FileType::Dir;
        // Whatever can refuse the removal is checked before anything changes: the whiteout
        // must fit in a name, and in the file limit.
        let lower = self.lower_present(scope, at.path);
        let whiteout = if lower {
            self.reserve_files(1)?;
            Some(whiteout_for(at.name)?)
        } else {
            None
        };
        let dir_fd = self.copy_up_dir(scope, at.dir)?;
        self.record(scope, at.path)?;
        if dir && lower {
            self.record_hidden_children(scope, at.path)?;
        }
        let mut freed = 0;
        // Found before `ns` was taken: another request may have copied it up since.
        if located.layer == Layer::Upper || self.contains(at.path) {
            if dir {
                self.remove_upper_dir(dir_fd.as_fd(), at.name)?;
            } else {
                if located.layer == Layer::Upper
                    && located.stat.kind == FileType::File
                    && located.stat.nlink <= 1
                {
                    freed = located.stat.size;
                }
                w::unlink(dir_fd.as_fd(), at.name, false).map_err(io)?;
            }
        }
        if let Some(wh) = &whiteout {
            drop(w::create_file(dir_fd.as_fd(), wh, 0).map_err(io)?);
        }
        self.note_removed(at.path, freed, lower);
        Ok(())
    }

    fn rename(
        &self,
        scope: &Scope,
        (from, src): (At<'_>, &Located),
        (to, dst): (At<'_>, Option<&Located>),
        flags: u32,
    ) -> FsResult<()> {
        let exchange = flags & w::RENAME_EXCHANGE != 0;
        let src_dir = src.stat.kind == FileType::Dir;
        let from_lower = self.lower_present(scope, from.path);
        let to_lower = self.lower_present(scope, to.path);
        if src_dir && from_lower {
            return Err(FsError::CrossDevice);
        }
        if exchange && dst.is_some_and(|d| d.stat.kind == FileType::Dir) && to_lower {
            return Err(FsError::CrossDevice);
        }
        // Whatever can refuse the rename is checked before anything changes: the whiteout
        // left at the old name must fit in a name, and in the file limit.
        let whiteout = if from_lower && !exchange {
            self.reserve_files(1)?;
            Some(whiteout_for(from.name)?)
        } else {
            None
        };
        self.record(scope, from.path)?;
        self.record(scope, to.path)?;
        let (from_fd, _) = self.copy_up(scope, from.path, src)?;
        let to_fd = self.copy_up_dir(scope, to.dir)?;
        if exchange {
            if let Some(d) = dst {
                self.copy_up(scope, to.path, d)?;
            }
            w::rename(
                from_fd.as_fd(),
                from.name,
                to_fd.as_fd(),
                to.name,
                w::RENAME_EXCHANGE,
            )
            .map_err(io)?;
            self.note_exchanged(from.path, to.path);
            return Ok(());
        }
        if let Some(d) = dst {
            if d.layer == Layer::Upper && d.stat.kind == FileType::Dir {
                // Empty in the view; only markers can be left in it.
                self.remove_upper_dir(to_fd.as_fd(), to.name)?;
            }
        }
        w::rename(from_fd.as_fd(), from.name, to_fd.as_fd(), to.name, 0).map_err(io)?;
        // A directory moved where SOURCE has something must hide it, as one made there does
        // (mkdir): SOURCE's entry may be deleted now, but its whiteout goes below, and what
        // it held would show through the moved directory.
        let shadows = src_dir && self.lower_state(scope, to.path) != LowerState::Absent;
        if shadows && !self.is_opaque(from.path) {
            let moved = sys::open_child_dir(to_fd.as_fd(), to.name).map_err(io)?;
            mark_opaque(moved.as_fd())?;
        }
        if self.whited_out(to.path) {
            let wh = whiteout_for(to.name)?;
            w::unlink(to_fd.as_fd(), &wh, false).map_err(io)?;
        }
        if let Some(wh) = &whiteout {
            drop(w::create_file(from_fd.as_fd(), wh, 0).map_err(io)?);
        }
        self.note_renamed(from.path, to.path, from_lower);
        if shadows {
            self.note_opaque(to.path);
        }
        Ok(())
    }

    fn open_for_write(&self, scope: &Scope, path: &RelPath, located: &Located) -> FsResult<File> {
        // The copy in upper/, which only the view changes (and `ns` is held).
        self.copy_up(scope, path, located)?;
        sys::open_regular(self.root(), path, true).map_err(FsError::resolving)
    }

    /// An entry already in `upper/` is changed through the descriptor it was located and
    /// checked by; one still only in SOURCE is copied up and changed by name.
    fn change_target(&self, scope: &Scope, path: &RelPath, located: &Located) -> FsResult<Target> {
        if located.layer == Layer::Upper && self.contains(path) {
            return Ok(Target::InPlace);
        }
        let (dir, name) = self.copy_up(scope, path, located)?;
        Ok(Target::ByName(dir, name))
    }

    fn sync_entry(&self, path: &RelPath) -> FsResult<()> {
        if let Ok(dir) = self.resolve(&path.parent().unwrap_or_default(), Open::Dir) {
            w::fsync(dir.as_fd(), false).map_err(io)?;
        }
        Ok(())
    }

    /// The directory's copy in `upper/`; none yet means nothing of it was changed.
    fn sync_dir(&self, _: &Scope, path: &RelPath) -> FsResult<()> {
        if !self.contains(path) {
            return Ok(());
        }
        let dir = self.resolve(path, Open::Dir).map_err(FsError::resolving)?;
        w::fsync(dir.as_fd(), false).map_err(io)
    }
}
