//! `scopefs diff OVERLAY [--patch] [--json]`: the changes an overlay holds against its SOURCE,
//! one line each (`A`/`M`/`D`/`T` and the path, sorted bytewise), sensitive ones flagged.
//!
//! Paths print as they are when they are printable UTF-8, else quoted with C escapes as git
//! does. `--json` prints one array of objects `{"op", "path", "kind", "sensitive", "reasons"}`;
//! `path` is lossy UTF-8, and a path that is not UTF-8 also gets `path_bytes`, its exact bytes
//! as an array of numbers. `--patch` adds unified diffs (`--- a/PATH`, `+++ b/PATH`; text only,
//! a one-line note for binary files); with `--json` each object gets a `patch` string.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::overlay::Overlay;
use crate::overlay::changes::{self, Change, EntryKind, Op, quote};
use crate::path::RelPath;
use crate::sys::{self, Open};

#[derive(Debug, Args)]
pub struct DiffCmd {
    /// The overlay directory (the one given to `mount --overlay`).
    pub overlay: PathBuf,
    /// Show unified diffs of text files.
    #[arg(long)]
    pub patch: bool,
    /// Print a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Opens SOURCE as recorded in the overlay, refusing if it is gone.
pub fn open_source(overlay: &Overlay) -> CliResult<std::os::fd::OwnedFd> {
    sys::open_root(overlay.source()).map_err(|e| {
        CliError::usage(format!(
            "the overlay's SOURCE {} cannot be opened: {e}; it was moved or deleted, so restore it (or discard the overlay)",
            overlay.source().display()
        ))
    })
}

/// One line of the change list: `M src/a.rs`, with `  (sensitive: exec-config)` when flagged.
pub fn line(change: &Change) -> String {
    let mut out = format!("{} {}", change.op, quote(&change.path));
    if change.is_sensitive() {
        out.push_str(&format!("  (sensitive: {})", change.sensitive.join(", ")));
    }
    out
}

impl DiffCmd {
    pub fn run(self) -> CliResult {
        let overlay = Overlay::open_for_review(&self.overlay, false)?;
        let lower = open_source(&overlay)?;
        let list =
            changes::list(&overlay, lower.as_fd()).map_err(|e| CliError::runtime(e.to_string()))?;
        let patch_of = |c: &Change| {
            if self.patch {
                patch(&overlay, lower.as_fd(), c)
            } else {
                String::new()
            }
        };
        if self.json {
            let items: Vec<serde_json::Value> = list
                .iter()
                .map(|c| {
                    let mut obj = json(c);
                    if let (true, Some(map)) = (self.patch, obj.as_object_mut()) {
                        map.insert("patch".into(), patch_of(c).into());
                    }
                    obj
                })
                .collect();
            let text = serde_json::to_string_pretty(&items)
                .map_err(|e| CliError::runtime(format!("cannot write JSON: {e}")))?;
            println!("{text}");
            return Ok(());
        }
        for change in &list {
            println!("{}", line(change));
            if self.patch {
                print!("{}", patch_of(change));
            }
        }
        Ok(())
    }
}

/// The JSON object of one change.
pub fn json(change: &Change) -> serde_json::Value {
    let bytes = change.path.as_bytes();
    let mut obj = serde_json::json!({
        "op": change.op.letter().to_string(),
        "path": String::from_utf8_lossy(bytes),
        "kind": change.kind.name(),
        "sensitive": change.is_sensitive(),
        "reasons": change.sensitive,
    });
    if let (Err(_), Some(map)) = (std::str::from_utf8(bytes), obj.as_object_mut()) {
        map.insert("path_bytes".into(), bytes.to_vec().into());
    }
    obj
}

/// What one side holds for the patch: file bytes, a symlink target, or nothing.
fn content(root: BorrowedFd<'_>, path: &RelPath, kind: Option<EntryKind>) -> Option<Vec<u8>> {
    use std::io::Read;
    match kind? {
        EntryKind::File => {
            let mut out = Vec::new();
            crate::overlay::open_file_beneath(root, path)
                .and_then(|mut f| f.read_to_end(&mut out))
                .ok()?;
            Some(out)
        }
        EntryKind::Symlink => {
            sys::readlink(sys::resolve(root, path, Open::Path).ok()?.as_fd()).ok()
        }
        _ => None,
    }
}

fn is_binary(data: &[u8]) -> bool {
    data.iter().take(8000).any(|b| *b == 0) || std::str::from_utf8(data).is_err()
}

/// The unified diff of one change (empty for directories and unchanged content).
fn patch(overlay: &Overlay, lower: BorrowedFd<'_>, change: &Change) -> String {
    let name = String::from_utf8_lossy(change.path.as_bytes()).into_owned();
    let (old_kind, new_kind) = match change.op {
        Op::Add => (None, Some(change.kind)),
        Op::Delete => (change.lower_kind, None),
        Op::Modify | Op::TypeChange => (change.lower_kind, Some(change.kind)),
    };
    let mut out = String::new();
    if let Some((new, old)) = change
        .modes
        .filter(|(n, o)| n != o && change.op == Op::Modify)
    {
        out.push_str(&format!("old mode {old:o}\nnew mode {new:o}\n"));
    }
    let old = content(lower, &change.path, old_kind);
    let new = content(overlay.upper(), &change.path, new_kind);
    if old.is_none() && new.is_none() {
        return out;
    }
    if old == new {
        return out;
    }
    let (a, b) = (old.unwrap_or_default(), new.unwrap_or_default());
    let old_header = if old_kind.is_some() {
        format!("a/{name}")
    } else {
        "/dev/null".into()
    };
    let new_header = if new_kind.is_some() {
        format!("b/{name}")
    } else {
        "/dev/null".into()
    };
    if is_binary(&a) || is_binary(&b) {
        out.push_str(&format!(
            "Binary files {old_header} and {new_header} differ\n"
        ));
        return out;
    }
    let a = String::from_utf8_lossy(&a);
    let b = String::from_utf8_lossy(&b);
    let diff = similar::TextDiff::from_lines(a.as_ref(), b.as_ref());
    out.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(&old_header, &new_header)
            .to_string(),
    );
    out
}
