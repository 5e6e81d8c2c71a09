//! `scopefs diff`, `apply` and `discard` through the binary, on overlay directories built by hand
//! in the format of SPEC §4 (with the library recording provenance as the file system would).
//! No FUSE needed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use scopefs::overlay::{LowerState, Overlay};
use scopefs::path::RelPath;
use tempfile::TempDir;

fn scopefs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scopefs"))
}

struct Fx {
    tmp: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("src")).unwrap();
        drop(Overlay::open_for_mount(&tmp.path().join("ov"), &tmp.path().join("src")).unwrap());
        Fx { tmp }
    }
    fn src(&self) -> PathBuf {
        self.tmp.path().join("src")
    }
    fn ov(&self) -> PathBuf {
        self.tmp.path().join("ov")
    }
    fn upper(&self) -> PathBuf {
        self.ov().join("upper")
    }
    /// Records SOURCE's current state at each path, as the file system does on first touch.
    fn touch(&self, paths: &[&str]) {
        let ov = Overlay::open_for_mount(&self.ov(), &self.src()).unwrap();
        let root = scopefs::sys::open_root(&self.src()).unwrap();
        for p in paths {
            let rel = RelPath::parse(p.as_bytes()).unwrap();
            let st = scopefs::sys::tree::stat_beneath(root.as_fd(), &rel).unwrap();
            ov.record_origin(&rel, LowerState::of(st.as_ref())).unwrap();
        }
    }
    fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        let mut cmd = scopefs();
        cmd.arg(args[0]).arg(self.ov()).args(&args[1..]);
        cmd.assert()
    }
    fn diff(&self) -> String {
        let out = self.run(&["diff"]).success().get_output().stdout.clone();
        String::from_utf8(out).unwrap()
    }
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// SOURCE with a.txt, old.txt, link -> x, dir/f; the overlay modifies a.txt, adds notes.txt and
/// .git/config, deletes old.txt, replaces the symlink by a file, and modifies dir/f.
fn standard() -> Fx {
    let fx = Fx::new();
    let (src, up) = (fx.src(), fx.upper());
    write(&src, "a.txt", b"one\ntwo\nthree\n");
    write(&src, "old.txt", b"bye\n");
    write(&src, "dir/f", b"f0\n");
    write(&src, "same.txt", b"same\n");
    symlink("x", src.join("link")).unwrap();
    fx.touch(&[
        "a.txt",
        "old.txt",
        "link",
        "notes.txt",
        ".git",
        ".git/config",
        "dir",
        "dir/f",
    ]);
    write(&up, "a.txt", b"one\nTWO\nthree\n");
    write(&up, "notes.txt", b"new notes\n");
    write(&up, ".wh.old.txt", b"");
    write(&up, "link", b"now a file\n");
    write(&up, ".git/config", b"[core]\n");
    write(&up, "dir/f", b"f1\n");
    write(&up, "same.txt", b"same\n");
    fx
}

const STANDARD_DIFF: &str =
    "G .git  (new repository: 0 new commits, 1 flagged; apply leaves it alone)
    A .git/config  (sensitive: exec-config)
M a.txt
M dir/f
T link
A notes.txt
D old.txt
";

/// What `apply` of the standard overlay prints: every change but those beneath `.git/`.
const STANDARD_APPLIED: &str = "M a.txt
M dir/f
T link
A notes.txt
D old.txt
";

#[test]
fn diff_lists_changes_sorted_with_sensitive_flags() {
    let fx = standard();
    assert_eq!(fx.diff(), STANDARD_DIFF);
}

/// SPEC §4's flags beyond exec-config: a name a view hides (the agent's own `.pem`), an
/// executable file added, a symlink.
#[test]
fn diff_flags_hidden_names_executables_and_symlinks() {
    let fx = Fx::new();
    let up = fx.upper();
    write(&up, "certs/cacert.pem", b"CERT\n");
    write(&up, "run.sh", b"#!/bin/sh\n");
    fs::set_permissions(up.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("/usr/bin/python3", up.join("python")).unwrap();
    assert_eq!(
        fx.diff(),
        "A certs\n\
         A certs/cacert.pem  (sensitive: hidden-name)\n\
         A python  (sensitive: symlink)\n\
         A run.sh  (sensitive: executable)\n"
    );
}

#[test]
fn diff_json_is_an_array_of_changes() {
    let fx = standard();
    let out = fx
        .run(&["diff", "--json"])
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 6);
    let repo = items.iter().find(|i| i["path"] == ".git").unwrap();
    assert_eq!(
        (&repo["op"], &repo["kind"], &repo["sensitive"]),
        (&"G".into(), &"repository".into(), &true.into())
    );
    assert_eq!(repo["repository"]["state"], "new");
    assert_eq!(repo["repository"]["changes"], 2);
    let flagged = repo["repository"]["flagged"].as_array().unwrap();
    let config = flagged.iter().find(|i| i["path"] == ".git/config").unwrap();
    assert_eq!(config["op"], "A");
    assert_eq!(config["kind"], "file");
    assert_eq!(config["sensitive"], true);
    let old = items.iter().find(|i| i["path"] == "old.txt").unwrap();
    assert_eq!(
        (old["op"].as_str(), old["sensitive"].as_bool()),
        (Some("D"), Some(false))
    );
    let link = items.iter().find(|i| i["path"] == "link").unwrap();
    assert_eq!(link["op"], "T");
}

#[test]
fn diff_json_keeps_non_utf8_paths_exact() {
    let fx = Fx::new();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(fx.upper().join(name), b"x").unwrap();
    let out = fx
        .run(&["diff", "--json"])
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let bytes: Vec<u8> = v[0]["path_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, b"caf\xe9.txt");
    fx.run(&["diff"]).success().stdout("A \"caf\\351.txt\"\n");
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn diff_patch_shows_unified_diffs() {
    let fx = standard();
    write(&fx.upper(), "blob.bin", b"\x00\x01\x02");
    let out = fx
        .run(&["diff", "--patch"])
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(
            "M a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
        ),
        "{out}"
    );
    assert!(out.contains("--- /dev/null\n+++ b/notes.txt\n"), "{out}");
    assert!(out.contains("--- a/old.txt\n+++ /dev/null\n"), "{out}");
    assert!(
        out.contains("Binary files /dev/null and b/blob.bin differ"),
        "{out}"
    );
}

#[test]
fn apply_all_copies_every_change_and_empties_the_overlay() {
    let fx = standard();
    fs::set_permissions(
        fx.upper().join("notes.txt"),
        fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    fx.run(&["apply"])
        .success()
        .stdout(STANDARD_APPLIED.replace("A notes.txt\n", "A notes.txt  (sensitive: executable)\n"))
        .stderr(predicate::str::contains(
            "left .git alone (2 changes); `scopefs diff` summarises it",
        ));
    let src = fx.src();
    assert_eq!(fs::read(src.join("a.txt")).unwrap(), b"one\nTWO\nthree\n");
    assert_eq!(fs::read(src.join("notes.txt")).unwrap(), b"new notes\n");
    assert_eq!(
        fs::metadata(src.join("notes.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    // Git metadata stays in the overlay, never copied as files.
    assert!(!src.join(".git").exists());
    assert_eq!(fs::read(src.join("link")).unwrap(), b"now a file\n");
    assert_eq!(fs::read(src.join("dir/f")).unwrap(), b"f1\n");
    assert!(!src.join("old.txt").exists());
    let left: Vec<_> = fs::read_dir(fx.upper())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [".git"]);
    assert_eq!(
        fx.diff(),
        "G .git  (new repository: 0 new commits, 1 flagged; apply leaves it alone)\n    A .git/config  (sensitive: exec-config)\n"
    );
    // No temporary file is left behind in SOURCE.
    let names: Vec<_> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".scopefs")),
        "{names:?}"
    );
}

/// exec-config is enforced at review time: `apply` leaves a protected change out, says so and
/// keeps it in the overlay, until it is named or `--include-protected` is given. (`.git/` is
/// never applied as files at all: see the git tests.)
#[test]
fn apply_leaves_protected_changes_out_unless_named_or_included() {
    let fx = standard();
    let workflow = ".github/workflows/ci.yml";
    fx.touch(&[".github", ".github/workflows", workflow]);
    write(&fx.upper(), workflow, b"on: push\n");
    let line = "A .github/workflows/ci.yml  (sensitive: exec-config)";
    fx.run(&["apply"])
        .success()
        .stdout(predicate::str::contains("workflows").not())
        .stdout(predicate::str::contains("M a.txt"))
        .stderr(predicate::str::contains(format!("left out: {line}")))
        .stderr(predicate::str::contains("--include-protected"));
    assert!(!fx.src().join(workflow).exists());
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\nTWO\nthree\n"
    );
    assert!(fx.diff().contains(line), "{}", fx.diff());
    // Named, it goes ahead.
    fx.run(&["apply", workflow])
        .success()
        .stdout(predicate::str::contains(line));
    assert_eq!(fs::read(fx.src().join(workflow)).unwrap(), b"on: push\n");
    assert!(!fx.diff().contains("workflows"), "{}", fx.diff());
    // And with --include-protected, without naming it.
    let fx = standard();
    fx.touch(&[".github", ".github/workflows", workflow]);
    write(&fx.upper(), workflow, b"on: push\n");
    fx.run(&["apply", "--include-protected"])
        .success()
        .stdout(predicate::str::contains(line));
    assert_eq!(fs::read(fx.src().join(workflow)).unwrap(), b"on: push\n");
}

#[test]
fn apply_with_paths_applies_only_those() {
    let fx = standard();
    fx.run(&["apply", "a.txt", ".git/config"])
        .code(2)
        .stderr(predicate::str::contains(
            "PATH .git/config is git metadata, which apply never copies as files; use --git-branch NAME",
        ));
    fx.run(&["apply", "a.txt"]).success().stdout("M a.txt\n");
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\nTWO\nthree\n"
    );
    assert!(fx.src().join("old.txt").exists());
    assert!(
        fx.diff()
            .ends_with("exec-config)\nM dir/f\nT link\nA notes.txt\nD old.txt\n"),
        "{}",
        fx.diff()
    );
    assert!(!fx.upper().join("a.txt").exists());
    let origins = fs::read_to_string(fx.ov().join("origins")).unwrap();
    assert!(
        !origins.contains("a.txt") && origins.contains("old.txt"),
        "{origins}"
    );
    // A new file inside a new directory brings the directory along.
    write(&fx.upper(), "newdir/sub/x", b"x");
    fx.run(&["apply", "newdir/sub/x"]).success();
    assert_eq!(fs::read(fx.src().join("newdir/sub/x")).unwrap(), b"x");
    fx.run(&["apply", "nothing/here"])
        .code(2)
        .stderr(predicate::str::contains("PATH nothing/here has no change"));
    fx.run(&["apply", "/etc"]).code(2);
}

#[test]
fn dry_run_changes_nothing() {
    let fx = standard();
    let before = fx.diff();
    fx.run(&["apply", "--dry-run"])
        .success()
        .stdout(STANDARD_APPLIED)
        .stderr(predicate::str::contains("dry run"));
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\ntwo\nthree\n"
    );
    assert!(fx.src().join("old.txt").exists());
    assert_eq!(fx.diff(), before);
}

#[test]
fn conflicts_refuse_everything_unless_forced() {
    let fx = standard();
    // SOURCE changes after the overlay copied a.txt and deleted old.txt.
    std::thread::sleep(std::time::Duration::from_millis(10));
    write(&fx.src(), "a.txt", b"changed in source\n");
    write(&fx.src(), "old.txt", b"edited too\n");
    fx.run(&["apply"])
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains(
            "conflict: a.txt: SOURCE changed since the overlay copied it",
        ))
        .stderr(predicate::str::contains(
            "conflict: old.txt: SOURCE changed since the overlay copied it",
        ))
        .stderr(predicate::str::contains("nothing was applied"));
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"changed in source\n"
    );
    assert!(!fx.src().join("notes.txt").exists());
    assert_eq!(fx.diff(), STANDARD_DIFF);
    // Only the conflicting path: still refused. Another path: fine.
    fx.run(&["apply", "a.txt"]).code(3);
    fx.run(&["apply", "notes.txt"]).success();
    fx.run(&["apply", "--force"]).success();
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\nTWO\nthree\n"
    );
    assert!(!fx.src().join("old.txt").exists());
}

/// An edit in SOURCE that keeps the size (a changed letter) is a conflict too: the overlay
/// recorded the inode, size and modification time it copied.
#[test]
fn a_same_size_edit_in_source_is_a_conflict() {
    let fx = standard();
    // The same length, edited in place (same inode), as an editor saving over it does; the
    // modification time is set apart explicitly so the test does not depend on the clock's
    // granularity.
    fs::write(fx.src().join("a.txt"), b"one\ntwo\nthreE\n").unwrap();
    let file = fs::File::options()
        .write(true)
        .open(fx.src().join("a.txt"))
        .unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000),
    )
    .unwrap();
    drop(file);
    fx.run(&["apply", "a.txt"])
        .code(3)
        .stderr(predicate::str::contains(
            "conflict: a.txt: SOURCE changed since the overlay copied it",
        ));
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\ntwo\nthreE\n"
    );
    // Its other changes still apply.
    fx.run(&["apply", "notes.txt"]).success();
}

/// Records of entries SOURCE does not have are not flushed one by one, so a crash may lose
/// them; an addition without its record is judged as if it were recorded absent.
#[test]
fn an_addition_without_a_record_applies_only_where_source_has_nothing() {
    let fx = Fx::new();
    write(&fx.upper(), "new/a.txt", b"from the view\n");
    write(&fx.upper(), "new/b.txt", b"from the view\n");
    assert!(
        !fs::read_to_string(fx.ov().join("origins"))
            .unwrap()
            .contains("new")
    );
    // SOURCE gained b.txt meanwhile: a conflict, as a record of its absence would give;
    // a.txt alone is fine.
    write(&fx.src(), "new/b.txt", b"made in SOURCE\n");
    fx.run(&["apply"]).code(3).stderr(predicate::str::contains(
        "conflict: new/b.txt: the overlay has no record",
    ));
    fx.run(&["apply", "new/a.txt"]).success();
    assert_eq!(
        fs::read(fx.src().join("new/a.txt")).unwrap(),
        b"from the view\n"
    );
    assert_eq!(
        fs::read(fx.src().join("new/b.txt")).unwrap(),
        b"made in SOURCE\n"
    );
}

#[test]
fn deleting_a_directory_never_takes_unseen_entries_without_force() {
    let fx = Fx::new();
    write(&fx.src(), "d/seen", b"x");
    fx.touch(&["d", "d/seen"]);
    write(&fx.upper(), ".wh.d", b"");
    // Something the view never showed (or added later) lives in the directory.
    write(&fx.src(), "d/.env", b"SECRET=1");
    fx.run(&["apply"]).code(3).stderr(predicate::str::contains(
        "conflict: d/.env: the overlay has no record",
    ));
    assert!(fx.src().join("d/.env").exists());
    fx.run(&["apply", "--force"]).success().stdout("D d\n");
    assert!(!fx.src().join("d").exists());
}

#[test]
fn apply_and_discard_refuse_while_mounted() {
    let fx = standard();
    let held = Overlay::open_for_mount(&fx.ov(), &fx.src()).unwrap();
    for cmd in ["apply", "discard"] {
        fx.run(&[cmd])
            .code(2)
            .stderr(predicate::str::contains("in use by a live mount (pid "));
    }
    // diff only reads and works meanwhile.
    assert_eq!(fx.diff(), STANDARD_DIFF);
    drop(held);
    fx.run(&["apply", "--dry-run"]).success();
}

#[test]
fn discard_drops_paths_or_everything() {
    let fx = standard();
    fx.run(&["discard", "a.txt", "old.txt"])
        .success()
        .stdout("discarded M a.txt\ndiscarded D old.txt\n");
    assert_eq!(
        fx.diff(),
        "G .git  (new repository: 0 new commits, 1 flagged; apply leaves it alone)\n    A .git/config  (sensitive: exec-config)\nM dir/f\nT link\nA notes.txt\n"
    );
    assert!(!fx.upper().join(".wh.old.txt").exists());
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\ntwo\nthree\n"
    );
    let origins = fs::read_to_string(fx.ov().join("origins")).unwrap();
    assert!(
        !origins.contains("a.txt") && origins.contains("notes.txt"),
        "{origins}"
    );
    fx.run(&["discard"]).success();
    assert_eq!(fx.diff(), "");
    assert_eq!(fs::read_dir(fx.upper()).unwrap().count(), 0);
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\ntwo\nthree\n"
    );
}

#[test]
fn discard_reveals_one_entry_of_an_opaque_directory() {
    let fx = Fx::new();
    write(&fx.src(), "d/a", b"a");
    write(&fx.src(), "d/b", b"b");
    write(&fx.src(), "d/c", b"c");
    fx.touch(&["d", "d/a", "d/b", "d/c"]);
    write(&fx.upper(), "d/.wh..wh..opq", b"");
    write(&fx.upper(), "d/c", b"new c");
    assert_eq!(fx.diff(), "D d/a\nD d/b\nM d/c\n");
    fx.run(&["discard", "d/a"])
        .success()
        .stdout("discarded D d/a\n");
    assert_eq!(fx.diff(), "D d/b\nM d/c\n");
    fx.run(&["apply"]).success().stdout("D d/b\nM d/c\n");
    assert!(fx.src().join("d/a").exists() && !fx.src().join("d/b").exists());
    assert_eq!(fs::read_dir(fx.upper()).unwrap().count(), 0);
}

#[test]
fn apply_never_follows_a_symlink_in_source() {
    let fx = standard();
    let outside = fx.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("f"), b"outside\n").unwrap();
    // SOURCE/dir is swapped for a symlink to a directory outside SOURCE.
    fs::remove_dir_all(fx.src().join("dir")).unwrap();
    symlink(&outside, fx.src().join("dir")).unwrap();
    for args in [
        &["apply"][..],
        &["apply", "--force"],
        &["apply", "dir/f", "--force"],
    ] {
        fx.run(args)
            .code(1)
            .stderr(predicate::str::contains("is a symlink in SOURCE"))
            .stderr(predicate::str::contains("nothing was applied"));
    }
    assert_eq!(fs::read(outside.join("f")).unwrap(), b"outside\n");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(
        fs::read(fx.src().join("a.txt")).unwrap(),
        b"one\ntwo\nthree\n"
    );
}

#[test]
fn review_commands_refuse_what_is_not_an_overlay() {
    let tmp = tempfile::tempdir().unwrap();
    scopefs()
        .args(["diff"])
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a scopefs overlay"));
    let fx = standard();
    fs::remove_dir_all(fx.src()).unwrap();
    fx.run(&["apply"])
        .code(2)
        .stderr(predicate::str::contains("SOURCE"));
}
