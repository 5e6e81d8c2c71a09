//! The adapter between fuser and the [`View`]: each handler converts the kernel's arguments,
//! calls one view method and replies. No locks, no cache and no policy decision live here (the
//! view decides what the kernel may keep, which features it is asked for and whether opens are
//! needed); every failure goes out through one method, `fail`, which logs it at its level and
//! writes a refusal of the policy to the audit log.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyPoll,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::passthrough::{Attached, Backings, FileId};
use super::session::{Served, Serving};
use crate::path::{Name, NameError};
use crate::sys::write::SetTime;
use crate::sys::{self, Stat};
use crate::view::{Attr, Caller, Entry, FsError, FsResult, Lookup, Opened, SetAttr, View};

/// The fuser file system: a [`View`] behind the kernel protocol.
pub struct ScopeFs {
    view: Arc<View>,
    /// Whether read-only opens are passed through, once the kernel has agreed to it.
    passthrough: bool,
    backings: Backings,
    serving: Serving,
}

impl ScopeFs {
    pub fn new(view: Arc<View>) -> Self {
        ScopeFs {
            view,
            passthrough: false,
            backings: Backings::default(),
            serving: Serving::default(),
        }
    }

    /// The count of requests in hand, for whoever unmounts the view.
    pub fn serving(&self) -> Serving {
        self.serving.clone()
    }

    /// Counts the request as in hand until the guard drops, and names who asks for what.
    fn enter(&self, op: &'static str, req: &Request) -> (Served<'_>, Caller) {
        let caller = Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
            op,
        };
        (self.serving.enter(), caller)
    }
}

fn name(os: &OsStr) -> FsResult<Name> {
    Name::from_os(os).map_err(|e| match e {
        NameError::TooLong => FsError::NameTooLong,
        NameError::Empty | NameError::Dot | NameError::Slash | NameError::Nul => FsError::Invalid,
    })
}

fn kind(k: sys::FileType) -> FileType {
    match k {
        sys::FileType::File => FileType::RegularFile,
        sys::FileType::Dir => FileType::Directory,
        sys::FileType::Symlink => FileType::Symlink,
        sys::FileType::Fifo => FileType::NamedPipe,
        sys::FileType::Socket => FileType::Socket,
        sys::FileType::CharDevice => FileType::CharDevice,
        sys::FileType::BlockDevice => FileType::BlockDevice,
    }
}

fn attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.ino),
        size: st.size,
        blocks: st.blocks,
        atime: st.atime,
        mtime: st.mtime,
        ctime: st.ctime,
        crtime: UNIX_EPOCH,
        kind: kind(st.kind),
        perm: u16::try_from(st.perm & 0o7777).unwrap_or(0),
        nlink: u32::try_from(st.nlink).unwrap_or(u32::MAX),
        uid: st.uid,
        gid: st.gid,
        rdev: u32::try_from(st.rdev).unwrap_or(0),
        blksize: st.blksize,
        flags: 0,
    }
}

/// The attributes of a negative entry: node 0 tells the kernel the name does not exist.
fn absent() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

/// What the kernel may keep of an opened file or directory.
fn open_flags(opened: &Opened) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if opened.cache_listing {
        flags |= FopenFlags::FOPEN_CACHE_DIR;
    }
    if opened.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    flags
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
        TimeOrNow::Now => SetTime::Now,
    }
}

impl ScopeFs {
    /// The one path of a failed request: logs it at the level it deserves, writes a refusal of
    /// the policy to the audit log, and turns it into an errno.
    fn fail(&self, caller: &Caller, err: &FsError) -> Errno {
        let errno = err.errno();
        match err {
            FsError::Io(e) => tracing::warn!(op = caller.op, error = %e, "request failed"),
            FsError::Refused(refusal) => {
                tracing::debug!(op = caller.op, errno, rule = %refusal.rule, "request refused");
                if let Some(audit) = self.view.audit() {
                    audit.denied(&caller.request(), &refusal.path, errno, &refusal.rule);
                }
            }
            _ => tracing::debug!(op = caller.op, errno, "request refused"),
        }
        Errno::from_i32(errno)
    }

    fn entry(&self, reply: ReplyEntry, result: FsResult<Entry>, caller: &Caller) {
        match result {
            Ok(e) => reply.entry(&e.ttl, &attr(&e.attr), Generation(e.generation)),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    fn attr(&self, reply: ReplyAttr, result: FsResult<Attr>, caller: &Caller) {
        match result {
            Ok(a) => reply.attr(&a.ttl, &attr(&a.attr)),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, result: FsResult<()>, caller: &Caller) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    fn opened(&self, reply: ReplyOpen, result: FsResult<Opened>, caller: &Caller) {
        match result {
            Ok(o) => reply.opened(FileHandle(o.fh), open_flags(&o)),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    fn xattr(&self, reply: ReplyXattr, result: FsResult<Vec<u8>>, size: u32, caller: &Caller) {
        match result {
            Ok(data) if size == 0 => reply.size(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Ok(data) if data.len() > size as usize => {
                reply.error(self.fail(caller, &FsError::Range))
            }
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    /// A read-only open the kernel may read directly from the file it checked (passthrough).
    fn open_passthrough(&self, reply: ReplyOpen, ino: INodeNo, o: Opened, file: FileId) {
        let backing = self.backings.attach(ino.0, o.fh, file, || {
            let fd = self.view.handle_fd(o.fh).map_err(io::Error::other)?;
            reply.open_backing(fd)
        });
        match backing {
            Ok(Attached::Backing(backing)) => {
                reply.opened_passthrough(FileHandle(o.fh), FopenFlags::empty(), &backing)
            }
            Ok(Attached::Other) => {
                // The kernel would read this node's first file, which its name no longer leads
                // to. The node is given up and the open refused with ESTALE: the kernel then
                // looks the name up again (a new node, for the file checked now) and opens that.
                self.view.release(o.fh);
                self.view.retire(ino.0);
                reply.error(Errno::ESTALE);
            }
            Err(e) => {
                tracing::debug!(error = %e, "no passthrough for this open");
                reply.opened(FileHandle(o.fh), open_flags(&o));
            }
        }
    }
}

impl Filesystem for ScopeFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let features = self.view.features();
        let mut wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS;
        if features.cache_data {
            wanted |= InitFlags::FUSE_AUTO_INVAL_DATA | InitFlags::FUSE_CACHE_SYMLINKS;
        }
        if features.kills_privileges {
            wanted |= InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        }
        if let Err(missing) = config.add_capabilities(wanted) {
            tracing::debug!(?missing, "kernel lacks some capabilities");
            let _ = config.add_capabilities(wanted & !missing);
        }
        if features.passthrough {
            self.passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok();
            tracing::debug!(passthrough = self.passthrough, "read passthrough");
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name_os: &OsStr, reply: ReplyEntry) {
        let (_request, caller) = self.enter("lookup", req);
        match name(name_os).and_then(|n| self.view.lookup(parent.0, &n)) {
            Ok(Lookup::Found(e)) => {
                reply.entry(&e.ttl, &attr(&e.attr), Generation(e.generation));
            }
            // Node 0: the kernel caches the absence like an entry, so probes for files that
            // are not there (.gitignore in every directory) stop costing a request.
            Ok(Lookup::Absent { ttl }) => reply.entry(&ttl, &absent(), Generation(0)),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.view.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let (_request, caller) = self.enter("getattr", req);
        self.attr(reply, self.view.getattr(ino.0, fh.map(|fh| fh.0)), &caller);
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (_request, caller) = self.enter("setattr", req);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        let result = self.view.setattr(ino.0, set, fh.map(|fh| fh.0), caller);
        self.attr(reply, result, &caller);
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (_request, caller) = self.enter("readlink", req);
        match self.view.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name_os: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let (_request, caller) = self.enter("mknod", req);
        let result = name(name_os).and_then(|n| self.view.mknod(parent.0, &n, mode, umask, caller));
        self.entry(reply, result, &caller);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name_os: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (_request, caller) = self.enter("mkdir", req);
        let result = name(name_os).and_then(|n| self.view.mkdir(parent.0, &n, mode, umask, caller));
        self.entry(reply, result, &caller);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name_os: &OsStr, reply: ReplyEmpty) {
        let (_request, caller) = self.enter("unlink", req);
        let result = name(name_os).and_then(|n| self.view.remove(parent.0, &n, false, caller));
        self.empty(reply, result, &caller);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name_os: &OsStr, reply: ReplyEmpty) {
        let (_request, caller) = self.enter("rmdir", req);
        let result = name(name_os).and_then(|n| self.view.remove(parent.0, &n, true, caller));
        self.empty(reply, result, &caller);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (_request, caller) = self.enter("symlink", req);
        let result = name(link_name).and_then(|n| {
            self.view
                .symlink(parent.0, &n, target.as_os_str().as_bytes(), caller)
        });
        self.entry(reply, result, &caller);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name_os: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (_request, caller) = self.enter("rename", req);
        let result = name(name_os).and_then(|from| {
            let to = name(newname)?;
            self.view
                .rename(parent.0, &from, newparent.0, &to, flags.bits(), caller)
        });
        self.empty(reply, result, &caller);
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (_request, caller) = self.enter("link", req);
        let result = name(newname).and_then(|n| self.view.link(ino.0, newparent.0, &n, caller));
        self.entry(reply, result, &caller);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (_request, caller) = self.enter("open", req);
        match self.view.open(ino.0, flags.0, caller) {
            Ok(o) => match o.file {
                Some(file) if self.passthrough => self.open_passthrough(reply, ino, o, file),
                _ => reply.opened(FileHandle(o.fh), open_flags(&o)),
            },
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (_request, caller) = self.enter("read", req);
        match self.view.read(ino.0, fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (_request, caller) = self.enter("write", req);
        match self.view.write(fh.0, offset, data, caller) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _request = self.serving.enter();
        self.backings.release(ino.0, fh.0);
        self.view.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (_request, caller) = self.enter("fsync", req);
        self.empty(reply, self.view.fsync(ino.0, fh.0, datasync), &caller);
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (_request, caller) = self.enter("fsyncdir", req);
        self.empty(reply, self.view.fsync_dir(ino.0), &caller);
    }

    /// Nothing to flush: writes reach the file before they are answered. `ENOSYS` tells the
    /// kernel to stop sending `flush` on every close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _request = self.serving.enter();
        reply.error(Errno::ENOSYS);
    }

    /// `SEEK_DATA`/`SEEK_HOLE` are not passed through (the kernel then treats a file as all
    /// data, as many file systems do); `ENOSYS` tells it to stop asking.
    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        let _request = self.serving.enter();
        reply.error(Errno::ENOSYS);
    }

    /// Files of the view are always ready, as on a local file system; `ENOSYS` tells the
    /// kernel to answer `poll` so itself.
    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let _request = self.serving.enter();
        reply.error(Errno::ENOSYS);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (_request, caller) = self.enter("opendir", req);
        self.opened(reply, self.view.opendir(ino.0, caller), &caller);
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (_request, caller) = self.enter("readdir", req);
        let result = self.view.readdir(ino.0, fh.0, offset, |e| {
            // Without a node the kernel ignores the number; readdirplus or lookup gives it.
            let node = INodeNo(e.node.unwrap_or(u64::MAX));
            reply.add(node, e.offset, kind(e.kind), e.name)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (_request, caller) = self.enter("readdirplus", req);
        let result = self.view.readdirplus(ino.0, fh.0, offset, |e| {
            let (entry, generation) = (&e.entry, Generation(e.entry.generation));
            let node = INodeNo(entry.ino);
            reply.add(
                node,
                e.offset,
                e.name,
                &entry.ttl,
                &attr(&entry.attr),
                generation,
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _request = self.serving.enter();
        self.view.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (_request, caller) = self.enter("statfs", req);
        match self.view.statfs() {
            Ok(s) => reply.statfs(
                s.space.blocks,
                s.space.bfree,
                s.space.bavail,
                s.files,
                s.files_free,
                s.space.bsize,
                s.name_max,
                s.space.frsize,
            ),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (_request, caller) = self.enter("setxattr", req);
        let result = self
            .view
            .set_xattr(ino.0, name.as_bytes(), Some(value), flags, caller);
        self.empty(reply, result, &caller);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let (_request, caller) = self.enter("getxattr", req);
        let result = self.view.getxattr(ino.0, name.as_bytes());
        self.xattr(reply, result, size, &caller);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (_request, caller) = self.enter("listxattr", req);
        self.xattr(reply, self.view.listxattr(ino.0), size, &caller);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (_request, caller) = self.enter("removexattr", req);
        let result = self.view.set_xattr(ino.0, name.as_bytes(), None, 0, caller);
        self.empty(reply, result, &caller);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (_request, caller) = self.enter("access", req);
        self.empty(reply, self.view.access(ino.0, mask.bits()), &caller);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name_os: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (_request, caller) = self.enter("create", req);
        let result =
            name(name_os).and_then(|n| self.view.create(parent.0, &n, mode, umask, caller));
        match result {
            Ok((e, fh)) => reply.created(
                &e.ttl,
                &attr(&e.attr),
                Generation(e.generation),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let _request = self.serving.enter();
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (_request, caller) = self.enter("fallocate", req);
        let result = self.view.fallocate(fh.0, mode, offset, length);
        self.empty(reply, result, &caller);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _request = self.serving.enter();
        // Not offered: the kernel remembers and falls back to reads and writes, which the view
        // checks.
        reply.error(Errno::from_i32(libc::ENOSYS));
    }
}
