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
use parking_lot::RwLock;

use crate::path::{Name, RelPath};
use crate::policy::{Decision, HardlinkMode, Kind, Matcher, Rule, SymlinkMode};
use crate::sys::{self, FileType, Open, Stat};

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

/// Multi-link files of SOURCE and whether every name of each is visible, built on first need.
#[derive(Debug, Default)]
struct LinkIndex {
    /// (dev, ino) -> (names found, all of them visible).
    names: HashMap<(u64, u64), (u64, bool)>,
    /// The walk stopped early (too deep or unreadable): nothing is known to be safe.
    incomplete: bool,
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
        Ok(Scope {
            root: sys::open_root(source)?,
            matcher: ArcSwap::new(matcher),
            links: RwLock::new(None),
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
        self.links_changed();
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

    /// A hardlink was made or removed in SOURCE through the view: the index of multi-link
    /// files is rebuilt when next needed.
    pub fn links_changed(&self) {
        *self.links.write() = None;
    }

    /// Whether a symlink at `link` pointing at `target` would be shown.
    pub fn symlink_allowed(&self, link: &RelPath, target: &[u8]) -> bool {
        self.judge_symlink(link, || Ok(target.to_vec())).is_ok()
    }

    /// Whether an entry the overlay created at `path` may be seen: the policy and, for a
    /// symlink, its target. Hardlinks there were made through the view, under visible names.
    pub fn admits_created(
        &self,
        path: &RelPath,
        st: &Stat,
        target: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> bool {
        path.is_root()
            || (self.matcher.load().is_visible(path, kind_of(st))
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
        if self.matcher.load().hardlinks() == HardlinkMode::Keep {
            return Ok(());
        }
        let known = self.links.read().clone();
        let index = match known {
            Some(index) => index,
            None => {
                let built = Arc::new(self.index_links());
                *self.links.write() = Some(built.clone());
                built
            }
        };
        match index.names.get(&(st.dev, st.ino)) {
            Some(&(count, true)) if !index.incomplete && count == st.nlink => Ok(()),
            _ => Err(HiddenReason::Hardlink),
        }
    }

    /// Walks all of SOURCE once, recording every name of every multi-link file and whether the
    /// policy shows it. Descriptors held: one per directory level.
    fn index_links(&self) -> LinkIndex {
        let mut index = LinkIndex::default();
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
            if st.nlink <= 1 {
                continue;
            }
            let child = path.join(&name);
            let visible = self.matcher.load().is_visible(&child, Kind::NonDir)
                && (st.kind != FileType::Symlink
                    || self
                        .judge_symlink(&child, || sys::readlink_child(dir.as_fd(), &name))
                        .is_ok());
            let slot = index.names.entry((st.dev, st.ino)).or_insert((0, true));
            slot.0 += 1;
            slot.1 &= visible;
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
        let fd = sys::resolve(self.root(), dir, Open::Dir)?;
        let mut out = Vec::new();
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            if let Some(found) = self.find_child(fd.as_fd(), dir, &name)? {
                if found.visible {
                    out.push((name, found.stat));
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
