//! Every raw syscall and `unsafe` block of scopefs.
//!
//! SOURCE is reached only through descriptors: [`resolve`] opens a relative path beneath a root
//! descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, and
//! every other call here takes a descriptor plus at most one validated [`Name`]. No path string
//! from the kernel ever reaches a syscall from the host's root, and nothing here follows a
//! symlink. This module knows nothing of the policy or of FUSE.

pub mod contain;
pub mod fusermount;
pub mod mountinfo;
pub mod ns;
pub mod spawn;
pub mod tree;
pub mod write;

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::path::{Name, RelPath};

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Wraps a descriptor number a syscall just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open-like syscall, so it is a valid
    // descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Opens a directory named by the user on the command line (SOURCE), as an `O_PATH` anchor
/// for every later [`resolve`]. This is the one open by host path: the user chose it.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    Ok(owned(fd))
}

/// How [`resolve`] opens the final component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// `O_PATH | O_NOFOLLOW`: a handle on whatever is there, a symlink included.
    Path,
    /// `O_RDONLY | O_DIRECTORY`: a directory to read entries from.
    Dir,
}

/// Opens `rel` beneath `root` without following any symlink or leaving `root`:
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`. A symlink on the way
/// fails with `ELOOP`; with [`Open::Path`] a symlink as the last component is opened itself.
pub fn resolve(root: BorrowedFd<'_>, rel: &RelPath, how: Open) -> io::Result<OwnedFd> {
    let flags = match how {
        Open::Path => libc::O_PATH | libc::O_NOFOLLOW,
        Open::Dir => libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    } | libc::O_CLOEXEC;
    let bytes = rel.as_bytes();
    if bytes.len() < CHUNK {
        return openat2(root, rel.as_os_str(), flags);
    }
    // Past PATH_MAX: walk in chunks of whole components, each beneath the last.
    let mut dir: Option<OwnedFd> = None;
    let mut rest = bytes;
    while rest.len() >= CHUNK {
        let cut = rest
            .get(..CHUNK)
            .and_then(|head| head.iter().rposition(|b| *b == b'/'))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
        let (head, tail) = rest.split_at(cut);
        let base = dir.as_ref().map_or(root, |d| d.as_fd());
        let step = openat2(
            base,
            OsStr::from_bytes(head),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )?;
        dir = Some(step);
        rest = tail.get(1..).unwrap_or_default();
    }
    let base = dir.as_ref().map_or(root, |d| d.as_fd());
    openat2(base, OsStr::from_bytes(rest), flags)
}

/// Paths this long or longer are resolved in several steps (PATH_MAX is 4096).
const CHUNK: usize = 4000;

/// `struct open_how` of linux/openat2.h (libc's is non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: BorrowedFd<'_>, path: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstring(path.as_bytes())?;
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // The kernel returns EAGAIN when a concurrent rename raced the lookup; retry a few times.
    for _ in 0..16 {
        // SAFETY: `c` and `how` are valid for the duration of the call and `size` is the size
        // of the struct passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
            return Ok(owned(fd));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) {
            return Err(err);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Opens one child `name` of the directory `dir` as a directory, without following symlinks.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &Name) -> io::Result<OwnedFd> {
    let c = cstring(name.as_bytes())?;
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(owned(fd))
}

/// The kind of a file system object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileType {
    fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::File,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            _ => return None,
        })
    }
}

/// The attributes of one object, as `stat` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub kind: FileType,
    /// Permission bits (and setuid/setgid/sticky), without the type.
    pub perm: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blocks: u64,
    pub blksize: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    match u64::try_from(sec) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nsec),
        Err(_) => UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::new(0, nsec),
    }
}

impl Stat {
    fn from_raw(st: &libc::stat64) -> io::Result<Self> {
        let kind = FileType::from_mode(st.st_mode)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        Ok(Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            kind,
            perm: st.st_mode & 0o7777,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
            atime: time(st.st_atime, st.st_atime_nsec),
            mtime: time(st.st_mtime, st.st_mtime_nsec),
            ctime: time(st.st_ctime, st.st_ctime_nsec),
        })
    }
}

/// `fstat` of a descriptor (an `O_PATH` one included).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `st` is a writable buffer of the right type; on success the kernel filled it.
    check(unsafe { libc::fstat64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat64 returned success, so the buffer is initialised.
    Stat::from_raw(unsafe { st.assume_init_ref() })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: one component, never following a symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &Name) -> io::Result<Stat> {
    let c = cstring(name.as_bytes())?;
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `c` is a valid C string, `st` a writable buffer of the right type.
    check(unsafe {
        libc::fstatat64(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat64 returned success, so the buffer is initialised.
    Stat::from_raw(unsafe { st.assume_init_ref() })
}

/// The target of the symlink that `fd` (opened with `O_PATH | O_NOFOLLOW`) refers to.
pub fn readlink(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    readlink_at(fd, c"")
}

/// The target of the symlink `name` in the directory `dir`.
pub fn readlink_child(dir: BorrowedFd<'_>, name: &Name) -> io::Result<Vec<u8>> {
    let c = cstring(name.as_bytes())?;
    readlink_at(dir, &c)
}

fn readlink_at(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for `buf.len()` bytes and `name` is a valid C string.
    let n = check_size(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

/// One entry read from a directory.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    /// `d_type`; `DT_UNKNOWN` when the file system does not say.
    pub d_type: u8,
}

/// Every entry of the directory `dir` (opened with [`Open::Dir`]) except `.` and `..`, read
/// with `getdents64` from offset 0.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    // SAFETY: lseek on a live descriptor has no memory effects.
    check(unsafe { libc::lseek64(dir.as_raw_fd(), 0, libc::SEEK_SET) } as libc::c_int)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
        if n == 0 {
            return Ok(out);
        }
        parse_dirents(buf.get(..n).unwrap_or_default(), &mut out)?;
    }
}

/// Parses `struct linux_dirent64` records: u64 ino, i64 off, u16 reclen, u8 type, name NUL.
fn parse_dirents(mut buf: &[u8], out: &mut Vec<DirEntry>) -> io::Result<()> {
    let bad = || io::Error::from_raw_os_error(libc::EIO);
    while !buf.is_empty() {
        let reclen_bytes: [u8; 2] = buf
            .get(16..18)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let reclen = usize::from(u16::from_ne_bytes(reclen_bytes));
        let rec = buf.get(..reclen).ok_or_else(bad)?;
        let d_type = *rec.get(18).ok_or_else(bad)?;
        let name_area = rec.get(19..).ok_or_else(bad)?;
        let len = name_area
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(name_area.len());
        let name = name_area.get(..len).ok_or_else(bad)?;
        if name != b"." && name != b".." {
            out.push(DirEntry {
                name: name.to_vec(),
                d_type,
            });
        }
        buf = buf.get(reclen..).ok_or_else(bad)?;
        if reclen == 0 {
            return Err(bad());
        }
    }
    Ok(())
}

/// `/proc/self/fd`, opened once, to reopen `O_PATH` descriptors with real access modes.
fn proc_fd_dir() -> Option<&'static OwnedFd> {
    static DIR: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DIR.get_or_init(|| {
        // SAFETY: the literal is a valid C string.
        let fd = unsafe {
            libc::open(
                c"/proc/self/fd".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        (fd >= 0).then(|| owned(fd))
    })
    .as_ref()
}

/// The `/proc/self/fd` directory and the name of `fd`'s entry in it, if `/proc` is there.
fn proc_fd_entry(fd: BorrowedFd<'_>) -> Option<(&'static OwnedFd, CString)> {
    let dir = proc_fd_dir()?;
    let name = CString::new(fd.as_raw_fd().to_string()).ok()?;
    Some((dir, name))
}

/// Opens the regular file at `rel` beneath `root` for reading (or, with `write`, reading and
/// writing): `O_NONBLOCK | O_NOFOLLOW`, checked to be a regular file before the open so that no
/// device or FIFO is ever opened. For files nothing has judged (the overlay's own): a file the
/// view checked is opened from the descriptor it was checked by, with [`reopen_regular`], since
/// resolving its path again may reach another file.
pub fn open_regular(root: BorrowedFd<'_>, rel: &RelPath, write: bool) -> io::Result<File> {
    let path_fd = resolve(root, rel, Open::Path)?;
    let st = fstat(path_fd.as_fd())?;
    reopen_regular(root, rel, path_fd.as_fd(), &st, write)
}

/// Opens the regular file that `path_fd` (an `O_PATH` descriptor of `rel` under `root`, with
/// attributes `st`) holds, through its own magic link: the very file that was checked, never
/// another that took its name since.
pub fn reopen_regular(
    root: BorrowedFd<'_>,
    rel: &RelPath,
    path_fd: BorrowedFd<'_>,
    st: &Stat,
    write: bool,
) -> io::Result<File> {
    if st.kind != FileType::File {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
    let fd = reopen(root, rel, path_fd, st, access | libc::O_NONBLOCK)?;
    Ok(File::from(fd))
}

/// Opens the directory that `path_fd` (an `O_PATH` descriptor of `rel` under `root`, with
/// attributes `st`) holds for reading, through its own magic link, and checks it is still that
/// directory: the descriptor of the very directory that was checked, for `fgetxattr` and the
/// like (which an `O_PATH` descriptor does not allow).
pub fn reopen_dir(
    root: BorrowedFd<'_>,
    rel: &RelPath,
    path_fd: BorrowedFd<'_>,
    st: &Stat,
) -> io::Result<OwnedFd> {
    if st.kind != FileType::Dir {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    reopen(root, rel, path_fd, st, libc::O_RDONLY | libc::O_DIRECTORY)
}

/// Opens the object `path_fd` holds with `flags`: through `/proc/self/fd`, whose magic link
/// leads to the very inode of the descriptor whatever has happened to its name since. Without
/// `/proc` it is opened by `rel` beneath `root` again, and must then be the object `st`
/// describes (same device, inode and type), else `ENOENT`.
fn reopen(
    root: BorrowedFd<'_>,
    rel: &RelPath,
    path_fd: BorrowedFd<'_>,
    st: &Stat,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    if let Some((proc_dir, name)) = proc_fd_entry(path_fd) {
        // SAFETY: `name` is a valid C string and `proc_dir` a live descriptor. The magic link
        // names our own descriptor, already checked to be of the expected type.
        return Ok(owned(check(unsafe {
            libc::openat(proc_dir.as_raw_fd(), name.as_ptr(), flags)
        })?));
    }
    let fd = openat2(root, rel.as_os_str(), flags | libc::O_NOFOLLOW)?;
    let again = fstat(fd.as_fd())?;
    if (again.dev, again.ino, again.kind) != (st.dev, st.ino, st.kind) {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(fd)
}

/// Calls `fill` with a growing buffer until what it returns fits (xattr calls answer
/// `ERANGE` when the buffer is too small); values are at most 64 KiB on Linux.
fn read_growing(mut fill: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match check_size(fill(&mut buf)) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < 65536 * 4 => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The value of the extended attribute `name` of the file open at `fd`.
pub fn getxattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cstring(name)?;
    read_growing(|buf| {
        // SAFETY: `c` is a valid C string; `buf` is writable for `buf.len()` bytes.
        unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    })
}

/// The NUL-separated list of extended attribute names of the file open at `fd`.
pub fn listxattr(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    read_growing(|buf| {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// File system statistics of the file system holding `fd`.
#[derive(Debug, Clone, Copy)]
pub struct FsStat {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub bsize: u32,
    pub frsize: u32,
}

/// `fstatvfs` of a descriptor.
pub fn statvfs(fd: BorrowedFd<'_>) -> io::Result<FsStat> {
    let mut st = MaybeUninit::<libc::statvfs64>::uninit();
    // SAFETY: `st` is a writable buffer of the right type.
    check(unsafe { libc::fstatvfs64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatvfs64 succeeded, so the buffer is initialised.
    let st = unsafe { st.assume_init_ref() };
    Ok(FsStat {
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        bsize: u32::try_from(st.f_bsize).unwrap_or(4096),
        frsize: u32::try_from(st.f_frsize).unwrap_or(4096),
    })
}

/// The `f_type` magic number of the file system a descriptor is on (`fstatfs`).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let mut st = MaybeUninit::<libc::statfs64>::uninit();
    // SAFETY: `st` is a writable buffer of the right type.
    check(unsafe { libc::fstatfs64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs64 succeeded, so the buffer is initialised.
    let st = unsafe { st.assume_init_ref() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    Ok(st.f_type as i64)
}

/// The inode flags (`FS_IOC_GETFLAGS`, as `chattr` sets them) of the file open at `fd`, which
/// must be open for reading (not `O_PATH`).
pub fn inode_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_long> {
    let mut flags: libc::c_long = 0;
    // SAFETY: `flags` is writable and wider than the int the kernel stores.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) })?;
    Ok(flags)
}

/// How to mount a FUSE file system.
#[derive(Debug, Clone)]
pub struct FuseMountOptions {
    /// The mount source shown in mountinfo (`scopefs:PID`).
    pub source: String,
    /// The file system type, `fuse.SUBTYPE`.
    pub fs_type: String,
    pub read_only: bool,
    pub allow_other: bool,
    pub default_permissions: bool,
}

/// Opens `/dev/fuse` and mounts a FUSE file system on it at `mountpoint` (always
/// `nosuid,nodev`). Needs CAP_SYS_ADMIN; returns the connection's descriptor.
pub fn mount_fuse(mountpoint: &Path, options: &FuseMountOptions) -> io::Result<OwnedFd> {
    // SAFETY: the literal is a valid C string.
    let dev = owned(check(unsafe {
        libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC)
    })?);
    let target = cstring(mountpoint.as_os_str().as_bytes())?;
    let source = cstring(options.source.as_bytes())?;
    let fs_type = cstring(options.fs_type.as_bytes())?;
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        dev.as_raw_fd(),
        euid(),
        // SAFETY: getegid cannot fail and has no memory effects.
        unsafe { libc::getegid() }
    );
    if options.allow_other {
        data.push_str(",allow_other");
    }
    if options.default_permissions {
        data.push_str(",default_permissions");
    }
    let data = cstring(data.as_bytes())?;
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if options.read_only {
        flags |= libc::MS_RDONLY;
    }
    // SAFETY: every pointer is a valid C string that outlives the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fs_type.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })?;
    Ok(dev)
}

/// `umount2(path, flags)`; `lazy` detaches a busy or dead mount.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    let c = cstring(path.as_os_str().as_bytes())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::umount2(c.as_ptr(), flags) })?;
    Ok(())
}

/// Whether the process `pid` still runs: a zombie counts as gone once all its threads have
/// exited (and so closed its descriptors), since nobody may be reaping it.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid_t, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    let zombie = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => return false,
    };
    if !zombie {
        return true;
    }
    // A zombie leader may still have threads on their way out, holding the process's
    // descriptors (and so its locks); it is gone once it is the only task left.
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| tasks.count() > 1)
}

/// Makes the process non-dumpable so that other processes of the same user cannot read its
/// memory or open its descriptors through `/proc/PID/fd`.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) has no memory effects.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    Ok(())
}

/// Points standard output at `/dev/null`, once the readiness line has been written to it.
pub fn stdout_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: both descriptors are valid; dup2 atomically replaces descriptor 1.
    check(unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) })?;
    Ok(())
}

/// Points standard input at `/dev/null`, once what was sent on it has been read.
pub fn stdin_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).open("/dev/null")?;
    // SAFETY: both descriptors are valid; dup2 atomically replaces descriptor 0.
    check(unsafe { libc::dup2(null.as_raw_fd(), libc::STDIN_FILENO) })?;
    Ok(())
}

/// The descriptor limit (soft, hard) this process started with, recorded by
/// [`raise_descriptor_limit`] before it changes it.
static STARTING_NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// The limit on open descriptors as (soft, hard).
fn nofile_limit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim)
}

/// Raises the soft limit on open descriptors to the hard limit (capped by the kernel's
/// `fs.nr_open`) and returns it. Every file an agent holds open through a view costs the daemon
/// one descriptor, so under a shell's usual soft limit of 1,024 one process holding many files
/// would make every other process's opens fail.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    let mut lim = nofile_limit()?;
    STARTING_NOFILE.get_or_init(|| (lim.rlim_cur, lim.rlim_max));
    let mut wanted = lim.rlim_max;
    if wanted == libc::RLIM_INFINITY {
        wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(lim.rlim_cur);
    }
    if wanted > lim.rlim_cur {
        lim.rlim_cur = wanted;
        // SAFETY: setrlimit reads the struct we pass; the soft limit stays within the hard one.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// The descriptor limit this process started with, if [`raise_descriptor_limit`] changed it.
fn starting_descriptor_limit() -> Option<libc::rlimit> {
    let (soft, hard) = *STARTING_NOFILE.get()?;
    Some(libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    })
}

/// Blanks this process's command line in `/proc/PID/cmdline` (which every user may read)
/// after its first `keep` arguments, so that a daemon's flags (`--hide private/`, paths) do not
/// tell other users what the view hides. Call it once the arguments have been parsed, before
/// any thread starts: [`std::env::args_os`] reads the same memory and would see blanks after.
pub fn hide_arguments(keep: usize) -> io::Result<()> {
    // Fields 48 and 49 of /proc/self/stat (Linux 3.5): where the kernel put the arguments.
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::from_raw_os_error(libc::EIO);
    let after_comm = stat.rsplit_once(')').ok_or_else(bad)?.1;
    let mut fields = after_comm.split_whitespace().skip(45);
    let mut next =
        || -> io::Result<usize> { fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad) };
    let (start, end) = (next()?, next()?);
    if end <= start {
        return Ok(());
    }
    let len = end - start;
    // SAFETY: [start, end) is this process's own argument area, which the kernel mapped
    // readable and writable on its stack at exec (and which nothing has moved: scopefs never
    // calls prctl(PR_SET_MM)). Nothing holds a reference into it: the standard library keeps
    // only the pointers it reads afresh in `args_os`, and no other thread runs yet.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
    // Just past the NUL that ends argument number `keep`.
    let cut = match keep.checked_sub(1) {
        None => 0,
        Some(last) => area
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == 0)
            .nth(last)
            .map_or(len, |(i, _)| i + 1),
    };
    if let Some(rest) = area.get_mut(cut..) {
        rest.fill(0);
    }
    Ok(())
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no memory effects.
    unsafe { libc::geteuid() }
}

/// The uid that owners outside this process's user namespace show as (the kernel's overflow
/// uid), when the process is in a user namespace that does not map every uid; `None` in the
/// initial namespace, where every owner is what it says.
pub fn unmapped_owner() -> Option<u32> {
    let map = std::fs::read_to_string("/proc/self/uid_map").ok()?;
    let whole = map.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields == ["0", "0", "4294967295"]
    });
    if whole {
        return None;
    }
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .or(Some(65534))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_symlinks_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("l")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        assert!(resolve(root.as_fd(), &p("a/f"), Open::Path).is_ok());
        let err = resolve(root.as_fd(), &p("l/passwd"), Open::Path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert!(resolve(root.as_fd(), &p("l"), Open::Path).is_ok());
        let dirfd = resolve(root.as_fd(), &RelPath::root(), Open::Dir).unwrap();
        let mut names: Vec<Vec<u8>> = read_dir(dirfd.as_fd())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, vec![b"a".to_vec(), b"l".to_vec()]);
        assert!(open_regular(root.as_fd(), &p("a/f"), false).is_ok());
        assert!(open_regular(root.as_fd(), &p("a"), false).is_err());
        assert!(open_regular(root.as_fd(), &p("l"), false).is_err());
    }
}
