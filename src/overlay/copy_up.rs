//! Copy-up: bringing an entry of SOURCE into `upper/` before it changes (SPEC §3, §4).
//!
//! A copy is built in `work/` — contents, mode without setuid/setgid, `user.*` attributes,
//! owner and times — synced, and renamed into place (`RENAME_NOREPLACE`), so a crash leaves
//! the old state or the new one, never half a copy at the view path. Before anything is
//! copied, the provenance of the path (what SOURCE held there) is on disk in `origins`, for
//! `apply` to detect conflicts. Directories are copied empty: their entries stay in SOURCE and
//! show through. Callers hold [`Upper::ns`].

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{LowerState, Upper};
use crate::path::{Name, RelPath};
use crate::sys::write::{self as w, SetTime};
use crate::sys::{self, FileType, Open, Stat};
use crate::view::{FsError, FsResult, Located, Scope};
use crate::write::{io, last_name};

/// The setuid and setgid bits, never carried into a copy.
pub(super) const SETID: u32 = libc::S_ISUID | libc::S_ISGID;

impl Upper {
    /// What SOURCE has at `path` now, for the overlay's provenance.
    pub(super) fn lower_state(&self, scope: &Scope, path: &RelPath) -> LowerState {
        let st = sys::resolve(scope.root(), path, Open::Path)
            .and_then(|fd| sys::fstat(fd.as_fd()))
            .ok();
        LowerState::of(st.as_ref())
    }

    /// Records, as the provenance of `path`, the SOURCE entry `st` it is copied up from (the
    /// one checked, not whatever the path holds a moment later).
    fn record_copied(&self, path: &RelPath, st: &Stat) -> FsResult<()> {
        self.overlay()
            .record_origin(path, LowerState::of(Some(st)))
            .map_err(io)
    }

    /// Whether SOURCE has an entry at `path` that the view shows (whether or not the overlay
    /// deleted it since). An entry the view hides counts as absent (SPEC §3a): the agent's
    /// own entry may take its name, and nothing of the overlay ever stands for it.
    pub(super) fn lower_shown(&self, scope: &Scope, path: &RelPath) -> bool {
        source_entry(scope, path).is_some_and(|(_, shown)| shown)
    }

    /// What SOURCE has at `path` now, as the overlay records it: an entry the view hides
    /// (including one that SOURCE's file system found for a loose spelling of its name) is
    /// [`LowerState::Hidden`], so that `apply` never writes over it or deletes it.
    fn recorded_state(&self, scope: &Scope, path: &RelPath) -> LowerState {
        match source_entry(scope, path) {
            Some((_, false)) => LowerState::Hidden,
            Some((st, true)) => LowerState::of(Some(&st)),
            None => self.lower_state(scope, path),
        }
    }

    /// Records what SOURCE has at `path` now as its provenance, unless it has a record.
    pub(super) fn record(&self, scope: &Scope, path: &RelPath) -> FsResult<()> {
        self.overlay()
            .record_origin(path, self.recorded_state(scope, path))
            .map_err(io)
    }

    /// Records as [`LowerState::Hidden`] every entry of SOURCE's directory `path` that the
    /// view hides, before the directory is deleted in the view: `apply` then never deletes
    /// them with it, forced or not.
    pub(super) fn record_hidden_children(&self, scope: &Scope, path: &RelPath) -> FsResult<()> {
        let Ok(dir) = sys::resolve(scope.root(), path, Open::Dir) else {
            return Ok(());
        };
        for entry in sys::read_dir(dir.as_fd()).map_err(io)? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            if let Some(found) = scope
                .find_child(dir.as_fd(), path, &name)
                .map_err(io)?
                .filter(|found| !found.visible)
            {
                self.overlay()
                    .record_origin(&found.path, LowerState::Hidden)
                    .map_err(io)?;
            }
        }
        Ok(())
    }

    /// Copies the directory `path` (and its ancestors) up into `upper/`, empty, with its
    /// mode, owner and times. Returns an `O_PATH` descriptor of the copy.
    pub(super) fn copy_up_dir(&self, scope: &Scope, path: &RelPath) -> FsResult<OwnedFd> {
        if self.contains(path) {
            return self.resolve(path, Open::Path).map_err(FsError::resolving);
        }
        let parent = path.parent().unwrap_or_default();
        let parent_fd = self.copy_up_dir(scope, &parent)?;
        let name = last_name(path)?;
        if self.hides_lower(path) {
            return Err(FsError::NotFound);
        }
        let (_, st, visible) = scope.find(path).map_err(FsError::resolving)?;
        if !visible || st.kind != FileType::Dir {
            return Err(FsError::NotFound);
        }
        self.reserve_files(1)?;
        self.record_copied(path, &st)?;
        let work = self.overlay().work();
        let tmp = self.temp_name()?;
        w::mkdir(work, &tmp, 0o700).map_err(io)?;
        let placed = (|| {
            // A directory keeps its setuid and setgid bits (SPEC §3: they run nothing there).
            w::chmod_at(work, &tmp, st.perm)?;
            w::chown_at(work, &tmp, st.uid, st.gid)?;
            w::set_times_at(work, &tmp, SetTime::At(st.atime), SetTime::At(st.mtime))?;
            w::rename(work, &tmp, parent_fd.as_fd(), &name, w::RENAME_NOREPLACE)
        })();
        if let Err(e) = placed {
            let _ = w::unlink(work, &tmp, true);
            return Err(io(e));
        }
        self.note_created(path, 0);
        self.resolve(path, Open::Path).map_err(FsError::resolving)
    }

    /// Makes sure the entry at `path` lives in `upper/`, copying it up from SOURCE if needed.
    /// Returns the upper directory holding it and its name.
    pub(super) fn copy_up(
        &self,
        scope: &Scope,
        path: &RelPath,
        located: &Located,
    ) -> FsResult<(OwnedFd, Name)> {
        let name = last_name(path)?;
        let parent = path.parent().unwrap_or_default();
        let dir_fd = self.copy_up_dir(scope, &parent)?;
        // `located` was found before `ns` was taken: another request may have copied it up since.
        if located.layer == crate::view::Layer::Upper || self.contains(path) {
            return Ok((dir_fd, name));
        }
        // Or deleted it: copying it up now would bring it back.
        if self.hides_lower(path) {
            return Err(FsError::NotFound);
        }
        let st = located.stat;
        match st.kind {
            FileType::Dir => {
                self.copy_up_dir(scope, path)?;
                return Ok((dir_fd, name));
            }
            FileType::CharDevice | FileType::BlockDevice => return Err(FsError::NotPermitted),
            FileType::File | FileType::Symlink | FileType::Fifo | FileType::Socket => {}
        }
        self.reserve_files(1)?;
        if st.kind == FileType::File {
            self.reserve_bytes(st.size)?;
        }
        self.record_copied(path, &st)?;
        let work = self.overlay().work();
        let tmp = self.temp_name()?;
        let made = copy_into_work(scope, work, &tmp, path, located);
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
        self.note_created(path, bytes);
        Ok((dir_fd, name))
    }
}

/// SOURCE's entry at `path`, if there is one, and whether the view shows it by that very name.
fn source_entry(scope: &Scope, path: &RelPath) -> Option<(Stat, bool)> {
    let (fd, st, visible) = scope.find(path).ok()?;
    let own_name = match (path.parent(), last_name(path)) {
        (Some(dir), Ok(name)) => scope
            .own_name(&dir, &name, (&st, fd.as_fd()))
            .unwrap_or(false),
        _ => true,
    };
    Some((st, visible && own_name))
}

/// Builds the copy of the lower entry at `path` as `tmp` in `work/`: contents, mode without
/// setuid/setgid, `user.*` attributes; the data is synced before it is renamed in.
fn copy_into_work(
    scope: &Scope,
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
            let src = sys::reopen_regular(scope.root(), path, located.fd.as_fd(), &st, false)
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
