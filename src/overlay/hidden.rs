//! SOURCE's hidden entries in review (SPEC §3a): what the agent made at a name SOURCE holds
//! hidden is the agent's own, and `apply` never writes it over SOURCE's entry, nor deletes a
//! hidden entry with a directory the agent deleted — forced or not.
//!
//! The view records such a path as [`LowerState::Hidden`] in `origins` when the overlay first
//! touches it (the policy is known then, not at review), and so are the hidden entries of a
//! SOURCE directory the agent deletes. A change is withheld while SOURCE still has an entry at
//! a path so recorded: at the change's own path or above it, or, for a change that removes a
//! directory of SOURCE, beneath it.

use std::io;
use std::os::fd::BorrowedFd;

use super::changes::Change;
use super::review::{Conflict, ConflictReason};
use super::{LowerState, Overlay};
use crate::path::RelPath;
use crate::sys::tree::stat_beneath;

/// Whether `path` was recorded as hidden and SOURCE still has an entry there.
pub fn still_hidden(overlay: &Overlay, lower: BorrowedFd<'_>, path: &RelPath) -> io::Result<bool> {
    Ok(overlay.origin(path) == Some(LowerState::Hidden) && stat_beneath(lower, path)?.is_some())
}

/// The conflict of `change` with a hidden SOURCE entry at its path or above it, if any.
pub fn at_or_above(
    overlay: &Overlay,
    lower: BorrowedFd<'_>,
    change: &Change,
) -> io::Result<Option<Conflict>> {
    let mut at = Some(change.path.clone());
    while let Some(path) = at {
        if path.is_root() {
            break;
        }
        if still_hidden(overlay, lower, &path)? {
            return Ok(Some(Conflict {
                path: change.path.clone(),
                reason: ConflictReason::HiddenInSource,
            }));
        }
        at = path.parent();
    }
    Ok(None)
}

/// Splits `changes` into those that may go ahead and those withheld because a conflict in
/// `conflicts` with a hidden SOURCE entry lies at or beneath their path.
pub fn withhold(changes: Vec<Change>, conflicts: &[Conflict]) -> (Vec<Change>, Vec<Change>) {
    let hidden: Vec<&RelPath> = conflicts
        .iter()
        .filter(|c| c.reason == ConflictReason::HiddenInSource)
        .map(|c| &c.path)
        .collect();
    changes
        .into_iter()
        .partition(|change| !hidden.iter().any(|h| h.starts_with(&change.path)))
}
