//! The scripts README names, run as a newcomer runs them: `scripts/install.sh PREFIX` gives a
//! working `scopefs`, manual pages `man` renders and shell completions; `scripts/demo.sh`
//! builds where `CARGO_TARGET_DIR` says and shows the view; `scripts/test.sh --help` prints the
//! script's own usage.
//!
//! The scripts build with cargo. So as not to build scopefs a second time, nor wait on the
//! lock of the `cargo test` that runs these tests, they get a target directory of their own: a
//! copy of this build's profile directory made of hard links, shared by the tests. `cargo build`
//! finds it up to date when `cargo build --bin scopefs` ran before the tests, as
//! `scripts/test.sh` does (`cargo test` builds the binary under another profile); otherwise the
//! first script to build compiles scopefs there once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use common::{BIN, mountinfo};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A temporary target directory whose profile directory (`debug/`) holds hard links to this
/// build's, so that `cargo build` there has nothing to do. Left out: the build lock (held by
/// the `cargo test` running us) and the incremental caches (only a rebuild would read them).
struct Target {
    root: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        let profile = Path::new(BIN).parent().unwrap();
        let root = tempfile::Builder::new()
            .prefix("scopefs-target-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let copy = root.path().join(profile.file_name().unwrap());
        fs::create_dir(&copy).unwrap();
        for entry in fs::read_dir(profile).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == ".cargo-lock" || name == "incremental" {
                continue;
            }
            let out = Command::new("cp")
                .arg("-al")
                .arg(entry.path())
                .arg(&copy)
                .output()
                .unwrap();
            assert!(out.status.success(), "cp -al: {}", describe(&out));
        }
        Target { root }
    }

    fn dir(&self) -> &Path {
        self.root.path()
    }
}

/// The target directory the tests running at the same time share; removed when the last of
/// them is done with it.
fn target() -> Arc<Target> {
    static TARGET: Mutex<Weak<Target>> = Mutex::new(Weak::new());
    let mut shared = TARGET.lock().unwrap();
    if let Some(target) = shared.upgrade() {
        return target;
    }
    let target = Arc::new(Target::new());
    *shared = Arc::downgrade(&target);
    target
}

#[test]
fn install_gives_a_working_binary_man_pages_and_completions() {
    let target = target();
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path().join("usr");
    let out = Command::new(repo().join("scripts/install.sh"))
        .arg("--debug")
        .arg(&prefix)
        .env("CARGO_TARGET_DIR", target.dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", describe(&out));
    assert!(
        text(&out.stdout).contains(&format!("installed {}/bin/scopefs", prefix.display())),
        "{}",
        describe(&out)
    );

    // The binary works: its version, and a verdict on the sample project.
    let scopefs = prefix.join("bin/scopefs");
    let out = Command::new(&scopefs).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("scopefs {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(&scopefs)
        .arg("explain")
        .arg(repo().join("examples/sample-project"))
        .arg(".env")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        ".env: hidden (preset secrets: \".env\")"
    );

    // Every page renders with man, and man finds the pages by name under the prefix.
    let man1 = prefix.join("share/man/man1");
    let mut pages: Vec<String> = fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for sub in [
        "scopefs.1",
        "scopefs-mount.1",
        "scopefs-run.1",
        "scopefs-umount.1",
        "scopefs-check.1",
        "scopefs-explain.1",
        "scopefs-diff.1",
        "scopefs-apply.1",
        "scopefs-discard.1",
        "scopefs-status.1",
        "scopefs-reload.1",
    ] {
        assert!(pages.iter().any(|p| p == sub), "{sub} missing: {pages:?}");
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(man1.join(page))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let rendered = text(&out.stdout);
        assert!(out.status.success(), "man -l {page}: {}", describe(&out));
        assert!(
            rendered.contains("NAME") && rendered.contains("SYNOPSIS"),
            "man -l {page} rendered:\n{rendered}"
        );
        assert!(
            !text(&out.stderr).contains("warning"),
            "man -l {page}: {}",
            describe(&out)
        );
    }
    let policy = prefix.join("share/man/man5/scopefs-policy.5");
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "man -l scopefs-policy.5: {}",
        describe(&out)
    );
    assert!(
        text(&out.stdout).contains("EVERY KEY"),
        "{}",
        describe(&out)
    );
    let out = Command::new("man")
        .args(["-P", "cat", "-M"])
        .arg(prefix.join("share/man"))
        .arg("scopefs-run")
        .output()
        .unwrap();
    assert!(out.status.success(), "man scopefs-run: {}", describe(&out));
    assert!(
        text(&out.stdout).contains("--in-place"),
        "{}",
        describe(&out)
    );

    // bash loads the completion script and completes subcommands with it.
    let bash = prefix.join("share/bash-completion/completions/scopefs");
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$1\" && complete -p scopefs && COMP_WORDS=(scopefs mo) COMP_CWORD=1 \
             COMP_LINE='scopefs mo' COMP_POINT=10 && _scopefs scopefs mo scopefs && \
             printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg("bash")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash completion: {}", describe(&out));
    let lines = text(&out.stdout);
    assert!(
        lines.lines().any(|l| l == "mount"),
        "completing `scopefs mo` offers mount: {}",
        describe(&out)
    );
    for (path, needle) in [
        ("share/zsh/site-functions/_scopefs", "#compdef scopefs"),
        (
            "share/fish/vendor_completions.d/scopefs.fish",
            "complete -c scopefs",
        ),
    ] {
        let script = fs::read_to_string(prefix.join(path)).unwrap();
        assert!(script.contains(needle), "{path}:\n{script}");
    }
}

#[test]
fn install_refuses_an_unknown_option_and_names_it() {
    let out = Command::new(repo().join("scripts/install.sh"))
        .arg("--prefx=/tmp/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("unknown option '--prefx=/tmp/x'"),
        "{}",
        describe(&out)
    );
}

#[test]
fn demo_builds_in_cargo_target_dir_and_shows_the_view() {
    common::require_fuse();
    let target = target();
    let out = Command::new(repo().join("scripts/demo.sh"))
        .env("CARGO_TARGET_DIR", target.dir())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo.sh: {}", describe(&out));
    let built = target.dir().join("debug/scopefs");
    assert!(
        stdout.contains(&format!("== built {}", built.display())),
        "{}",
        describe(&out)
    );
    for line in [
        "cat .env: No such file or directory",
        "cat deploy/id_ed25519: No such file or directory",
        "touch src/new.rs: Read-only file system",
        ".env: hidden (preset secrets: \".env\")",
    ] {
        assert!(stdout.contains(line), "no {line:?}: {}", describe(&out));
    }
    // It unmounted what it mounted and removed its mountpoint.
    let mountpoint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("unmounted "))
        .unwrap_or_else(|| panic!("no `unmounted` line: {}", describe(&out)));
    assert!(!Path::new(mountpoint).exists(), "{mountpoint} left behind");
    assert!(
        !mountinfo()
            .iter()
            .any(|m| m.mount_point == Path::new(mountpoint)),
        "{mountpoint} still mounted"
    );
}

#[test]
fn test_sh_help_prints_its_own_usage() {
    let out = Command::new(repo().join("scripts/test.sh"))
        .arg("--help")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout.starts_with("usage: scripts/test.sh"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("--test mount"), "{}", describe(&out));
    // Not cargo's help, which it printed before.
    assert!(
        !stdout.contains("Execute all unit and integration tests"),
        "{}",
        describe(&out)
    );
}
