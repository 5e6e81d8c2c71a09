//! `scopefs diff OVERLAY [--patch] [--json]`: the changes an overlay holds against its SOURCE,
//! one line each (`A`/`M`/`D`/`T` and the path, sorted bytewise), sensitive ones flagged.
//!
//! Paths print as they are when they are printable UTF-8, else quoted with C escapes as git
//! does. `--json` prints one array of objects `{"op", "path", "kind", "sensitive", "reasons"}`;
//! `path` is lossy UTF-8, and a path that is not UTF-8 also gets `path_bytes`, its exact bytes
//! as an array of numbers. `--patch` adds unified diffs (`--- a/PATH`, `+++ b/PATH`; text only,
//! a one-line note for binary files and for files past [`TEXT_PATCH_MAX`]); with `--json` each
//! object gets a `patch` string. Changes are printed one at a time, and no file is ever read
//! whole unless it is small enough for a text patch, so memory stays bounded whatever the
//! overlay holds. A patch that cannot be made is named on stderr, and the command then exits 1.
//! Changes beneath a `.git` directory are summarised per repository instead ([`git_review`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::cli::git_review::{self, Entry};
use crate::overlay::changes::{self, Change, EntryKind, Op, quote};
use crate::overlay::review::Review;
use crate::overlay::{Overlay, OverlayError};
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
    sys::open_root(overlay.source()).map_err(|err| {
        CliError::from(OverlayError::SourceGone {
            source_dir: overlay.source().to_path_buf(),
            err,
        })
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
        let review = Review::new(super::review::open(&self.overlay, false)?)?;
        let list = review
            .changes()
            .map_err(|e| CliError::runtime(e.to_string()))?;
        let (files, repos) = crate::overlay::git::repositories(&review, list);
        let entries = git_review::interleave(&files, &repos);
        // Each change is printed as soon as it is made, so memory holds one patch at a time.
        let mut out = std::io::stdout().lock();
        let mut failed = 0usize;
        let mut patch_of = |c: &Change| -> Option<Result<String, String>> {
            let made = self
                .patch
                .then(|| patch(&review, c).map_err(|e| e.to_string()));
            if let Some(Err(e)) = &made {
                failed += 1;
                eprintln!("scopefs: no patch for {}: {e}", quote(&c.path));
            }
            made
        };
        let written = if self.json {
            let items = entries.iter().map(|entry| {
                let c = match entry {
                    Entry::Change(c) => c,
                    Entry::Repo(repo) => return git_review::json(repo),
                };
                let mut obj = json(c);
                if let (Some(made), Some(map)) = (patch_of(c), obj.as_object_mut()) {
                    match made {
                        Ok(text) => map.insert("patch".into(), text.into()),
                        Err(e) => map.insert("patch_error".into(), e.into()),
                    };
                }
                obj
            });
            write_json_array(&mut out, items)
        } else {
            entries.iter().try_for_each(|entry| {
                let change = match entry {
                    Entry::Change(c) => c,
                    Entry::Repo(repo) => return writeln!(out, "{}", git_review::text(repo)),
                };
                writeln!(out, "{}", line(change))?;
                match patch_of(change) {
                    Some(Ok(text)) => out.write_all(text.as_bytes()),
                    _ => Ok(()),
                }
            })
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| CliError::runtime(format!("cannot write the changes: {e}")))?;
        if failed > 0 {
            return Err(CliError::runtime(format!(
                "{failed} patch(es) could not be made (named above); the list of changes is complete"
            )));
        }
        Ok(())
    }
}

/// Writes `items` as one pretty-printed JSON array, as `serde_json::to_string_pretty` would,
/// one item at a time.
fn write_json_array(
    out: &mut impl Write,
    items: impl Iterator<Item = serde_json::Value>,
) -> std::io::Result<()> {
    let mut first = true;
    for item in items {
        out.write_all(if first { b"[\n" } else { b",\n" })?;
        first = false;
        let text = serde_json::to_string_pretty(&item).map_err(std::io::Error::other)?;
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            write!(out, "  {part}")?;
        }
    }
    out.write_all(if first { b"[]\n" } else { b"\n]\n" })
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

/// The largest file shown as a text patch. A larger one gets a note instead: a reviewer cannot
/// read a patch that long, and making it would hold both sides in memory.
pub const TEXT_PATCH_MAX: u64 = 4 * 1024 * 1024;

/// How much of a file decides that it is binary: a NUL among the first 8000 bytes, as git
/// decides.
const SNIFF: usize = 8000;

/// How long the diff of one file may search for the shortest patch before it settles for a
/// longer one.
const DIFF_TIMEOUT: Duration = Duration::from_secs(5);

/// What one side of a change holds for the patch.
enum Side {
    /// Nothing (an addition's old side, a deletion's new side, a directory).
    Absent,
    /// A symlink's target.
    Link(Vec<u8>),
    /// A regular file, open, and its size.
    File(File, u64),
}

/// Why a patch could not be made: the path, the side and the error.
#[derive(Debug, thiserror::Error)]
#[error("cannot read it in {side}: {source}")]
pub struct PatchError {
    side: &'static str,
    source: std::io::Error,
}

impl Side {
    fn open(
        root: BorrowedFd<'_>,
        path: &RelPath,
        kind: Option<EntryKind>,
        side: &'static str,
    ) -> Result<Side, PatchError> {
        let err = |source| PatchError { side, source };
        Ok(match kind {
            Some(EntryKind::File) => {
                let file = sys::tree::open_file_beneath(root, path).map_err(err)?;
                let size = sys::fstat(file.as_fd()).map_err(err)?.size;
                Side::File(file, size)
            }
            Some(EntryKind::Symlink) => Side::Link(
                sys::resolve(root, path, Open::Path)
                    .and_then(|fd| sys::readlink(fd.as_fd()))
                    .map_err(err)?,
            ),
            _ => Side::Absent,
        })
    }

    fn size(&self) -> u64 {
        match self {
            Side::Absent => 0,
            Side::Link(target) => target.len() as u64,
            Side::File(_, size) => *size,
        }
    }

    /// The first bytes, at most [`SNIFF`] of them.
    fn head(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Side::Absent => Ok(Vec::new()),
            Side::Link(target) => Ok(target.iter().take(SNIFF).copied().collect()),
            Side::File(file, _) => {
                let mut head = Vec::with_capacity(SNIFF);
                rewound(file)?.take(SNIFF as u64).read_to_end(&mut head)?;
                Ok(head)
            }
        }
    }

    /// Every byte: only ever called for sides of at most [`TEXT_PATCH_MAX`] bytes.
    fn bytes(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Side::Absent => Ok(Vec::new()),
            Side::Link(target) => Ok(target.clone()),
            Side::File(file, size) => {
                let mut all = Vec::with_capacity(usize::try_from(*size).unwrap_or(0));
                rewound(file)?
                    .take(TEXT_PATCH_MAX + 1)
                    .read_to_end(&mut all)?;
                Ok(all)
            }
        }
    }
}

/// `file`, read from its start again.
fn rewound(mut file: &File) -> std::io::Result<&File> {
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Whether both sides hold the same bytes, read a block at a time.
fn same_bytes(old: &Side, new: &Side) -> std::io::Result<bool> {
    match (old, new) {
        (Side::File(a, a_size), Side::File(b, b_size)) => {
            Ok(a_size == b_size && changes::same_file_content(rewound(a)?, rewound(b)?)?)
        }
        (Side::Link(a), Side::Link(b)) => Ok(a == b),
        (Side::Absent, Side::Absent) => Ok(true),
        _ => Ok(false),
    }
}

fn is_binary(head: &[u8]) -> bool {
    head.contains(&0)
}

/// The unified diff of one change (empty for directories and unchanged content): a note for a
/// binary file or one too large for a text patch, never the whole of such a file in memory.
fn patch(review: &Review, change: &Change) -> Result<String, PatchError> {
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
    let old = Side::open(review.source(), &change.path, old_kind, "SOURCE")?;
    let new = Side::open(
        review.overlay().upper(),
        &change.path,
        new_kind,
        "the overlay",
    )?;
    let in_source = |source| PatchError {
        side: "SOURCE",
        source,
    };
    let in_overlay = |source| PatchError {
        side: "the overlay",
        source,
    };
    let comparing = |source| PatchError {
        side: "SOURCE or the overlay",
        source,
    };
    if same_bytes(&old, &new).map_err(comparing)? {
        return Ok(out);
    }
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
    let binary = format!("Binary files {old_header} and {new_header} differ\n");
    if is_binary(&old.head().map_err(in_source)?) || is_binary(&new.head().map_err(in_overlay)?) {
        out.push_str(&binary);
        return Ok(out);
    }
    if old.size() > TEXT_PATCH_MAX || new.size() > TEXT_PATCH_MAX {
        out.push_str(&format!(
            "File too large for a text patch: {old_header} ({} bytes) and {new_header} ({} bytes) differ; patches stop at {} MiB\n",
            old.size(),
            new.size(),
            TEXT_PATCH_MAX / (1024 * 1024)
        ));
        return Ok(out);
    }
    let (Ok(a), Ok(b)) = (
        String::from_utf8(old.bytes().map_err(in_source)?),
        String::from_utf8(new.bytes().map_err(in_overlay)?),
    ) else {
        out.push_str(&binary);
        return Ok(out);
    };
    let diff = similar::TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(a.as_str(), b.as_str());
    out.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(&old_header, &new_header)
            .to_string(),
    );
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_array_is_written_as_serde_json_writes_it() {
        for items in [
            vec![],
            vec![serde_json::json!({"op": "A", "reasons": []})],
            vec![
                serde_json::json!({"op": "M", "patch": "--- a\n+++ b\n", "reasons": ["x"]}),
                serde_json::json!({"op": "D", "nested": {"k": [1, 2]}}),
            ],
        ] {
            let mut out = Vec::new();
            write_json_array(&mut out, items.clone().into_iter()).unwrap();
            let expected = serde_json::to_string_pretty(&items).unwrap() + "\n";
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
