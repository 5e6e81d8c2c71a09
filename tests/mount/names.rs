//! SOURCE on a file system that matches names loosely (SPEC §5): `cat VIEW/keys/server.pem.` or
//! `VIEW/KEYS/SERVER.PEM.` must not reach the hidden `keys/server.pem` because vfat, exFAT,
//! NTFS or an SMB share would strip the dot and ignore the case. The tests mount
//! [`normfs`](crate::normfs), a mirror with those lookup rules, and scopefs over it.

use std::fs;
use std::path::Path;

use crate::common::*;
use crate::normfs;

/// Mounts the loose file system at `at` (SOURCE or a directory in it), mirroring a directory
/// of the scene filled by [`fill`].
fn loose_at(s: &Scene, at: &Path) -> normfs::Mounted {
    let backing = s.base().join("backing");
    fill(&backing);
    fs::create_dir_all(at).unwrap();
    normfs::mount(&backing, at)
}

/// Secrets and public files in the backing directory of the loose file system.
fn fill(backing: &Path) {
    for (rel, content) in [
        ("keys/server.pem", "SECRET private key\n"),
        ("keys/readme.txt", "public keys readme\n"),
        (".aws/credentials", "SECRET aws\n"),
        (".ssh/config", "SECRET ssh\n"),
        (".netrc", "SECRET netrc\n"),
        ("docs/readme.txt", "public docs readme\n"),
    ] {
        let path = backing.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
    }
}

/// Asserts that the view at `vol` (the loose file system's place in the view) shows the
/// public files by their own names and nothing by a loose spelling.
fn assert_own_names_only(mnt: &Path, vol: &str) {
    let at = |rel: &str| {
        if vol.is_empty() {
            rel.to_string()
        } else {
            format!("{vol}/{rel}")
        }
    };
    // The loose file system does find these (the test would prove nothing otherwise)...
    for spelling in ["keys/server.pem.", "KEYS/SERVER.PEM.", ".aws./credentials"] {
        let direct = mnt.parent().unwrap().join("src").join(at(spelling));
        assert!(
            fs::read(&direct).is_ok_and(|d| d.starts_with(b"SECRET")),
            "{} does not reach the secret outside the view",
            direct.display()
        );
    }
    // ...but through the view every loose spelling is absent.
    for spelling in [
        "keys/server.pem.",
        "KEYS/SERVER.PEM.",
        "keys/Server.Pem",
        ".aws./credentials",
        ".AWS/credentials",
        ".ssh./config",
        ".netrc.",
        ".NETRC",
        "DOCS/README.TXT",
        "docs/readme.txt.",
        "docs./readme.txt",
    ] {
        assert_hidden(mnt, at(spelling));
    }
    assert_eq!(
        fs::read(mnt.join(at("docs/readme.txt"))).unwrap(),
        b"public docs readme\n"
    );
    assert_eq!(
        fs::read(mnt.join(at("keys/readme.txt"))).unwrap(),
        b"public keys readme\n"
    );
    assert_listing(&mnt.join(at("keys")), &["readme.txt"]);
}

/// The loose file system mounted beneath SOURCE, which is an ordinary one.
#[test]
fn loose_names_beneath_source_reach_nothing() {
    let s = Scene::new();
    let _loose = loose_at(&s, &s.s("vol"));
    let _m = s.mount(&[]);
    assert_own_names_only(&s.mnt, "vol");
    assert_listing(&s.m("vol"), &["docs", "keys"]);
}

/// SOURCE itself on the loose file system, with the kernel caching nothing.
#[test]
fn loose_names_at_the_source_root_reach_nothing() {
    let s = Scene::new();
    let _loose = loose_at(&s, &s.src);
    let _m = s.mount(&["--cache", "never"]);
    assert_own_names_only(&s.mnt, "");
    assert_listing(&s.mnt, &["docs", "keys"]);
}

/// In an overlay view a loose spelling of a hidden entry may be made: it is the agent's own
/// (SPEC §3a), kept in the overlay, and `apply`, forced or not, never writes it over the
/// hidden file SOURCE's file system would have matched it to. A public file copies up by its
/// own name.
#[test]
fn loose_names_made_over_hidden_entries_are_the_agents_own_and_never_applied() {
    let s = Scene::new();
    let loose = loose_at(&s, &s.s("vol"));
    let overlay = s.base().join("overlay");
    let m = s.mount(&["--overlay", overlay.to_str().unwrap()]);
    fs::write(s.m("vol/keys/SERVER.PEM."), b"agent\n").expect("create vol/keys/SERVER.PEM.");
    assert_eq!(fs::read(s.m("vol/keys/SERVER.PEM.")).unwrap(), b"agent\n");
    fs::create_dir(s.m("vol/.AWS.")).expect("mkdir vol/.AWS.");
    assert_listing(&s.m("vol/.AWS."), &[]);
    fs::write(s.m("vol/docs/readme.txt"), b"edited\n").unwrap();
    assert_eq!(
        fs::read(overlay.join("upper/vol/docs/readme.txt")).unwrap(),
        b"edited\n"
    );
    drop(m);
    let backing = s.base().join("backing");
    for force in [false, true] {
        let mut cmd = scopefs();
        // The loose file system is read-only: only the loose spellings are applied, which
        // never reach it.
        cmd.arg("apply")
            .arg(&overlay)
            .args(["vol/keys/SERVER.PEM.", "vol/.AWS."]);
        if force {
            cmd.arg("--force");
        }
        let out = run_with_timeout(cmd, std::time::Duration::from_secs(60));
        assert_eq!(
            out.code(),
            Some(if force { 0 } else { 3 }),
            "apply (force {force}): {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("view hid"),
            "apply (force {force}): {}",
            out.stderr
        );
        assert_eq!(
            fs::read(backing.join("keys/server.pem")).unwrap(),
            b"SECRET private key\n",
            "apply (force {force}) wrote over the hidden key"
        );
        assert_eq!(
            fs::read(backing.join(".aws/credentials")).unwrap(),
            b"SECRET aws\n"
        );
    }
    drop(loose);
}
