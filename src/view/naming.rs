//! How SOURCE's file systems match names. Some do not match them byte for byte: vfat, exFAT,
//! NTFS and SMB shares ignore case and trailing dots (and answer to 8.3 short names), ext4,
//! f2fs and tmpfs directories with the casefold flag fold case and Unicode forms, and a FUSE
//! or network file system may do anything. There the name asked for (`KEYS/SERVER.PEM.`) can
//! reach an entry of another name (`keys/server.pem`) that the policy hides, so the policy's
//! verdict on the name asked for says nothing.
//!
//! Such names are refused: where the directory may match loosely, a name reaches an entry only
//! if the directory lists it under exactly that name. Which file systems those are is known
//! from `statfs` (once per device) and, where the kernel supports casefolding, from the
//! directory's own casefold flag. Every other file system (ext4 without casefold, xfs, btrfs,
//! tmpfs, ...) costs nothing.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::path::{Name, RelPath};
use crate::sys::{self, Open, Stat};

/// How a file system matches the names it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matching {
    /// Byte for byte.
    Exact,
    /// Byte for byte, except in directories with the casefold flag.
    ExactUnlessCasefolded,
    /// Loosely, or nobody can say: every name is checked against the listing.
    Loose,
}

/// `statfs` magic numbers of file systems that match names byte for byte.
const EXACT: &[i64] = &[
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x8584_58F6, // ramfs
    0x7371_7368, // squashfs
    0xE0F5_E1E2, // erofs
];

/// Those that do too, except in casefolded directories, with when those can exist.
const CASEFOLD_CAPABLE: &[(i64, Casefolds)] = &[
    (0xEF53, Casefolds::If("ext4")),
    (0xF2F5_2010, Casefolds::If("f2fs")),
    (0x0102_1994, Casefolds::If("tmpfs")),
    // overlayfs: its layers may be casefolded directories of those.
    (0x794C_7630, Casefolds::IfAny),
    (0xCA45_1A4E, Casefolds::Maybe), // bcachefs
];

/// When a file system of [`CASEFOLD_CAPABLE`] may have casefolded directories.
#[derive(Debug, Clone, Copy)]
enum Casefolds {
    /// When this kernel can casefold the file system of that name in /sys/fs.
    If(&'static str),
    /// When this kernel can casefold any of those.
    IfAny,
    /// Always, for all anyone can tell.
    Maybe,
}

/// `FS_CASEFOLD_FL` of linux/fs.h.
const FS_CASEFOLD_FL: libc::c_long = 0x4000_0000;

/// A directory's listing is reused only while its mtime and ctime stay the same and were
/// already this old when it was read: a change within a coarse timestamp's tick (vfat keeps
/// two seconds) could otherwise leave them the same.
const LISTING_SETTLED: Duration = Duration::from_secs(3);

/// How many directory listings are kept.
const MAX_LISTINGS: usize = 256;

/// The listing of one directory, as read at a version of it.
struct Listing {
    version: (SystemTime, SystemTime),
    names: Arc<HashSet<Vec<u8>>>,
}

/// What is known of the name matching of SOURCE's file systems.
pub struct Naming {
    /// The device of SOURCE's root.
    root_dev: u64,
    by_device: RwLock<HashMap<u64, Matching>>,
    /// Listings of directories that match loosely, by (device, inode).
    listings: RwLock<HashMap<(u64, u64), Listing>>,
}

impl Naming {
    /// Nothing known yet of the file systems of a SOURCE whose root is on device `root_dev`.
    pub fn new(root_dev: u64) -> Naming {
        Naming {
            root_dev,
            by_device: RwLock::new(HashMap::new()),
            listings: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `name`, looked up in the SOURCE directory `dir` (beneath `root`) and found as
    /// `found` (its attributes and descriptor), is that entry's own name: always, on a file
    /// system that matches names byte for byte; on another, only when the directory lists an
    /// entry of exactly that name.
    pub fn own_name(
        &self,
        root: BorrowedFd<'_>,
        dir: &RelPath,
        name: &Name,
        found: (&Stat, BorrowedFd<'_>),
    ) -> io::Result<bool> {
        let (st, fd) = found;
        let mut matching = self.matching(st.dev, fd);
        let mut dir_fd = None;
        // An entry on another device than SOURCE's root may be the root of a mount, whose name
        // lies in a directory of another file system: that one decides.
        if st.dev != self.root_dev || matching != Matching::Exact {
            let opened = sys::resolve(root, dir, Open::Dir)?;
            let dir_st = sys::fstat(opened.as_fd())?;
            if dir_st.dev != st.dev {
                matching = self.matching(dir_st.dev, opened.as_fd());
            }
            dir_fd = Some((opened, dir_st));
        }
        let loose = match matching {
            Matching::Exact => false,
            Matching::Loose => true,
            Matching::ExactUnlessCasefolded => match &dir_fd {
                Some((opened, _)) => sys::inode_flags(opened.as_fd())
                    .map_or(true, |flags| flags & FS_CASEFOLD_FL != 0),
                None => true,
            },
        };
        let Some((opened, dir_st)) = dir_fd.filter(|_| loose) else {
            return Ok(true);
        };
        let names = self.listing(opened.as_fd(), &dir_st)?;
        Ok(names.contains(name.as_bytes()))
    }

    /// How the file system of device `dev` (holding `fd`) matches names.
    fn matching(&self, dev: u64, fd: BorrowedFd<'_>) -> Matching {
        if let Some(known) = self.by_device.read().get(&dev) {
            return *known;
        }
        let matching = match sys::fs_magic(fd) {
            Ok(magic) => classify(magic),
            Err(_) => Matching::Loose,
        };
        tracing::debug!(dev, ?matching, "name matching of a SOURCE file system");
        self.by_device.write().insert(dev, matching);
        matching
    }

    /// The names the directory open at `dir` (with attributes `st`) lists: read afresh, or the
    /// listing kept from an earlier read of the same, settled version.
    fn listing(&self, dir: BorrowedFd<'_>, st: &Stat) -> io::Result<Arc<HashSet<Vec<u8>>>> {
        let key = (st.dev, st.ino);
        let version = (st.mtime, st.ctime);
        if let Some(kept) = self.listings.read().get(&key) {
            if kept.version == version {
                return Ok(kept.names.clone());
            }
        }
        let names: Arc<HashSet<Vec<u8>>> =
            Arc::new(sys::read_dir(dir)?.into_iter().map(|e| e.name).collect());
        let settled = SystemTime::now()
            .duration_since(st.mtime.max(st.ctime))
            .is_ok_and(|age| age >= LISTING_SETTLED);
        if settled {
            let mut listings = self.listings.write();
            if listings.len() >= MAX_LISTINGS {
                listings.clear();
            }
            listings.insert(
                key,
                Listing {
                    version,
                    names: names.clone(),
                },
            );
        }
        Ok(names)
    }
}

/// How a file system of `statfs` type `magic` matches names.
fn classify(magic: i64) -> Matching {
    if EXACT.contains(&magic) {
        return Matching::Exact;
    }
    let Some((_, casefolds)) = CASEFOLD_CAPABLE.iter().find(|(m, _)| *m == magic) else {
        return Matching::Loose;
    };
    let possible = match casefolds {
        Casefolds::If(fs) => kernel_casefolds(fs),
        Casefolds::IfAny => CASEFOLD_CAPABLE.iter().any(|(_, c)| match c {
            Casefolds::If(fs) => kernel_casefolds(fs),
            Casefolds::IfAny | Casefolds::Maybe => false,
        }),
        Casefolds::Maybe => true,
    };
    if possible {
        Matching::ExactUnlessCasefolded
    } else {
        Matching::Exact
    }
}

/// Whether this kernel can casefold directories of the file system `fs` (its
/// `/sys/fs/FS/features/casefold`); when /sys cannot say, it is assumed it can.
fn kernel_casefolds(fs: &'static str) -> bool {
    static KNOWN: OnceLock<Mutex<HashMap<&'static str, bool>>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| Mutex::new(HashMap::new()));
    *known.lock().entry(fs).or_insert_with(|| {
        let features = std::path::Path::new("/sys/fs").join(fs).join("features");
        !features.is_dir() || features.join("casefold").exists()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_and_unknown_file_systems_are_checked() {
        for magic in [
            0x4d44,      // vfat
            0x2011_BAB0, // exfat
            0x7366_746E, // ntfs3
            0xFF53_4D42, // cifs
            0xFE53_4D42, // smb2
            0x6573_5546, // fuse
            0x6969,      // nfs
            0x2FC1_2FC1, // zfs
            0x1234_5678, // unknown
        ] {
            assert_eq!(classify(magic), Matching::Loose, "{magic:#x}");
        }
        assert_eq!(classify(0x5846_5342), Matching::Exact);
        assert_eq!(classify(0xCA45_1A4E), Matching::ExactUnlessCasefolded);
    }
}
