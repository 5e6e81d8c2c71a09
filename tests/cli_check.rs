//! `scopefs check` answers as `mount` would: what mount refuses besides the policy's own errors
//! (an overlay mode without an overlay directory, an overlay inside SOURCE or where others could
//! swap it, an audit log without its directory, a missing SOURCE) fails check too, saying so;
//! unanchored directory patterns in `allow` are warned about. No FUSE needed: mount refuses
//! these before it opens the device.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn scopefs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scopefs"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory with `src/` (SOURCE, one file), `mnt/` (empty) and `p.toml`.
struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    fn new(policy: &str) -> Stage {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/a.txt"), "a\n").unwrap();
        fs::create_dir(dir.path().join("mnt")).unwrap();
        fs::write(dir.path().join("p.toml"), policy).unwrap();
        Stage { dir }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn check(&self, extra: &[&str]) -> Output {
        scopefs()
            .arg("check")
            .arg("-c")
            .arg(self.path("p.toml"))
            .args(extra)
            .arg(self.path("src"))
            .output()
            .unwrap()
    }

    fn mount(&self, extra: &[&str]) -> Output {
        scopefs()
            .arg("mount")
            .arg("-c")
            .arg(self.path("p.toml"))
            .args(extra)
            .arg(self.path("src"))
            .arg(self.path("mnt"))
            .output()
            .unwrap()
    }
}

/// check and mount fail alike, exit 2, with `needle` in the line each prints.
fn both_refuse(stage: &Stage, extra: &[&str], needle: &str) {
    let check = stage.check(extra);
    let mount = stage.mount(extra);
    assert_eq!(check.status.code(), Some(2), "check: {}", stderr(&check));
    assert_eq!(mount.status.code(), Some(2), "mount: {}", stderr(&mount));
    assert!(stderr(&check).contains(needle), "check: {}", stderr(&check));
    assert!(stderr(&mount).contains(needle), "mount: {}", stderr(&mount));
    assert!(!stdout(&check).contains("ok:"), "check: {}", stdout(&check));
    assert!(
        fs::read_dir(stage.path("mnt")).unwrap().next().is_none(),
        "nothing was mounted or made"
    );
}

#[test]
fn overlay_mode_without_an_overlay_fails_check_as_it_fails_mount() {
    let stage = Stage::new("[writes]\nmode = \"overlay\"\n");
    both_refuse(&stage, &[], "needs an overlay directory");
    // The line says where it does work.
    let out = stage.check(&[]);
    assert!(
        stderr(&out).contains("only `scopefs run` makes a temporary one"),
        "{}",
        stderr(&out)
    );
    // With an overlay, check passes and names it.
    let overlay = stage.path("overlay");
    let out = stage.check(&["--overlay", overlay.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("writes -> overlay {}", overlay.display())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_coding_agent_example_needs_an_overlay_for_check_as_for_mount() {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/coding-agent.toml");
    let stage = Stage::new(&fs::read_to_string(policy).unwrap());
    both_refuse(&stage, &[], "needs an overlay directory");
}

#[test]
fn an_overlay_inside_source_fails_check_as_it_fails_mount() {
    let stage = Stage::new("[writes]\nmode = \"overlay\"\noverlay = \"src/ov\"\n");
    both_refuse(&stage, &[], "lies inside SOURCE");
}

#[test]
fn an_overlay_others_could_swap_fails_check() {
    let stage = Stage::new("");
    let open = stage.path("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let out = stage.check(&["--overlay", open.join("ov").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could rename it and put another in its place"),
        "{}",
        stderr(&out)
    );
    assert!(!open.join("ov").exists(), "check made nothing");
}

#[test]
fn an_audit_log_without_its_directory_fails_check() {
    let stage = Stage::new("");
    let log = stage.path("no/such/dir/audit.log");
    let out = stage.check(&["--audit-log", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its directory") && stderr(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_source_is_named_as_the_problem_not_the_policy() {
    let out = scopefs()
        .args(["check", "/nonexistent-scopefs-source"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("SOURCE /nonexistent-scopefs-source does not exist: check the path"),
        "{err}"
    );
    assert!(
        err.contains("scopefs: 1 problem (listed above); fix it and run check again"),
        "{err}"
    );
    assert!(!err.contains("in built-in default"), "{err}");
}

#[test]
fn unanchored_directory_patterns_in_allow_are_warned_about() {
    let stage = Stage::new("[view]\nallow = [\"src/\", \"/tests/\", \"docs/api/\", \"*.md\"]\n");
    let out = stage.check(&[]);
    let err = stderr(&out);
    assert!(out.status.success(), "a warning does not fail check: {err}");
    let file = stage.path("p.toml");
    assert!(
        err.contains(&format!(
            "{}:2:10: warning: \"src/\" matches a directory named \"src\" at any depth",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("write \"/src/\" for the top-level one only"),
        "{err}"
    );
    assert_eq!(
        err.matches("warning:").count(),
        1,
        "only src/ is unanchored: {err}"
    );
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    // Flags are judged too, and so is the example README shows.
    let out = scopefs()
        .args(["check", "--allow", "build/"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("--allow \"build/\": warning: \"build/\" matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_examples_allow_lists_are_anchored() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for policy in [
        "policy.toml",
        "policies/read-only-analyst.toml",
        "policies/ci-harness.toml",
    ] {
        let out = scopefs()
            .arg("check")
            .arg("-c")
            .arg(examples.join(policy))
            .output()
            .unwrap();
        assert!(out.status.success(), "{policy}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("warning"),
            "{policy}: {}",
            stderr(&out)
        );
    }
}
