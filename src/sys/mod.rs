//! Every raw syscall and `unsafe` block of scopefs.
//!
//! SOURCE is reached only through descriptors: [`resolve`] opens a relative path beneath a root
//! descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, and
//! every other call here takes a descriptor plus at most one validated [`Name`]. No path string
//! from the kernel ever reaches a syscall from the host's root, and nothing here follows a
//! symlink. This module knows nothing of the policy or of FUSE.
//!
//! System calls go through `rustix`, which wraps them safely; what it lacks (`fchmodat2` on a
//! descriptor, `mount_setattr`, the raw `clone` of a user namespace, a process's argument area)
//! is called here through `libc`, each `unsafe` block with the invariant it relies on.

pub mod contain;
pub mod fusermount;
pub mod handle;
pub mod mountinfo;
pub mod ns;
pub mod spawn;
pub mod tree;
pub mod write;

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::path::{Name, RelPath};

/// A failed `libc` call's error, for what `rustix` does not wrap.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens a directory named by the user on the command line (SOURCE), as an `O_PATH` anchor
/// for every later [`resolve`]. This is the one open by host path: the user chose it.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
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
        Open::Path => OFlags::PATH | OFlags::NOFOLLOW,
        Open::Dir => OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
    } | OFlags::CLOEXEC;
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
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        )?;
        dir = Some(step);
        rest = tail.get(1..).unwrap_or_default();
    }
    let base = dir.as_ref().map_or(root, |d| d.as_fd());
    openat2(base, OsStr::from_bytes(rest), flags)
}

/// Paths this long or longer are resolved in several steps (PATH_MAX is 4096).
const CHUNK: usize = 4000;

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`.
fn openat2(dir: BorrowedFd<'_>, path: &OsStr, flags: OFlags) -> io::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // The kernel returns EAGAIN when a concurrent rename raced the lookup; retry a few times.
    for _ in 0..16 {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) => {}
            result => return Ok(result?),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Opens one child `name` of the directory `dir` as a directory, without following symlinks.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &Name) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(
        dir,
        name.as_bytes(),
        flags,
        Mode::empty(),
    )?)
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
    fn from_raw(st: &rustix::fs::Stat) -> io::Result<Self> {
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
            atime: time(st.st_atime, nanos(st.st_atime_nsec)),
            mtime: time(st.st_mtime, nanos(st.st_mtime_nsec)),
            ctime: time(st.st_ctime, nanos(st.st_ctime_nsec)),
        })
    }
}

/// The nanoseconds of a time in `stat`, whose type differs between architectures.
fn nanos(nsec: impl TryInto<i64>) -> i64 {
    nsec.try_into().unwrap_or(0)
}

/// `fstat` of a descriptor (an `O_PATH` one included).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Stat::from_raw(&rustix::fs::fstat(fd)?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: one component, never following a symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &Name) -> io::Result<Stat> {
    Stat::from_raw(&rustix::fs::statat(
        dir,
        name.as_bytes(),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// The target of the symlink that `fd` (opened with `O_PATH | O_NOFOLLOW`) refers to.
pub fn readlink(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    readlink_at(fd, c"")
}

/// The target of the symlink `name` in the directory `dir`.
pub fn readlink_child(dir: BorrowedFd<'_>, name: &Name) -> io::Result<Vec<u8>> {
    readlink_at(dir, name.as_bytes())
}

fn readlink_at(fd: BorrowedFd<'_>, name: impl rustix::path::Arg) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = rustix::fs::readlinkat_raw(fd, name, &mut buf[..])?;
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
    rustix::fs::seek(dir, rustix::fs::SeekFrom::Start(0))?;
    let mut out = Vec::new();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut entries = rustix::fs::RawDir::new(dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(DirEntry {
                name: name.to_vec(),
                d_type: d_type(entry.file_type()),
            });
        }
    }
    Ok(out)
}

/// The `d_type` of a directory entry's type.
fn d_type(kind: rustix::fs::FileType) -> u8 {
    use rustix::fs::FileType as T;
    match kind {
        T::RegularFile => libc::DT_REG,
        T::Directory => libc::DT_DIR,
        T::Symlink => libc::DT_LNK,
        T::Fifo => libc::DT_FIFO,
        T::Socket => libc::DT_SOCK,
        T::CharacterDevice => libc::DT_CHR,
        T::BlockDevice => libc::DT_BLK,
        T::Unknown => libc::DT_UNKNOWN,
    }
}

/// `/proc/self/fd`, opened once, to reopen `O_PATH` descriptors with real access modes.
fn proc_fd_dir() -> Option<&'static OwnedFd> {
    static DIR: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DIR.get_or_init(|| {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(c"/proc/self/fd", flags, Mode::empty()).ok()
    })
    .as_ref()
}

/// The `/proc/self/fd` directory and the name of `fd`'s entry in it, if `/proc` is there.
fn proc_fd_entry(fd: BorrowedFd<'_>) -> Option<(&'static OwnedFd, rustix::path::DecInt)> {
    let dir = proc_fd_dir()?;
    Some((dir, rustix::path::DecInt::from_fd(fd)))
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
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let fd = reopen(root, rel, path_fd, st, access | OFlags::NONBLOCK)?;
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
    reopen(root, rel, path_fd, st, OFlags::RDONLY | OFlags::DIRECTORY)
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
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    if let Some((proc_dir, name)) = proc_fd_entry(path_fd) {
        // The magic link names our own descriptor, already checked to be of the expected type.
        return Ok(rustix::fs::openat(
            proc_dir,
            name.as_c_str(),
            flags,
            Mode::empty(),
        )?);
    }
    let fd = openat2(root, rel.as_os_str(), flags | OFlags::NOFOLLOW)?;
    let again = fstat(fd.as_fd())?;
    if (again.dev, again.ino, again.kind) != (st.dev, st.ino, st.kind) {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(fd)
}

/// Calls `fill` with a growing buffer until what it returns fits (xattr calls answer
/// `ERANGE` when the buffer is too small); values are at most 64 KiB on Linux.
fn read_growing(
    mut fill: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 65536 * 4 => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The value of the extended attribute `name` of the file open at `fd`.
pub fn getxattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    read_growing(|buf| rustix::fs::fgetxattr(fd, name, buf))
}

/// The NUL-separated list of extended attribute names of the file open at `fd`.
pub fn listxattr(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    read_growing(|buf| rustix::fs::flistxattr(fd, buf))
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
    let st = rustix::fs::fstatvfs(fd)?;
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
    let st = rustix::fs::fstatfs(fd)?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    Ok(st.f_type as i64)
}

/// The inode flags (`FS_IOC_GETFLAGS`, as `chattr` sets them) of the file open at `fd`, which
/// must be open for reading (not `O_PATH`).
pub fn inode_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_long> {
    let flags = rustix::fs::ioctl_getflags(fd)?;
    Ok(libc::c_long::from(flags.bits()))
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
    use rustix::mount::MountFlags;
    use std::os::fd::AsRawFd;
    let dev = rustix::fs::open(c"/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        dev.as_raw_fd(),
        euid(),
        rustix::process::getegid().as_raw()
    );
    if options.allow_other {
        data.push_str(",allow_other");
    }
    if options.default_permissions {
        data.push_str(",default_permissions");
    }
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if options.read_only {
        flags |= MountFlags::RDONLY;
    }
    let data =
        std::ffi::CString::new(data).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    rustix::mount::mount(
        options.source.as_str(),
        mountpoint,
        options.fs_type.as_str(),
        flags,
        data.as_c_str(),
    )?;
    Ok(dev)
}

/// `umount2(path, flags)`; `lazy` detaches a busy or dead mount.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    use rustix::mount::UnmountFlags;
    let flags = if lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    Ok(rustix::mount::unmount(path, flags)?)
}

/// The fields of `/proc/PROC/stat` (`PROC` a pid or `self`) after the command name, which is
/// in parentheses and may hold spaces and parentheses itself: they start with the state.
pub fn stat_after_comm(proc: &str) -> io::Result<String> {
    let stat = std::fs::read_to_string(format!("/proc/{proc}/stat"))?;
    match stat.rsplit_once(')') {
        Some((_, rest)) => Ok(rest.to_string()),
        None => Err(io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// Whether the process `pid` still runs: a zombie counts as gone once all its threads have
/// exited (and so closed its descriptors), since nobody may be reaping it.
pub fn process_alive(pid: u32) -> bool {
    let Some(pid_t) = libc::pid_t::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    let exists = match rustix::process::test_kill_process(pid_t) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    };
    if !exists {
        return false;
    }
    let zombie = match stat_after_comm(&pid.to_string()) {
        Ok(rest) => rest.trim_start().starts_with('Z'),
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
    use rustix::process::DumpableBehavior;
    Ok(rustix::process::set_dumpable_behavior(
        DumpableBehavior::NotDumpable,
    )?)
}

/// Points standard output at `/dev/null`, once the readiness line has been written to it.
pub fn stdout_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    Ok(rustix::stdio::dup2_stdout(null)?)
}

/// Points standard input at `/dev/null`, once what was sent on it has been read.
pub fn stdin_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).open("/dev/null")?;
    Ok(rustix::stdio::dup2_stdin(null)?)
}

/// The descriptor limit (soft, hard) this process started with, recorded by
/// [`raise_descriptor_limit`] before it changes it.
static STARTING_NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft limit on open descriptors to the hard limit (capped by the kernel's
/// `fs.nr_open`) and returns it. Every file an agent holds open through a view costs the daemon
/// one descriptor, so under a shell's usual soft limit of 1,024 one process holding many files
/// would make every other process's opens fail.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    // `None` is no limit.
    let limit = |value: Option<u64>| value.unwrap_or(libc::RLIM_INFINITY);
    let mut lim = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit(lim.current), limit(lim.maximum));
    STARTING_NOFILE.get_or_init(|| (soft, hard));
    let mut wanted = hard;
    if wanted == libc::RLIM_INFINITY {
        wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(soft);
    }
    if wanted > soft {
        lim.current = Some(wanted);
        setrlimit(Resource::Nofile, lim)?;
        return Ok(wanted);
    }
    Ok(soft)
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
    let after_comm = stat_after_comm("self")?;
    let bad = || io::Error::from_raw_os_error(libc::EIO);
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
    rustix::process::geteuid().as_raw()
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
