//! Visibility of one SOURCE path: the policy verdict plus what only the file system can tell
//! (file type, symlink targets, hardlinks).
//!
//! [`Scope`] owns the descriptor of SOURCE's root and answers "may this be seen?" for a path
//! whose attributes were just read through that descriptor. It is asked again on every
//! operation, so a change underneath (a rename, a symlink swapped in, a new hardlink) takes
//! effect at once. It never follows a symlink: targets are read and judged lexically.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::{Mutex, RwLock};

use crate::path::{Name, RelPath};
use crate::policy::{Decision, HardlinkMode, Kind, Matcher, Rule, SymlinkMode};
use crate::sys::{self, FileType, Open, Stat};
use crate::view::naming::Naming;

/// Why a path that exists is hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiddenReason {
    /// A hide pattern or preset matched the path or an ancestor.
    Rule(Rule),
    /// Neither the path nor an ancestor matches `allow`.
    NotAllowed,
    /// `symlinks = "hide"`, or under `contain` the target is absolute, escapes SOURCE, or lands
    /// on a hidden path. The string says which.
    Symlink(String),
    /// `hardlinks = "hide"` and the file's inode is also reachable through a name the view does
    /// not show (or through a name outside SOURCE).
    Hardlink,
}

impl std::fmt::Display for HiddenReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HiddenReason::Rule(rule) => write!(f, "{rule}"),
            HiddenReason::NotAllowed => {
                f.write_str("not allowed (no allow pattern matches it or an ancestor)")
            }
            HiddenReason::Symlink(why) => write!(f, "symlink: {why}"),
            HiddenReason::Hardlink => f.write_str("hardlink to a name the view does not show"),
        }
    }
}

/// The view's verdict on one path of SOURCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Shown, because of this allow rule.
    Visible(Rule),
    /// A directory shown only because it is on the way to allowed paths.
    Transit,
    /// Exists in SOURCE but is hidden.
    Hidden(HiddenReason),
    /// Does not exist in SOURCE (or cannot be reached without following a symlink).
    Missing,
}

/// A verdict for an existing path: shown (and why) or hidden (and why).
pub type Judged = Result<Verdict, HiddenReason>;

/// Directories deeper than this are not walked when indexing hardlinks; multi-link files are
/// then hidden, since their other names cannot all be checked.
const MAX_INDEX_DEPTH: usize = 4096;

/// How many indexes one judgement of a multi-link file looks at (the one in force, then newer
/// ones that other requests walked meanwhile) before it walks SOURCE itself or, the file still
/// changing, hides it.
const MAX_INDEX_LOOKS: usize = 3;

/// Multi-link files of SOURCE and whether every name of each is visible, built by a walk of
/// SOURCE on first need and again whenever a file it describes is found changed since.
///
/// Each file is known by (device, inode) together with its ctime and link count when the walk
/// met it. Every change to the names of a file (a link made or removed, one of its names
/// renamed) sets its ctime, and so does reusing its inode number for a new file, so a file
/// judged with another ctime or link count than the index holds is judged on a fresh walk,
/// never on what the index knew of its old names.
struct LinkIndex {
    /// The policy the names were judged by.
    matcher: Arc<Matcher>,
    names: HashMap<(u64, u64), Linked>,
    /// The walk stopped early (too deep or unreadable): nothing is known to be safe.
    incomplete: bool,
}

/// What the walk found of one multi-link file.
#[derive(Debug, Clone, Copy)]
struct Linked {
    /// ctime and link count at the walk.
    ctime: std::time::SystemTime,
    nlink: u64,
    /// Names found, and whether all of them are visible.
    count: u64,
    visible: bool,
    /// Every name showed the same ctime and link count: no name changed during the walk.
    steady: bool,
}

/// What the index says of a file.
enum Known {
    /// Its names as the index found them: whether the view may show it.
    Judged(bool),
    /// The file changed since the walk (or is new): the index cannot say.
    Stale,
}

impl LinkIndex {
    /// What the index says of the file `st` under the policy `matcher`: under `hide`, whether
    /// every name the walk found in SOURCE is visible (names outside SOURCE do not count);
    /// under `strict`, also whether the walk found every name.
    fn judge(&self, st: &Stat, matcher: &Arc<Matcher>) -> Known {
        if !Arc::ptr_eq(&self.matcher, matcher) {
            return Known::Stale;
        }
        if self.incomplete {
            return Known::Judged(false);
        }
        let all_found = |l: &Linked| match matcher.hardlinks() {
            HardlinkMode::Strict => l.count == st.nlink,
            HardlinkMode::Hide | HardlinkMode::Keep => l.count <= st.nlink,
        };
        match self.names.get(&(st.dev, st.ino)) {
            Some(l) if l.steady && l.ctime == st.ctime && l.nlink == st.nlink => {
                Known::Judged(l.visible && all_found(l))
            }
            _ => Known::Stale,
        }
    }

    /// Records one name of the multi-link file `st`.
    fn add(&mut self, st: &Stat, visible: bool) {
        let slot = self.names.entry((st.dev, st.ino)).or_insert(Linked {
            ctime: st.ctime,
            nlink: st.nlink,
            count: 0,
            visible: true,
            steady: true,
        });
        slot.count += 1;
        slot.visible &= visible;
        slot.steady &= slot.ctime == st.ctime && slot.nlink == st.nlink;
    }
}

/// An existing path of SOURCE, its attributes, and whether the view shows it.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: RelPath,
    pub stat: Stat,
    pub visible: bool,
}

/// Visibility decisions for one SOURCE.
pub struct Scope {
    root: OwnedFd,
    matcher: ArcSwap<Matcher>,
    links: RwLock<Option<Arc<LinkIndex>>>,
    /// Held while walking SOURCE for a new [`LinkIndex`], so that requests finding the index
    /// stale at once share one walk.
    indexing: Mutex<()>,
    naming: Naming,
}

/// The pattern kind of an object.
pub fn kind_of(st: &Stat) -> Kind {
    if st.kind == FileType::Dir {
        Kind::Dir
    } else {
        Kind::NonDir
    }
}

impl Scope {
    /// Opens SOURCE and prepares to answer questions about it.
    pub fn open(source: &Path, matcher: Arc<Matcher>) -> io::Result<Scope> {
        let root = sys::open_root(source)?;
        let naming = Naming::new(sys::fstat(root.as_fd())?.dev);
        Ok(Scope {
            root,
            matcher: ArcSwap::new(matcher),
            links: RwLock::new(None),
            indexing: Mutex::new(()),
            naming,
        })
    }

    /// The descriptor of SOURCE's root.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The policy in force (replaced as a whole by [`Scope::set_matcher`]).
    pub fn matcher(&self) -> Guard<Arc<Matcher>> {
        self.matcher.load()
    }

    /// Puts a new policy in force, for every request from now on.
    pub fn set_matcher(&self, matcher: Arc<Matcher>) {
        self.matcher.store(matcher);
        // Judged by the old policy: of no more use.
        *self.links.write() = None;
    }

    /// Judges `path`, whose attributes `st` were just read without following symlinks, and
    /// says why. `target` reads the symlink's target when the policy needs it.
    pub fn judge(
        &self,
        path: &RelPath,
        st: &Stat,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> Judged {
        let verdict = match self.matcher.load().decide(path, kind_of(st)) {
            Decision::Visible(rule) => Verdict::Visible(rule),
            Decision::Transit if st.kind == FileType::Dir => Verdict::Transit,
            Decision::Transit | Decision::NotAllowed => return Err(HiddenReason::NotAllowed),
            Decision::Hidden(rule) => return Err(HiddenReason::Rule(rule)),
        };
        self.judge_object(path, st, target)?;
        Ok(verdict)
    }

    /// Whether `path` may be seen: [`Scope::judge`] without the reasons, for the checks on
    /// every request.
    pub fn admits(
        &self,
        path: &RelPath,
        st: &Stat,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> bool {
        path.is_root()
            || (self.matcher.load().is_visible(path, kind_of(st))
                && self.judge_object(path, st, target).is_ok())
    }

    /// Whether `name`, asked for in the SOURCE directory `dir` and found as `found` (its
    /// attributes and `O_PATH` descriptor), is that entry's own name. A file system that
    /// matches names loosely (case, trailing dots, short names) may have found an entry of
    /// another name, which the policy would have to judge instead: such a name is not the
    /// entry's, and reaches nothing.
    pub fn own_name(
        &self,
        dir: &RelPath,
        name: &Name,
        found: (&Stat, BorrowedFd<'_>),
    ) -> io::Result<bool> {
        self.naming.own_name(self.root(), dir, name, found)
    }

    /// Whether a symlink at `link` pointing at `target` would be shown.
    pub fn symlink_allowed(&self, link: &RelPath, target: &[u8]) -> bool {
        self.judge_symlink(link, || Ok(target.to_vec())).is_ok()
    }

    /// Whether an entry of the overlay's `upper/` at `path` may be seen. What the agent made is
    /// its own (SPEC §3a): seen wherever the writable list let it be made, whatever its name or
    /// symlink target. Anything else there (a copy of SOURCE's entry the policy no longer lets
    /// the agent write) is judged as SOURCE's would be: the policy and, for a symlink, its
    /// target. Hardlinks there were made through the view, under names it showed.
    pub fn admits_created(
        &self,
        path: &RelPath,
        st: &Stat,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> bool {
        let matcher = self.matcher.load();
        path.is_root()
            || matcher.writable_listed(path, kind_of(st)).is_some()
            || (matcher.is_visible(path, kind_of(st))
                && (st.kind != FileType::Symlink || self.judge_symlink(path, target).is_ok()))
    }

    /// What the policy's patterns cannot tell: symlink targets and hardlinks.
    fn judge_object(
        &self,
        path: &RelPath,
        st: &Stat,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> Result<(), HiddenReason> {
        match st.kind {
            FileType::Symlink => self.judge_symlink(path, target),
            FileType::Dir => Ok(()),
            _ if st.nlink > 1 => self.judge_hardlink(st),
            _ => Ok(()),
        }
    }

    fn judge_symlink(
        &self,
        path: &RelPath,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> Result<(), HiddenReason> {
        let hidden = |why: &str| Err(HiddenReason::Symlink(why.to_string()));
        match self.matcher.load().symlinks() {
            SymlinkMode::Keep => return Ok(()),
            SymlinkMode::Hide => return hidden("symlinks = \"hide\""),
            SymlinkMode::Contain => {}
        }
        let Ok(target) = target() else {
            return hidden("its target cannot be read");
        };
        if target.is_empty() {
            return hidden("its target is empty");
        }
        if target.first() == Some(&b'/') {
            return hidden("its target is absolute");
        }
        let mut dest = path.parent().unwrap_or_default();
        for part in target.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if !dest.pop() {
                        return hidden("its target leaves SOURCE");
                    }
                }
                name => match Name::new(name) {
                    Ok(name) => dest.push(&name),
                    Err(_) => return hidden("its target has an invalid name"),
                },
            }
        }
        if dest.is_root() {
            return Ok(());
        }
        let visible = match sys::resolve(self.root(), &dest, Open::Path)
            .and_then(|fd| sys::fstat(fd.as_fd()))
        {
            Ok(st) => {
                self.matcher.load().is_visible(&dest, kind_of(&st))
                    && (st.kind == FileType::Dir
                        || st.kind == FileType::Symlink
                        || st.nlink <= 1
                        || self.judge_hardlink(&st).is_ok())
            }
            // Not there yet, or reached only through another symlink (which is judged on its
            // own when the kernel looks it up): judge the name as either kind.
            Err(_) => {
                self.matcher.load().is_visible(&dest, Kind::NonDir)
                    && self.matcher.load().is_visible(&dest, Kind::Dir)
            }
        };
        if visible {
            Ok(())
        } else {
            hidden("its target is not in the view")
        }
    }

    fn judge_hardlink(&self, st: &Stat) -> Result<(), HiddenReason> {
        let matcher = self.matcher.load_full();
        if matcher.hardlinks() == HardlinkMode::Keep {
            return Ok(());
        }
        // A file the index does not know as `st` shows it is judged on a newer walk: one that
        // another request has just made (if it began late enough to know the file as it is),
        // else one of this request's own, begun after `st` was read. A file still changing
        // then is hidden until a walk finds it settled.
        let mut index = self.links.read().clone();
        let mut visible = false;
        for _ in 0..MAX_INDEX_LOOKS {
            match index.as_ref().map(|index| index.judge(st, &matcher)) {
                Some(Known::Judged(judged)) => {
                    visible = judged;
                    break;
                }
                _ => {
                    let (newer, own) = self.reindex(index.as_ref(), &matcher);
                    if own {
                        visible = matches!(newer.judge(st, &matcher), Known::Judged(true));
                        break;
                    }
                    index = Some(newer);
                }
            }
        }
        if visible {
            Ok(())
        } else {
            Err(HiddenReason::Hardlink)
        }
    }

    /// An index newer than `stale`: one another request built while this one waited for it,
    /// or a walk of this request's own (then `true`).
    fn reindex(
        &self,
        stale: Option<&Arc<LinkIndex>>,
        matcher: &Arc<Matcher>,
    ) -> (Arc<LinkIndex>, bool) {
        let _walking = self.indexing.lock();
        if let Some(newer) = self.links.read().clone() {
            if !stale.is_some_and(|old| Arc::ptr_eq(old, &newer)) {
                return (newer, false);
            }
        }
        let built = Arc::new(self.index_links(matcher.clone()));
        *self.links.write() = Some(built.clone());
        (built, true)
    }

    /// Walks all of SOURCE once, recording every name of every multi-link file and whether the
    /// policy shows it. Descriptors held: one per directory level.
    fn index_links(&self, matcher: Arc<Matcher>) -> LinkIndex {
        let mut index = LinkIndex {
            matcher,
            names: HashMap::new(),
            incomplete: false,
        };
        match sys::resolve(self.root(), &RelPath::root(), Open::Dir) {
            Ok(fd) => self.index_dir(fd, &mut RelPath::root(), 0, &mut index),
            Err(_) => index.incomplete = true,
        }
        tracing::debug!(files = index.names.len(), "indexed multi-link files");
        index
    }

    fn index_dir(&self, dir: OwnedFd, path: &mut RelPath, depth: usize, index: &mut LinkIndex) {
        if depth > MAX_INDEX_DEPTH {
            index.incomplete = true;
            return;
        }
        let Ok(entries) = sys::read_dir(dir.as_fd()) else {
            index.incomplete = true;
            return;
        };
        for entry in entries {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            if entry.d_type == libc::DT_DIR {
                if let Ok(child) = sys::open_child_dir(dir.as_fd(), &name) {
                    path.push(&name);
                    self.index_dir(child, path, depth + 1, index);
                    path.pop();
                } else {
                    index.incomplete = true;
                }
                continue;
            }
            let Ok(st) = sys::stat_at(dir.as_fd(), &name) else {
                continue;
            };
            if st.kind == FileType::Dir {
                if let Ok(child) = sys::open_child_dir(dir.as_fd(), &name) {
                    path.push(&name);
                    self.index_dir(child, path, depth + 1, index);
                    path.pop();
                }
                continue;
            }
            // A symlink is judged by its target alone, whatever its other names.
            if st.nlink <= 1 || st.kind == FileType::Symlink {
                continue;
            }
            let visible = index.matcher.is_visible(&path.join(&name), Kind::NonDir);
            index.add(&st, visible);
        }
    }

    /// Reads and judges the child `name` of the directory open at `dir`, whose path is
    /// `dir_path`. `Ok(None)` when it does not exist.
    pub fn child(
        &self,
        dir: BorrowedFd<'_>,
        dir_path: &RelPath,
        name: &Name,
    ) -> io::Result<Option<(RelPath, Stat, Judged)>> {
        let st = match sys::stat_at(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = dir_path.join(name);
        let verdict = self.judge(&path, &st, || sys::readlink_child(dir, name));
        Ok(Some((path, st, verdict)))
    }

    /// Reads the child `name` of the directory open at `dir`, whose path is `dir_path`, and
    /// whether the view shows it. `Ok(None)` when it does not exist.
    pub fn find_child(
        &self,
        dir: BorrowedFd<'_>,
        dir_path: &RelPath,
        name: &Name,
    ) -> io::Result<Option<Found>> {
        let stat = match sys::stat_at(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = dir_path.join(name);
        let visible = self.admits(&path, &stat, || sys::readlink_child(dir, name));
        Ok(Some(Found {
            path,
            stat,
            visible,
        }))
    }

    /// Opens `path` (`O_PATH`, a final symlink itself), reads it and whether the view shows it.
    pub fn find(&self, path: &RelPath) -> io::Result<(OwnedFd, Stat, bool)> {
        let fd = sys::resolve(self.root(), path, Open::Path)?;
        let st = sys::fstat(fd.as_fd())?;
        let visible = self.admits(path, &st, || sys::readlink(fd.as_fd()));
        Ok((fd, st, visible))
    }

    /// The verdict on `path`, checking every ancestor on the way.
    pub fn explain(&self, path: &RelPath) -> io::Result<Verdict> {
        let mut prefix = RelPath::root();
        let mut verdict = Verdict::Transit;
        for component in path.components() {
            let Ok(name) = Name::new(component) else {
                return Ok(Verdict::Missing);
            };
            let dir = match sys::resolve(self.root(), &prefix, Open::Path) {
                Ok(fd) => fd,
                Err(_) => return Ok(Verdict::Missing),
            };
            match self.child(dir.as_fd(), &prefix, &name)? {
                None => return Ok(Verdict::Missing),
                Some((child, st, judged)) => {
                    verdict = match judged {
                        Ok(v) => v,
                        Err(reason) => return Ok(Verdict::Hidden(reason)),
                    };
                    if child != *path && st.kind != FileType::Dir {
                        return Ok(Verdict::Missing);
                    }
                    prefix = child;
                }
            }
        }
        Ok(verdict)
    }

    /// The visible entries of the directory `dir`, with their attributes, in the order the
    /// file system returns them.
    pub fn list(&self, dir: &RelPath) -> io::Result<Vec<(Name, Stat)>> {
        Ok(self
            .list_with_generations(dir, false)?
            .into_iter()
            .map(|(name, st, _)| (name, st))
            .collect())
    }

    /// [`Scope::list`], with each entry's inode generation ([`sys::handle`]) when `generations`.
    pub fn list_with_generations(
        &self,
        dir: &RelPath,
        generations: bool,
    ) -> io::Result<Vec<(Name, Stat, Option<u64>)>> {
        let fd = sys::resolve(self.root(), dir, Open::Dir)?;
        let mut out = Vec::new();
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            if let Some(found) = self.find_child(fd.as_fd(), dir, &name)? {
                if found.visible {
                    let generation =
                        generations.then(|| sys::handle::inode_generation_at(fd.as_fd(), &name));
                    out.push((name, found.stat, generation));
                }
            }
        }
        Ok(out)
    }

    /// The visible entries of the directory `dir`, sorted by name, with whether each is a
    /// directory.
    pub fn visible_children(&self, dir: &RelPath) -> io::Result<Vec<(Name, bool)>> {
        let mut out: Vec<(Name, bool)> = self
            .list(dir)?
            .into_iter()
            .map(|(name, st)| (name, st.kind == FileType::Dir))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::policy::Policy;

    fn file(ino: u64, nlink: u64, ctime: u64) -> Stat {
        let t = UNIX_EPOCH + Duration::from_secs(ctime);
        Stat {
            dev: 1,
            ino,
            kind: FileType::File,
            perm: 0o644,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            blocks: 0,
            blksize: 4096,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    fn index(matcher: &Arc<Matcher>) -> LinkIndex {
        LinkIndex {
            matcher: matcher.clone(),
            names: HashMap::new(),
            incomplete: false,
        }
    }

    fn judged(known: Known) -> Option<bool> {
        match known {
            Known::Judged(visible) => Some(visible),
            Known::Stale => None,
        }
    }

    #[test]
    fn link_index_knows_a_file_only_as_the_walk_met_it() {
        let matcher = Arc::new(Policy::builtin().compile().unwrap());
        let mut idx = index(&matcher);
        idx.add(&file(7, 2, 100), true);
        idx.add(&file(7, 2, 100), true);
        assert_eq!(judged(idx.judge(&file(7, 2, 100), &matcher)), Some(true));
        // Another ctime: a name changed, or the inode number went to a new file.
        assert_eq!(judged(idx.judge(&file(7, 2, 101), &matcher)), None);
        // Another link count.
        assert_eq!(judged(idx.judge(&file(7, 3, 100), &matcher)), None);
        // A multi-link file the walk did not meet.
        assert_eq!(judged(idx.judge(&file(8, 2, 100), &matcher)), None);
        // Judged under another policy.
        let other = Arc::new(Policy::builtin().compile().unwrap());
        assert_eq!(judged(idx.judge(&file(7, 2, 100), &other)), None);
    }

    #[test]
    fn link_index_hides_files_with_names_missing_hidden_or_changing_during_the_walk() {
        let matcher = Arc::new(Policy::builtin().compile().unwrap());
        let mut idx = index(&matcher);
        // One name of two found: the other is outside SOURCE, which counts only when strict.
        idx.add(&file(1, 2, 100), true);
        assert_eq!(judged(idx.judge(&file(1, 2, 100), &matcher)), Some(true));
        let strict = Policy::parse("[view]\nhardlinks = \"strict\"\n", None).unwrap();
        let strict = Arc::new(strict.compile().unwrap());
        let mut strict_idx = index(&strict);
        strict_idx.add(&file(1, 2, 100), true);
        assert_eq!(
            judged(strict_idx.judge(&file(1, 2, 100), &strict)),
            Some(false)
        );
        // A hidden name.
        idx.add(&file(2, 2, 100), true);
        idx.add(&file(2, 2, 100), false);
        assert_eq!(judged(idx.judge(&file(2, 2, 100), &matcher)), Some(false));
        // The names showed different ctimes: one moved while the walk went on, so one name
        // may have been counted twice and another missed.
        idx.add(&file(3, 2, 100), true);
        idx.add(&file(3, 2, 101), true);
        assert_eq!(judged(idx.judge(&file(3, 2, 101), &matcher)), None);
        // An incomplete walk knows nothing to be safe.
        idx.add(&file(4, 2, 100), true);
        idx.add(&file(4, 2, 100), true);
        idx.incomplete = true;
        assert_eq!(judged(idx.judge(&file(4, 2, 100), &matcher)), Some(false));
    }
}
