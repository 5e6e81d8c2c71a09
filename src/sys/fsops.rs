//! Raw calls that change a directory through a descriptor: locks, `mkdirat`, `openat(O_EXCL)`,
//! `symlinkat`, `renameat`, `unlinkat`, `utimensat`.
//!
//! Like the rest of `sys`, every call takes a directory descriptor and one validated [`Name`],
//! never a path, and none follows a symlink. The overlay (copy-up, whiteouts) and `apply` (writing
//! reviewed changes into SOURCE) are built on these. This module knows nothing of what it writes.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::path::Name;

fn cname(name: &Name) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `flock(file, LOCK_EX | LOCK_NB)`: `Ok(true)` when the lock was taken, `Ok(false)` when
/// another open file description holds it. The lock lasts as long as `file` stays open.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
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

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<()> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// Creates the regular file `name` in `dir` for writing: `O_WRONLY | O_CREAT | O_EXCL |
/// O_NOFOLLOW`, so it never opens something that already exists (a planted symlink included).
pub fn create_excl_at(dir: BorrowedFd<'_>, name: &Name, mode: u32) -> io::Result<File> {
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by a successful openat; nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens the regular file `name` in `dir` for reading: checked to be a regular file first, then
/// opened with `O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` and checked again to be the same
/// inode, so no device, FIFO or symlink is ever opened.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &Name) -> io::Result<File> {
    let before = super::stat_at(dir, name)?;
    if before.kind != super::FileType::File {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let c = cname(name)?;
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by a successful openat; nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let after = super::fstat(std::os::fd::AsFd::as_fd(&file))?;
    if (after.dev, after.ino) != (before.dev, before.ino) || after.kind != super::FileType::File {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(file)
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &Name) -> io::Result<()> {
    let t = CString::new(target).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let c = cname(name)?;
    // SAFETY: both are valid C strings; `dir` is a live descriptor.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
}

/// `renameat(from_dir, from, to_dir, to)`: atomically replaces `to` if it exists (and is
/// replaceable by the kind of `from`).
pub fn rename_at(
    from_dir: BorrowedFd<'_>,
    from: &Name,
    to_dir: BorrowedFd<'_>,
    to: &Name,
) -> io::Result<()> {
    let f = cname(from)?;
    let t = cname(to)?;
    // SAFETY: both are valid C strings; both descriptors are live.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
        )
    })?;
    Ok(())
}

/// `unlinkat(dir, name, AT_REMOVEDIR if dir)`: removes one entry (an empty directory when
/// `is_dir`). A symlink is removed itself, never its target.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &Name, is_dir: bool) -> io::Result<()> {
    let c = cname(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `c` is a valid C string; `dir` is a live descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
}

fn timespec(t: SystemTime) -> libc::timespec {
    let (sec, nsec) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_nanos()),
        ),
        Err(e) => {
            // Before the epoch: floor to whole seconds plus a positive nanosecond part.
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - i64::from(n)),
            }
        }
    };
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    }
}

/// `utimensat(dir, name, [atime, mtime], AT_SYMLINK_NOFOLLOW)`: sets the times of the entry
/// itself (of a symlink, not of its target).
pub fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &Name,
    atime: SystemTime,
    mtime: SystemTime,
) -> io::Result<()> {
    let c = cname(name)?;
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: `c` is a valid C string and `times` an array of two timespecs, as required.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;
    use crate::sys::{open_root, stat_at};

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn create_rename_unlink_through_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let root = open_root(dir.path()).unwrap();
        let fd = root.as_fd();
        mkdir_at(fd, &name("d"), 0o750).unwrap();
        let mut f = create_excl_at(fd, &name("tmp"), 0o640).unwrap();
        f.write_all(b"hello").unwrap();
        drop(f);
        assert_eq!(
            create_excl_at(fd, &name("tmp"), 0o640)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EEXIST)
        );
        rename_at(fd, &name("tmp"), fd, &name("f")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello");
        symlink_at(b"/etc", fd, &name("l")).unwrap();
        assert_eq!(
            create_excl_at(fd, &name("l"), 0o640)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EEXIST)
        );
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_times_at(fd, &name("l"), t, t).unwrap();
        assert_eq!(stat_at(fd, &name("l")).unwrap().mtime, t);
        unlink_at(fd, &name("l"), false).unwrap();
        unlink_at(fd, &name("d"), true).unwrap();
        unlink_at(fd, &name("f"), false).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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
