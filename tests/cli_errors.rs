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
