//! git at work in an overlay view of a real repository: branch, edit, add, commit all succeed;
//! the changes land in the overlay (and `scopefs diff` lists them); changes to `.git/config` and
//! `.git/hooks/` are flagged for review; SOURCE's repository is untouched.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// Runs git in `dir` with an identity, failing the test on a non-zero exit; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_outcome(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}\n{}",
        dir.display(),
        out.status,
        out.stderr
    );
    out.stdout
}

fn git_outcome(dir: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn git_branch_edit_add_commit_in_an_overlay() {
    let r = Rig::new(Mode::Overlay);
    let src = r.scene.src.clone();
    git(&src, &["init", "-q", "-b", "main"]);
    r.scene.file_with("README.md", b"hello\n");
    r.scene.file_with("lib/a.rs", b"fn a() {}\n");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "init"]);
    let head = git(&src, &["rev-parse", "HEAD"]);
    let before = tree_digest(&src);
    let args = r.policy_args("", "", "");
    let m = r.mount(&args);
    let view = m.mnt().to_path_buf();
    git(&view, &["checkout", "-q", "-b", "x"]);
    fs::write(m.m("README.md"), b"hello\nchanged in the view\n").unwrap();
    git(&view, &["add", "README.md"]);
    git(&view, &["commit", "-q", "-m", "change"]);
    assert_eq!(
        git(&view, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "x"
    );
    assert_eq!(git(&view, &["rev-parse", "HEAD~1"]), head);
    assert_eq!(git(&view, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&view, &["show", "HEAD:README.md"]),
        "hello\nchanged in the view\n"
    );
    // exec-config is enforced at review time: written to the overlay, flagged by `diff`.
    fs::OpenOptions::new()
        .append(true)
        .open(m.m(".git/config"))
        .expect("append to .git/config in the overlay");
    fs::write(m.m(".git/hooks/x"), b"#!/bin/sh\n").expect("create .git/hooks/x in the overlay");
    git(&view, &["config", "core.hooksPath", "/tmp"]);
    drop(m);
    // The changes are in the overlay.
    assert_eq!(
        fs::read(r.upper("README.md")).unwrap(),
        b"hello\nchanged in the view\n"
    );
    assert_eq!(
        fs::read_to_string(r.upper(".git/HEAD")).unwrap(),
        "ref: refs/heads/x\n"
    );
    assert!(r.upper(".git/refs/heads/x").is_file());
    assert!(r.upper(".git/index").is_file());
    assert!(r.upper(".git/objects").is_dir());
    assert!(exists(&r.upper(".git/config")) && exists(&r.upper(".git/hooks/x")));
    let mut cmd = scopefs();
    cmd.arg("diff").arg(r.overlay());
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "scopefs diff: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    // The repository is one summary: its commit, the branch made and HEAD moved to it.
    for want in [
        "G .git  (repository changed: 1 new commit, 1 ref created, 2 flagged;",
        "    commit ",
        "    ref refs/heads/x created at ",
        "    HEAD refs/heads/main -> refs/heads/x",
        "M README.md",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "scopefs diff lacks {want:?}:\n{}",
            out.stdout
        );
    }
    for flagged in ["M .git/config", "A .git/hooks/x"] {
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with(flagged)
                    && l.contains("(sensitive: exec-config)")),
            "scopefs diff does not flag {flagged:?}:\n{}",
            out.stdout
        );
    }
    // SOURCE's repository did not move.
    assert_same_tree(&before, &tree_digest(&src), "git in the view");
    assert_eq!(git(&src, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(&src, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
}
