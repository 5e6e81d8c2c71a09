//! `scopefs --help`, `scopefs completions SHELL` and `scopefs man`: generated from the clap
//! definitions, they name every subcommand; every page has examples, and `scopefs-policy(5)`
//! holds the whole policy format. No FUSE needed.

#![allow(clippy::unwrap_used, clippy::panic)]

use assert_cmd::Command;

const SUBCOMMANDS: [&str; 12] = [
    "mount",
    "run",
    "umount",
    "status",
    "reload",
    "explain",
    "check",
    "diff",
    "apply",
    "discard",
    "completions",
    "man",
];

fn stdout_of(args: &[&str]) -> String {
    let out = Command::cargo_bin("scopefs")
        .unwrap()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// How each shell's completion script offers subcommand `sub`: the exact form, so that
/// `umount` does not stand in for `mount`.
fn offers(shell: &str, sub: &str) -> String {
    match shell {
        "bash" => format!("scopefs,{sub})"),
        "zsh" => format!("({sub})"),
        "fish" => format!("-a \"{sub}\""),
        "elvish" => format!("cand {sub} '"),
        "powershell" => format!("[CompletionResult]::new('{sub}', '{sub}',"),
        other => panic!("no form known for {other}"),
    }
}

#[test]
fn completions_name_every_subcommand_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: {} bytes", script.len());
        for sub in SUBCOMMANDS {
            let form = offers(shell, sub);
            assert!(
                script.contains(&form),
                "{shell} completions do not offer `{sub}` (no {form:?})"
            );
        }
        // The options of `run` are completed too (fish writes long options as `-l NAME`).
        let keep = if shell == "fish" {
            "-l keep-overlay"
        } else {
            "--keep-overlay"
        };
        assert!(script.contains(keep), "{shell}: --keep-overlay");
    }
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scopefs.bash");
    std::fs::write(&path, script).unwrap();
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "bash -n on the completion script");
}

#[test]
fn unknown_shell_is_a_usage_error() {
    Command::cargo_bin("scopefs")
        .unwrap()
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[test]
fn man_page_lists_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH scopefs 1"), "a section 1 page:\n{page}");
    assert!(page.contains(".SH SUBCOMMANDS"));
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("scopefs\\-{sub}(1)")),
            "man page lacks scopefs-{sub}(1)"
        );
    }
    assert!(
        !page.contains("internal"),
        "the internal subcommand stays out"
    );
}

#[test]
fn help_lists_every_subcommand() {
    let help = stdout_of(&["--help"]);
    for sub in SUBCOMMANDS {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "--help does not list {sub}:\n{help}"
        );
    }
    assert!(!help.contains("internal"), "{help}");
}

#[test]
fn man_out_dir_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    let top = std::fs::read_to_string(dir.path().join("scopefs.1")).unwrap();
    assert!(top.contains(".TH scopefs 1"));
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("scopefs-{sub}.1")))
            .unwrap_or_else(|e| panic!("scopefs-{sub}.1: {e}"));
        assert!(
            page.contains(&format!(".TH scopefs-{sub} 1")),
            "{sub}:\n{page}"
        );
    }
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("scopefs-{sub}.1"))).unwrap();
        assert!(page.contains(".SH EXAMPLES"), "{sub} has examples:\n{page}");
        assert!(
            page.contains("scopefs\\-policy\\fR(5)"),
            "{sub} points to the policy page:\n{page}"
        );
    }
    let run = std::fs::read_to_string(dir.path().join("scopefs-run.1")).unwrap();
    assert!(
        run.contains("in\\-place"),
        "run's page documents --in-place"
    );
}

/// `scopefs-policy(5)` holds the whole format: every key of docs/policy.md's table, the
/// patterns, presets, symlinks and hardlinks, as one section 5 page.
#[test]
fn man_out_dir_writes_the_policy_format_page() {
    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.path().join("scopefs-policy.5")).unwrap();
    assert!(page.starts_with(".TH scopefs-policy 5"), "{page}");
    for section in [
        "EVERY KEY",
        "PATTERNS",
        "VISIBILITY",
        "PRESETS",
        "SYMLINKS",
        "HARDLINKS",
    ] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "no {section}");
    }
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/policy.md"),
    )
    .unwrap();
    let keys: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `["))
        .filter_map(|l| l.split_once('`'))
        .map(|(key, _)| key)
        .collect();
    assert!(keys.len() >= 12, "the table of keys: {keys:?}");
    for key in keys {
        assert!(
            page.contains(&format!(".TP\n\\fB[{key}\\fR")),
            "scopefs-policy(5) lacks [{key}"
        );
    }
}
