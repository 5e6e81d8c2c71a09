//! The syscalls of the write path: creating, removing and renaming entries by one validated
//! name beneath a directory descriptor, and changing an open file. Like the rest of `sys`, every
//! call takes a descriptor plus at most one [`Name`], and none follows a symlink.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use super::{check, cstring, owned};
use crate::path::Name;

fn cname(name: &Name) -> io::Result<CString> {
    cstring(name.as_bytes())
}

/// `flock(file, LOCK_EX | LOCK_NB)`: `Ok(true)` when the lock was taken, `Ok(false)` when
/// another open file description holds it. The lock lasts as long as `file` stays open.
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    // SAFETY: flock on a live descriptor has no memory effects.
    let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// `openat(dir, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, mode)`: a new regular file; it
/// never opens something that already exists (a planted symlink included).
pub fn create_file(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<OwnedFd> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(owned(fd))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// `mknodat(dir, name, mode, 0)` for FIFOs, sockets and empty regular files (never devices).
pub fn mknod(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    let kind = mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK && kind != libc::S_IFREG && kind != 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string; the type bits exclude devices, so `dev` is unused.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })?;
    Ok(())
}

/// `symlinkat(target, dir, name)`.
pub fn symlink(target: &[u8], dir: BorrowedFd<'_>, name: &Name) -> io::Result<()> {
    let t = cstring(target)?;
    let c = cname(name)?;
    // SAFETY: both are valid C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
}

/// `linkat(from_dir, from, to_dir, to, 0)`: never follows a symlink at `from`.
pub fn link(
    from_dir: BorrowedFd<'_>,
    from: &Name,
    to_dir: BorrowedFd<'_>,
    to: &Name,
) -> io::Result<()> {
    let f = cname(from)?;
    let t = cname(to)?;
    // SAFETY: both are valid C strings; flags 0 means the source is not dereferenced.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            0,
        )
    })?;
    Ok(())
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
    let t = cname(to)?;
    // SAFETY: both are valid C strings and both descriptors are live. AT_SYMLINK_FOLLOW follows
    // only the magic link, to the descriptor's own inode.
    check(unsafe {
        libc::linkat(
            proc_dir.as_raw_fd(),
            name.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })?;
    Ok(())
}

/// `unlinkat(dir, name, 0)` or, with `dir_entry`, `AT_REMOVEDIR`.
pub fn unlink(dir: BorrowedFd<'_>, name: &Name, dir_entry: bool) -> io::Result<()> {
    let c = cname(name)?;
    let flags = if dir_entry { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
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
    let f = cname(from)?;
    let t = cname(to)?;
    // SAFETY: both are valid C strings and the descriptors are live.
    check(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            flags,
        )
    })?;
    Ok(())
}

/// `fchmod` of an open file or directory.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`; `u32::MAX` leaves an id unchanged.
pub fn chown_at(dir: BorrowedFd<'_>, name: &Name, uid: u32, gid: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `fchmodat` by name, for entries with no open descriptor (never a symlink: Linux has no
/// symlink modes).
pub fn chmod_at(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })?;
    Ok(())
}

/// `fchownat` of the entry `fd` (an `O_PATH` descriptor) itself: a symlink is changed, not
/// followed.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the literal is a valid C string.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
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
    // SAFETY: `name` is a valid C string and `proc_dir` a live descriptor; the entry is our own
    // descriptor's, so following it reaches that very file.
    let ret =
        unsafe { libc::fchmodat(proc_dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) };
    Some(check(ret).map(drop))
}

/// Sets the times of the entry `fd` (an `O_PATH` descriptor) itself, a symlink included
/// (`AT_EMPTY_PATH`, Linux 5.8).
pub fn set_times_fd(fd: BorrowedFd<'_>, atime: SetTime, mtime: SetTime) -> io::Result<()> {
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: the literal is a valid C string and `times` holds two timespecs.
    check(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// A time to set with [`set_times_at`].
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Keep,
    Now,
    At(SystemTime),
}

fn timespec(t: SetTime) -> libc::timespec {
    match t {
        SetTime::Keep => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        SetTime::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
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
            libc::timespec {
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
    let c = cname(name)?;
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: `c` is a valid C string and `times` holds two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `ftruncate`.
pub fn truncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    let size = i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: no memory is passed.
    check(unsafe { libc::ftruncate64(fd.as_raw_fd(), size) })?;
    Ok(())
}

/// `fallocate`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    let offset = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: no memory is passed.
    check(unsafe { libc::fallocate64(fd.as_raw_fd(), mode, offset, len) })?;
    Ok(())
}

/// `fsync` or `fdatasync`.
pub fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })?;
    Ok(())
}

/// `fsetxattr`.
pub fn setxattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8], flags: i32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: `c` is a valid C string; `value` is readable for its length.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })?;
    Ok(())
}

/// `fremovexattr`.
pub fn removexattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
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
