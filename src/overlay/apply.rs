//! Carrying reviewed changes into SOURCE (`apply`) or dropping them (`discard`), SPEC §4: the
//! work of a [`super::review::Plan`], once the plan allows it.
//!
//! Everything in upper/ is untrusted output (THREATS R11), and SOURCE is reached only through
//! descriptors: every directory of SOURCE is opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so a symlink in SOURCE is never followed, and each entry is then
//! changed with one `*at` call on that directory. A file is written to a temporary name in its
//! destination directory (`O_EXCL`), fsync'd with its mode (setuid/setgid dropped) and mtime,
//! and renamed over the target; a crash leaves the old file or the new one.
//!
//! After applying (or discarding), everything in upper/ that no longer changes the view is
//! removed, and `origins` keeps only records of what is left.

use std::collections::HashSet;
use std::fs::{File, FileTimes, Permissions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use crate::path::{Name, RelPath};
use crate::sys::write as w;
use crate::sys::{self, FileType, Open};

use crate::sys::tree::{empty_dir, open_file_beneath, remove_tree_at, split, stat_beneath};

use super::changes::{Change, EntryKind, Op};
use super::{Overlay, UpperName, whiteout_name};

/// What became of each change `apply` tried.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<Change>,
    pub failed: Vec<(Change, String)>,
}

struct Applier<'a> {
    overlay: &'a Overlay,
    lower: BorrowedFd<'a>,
    counter: u64,
}

impl Applier<'_> {
    fn temp_name(&mut self) -> io::Result<Name> {
        self.counter += 1;
        Name::new(format!(".scopefs-apply-{}-{}", std::process::id(), self.counter).as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn parent(&self, path: &RelPath) -> io::Result<(OwnedFd, Name)> {
        let (parent, name) = split(path)?;
        let fd = sys::resolve(self.lower, &parent, Open::Dir)?;
        Ok((fd, name))
    }

    /// The attributes of the overlay's entry at `path` (whose last component is `name`).
    fn upper_stat(&self, path: &RelPath, name: &Name) -> io::Result<sys::Stat> {
        let parent = sys::resolve(
            self.overlay.upper(),
            &path.parent().unwrap_or_default(),
            Open::Path,
        )?;
        sys::stat_at(parent.as_fd(), name)
    }

    fn apply(&mut self, change: &Change) -> io::Result<()> {
        let (dir, name) = self.parent(&change.path)?;
        let dir = dir.as_fd();
        match change.op {
            Op::Delete => remove_tree_at(dir, &name)?,
            Op::Add | Op::Modify | Op::TypeChange => {
                let up = self.upper_stat(&change.path, &name)?;
                match up.kind {
                    FileType::File => self.write_file(dir, &name, &change.path, &up)?,
                    FileType::Symlink => self.write_symlink(dir, &name, &change.path, &up)?,
                    FileType::Dir => match sys::stat_at(dir, &name) {
                        Ok(st) if st.kind == FileType::Dir => {}
                        Ok(_) => {
                            w::unlink(dir, &name, false)?;
                            w::mkdir(dir, &name, 0o700)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            w::mkdir(dir, &name, 0o700)?
                        }
                        Err(e) => return Err(e),
                    },
                    _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
                }
            }
        }
        File::from(sys::resolve(dir, &RelPath::root(), Open::Dir)?).sync_all()
    }

    /// Puts the temporary entry `tmp` in place of `name`, first removing a directory there.
    fn replace(&self, dir: BorrowedFd<'_>, tmp: &Name, name: &Name) -> io::Result<()> {
        if sys::stat_at(dir, name).is_ok_and(|st| st.kind == FileType::Dir) {
            remove_tree_at(dir, name)?;
        }
        w::rename(dir, tmp, dir, name, 0)
    }

    fn write_file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &Name,
        path: &RelPath,
        up: &sys::Stat,
    ) -> io::Result<()> {
        let mut src = open_file_beneath(self.overlay.upper(), path)?;
        let tmp = self.temp_name()?;
        let mut dst = w::create_file(dir, &tmp, 0o600).map(File::from)?;
        let result = (|| {
            io::copy(&mut src, &mut dst)?;
            dst.set_permissions(Permissions::from_mode(up.perm & 0o1777))?;
            dst.set_times(
                FileTimes::new()
                    .set_accessed(up.atime)
                    .set_modified(up.mtime),
            )?;
            dst.sync_all()?;
            self.replace(dir, &tmp, name)
        })();
        if result.is_err() {
            let _ = w::unlink(dir, &tmp, false);
        }
        result
    }

    fn write_symlink(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &Name,
        path: &RelPath,
        up: &sys::Stat,
    ) -> io::Result<()> {
        let target = sys::readlink(sys::resolve(self.overlay.upper(), path, Open::Path)?.as_fd())?;
        let tmp = self.temp_name()?;
        w::symlink(&target, dir, &tmp)?;
        let result = w::set_times_at(
            dir,
            &tmp,
            w::SetTime::At(up.atime),
            w::SetTime::At(up.mtime),
        )
        .and_then(|()| self.replace(dir, &tmp, name));
        if result.is_err() {
            let _ = w::unlink(dir, &tmp, false);
        }
        result
    }

    /// Gives a directory applied earlier its mode from the overlay (after its children, so a
    /// read-only directory can still be filled).
    fn finish_dir(&self, change: &Change) -> io::Result<()> {
        let (dir, name) = self.parent(&change.path)?;
        let up = self.upper_stat(&change.path, &name)?;
        let fd = sys::open_child_dir(dir.as_fd(), &name)?;
        File::from(fd).set_permissions(Permissions::from_mode(up.perm & 0o1777))
    }
}

/// Carries the `selected` changes (sorted, parents first) into SOURCE, calling `progress` after
/// each. A change whose parent failed is not tried. Does not touch the overlay: call [`tidy`].
pub fn apply(
    overlay: &Overlay,
    lower: BorrowedFd<'_>,
    selected: &[Change],
    mut progress: impl FnMut(&Change, Option<&str>),
) -> Outcome {
    let mut applier = Applier {
        overlay,
        lower,
        counter: 0,
    };
    let mut outcome = Outcome::default();
    let mut failed_dirs: Vec<RelPath> = Vec::new();
    for change in selected {
        let result = match failed_dirs.iter().find(|d| change.path.starts_with(d)) {
            Some(dir) => Err(format!(
                "not applied because {} could not be",
                super::changes::quote(dir)
            )),
            None => applier
                .apply(change)
                .map_err(|e| format!("cannot apply it to SOURCE: {e}")),
        };
        match result {
            Ok(()) => {
                progress(change, None);
                outcome.applied.push(change.clone());
            }
            Err(problem) => {
                progress(change, Some(&problem));
                failed_dirs.push(change.path.clone());
                outcome.failed.push((change.clone(), problem));
            }
        }
    }
    for change in outcome.applied.iter().rev() {
        if change.op != Op::Delete && change.kind == EntryKind::Dir {
            if let Err(e) = applier.finish_dir(change) {
                outcome.failed.push((
                    change.clone(),
                    format!("cannot set the directory's mode: {e}"),
                ));
            }
        }
    }
    outcome
}

/// Whether an upper directory holds the opaque marker.
fn has_marker(dir: BorrowedFd<'_>) -> bool {
    Name::new(super::OPAQUE_MARKER)
        .ok()
        .and_then(|m| sys::stat_at(dir, &m).ok())
        .is_some()
}

/// Removes from upper/ everything at or beneath `scope` that no longer changes the view
/// (entries the same as SOURCE's, whiteouts of nothing, opaque markers that hide nothing), then
/// the same for the directories above `scope`, without descending into their other children.
pub fn tidy(overlay: &Overlay, lower: BorrowedFd<'_>, scope: &RelPath) -> io::Result<()> {
    let t = Tidy {
        upper: overlay.upper(),
        lower,
    };
    let opaque_above = t.opaque_above(scope);
    if scope.is_root() {
        t.dir(scope, false, true)?;
        return Ok(());
    }
    t.entry(scope, opaque_above)?;
    let mut up = scope.parent();
    while let Some(dir) = up {
        let above = t.opaque_above(&dir);
        if dir.is_root() {
            t.dir(&dir, false, false)?;
        } else {
            t.entry_shallow(&dir, above)?;
        }
        up = dir.parent();
    }
    Ok(())
}

struct Tidy<'a> {
    upper: BorrowedFd<'a>,
    lower: BorrowedFd<'a>,
}

impl Tidy<'_> {
    /// Whether an opaque marker in a directory strictly above `path` hides SOURCE there.
    fn opaque_above(&self, path: &RelPath) -> bool {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if sys::resolve(self.upper, &d, Open::Path).is_ok_and(|fd| has_marker(fd.as_fd())) {
                return true;
            }
            dir = d.parent();
        }
        false
    }

    /// Tidies the upper entry at `path`; true when nothing is left there.
    fn entry(&self, path: &RelPath, opaque_above: bool) -> io::Result<bool> {
        let (parent, name) = split(path)?;
        let Ok(pfd) = sys::resolve(self.upper, &parent, Open::Path) else {
            return Ok(true);
        };
        if let Some(wh) = whiteout_name(&name) {
            let stale =
                sys::stat_at(pfd.as_fd(), &wh).is_ok() && stat_beneath(self.lower, path)?.is_none();
            if stale {
                w::unlink(pfd.as_fd(), &wh, false)?;
            }
        }
        let up = match sys::stat_at(pfd.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        let low = stat_beneath(self.lower, path)?;
        if up.kind == FileType::Dir {
            let empty = self.dir(path, opaque_above, true)?;
            return self.drop_dir_if_same(pfd.as_fd(), &name, &up, low, empty, opaque_above);
        }
        let same = match &low {
            Some(l) if !opaque_above => {
                super::changes::same_entry(self.upper, self.lower, path, &up, l)?
            }
            _ => false,
        };
        if same {
            w::unlink(pfd.as_fd(), &name, false)?;
        }
        Ok(same)
    }

    /// Like [`Tidy::entry`] for a directory above a scope: its markers and whiteouts only.
    fn entry_shallow(&self, path: &RelPath, opaque_above: bool) -> io::Result<bool> {
        let (parent, name) = split(path)?;
        let Ok(pfd) = sys::resolve(self.upper, &parent, Open::Path) else {
            return Ok(true);
        };
        let up = match sys::stat_at(pfd.as_fd(), &name) {
            Ok(st) if st.kind == FileType::Dir => st,
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        let low = stat_beneath(self.lower, path)?;
        let empty = self.dir(path, opaque_above, false)?;
        self.drop_dir_if_same(pfd.as_fd(), &name, &up, low, empty, opaque_above)
    }

    fn drop_dir_if_same(
        &self,
        parent: BorrowedFd<'_>,
        name: &Name,
        up: &sys::Stat,
        low: Option<sys::Stat>,
        empty: bool,
        opaque_above: bool,
    ) -> io::Result<bool> {
        let same = !opaque_above
            && empty
            && low.is_some_and(|l| l.kind == FileType::Dir && l.perm == up.perm);
        if same {
            match w::unlink(parent, name, true) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(same)
    }

    /// Tidies the upper directory `dir`: a redundant opaque marker, whiteouts of nothing and,
    /// with `recurse`, every entry. True when it ends empty.
    fn dir(&self, dir: &RelPath, opaque_above: bool, recurse: bool) -> io::Result<bool> {
        let fd = sys::resolve(self.upper, dir, Open::Dir)?;
        let mut entries = Vec::new();
        let mut whiteouts = Vec::new();
        let mut marker = None;
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            match UpperName::classify(&name) {
                UpperName::Entry(n) => entries.push(n),
                UpperName::Whiteout(target) => whiteouts.push((name, target)),
                UpperName::Opaque => marker = Some(name),
                UpperName::Invalid => {}
            }
        }
        let lower_children: Option<HashSet<Name>> = match sys::resolve(self.lower, dir, Open::Dir) {
            Ok(lfd) => Some(
                sys::read_dir(lfd.as_fd())?
                    .into_iter()
                    .filter_map(|e| Name::new(&e.name).ok())
                    .collect(),
            ),
            Err(_) => None,
        };
        let mut left = entries.len();
        // Whiteouts of nothing in SOURCE (or inside an opaque directory) hide nothing.
        let opaque_here = opaque_above || marker.is_some();
        for (wh, target) in &whiteouts {
            let hides = !opaque_here
                && lower_children
                    .as_ref()
                    .is_some_and(|set| set.contains(target));
            if hides {
                left += 1;
            } else {
                w::unlink(fd.as_fd(), wh, false)?;
            }
        }
        if let Some(m) = &marker {
            let covered: HashSet<&Name> = entries
                .iter()
                .chain(whiteouts.iter().map(|(_, t)| t))
                .collect();
            let hides = lower_children
                .as_ref()
                .is_some_and(|set| set.iter().any(|c| !covered.contains(c)));
            if hides || opaque_above {
                left += 1;
            } else {
                w::unlink(fd.as_fd(), m, false)?;
            }
        }
        let opaque_now = opaque_above
            || Name::new(super::OPAQUE_MARKER)
                .ok()
                .is_some_and(|m| sys::stat_at(fd.as_fd(), &m).is_ok());
        if recurse {
            for name in &entries {
                if self.entry(&dir.join(name), opaque_now)? {
                    left -= 1;
                }
            }
        }
        Ok(left == 0)
    }
}

/// Drops records of paths with nothing left in upper/. The records at or beneath a deletion
/// or an opaque directory still pending stay: `apply` checks every entry beneath a directory it
/// deletes against them.
pub fn prune_origins(overlay: &Overlay) -> io::Result<()> {
    let index = overlay.scan()?;
    overlay.retain_origins(|path| {
        index.entries.contains(path)
            || index.whiteouts.contains(path)
            || index.opaque.contains(path)
            || path.ancestors().any(|a| {
                RelPath::parse(a)
                    .is_ok_and(|a| index.whiteouts.contains(&a) || index.opaque.contains(&a))
            })
    })
}

/// Drops the changes at or beneath each of `scopes` from upper/ (the root: everything), so the
/// view shows SOURCE there again.
pub fn discard(overlay: &Overlay, lower: BorrowedFd<'_>, scopes: &[RelPath]) -> io::Result<()> {
    for scope in scopes {
        if scope.is_root() {
            empty_dir(overlay.upper())?;
            continue;
        }
        let (parent, name) = split(scope)?;
        if let Ok(pfd) = sys::resolve(overlay.upper(), &parent, Open::Path) {
            remove_tree_at(pfd.as_fd(), &name)?;
            if let Some(wh) = whiteout_name(&name) {
                match w::unlink(pfd.as_fd(), &wh, false) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        if stat_beneath(lower, scope)?.is_some() {
            reveal(overlay, lower, scope)?;
        }
    }
    Ok(())
}

/// Makes SOURCE's `path` show through an opaque directory above it: the nearest opaque marker
/// is replaced by whiteouts of every other SOURCE child it hid, and each upper directory on the
/// way down that SOURCE also has is made opaque except for the step towards `path`.
fn reveal(overlay: &Overlay, lower: BorrowedFd<'_>, path: &RelPath) -> io::Result<()> {
    let Some(marker) = Name::new(super::OPAQUE_MARKER).ok() else {
        return Ok(());
    };
    // The topmost opaque directory above `path`.
    let mut top = None;
    let mut dir = path.parent();
    while let Some(d) = dir {
        if sys::resolve(overlay.upper(), &d, Open::Path).is_ok_and(|fd| has_marker(fd.as_fd())) {
            top = Some(d.clone());
        }
        dir = d.parent();
    }
    let Some(top) = top else {
        return Ok(());
    };
    // Walk from `top` down to the parent of `path`, turning hiding-by-opacity into whiteouts
    // at each level, except for the child on the way to `path`.
    let mut level = top;
    loop {
        let ufd = sys::resolve(overlay.upper(), &level, Open::Path)?;
        let on_way = path
            .components()
            .nth(level.depth())
            .and_then(|c| Name::new(c).ok());
        let Some(step) = on_way else {
            return Ok(());
        };
        let upper_names: HashSet<Name> =
            sys::read_dir(sys::resolve(overlay.upper(), &level, Open::Dir)?.as_fd())?
                .into_iter()
                .filter_map(|e| Name::new(&e.name).ok())
                .collect();
        let lfd = sys::resolve(lower, &level, Open::Dir)?;
        for entry in sys::read_dir(lfd.as_fd())? {
            let Ok(child) = Name::new(&entry.name) else {
                continue;
            };
            if child == step {
                continue;
            }
            let Some(wh) = whiteout_name(&child) else {
                continue;
            };
            if upper_names.contains(&child) {
                // An upper directory that SOURCE also has was hidden-through; keep it so.
                let both_dirs = sys::stat_at(ufd.as_fd(), &child)
                    .is_ok_and(|s| s.kind == FileType::Dir)
                    && sys::stat_at(lfd.as_fd(), &child).is_ok_and(|s| s.kind == FileType::Dir);
                if both_dirs {
                    let child_fd = sys::resolve(overlay.upper(), &level.join(&child), Open::Path)?;
                    if !has_marker(child_fd.as_fd()) {
                        w::create_file(child_fd.as_fd(), &marker, 0).map(File::from)?;
                    }
                }
                continue;
            }
            if !upper_names.contains(&wh) {
                w::create_file(ufd.as_fd(), &wh, 0).map(File::from)?;
            }
        }
        if upper_names.contains(&marker) {
            w::unlink(ufd.as_fd(), &marker, false)?;
        }
        let next = level.join(&step);
        if next == *path {
            return Ok(());
        }
        // The step must be an upper directory for `path` to be beneath an opaque one.
        match sys::stat_at(ufd.as_fd(), &step) {
            Ok(st) if st.kind == FileType::Dir => {}
            _ => return Ok(()),
        }
        // An upper directory on the way inherited the opacity; make it explicit before
        // descending, so the loop treats it like the top.
        let nfd = sys::resolve(overlay.upper(), &next, Open::Path)?;
        if !has_marker(nfd.as_fd()) {
            w::create_file(nfd.as_fd(), &marker, 0).map(File::from)?;
        }
        level = next;
    }
}
