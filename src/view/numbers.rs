//! Which inode number each entry of the view shows (`[view] inodes`, SPEC §2). With `source`
//! (the default) an entry of SOURCE's root file system shows SOURCE's own number, so tools that
//! keep stat data (git's index, build systems, rsync, tar) see an unchanged tree as unchanged; a
//! file copied up keeps the number SOURCE gave it (recorded in the overlay's `origins` when the
//! overlay first touched it), a directory of the overlay that SOURCE also has shows SOURCE's,
//! and an entry made only in the overlay shows [`UPPER_BASE`] plus its number in `upper/`.
//! Entries of other file systems (mounts beneath SOURCE) and numbers already taken by a live
//! node get numbers from the inode table's counter, which starts above all of these
//! ([`super::inodes::COUNTER_BASE`]), so no two live nodes ever share a number. The root is node
//! 1 for the kernel and shows SOURCE's root's number. With `synthetic` the table numbers
//! nodes in order and this module asks for nothing.
//!
//! The mode is read once, when the view is made: a policy reload does not renumber the nodes
//! the kernel holds.

use std::os::fd::{AsFd, BorrowedFd};

use super::inodes::{Numbers, Wanted};
use super::{Layer, View};
use crate::overlay::LowerState;
use crate::path::{Name, RelPath};
use crate::sys::{self, FileType, Stat};

/// Where the numbers of entries made only in the overlay start: above any number SOURCE's file
/// systems hand out in practice (ext4's are 32-bit; xfs's and btrfs's stay far below 2^62).
pub const UPPER_BASE: u64 = 1 << 62;

/// How the generation of an entry is known.
#[derive(Clone, Copy)]
pub(super) enum Known<'a> {
    /// From an `O_PATH` descriptor on it.
    Fd(BorrowedFd<'a>),
    /// Read with its directory's listing (`None`: not read).
    Generation(Option<u64>),
}

impl View {
    /// The number the entry at `path`, found in `layer` with attributes `st`, asks for.
    fn wanted_number(&self, path: &RelPath, layer: Layer, st: &Stat) -> Option<u64> {
        if self.numbers == Numbers::Synthetic {
            return None;
        }
        let ours = |st: &Stat| st.dev == self.source_dev && st.ino < UPPER_BASE;
        match layer {
            Layer::Lower => ours(st).then_some(st.ino),
            Layer::Upper => {
                let layer = self.layer()?;
                if let Some(
                    LowerState::File { ino, .. }
                    | LowerState::Symlink { ino, .. }
                    | LowerState::Other { ino, .. },
                ) = layer.origin(path)
                {
                    return Some(ino).filter(|n| *n < UPPER_BASE);
                }
                if st.kind == FileType::Dir {
                    if let Ok(Some(lower)) = sys::tree::stat_beneath(self.scope.root(), path) {
                        if lower.kind == FileType::Dir && ours(&lower) {
                            return Some(lower.ino);
                        }
                    }
                }
                (st.ino < UPPER_BASE).then(|| UPPER_BASE + st.ino)
            }
        }
    }

    /// The node of entry `name` of `parent`, at `path`, found in `layer` with attributes `st`,
    /// with one more kernel reference; `known` gives the entry's generation.
    pub(super) fn node_for(
        &self,
        parent: u64,
        (name, path): (&Name, &RelPath),
        (layer, st): (Layer, &Stat),
        known: Known<'_>,
    ) -> u64 {
        let number = self.wanted_number(path, layer, st);
        let generation = match (layer, number, known) {
            (Layer::Lower, Some(_), Known::Fd(fd)) => Some(sys::handle::inode_generation(fd)),
            (Layer::Lower, Some(_), Known::Generation(generation)) => generation,
            _ => None,
        };
        self.inodes.write().lookup(
            parent,
            name,
            Self::file_key(layer, st),
            Wanted { number, generation },
            st.kind != FileType::Dir,
        )
    }

    /// Whether `located`, found at the path of node `ino`, is still the SOURCE file the node
    /// was made for, as far as its number and generation tell: a file deleted and made again
    /// under the same name is not, whether it got another number or the same one again.
    pub(super) fn same_source_file(&self, ino: u64, located: &super::Located) -> bool {
        if located.layer != Layer::Lower || self.numbers == Numbers::Synthetic {
            return true;
        }
        let (number, generation) = {
            let inodes = self.inodes.read();
            (inodes.wanted_of(ino), inodes.source_generation_of(ino))
        };
        match (number, generation) {
            (Some(number), _) if number != located.stat.ino => false,
            // 0: the file system gave no handle, so the generation says nothing.
            (Some(_), Some(generation)) if generation != 0 => {
                sys::handle::inode_generation(located.fd.as_fd()) == generation
            }
            _ => true,
        }
    }

    /// What the kernel is shown as the inode number of node `ino` found with attributes `st`:
    /// the node id, except for the root, which shows SOURCE's root's number where SOURCE's
    /// numbers are shown.
    pub(super) fn shown_number(&self, ino: u64) -> u64 {
        if ino == super::ROOT && self.numbers == Numbers::Asked {
            self.source_root_ino
        } else {
            ino
        }
    }
}
