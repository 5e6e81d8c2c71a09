//! The syscalls of the write path: creating, removing and renaming entries by one validated
//! name beneath a directory descriptor, and changing an open file. Like the rest of `sys`, every
//! call takes a descriptor plus at most one [`Name`], and none follows a symlink.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::process::{Gid, Uid};

use crate::path::Name;

/// `flock(file, LOCK_EX | LOCK_NB)`: `Ok(true)` when the lock was taken, `Ok(false)` when
/// another open file description holds it. The lock lasts as long as `file` stays open.
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    use rustix::fs::FlockOperation;
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `openat(dir, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, mode)`: a new regular file; it
/// never opens something that already exists (a planted symlink included).
pub fn create_file(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(
        dir,
        name.as_bytes(),
        flags,
        Mode::from_raw_mode(mode),
    )?)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(
        dir,
        name.as_bytes(),
        Mode::from_raw_mode(mode),
    )?)
}

/// `mknodat(dir, name, mode, 0)` for FIFOs, sockets and empty regular files (never devices).
pub fn mknod(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    let kind = mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK && kind != libc::S_IFREG && kind != 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // No type bits make a regular file, as S_IFREG does.
    let kind = match rustix::fs::FileType::from_raw_mode(mode) {
        rustix::fs::FileType::Unknown => rustix::fs::FileType::RegularFile,
        kind => kind,
    };
    let perm = Mode::from_raw_mode(mode);
    Ok(rustix::fs::mknodat(dir, name.as_bytes(), kind, perm, 0)?)
}

/// `symlinkat(target, dir, name)`.
pub fn symlink(target: &[u8], dir: BorrowedFd<'_>, name: &Name) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name.as_bytes())?)
}

/// `linkat(from_dir, from, to_dir, to, 0)`: never follows a symlink at `from`.
pub fn link(
    from_dir: BorrowedFd<'_>,
    from: &Name,
    to_dir: BorrowedFd<'_>,
    to: &Name,
) -> io::Result<()> {
    // No flags: the source is not dereferenced.
    Ok(rustix::fs::linkat(
        from_dir,
        from.as_bytes(),
        to_dir,
        to.as_bytes(),
        AtFlags::empty(),
    )?)
}

/// Gives the file open at `fd` (an `O_PATH` descriptor of `from` in `from_dir`) the new name
/// `to` in `to_dir`: `linkat` on its `/proc/self/fd` magic link, which leads to the very inode
/// of the descriptor whatever `from` leads to by now. Without `/proc`, [`link`] by name.
pub fn link_open(
    fd: BorrowedFd<'_>,
    (from_dir, from): (BorrowedFd<'_>, &Name),
    to_dir: BorrowedFd<'_>,
    to: &Name,
) -> io::Result<()> {
    let Some((proc_dir, name)) = super::proc_fd_entry(fd) else {
        return link(from_dir, from, to_dir, to);
    };
    // AT_SYMLINK_FOLLOW follows only the magic link, to the descriptor's own inode.
    Ok(rustix::fs::linkat(
        proc_dir,
        name.as_c_str(),
        to_dir,
        to.as_bytes(),
        AtFlags::SYMLINK_FOLLOW,
    )?)
}

/// `unlinkat(dir, name, 0)` or, with `dir_entry`, `AT_REMOVEDIR`.
pub fn unlink(dir: BorrowedFd<'_>, name: &Name, dir_entry: bool) -> io::Result<()> {
    let flags = if dir_entry {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    Ok(rustix::fs::unlinkat(dir, name.as_bytes(), flags)?)
}

/// `renameat2` flags.
pub const RENAME_NOREPLACE: u32 = libc::RENAME_NOREPLACE;
pub const RENAME_EXCHANGE: u32 = libc::RENAME_EXCHANGE;

/// `renameat2(from_dir, from, to_dir, to, flags)`.
pub fn rename(
    from_dir: BorrowedFd<'_>,
    from: &Name,
    to_dir: BorrowedFd<'_>,
    to: &Name,
    flags: u32,
) -> io::Result<()> {
    let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
    Ok(rustix::fs::renameat_with(
        from_dir,
        from.as_bytes(),
        to_dir,
        to.as_bytes(),
        flags,
    )?)
}

/// `fchmod` of an open file or directory.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// An owner for `fchownat`: `u32::MAX` leaves it unchanged.
fn owner(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    (
        (uid != u32::MAX).then(|| Uid::from_raw(uid)),
        (gid != u32::MAX).then(|| Gid::from_raw(gid)),
    )
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`; `u32::MAX` leaves an id unchanged.
pub fn chown_at(dir: BorrowedFd<'_>, name: &Name, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = owner(uid, gid);
    Ok(rustix::fs::chownat(
        dir,
        name.as_bytes(),
        uid,
        gid,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `fchmodat` by name, for entries with no open descriptor (never a symlink: Linux has no
/// symlink modes).
pub fn chmod_at(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmodat(
        dir,
        name.as_bytes(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// `fchownat` of the entry `fd` (an `O_PATH` descriptor) itself: a symlink is changed, not
/// followed.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = owner(uid, gid);
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::chownat(fd, c"", uid, gid, flags)?)
}

/// `chmod` of the entry `fd` (an `O_PATH` descriptor of anything but a symlink) itself:
/// `fchmodat2` with `AT_EMPTY_PATH` (Linux 6.6), else through the descriptor's own
/// `/proc/self/fd` entry.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: the literal is a valid C string; the other arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode as libc::mode_t,
            libc::AT_EMPTY_PATH,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        chmod_through_proc(fd, mode).unwrap_or(Err(err))
    } else {
        Err(err)
    }
}

/// `chmod` of `fd`'s own `/proc/self/fd` entry, for kernels without `fchmodat2`; `None`
/// without `/proc`.
fn chmod_through_proc(fd: BorrowedFd<'_>, mode: u32) -> Option<io::Result<()>> {
    let (proc_dir, name) = super::proc_fd_entry(fd)?;
    // The entry is our own descriptor's, so following it reaches that very file.
    let mode = Mode::from_raw_mode(mode);
    Some(
        rustix::fs::chmodat(proc_dir, name.as_c_str(), mode, AtFlags::empty())
            .map_err(io::Error::from),
    )
}

/// Sets the times of the entry `fd` (an `O_PATH` descriptor) itself, a symlink included
/// (`AT_EMPTY_PATH`, Linux 5.8).
pub fn set_times_fd(fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> io::Result<()> {
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::utimensat(fd, c"", &times(atime, mtime), flags)?)
}

/// A time to set with [`set_times_at`].
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Keep,
    Now,
    At(SystemTime),
}

/// The times `utimensat` is given.
fn times(atime: SetTime, mtime: SetTime) -> Timestamps {
    Timestamps {
        last_access: timespec(atime),
        last_modification: timespec(mtime),
    }
}

fn timespec(t: SetTime) -> Timespec {
    match t {
        SetTime::Keep => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        SetTime::Now => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        SetTime::At(t) => {
            let (sec, nsec) = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    d.subsec_nanos(),
                ),
                Err(e) => {
                    let d = e.duration();
                    let sec = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                    if d.subsec_nanos() == 0 {
                        (sec, 0)
                    } else {
                        (sec - 1, 1_000_000_000 - d.subsec_nanos())
                    }
                }
            };
            Timespec {
                tv_sec: sec,
                tv_nsec: i64::from(nsec),
            }
        }
    }
}

/// `utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW)`.
pub fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &Name,
    atime: SetTime,
    mtime: SetTime,
) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name.as_bytes(),
        &times(atime, mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `ftruncate`.
pub fn truncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    Ok(rustix::fs::ftruncate(fd, size)?)
}

/// `fallocate`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let mode = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
    Ok(rustix::fs::fallocate(fd, mode, offset, len)?)
}

/// `fsync` or `fdatasync`.
pub fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    if data_only {
        Ok(rustix::fs::fdatasync(fd)?)
    } else {
        Ok(rustix::fs::fsync(fd)?)
    }
}

/// `fsetxattr`.
pub fn setxattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8], flags: i32) -> io::Result<()> {
    let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
    Ok(rustix::fs::fsetxattr(fd, name, value, flags)?)
}

/// `fremovexattr`.
pub fn removexattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::fremovexattr(fd, name)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::path::RelPath;
    use crate::sys::{FileType, Open, open_root, stat_at};

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn create_rename_unlink_through_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(dir.path()).unwrap();
        let fd = root.as_fd();
        mkdir(fd, &name("d"), 0o750).unwrap();
        let mut f = File::from(create_file(fd, &name("tmp"), 0o640).unwrap());
        f.write_all(b"hello").unwrap();
        drop(f);
        let again = create_file(fd, &name("tmp"), 0o640).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
        rename(fd, &name("tmp"), fd, &name("f"), 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello");
        symlink(b"/etc", fd, &name("l")).unwrap();
        let planted = create_file(fd, &name("l"), 0o640).unwrap_err();
        assert_eq!(planted.raw_os_error(), Some(libc::EEXIST));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_times_at(fd, &name("l"), SetTime::At(t), SetTime::At(t)).unwrap();
        assert_eq!(stat_at(fd, &name("l")).unwrap().mtime, t);
        assert_eq!(
            mknod(fd, &name("dev"), libc::S_IFCHR | 0o600)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EPERM)
        );
        unlink(fd, &name("l"), false).unwrap();
        unlink(fd, &name("d"), true).unwrap();
        unlink(fd, &name("f"), false).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn attributes_change_through_path_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(dir.path()).unwrap();
        let fd = root.as_fd();
        drop(create_file(fd, &name("f"), 0o640).unwrap());
        symlink(b"f", fd, &name("l")).unwrap();
        let file = crate::sys::resolve(fd, &RelPath::parse(b"f").unwrap(), Open::Path).unwrap();
        let link = crate::sys::resolve(fd, &RelPath::parse(b"l").unwrap(), Open::Path).unwrap();
        let before = stat_at(fd, &name("f")).unwrap();
        chmod_fd(file.as_fd(), 0o600).unwrap();
        assert_eq!(stat_at(fd, &name("f")).unwrap().perm, 0o600);
        chmod_through_proc(file.as_fd(), 0o604).unwrap().unwrap();
        assert_eq!(stat_at(fd, &name("f")).unwrap().perm, 0o604);
        let t = UNIX_EPOCH + std::time::Duration::from_secs(2_000_000);
        set_times_fd(link.as_fd(), SetTime::Keep, SetTime::At(t)).unwrap();
        chown_fd(link.as_fd(), 1234, 4321).unwrap();
        let l = stat_at(fd, &name("l")).unwrap();
        assert_eq!(
            (l.kind, l.mtime, l.uid, l.gid),
            (FileType::Symlink, t, 1234, 4321)
        );
        let f = stat_at(fd, &name("f")).unwrap();
        assert_ne!(f.mtime, t, "the link's target got its time");
        assert_eq!(
            (f.uid, f.gid),
            (before.uid, before.gid),
            "the link's target got its owner"
        );
    }

    #[test]
    fn lock_is_exclusive_between_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        drop(a);
        assert!(try_lock_exclusive(&b).unwrap());
    }
}
