//! How `diff` shows a repository the agent changed, and `apply --git-branch NAME`.
//!
//! `diff` prints one block per `.git` directory in place of its files, at the place the
//! directory sorts:
//!
//! ```text
//! G .git  (repository changed: 1 new commit, 1 ref moved; apply leaves it alone, apply --git-branch NAME takes the commits)
//!     commit 1a2b3c4 Remove the old parser
//!     ref refs/heads/main moved 0a1b2c3 -> 1a2b3c4
//!     M .git/hooks/pre-commit  (sensitive: exec-config)
//! ```
//!
//! With `--json` the block is one object of the array: `op` `"G"`, `kind` `"repository"`, and
//! `repository` holding `state`, `commits` (`id`, `oid`, `subject`), `refs` (`name`, `old`,
//! `new`), `head` (`old`, `new`), `changes` (how many files), `flagged` (change objects) and,
//! when the summary is incomplete, `error`.

use std::path::PathBuf;

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::overlay::changes::{Change, quote};
use crate::overlay::git::{BranchError, RepoState, Repository, is_git_metadata};
use crate::overlay::review::Review;
use crate::path::RelPath;
use crate::policy::{Kind, Overrides, Policy};

use super::diff::{json as change_json, line};

/// At most this many commits are listed per repository; the count says how many there are.
const MAX_COMMITS_SHOWN: usize = 50;

/// A line of `diff`: a change, or a repository's summary.
pub enum Entry<'a> {
    Change(&'a Change),
    Repo(&'a Repository),
}

/// The changes and repository summaries in path order (both lists are sorted).
pub fn interleave<'a>(files: &'a [Change], repos: &'a [Repository]) -> Vec<Entry<'a>> {
    let mut out = Vec::with_capacity(files.len() + repos.len());
    let mut repos = repos.iter().peekable();
    for change in files {
        while let Some(repo) = repos.next_if(|r| r.git_dir < change.path) {
            out.push(Entry::Repo(repo));
        }
        out.push(Entry::Change(change));
    }
    out.extend(repos.map(Entry::Repo));
    out
}

fn short(oid: &str) -> &str {
    oid.get(..7).unwrap_or(oid)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one-line headline of a repository.
fn headline(repo: &Repository) -> String {
    let mut parts = Vec::new();
    if repo.state != RepoState::Deleted {
        parts.push(plural(repo.commits.len(), "new commit", "new commits"));
    }
    let moved = |pred: fn(&crate::overlay::git::RefMove) -> bool| {
        repo.refs.iter().filter(|r| pred(r)).count()
    };
    let (created, deleted) = (moved(|r| r.old.is_none()), moved(|r| r.new.is_none()));
    let changed = repo.refs.len() - created - deleted;
    for (n, one, many) in [
        (created, "ref created", "refs created"),
        (changed, "ref moved", "refs moved"),
        (deleted, "ref deleted", "refs deleted"),
    ] {
        if n > 0 {
            parts.push(plural(n, one, many));
        }
    }
    let flagged = repo.flagged().count();
    if flagged > 0 {
        parts.push(format!("{flagged} flagged"));
    }
    let what = match repo.state {
        RepoState::Changed => "repository changed",
        RepoState::New => "new repository",
        RepoState::Deleted => "repository deleted",
    };
    let hint = match repo.state {
        RepoState::Changed => "apply leaves it alone, apply --git-branch NAME takes the commits",
        RepoState::New | RepoState::Deleted => "apply leaves it alone",
    };
    if parts.is_empty() {
        format!("G {}  ({what}; {hint})", quote(&repo.git_dir))
    } else {
        format!(
            "G {}  ({what}: {}; {hint})",
            quote(&repo.git_dir),
            parts.join(", ")
        )
    }
}

/// One line for a repository whose history was not read: how many of its files changed.
pub fn one_line(repo: &Repository) -> String {
    format!(
        "G {}  (repository {}: {}; `scopefs diff` summarises it)",
        quote(&repo.git_dir),
        repo.state,
        plural(repo.changes.len(), "change", "changes")
    )
}

/// The `diff` lines of `changes`, each repository's `.git` changes in one line
/// ([`one_line`], its history not read).
pub fn collapsed_lines(changes: &[Change]) -> Vec<String> {
    let (files, repos) = crate::overlay::git::split(Vec::from(changes));
    let repos: Vec<Repository> = repos
        .into_iter()
        .map(|(dir, changes)| Repository::unread(dir, changes))
        .collect();
    interleave(&files, &repos)
        .into_iter()
        .map(|entry| match entry {
            Entry::Change(change) => line(change),
            Entry::Repo(repo) => one_line(repo),
        })
        .collect()
}

/// The block `diff` prints for a repository.
pub fn text(repo: &Repository) -> String {
    let mut out = vec![headline(repo)];
    for commit in repo.commits.iter().take(MAX_COMMITS_SHOWN) {
        out.push(format!("    commit {} {}", commit.short, commit.subject));
    }
    if repo.commits.len() > MAX_COMMITS_SHOWN {
        out.push(format!(
            "    ... and {} more commits",
            repo.commits.len() - MAX_COMMITS_SHOWN
        ));
    }
    for r in &repo.refs {
        out.push(match (&r.old, &r.new) {
            (None, Some(new)) => format!("    ref {} created at {}", r.name, short(new)),
            (Some(old), None) => format!("    ref {} deleted (was {})", r.name, short(old)),
            (Some(old), Some(new)) => {
                format!("    ref {} moved {} -> {}", r.name, short(old), short(new))
            }
            (None, None) => continue,
        });
    }
    if let Some((old, new)) = &repo.head {
        out.push(format!("    HEAD {old} -> {new}"));
    }
    for change in repo.flagged() {
        out.push(format!("    {}", line(change)));
    }
    if let Some(e) = &repo.error {
        out.push(format!("    (summary incomplete: {e})"));
    }
    out.join("\n")
}

/// The JSON object `diff --json` prints for a repository.
pub fn json(repo: &Repository) -> serde_json::Value {
    let reasons: Vec<String> = {
        let mut all: Vec<String> = repo
            .flagged()
            .flat_map(|c| c.sensitive.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let mut repository = serde_json::json!({
        "state": repo.state.to_string(),
        "commits": repo.commits.iter().map(|c| serde_json::json!({
            "id": c.short, "oid": c.oid, "subject": c.subject,
        })).collect::<Vec<_>>(),
        "refs": repo.refs.iter().map(|r| serde_json::json!({
            "name": r.name, "old": r.old, "new": r.new,
        })).collect::<Vec<_>>(),
        "head": repo.head.as_ref().map(|(old, new)| serde_json::json!({"old": old, "new": new})),
        "changes": repo.changes.len(),
        "flagged": repo.flagged().map(change_json).collect::<Vec<_>>(),
    });
    if let (Some(e), Some(map)) = (&repo.error, repository.as_object_mut()) {
        map.insert("error".into(), e.clone().into());
    }
    serde_json::json!({
        "op": "G",
        "path": String::from_utf8_lossy(repo.git_dir.as_bytes()),
        "kind": "repository",
        "sensitive": !reasons.is_empty(),
        "reasons": reasons,
        "repository": repository,
    })
}

/// `apply`'s options for repositories.
#[derive(Debug, Default, Args)]
pub struct GitBranchArgs {
    /// Also copy the agent's new commits in each changed repository into SOURCE's repository as
    /// branch NAME (at the agent's HEAD), changing nothing else there. Without it, `.git/` is
    /// left alone.
    #[arg(long = "git-branch", value_name = "NAME")]
    pub git_branch: Option<String>,
    /// With --git-branch: the policy file the view was mounted with, so that the warnings name
    /// the hidden paths the agent's commits delete or change (default: the built-in policy).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        requires = "git_branch"
    )]
    pub config: Option<PathBuf>,
    /// With --git-branch: the view's --allow patterns.
    #[arg(long = "allow", value_name = "PATTERN", requires = "git_branch")]
    pub allow: Vec<String>,
    /// With --git-branch: the view's --hide patterns.
    #[arg(long = "hide", value_name = "PATTERN", requires = "git_branch")]
    pub hide: Vec<String>,
    /// With --git-branch: the view had --no-presets.
    #[arg(long = "no-presets", requires = "git_branch")]
    pub no_presets: bool,
}

/// Refuses PATHs inside `.git/`: apply never copies git metadata as files.
pub fn refuse_git_paths(paths: &[RelPath]) -> CliResult {
    match paths.iter().find(|p| is_git_metadata(p)) {
        Some(path) => Err(CliError::usage(format!(
            "PATH {} is git metadata, which apply never copies as files; use --git-branch NAME to take the agent's commits as a branch",
            quote(path)
        ))),
        None => Ok(()),
    }
}

/// Says on stderr which repositories apply left alone.
pub fn report_left_alone(repos: &[Repository]) {
    for repo in repos {
        eprintln!(
            "scopefs: left {} alone ({}); `scopefs diff` summarises it, `apply --git-branch NAME` takes its commits",
            quote(&repo.git_dir),
            plural(repo.changes.len(), "change", "changes")
        );
    }
}

/// Says on stderr which branches `apply --git-branch` would make (a dry run).
pub fn report_branches(repos: &[Repository], branch: &str) {
    for repo in repos {
        let what = match (&repo.error, repo.state) {
            (Some(e), _) => format!("cannot read the agent's history: {e}"),
            (None, RepoState::Changed) => match &repo.head_oid {
                Some(head) => format!(
                    "would make branch {branch} at the agent's HEAD, {}",
                    short(head)
                ),
                None => "the agent's HEAD points at no commit: no branch would be made".into(),
            },
            (None, state) => format!("{state} repository: no branch would be made"),
        };
        eprintln!("scopefs: dry run: {}: {what}", quote(&repo.git_dir));
    }
}

impl GitBranchArgs {
    /// Makes the branch in every repository of `repos` at or beneath the `filters` (all when
    /// there are none), warning about hidden paths. A repository refused is left untouched.
    pub fn take(&self, review: &Review, repos: &[Repository], filters: &[RelPath]) -> CliResult {
        let Some(branch) = &self.git_branch else {
            return Ok(());
        };
        let policy = Policy::from_overrides(&Overrides {
            config: self.config.clone(),
            allow: self.allow.clone(),
            hide: self.hide.clone(),
            no_presets: self.no_presets,
            ..Overrides::default()
        })
        .and_then(|p| p.compile())
        .map_err(|e| {
            CliError::usage(format!(
                "the policy given with --git-branch is invalid: {e}"
            ))
        })?;
        let hidden = |path: &RelPath| !policy.is_visible(path, Kind::NonDir);
        let chosen: Vec<&Repository> = repos
            .iter()
            .filter(|r| filters.is_empty() || filters.iter().any(|f| r.git_dir.starts_with(f)))
            .collect();
        if chosen.is_empty() {
            return Err(CliError::usage(
                "--git-branch: the overlay holds no change to a repository there; `scopefs diff` lists them",
            ));
        }
        let mut failed = 0usize;
        for repo in chosen {
            match repo.take_branch(review, branch, hidden) {
                Ok(taken) => {
                    println!(
                        "B {}  (branch {} at {}: {})",
                        quote(&repo.git_dir),
                        taken.branch,
                        short(&taken.head),
                        plural(taken.commits, "new commit", "new commits")
                    );
                    for (commit, paths) in &taken.hidden {
                        let list: Vec<String> = paths
                            .iter()
                            .map(|h| {
                                let how = if h.status == 'D' {
                                    "deletes"
                                } else {
                                    "changes"
                                };
                                format!("{how} {}", quote(&h.path))
                            })
                            .collect();
                        eprintln!(
                            "warning: commit {} ({}) {}, hidden by the policy (the agent could not see it); check the branch before merging it",
                            commit.short,
                            commit.subject,
                            list.join(", ")
                        );
                    }
                }
                Err(e @ BranchError::BadName(_)) => return Err(CliError::usage(e.to_string())),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {e}");
                }
            }
        }
        if failed > 0 {
            return Err(CliError::runtime(format!(
                "--git-branch: {failed} repository(ies) not taken (named above); nothing was written to them"
            )));
        }
        Ok(())
    }
}
