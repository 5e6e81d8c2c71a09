//! The file-system logic: which entries of SOURCE the view shows, and serving them.
//!
//! [`View`] holds the inode table and open handles and answers each request with a
//! [`FsResult`]; [`Scope`] decides visibility through descriptors rooted at SOURCE. Every
//! operation that takes a node resolves its path afresh and judges it again, so the view follows
//! changes underneath and never serves what has become hidden. Nothing here knows about fuser.

mod cache;
mod error;
mod files;
mod inodes;
mod listing;
mod naming;
mod numbers;
mod scope;
mod watch;
mod write;

use std::collections::HashMap;
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use cache::{CacheMode, Features};
pub use error::{FsError, FsResult, Refusal};
pub use inodes::ROOT;
pub use listing::{DirItem, Listed, ListedPlus};
pub use scope::{Found, HiddenReason, Judged, Scope, Verdict};
pub use watch::Watches;
pub use write::{Caller, SetAttr};

use crate::audit::Audit;
use crate::path::{Name, RelPath};
use crate::policy::{HardlinkMode, InodeMode, Matcher, WriteMode};
use crate::sys::{self, FileType, FsStat, Open, Stat};
use crate::write::WriteLayer;
use cache::{Negatives, Version};
use files::KeptRead;
use inodes::{FileKey, Inodes, Numbers};
use listing::DirSnapshot;

/// An entry as the kernel is given it: the node id, its (sanitised) attributes, how long the
/// kernel may keep both, and the node's generation.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub ino: u64,
    pub attr: Stat,
    pub ttl: Duration,
    pub generation: u64,
}

/// Attributes as the kernel is given them (sanitised), and how long it may keep them.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub attr: Stat,
    pub ttl: Duration,
}

/// What `statfs` answers: SOURCE's space, and file counts that say nothing of SOURCE's.
#[derive(Debug, Clone, Copy)]
pub struct Statfs {
    pub space: FsStat,
    pub files: u64,
    pub files_free: u64,
    pub name_max: u32,
}

/// The file count `statfs` gives, whatever SOURCE holds.
const STATFS_FILES: u64 = 1 << 32;

/// What `lookup` found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// A visible entry.
    Found(Entry),
    /// Nothing visible, and the kernel may keep that for `ttl`.
    Absent { ttl: Duration },
}

/// An opened file or directory, and what the kernel may keep of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// The data (or listing) cached from an earlier open is still right.
    pub keep_cache: bool,
    /// The kernel may keep a directory's listing across opens.
    pub cache_listing: bool,
    /// For a file opened for reading, the (device, inode) of the file checked and opened: a
    /// file the kernel reads directly must be this one.
    pub file: Option<(u64, u64)>,
}

/// Where writes go.
pub enum Writes {
    /// A read-only view: every change is refused.
    Deny,
    /// Changes are made by this write layer ([`crate::write`]).
    Layer(Box<dyn WriteLayer>),
}

/// Which layer an entry of the view comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// SOURCE.
    Lower,
    /// The write layer's own tree (the overlay's `upper/`).
    Upper,
}

/// A visible entry, found: its layer, an `O_PATH` descriptor on it and its attributes.
pub struct Located {
    pub layer: Layer,
    pub fd: OwnedFd,
    pub stat: Stat,
}

/// An open file: the descriptor, the node it was opened on, whether writes through it count
/// against the write layer's limits, and for writable files the view path it was opened at.
pub(crate) struct Handle {
    file: File,
    node: u64,
    counted: bool,
    path: Option<RelPath>,
}

/// The scoped view of one SOURCE.
pub struct View {
    scope: Scope,
    writes: Writes,
    inodes: RwLock<Inodes>,
    files: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    /// Listings being read without an open handle (the kernel stopped sending `opendir`),
    /// by directory node; each is dropped when its last, empty part has been read.
    listings: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    next_fh: AtomicU64,
    audit: Option<Arc<Audit>>,
    cache: CacheMode,
    /// Per node, the version the kernel last cached data or a listing of.
    versions: Mutex<HashMap<u64, Version>>,
    /// Names the kernel was told are absent and may cache as such, by parent node, so a
    /// policy reload can make it forget them; at most 100,000.
    negatives: Mutex<Negatives>,
    /// inotify watches on the SOURCE directories the kernel holds (`--cache auto`).
    watches: Option<Watches>,
    /// Files read without an open handle, by node and (device, inode), kept for the next read
    /// of the same node (a large file comes in many requests); at most a few.
    reads: Mutex<Vec<KeptRead>>,
    /// Requests that began and that finished changing names (on disk, then in the inode
    /// table): while they differ, a name found gone may only be in the middle of a change.
    names_changing: AtomicU64,
    names_changed: AtomicU64,
    /// Operations the policy refused, for `scopefs status`.
    refused: AtomicU64,
    /// How node ids are chosen (`[view] inodes`, read once), and SOURCE's root's device and
    /// inode number ([`numbers`]).
    numbers: Numbers,
    source_dev: u64,
    source_root_ino: u64,
}

/// Held by a request while it changes names on disk and in the inode table.
pub(crate) struct NameChange<'a>(&'a AtomicU64);

impl Drop for NameChange<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Why a name that SOURCE's file system matched to an entry of another name is refused.
const NOT_OWN_NAME: &str = "the file system found an entry of another name for it";

impl View {
    /// A view of `source` under the compiled policy, writing as `writes` says.
    pub fn new(source: &Path, matcher: Arc<Matcher>, writes: Writes) -> std::io::Result<View> {
        let numbers = match matcher.inodes() {
            InodeMode::Source => Numbers::Asked,
            InodeMode::Synthetic => Numbers::Synthetic,
        };
        let scope = Scope::open(source, matcher)?;
        let root = sys::fstat(scope.root())?;
        Ok(View {
            scope,
            writes,
            inodes: RwLock::new(Inodes::numbered(numbers)),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            audit: None,
            cache: CacheMode::Auto,
            versions: Mutex::new(HashMap::new()),
            negatives: Mutex::new(Negatives::default()),
            watches: None,
            reads: Mutex::new(Vec::new()),
            names_changing: AtomicU64::new(0),
            names_changed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            numbers,
            source_dev: root.dev,
            source_root_ino: root.ino,
        })
    }

    /// Watches the SOURCE directories the kernel holds with `watches`, starting at the root.
    pub fn with_watches(mut self, watches: Watches) -> View {
        watches.watch(ROOT, self.scope.root());
        self.watches = Some(watches);
        self
    }

    /// Watches the SOURCE directory of node `ino`, found as `located`; when the watch is new,
    /// reads the attributes again so that none can have changed unseen before it began.
    fn watch_dir(&self, ino: u64, path: &RelPath, located: &mut Located) {
        let Some(watches) = &self.watches else {
            return;
        };
        let watched = if located.layer == Layer::Lower {
            watches.watch(ino, located.fd.as_fd())
        } else {
            // An overlay directory: what can change underneath is its SOURCE counterpart.
            match sys::resolve(self.scope.root(), path, Open::Path) {
                Ok(fd) => watches.watch(ino, fd.as_fd()),
                Err(_) => return,
            }
        };
        if watched == watch::Watched::Added
            && let Ok(st) = sys::fstat(located.fd.as_fd())
        {
            located.stat = st;
        }
    }

    /// The watch `id` reported a change: the directory nodes it covers.
    pub fn watched_nodes(&self, id: i32) -> Vec<u64> {
        self.watches
            .as_ref()
            .map(|w| w.nodes(id))
            .unwrap_or_default()
    }

    /// Events can no longer be read: nothing counts as watched from now on.
    pub fn abandon_watches(&self) {
        if let Some(watches) = &self.watches {
            watches.abandon();
        }
    }

    /// The kernel ended watch `id`.
    pub fn watch_ended(&self, id: i32) {
        if let Some(watches) = &self.watches {
            watches.ended(id);
        }
    }

    /// The node the kernel holds for entry `name` of `parent`, if any.
    pub fn child(&self, parent: u64, name: &Name) -> Option<u64> {
        self.inodes.read().child(parent, name)
    }

    /// Marks the current request as changing names until the guard is dropped, which must be
    /// after the inode table has been brought in line with the disk.
    pub(crate) fn changing_names(&self) -> NameChange<'_> {
        self.names_changing.fetch_add(1, Ordering::SeqCst);
        NameChange(&self.names_changed)
    }

    /// What the threads serving this view need to reach: SOURCE (to read, or in direct mode to
    /// change) and the overlay's `upper/` and `work/`.
    pub fn confinement(&self) -> crate::confine::Confinement<'_> {
        let mut rules = crate::confine::Confinement::default();
        match self.layer() {
            None => rules.read.push(self.scope.root()),
            Some(layer) => layer.confine(self.scope.root(), &mut rules),
        }
        rules
    }

    /// Sends this view's refusals (and, as configured, changes and reads) to `audit`.
    pub fn with_audit(mut self, audit: Arc<Audit>) -> View {
        self.audit = Some(audit);
        self
    }

    /// The audit log this view's refusals, changes and reads go to, if any.
    pub fn audit(&self) -> Option<&Arc<Audit>> {
        self.audit.as_ref()
    }

    /// How many operations the policy refused so far (hidden names asked for, changes refused).
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// `err`, refused at `path` by `rule`. The rule is kept where something will read it (an
    /// audit log, or debug logging): elsewhere a refusal is its bare error, at no cost.
    fn refuse(&self, path: &RelPath, err: FsError, rule: impl std::fmt::Display) -> FsError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.audit.is_some() || tracing::enabled!(tracing::Level::DEBUG) {
            FsError::refused(err, path, rule)
        } else {
            err
        }
    }

    /// Logs a change made at `path` by `caller`.
    fn wrote(&self, caller: &Caller, path: &RelPath) {
        if let Some(audit) = &self.audit {
            audit.wrote(&caller.request(), path);
        }
    }

    /// Logs a read of `path` by `caller`.
    fn read_of(&self, caller: &Caller, path: &RelPath) {
        if let Some(audit) = &self.audit {
            audit.read(&caller.request(), path);
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The write mode in force.
    pub fn write_mode(&self) -> WriteMode {
        self.layer().map_or(WriteMode::Deny, |layer| layer.mode())
    }

    /// The layer that makes changes; none in a read-only view.
    fn layer(&self) -> Option<&dyn WriteLayer> {
        match &self.writes {
            Writes::Deny => None,
            Writes::Layer(layer) => Some(layer.as_ref()),
        }
    }

    fn path(&self, ino: u64) -> FsResult<RelPath> {
        self.inodes.read().path(ino).ok_or(FsError::NotFound)
    }

    /// What the kernel sees of `st` as node `ino`: the node's inode number ([`numbers`]),
    /// directory sizes and link counts that say nothing of hidden entries.
    fn sanitise(&self, ino: u64, mut st: Stat) -> Stat {
        st.ino = self.shown_number(ino);
        match st.kind {
            FileType::Dir => {
                st.nlink = 1;
                st.size = 4096;
                st.blocks = 8;
            }
            _ if self.scope.matcher().hardlinks() == HardlinkMode::Keep => st.nlink = 1,
            _ => {}
        }
        st
    }

    /// Finds the visible entry at `path`: in `upper/` if the overlay has it, else in SOURCE
    /// unless the overlay deleted or shadowed it. Hidden or gone is `NotFound`.
    pub fn locate(&self, path: &RelPath) -> FsResult<Located> {
        if let Some(layer) = self.layer() {
            if let (true, Some(root)) = (layer.holds(path), layer.own_root()) {
                let fd = sys::resolve(root, path, Open::Path).map_err(FsError::resolving)?;
                let stat = sys::fstat(fd.as_fd())?;
                if !self
                    .scope
                    .admits_created(path, &stat, || sys::readlink(fd.as_fd()))
                {
                    return Err(FsError::NotFound);
                }
                return Ok(Located {
                    layer: Layer::Upper,
                    fd,
                    stat,
                });
            }
            if layer.hides_lower(path) {
                return Err(FsError::NotFound);
            }
        }
        let (fd, stat, visible) = self.scope.find(path).map_err(FsError::resolving)?;
        if !visible {
            if self.audit.is_some() {
                if let Err(reason) = self.scope.judge(path, &stat, || sys::readlink(fd.as_fd())) {
                    return Err(self.refuse(path, FsError::NotFound, reason));
                }
            }
            // A hidden name that exists, asked for: a refusal, counted as `refuse` counts.
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(FsError::NotFound);
        }
        Ok(Located {
            layer: Layer::Lower,
            fd,
            stat,
        })
    }

    /// [`View::locate`] of the entry `name` of the directory at `dir`, a name given by the
    /// kernel: it must be the entry's own name. Where SOURCE's file system matches names
    /// loosely, a name it matched to an entry of another name is not there.
    fn locate_child(&self, dir: &RelPath, name: &Name) -> FsResult<(RelPath, Located)> {
        let path = dir.join(name);
        let located = self.locate(&path)?;
        if located.layer == Layer::Lower
            && !self
                .scope
                .own_name(dir, name, (&located.stat, located.fd.as_fd()))
                .map_err(FsError::resolving)?
        {
            return Err(self.refuse(&path, FsError::NotFound, NOT_OWN_NAME));
        }
        Ok((path, located))
    }

    /// Like [`View::locate`], but `None` when nothing visible is there, or only an entry of
    /// another name that SOURCE's file system matched to this one ([`View::locate_child`]).
    fn locate_opt(&self, path: &RelPath) -> FsResult<Option<Located>> {
        let found = match (path.parent(), path.file_name().map(Name::new)) {
            (Some(dir), Some(Ok(name))) => self.locate_child(&dir, &name).map(|(_, l)| l),
            _ => self.locate(path),
        };
        match found {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The root descriptor of `layer`.
    fn layer_root(&self, layer: Layer) -> std::os::fd::BorrowedFd<'_> {
        match (layer, self.layer().and_then(|l| l.own_root())) {
            (Layer::Upper, Some(root)) => root,
            _ => self.scope.root(),
        }
    }

    /// The key under which an entry of `layer` shares one node among its names: files in
    /// `upper/`, whose hardlinks only the view makes.
    fn file_key(layer: Layer, st: &Stat) -> Option<FileKey> {
        (layer == Layer::Upper && st.kind != FileType::Dir).then_some((st.dev, st.ino))
    }

    /// Resolves node `ino` and judges it again. A file of `upper/` is reached by the first of
    /// its names that still leads to it; names found to lead elsewhere, or nowhere, are dropped.
    fn node(&self, ino: u64) -> FsResult<(RelPath, Located)> {
        let (key, one_name) = {
            let inodes = self.inodes.read();
            (inodes.file(ino), inodes.has_one_name(ino))
        };
        if key.is_none() && one_name {
            let path = self.path(ino)?;
            let located = self.locate(&path)?;
            if !self.same_source_file(ino, &located) {
                self.inodes.write().retire(ino);
                return Err(FsError::Stale);
            }
            return Ok((path, located));
        }
        let began = self.names_changing.load(Ordering::SeqCst);
        let quiet = began == self.names_changed.load(Ordering::SeqCst);
        let names = self.inodes.read().names(ino);
        for (parent, name, path) in names {
            match self.locate(&path) {
                Ok(located)
                    if key.map_or_else(
                        || located.layer == Layer::Lower && self.same_source_file(ino, &located),
                        |key| Self::file_key(located.layer, &located.stat) == Some(key),
                    ) =>
                {
                    return Ok((path, located));
                }
                Err(e) if !e.is_not_found() => return Err(e),
                Ok(_) | Err(_) => {
                    // A rename or removal under way has changed the disk but not yet the
                    // table: the name may be moving with this very node, so it stays.
                    if quiet && self.names_changing.load(Ordering::SeqCst) == began {
                        self.inodes.write().drop_name(ino, parent, &name);
                    }
                }
            }
        }
        Err(FsError::NotFound)
    }

    /// `lookup`: the child `name` of `parent`, if it exists and is visible; else, where the
    /// kernel may keep the absence, for how long.
    pub fn lookup(&self, parent: u64, name: &Name) -> FsResult<Lookup> {
        match self.lookup_entry(parent, name) {
            Ok(entry) => Ok(Lookup::Found(entry)),
            Err(e) if e.is_not_found() => match self.absence(parent, name) {
                Some(ttl) => Ok(Lookup::Absent { ttl }),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The child `name` of `parent`, if it exists and is visible.
    fn lookup_entry(&self, parent: u64, name: &Name) -> FsResult<Entry> {
        let (path, mut located) = self.locate_child(&self.path(parent)?, name)?;
        let ino = self.node_for(
            parent,
            (name, &path),
            (located.layer, &located.stat),
            numbers::Known::Fd(located.fd.as_fd()),
        );
        if located.stat.kind == FileType::Dir {
            self.watch_dir(ino, &path, &mut located);
        }
        Ok(self.entry(Some(parent), ino, located.stat))
    }

    /// Puts a new policy in force. The caller then makes the kernel forget what it cached
    /// ([`View::cached_names`], [`View::nodes`]): an entry that became hidden must disappear at
    /// once, not when its cache time runs out.
    pub fn reload(&self, matcher: Arc<Matcher>) {
        self.scope.set_matcher(matcher);
    }

    /// Every node the kernel holds.
    pub fn nodes(&self) -> Vec<u64> {
        self.inodes.read().nodes()
    }

    /// Every name the kernel may have cached, present or absent, as (parent, name); the
    /// absent ones are no longer recorded, and neither are the versions of cached data, since
    /// the caller makes the kernel forget them.
    pub fn cached_names(&self) -> Vec<(u64, Name)> {
        self.versions.lock().clear();
        let mut entries = self.inodes.read().entries();
        let negatives = std::mem::take(&mut *self.negatives.lock());
        for (parent, names) in negatives.by_parent {
            entries.extend(names.into_iter().map(|name| (parent, name)));
        }
        entries
    }

    /// `forget`: the kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut inodes = self.inodes.write();
        inodes.forget(ino, n);
        if inodes.path(ino).is_none() {
            self.versions.lock().remove(&ino);
            self.listings.lock().remove(&ino);
            self.reads.lock().retain(|(node, _, _)| *node != ino);
            let mut negatives = self.negatives.lock();
            if let Some(names) = negatives.by_parent.remove(&ino) {
                negatives.count = negatives.count.saturating_sub(names.len());
            }
            if let Some(watches) = &self.watches {
                watches.unwatch(ino);
            }
        }
    }

    /// `getattr`; through the open file `fh` when the kernel names one, so an open file that
    /// was removed still answers. The kernel names none for `fstat`, so a node that lost every
    /// name answers through any file opened on it (POSIX: an unlinked open file lives on, with
    /// a link count of 0).
    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> FsResult<Attr> {
        Ok(self.attr(ino, self.stat_of(ino, fh)?))
    }

    /// The attributes [`View::getattr`] gives.
    fn stat_of(&self, ino: u64, fh: Option<u64>) -> FsResult<Stat> {
        if let Some(handle) = fh.and_then(|fh| self.files.lock().get(&fh).cloned()) {
            return Ok(self.sanitise(ino, sys::fstat(handle.file.as_fd())?));
        }
        if self.inodes.read().is_unlinked(ino) {
            let handle = self.files.lock().values().find(|h| h.node == ino).cloned();
            if let Some(handle) = handle {
                return Ok(self.sanitise(ino, sys::fstat(handle.file.as_fd())?));
            }
        }
        let (_, located) = self.node(ino)?;
        Ok(self.sanitise(ino, located.stat))
    }

    /// `readlink`: the target as stored (only links the policy shows get this far).
    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (_, located) = self.node(ino)?;
        if located.stat.kind != FileType::Symlink {
            return Err(FsError::Invalid);
        }
        Ok(sys::readlink(located.fd.as_fd())?)
    }

    /// The visible entries of the directory at `path`, merged across layers: the write layer's
    /// own first (`upper/`), then SOURCE's entries that the layer neither replaced, deleted nor
    /// shadowed.
    fn list(&self, path: &RelPath, located: &Located) -> FsResult<Vec<DirItem>> {
        let item = |name, attr, layer, generation| DirItem {
            name,
            attr,
            layer,
            generation,
        };
        let generations = self.numbers == Numbers::Asked;
        let Some(layer) = self.layer().filter(|l| l.own_root().is_some()) else {
            let lower = self
                .scope
                .list_with_generations(path, generations)
                .map_err(FsError::resolving)?;
            return Ok(lower
                .into_iter()
                .map(|(name, st, generation)| item(name, st, Layer::Lower, generation))
                .collect());
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if located.layer == Layer::Upper || path.is_root() {
            if let Some(own) = layer.list_own(path)? {
                let dir = own.fd;
                for (name, st) in own.entries {
                    let child = path.join(&name);
                    if self
                        .scope
                        .admits_created(&child, &st, || sys::readlink_child(dir.as_fd(), &name))
                    {
                        seen.insert(name.clone());
                        out.push(item(name, st, Layer::Upper, None));
                    }
                }
            }
        }
        if layer.merges_lower(path) {
            let lower = match self.scope.list_with_generations(path, generations) {
                Ok(lower) => lower,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    Vec::new()
                }
                Err(e) => return Err(FsError::resolving(e)),
            };
            for (name, st, generation) in lower {
                if !seen.contains(&name) && !layer.deleted(&path.join(&name)) {
                    out.push(item(name, st, Layer::Lower, generation));
                }
            }
        }
        Ok(out)
    }

    /// `statfs`: SOURCE's space, with synthetic file counts (the real ones would count hidden
    /// files).
    pub fn statfs(&self) -> FsResult<Statfs> {
        let space = sys::statvfs(self.scope.root())?;
        Ok(Statfs {
            space,
            files: STATFS_FILES,
            files_free: STATFS_FILES / 2,
            name_max: 255,
        })
    }

    /// Opens the entry `located` at `path` for attribute access (through the descriptor it was
    /// checked by), if it is of a kind that can carry `user.*` attributes (regular files and
    /// directories).
    fn xattr_fd(&self, path: &RelPath, located: &Located) -> FsResult<Option<OwnedFd>> {
        let root = self.layer_root(located.layer);
        let (fd, st) = (located.fd.as_fd(), &located.stat);
        Ok(match located.stat.kind {
            FileType::File => Some(
                sys::reopen_regular(root, path, fd, st, false)
                    .map_err(FsError::resolving)?
                    .into(),
            ),
            FileType::Dir => Some(sys::reopen_dir(root, path, fd, st).map_err(FsError::resolving)?),
            _ => None,
        })
    }

    /// `getxattr`: only `user.*` attributes exist in the view.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let (path, located) = self.node(ino)?;
        if !name.starts_with(b"user.") {
            return Err(FsError::NoData);
        }
        let Some(fd) = self.xattr_fd(&path, &located)? else {
            return Err(FsError::NoData);
        };
        Ok(sys::getxattr(fd.as_fd(), name)?)
    }

    /// `listxattr`: the `user.*` names, NUL-terminated.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (path, located) = self.node(ino)?;
        let Some(fd) = self.xattr_fd(&path, &located)? else {
            return Ok(Vec::new());
        };
        let all = sys::listxattr(fd.as_fd())?;
        let mut out = Vec::new();
        for name in all.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
            out.extend_from_slice(name);
            out.push(0);
        }
        Ok(out)
    }

    /// `access`: visible nodes may be read; writing needs a writable path.
    pub fn access(&self, ino: u64, mask: i32) -> FsResult<()> {
        let (path, located) = self.node(ino)?;
        if mask & libc::W_OK != 0 {
            self.check_writable(&path, &located.stat)?;
        }
        Ok(())
    }
}
