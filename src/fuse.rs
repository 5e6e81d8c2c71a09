//! The adapter between fuser and the [`View`]: each handler converts the kernel's arguments,
//! calls one view method and replies. No locks and no policy logic live here; every failure
//! goes out through `fail`, which logs it at its level.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyPoll,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::passthrough::{Attached, Backings};
use crate::path::{Name, NameError};
use crate::policy::WriteMode;
use crate::sys::write::SetTime;
use crate::sys::{self, Stat};
use crate::view::{
    Absence, CacheMode, Caller, DirSnapshot, Entry, FsError, FsResult, Opened, SetAttr, View,
};

/// Synthetic inode counts for `statfs`: the real ones would count hidden files.
const STATFS_FILES: u64 = 1 << 32;

/// How long the requests being served must have been none before an unmount goes ahead.
const SETTLE: Duration = Duration::from_millis(5);

/// Counts the requests the daemon has taken and not yet answered. An unmount ends the kernel's
/// side of the connection at once, and a reply written after that fails (fuser logs each such
/// failure as an error, on the terminal of `run` or a foreground mount), so the unmount first
/// lets the requests in hand be answered.
#[derive(Debug, Clone, Default)]
pub struct Serving(Arc<AtomicUsize>);

/// One request being served, counted until dropped.
struct Served<'a>(&'a AtomicUsize);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Serving {
    fn enter(&self) -> Served<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        Served(&self.0)
    }

    /// Waits, for at most `limit`, until no request has been in hand for a few milliseconds;
    /// whether that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.0.load(Ordering::Acquire) == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE {
                    return true;
                }
            } else {
                idle_since = None;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The fuser file system: a [`View`] behind the kernel protocol.
pub struct ScopeFs {
    view: Arc<View>,
    cache: CacheMode,
    /// Whether read-only opens are passed through, once the kernel has agreed to it.
    passthrough: bool,
    backings: Backings,
    /// Whether `open` and `opendir` are answered with `ENOSYS`, so the kernel stops sending
    /// them: each file read it cannot serve from its cache is then decided by `read` alone.
    no_open: bool,
    serving: Serving,
}

impl ScopeFs {
    pub fn new(view: Arc<View>, cache: CacheMode) -> Self {
        ScopeFs {
            view,
            cache,
            passthrough: false,
            backings: Backings::default(),
            no_open: false,
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

    /// For a view the kernel mounts read-only (so it refuses every write open itself), with
    /// kernel caching on: skip the open and release round trips of every file and directory.
    /// Reads then carry no handle and the kernel keeps data and listings as `open` would let
    /// it (`FOPEN_KEEP_CACHE`, `FOPEN_CACHE_DIR`), dropping them when a file's mtime or size
    /// is seen to change or a notification says so.
    pub fn without_opens(mut self, read_only_mount: bool) -> Self {
        self.no_open = read_only_mount
            && self.cache != CacheMode::Never
            && self.view.write_mode() == WriteMode::Deny;
        self
    }

    /// Whether `fh` is no handle at all: the kernel opened the file or directory without
    /// the daemon (a read-only view answers `open` and `opendir` with `ENOSYS`).
    fn unopened(&self, fh: FileHandle) -> bool {
        self.no_open && fh.0 == 0
    }

    /// The kernel reached the end of a listing it read without an open handle.
    fn listing_read(&self, fh: FileHandle, ino: INodeNo) {
        if self.unopened(fh) {
            self.view.listing_done(ino.0);
        }
    }

    /// How long the kernel may keep node `ino` of kind `kind`, an entry of `parent` when known:
    /// in `auto`, long only while watches see every change to it.
    fn ttl(&self, parent: Option<u64>, ino: u64, kind: sys::FileType) -> Duration {
        if self.cache == CacheMode::Auto
            && self.view.lasting(parent, ino, kind == sys::FileType::Dir)
        {
            CacheMode::WATCHED_TTL
        } else {
            self.cache.ttl()
        }
    }

    /// `ttl` for a new entry of `parent`.
    fn with_ttl(&self, parent: INodeNo, result: FsResult<Entry>) -> FsResult<(Entry, Duration)> {
        result.map(|e| {
            let ttl = self.ttl(Some(parent.0), e.ino, e.attr.kind);
            (e, ttl)
        })
    }

    /// The listing `readdir` reads: the open directory's, or without opens the node's own.
    fn listing(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> FsResult<Arc<DirSnapshot>> {
        if self.unopened(fh) {
            self.view.listing(ino.0, offset)
        } else {
            self.view.dir(fh.0)
        }
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

    fn entry(&self, reply: ReplyEntry, result: FsResult<(Entry, Duration)>, caller: &Caller) {
        match result {
            Ok((e, ttl)) => reply.entry(&ttl, &attr(&e.attr), Generation(0)),
            Err(e) => reply.error(self.fail(caller, &e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, result: FsResult<()>, caller: &Caller) {
        match result {
            Ok(()) => reply.ok(),
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
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
        TimeOrNow::Now => SetTime::Now,
    }
}

impl ScopeFs {
    /// What the kernel may keep of an open file or directory.
    fn open_flags(&self, ino: INodeNo, opened: Opened, dir: bool) -> FopenFlags {
        let mut flags = FopenFlags::empty();
        // A cached listing pays off only when the entries stay cached too: with short entry
        // times, a fresh readdirplus revalidates a whole directory in a few requests, where
        // a cached listing leaves one lookup per name to do.
        let lasting = match self.cache {
            CacheMode::Always => true,
            CacheMode::Auto => self.view.is_watched(ino.0),
            CacheMode::Never => false,
        };
        if lasting && dir {
            flags |= FopenFlags::FOPEN_CACHE_DIR;
        }
        if opened.keep_cache {
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        flags
    }
}

impl Filesystem for ScopeFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let mut wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS;
        if self.cache != CacheMode::Never {
            // Cached data is dropped when a file's mtime or size is seen to change.
            wanted |= InitFlags::FUSE_AUTO_INVAL_DATA | InitFlags::FUSE_CACHE_SYMLINKS;
        }
        if self.view.write_mode() == WriteMode::Overlay {
            // The daemon clears setuid/setgid and capabilities itself when a file is written,
            // truncated or chowned, so the kernel need not fetch attributes and ask for a
            // mode change first. Nothing to do in overlay mode: nothing in upper/ ever holds
            // those bits or `security.capability` (stripped at creation, chmod and copy-up,
            // and every SOURCE file is copied up before it is changed). Direct mode writes
            // SOURCE files that may hold them, so there the kernel keeps doing it.
            wanted |= InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        }
        if let Err(missing) = config.add_capabilities(wanted) {
            tracing::debug!(?missing, "kernel lacks some capabilities");
            let _ = config.add_capabilities(wanted & !missing);
        }
        // Passthrough needs CAP_SYS_ADMIN, a view nothing writes to, and opens to answer
        // (it also stops other file systems from stacking on the view, so only when used).
        if !self.no_open && self.view.write_mode() == WriteMode::Deny && crate::sys::euid() == 0 {
            self.passthrough = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok();
            tracing::debug!(passthrough = self.passthrough, "read passthrough");
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name_os: &OsStr, reply: ReplyEntry) {
        let (_request, caller) = self.enter("lookup", req);
        let name = match name(name_os) {
            Ok(n) => n,
            Err(e) => return reply.error(self.fail(&caller, &e)),
        };
        let result = self.view.lookup(parent.0, &name);
        let absence = match &result {
            Err(e) if e.is_not_found() => self.view.absence_cacheable(parent.0, &name),
            _ => None,
        };
        match absence {
            Some(how) => {
                // Node 0: the kernel caches the absence like an entry, so probes for files
                // that are not there (.gitignore in every directory) stop costing a request.
                let ttl = match self.cache {
                    CacheMode::Auto if self.view.is_watched(parent.0) => CacheMode::WATCHED_TTL,
                    cache => cache.ttl(),
                };
                let ttl = match how {
                    Absence::Recorded => ttl,
                    Absence::Brief => ttl.min(Absence::BRIEF),
                };
                reply.entry(&ttl, &absent(), Generation(0));
            }
            None => self.entry(reply, self.with_ttl(parent, result), &caller),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.view.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let (_request, caller) = self.enter("getattr", req);
        match self.view.getattr(ino.0, fh.map(|fh| fh.0)) {
            Ok(st) => reply.attr(&self.ttl(None, ino.0, st.kind), &attr(&st)),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
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
        match self.view.setattr(ino.0, set, fh.map(|fh| fh.0), caller) {
            Ok(st) => reply.attr(&self.ttl(None, ino.0, st.kind), &attr(&st)),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
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
        self.entry(reply, self.with_ttl(parent, result), &caller);
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
        self.entry(reply, self.with_ttl(parent, result), &caller);
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
        self.entry(reply, self.with_ttl(parent, result), &caller);
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
        self.entry(reply, self.with_ttl(newparent, result), &caller);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (_request, caller) = self.enter("open", req);
        if self.no_open {
            // Not a failure: the kernel treats ENOSYS as "open needs no daemon" from now on.
            return reply.error(Errno::ENOSYS);
        }
        match self.view.open(ino.0, flags.0, caller) {
            Ok(
                o @ Opened {
                    file: Some(file), ..
                },
            ) if self.passthrough => {
                let backing = self.backings.attach(ino.0, o.fh, file, || {
                    let fd = self.view.handle_fd(o.fh).map_err(io::Error::other)?;
                    reply.open_backing(fd)
                });
                match backing {
                    Ok(Attached::Backing(backing)) => {
                        reply.opened_passthrough(FileHandle(o.fh), FopenFlags::empty(), &backing)
                    }
                    Ok(Attached::Other) => {
                        // The kernel would read this node's first file, which its name no
                        // longer leads to. The node is given up and the open refused with
                        // ESTALE: the kernel then looks the name up again (a new node, for the
                        // file checked now) and opens that.
                        self.view.release(o.fh);
                        self.view.retire(ino.0);
                        reply.error(Errno::ESTALE);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "no passthrough for this open");
                        reply.opened(FileHandle(o.fh), self.open_flags(ino, o, false));
                    }
                }
            }
            Ok(o) => reply.opened(FileHandle(o.fh), self.open_flags(ino, o, false)),
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
        let result = if self.unopened(fh) {
            self.view.read_node(ino.0, offset, size)
        } else {
            self.view.read(fh.0, offset, size)
        };
        match result {
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
        let result = if self.unopened(fh) {
            // A file of a read-only view, opened without the daemon: nothing was written, so
            // there is nothing to sync once the node is found still visible.
            self.view.access(ino.0, libc::F_OK)
        } else {
            self.view.fsync(fh.0, datasync)
        };
        self.empty(reply, result, &caller);
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
        if self.no_open {
            return reply.error(Errno::ENOSYS);
        }
        match self.view.opendir(ino.0, caller) {
            Ok(o) => reply.opened(FileHandle(o.fh), self.open_flags(ino, o, true)),
            Err(e) => reply.error(self.fail(&caller, &e)),
        }
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
        let dir = match self.listing(ino, fh, offset) {
            Ok(dir) => dir,
            Err(e) => return reply.error(self.fail(&caller, &e)),
        };
        // Offsets are dense and synthetic: 1 is ".", 2 is "..", 3.. the visible entries.
        let dots = [(dir.ino, "."), (dir.parent, "..")];
        for (i, (ino, dot)) in dots.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, FileType::Directory, dot) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        let items = match self.view.dir_items(&dir) {
            Ok(items) => items,
            Err(e) => return reply.error(self.fail(&caller, &e)),
        };
        if skip >= items.len() {
            self.listing_read(fh, ino);
        }
        for (i, item) in items.iter().enumerate().skip(skip) {
            // The kernel ignores the inode number here; readdirplus or lookup gives the real one.
            let full = reply.add(
                INodeNo(u64::MAX),
                i as u64 + 3,
                kind(item.attr.kind),
                item.name.as_os_str(),
            );
            if full {
                break;
            }
        }
        reply.ok();
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
        let dir = match self.listing(ino, fh, offset) {
            Ok(dir) => dir,
            Err(e) => return reply.error(self.fail(&caller, &e)),
        };
        let dots = [(dir.ino, "."), (dir.parent, "..")];
        for (i, (ino, dot)) in dots.iter().enumerate().skip(offset as usize) {
            // The kernel takes no reference on "." and "..", so no lookup is counted.
            let Ok(st) = self.view.getattr(*ino, None) else {
                continue;
            };
            if reply.add(
                INodeNo(*ino),
                i as u64 + 1,
                dot,
                &self.cache.ttl(),
                &attr(&st),
                Generation(0),
            ) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        let items = match self.view.dir_items(&dir) {
            Ok(items) => items,
            Err(e) => return reply.error(self.fail(&caller, &e)),
        };
        if skip >= items.len() {
            self.listing_read(fh, ino);
        }
        for (i, item) in items.iter().enumerate().skip(skip) {
            // An entry removed since the snapshot is left out.
            let Some(e) = self.view.lookup_item(&dir, item) else {
                continue;
            };
            let full = reply.add(
                INodeNo(e.ino),
                i as u64 + 3,
                item.name.as_os_str(),
                &self.ttl(Some(dir.ino), e.ino, e.attr.kind),
                &attr(&e.attr),
                Generation(0),
            );
            if full {
                // Not sent: give back the reference just taken.
                self.view.forget(e.ino, 1);
                break;
            }
        }
        reply.ok();
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
                s.blocks,
                s.bfree,
                s.bavail,
                STATFS_FILES,
                STATFS_FILES / 2,
                s.bsize,
                255,
                s.frsize,
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
        self.xattr(
            reply,
            self.view.getxattr(ino.0, name.as_bytes()),
            size,
            &caller,
        );
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
                &self.ttl(Some(parent.0), e.ino, e.attr.kind),
                &attr(&e.attr),
                Generation(0),
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
        self.empty(
            reply,
            self.view.fallocate(fh.0, mode, offset, length),
            &caller,
        );
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

/// Tells the kernel of every change the view's watches report, so that what it caches for
/// long never outlives a change made underneath. Returns when the view is gone; if events
/// can no longer be read, the watches are given up (short cache times from then on) and the
/// kernel forgets everything it cached.
pub fn follow_changes(mut inotify: inotify::Inotify, view: Weak<View>, notifier: fuser::Notifier) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let events = match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read changes under SOURCE; caching briefly from now on");
                if let Some(view) = view.upgrade() {
                    view.abandon_watches();
                    forget_everything(&view, &notifier);
                }
                return;
            }
        };
        let Some(view) = view.upgrade() else {
            return;
        };
        for event in events {
            changed(&view, &notifier, &event);
        }
    }
}

/// One reported change. Notifications about what the kernel does not hold fail with ENOENT,
/// which is ignored.
fn changed(view: &View, notifier: &fuser::Notifier, event: &inotify::Event<&OsStr>) {
    use inotify::EventMask;
    if event.mask.contains(EventMask::Q_OVERFLOW) {
        tracing::info!(
            "changes under SOURCE came too fast to follow; the kernel forgets its cache"
        );
        forget_everything(view, notifier);
        return;
    }
    let id = event.wd.get_watch_descriptor_id();
    let dirs = view.watched_nodes(id);
    if event.mask.contains(EventMask::IGNORED) {
        view.watch_ended(id);
    }
    let renamed = EventMask::CREATE
        | EventMask::DELETE
        | EventMask::MOVED_FROM
        | EventMask::MOVED_TO
        | EventMask::IGNORED;
    for dir in dirs {
        let child = event.name.and_then(|n| Name::from_os(n).ok());
        match child {
            _ if event.mask.intersects(renamed) => {
                if let Some(name) = &child {
                    let _ = notifier.inval_entry(INodeNo(dir), name.as_os_str());
                }
                // Its attributes and cached listing.
                let _ = notifier.inval_inode(INodeNo(dir), 0, 0);
            }
            None => {
                let _ = notifier.inval_inode(INodeNo(dir), -1, 0);
            }
            Some(name) => {
                if let Some(node) = view.child(dir, &name) {
                    // Data too when it was written; attributes alone otherwise.
                    let offset = if event.mask.contains(EventMask::MODIFY) {
                        0
                    } else {
                        -1
                    };
                    let _ = notifier.inval_inode(INodeNo(node), offset, 0);
                }
            }
        }
    }
}

/// Makes the kernel forget every entry it may have cached, present or absent, and the
/// attributes, data and listings of every node it holds. Returns how many entries it was told of.
pub fn forget_everything(view: &View, notifier: &fuser::Notifier) -> usize {
    let names = view.cached_names();
    for (parent, name) in &names {
        // ENOENT only means the kernel had already dropped it.
        let _ = notifier.inval_entry(INodeNo(*parent), name.as_os_str());
    }
    for node in view.nodes() {
        let _ = notifier.inval_inode(INodeNo(node), 0, 0);
    }
    names.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_unmount_waits_for_the_requests_in_hand() {
        let serving = Serving::default();
        assert!(serving.wait_idle(Duration::from_secs(1)), "nothing in hand");
        let taken = serving.enter();
        assert!(
            !serving.wait_idle(Duration::from_millis(20)),
            "a request in hand was not waited for"
        );
        // Both ends are read on one clock, around the answer itself, so a waiter that starts
        // late (a loaded machine) cannot make the check fail, and one that returns before the
        // answer always does.
        let (idle, answered, returned) = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let idle = serving.wait_idle(Duration::from_secs(5));
                (idle, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(50));
            let answered = Instant::now();
            drop(taken);
            let (idle, returned) = waiter.join().unwrap();
            (idle, answered, returned)
        });
        assert!(idle, "the wait gave up with the request answered");
        assert!(
            returned >= answered + SETTLE,
            "the wait ended {:?} before the request was answered and settled",
            (answered + SETTLE).saturating_duration_since(returned)
        );
    }
}
