//! How `upper/` reads: which names are entries, whiteouts and opaque markers, and the index of
//! all three that a mount starts from.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsFd;

use super::{OPAQUE_MARKER, Overlay, WHITEOUT_PREFIX};
use crate::path::{Name, RelPath};
use crate::sys::{self, FileType, Open};

/// What the file system needs to know about upper/ when it mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpperIndex {
    /// Every path in upper/ (files, directories, symlinks, others), not the `.wh.` markers.
    pub entries: BTreeSet<RelPath>,
    /// View paths deleted by a whiteout.
    pub whiteouts: BTreeSet<RelPath>,
    /// Directories holding the opaque marker (the root included when it holds one).
    pub opaque: BTreeSet<RelPath>,
    /// Sum of the sizes of regular files.
    pub bytes: u64,
    /// Number of entries, whiteouts and opaque markers included.
    pub files: u64,
}

/// What one name in upper/ stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperName {
    /// An ordinary entry.
    Entry(Name),
    /// `.wh.NAME`: NAME is deleted.
    Whiteout(Name),
    /// `.wh..wh..opq`.
    Opaque,
    /// A `.wh.` name that names nothing valid (e.g. `.wh.` alone); ignored.
    Invalid,
}

impl UpperName {
    /// Classifies a name read from an upper directory.
    pub fn classify(name: &Name) -> UpperName {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_MARKER {
            return UpperName::Opaque;
        }
        match bytes.strip_prefix(WHITEOUT_PREFIX) {
            Some(rest) => match Name::new(rest) {
                Ok(target) => UpperName::Whiteout(target),
                Err(_) => UpperName::Invalid,
            },
            None => UpperName::Entry(name.clone()),
        }
    }
}

/// The `.wh.NAME` marker for `name`, or `None` when there is none: the result would be longer
/// than a name may be, or `name` is `.wh..opq`, whose marker would be the opaque marker.
pub fn whiteout_name(name: &Name) -> Option<Name> {
    let mut bytes = WHITEOUT_PREFIX.to_vec();
    bytes.extend_from_slice(name.as_bytes());
    if bytes == OPAQUE_MARKER {
        return None;
    }
    Name::new(&bytes).ok()
}

impl Overlay {
    /// Walks upper/ (through descriptors, never following symlinks) and returns what the file
    /// system needs at mount: every upper path (files, dirs, symlinks; not the .wh.* markers),
    /// the whiteouts (view paths deleted), the opaque directories, and the usage (bytes = sum of
    /// regular file sizes, files = number of entries incl. whiteouts).
    pub fn scan(&self) -> io::Result<UpperIndex> {
        let mut index = UpperIndex::default();
        let mut stack = vec![RelPath::root()];
        while let Some(dir_path) = stack.pop() {
            let dir = sys::resolve(self.upper(), &dir_path, Open::Dir)?;
            for entry in sys::read_dir(dir.as_fd())? {
                let Ok(name) = Name::new(&entry.name) else {
                    continue;
                };
                match UpperName::classify(&name) {
                    UpperName::Opaque => {
                        index.opaque.insert(dir_path.clone());
                        index.files += 1;
                    }
                    UpperName::Whiteout(target) => {
                        index.whiteouts.insert(dir_path.join(&target));
                        index.files += 1;
                    }
                    UpperName::Invalid => {
                        tracing::warn!(dir = %dir_path, name = %name, "ignoring an invalid whiteout name in the overlay");
                    }
                    UpperName::Entry(name) => {
                        let st = match sys::stat_at(dir.as_fd(), &name) {
                            Ok(st) => st,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let path = dir_path.join(&name);
                        index.files += 1;
                        match st.kind {
                            FileType::File => index.bytes = index.bytes.saturating_add(st.size),
                            FileType::Dir => stack.push(path.clone()),
                            _ => {}
                        }
                        index.entries.insert(path);
                    }
                }
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::super::UPPER;
    use super::super::tests::{fixture, p};
    use super::*;

    #[test]
    fn whiteouts_read_back_as_the_name_they_were_made_for() {
        let name = |b: &[u8]| Name::new(b).unwrap_or_else(|e| panic!("{e}"));
        for target in [&b"a"[..], b".wh.", b".wh.x", b".wh..wh..opq", &[b'n'; 251]] {
            let marker = whiteout_name(&name(target));
            assert_eq!(
                marker.map(|m| UpperName::classify(&m)),
                Some(UpperName::Whiteout(name(target)))
            );
        }
        // `.wh..opq` would be whited out by the opaque marker, `n`*252 by a name past NAME_MAX.
        assert_eq!(whiteout_name(&name(b".wh..opq")), None);
        assert_eq!(whiteout_name(&name(&[b'n'; 252])), None);
    }

    #[test]
    fn scan_finds_entries_whiteouts_and_opaque_dirs() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let up = f.overlay.join(UPPER);
        std::fs::create_dir_all(up.join("a/b")).unwrap();
        std::fs::write(up.join("a/b/f"), b"12345").unwrap();
        std::fs::write(up.join("top"), b"xy").unwrap();
        std::fs::write(up.join("a/.wh.gone"), b"").unwrap();
        std::fs::write(up.join(".wh.old"), b"").unwrap();
        std::fs::write(up.join("a/b/.wh..wh..opq"), b"").unwrap();
        std::fs::write(up.join(".wh."), b"").unwrap();
        symlink("/etc", up.join("link")).unwrap();
        // A symlink to a directory is listed, never entered.
        std::fs::create_dir(f.source.join("outside")).unwrap();
        std::fs::write(f.source.join("outside/secret"), b"zzzzzzzz").unwrap();
        symlink(f.source.join("outside"), up.join("a/escape")).unwrap();
        let index = ov.scan().unwrap();
        let set = |v: &[&str]| v.iter().map(|s| p(s)).collect::<BTreeSet<_>>();
        assert_eq!(
            index.entries,
            set(&["a", "a/b", "a/b/f", "top", "link", "a/escape"])
        );
        assert_eq!(index.whiteouts, set(&["a/gone", "old"]));
        assert_eq!(index.opaque, set(&["a/b"]));
        assert_eq!(index.bytes, 7);
        assert_eq!(index.files, 9);
    }
}
