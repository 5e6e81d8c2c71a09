//! The direct write layer (`writes.mode = "direct"`): every change the view allows is made in
//! SOURCE itself, on the entry the view checked. Entries are reached through SOURCE's root
//! descriptor, one resolved directory and one name at a time, never following a symlink.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{At, New, Target, WriteLayer, io, last_name, make_in};
use crate::confine::Confinement;
use crate::path::RelPath;
use crate::policy::WriteMode;
use crate::sys::write as w;
use crate::sys::{self, FileType, Open};
use crate::view::{Caller, FsError, FsResult, Located, Scope};

/// Writes go to SOURCE, on writable paths only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

/// The SOURCE directory `dir`, as an `O_PATH` handle to make changes in.
fn source_dir(scope: &Scope, dir: &RelPath) -> FsResult<OwnedFd> {
    sys::resolve(scope.root(), dir, Open::Path).map_err(FsError::resolving)
}

impl WriteLayer for Direct {
    fn mode(&self) -> WriteMode {
        WriteMode::Direct
    }

    fn confine<'a>(&'a self, source: BorrowedFd<'a>, rules: &mut Confinement<'a>) {
        rules.write.push(source);
    }

    fn make(
        &self,
        scope: &Scope,
        at: At<'_>,
        new: New<'_>,
        caller: Caller,
    ) -> FsResult<Option<File>> {
        let dir = source_dir(scope, at.dir)?;
        make_in(dir.as_fd(), at.name, new, caller)
    }

    fn link(&self, scope: &Scope, (from, src): (&RelPath, &Located), at: At<'_>) -> FsResult<()> {
        let src_dir = source_dir(scope, &from.parent().unwrap_or_default())?;
        let src_name = last_name(from)?;
        let dir = source_dir(scope, at.dir)?;
        if src.stat.kind == FileType::File {
            // SOURCE's own file: the one checked, through its own descriptor (its name may
            // lead to a file the view hides by now).
            let from = (src_dir.as_fd(), &src_name);
            w::link_open(src.fd.as_fd(), from, dir.as_fd(), at.name)
        } else {
            w::link(src_dir.as_fd(), &src_name, dir.as_fd(), at.name)
        }
        .map_err(io)
    }

    fn remove(&self, scope: &Scope, at: At<'_>, located: &Located) -> FsResult<()> {
        let dir = source_dir(scope, at.dir)?;
        let is_dir = located.stat.kind == FileType::Dir;
        w::unlink(dir.as_fd(), at.name, is_dir).map_err(io)
    }

    fn rename(
        &self,
        scope: &Scope,
        (from, _): (At<'_>, &Located),
        (to, _): (At<'_>, Option<&Located>),
        flags: u32,
    ) -> FsResult<()> {
        let from_dir = source_dir(scope, from.dir)?;
        let to_dir = source_dir(scope, to.dir)?;
        w::rename(from_dir.as_fd(), from.name, to_dir.as_fd(), to.name, flags).map_err(io)
    }

    fn open_for_write(&self, scope: &Scope, path: &RelPath, located: &Located) -> FsResult<File> {
        // SOURCE's own file: the one checked, through its own descriptor.
        let (fd, st) = (located.fd.as_fd(), &located.stat);
        sys::reopen_regular(scope.root(), path, fd, st, true).map_err(FsError::resolving)
    }

    fn change_target(&self, _: &Scope, _: &RelPath, _: &Located) -> FsResult<Target> {
        Ok(Target::InPlace)
    }

    fn sync_dir(&self, scope: &Scope, path: &RelPath) -> FsResult<()> {
        let dir = sys::resolve(scope.root(), path, Open::Dir).map_err(FsError::resolving)?;
        w::fsync(dir.as_fd(), false).map_err(io)
    }
}
