//! Review of an overlay as a library (SPEC §4): a [`Plan`] — the changes chosen, the
//! conflicts they have with SOURCE as it is now, and their flags — built from an overlay and
//! the paths asked for, then carried out by [`Review::apply`] or dropped by
//! [`Review::discard`]. The commands only print what these return.
//!
//! The rules live here, not in the commands: nothing is applied while a change cannot be
//! applied safely (a symlink in SOURCE on its way, a type apply does not copy), nor while there
//! are conflicts unless the caller forces it. A change may go ahead only if SOURCE at its path
//! is still as the overlay first saw it (its `origins` record); a new entry needs nothing
//! there. A deletion of a directory also needs a matching record for every entry beneath it in
//! SOURCE, so entries the view never showed (hidden ones, or ones added to SOURCE later) are
//! never deleted without force.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::apply::{self, Outcome};
use super::changes::{self, Change, EntryKind, ListError, Op};
use super::git;
use super::{LowerState, Overlay, OverlayError};
use super::{hidden, protect};
use crate::path::{Name, RelPath};
use crate::sys::tree::stat_beneath;
use crate::sys::{self, FileType, Open};

/// The changes at or beneath the `filters` (all when there are none), plus the changes that
/// create a directory above them (a new file needs its new parent). Sorted by path. `Err`
/// names a filter with no change at or beneath it.
pub fn select(changes: &[Change], filters: &[RelPath]) -> Result<Vec<Change>, RelPath> {
    if filters.is_empty() {
        return Ok(changes.to_vec());
    }
    let mut chosen: BTreeMap<RelPath, Change> = BTreeMap::new();
    for filter in filters {
        let mut any = false;
        for change in changes.iter().filter(|c| c.path.starts_with(filter)) {
            chosen.insert(change.path.clone(), change.clone());
            any = true;
        }
        if !any {
            return Err(filter.clone());
        }
    }
    let creates_dir: BTreeMap<&RelPath, &Change> = changes
        .iter()
        .filter(|c| matches!(c.op, Op::Add | Op::TypeChange) && c.kind == EntryKind::Dir)
        .map(|c| (&c.path, c))
        .collect();
    let mut extra = Vec::new();
    for path in chosen.keys() {
        let mut parent = path.parent();
        while let Some(p) = parent {
            if let Some(change) = creates_dir.get(&p) {
                extra.push((*change).clone());
            }
            parent = p.parent();
        }
    }
    for change in extra {
        chosen.entry(change.path.clone()).or_insert(change);
    }
    Ok(chosen.into_values().collect())
}

/// Why a change may not go ahead without `--force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictReason {
    /// SOURCE is no longer as recorded when the overlay first touched the path.
    Changed,
    /// The overlay has no record of SOURCE at the path, so a change there cannot be ruled out.
    NotRecorded,
    /// SOURCE holds an entry the view hid at the path (or above it, or beneath a directory the
    /// change deletes): the change is never applied, forced or not.
    HiddenInSource,
}

/// A change, or an entry of SOURCE a change would delete, whose SOURCE side may have moved on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: RelPath,
    pub reason: ConflictReason,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = changes::quote(&self.path);
        match self.reason {
            ConflictReason::Changed => {
                write!(
                    f,
                    "conflict: {path}: SOURCE changed since the overlay copied it"
                )
            }
            ConflictReason::NotRecorded => write!(
                f,
                "conflict: {path}: the overlay has no record of it in SOURCE, so a change there cannot be ruled out"
            ),
            ConflictReason::HiddenInSource => write!(
                f,
                "conflict: {path}: SOURCE holds an entry there that the view hid; it is never written over or deleted, even with --force (discard the change, or apply it by hand)"
            ),
        }
    }
}

fn lower_state(lower: BorrowedFd<'_>, path: &RelPath) -> io::Result<LowerState> {
    Ok(LowerState::of(stat_beneath(lower, path)?.as_ref()))
}

/// The conflicts of the `selected` changes with SOURCE as it is now.
pub fn conflicts(
    overlay: &Overlay,
    lower: BorrowedFd<'_>,
    selected: &[Change],
) -> io::Result<Vec<Conflict>> {
    let mut out = Vec::new();
    for change in selected {
        if let Some(conflict) = hidden::at_or_above(overlay, lower, change)? {
            out.push(conflict);
            continue;
        }
        let current = lower_state(lower, &change.path)?;
        let ok = match (overlay.origin(&change.path), change.op) {
            (Some(recorded), _) => recorded == current,
            (None, Op::Add) => current == LowerState::Absent,
            (None, _) => {
                out.push(Conflict {
                    path: change.path.clone(),
                    reason: ConflictReason::NotRecorded,
                });
                continue;
            }
        };
        if !ok {
            out.push(Conflict {
                path: change.path.clone(),
                reason: ConflictReason::Changed,
            });
            continue;
        }
        // A deletion, or a type change away from a directory, removes SOURCE's whole subtree.
        let removes_dir =
            matches!(change.op, Op::Delete | Op::TypeChange) && current == LowerState::Dir;
        if removes_dir {
            check_beneath(overlay, lower, &change.path, &mut out)?;
        }
    }
    Ok(out)
}

/// Every entry beneath the SOURCE directory `dir` needs a record that still matches.
fn check_beneath(
    overlay: &Overlay,
    lower: BorrowedFd<'_>,
    dir: &RelPath,
    out: &mut Vec<Conflict>,
) -> io::Result<()> {
    let mut stack = vec![dir.clone()];
    while let Some(dir) = stack.pop() {
        let fd = sys::resolve(lower, &dir, Open::Dir)?;
        for entry in sys::read_dir(fd.as_fd())? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            let path = dir.join(&name);
            let st = match sys::stat_at(fd.as_fd(), &name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let current = LowerState::of(Some(&st));
            match overlay.origin(&path) {
                Some(recorded) if recorded == current => {}
                Some(LowerState::Hidden) => out.push(Conflict {
                    path: path.clone(),
                    reason: ConflictReason::HiddenInSource,
                }),
                Some(_) => out.push(Conflict {
                    path: path.clone(),
                    reason: ConflictReason::Changed,
                }),
                None => out.push(Conflict {
                    path: path.clone(),
                    reason: ConflictReason::NotRecorded,
                }),
            }
            if st.kind == FileType::Dir {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// A change that cannot be carried out safely, found before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    pub path: RelPath,
    pub problem: String,
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", changes::quote(&self.path), self.problem)
    }
}

/// Changes that cannot be applied: a directory of SOURCE on the way is a symlink (never
/// followed), or the overlay holds a type apply does not copy (FIFOs, sockets, devices).
pub fn preflight(lower: BorrowedFd<'_>, selected: &[Change]) -> Vec<Unsafe> {
    let mut out = Vec::new();
    for change in selected {
        let link = change.path.ancestors().find_map(|a| {
            let a = RelPath::parse(a).ok()?;
            match stat_beneath(lower, &a) {
                Ok(Some(st)) if st.kind == FileType::Symlink => Some(a),
                _ => None,
            }
        });
        if let Some(parent) = link {
            out.push(Unsafe {
                path: change.path.clone(),
                problem: format!(
                    "a directory on the way ({parent}) is a symlink in SOURCE, and apply never follows symlinks in SOURCE; replace the symlink with a directory, or discard the change"
                ),
            });
            continue;
        }
        if change.op != Op::Delete
            && !matches!(
                change.kind,
                EntryKind::File | EntryKind::Dir | EntryKind::Symlink
            )
        {
            out.push(Unsafe {
                path: change.path.clone(),
                problem: format!(
                    "it is a {} in the overlay, and apply copies only files, directories and symlinks; discard it",
                    change.kind.name()
                ),
            });
        }
    }
    out
}

/// What [`Review::plan`] chose: the changes to carry out (sorted by path, parents first),
/// and what stands in their way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes at or beneath the paths asked for (all, when none were), plus the new
    /// directories they need.
    pub changes: Vec<Change>,
    /// Changes that cannot be applied safely. While there are any, conflicts are not looked
    /// for: the plan cannot go ahead either way.
    pub problems: Vec<Unsafe>,
    /// Changes (or entries of SOURCE a change would delete) whose SOURCE side may have moved
    /// on since the overlay first touched them.
    pub conflicts: Vec<Conflict>,
    /// Protected changes (`exec-config`) left out because they were neither named nor
    /// included ([`Review::plan_to_apply`]); they stay in the overlay.
    pub left_out: Vec<Change>,
    /// Changes never applied, forced or not, because they would write over or delete an entry
    /// of SOURCE that the view hid ([`ConflictReason::HiddenInSource`]); they stay in the
    /// overlay.
    pub withheld: Vec<Change>,
    /// Where the overlay is tidied after applying: the paths asked for, or the root.
    scopes: Vec<RelPath>,
}

/// Why a plan may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This many changes cannot be applied safely ([`Plan::problems`]); forcing does not help.
    Unsafe(usize),
    /// This many conflicts ([`Plan::conflicts`]), and the caller did not force it.
    Conflicts(usize),
}

impl Plan {
    /// Whether the plan may go ahead: never with a change that cannot be applied safely, and
    /// with conflicts only when `force`d.
    pub fn check(&self, force: bool) -> Result<(), Refusal> {
        if !self.problems.is_empty() {
            return Err(Refusal::Unsafe(self.problems.len()));
        }
        if !self.conflicts.is_empty() && !force {
            return Err(Refusal::Conflicts(self.conflicts.len()));
        }
        Ok(())
    }

    /// The changes flagged for a person to look at before applying them (protected paths,
    /// symlinks), with the reasons in [`Change::sensitive`].
    pub fn flagged(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.is_sensitive())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unsafe(n) => write!(f, "{n} change(s) cannot be applied safely"),
            Refusal::Conflicts(n) => write!(f, "{n} conflict(s) with SOURCE"),
        }
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A path asked for has no change at or beneath it.
    #[error("{} has no change in the overlay", changes::quote(.0))]
    Unchanged(RelPath),
    /// The overlay or SOURCE could not be read while listing the changes.
    #[error(transparent)]
    List(#[from] ListError),
    /// SOURCE could not be read while comparing it with the overlay's records.
    #[error("cannot compare the overlay with SOURCE: {0}")]
    Compare(io::Error),
}

/// Why [`Review::apply`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan may not go ahead; nothing was applied.
    #[error("nothing was applied: {0}")]
    Refused(Refusal),
    /// Applied, but the applied entries could not all be removed from the overlay.
    #[error("applied, but cannot remove the applied entries from the overlay: {0}")]
    Tidy(io::Error),
    /// Applied, but `origins` could not be rewritten.
    #[error("applied, but cannot rewrite the overlay's origins file: {0}")]
    Origins(io::Error),
}

/// Why [`Review::discard`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscardError {
    /// The changes could not be chosen.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The overlay could not be changed; part of the changes may be gone.
    #[error("cannot discard from the overlay {}: {source}", .dir.display())]
    Io {
        dir: std::path::PathBuf,
        source: io::Error,
    },
}

/// An overlay opened for review, with its SOURCE.
#[derive(Debug)]
pub struct Review {
    overlay: Overlay,
    source: OwnedFd,
}

impl Review {
    /// Reviews `overlay` against the SOURCE it records, which must still be there.
    pub fn new(overlay: Overlay) -> Result<Review, OverlayError> {
        let source = sys::open_root(overlay.source()).map_err(|err| OverlayError::SourceGone {
            source_dir: overlay.source().to_path_buf(),
            err,
        })?;
        Ok(Review { overlay, source })
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The root descriptor of SOURCE.
    pub fn source(&self) -> BorrowedFd<'_> {
        self.source.as_fd()
    }

    /// Every change of the view against SOURCE, sorted by path.
    pub fn changes(&self) -> Result<Vec<Change>, ListError> {
        changes::list(&self.overlay, self.source())
    }

    /// The plan for the changes at or beneath `paths` (all, when there are none): the changes
    /// chosen, the problems that make some unsafe to apply, and, when there are none, the
    /// conflicts with SOURCE.
    pub fn plan(&self, paths: &[RelPath]) -> Result<Plan, PlanError> {
        self.plan_to_apply(paths, true)
    }

    /// [`Review::plan`] for `apply`: protected changes (`exec-config`) not at or beneath one of
    /// `paths` are left out ([`Plan::left_out`]) unless `include_protected`.
    pub fn plan_to_apply(
        &self,
        paths: &[RelPath],
        include_protected: bool,
    ) -> Result<Plan, PlanError> {
        let chosen = select(&self.changes()?, paths).map_err(PlanError::Unchanged)?;
        // `.git/` is never applied as files (git.rs says why).
        let (chosen, _) = git::split(chosen);
        let (changes, left_out) = protect::leave_out(chosen, paths, include_protected);
        let mut problems = preflight(self.source(), &changes);
        problems.extend(git::preflight(self.source(), &changes));
        let conflicts = if problems.is_empty() {
            conflicts(&self.overlay, self.source(), &changes).map_err(PlanError::Compare)?
        } else {
            Vec::new()
        };
        let (changes, withheld) = hidden::withhold(changes, &conflicts);
        let scopes = if paths.is_empty() {
            vec![RelPath::root()]
        } else {
            paths.to_vec()
        };
        Ok(Plan {
            changes,
            problems,
            conflicts,
            left_out,
            withheld,
            scopes,
        })
    }

    /// Carries out `plan` if it may go ahead ([`Plan::check`]; `force` overrides conflicts),
    /// calling `progress` after each change with the problem if it failed; then removes what
    /// was applied from the overlay. A change whose parent failed is not tried; the failed ones
    /// stay in the overlay and are in the outcome.
    pub fn apply(
        &self,
        plan: &Plan,
        force: bool,
        progress: impl FnMut(&Change, Option<&str>),
    ) -> Result<Outcome, ApplyError> {
        plan.check(force).map_err(ApplyError::Refused)?;
        let outcome = apply::apply(&self.overlay, self.source(), &plan.changes, progress);
        for scope in &plan.scopes {
            apply::tidy(&self.overlay, self.source(), scope).map_err(ApplyError::Tidy)?;
        }
        apply::prune_origins(&self.overlay).map_err(ApplyError::Origins)?;
        Ok(outcome)
    }

    /// Drops the changes at or beneath `paths` (all, when there are none) from the overlay, so
    /// the view shows SOURCE there again, and returns them.
    pub fn discard(&self, paths: &[RelPath]) -> Result<Vec<Change>, DiscardError> {
        let list = self.changes().map_err(PlanError::from)?;
        let dropped: Vec<_> = if paths.is_empty() {
            list
        } else {
            select(&list, paths)
                .map_err(PlanError::Unchanged)?
                .into_iter()
                .filter(|c| paths.iter().any(|f| c.path.starts_with(f)))
                .collect()
        };
        let scopes = if paths.is_empty() {
            vec![RelPath::root()]
        } else {
            paths.to_vec()
        };
        let (overlay, source) = (&self.overlay, self.source());
        let fail = |source: io::Error| DiscardError::Io {
            dir: overlay.dir().to_path_buf(),
            source,
        };
        apply::discard(overlay, source, &scopes).map_err(fail)?;
        for scope in &scopes {
            apply::tidy(overlay, source, scope).map_err(fail)?;
        }
        if scopes.iter().any(RelPath::is_root) {
            overlay.retain_origins(|_| false).map_err(fail)?;
        } else {
            overlay
                .retain_origins(|p| !scopes.iter().any(|s| p.starts_with(s)))
                .map_err(fail)?;
            apply::prune_origins(overlay).map_err(fail)?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::super::tests::{Fixture, fixture, p};
    use super::*;

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    /// An overlay of `f`, its changes written into upper/ by hand, and the provenance of
    /// `touched` recorded from SOURCE as it is now (as the file system records it on first
    /// touch).
    fn overlay_with(f: &Fixture, touched: &[&str], upper: impl FnOnce(&Path)) -> Review {
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let root = sys::open_root(&f.source).unwrap();
        for path in touched {
            let st = stat_beneath(root.as_fd(), &p(path)).unwrap();
            ov.record_origin(&p(path), LowerState::of(st.as_ref()))
                .unwrap();
        }
        drop(ov);
        upper(&f.overlay.join("upper"));
        Review::new(Overlay::open_for_review(&f.overlay, true).unwrap()).unwrap()
    }

    fn paths(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| c.path.to_string()).collect()
    }

    fn conflicts_of(plan: &Plan) -> Vec<(String, ConflictReason)> {
        let list = plan.conflicts.iter();
        list.map(|c| (c.path.to_string(), c.reason.clone()))
            .collect()
    }

    #[test]
    fn paths_select_their_changes_and_the_new_directories_above() {
        let f = fixture();
        write(&f.source, "old/keep", b"k");
        let review = overlay_with(&f, &[], |up| {
            write(up, "new/deep/file", b"x");
            write(up, "new/other", b"y");
            write(up, "top", b"t");
            write(up, "old/added", b"a");
        });
        let all = review.plan(&[]).unwrap();
        assert_eq!(
            paths(&all.changes),
            [
                "new",
                "new/deep",
                "new/deep/file",
                "new/other",
                "old/added",
                "top"
            ]
        );
        let some = review.plan(&[p("new/deep/file"), p("old")]).unwrap();
        assert_eq!(
            paths(&some.changes),
            ["new", "new/deep", "new/deep/file", "old/added"]
        );
        let err = review.plan(&[p("old/keep")]).unwrap_err();
        assert!(
            matches!(&err, PlanError::Unchanged(path) if *path == p("old/keep")),
            "{err}"
        );
    }

    #[test]
    fn conflicts_are_changes_source_made_since_the_overlay_first_saw_them() {
        let f = fixture();
        write(&f.source, "edited", b"one");
        write(&f.source, "steady", b"one");
        write(&f.source, "unrecorded", b"one");
        let review = overlay_with(&f, &["edited", "steady", "fresh", "raced"], |up| {
            write(up, "edited", b"two");
            write(up, "steady", b"two");
            write(up, "unrecorded", b"two");
            write(up, "fresh", b"new");
            write(up, "raced", b"new");
            write(up, "unrecorded-new", b"new");
        });
        // SOURCE moves on under two of them after the overlay recorded them.
        write(&f.source, "edited", b"changed in SOURCE");
        write(&f.source, "raced", b"made in SOURCE too");
        let plan = review.plan(&[]).unwrap();
        assert_eq!(
            conflicts_of(&plan),
            [
                ("edited".into(), ConflictReason::Changed),
                ("raced".into(), ConflictReason::Changed),
                ("unrecorded".into(), ConflictReason::NotRecorded),
            ]
        );
        assert_eq!(plan.check(false), Err(Refusal::Conflicts(3)));
        assert_eq!(plan.check(true), Ok(()));
        // Nothing is applied while there are conflicts, whatever the caller does with them.
        let mut tried = 0;
        let err = review.apply(&plan, false, |_, _| tried += 1).unwrap_err();
        assert!(
            matches!(err, ApplyError::Refused(Refusal::Conflicts(3))),
            "{err}"
        );
        assert_eq!(tried, 0);
        assert_eq!(
            std::fs::read(f.source.join("edited")).unwrap(),
            b"changed in SOURCE"
        );
        assert!(!f.source.join("fresh").exists());
        assert_eq!(review.changes().unwrap().len(), 6);
        // Forced, everything goes in and leaves the overlay.
        let outcome = review.apply(&plan, true, |_, _| {}).unwrap();
        assert_eq!((outcome.applied.len(), outcome.failed.len()), (6, 0));
        for (path, data) in [
            ("edited", "two"),
            ("raced", "new"),
            ("unrecorded-new", "new"),
        ] {
            assert_eq!(std::fs::read(f.source.join(path)).unwrap(), data.as_bytes());
        }
        assert!(review.changes().unwrap().is_empty());
        assert!(review.plan(&[]).unwrap().changes.is_empty());
    }

    #[test]
    fn deleting_a_directory_needs_a_record_of_everything_beneath_it() {
        let f = fixture();
        write(&f.source, "dir/seen", b"s");
        write(&f.source, "dir/sub/seen", b"s");
        write(&f.source, "dir/.env", b"SECRET=1");
        let review = overlay_with(&f, &["dir", "dir/seen", "dir/sub", "dir/sub/seen"], |up| {
            write(up, ".wh.dir", b"");
        });
        let plan = review.plan(&[]).unwrap();
        assert_eq!(paths(&plan.changes), ["dir"]);
        assert_eq!(
            conflicts_of(&plan),
            [("dir/.env".into(), ConflictReason::NotRecorded)]
        );
        assert!(review.apply(&plan, false, |_, _| {}).is_err());
        assert!(f.source.join("dir/.env").exists());
    }

    #[test]
    fn unsafe_changes_stop_the_plan_even_when_forced() {
        let f = fixture();
        std::fs::create_dir(f.source.join("real")).unwrap();
        symlink("real", f.source.join("link")).unwrap();
        let review = overlay_with(&f, &[], |up| {
            write(up, "link/planted", b"x");
            nix::unistd::mkfifo(
                &up.join("pipe"),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
            .unwrap();
        });
        let plan = review.plan(&[]).unwrap();
        let problems: Vec<_> = plan.problems.iter().map(|u| u.path.to_string()).collect();
        assert_eq!(problems, ["link/planted", "pipe"]);
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.check(true), Err(Refusal::Unsafe(2)));
        let err = review.apply(&plan, true, |_, _| {}).unwrap_err();
        assert!(
            matches!(err, ApplyError::Refused(Refusal::Unsafe(2))),
            "{err}"
        );
        assert!(!f.source.join("real/planted").exists());
        assert!(!f.source.join("pipe").exists());
    }

    #[test]
    fn flagged_changes_are_the_sensitive_ones() {
        let f = fixture();
        let review = overlay_with(&f, &[], |up| {
            write(up, ".envrc", b"export X=1");
            write(up, "plain.txt", b"x");
            symlink("plain.txt", up.join("link")).unwrap();
        });
        let plan = review.plan(&[]).unwrap();
        let flagged: Vec<_> = plan
            .flagged()
            .map(|c| (c.path.to_string(), c.sensitive.clone()))
            .collect();
        assert_eq!(
            flagged,
            [
                (".envrc".into(), vec!["exec-config".to_string()]),
                ("link".into(), vec!["symlink".to_string()]),
            ]
        );
    }

    #[test]
    fn discard_drops_the_paths_asked_for_and_their_records() {
        let f = fixture();
        write(&f.source, "a", b"source a");
        let review = overlay_with(&f, &["a", "b/new"], |up| {
            write(up, "a", b"upper a");
            write(up, "b/new", b"n");
        });
        let dropped = review.discard(&[p("a")]).unwrap();
        assert_eq!(paths(&dropped), ["a"]);
        assert_eq!(paths(&review.changes().unwrap()), ["b", "b/new"]);
        assert_eq!(review.overlay().origin(&p("a")), None);
        assert!(review.overlay().origin(&p("b/new")).is_some());
        let err = review.discard(&[p("a")]).unwrap_err();
        assert!(
            matches!(err, DiscardError::Plan(PlanError::Unchanged(_))),
            "{err}"
        );
        assert_eq!(paths(&review.discard(&[]).unwrap()), ["b", "b/new"]);
        assert!(review.changes().unwrap().is_empty());
        assert_eq!(std::fs::read(f.source.join("a")).unwrap(), b"source a");
    }

    #[test]
    fn a_review_needs_its_source() {
        let f = fixture();
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());
        std::fs::rename(&f.source, f.source.with_file_name("moved")).unwrap();
        let err = Review::new(Overlay::open_for_review(&f.overlay, false).unwrap()).unwrap_err();
        assert!(matches!(err, OverlayError::SourceGone { .. }), "{err}");
        assert!(err.to_string().contains("it was moved or deleted"), "{err}");
    }
}
