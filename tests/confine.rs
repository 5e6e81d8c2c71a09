//! The daemon's self-confinement: after `scopefs::confine::restrict_thread`, a thread can
//! read SOURCE and change the overlay, and an attempt to open anything else fails.
//!
//! Landlock confines the calling thread for good, so each check runs in a fresh process: the
//! test binary runs itself again with `SCOPEFS_CONFINE_CHILD` set, and that child confines
//! itself with the very function the daemon uses, tries the opens and prints what happened.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use scopefs::confine::{Confinement, Enforced, restrict_thread};

const CHILD: &str = "SCOPEFS_CONFINE_CHILD";

/// One open to try in the confined child.
type Attempt<'a> = Box<dyn Fn() -> std::io::Result<()> + 'a>;

/// Runs in the re-executed child: confine, then try each open and print one line per try.
fn child(base: &Path) {
    let source = File::open(base.join("source")).unwrap();
    let overlay = File::open(base.join("overlay")).unwrap();
    let rules = Confinement {
        read: vec![source.as_fd()],
        write: vec![overlay.as_fd()],
        append: Vec::new(),
    };
    let enforced = restrict_thread(&rules).unwrap();
    println!("\n@@enforced {}", enforced == Enforced::Fully);
    let tries: [(&str, Attempt<'_>); 6] = [
        (
            "read-source",
            Box::new(|| fs::read(base.join("source/a.txt")).map(drop)),
        ),
        (
            "write-source",
            Box::new(|| fs::write(base.join("source/a.txt"), b"x")),
        ),
        (
            "write-overlay",
            Box::new(|| fs::write(base.join("overlay/new.txt"), b"x")),
        ),
        (
            "read-outside",
            Box::new(|| fs::read(base.join("outside/secret.txt")).map(drop)),
        ),
        ("read-etc", Box::new(|| fs::read("/etc/hostname").map(drop))),
        (
            "write-tmp",
            Box::new(|| fs::write(base.join("outside/new.txt"), b"x")),
        ),
    ];
    for (name, attempt) in tries {
        match attempt() {
            Ok(()) => println!("@@{name} ok"),
            Err(e) => println!("@@{name} {}", e.raw_os_error().unwrap_or(0)),
        }
    }
}

#[test]
fn a_confined_thread_reaches_only_source_and_overlay() {
    if let Some(base) = std::env::var_os(CHILD) {
        child(Path::new(&base));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["source", "overlay", "outside"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    fs::write(dir.path().join("source/a.txt"), b"a").unwrap();
    fs::write(dir.path().join("outside/secret.txt"), b"s").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_confined_thread_reaches_only_source_and_overlay",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("@@{name} ")))
            .unwrap_or_else(|| panic!("no line for {name} in: {text}"))
            .to_string()
    };
    assert_eq!(
        result("enforced"),
        "true",
        "Landlock is fully enforced on this kernel"
    );
    let eacces = libc::EACCES.to_string();
    assert_eq!(result("read-source"), "ok");
    assert_eq!(
        result("write-source"),
        eacces,
        "SOURCE is read-only to the daemon"
    );
    assert_eq!(result("write-overlay"), "ok");
    assert_eq!(result("read-outside"), eacces, "a file outside both trees");
    assert_eq!(result("read-etc"), eacces, "the host's /etc");
    assert_eq!(result("write-tmp"), eacces, "creating outside both trees");
    assert_eq!(
        fs::read(dir.path().join("source/a.txt")).unwrap(),
        b"a",
        "SOURCE unchanged"
    );
}
