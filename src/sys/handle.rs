//! The generation of an inode: a number that tells apart the files that held one inode number
//! in turn, so that a number the file system gives again is not taken for the old file.

use std::hash::{Hash, Hasher};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `MAX_HANDLE_SZ`: the largest file handle the kernel returns.
const MAX_HANDLE: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct Handle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE],
}

/// A hash of the file handle `name_to_handle_at` gives for `fd` (an `O_PATH` descriptor does):
/// ext4, xfs, btrfs and tmpfs put the inode's generation in it beside its number, so a new file
/// that reuses a number gets another handle. 0 when the file system gives no handle.
pub fn inode_generation(fd: BorrowedFd<'_>) -> u64 {
    handle_hash(fd, c"", libc::AT_EMPTY_PATH)
}

/// [`inode_generation`] of the entry `name` of the directory `dir` (a symlink itself, never
/// its target).
pub fn inode_generation_at(dir: BorrowedFd<'_>, name: &crate::path::Name) -> u64 {
    match std::ffi::CString::new(name.as_bytes()) {
        Ok(name) => handle_hash(dir, &name, 0),
        Err(_) => 0,
    }
}

/// The hash of the handle of `path` relative to `fd`, as `flags` say; 0 when there is none.
fn handle_hash(fd: BorrowedFd<'_>, path: &std::ffi::CStr, flags: libc::c_int) -> u64 {
    let mut handle = Handle {
        handle_bytes: MAX_HANDLE as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `handle` is a `struct file_handle` followed by `handle_bytes` bytes of room, as the
    // call requires; `path` is a NUL-terminated string (empty with `AT_EMPTY_PATH`, naming `fd`
    // itself; else one name in the directory `fd`, not followed if a symlink, as `flags` has no
    // `AT_SYMLINK_FOLLOW`); all pointers outlive the call.
    let done = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            path.as_ptr(),
            (&raw mut handle).cast::<libc::file_handle>(),
            &raw mut mount_id,
            flags,
        )
    };
    if done != 0 {
        return 0;
    }
    let len = usize::try_from(handle.handle_bytes)
        .unwrap_or(0)
        .min(MAX_HANDLE);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    handle.handle_type.hash(&mut hasher);
    handle.f_handle.get(..len).hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_keeps_its_generation_and_another_file_has_another() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::fs::File::create(dir.path().join("a")).unwrap();
        let b = std::fs::File::create(dir.path().join("b")).unwrap();
        let first = inode_generation(a.as_fd());
        assert_eq!(first, inode_generation(a.as_fd()));
        assert_ne!(first, inode_generation(b.as_fd()));
        let dir_fd = std::fs::File::open(dir.path()).unwrap();
        let name = crate::path::Name::new(b"a").unwrap();
        assert_eq!(inode_generation_at(dir_fd.as_fd(), &name), first);
    }
}
