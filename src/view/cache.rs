//! What the kernel may keep, and for how long (`--cache`, SPEC §1): how long entries,
//! absences and attributes stay valid, whether file data and listings cached at an earlier open
//! are still right, which kernel features the view asks for at `init`, and whether files and
//! directories need opening at all. The FUSE adapter carries these answers out and decides none
//! of them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Attr, Entry, View, Writes};
use crate::path::Name;
use crate::policy::WriteMode;
use crate::sys::{FileType, Stat};

/// How much the kernel may cache (`--cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CacheMode {
    /// Entries, absences and attributes for a minute where inotify watches cover them (every
    /// SOURCE directory the kernel holds, on a local file system), and each change underneath
    /// is told to the kernel at once; for a second elsewhere. File data and listings while
    /// no change is seen (a notification, or a new mtime, ctime or size).
    #[default]
    Auto,
    /// For a SOURCE that does not change underneath: entries and attributes for a day, file
    /// data and listings until a change made through the view or a policy reload.
    Always,
    /// Nothing: every lookup and attribute goes to the daemon, data is read afresh.
    Never,
}

impl CacheMode {
    /// In `auto`, how long the kernel may keep what watches cover: changes are told to it at
    /// once, so this bounds only what inotify cannot see (writes through a shared mapping, or
    /// through a hard link in a directory the view does not hold).
    pub const WATCHED_TTL: Duration = Duration::from_secs(60);

    /// How long the kernel may keep entries and attributes no watch covers.
    pub fn ttl(self) -> Duration {
        match self {
            CacheMode::Auto => Duration::from_secs(1),
            CacheMode::Always => Duration::from_secs(24 * 3600),
            CacheMode::Never => Duration::ZERO,
        }
    }
}

/// What the kernel is to ask for at `init`, decided by the view's mode and cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Cache file data and symlink targets, dropping cached data when a file's mtime or size is
    /// seen to change (`FUSE_AUTO_INVAL_DATA`, `FUSE_CACHE_SYMLINKS`).
    pub cache_data: bool,
    /// The daemon clears setuid/setgid and capabilities itself when a file is written,
    /// truncated or chowned (`FUSE_HANDLE_KILLPRIV_V2`).
    pub kills_privileges: bool,
    /// Read-only opens are passed through to SOURCE's file (`FUSE_PASSTHROUGH`).
    pub passthrough: bool,
}

/// The version of a file or directory the kernel's cache was filled from: which object it is
/// (device and inode), its mtime, ctime and size.
pub(super) type Version = (
    (u64, u64),
    std::time::SystemTime,
    std::time::SystemTime,
    u64,
);

/// How many absent names are recorded for a reload to make the kernel forget; past this,
/// absences are cached only briefly ([`Absence::Brief`]).
const MAX_NEGATIVES: usize = 100_000;

/// How the kernel may cache an absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Absence {
    /// Recorded for a reload: as long as entries are cached.
    Recorded,
    /// Not recorded (too many are): for at most [`Absence::BRIEF`], which is as long as a
    /// reload may leave it standing.
    Brief,
}

impl Absence {
    /// How long an absence past the record's budget may be cached.
    const BRIEF: std::time::Duration = std::time::Duration::from_secs(1);
}

#[derive(Default)]
pub(super) struct Negatives {
    pub(super) by_parent: HashMap<u64, HashSet<Name>>,
    pub(super) count: usize,
}

impl View {
    /// Lets the kernel cache as `cache` says.
    pub fn with_cache(mut self, cache: CacheMode) -> View {
        self.cache = cache;
        self
    }

    /// Whether the kernel may keep node `ino` (a child of `parent`, or of its first parent)
    /// for long: a watch sees every change to it, that is its directory's, and its own if it
    /// is a directory.
    fn lasting(&self, parent: Option<u64>, ino: u64, dir: bool) -> bool {
        let Some(watches) = &self.watches else {
            return false;
        };
        let parent = match parent {
            Some(p) => p,
            None => match self.inodes.read().parent(ino) {
                Some(p) => p,
                None => return false,
            },
        };
        watches.is_watched(parent) && (!dir || watches.is_watched(ino))
    }

    /// Whether a watch sees every change to directory node `ino` and its entries.
    pub(super) fn is_watched(&self, ino: u64) -> bool {
        self.watches.as_ref().is_some_and(|w| w.is_watched(ino))
    }

    /// Whether the kernel may keep what it cached of node `ino` at its last open, now that it
    /// is at `st`; records `st` as the version cached from now on.
    pub(super) fn keep_cache(&self, ino: u64, st: &Stat) -> bool {
        let version = ((st.dev, st.ino), st.mtime, st.ctime, st.size);
        let before = self.versions.lock().insert(ino, version);
        match self.cache {
            CacheMode::Never => false,
            CacheMode::Always => before.is_some(),
            CacheMode::Auto => before == Some(version),
        }
    }

    /// Whether, and how, the kernel may cache that `parent` has no (visible) entry `name`. Only
    /// in a read-only view (in a writable one the kernel keeps its own entries in step with the
    /// changes it makes), never with an audit log, which must see every probe of a hidden name,
    /// nor with `--cache never`. The first 100,000 are recorded for [`View::reload`];
    /// past them an absence is still cached, briefly: were it not cached at all, a process
    /// could probe the same name again and again and time the daemon's answers, which differ a
    /// little between a name that is hidden and one that is missing.
    fn absence_cacheable(&self, parent: u64, name: &Name) -> Option<Absence> {
        if !matches!(self.writes, Writes::Deny)
            || self.audit.is_some()
            || self.cache == CacheMode::Never
        {
            return None;
        }
        let mut negatives = self.negatives.lock();
        if negatives
            .by_parent
            .get(&parent)
            .is_some_and(|names| names.contains(name))
        {
            return Some(Absence::Recorded);
        }
        if negatives.count >= MAX_NEGATIVES {
            return Some(Absence::Brief);
        }
        if negatives
            .by_parent
            .entry(parent)
            .or_default()
            .insert(name.clone())
        {
            negatives.count += 1;
        }
        Some(Absence::Recorded)
    }

    /// How long the kernel may keep node `ino` of kind `kind`, an entry of `parent` when known:
    /// in `auto`, long only while watches see every change to it.
    fn ttl(&self, parent: Option<u64>, ino: u64, kind: FileType) -> Duration {
        if self.cache == CacheMode::Auto && self.lasting(parent, ino, kind == FileType::Dir) {
            CacheMode::WATCHED_TTL
        } else {
            self.cache.ttl()
        }
    }

    /// The entry the kernel is given for node `ino`, an entry of `parent` (when known), found
    /// with attributes `st`.
    pub(super) fn entry(&self, parent: Option<u64>, ino: u64, st: Stat) -> Entry {
        let attr = self.sanitise(ino, st);
        Entry {
            ino,
            attr,
            ttl: self.ttl(parent, ino, attr.kind),
            // A node id may be given again once the kernel forgot it: the generation tells the
            // nodes apart.
            generation: self.inodes.read().generation_of(ino),
        }
    }

    /// The attributes the kernel is given for node `ino` (already sanitised).
    pub(super) fn attr(&self, ino: u64, attr: Stat) -> Attr {
        Attr {
            attr,
            ttl: self.ttl(None, ino, attr.kind),
        }
    }

    /// How long the kernel may keep that `parent` has no entry `name`, if it may keep it at
    /// all ([`View::absence_cacheable`]): as long as an entry there, or briefly past the
    /// record's budget.
    pub(super) fn absence(&self, parent: u64, name: &Name) -> Option<Duration> {
        let how = self.absence_cacheable(parent, name)?;
        let ttl = match self.cache {
            CacheMode::Auto if self.is_watched(parent) => CacheMode::WATCHED_TTL,
            cache => cache.ttl(),
        };
        Some(match how {
            Absence::Recorded => ttl,
            Absence::Brief => ttl.min(Absence::BRIEF),
        })
    }

    /// Whether the kernel may keep the listing of directory node `ino` across opens. A cached
    /// listing pays off only when the entries stay cached too: with short entry times, a fresh
    /// readdirplus revalidates a whole directory in a few requests, where a cached listing
    /// leaves one lookup per name to do.
    pub(super) fn listings_last(&self, ino: u64) -> bool {
        match self.cache {
            CacheMode::Always => true,
            CacheMode::Auto => self.is_watched(ino),
            CacheMode::Never => false,
        }
    }

    /// Whether the kernel mounts the view read-only (so it refuses every write open itself): in
    /// deny mode, unless an audit log must see the refused writes (the daemon then refuses each
    /// with `EROFS` itself).
    pub fn read_only_mount(&self) -> bool {
        matches!(self.writes, Writes::Deny) && self.audit.is_none()
    }

    /// Whether `open` and `opendir` are answered with `ENOSYS`, so the kernel stops sending them:
    /// for a view the kernel mounts read-only, with kernel caching on. The open and release
    /// round trips of every file and directory are skipped; reads then carry no handle, each
    /// one the kernel cannot serve from its cache is decided by `read` alone, and the kernel
    /// keeps data and listings as `open` would let it, dropping them when a file's mtime or
    /// size is seen to change or a notification says so.
    pub(super) fn skips_opens(&self) -> bool {
        self.read_only_mount() && self.cache != CacheMode::Never
    }

    /// Whether `fh` is no handle at all: the kernel opened the file or directory without the
    /// daemon ([`View::skips_opens`]).
    pub(super) fn unopened(&self, fh: u64) -> bool {
        fh == 0 && self.skips_opens()
    }

    /// What the kernel is to ask for at `init`.
    pub fn features(&self) -> Features {
        let mode = self.write_mode();
        Features {
            cache_data: self.cache != CacheMode::Never,
            // Nothing to do in overlay mode: nothing in upper/ ever holds those bits or
            // `security.capability` (stripped at creation, chmod and copy-up, and every SOURCE
            // file is copied up before it is changed), so the kernel need not fetch attributes
            // and ask for a mode change first. Direct mode writes SOURCE files that may hold
            // them, so there the kernel keeps doing it.
            kills_privileges: mode == WriteMode::Overlay,
            // Passthrough needs CAP_SYS_ADMIN, a view nothing writes to, and opens to answer
            // (it also stops other file systems from stacking on the view, so only when used).
            passthrough: !self.skips_opens() && mode == WriteMode::Deny && crate::sys::euid() == 0,
        }
    }
}
