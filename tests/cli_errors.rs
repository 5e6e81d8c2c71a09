//! Refusals a newcomer meets, each with the line that says what to do instead and an exit code
//! that means the same across subcommands: `mount X X` points to `run --in-place`; `diff` of
//! something that is not an overlay is a usage error (2) whether or not it exists. No FUSE
//! needed: each is refused before anything is mounted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::process::Output;

use assert_cmd::Command;

fn scopefs() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scopefs"));
    cmd.env_remove("RUST_LOG").env_remove("NO_COLOR");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mounting_a_directory_onto_itself_points_to_run_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("proj");
    fs::create_dir(&proj).unwrap();
    fs::write(proj.join("a.txt"), "a\n").unwrap();
    let canonical = fs::canonicalize(&proj).unwrap();
    for mountpoint in [proj.clone(), proj.join(".")] {
        let out = scopefs()
            .arg("mount")
            .arg(&proj)
            .arg(&mountpoint)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("is SOURCE itself"), "{err}");
        assert!(
            err.contains(&format!(
                "use `scopefs run --in-place {} -- COMMAND`",
                canonical.display()
            )),
            "{err}"
        );
        assert!(!err.contains("not empty"), "{err}");
    }
}

/// `diff`, `apply` and `discard` answer alike for an OVERLAY that is not one: missing, a plain
/// directory or a file are all usage errors (2) that say what to give instead.
#[test]
fn review_commands_give_one_exit_code_for_a_wrong_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let missing = dir.path().join("missing");
    for command in ["diff", "apply", "discard"] {
        for (overlay, says) in [
            (
                &missing,
                "does not exist: give the directory passed to `mount --overlay`",
            ),
            (&plain, "is not a scopefs overlay"),
            (&file, "is not a directory"),
        ] {
            let out = scopefs().arg(command).arg(overlay).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {}: {}",
                overlay.display(),
                stderr(&out)
            );
            assert!(stderr(&out).contains(says), "{command}: {}", stderr(&out));
        }
    }
    assert!(!missing.exists(), "nothing was made");
}

/// Log lines (here `RUST_LOG=debug`) are coloured on a terminal only, and never with
/// `NO_COLOR` set: a redirected log holds no escape codes. The terminal is `script`'s pty.
#[test]
fn no_colour_off_a_terminal_or_with_no_color() {
    let piped = scopefs()
        .env("RUST_LOG", "debug")
        .arg("check")
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(!stderr(&piped).is_empty(), "debug lines were logged");
    assert!(
        !stderr(&piped).contains('\u{1b}'),
        "escape codes in a pipe: {:?}",
        stderr(&piped)
    );
    let bin = env!("CARGO_BIN_EXE_scopefs");
    let on_terminal = |no_color: Option<&str>| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-q", "-e", "-c"])
            .arg(format!("{bin} check"))
            .arg("/dev/null")
            .env("RUST_LOG", "debug")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "script: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        on_terminal(None).contains('\u{1b}'),
        "coloured on a terminal: {:?}",
        on_terminal(None)
    );
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("DEBUG"), "{plain:?}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR honoured: {plain:?}");
}
