//! `protect` at review time (SPEC §3a, §4): in an overlay view, changes to files whose change
//! runs code later outside the view (the `exec-config` preset: git hooks and config, CI
//! workflows, editor and shell settings) are written to the overlay and flagged by `diff`;
//! `apply` leaves them out unless they are asked for by name or with `--include-protected`.

use super::changes::{Change, EntryKind, Op};
use crate::path::RelPath;

/// Splits `changes` into those to apply and the protected ones left out. A protected change
/// goes ahead when `include` is set, or when one of `named` (the PATHs given to `apply`) is at
/// or above it; so does a protected directory that a change going ahead needs.
pub fn leave_out(
    changes: Vec<Change>,
    named: &[RelPath],
    include: bool,
) -> (Vec<Change>, Vec<Change>) {
    if include {
        return (changes, Vec::new());
    }
    let asked = |c: &Change| !c.is_protected() || named.iter().any(|n| c.path.starts_with(n));
    let (kept, left_out): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(asked);
    let needed = |c: &Change| {
        c.kind == EntryKind::Dir
            && matches!(c.op, Op::Add | Op::TypeChange)
            && kept
                .iter()
                .any(|k| k.path != c.path && k.path.starts_with(&c.path))
    };
    let (mut needed_dirs, left_out): (Vec<Change>, Vec<Change>) =
        left_out.into_iter().partition(needed);
    let mut kept = kept;
    kept.append(&mut needed_dirs);
    kept.sort_by(|a, b| a.path.cmp(&b.path));
    (kept, left_out)
}
