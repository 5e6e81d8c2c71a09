//! Git metadata in review (SPEC §4): the changes beneath a `.git/` directory are not files for
//! a person to read one by one but a repository's history. [`split`] takes them out of the
//! change list; [`Repository::summarize`] says what the agent did there (the commits it made,
//! the refs it created, moved or deleted, where `HEAD` went, and the flagged hooks and config);
//! [`Repository::take_branch`] copies the agent's new commits into SOURCE's repository as one
//! new branch and changes nothing else there.
//!
//! `apply` leaves `.git/` alone unless asked ([`super::review::Review::plan`] never plans a
//! change beneath it), because the agent's repository was made in a view that hides files: its
//! index and commits record hidden tracked files as deleted (the agent could not see them), so
//! copying `.git/index`, refs or objects back would make the real repository lose them. A
//! deletion that would remove a repository of SOURCE with its directory is refused for the same
//! reason ([`preflight`]).
//!
//! Everything in `upper/` was written by the agent (THREATS R11): only object files are taken
//! from it, copied through descriptors into a private repository that reads SOURCE's objects
//! through `objects/info/alternates`; the agent's `config`, hooks and alternates are never used;
//! ref files are read as data and only object ids are passed on. git itself is run as
//! [`crate::git`] says (no hooks, no monitor); objects reach SOURCE's repository only through
//! `git fetch` with `transfer.fsckObjects`, which checks each one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

mod refs;
mod scratch;

use refs::{RefFiles, Target, read_refs, view_refs};
use scratch::{Scratch, source_git_dir};

use super::changes::{Change, EntryKind, Op, quote};
use super::review::{Review, Unsafe};
use crate::git::{Git, GitError};
use crate::path::{Name, RelPath};
use crate::sys::tree::stat_beneath;
use crate::sys::{self, FileType, Open};

/// The name of a repository's metadata directory.
pub const DOT_GIT: &[u8] = b".git";

/// The `.git` directory at or above `path` (its first `.git` component), if any.
pub fn git_dir_of(path: &RelPath) -> Option<RelPath> {
    let mut dir = RelPath::root();
    for part in path.components() {
        let name = Name::new(part).ok()?;
        dir.push(&name);
        if part == DOT_GIT {
            return Some(dir);
        }
    }
    None
}

/// Whether `path` is git metadata: a `.git` directory or anything beneath one.
pub fn is_git_metadata(path: &RelPath) -> bool {
    path.components().any(|c| c == DOT_GIT)
}

/// The changes outside any `.git/`, and those beneath each `.git` directory, by directory.
pub fn split(changes: Vec<Change>) -> (Vec<Change>, BTreeMap<RelPath, Vec<Change>>) {
    let mut files = Vec::new();
    let mut repos: BTreeMap<RelPath, Vec<Change>> = BTreeMap::new();
    for change in changes {
        match git_dir_of(&change.path) {
            Some(dir) => repos.entry(dir).or_default().push(change),
            None => files.push(change),
        }
    }
    (files, repos)
}

/// Deletions (and type changes) of SOURCE directories that hold a repository: applying them
/// would delete the repository too, which `apply` never does.
pub fn preflight(lower: BorrowedFd<'_>, selected: &[Change]) -> Vec<Unsafe> {
    let mut out = Vec::new();
    for change in selected {
        let removes_dir = matches!(change.op, Op::Delete | Op::TypeChange)
            && change.lower_kind == Some(EntryKind::Dir);
        if !removes_dir || is_git_metadata(&change.path) {
            continue;
        }
        if let Some(repo) = repository_beneath(lower, &change.path) {
            out.push(Unsafe {
                path: change.path.clone(),
                problem: format!(
                    "deleting it would delete the repository {repo} in SOURCE, and apply leaves repositories alone; delete it by hand, or discard the change"
                ),
            });
        }
    }
    out
}

/// The first `.git` directory at or beneath `dir` in SOURCE, found without following symlinks.
fn repository_beneath(lower: BorrowedFd<'_>, dir: &RelPath) -> Option<RelPath> {
    let mut stack = vec![dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(fd) = sys::resolve(lower, &dir, Open::Dir) else {
            continue;
        };
        let Ok(entries) = sys::read_dir(fd.as_fd()) else {
            continue;
        };
        for entry in entries {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            let path = dir.join(&name);
            if name.as_bytes() == DOT_GIT {
                return Some(path);
            }
            if sys::stat_at(fd.as_fd(), &name).is_ok_and(|st| st.kind == FileType::Dir) {
                stack.push(path);
            }
        }
    }
    None
}

/// What happened to a repository in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoState {
    /// SOURCE has it and the agent changed it.
    Changed,
    /// The agent made it; SOURCE has none there.
    New,
    /// The agent deleted it (or replaced it with something else).
    Deleted,
}

/// A commit the agent made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub oid: String,
    pub short: String,
    pub subject: String,
}

/// A ref whose target differs between SOURCE and the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefMove {
    pub name: String,
    /// In SOURCE (`None`: created by the agent).
    pub old: Option<String>,
    /// In the view (`None`: deleted by the agent).
    pub new: Option<String>,
}

/// One repository's changes, summarised.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The `.git` directory, relative to SOURCE.
    pub git_dir: RelPath,
    pub state: RepoState,
    /// Every change at or beneath `git_dir`.
    pub changes: Vec<Change>,
    /// The agent's commits (reachable from its refs and `HEAD`, not from SOURCE's), newest first.
    pub commits: Vec<Commit>,
    pub refs: Vec<RefMove>,
    /// `HEAD` in SOURCE and in the view (a ref name or an object id), when they differ.
    pub head: Option<(String, String)>,
    /// The object id the view's `HEAD` resolves to.
    pub head_oid: Option<String>,
    /// The object ids SOURCE's refs and `HEAD` point at: what the agent's commits are new to.
    source_tips: Vec<String>,
    /// Why the summary is incomplete, if it is.
    pub error: Option<String>,
}

/// Parses `git log --format=%H%x00%h%x00%s%x00`.
fn parse_commits(out: &[u8]) -> Vec<Commit> {
    let mut fields = out.split(|b| *b == 0).map(|f| {
        String::from_utf8_lossy(f)
            .trim_start_matches('\n')
            .to_string()
    });
    let mut commits = Vec::new();
    while let (Some(oid), Some(short), Some(subject)) =
        (fields.next(), fields.next(), fields.next())
    {
        if oid.is_empty() {
            break;
        }
        commits.push(Commit {
            oid,
            short,
            subject,
        });
    }
    commits
}

/// A path the agent's commits delete or change that the policy hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenPath {
    /// `D` (deleted), `M` (changed), or another `git diff-tree` status letter.
    pub status: char,
    /// Relative to SOURCE.
    pub path: RelPath,
}

/// What [`Repository::take_branch`] did.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The branch made in SOURCE's repository.
    pub branch: String,
    /// The commit it points at.
    pub head: String,
    /// How many of the agent's commits it holds that SOURCE had not.
    pub commits: usize,
    /// Per commit (newest first), the hidden paths it deletes or changes.
    pub hidden: Vec<(Commit, Vec<HiddenPath>)>,
}

/// Why a branch could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    #[error("{0} is not a valid branch name; give a name such as `agent/work`")]
    BadName(String),
    #[error("{repo}: {problem}")]
    Refused { repo: String, problem: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

impl Repository {
    /// Summarises the `changes` beneath the `.git` directory `git_dir`, reading the agent's
    /// history with git.
    pub fn summarize(review: &Review, git_dir: RelPath, changes: Vec<Change>) -> Repository {
        let mut repo = Repository::unread(git_dir, changes);
        if repo.state != RepoState::Deleted {
            if let Err(e) = repo.read_history(review) {
                repo.error = Some(e);
            }
        }
        repo
    }

    /// The `changes` beneath `git_dir` and what they say of the repository's state, without
    /// reading its history.
    pub fn unread(git_dir: RelPath, changes: Vec<Change>) -> Repository {
        let at_root = changes.iter().find(|c| c.path == git_dir);
        let state = match at_root.map(|c| c.op) {
            Some(Op::Add) => RepoState::New,
            Some(Op::Delete | Op::TypeChange) => RepoState::Deleted,
            _ => RepoState::Changed,
        };
        Repository {
            git_dir,
            state,
            changes,
            commits: Vec::new(),
            refs: Vec::new(),
            head: None,
            head_oid: None,
            source_tips: Vec::new(),
            error: None,
        }
    }

    /// The changes a person should look at (hooks, config).
    pub fn flagged(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.is_sensitive())
    }

    fn read_history(&mut self, review: &Review) -> Result<(), String> {
        let source = match self.state {
            RepoState::Changed => read_refs(review.source(), &self.git_dir)
                .map_err(|e| format!("cannot read its refs in SOURCE: {e}"))?,
            _ => RefFiles::default(),
        };
        let view = view_refs(
            review.overlay().upper(),
            &source,
            &self.git_dir,
            &self.changes,
        )
        .map_err(|e| format!("cannot read its refs in the overlay: {e}"))?;
        let (old, new) = (source.resolved(), view.resolved());
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        self.refs = names
            .into_iter()
            .filter(|n| old.get(*n) != new.get(*n))
            .map(|n| RefMove {
                name: n.clone(),
                old: old.get(n).cloned(),
                new: new.get(n).cloned(),
            })
            .collect();
        let (old_head, new_head) = (source.head(), view.head());
        if old_head != new_head {
            let show = |t: Option<Target>| t.map_or_else(|| "(none)".to_string(), |t| t.show());
            self.head = Some((show(old_head), show(new_head)));
        }
        self.head_oid = view.head_oid();
        let tips: BTreeSet<&String> = new.values().chain(self.head_oid.as_ref()).collect();
        if tips.is_empty() {
            return Ok(());
        }
        let known: BTreeSet<String> = old.values().cloned().chain(source.head_oid()).collect();
        self.source_tips = known.into_iter().collect();
        let scratch = Scratch::new(review, self)?;
        self.commits = self
            .new_commits(&scratch, tips.into_iter())
            .map_err(|e| format!("cannot list its commits: {e}"))?;
        Ok(())
    }

    /// The commits reachable from `tips` and from none of SOURCE's, newest first.
    fn new_commits<'a>(
        &self,
        scratch: &Scratch,
        tips: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<Commit>, GitError> {
        let mut input = Vec::new();
        for tip in tips {
            input.extend_from_slice(format!("{tip}\n").as_bytes());
        }
        for oid in &self.source_tips {
            input.extend_from_slice(format!("^{oid}\n").as_bytes());
        }
        let out = scratch
            .git(["log", "--format=%H%x00%h%x00%s%x00", "--stdin"])
            .stdin(input)
            .output()?;
        Ok(parse_commits(&out))
    }

    /// The working tree of the repository, relative to SOURCE (the `.git` directory's parent).
    fn work_tree(&self) -> RelPath {
        self.git_dir.parent().unwrap_or_default()
    }

    /// Copies the agent's new commits into SOURCE's repository as `refs/heads/BRANCH`, pointing
    /// at the view's `HEAD`, and changes nothing else there. Returns, per commit, the paths it
    /// deletes or changes that `hidden` says the policy hides. Refused before anything is
    /// written when the repository is not one SOURCE has, the branch exists, or `HEAD` resolves
    /// to nothing.
    pub fn take_branch(
        &self,
        review: &Review,
        branch: &str,
        hidden: impl Fn(&RelPath) -> bool,
    ) -> Result<Taken, BranchError> {
        let refused = |problem: String| BranchError::Refused {
            repo: quote(&self.git_dir),
            problem,
        };
        if !crate::git::valid_branch(branch) {
            return Err(BranchError::BadName(branch.to_string()));
        }
        if let Some(e) = &self.error {
            return Err(refused(format!("cannot read the agent's history: {e}")));
        }
        match self.state {
            RepoState::Changed => {}
            RepoState::New => {
                return Err(refused(
                    "SOURCE has no repository there (the agent made it); copy it from the overlay's upper/ by hand".into(),
                ));
            }
            RepoState::Deleted => {
                return Err(refused(
                    "the agent deleted the repository; there is no history to take".into(),
                ));
            }
        }
        match stat_beneath(review.source(), &self.git_dir) {
            Ok(Some(st)) if st.kind == FileType::Dir => {}
            _ => {
                return Err(refused(
                    "it is no longer a directory in SOURCE (a symlink is never followed)".into(),
                ));
            }
        }
        let Some(head) = self.head_oid.clone() else {
            return Err(refused(
                "the agent's HEAD points at no commit; nothing to make a branch of".into(),
            ));
        };
        let theirs = source_git_dir(review, &self.git_dir);
        let refname = format!("refs/heads/{branch}");
        let exists = Git::new(
            &theirs,
            ["rev-parse", "--verify", "--quiet", refname.as_str()],
        )
        .run()
        .is_ok();
        if exists {
            return Err(refused(format!(
                "branch {branch} already exists there; choose another name, or delete it first (`git branch -D {branch}`)"
            )));
        }
        let scratch = Scratch::new(review, self).map_err(refused)?;
        // The commits the branch takes: those of the view's HEAD (other refs of the agent's
        // stay behind).
        let commits = self.new_commits(&scratch, std::iter::once(&head))?;
        let hidden = hidden_paths(&scratch, &self.work_tree(), &commits, &hidden)?;
        scratch
            .git(["update-ref", "refs/scopefs/head", head.as_str()])
            .run()?;
        let spec = format!("refs/scopefs/head:{refname}");
        let from = scratch.path().as_os_str().to_os_string();
        Git::new(
            &theirs,
            [
                std::ffi::OsStr::new("fetch"),
                "--quiet".as_ref(),
                "--no-tags".as_ref(),
                "--no-write-fetch-head".as_ref(),
                "--no-recurse-submodules".as_ref(),
                "--no-auto-maintenance".as_ref(),
                from.as_os_str(),
                spec.as_ref(),
            ],
        )
        .config("transfer.fsckObjects=true")
        .config("protocol.file.allow=always")
        .run()?;
        Ok(Taken {
            branch: branch.to_string(),
            head,
            commits: commits.len(),
            hidden,
        })
    }
}

/// Per commit of `commits`, the paths (relative to SOURCE, the repository's work tree being
/// `work_tree`) it deletes or changes against its first parent that `hidden` says the policy
/// hides.
fn hidden_paths(
    scratch: &Scratch,
    work_tree: &RelPath,
    commits: &[Commit],
    hidden: &impl Fn(&RelPath) -> bool,
) -> Result<Vec<(Commit, Vec<HiddenPath>)>, BranchError> {
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let input: Vec<u8> = commits
        .iter()
        .flat_map(|c| format!("{}\n", c.oid).into_bytes())
        .collect();
    let out = scratch
        .git([
            "diff-tree",
            "--stdin",
            "-r",
            "-z",
            "--no-renames",
            "--root",
            "--name-status",
            "--diff-merges=first-parent",
        ])
        .stdin(input)
        .output()?;
    let mut found: BTreeMap<String, Vec<HiddenPath>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut tokens = out.split(|b| *b == 0);
    while let Some(token) = tokens.next() {
        let token = token.strip_prefix(b"\n").unwrap_or(token);
        match token {
            [] => {}
            [letter] => {
                let Some(path) = tokens.next() else { break };
                let status = char::from(*letter);
                if status == 'A' {
                    continue;
                }
                let Ok(rel) = RelPath::parse(path) else {
                    continue;
                };
                let path = join_rel(work_tree, &rel);
                if let (Some(oid), true) = (&current, hidden(&path)) {
                    found
                        .entry(oid.clone())
                        .or_default()
                        .push(HiddenPath { status, path });
                }
            }
            oid => current = Some(String::from_utf8_lossy(oid).to_string()),
        }
    }
    Ok(commits
        .iter()
        .filter_map(|c| Some((c.clone(), found.remove(&c.oid)?)))
        .collect())
}

/// `rel` (relative to the work tree `base`) relative to SOURCE.
fn join_rel(base: &RelPath, rel: &RelPath) -> RelPath {
    let mut out = base.clone();
    for part in rel.components() {
        if let Ok(name) = Name::new(part) {
            out.push(&name);
        }
    }
    out
}

impl fmt::Display for RepoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepoState::Changed => "changed",
            RepoState::New => "new",
            RepoState::Deleted => "deleted",
        })
    }
}

/// The repositories among `changes`, summarised, with the other changes.
pub fn repositories(review: &Review, changes: Vec<Change>) -> (Vec<Change>, Vec<Repository>) {
    let (files, repos) = split(changes);
    let repos = repos
        .into_iter()
        .map(|(dir, changes)| Repository::summarize(review, dir, changes))
        .collect();
    (files, repos)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn git_metadata_is_everything_at_or_beneath_a_dot_git_directory() {
        assert_eq!(git_dir_of(&p(".git/objects/ab/cd")), Some(p(".git")));
        assert_eq!(git_dir_of(&p("sub/.git")), Some(p("sub/.git")));
        assert_eq!(git_dir_of(&p("sub/.gitignore")), None);
        assert_eq!(
            git_dir_of(&p("a/.git/modules/x/.git/HEAD")),
            Some(p("a/.git"))
        );
        assert!(is_git_metadata(&p(".git")));
        assert!(!is_git_metadata(&p("src/git/main.rs")));
    }

    #[test]
    fn commits_parse_from_nul_separated_fields() {
        let out = b"1111\x00111\x00first line\x00\n2222\x00222\x00second\x00\n";
        let commits = parse_commits(out);
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[1].short, "222");
        assert_eq!(commits[1].subject, "second");
    }
}
