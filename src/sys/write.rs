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

/// `openat(dir, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, mode)`: a new regular file.
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

/// Copies all of `from` to `to` (both open files), with `copy_file_range` where the kernel can
/// and plain reads and writes otherwise.
pub fn copy_contents(from: &std::fs::File, to: &std::fs::File) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        // SAFETY: null offsets use and advance the files' own positions; no memory is passed.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                    let mut r = from;
                    let mut w = to;
                    Ok(total + io::copy(&mut r, &mut w)?)
                }
                _ => Err(err),
            };
        }
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}
