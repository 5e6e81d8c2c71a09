//! The write path of the view (SPEC §3): every change is checked against the policy, then
//! handed to the view's write layer ([`crate::write`]), which makes it — in the overlay's
//! `upper/` or, in direct mode, in SOURCE itself. A read-only view has no layer and refuses
//! every change with `EROFS`. This file holds the decisions: whether a change may happen, with
//! which errno, under which rule; never the work.
//!
//! Order of the checks, so that answers depend only on the operation and the policy: a
//! reserved `.wh.*` name is `EINVAL`; an existing entry that is hidden is `ENOENT`; in direct
//! mode a new name that is hidden or not allowed is `EACCES` whether or not something hidden is
//! there; a path the policy does not make writable is `EACCES`. In an overlay view what the
//! agent makes is its own (SPEC §3a): the writable list alone decides which names it may make,
//! a name SOURCE holds hidden behaves as absent, and `protect` waits for review.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use super::{Attr, Entry, FsError, FsResult, Handle, Located, View, Writes};
use crate::path::{Name, RelPath};
use crate::policy::{Decision, Kind, Writability};
use crate::sys::write::{self as w, SetTime};
use crate::sys::{self, FileType, Stat};
use crate::view::scope::kind_of;
use crate::write::{At, New, Target, WriteLayer, io};

/// The setuid and setgid bits, stripped from everything the view writes but directories
/// ([`kept_bits`]).
const SETID: u32 = libc::S_ISUID | libc::S_ISGID;

/// The bits of `mode` the view lets through for an entry of `kind` (SPEC §3): setuid and setgid
/// only on a directory, where they run nothing (setgid makes new entries take the directory's
/// group).
fn kept_bits(mode: u32, kind: FileType) -> u32 {
    let strip = if kind == FileType::Dir { 0 } else { SETID };
    mode & 0o7777 & !strip
}

/// Who asks, and for what: new entries belong to `uid` and `gid`; the audit log names the
/// operation, the process and the user.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// The operation, as the audit log names it (`"unlink"`).
    pub op: &'static str,
}

impl Caller {
    /// The request, as the audit log records it.
    pub fn request(&self) -> crate::audit::Request {
        crate::audit::Request {
            op: self.op,
            pid: self.pid,
            uid: self.uid,
        }
    }
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

impl View {
    /// The layer that makes the changes: none in a read-only view, which refuses them all.
    fn writer(&self, path: &RelPath) -> FsResult<&dyn WriteLayer> {
        match &self.writes {
            Writes::Deny => Err(self.refuse(path, FsError::ReadOnly, "writes.mode=deny")),
            Writes::Layer(layer) => Ok(layer.as_ref()),
        }
    }

    /// Refuses every change in a read-only view.
    fn ensure_writes(&self, path: &RelPath) -> FsResult<()> {
        self.writer(path).map(|_| ())
    }

    /// The write layer, for a change already allowed (the read-only view has refused it).
    fn allowed_writer(&self) -> FsResult<&dyn WriteLayer> {
        self.layer().ok_or(FsError::ReadOnly)
    }

    /// Whether the policy lets `path` (of `kind`) change; the refusal names the rule. Nothing
    /// can change where the layer cannot hold an entry: in overlay mode, at or beneath a SOURCE
    /// name `.wh.*`, whose copy in `upper/` would read as a whiteout.
    fn check_policy_writable(&self, path: &RelPath, kind: Kind) -> FsResult<()> {
        if path.is_root() {
            // The view root's own mode and times (SPEC §3a); `setattr` allows nothing else.
            return Ok(());
        }
        if self.layer().is_some_and(|layer| !layer.can_hold(path)) {
            return Err(self.refuse(
                path,
                FsError::Access,
                "names .wh.* are reserved for the overlay",
            ));
        }
        let matcher = self.scope.matcher();
        match matcher.writable(path, kind) {
            Writability::Writable(_) => Ok(()),
            // Enforced at review time in an overlay view (SPEC §3a): written to the overlay,
            // flagged by `diff` and left out by `apply`.
            Writability::Protected(_)
                if self.agent_owns() && matcher.writable_listed(path, kind).is_some() =>
            {
                Ok(())
            }
            Writability::NotWritable => {
                Err(self.refuse(path, FsError::Access, "writes.writable: no pattern matches"))
            }
            Writability::Protected(rule) => Err(self.refuse(path, FsError::Access, rule)),
        }
    }

    /// Whether what the agent makes is its own (SPEC §3a): in an overlay view, where a new
    /// entry goes to the overlay, never over SOURCE's. There the writable list alone decides
    /// which names the agent may make, whatever the view hides or a symlink points at; SOURCE's
    /// hidden entries behave as absent. In direct mode every new name is judged as SOURCE's.
    fn agent_owns(&self) -> bool {
        self.layer().is_some_and(|layer| layer.own_root().is_some())
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
        if self.agent_owns() {
            return self.check_policy_writable(path, kind);
        }
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
            .layer()
            .is_some_and(|layer| layer.holds(path) || layer.hides_lower(path))
        {
            return false;
        }
        let (Some(dir), Ok(name)) = (path.parent(), crate::write::last_name(path)) else {
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
        if entry.stat.kind != FileType::Symlink || self.agent_owns() {
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
        if crate::overlay::is_reserved(name) {
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

    fn new_entry_reply(
        &self,
        parent: u64,
        name: &Name,
        path: &RelPath,
        caller: &Caller,
    ) -> FsResult<Entry> {
        self.wrote(caller, path);
        let located = self.locate(path)?;
        let ino = self.node_for(
            parent,
            (name, path),
            (located.layer, &located.stat),
            super::numbers::Known::Fd(located.fd.as_fd()),
        );
        Ok(self.entry(Some(parent), ino, located.stat))
    }

    /// Makes the new entry `new` as `name` of `parent` (at `path` in the directory `dir`),
    /// owned by `caller`: what create, mknod, mkdir and symlink share.
    fn make_entry(
        &self,
        parent: u64,
        name: &Name,
        (dir, path): (&RelPath, &RelPath),
        caller: Caller,
        new: New<'_>,
    ) -> FsResult<(Entry, Option<File>)> {
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
        let at = At { dir, path, name };
        let file = layer.make(&self.scope, at, new, caller)?;
        Ok((self.new_entry_reply(parent, name, path, &caller)?, file))
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
        let mode = mode & !umask & 0o7777 & !SETID;
        let made = self.make_entry(parent, name, (&dir, &path), caller, New::File { mode })?;
        let (entry, Some(file)) = made else {
            // A layer that made a file and did not open it: an internal fault.
            return Err(FsError::Io(std::io::Error::from_raw_os_error(libc::EIO)));
        };
        let fh = self.add_handle(Handle {
            file,
            node: entry.ino,
            counted: self.allowed_writer()?.counts_bytes(),
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
        let mode = kind | (mode & !umask & 0o7777 & !SETID);
        let made = self.make_entry(parent, name, (&dir, &path), caller, New::Node { mode });
        Ok(made?.0)
    }

    /// `mkdir`.
    pub fn mkdir(
        &self,
        parent: u64,
        name: &Name,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> FsResult<Entry> {
        let (dir, path) = self.new_entry(parent, name, Kind::Dir)?;
        let mode = kept_bits(mode & !umask, FileType::Dir);
        let made = self.make_entry(parent, name, (&dir, &path), caller, New::Dir { mode });
        Ok(made?.0)
    }

    /// `symlink`. In direct mode, under `symlinks = "contain"`, a link the view would not show
    /// (absolute, leaving SOURCE, or onto a hidden path) is refused with `EACCES`; in an overlay
    /// view the link is the agent's own and resolves in its own kernel.
    pub fn symlink(
        &self,
        parent: u64,
        name: &Name,
        target: &[u8],
        caller: Caller,
    ) -> FsResult<Entry> {
        let (dir, path) = self.new_entry(parent, name, Kind::NonDir)?;
        if !self.agent_owns() && !self.scope.symlink_allowed(&path, target) {
            return Err(self.refuse(
                &path,
                FsError::Access,
                "symlinks: the target would not be in the view",
            ));
        }
        let new = New::Symlink { target };
        let made = self.make_entry(parent, name, (&dir, &path), caller, new);
        Ok(made?.0)
    }

    /// `link`: a new name for a visible non-directory.
    pub fn link(
        &self,
        ino: u64,
        new_parent: u64,
        new_name: &Name,
        caller: Caller,
    ) -> FsResult<Entry> {
        self.ensure_writes(&self.path(new_parent)?.join(new_name))?;
        let (src_path, src) = self.node(ino)?;
        if src.stat.kind == FileType::Dir {
            return Err(FsError::NotPermitted);
        }
        // A new name is a new way to write the same file: only a writable file gets one.
        self.check_writable(&src_path, &src.stat)?;
        let (dir, path) = self.new_entry(new_parent, new_name, Kind::NonDir)?;
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
        let at = At {
            dir: &dir,
            path: &path,
            name: new_name,
        };
        layer.link(&self.scope, (&src_path, &src), at)?;
        if layer.own_root().is_some()
            && let Ok(copy) = self.locate(&src_path)
        {
            // A layer with a tree of its own may have just copied the source up: its node now
            // stands for that copy, and the new name joins it.
            if let Some(key) = Self::file_key(copy.layer, &copy.stat) {
                self.inodes.write().set_file(ino, key);
            }
        }
        self.new_entry_reply(new_parent, new_name, &path, &caller)
    }

    /// `unlink` (`dir` false) and `rmdir` (`dir` true).
    pub fn remove(&self, parent: u64, name: &Name, dir: bool, caller: Caller) -> FsResult<()> {
        let (dir_path, path, located) = self.writable_child(parent, name)?;
        let is_dir = located.stat.kind == FileType::Dir;
        if dir && !is_dir {
            return Err(FsError::NotDir);
        }
        if !dir && is_dir {
            return Err(FsError::IsDir);
        }
        let _names = self.changing_names();
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
        // Found before `ns` was taken: another request may have removed or replaced it since.
        let located = self.locate(&path)?;
        if (located.stat.kind == FileType::Dir) != is_dir {
            return Err(FsError::NotFound);
        }
        if dir && !self.list(&path, &located)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        let at = At {
            dir: &dir_path,
            path: &path,
            name,
        };
        layer.remove(&self.scope, at, &located)?;
        self.inodes.write().detach(parent, name);
        self.wrote(&caller, &path);
        Ok(())
    }

    /// `rename`, with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`; other flags are `EINVAL`. A
    /// layer may refuse what it cannot move: in overlay mode, a directory that exists in SOURCE
    /// (`EXDEV`, tools copy instead), as with overlayfs.
    pub fn rename(
        &self,
        parent: u64,
        name: &Name,
        new_parent: u64,
        new_name: &Name,
        flags: u32,
        caller: Caller,
    ) -> FsResult<()> {
        self.ensure_writes(&self.path(parent)?.join(name))?;
        if flags & !(w::RENAME_NOREPLACE | w::RENAME_EXCHANGE) != 0
            || flags == w::RENAME_NOREPLACE | w::RENAME_EXCHANGE
        {
            return Err(FsError::Invalid);
        }
        if crate::overlay::is_reserved(name) || crate::overlay::is_reserved(new_name) {
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
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
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
        let from_at = At {
            dir: &from_dir,
            path: &from,
            name,
        };
        let to_at = At {
            dir: &to_dir,
            path: &to,
            name: new_name,
        };
        layer.rename(&self.scope, (from_at, &src), (to_at, dst.as_ref()), flags)?;
        self.wrote(&caller, &from);
        self.wrote(&caller, &to);
        let mut inodes = self.inodes.write();
        if exchange {
            inodes.exchange(parent, name, new_parent, new_name);
        } else {
            inodes.rename(parent, name, new_parent, new_name);
        }
        Ok(())
    }

    /// Opens node `ino` for writing: copied up first in overlay mode.
    pub(super) fn open_for_write(&self, ino: u64) -> FsResult<Handle> {
        // Located under `ns`: the name found is opened by path below, so no other request may
        // rename it away in between (a file with several names may be found under another).
        let _ns = self.layer().and_then(|layer| layer.lock_names());
        let (path, located) = self.writable_node(ino)?;
        match located.stat.kind {
            FileType::File => {}
            FileType::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Access),
        }
        let layer = self.allowed_writer()?;
        let file = layer.open_for_write(&self.scope, &path, &located)?;
        Ok(Handle {
            file,
            node: ino,
            counted: layer.counts_bytes(),
            path: Some(path),
        })
    }

    /// `write` through an open handle; in overlay mode growth counts against
    /// `overlay_bytes`.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8], caller: Caller) -> FsResult<u32> {
        let handle = self.handle(fh)?;
        let path = handle.path.clone().unwrap_or_default();
        self.ensure_writes(&path)?;
        let growth = self.growth(&handle, offset.saturating_add(data.len() as u64))?;
        handle.file.write_all_at(data, offset).map_err(io)?;
        self.wrote(&caller, &path);
        if let (Some(layer), true) = (self.layer(), handle.counted) {
            layer.add_bytes(i64::try_from(growth).unwrap_or(i64::MAX));
        }
        u32::try_from(data.len()).map_err(|_| FsError::Invalid)
    }

    /// How much a file grows if it ends at `end`, refused past the layer's byte limit.
    fn growth(&self, handle: &Handle, end: u64) -> FsResult<u64> {
        let (Some(layer), true) = (self.layer(), handle.counted) else {
            return Ok(0);
        };
        let size = sys::fstat(handle.file.as_fd())?.size;
        let growth = end.saturating_sub(size);
        layer.reserve_bytes(growth).map_err(|e| {
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
        if let (Some(layer), true) = (self.layer(), handle.counted) {
            layer.add_bytes(i64::try_from(growth).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// `fsync` of node `ino` open as `fh`: the file's data and, in overlay mode, the directory
    /// entry of its copy.
    pub fn fsync(&self, ino: u64, fh: u64, data_only: bool) -> FsResult<()> {
        if self.unopened(fh) {
            // A file of a read-only view, opened without the daemon: nothing was written, so
            // there is nothing to sync once the node is found still visible.
            return self.access(ino, libc::F_OK);
        }
        let handle = self.handle(fh)?;
        w::fsync(handle.file.as_fd(), data_only).map_err(io)?;
        if let (Some(layer), Some(path)) = (self.layer(), &handle.path) {
            layer.sync_entry(path)?;
        }
        Ok(())
    }

    /// `fsyncdir`: the directory's entries where the view writes them: its copy in `upper/` in
    /// overlay mode (none yet: nothing of it was changed), SOURCE's directory in direct mode,
    /// nothing in deny mode.
    pub fn fsync_dir(&self, ino: u64) -> FsResult<()> {
        let (path, _) = self.node(ino)?;
        match self.layer() {
            None => Ok(()),
            Some(layer) => layer.sync_dir(&self.scope, &path),
        }
    }

    /// `setattr`: mode (setuid/setgid stripped), owner, size and times.
    pub fn setattr(
        &self,
        ino: u64,
        set: SetAttr,
        fh: Option<u64>,
        caller: Caller,
    ) -> FsResult<Attr> {
        let (path, located) = self.writable_node(ino)?;
        let st = located.stat;
        // Setting the owner it has (as `tar x` does for `.`) changes nothing.
        let owner_change =
            set.uid.is_some_and(|u| u != st.uid) || set.gid.is_some_and(|g| g != st.gid);
        if path.is_root() && (owner_change || set.size.is_some()) {
            return Err(self.refuse(
                &path,
                FsError::NotPermitted,
                "only the mode and times of the view root change",
            ));
        }
        if caller.uid != 0 {
            let uid_change = set.uid.is_some_and(|u| u != st.uid);
            let gid_change = set.gid.is_some_and(|g| g != st.gid);
            if uid_change || (gid_change && caller.uid != st.uid) {
                return Err(FsError::NotPermitted);
            }
        }
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
        let target = layer.change_target(&self.scope, &path, &located)?;
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
                    file: target.open_file(self.layer_root(located.layer), &path, &located)?,
                    node: ino,
                    counted: layer.counts_bytes(),
                    path: Some(path.clone()),
                }),
            };
            let before = sys::fstat(handle.file.as_fd())?.size;
            self.growth(&handle, size)?;
            w::truncate(handle.file.as_fd(), size).map_err(io)?;
            if handle.counted {
                layer.add_bytes(size as i64 - before as i64);
            }
        }
        let fd = located.fd.as_fd();
        if let Some(mode) = set.mode {
            if st.kind != FileType::Symlink {
                target.chmod(fd, kept_bits(mode, st.kind))?;
            }
        }
        if set.uid.is_some() || set.gid.is_some() {
            let (uid, gid) = (set.uid.unwrap_or(u32::MAX), set.gid.unwrap_or(u32::MAX));
            target.chown(fd, uid, gid)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let atime = set.atime.unwrap_or(SetTime::Keep);
            let mtime = set.mtime.unwrap_or(SetTime::Keep);
            target.set_times(fd, atime, mtime)?;
        }
        self.wrote(&caller, &path);
        let stat = match target {
            Target::ByName(..) => self.locate(&path)?.stat,
            Target::InPlace => sys::fstat(fd)?,
        };
        Ok(self.attr(ino, self.sanitise(ino, stat)))
    }

    /// `setxattr` and `removexattr` (`value` `None`): only `user.*` attributes.
    pub fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
        caller: Caller,
    ) -> FsResult<()> {
        let (path, located) = self.writable_node(ino)?;
        if path.is_root() {
            return Err(self.refuse(
                &path,
                FsError::NotPermitted,
                "only the mode and times of the view root change",
            ));
        }
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
        let layer = self.allowed_writer()?;
        let _ns = layer.lock_names();
        let target = layer.change_target(&self.scope, &path, &located)?;
        let dir = located.stat.kind == FileType::Dir;
        // In place: the entry checked, through its own descriptor.
        let fd = target.open_for_xattr(dir, || self.xattr_fd(&path, &located))?;
        match value {
            Some(value) => w::setxattr(fd.as_fd(), name, value, flags).map_err(io)?,
            None => w::removexattr(fd.as_fd(), name).map_err(io)?,
        }
        self.wrote(&caller, &path);
        Ok(())
    }
}
