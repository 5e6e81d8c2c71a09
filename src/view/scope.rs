//! Visibility of one SOURCE path: the policy verdict plus what only the file system can tell
//! (file type, symlink targets, hardlinks).

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::path::{Name, RelPath};
use crate::policy::{Matcher, Rule};

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

/// Visibility decisions for one SOURCE.
pub struct Scope {
    _matcher: Arc<Matcher>,
}

impl Scope {
    /// Opens SOURCE and prepares to answer questions about it.
    pub fn open(_source: &Path, matcher: Arc<Matcher>) -> io::Result<Scope> {
        Ok(Scope { _matcher: matcher })
    }

    /// The verdict on `path`, checking every ancestor on the way.
    pub fn explain(&self, _path: &RelPath) -> io::Result<Verdict> {
        Err(io::Error::other("not built yet"))
    }

    /// The visible entries of the directory `dir`, sorted by name, with whether each is a
    /// directory.
    pub fn visible_children(&self, _dir: &RelPath) -> io::Result<Vec<(Name, bool)>> {
        Err(io::Error::other("not built yet"))
    }
}
