//! Direct mode (SPEC §3): writes reach SOURCE on writable paths, and nothing hidden is ever
//! deleted or replaced.

use std::fs;

use crate::common::*;
use crate::rules::{basic_args, basic_rig};
use crate::support::*;

#[test]
fn rmdir_of_a_directory_with_hidden_entries_is_enotempty() {
    let r = basic_rig(Mode::Direct);
    r.scene.file_with("w/onlyhidden/.env", b"SECRET=1\n");
    r.scene.file_with("w/mixed/.env", b"SECRET=2\n");
    r.scene.file("w/mixed/a.txt");
    let m = r.mount(&basic_args(&r));
    assert_eq!(names(&m.m("w/onlyhidden")), Vec::<String>::new());
    assert_errno(
        fs::remove_dir(m.m("w/onlyhidden")),
        libc::ENOTEMPTY,
        "rmdir of a directory holding only hidden entries",
    );
    fs::remove_file(m.m("w/mixed/a.txt")).unwrap();
    assert_errno(
        fs::remove_dir(m.m("w/mixed")),
        libc::ENOTEMPTY,
        "rmdir after removing the last visible entry",
    );
    // rm -r does the same and fails the same way.
    assert_errno(
        fs::remove_dir_all(m.m("w/onlyhidden")),
        libc::ENOTEMPTY,
        "remove_dir_all",
    );
    // And a directory cannot be renamed over it either.
    let res = fs::rename(m.m("w/d"), m.m("w/onlyhidden"));
    assert!(
        res.is_err(),
        "renaming w/d over w/onlyhidden (hidden entries inside) succeeded"
    );
    drop(m);
    assert_eq!(
        fs::read(r.scene.s("w/onlyhidden/.env")).unwrap(),
        b"SECRET=1\n"
    );
    assert_eq!(fs::read(r.scene.s("w/mixed/.env")).unwrap(), b"SECRET=2\n");
    assert!(
        !exists(&r.scene.s("w/mixed/a.txt")),
        "the visible file was removed in SOURCE"
    );
    assert!(r.scene.s("w/d").is_dir());
}

#[test]
fn nothing_is_renamed_linked_or_made_onto_a_hidden_name() {
    let r = basic_rig(Mode::Direct);
    r.scene.file_with("w/id_rsa", b"KEY\n");
    r.scene.dir("w/.ssh");
    r.scene.file_with("w/.ssh/config", b"Host x\n");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    assert_errno(
        fs::rename(m.m("w/f.txt"), m.m("w/.env")),
        libc::EACCES,
        "rename onto hidden w/.env",
    );
    assert_errno(
        renameat2(&m.m("w/g.txt"), &m.m("w/id_rsa"), libc::RENAME_NOREPLACE),
        libc::EACCES,
        "RENAME_NOREPLACE onto hidden w/id_rsa",
    );
    assert_errno(
        fs::rename(m.m("w/d"), m.m("w/.ssh")),
        libc::EACCES,
        "rename of a directory onto hidden w/.ssh",
    );
    assert_errno(
        fs::hard_link(m.m("w/f.txt"), m.m("w/.env")),
        libc::EACCES,
        "link onto hidden w/.env",
    );
    assert_errno(
        std::os::unix::fs::symlink("f.txt", m.m("w/id_rsa")),
        libc::EACCES,
        "symlink onto hidden w/id_rsa",
    );
    assert_errno(
        fs::create_dir(m.m("w/.ssh")),
        libc::EACCES,
        "mkdir onto hidden w/.ssh",
    );
    assert_errno(
        fs::write(m.m("w/.env"), b"X"),
        libc::EACCES,
        "creat() onto hidden w/.env",
    );
    assert_eq!(
        fs::read(m.m("w/f.txt")).unwrap(),
        content_for("w/f.txt".as_ref())
    );
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&r.scene.src),
        "writes onto hidden names",
    );
}

#[test]
fn direct_writes_land_in_source_and_only_there() {
    let r = basic_rig(Mode::Direct);
    let m = r.mount(&basic_args(&r));
    fs::write(m.m("w/f.txt"), b"changed\n").unwrap();
    fs::create_dir(m.m("w/n")).unwrap();
    fs::rename(m.m("w/sub"), m.m("w/sub2")).expect("direct mode renames directories");
    fs::remove_file(m.m("w/g.txt")).unwrap();
    drop(m);
    assert_eq!(fs::read(r.scene.s("w/f.txt")).unwrap(), b"changed\n");
    assert!(r.scene.s("w/n").is_dir());
    assert!(r.scene.s("w/sub2/x.txt").is_file());
    assert!(!exists(&r.scene.s("w/sub")) && !exists(&r.scene.s("w/g.txt")));
    assert!(
        !exists(&r.overlay()),
        "direct mode made an overlay directory"
    );
    assert_eq!(
        fs::read(r.scene.s("ro/f.txt")).unwrap(),
        content_for("ro/f.txt".as_ref())
    );
}
