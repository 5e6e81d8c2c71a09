//! `scopefs check` and `scopefs explain` through the binary: exit codes, every policy error with
//! file:line:column, and verdicts that name their rule. No FUSE needed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

fn scopefs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scopefs"))
}

/// A temporary directory holding `p.toml` with `text`; returns the directory and the file.
fn policy(text: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    fs::write(&path, text).unwrap();
    (dir, path)
}

/// Runs `scopefs check -c FILE` on `text`, expects exit 2 and returns stderr.
fn check_fails(text: &str) -> (String, PathBuf, TempDir) {
    let (dir, path) = policy(text);
    let out = scopefs()
        .arg("check")
        .arg("-c")
        .arg(&path)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(out.stdout.is_empty(), "{out:?}");
    (String::from_utf8_lossy(&out.stderr).into_owned(), path, dir)
}

/// A SOURCE tree: `files` are created with parent directories (a trailing `/` makes a directory).
fn source(files: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        if file.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "x\n").unwrap();
        }
    }
    dir
}

fn explain(src: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    scopefs().arg("explain").args(args).arg(src).assert()
}

fn explain_paths(src: &Path, policy: &[&str], paths: &[&str]) -> String {
    let out = scopefs()
        .arg("explain")
        .args(policy)
        .arg(src)
        .args(paths)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- check ----------------------------------------------------------------------------------

#[test]
fn check_accepts_the_spec_example() {
    let (_dir, path) = policy(
        r#"
[view]
allow    = ["**"]
hide     = ["*.log"]
presets  = ["secrets"]
symlinks = "contain"
hardlinks = "hide"

[writes]
mode     = "overlay"
overlay  = "agent-overlay"
writable = ["src/", "tests/"]
protect  = ["exec-config"]

[limits]
overlay_bytes = "2 GiB"
overlay_files = 100000

[audit]
log    = "audit.jsonl"
events = "denied"
"#,
    );
    scopefs()
        .arg("check")
        .arg("-c")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "ok: {}",
            path.display()
        )))
        .stderr(predicate::str::is_empty());
}

#[test]
fn check_accepts_the_builtin_default_and_write_modes() {
    scopefs()
        .arg("check")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("ok: built-in default"));
    // Overlay mode needs its directory, as mount does (tests/cli_check.rs).
    for mode in ["deny", "overlay\"\noverlay = \"ov", "direct"] {
        let (_dir, path) = policy(&format!("[writes]\nmode = \"{mode}\"\n"));
        scopefs()
            .arg("check")
            .arg("-c")
            .arg(&path)
            .assert()
            .success();
    }
}

#[test]
fn check_with_source() {
    let src = source(&["a.txt"]);
    scopefs().arg("check").arg(src.path()).assert().success();
    scopefs()
        .arg("check")
        .arg(src.path().join("nope"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "SOURCE {} does not exist: check the path",
            src.path().join("nope").display()
        )))
        .stderr(predicate::str::contains("built-in default").not());
    scopefs()
        .arg("check")
        .arg(src.path().join("a.txt"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a directory"));
}

#[test]
fn check_reports_malformed_toml_with_position() {
    let (stderr, path, _dir) = check_fails("[view]\nhide = [\"*.log\"\nallow = [\"**\"]\n");
    let want = format!("{}:3:1: invalid TOML", path.display());
    assert!(stderr.contains(&want), "{stderr}");
}

#[test]
fn check_reports_wrong_type() {
    let (stderr, path, _dir) = check_fails("[view]\nhide = \"*.log\"\n");
    let want = format!(
        "{}:2:8: `view.hide` must be a list of strings; found the string \"*.log\"; write hide = [\"*.log\"]",
        path.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    let (stderr, path, _dir) = check_fails("[limits]\noverlay_files = \"many\"\n");
    assert!(
        stderr.contains(&format!(
            "{}:2:17: `limits.overlay_files` must be a whole number",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_reports_unknown_keys() {
    let (stderr, path, _dir) = check_fails("[view]\nallow = [\"**\"]\nshow = [\"x\"]\n[mount]\n");
    let p = path.display();
    assert!(
        stderr.contains(&format!("{p}:3:1: unknown key `show` in [view]")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:4:2: unknown section `mount`")),
        "{stderr}"
    );
}

#[test]
fn check_reports_bad_enum_values() {
    let (stderr, path, _dir) =
        check_fails("[writes]\nmode = \"readonly\"\n[view]\nsymlinks = \"follow\"\n");
    let p = path.display();
    assert!(
        stderr.contains(&format!(
            "{p}:2:8: `writes.mode` cannot be \"readonly\"; use one of \"deny\", \"overlay\", \"direct\""
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:4:12: `view.symlinks` cannot be \"follow\"")),
        "{stderr}"
    );
}

#[test]
fn check_reports_dotdot_and_absolute_patterns() {
    let (stderr, path, _dir) = check_fails(
        "[view]\nhide = [\"../secret\", \"/etc/passwd\"]\n[writes]\nwritable = [\"src/../..\"]\n",
    );
    let p = path.display();
    assert!(
        stderr.contains(&format!("{p}:2:9: \"../secret\" has a `..` component")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:2:22: \"/etc/passwd\" looks like an absolute path"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:4:13: \"src/../..\" has a `..` component")),
        "{stderr}"
    );
}

#[test]
fn check_reports_unknown_presets() {
    let (stderr, path, _dir) =
        check_fails("[view]\npresets = [\"secrets\", \"secret\", \"aws\"]\n");
    let p = path.display();
    assert!(
        stderr.contains(&format!(
            "{p}:2:23: unknown preset \"secret\" (did you mean `secrets`?)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:2:33: unknown preset \"aws\"")),
        "{stderr}"
    );
}

#[test]
fn check_reports_every_error_once_in_file_order() {
    let text = "\
[view]
allow = [\"src/\", \"\"]
hide = [\"a/../b\", 7]
presets = [\"vcs\", \"nope\"]
hardlinks = \"share\"

[writes]
mode = \"overlay\"
color = \"blue\"

[limits]
overlay_bytes = \"2 parsecs\"
";
    let (stderr, path, _dir) = check_fails(text);
    let p = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let positions = ["2:18:", "3:9:", "3:19:", "4:19:", "5:13:", "9:1:", "12:17:"];
    // one line per error, then the summary line
    assert_eq!(lines.len(), positions.len() + 1, "{stderr}");
    for (line, pos) in lines.iter().zip(positions) {
        assert!(
            line.starts_with(&format!("{p}:{pos} ")),
            "want {pos} in {line:?}\n{stderr}"
        );
    }
    assert!(
        lines.last().unwrap().starts_with("scopefs: 7 problems in "),
        "{stderr}"
    );
}

#[test]
fn check_reports_flag_errors_by_flag() {
    scopefs()
        .args(["check", "--hide", "../x", "--allow", "/home/me/project/src"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--hide \"../x\": \"../x\" has a `..` component",
        ))
        .stderr(predicate::str::contains(
            "--allow \"/home/me/project/src\": ",
        ));
}

#[test]
fn check_reports_a_missing_policy_file() {
    scopefs()
        .args(["check", "-c", "/nonexistent/policy.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/nonexistent/policy.toml: cannot read the policy file",
        ));
}

// ---- explain: path handling and policy errors (no Scope walk needed) --------------------------

#[test]
fn explain_refuses_absolute_and_escaping_paths() {
    let src = source(&["a.txt"]);
    let abs = src.path().join("a.txt");
    scopefs()
        .arg("explain")
        .arg(src.path())
        .arg(&abs)
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "the path is absolute; give it relative to SOURCE",
        ));
    explain(src.path(), &[])
        .code(2)
        .stderr(predicate::str::contains("nothing to explain"));
    scopefs()
        .arg("explain")
        .arg(src.path())
        .arg("src/../../x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("climbs above SOURCE"));
}

#[test]
fn explain_refuses_a_bad_policy_or_source() {
    let src = source(&["a.txt"]);
    let (_dir, path) = policy("[view]\nhide = [\"../x\"]\n");
    scopefs()
        .arg("explain")
        .arg("-c")
        .arg(&path)
        .arg(src.path())
        .arg("a.txt")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:2:9: ",
            path.display()
        )));
    scopefs()
        .arg("explain")
        .arg(src.path().join("missing"))
        .arg("a.txt")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SOURCE does not exist"));
}

// ---- explain on a real tree (uses Scope::explain / visible_children) ----------------------------

#[test]
fn explain_names_the_preset_rule() {
    let src = source(&[
        ".env",
        "config/.env",
        "src/a.rs",
        ".env.example",
        "certs/server.pem",
    ]);
    let out = explain_paths(
        src.path(),
        &[],
        &[
            ".env",
            "config/.env",
            ".env.example",
            "certs/server.pem",
            "src/a.rs",
        ],
    );
    assert_eq!(
        out,
        "\
.env: hidden (preset secrets: \".env\")
config/.env: hidden (preset secrets: \".env\")
.env.example: visible (default \"**\"), read-only (writes.mode=deny)
certs/server.pem: hidden (preset secrets: \"*.pem\")
src/a.rs: visible (default \"**\"), read-only (writes.mode=deny)
"
    );
}

#[test]
fn explain_hides_case_variants() {
    let src = source(&[".ENV", ".Env", "KEY.PEM"]);
    let out = explain_paths(src.path(), &[], &[".ENV", ".Env", "KEY.PEM"]);
    assert_eq!(
        out,
        "\
.ENV: hidden (preset secrets: \".env\")
.Env: hidden (preset secrets: \".env\")
KEY.PEM: hidden (preset secrets: \"*.pem\")
"
    );
}

#[test]
fn explain_normalises_path_forms() {
    let src = source(&[".env", "src/a.rs"]);
    let out = explain_paths(
        src.path(),
        &[],
        &["src/../.env", "./.env", ".env/", "src//./a.rs"],
    );
    assert_eq!(
        out,
        "\
.env: hidden (preset secrets: \".env\")
.env: hidden (preset secrets: \".env\")
.env: hidden (preset secrets: \".env\")
src/a.rs: visible (default \"**\"), read-only (writes.mode=deny)
"
    );
}

#[test]
fn explain_missing_and_not_allowed_and_transit() {
    let src = source(&["src/lib/a.rs", "src/bin/b.rs", "notes.txt"]);
    let out = explain_paths(
        src.path(),
        &["--allow", "src/lib/", "--allow", "/README.md"],
        &[
            "src",
            "src/lib/a.rs",
            "src/bin/b.rs",
            "notes.txt",
            "README.md",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "src: on the way to allowed paths (lists only visible entries)"
    );
    assert_eq!(
        lines[1],
        "src/lib/a.rs: visible (--allow \"src/lib/\"), read-only (writes.mode=deny)"
    );
    assert!(lines[2].starts_with("src/bin/b.rs: not allowed"), "{out}");
    assert!(lines[3].starts_with("notes.txt: not allowed"), "{out}");
    assert_eq!(
        lines[4],
        "README.md: does not exist in SOURCE (if created as a file: visible (--allow \"/README.md\"))"
    );
}

#[test]
fn explain_shows_writability() {
    let src = source(&["src/a.rs", "README.md", ".git/config", ".git/HEAD"]);
    let (_dir, path) = policy("[writes]\nmode = \"overlay\"\nwritable = [\"src/\", \".git/\"]\n");
    let out = explain_paths(
        src.path(),
        &["-c", path.to_str().unwrap()],
        &["src/a.rs", "README.md", ".git/config"],
    );
    let p = path.display();
    assert_eq!(
        out,
        format!(
            "\
src/a.rs: visible (default \"**\"), writable -> overlay ({p}:3: \"src/\")
README.md: visible (default \"**\"), not writable (no writable pattern matches)
.git/config: visible (default \"**\"), protected (preset exec-config: \"**/.git/config\")
"
        )
    );
    let out = explain_paths(src.path(), &["--writes", "direct"], &["src/a.rs"]);
    assert_eq!(
        out,
        "src/a.rs: visible (default \"**\"), writable -> SOURCE (default \"**\")\n"
    );
}

#[test]
fn explain_tree_prints_the_view() {
    let src = source(&[
        ".env",
        "README.md",
        "src/main.rs",
        "src/.env.local",
        "empty/",
        ".ssh/id_rsa",
        "build/out.log",
    ]);
    explain(src.path(), &["--tree", "--hide", "*.log"])
        .success()
        .stdout("README.md\nbuild/\nempty/\nsrc/\nsrc/main.rs\n");
    scopefs()
        .args(["explain", "--tree"])
        .arg(src.path())
        .arg("src")
        .assert()
        .success()
        .stdout("src: visible (default \"**\"), read-only (writes.mode=deny)\nsrc/main.rs\n");
}

#[test]
fn writable_without_a_write_mode_is_a_usage_error_and_mounts_nothing() {
    let src = source(&["src/a.rs"]);
    let mnt = tempfile::tempdir().unwrap();
    let out = scopefs()
        .arg("mount")
        .args(["--writable", "src/"])
        .arg(src.path())
        .arg(mnt.path())
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--writable") && stderr.contains("--overlay DIR"),
        "{stderr}"
    );
    assert!(
        fs::read_dir(mnt.path()).unwrap().next().is_none(),
        "something appeared at the mountpoint"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(mnt.path().to_str().unwrap()),
        "the mountpoint was mounted"
    );
}
