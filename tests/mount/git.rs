//! Git in an overlay view, reviewed: the agent's `git commit -a` in a view that hides a tracked
//! `.env` commits its deletion; `apply` must never carry that into the real repository, and
//! `apply --git-branch` takes the commits as a branch and says what they delete.

use std::path::Path;
use std::process::Command;

use crate::common::{Scene, scopefs};

/// Runs git in `dir` with a fixed identity and no user configuration; returns its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.com")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.com")
        .args(args)
        .output()
        .expect("run git (is it installed?)");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// SOURCE as a repository with a tracked `.env` and `app.py`, committed on `main`.
fn repository(scene: &Scene) {
    scene.file_with(".env", b"SECRET=hunter2\n");
    scene.file_with("app.py", b"print('v1')\n");
    git(&scene.src, &["init", "-q", "-b", "main"]);
    git(&scene.src, &["add", "-A"]);
    git(&scene.src, &["commit", "-q", "-m", "first"]);
}

/// What of the real repository `apply` must leave alone.
fn repo_state(src: &Path) -> (String, String, String, String) {
    (
        git(src, &["symbolic-ref", "HEAD"]),
        git(src, &["rev-parse", "HEAD"]),
        git(src, &["ls-files", "-s"]),
        git(src, &["for-each-ref"]),
    )
}

#[test]
fn an_agents_commit_never_deletes_a_hidden_tracked_file_through_apply() {
    let scene = Scene::new();
    repository(&scene);
    let before = repo_state(&scene.src);
    let ov = scene.base().join("ov");
    {
        let _view = scene.mount(&["--overlay", ov.to_str().unwrap()]);
        // The agent cannot see .env, so git reports it deleted and `commit -a` commits that.
        assert!(!scene.m(".env").exists());
        assert_eq!(git(&scene.mnt, &["status", "--short"]), " D .env\n");
        std::fs::write(scene.m("app.py"), b"print('v2')\n").unwrap();
        git(&scene.mnt, &["commit", "-q", "-a", "-m", "agent: v2"]);
        assert_eq!(
            git(&scene.mnt, &["show", "--name-status", "--format=", "HEAD"]),
            "D\t.env\nM\tapp.py\n"
        );
        // A side branch the agent leaves behind is summarised, but not taken.
        git(&scene.mnt, &["checkout", "-q", "-b", "side"]);
        std::fs::write(scene.m("notes.txt"), b"side\n").unwrap();
        git(&scene.mnt, &["add", "notes.txt"]);
        git(&scene.mnt, &["commit", "-q", "-m", "side work"]);
        git(&scene.mnt, &["checkout", "-q", "main"]);
    }
    let commit = git(&scene.src, &["rev-parse", "HEAD"]);
    assert_eq!(
        commit, before.1,
        "SOURCE's HEAD moved while the view was mounted"
    );

    // diff: one summary for the repository, never its object files.
    let out = scopefs().arg("diff").arg(&ov).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let diff = String::from_utf8(out.stdout).unwrap();
    assert!(
        diff.starts_with(
            "G .git  (repository changed: 2 new commits, 1 ref created, 1 ref moved; apply leaves it alone"
        ),
        "{diff}"
    );
    assert!(diff.contains("\n    commit "), "{diff}");
    assert!(diff.contains(" agent: v2\n"), "{diff}");
    assert!(diff.contains("\n    ref refs/heads/main moved "), "{diff}");
    assert!(diff.contains(" side work\n"), "{diff}");
    assert!(
        diff.contains("\n    ref refs/heads/side created at "),
        "{diff}"
    );
    assert!(!diff.contains(".git/objects"), "{diff}");
    assert!(diff.ends_with("\nM app.py\n"), "{diff}");

    // Default apply: the working tree change, nothing of .git.
    let out = scopefs().arg("apply").arg(&ov).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "M app.py\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left .git alone"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(scene.s("app.py")).unwrap(), b"print('v2')\n");
    assert_eq!(std::fs::read(scene.s(".env")).unwrap(), b"SECRET=hunter2\n");
    assert_eq!(repo_state(&scene.src), before);
    assert_eq!(git(&scene.src, &["status", "--short"]), " M app.py\n");

    // A dry run says what it would do, and does nothing.
    let out = scopefs()
        .args(["apply", "--dry-run", "--git-branch", "agent"])
        .arg(&ov)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("scopefs: dry run: .git: would make branch agent at the agent's HEAD, "),
        "{out:?}"
    );
    assert_eq!(repo_state(&scene.src), before);

    // --git-branch: the agent's commit becomes a branch; HEAD, index and main stay.
    let out = scopefs()
        .args(["apply", "--git-branch", "agent"])
        .arg(&ov)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: commit ")
            && stderr.contains("(agent: v2) deletes .env, hidden by the policy"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("B .git  (branch agent at ")
            && String::from_utf8_lossy(&out.stdout).ends_with(": 1 new commit)\n"),
        "{out:?}"
    );
    assert!(!stderr.contains("side work"), "{stderr}");
    let (head, head_oid, index, refs) = repo_state(&scene.src);
    assert_eq!(
        (head, head_oid, index),
        (before.0, before.1.clone(), before.2)
    );
    assert_ne!(refs, before.3);
    assert_eq!(
        git(&scene.src, &["log", "--format=%s", "agent"]),
        "agent: v2\nfirst\n"
    );
    assert_eq!(
        git(&scene.src, &["rev-parse", "agent~1"]),
        before.1,
        "the branch grows from SOURCE's commit"
    );
    assert_eq!(git(&scene.src, &["fsck", "--no-progress"]), "");
    assert!(scene.s(".env").exists());
    // Nothing else of the repository moved, and no FETCH_HEAD was written.
    assert!(!scene.s(".git/FETCH_HEAD").exists());

    // A second time: the branch exists, so nothing is written.
    let out = scopefs()
        .args(["apply", "--git-branch", "agent"])
        .arg(&ov)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("branch agent already exists"),
        "{out:?}"
    );
    // A bad name is a usage error.
    let out = scopefs()
        .args(["apply", "--git-branch", "bad..name"])
        .arg(&ov)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Runs `scopefs ARGS` and returns (success, stderr).
fn scopefs_stderr(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = scopefs().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mount_run_and_check_warn_when_history_holds_hidden_files() {
    let scene = Scene::new();
    repository(&scene);
    scene.file_with("keys/id_rsa", b"PRIVATE\n");
    scene.file_with("keys/id_rsa.pub", b"public\n");
    scene.file_with("tls/server.pem", b"CERT\n");
    git(&scene.src, &["add", "-f", "keys", "tls"]);
    git(&scene.src, &["commit", "-q", "-m", "keys"]);
    let src = scene.src.as_os_str();
    let warning = "scopefs: warning: the view hides 4 file(s) that SOURCE's git history tracks (.env, keys/id_rsa, keys/id_rsa.pub and 1 more), and shows .git";
    let (ok, stderr) = scopefs_stderr(&["check".as_ref(), src]);
    assert!(ok && stderr.contains(warning), "{stderr}");
    assert!(
        stderr.contains(
            "hide .git (`--hide .git`, or presets = [\"secrets\", \"vcs\"]) or purge them"
        ),
        "{stderr}"
    );
    let (ok, stderr) = scopefs_stderr(&[
        "run".as_ref(),
        src,
        "--".as_ref(),
        "git".as_ref(),
        "-C".as_ref(),
        scene.src.as_os_str(),
        "status".as_ref(),
    ]);
    assert!(ok && stderr.contains(warning), "{stderr}");
    {
        let out = scopefs()
            .arg("mount")
            .arg(&scene.src)
            .arg(&scene.mnt)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let _cleanup = scopefs().arg("umount").arg(&scene.mnt).output();
        assert!(out.status.success() && stderr.contains(warning), "{stderr}");
    }
    // With .git hidden, or nothing hidden tracked, there is nothing to say.
    for extra in [&["--hide", ".git"][..], &["--no-presets"][..]] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["check".as_ref()];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        args.push(src);
        let (ok, stderr) = scopefs_stderr(&args);
        assert!(ok && !stderr.contains("warning"), "{extra:?}: {stderr}");
    }
    let policy = scene.policy("[view]\npresets = [\"secrets\", \"vcs\"]\n");
    let (ok, stderr) = scopefs_stderr(&["check".as_ref(), "-c".as_ref(), policy.as_os_str(), src]);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
}
