//! What `run` says about the overlay when its command has ended: how many changes of each
//! kind, at most [`SHOWN`] of them as `diff` lines, then exactly what happens to the overlay:
//! kept (and where to review it) or discarded.

use std::path::Path;

use crate::overlay::changes::{Change, Op};

/// At most this many changes are listed; `scopefs diff` lists them all.
pub const SHOWN: usize = 20;

/// What becomes of the overlay once `run` ends.
pub enum Fate<'a> {
    /// It stays at this directory (given with `--overlay`, or kept with `--keep-overlay`).
    Kept(&'a Path),
    /// The temporary overlay is removed.
    Discarded,
}

/// The summary's lines, for the changes listed (or why they could not be).
pub fn lines(changes: Result<&[Change], String>, fate: &Fate) -> Vec<String> {
    let mut out = Vec::new();
    let count = match changes {
        Ok([]) => {
            out.push("scopefs: no changes in the overlay".to_string());
            0
        }
        Ok(changes) => {
            out.push(format!(
                "scopefs: {} in the overlay: {}",
                plural(changes.len(), "change"),
                by_kind(changes)
            ));
            // A repository's `.git` changes are one line, not one per object file.
            let shown = super::git_review::collapsed_lines(changes);
            out.extend(shown.iter().take(SHOWN).cloned());
            if shown.len() > SHOWN {
                out.push(format!("… and {} more", shown.len() - SHOWN));
            }
            changes.len()
        }
        Err(e) => {
            out.push(format!("scopefs: cannot list the overlay's changes: {e}"));
            0
        }
    };
    out.push(match fate {
        Fate::Kept(dir) => format!(
            "scopefs: the overlay is kept at {dir} (review: scopefs diff {dir})",
            dir = dir.display()
        ),
        Fate::Discarded if count == 0 => "scopefs: the temporary overlay was removed".to_string(),
        Fate::Discarded => format!(
            "scopefs: discarded {} (keep them with --keep-overlay or --overlay DIR)",
            plural(count, "change")
        ),
    });
    out
}

/// `2 added, 1 deleted`: the counts of each kind present, in a fixed order.
fn by_kind(changes: &[Change]) -> String {
    [
        (Op::Add, "added"),
        (Op::Modify, "modified"),
        (Op::Delete, "deleted"),
        (Op::TypeChange, "type changed"),
    ]
    .iter()
    .filter_map(|(op, name)| {
        let n = changes.iter().filter(|c| c.op == *op).count();
        (n > 0).then(|| format!("{n} {name}"))
    })
    .collect::<Vec<_>>()
    .join(", ")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
