//! History that holds what a view hides: with `.git` visible, `git show HEAD:.env`, `git log
//! -p` and `git cat-file` give the agent the content of every hidden file the repository
//! tracks. [`hidden_tracked`] finds those files (tracked in `HEAD` or in the index of SOURCE's
//! own repository, `SOURCE/.git`), so that `mount`, `run` and `check` can say so before the
//! agent starts.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::Git;
use crate::path::RelPath;
use crate::policy::{Kind, Matcher};

/// How many paths the warning names.
const NAMED: usize = 3;

/// Hidden files SOURCE's repository tracks while the view shows `.git`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenTracked {
    /// All of them, sorted.
    pub paths: Vec<RelPath>,
}

impl fmt::Display for HiddenTracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named: Vec<String> = self
            .paths
            .iter()
            .take(NAMED)
            .map(crate::overlay::changes::quote)
            .collect();
        let more = self.paths.len().saturating_sub(NAMED);
        write!(
            f,
            "the view hides {} file(s) that SOURCE's git history tracks ({}{}), and shows .git, so the agent can read them with `git show HEAD:PATH`; hide .git (`--hide .git`, or presets = [\"secrets\", \"vcs\"]) or purge them from the history",
            self.paths.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// The hidden files tracked in `HEAD` or the index of `SOURCE/.git` while `.git` is visible;
/// `None` when there are none, when `.git` is hidden or is not a directory, or when git cannot
/// tell (not installed, not a repository).
pub fn hidden_tracked(source: &Path, matcher: &Matcher) -> Option<HiddenTracked> {
    let git_dir = source.join(".git");
    let is_dir = std::fs::symlink_metadata(&git_dir).is_ok_and(|m| m.is_dir());
    let dot_git = RelPath::parse(b".git").ok()?;
    if !is_dir || !matcher.is_visible(&dot_git, Kind::Dir) {
        return None;
    }
    let read = |args: &[&str]| {
        Git::new(&git_dir, args)
            // Only lists names: no program of the repository's configuration runs.
            .config("safe.directory=*")
            .output()
            .map_err(|e| tracing::debug!(error = %e, "cannot list the tracked files"))
            .ok()
    };
    let mut tracked: BTreeSet<Vec<u8>> = BTreeSet::new();
    for args in [
        &["ls-files", "-z", "--cached"][..],
        &["ls-tree", "-r", "-z", "--name-only", "HEAD"][..],
    ] {
        if let Some(out) = read(args) {
            tracked.extend(
                out.split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    let paths: Vec<RelPath> = tracked
        .iter()
        .filter_map(|p| RelPath::parse(p).ok())
        .filter(|p| !matcher.is_visible(p, Kind::NonDir))
        .collect();
    (!paths.is_empty()).then_some(HiddenTracked { paths })
}
