//! Walking and removing trees beneath a root descriptor: the general descriptor helpers the
//! overlay and its review use on `upper/` and SOURCE alike. Every path is resolved beneath its
//! root with [`resolve`], and nothing here follows a symlink.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::{
    FileType, Open, Stat, fstat, open_child_dir, open_regular, read_dir, resolve, stat_at,
};
use crate::path::{Name, RelPath};

/// The parent and last component of a path other than the root (`EINVAL` for the root).
pub fn split(path: &RelPath) -> io::Result<(RelPath, Name)> {
    let name = path
        .file_name()
        .and_then(|n| Name::new(n).ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((path.parent().unwrap_or_default(), name))
}

/// Opens the regular file at `path` beneath `root` for reading, never following a symlink and
/// never opening anything but a regular file.
pub fn open_file_beneath(root: BorrowedFd<'_>, path: &RelPath) -> io::Result<File> {
    let (parent, name) = split(path)?;
    let dir = resolve(root, &parent, Open::Path)?;
    open_regular(dir.as_fd(), &RelPath::root().join(&name), false)
}

/// The `stat` of `path` beneath `root`, never following a symlink; `None` when nothing is there
/// or a directory on the way is missing, not a directory, or a symlink.
pub fn stat_beneath(root: BorrowedFd<'_>, path: &RelPath) -> io::Result<Option<Stat>> {
    match resolve(root, path, Open::Path) {
        Ok(fd) => fstat(fd.as_fd()).map(Some),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Empties a directory through descriptors (never following a symlink inside it).
pub fn empty_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let fd = resolve(dir, &RelPath::root(), Open::Dir)?;
    for entry in read_dir(fd.as_fd())? {
        let Ok(name) = Name::new(&entry.name) else {
            continue;
        };
        remove_tree_at(fd.as_fd(), &name)?;
    }
    Ok(())
}

/// Removes `name` from `dir` and, for a directory, everything beneath it, through descriptors;
/// a symlink is removed itself. Missing entries are not an error.
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &Name) -> io::Result<()> {
    let st = match stat_at(dir, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.kind == FileType::Dir {
        let child = open_child_dir(dir, name)?;
        empty_dir(child.as_fd())?;
    }
    match super::write::unlink(dir, name, st.kind == FileType::Dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::sys::open_root;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn trees_are_removed_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        std::fs::write(root.join("d/e/f"), b"f").unwrap();
        symlink(&outside, root.join("d/link")).unwrap();
        let fd = open_root(&root).unwrap();
        assert_eq!(
            stat_beneath(fd.as_fd(), &p("d/e/f")).unwrap().unwrap().size,
            1
        );
        // Beneath a symlink is nowhere: it is never followed.
        assert!(
            stat_beneath(fd.as_fd(), &p("d/link/keep"))
                .unwrap()
                .is_none()
        );
        assert!(open_file_beneath(fd.as_fd(), &p("d/link/keep")).is_err());
        assert!(open_file_beneath(fd.as_fd(), &p("d/e")).is_err());
        let (parent, name) = split(&p("d/e/f")).unwrap();
        assert_eq!((parent, name.as_bytes()), (p("d/e"), &b"f"[..]));
        assert!(split(&RelPath::root()).is_err());
        remove_tree_at(fd.as_fd(), &Name::new(b"d").unwrap()).unwrap();
        remove_tree_at(fd.as_fd(), &Name::new(b"d").unwrap()).unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"k");
        std::fs::write(root.join("x"), b"x").unwrap();
        empty_dir(fd.as_fd()).unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    }
}
