//! A private repository that holds the agent's object files and reads SOURCE's through
//! `alternates`: where git looks at the agent's history without using anything else the agent
//! wrote (its config, hooks or alternates).

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use super::super::changes::{EntryKind, Op, quote};
use super::super::review::Review;
use super::refs::child;
use super::{RepoState, Repository};
use crate::git::Git;
use crate::path::RelPath;
use crate::sys::tree::open_file_beneath;

/// A private repository that holds the agent's object files and reads SOURCE's through
/// `alternates`, removed when dropped.
pub(super) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(super) fn new(review: &Review, repo: &Repository) -> Result<Scratch, String> {
        let dir = tempfile::Builder::new()
            .prefix("scopefs-git-")
            .tempdir()
            .map_err(|e| format!("cannot make a scratch repository: {e}"))?;
        Git::new(dir.path(), ["init", "--bare", "--quiet", "--template="])
            .run()
            .map_err(|e| e.to_string())?;
        let objects = dir.path().join("objects");
        let prefix = child(&repo.git_dir, b"objects");
        for change in &repo.changes {
            if change.op == Op::Delete || change.kind != EntryKind::File {
                continue;
            }
            let Some(rest) = change
                .path
                .as_bytes()
                .strip_prefix(prefix.as_bytes())
                .and_then(|r| r.strip_prefix(b"/"))
            else {
                continue;
            };
            // The agent's alternates and other settings are never used.
            if rest.starts_with(b"info/") {
                continue;
            }
            let Ok(rel) = RelPath::parse(rest) else {
                continue;
            };
            copy_object(
                review.overlay().upper(),
                &change.path,
                &objects.join(rel.as_path()),
            )
            .map_err(|e| format!("cannot copy {} from the overlay: {e}", quote(&change.path)))?;
        }
        if repo.state == RepoState::Changed {
            let theirs = source_git_dir(review, &repo.git_dir).join("objects");
            let mut line = theirs.into_os_string().into_encoded_bytes();
            line.push(b'\n');
            std::fs::write(objects.join("info").join("alternates"), line)
                .map_err(|e| format!("cannot write the scratch repository's alternates: {e}"))?;
        }
        Ok(Scratch { dir })
    }

    pub(super) fn git<I, S>(&self, args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Git::new(self.dir.path(), args)
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn copy_object(upper: BorrowedFd<'_>, path: &RelPath, to: &Path) -> io::Result<()> {
    let mut from = open_file_beneath(upper, path)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::fs::File::create(to)?;
    io::copy(&mut from, &mut out)?;
    Ok(())
}

/// SOURCE's repository directory as a host path, for git.
pub(super) fn source_git_dir(review: &Review, git_dir: &RelPath) -> PathBuf {
    review.overlay().source().join(git_dir.as_path())
}
