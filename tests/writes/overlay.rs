//! Overlay mode (SPEC §3, §4): EXDEV for directories of SOURCE, whiteouts and opaque markers in
//! OVERLAY/upper, limits, and the overlay's life across unmounts: the same view after a
//! remount, one mount at a time, and no overlay reused for another SOURCE.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::rules::{basic_args, basic_rig};
use crate::support::*;

/// Asserts `path` is an empty regular file: a whiteout or an opaque marker.
#[track_caller]
fn assert_marker(path: &Path) {
    let md = fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("marker {} is missing: {e}", path.display()));
    assert!(
        md.is_file() && md.len() == 0,
        "marker {} is not an empty regular file",
        path.display()
    );
}

#[test]
fn renaming_a_source_directory_is_exdev_and_mv_copies_instead() {
    let r = basic_rig(Mode::Overlay);
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    assert_errno(
        fs::rename(m.m("w/sub"), m.m("w/sub2")),
        libc::EXDEV,
        "rename of w/sub, a directory of SOURCE",
    );
    let out = run_with_timeout(
        {
            let mut c = Command::new("mv");
            c.arg(m.m("w/sub")).arg(m.m("w/sub2"));
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "mv w/sub w/sub2: {}", out.stderr);
    assert_eq!(
        fs::read(m.m("w/sub2/x.txt")).unwrap(),
        content_for("w/sub/x.txt".as_ref())
    );
    assert!(!exists(&m.m("w/sub")), "w/sub still in the view after mv");
    assert_marker(&r.upper("w/.wh.sub"));
    assert!(r.upper("w/sub2/x.txt").is_file());
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&r.scene.src),
        "mv of a source directory",
    );
}

#[test]
fn a_directory_made_in_the_overlay_can_be_renamed() {
    let r = basic_rig(Mode::Overlay);
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    fs::create_dir(m.m("w/n")).unwrap();
    fs::write(m.m("w/n/a"), b"A").unwrap();
    fs::rename(m.m("w/n"), m.m("w/n2")).expect("rename of a directory made in the overlay");
    assert_eq!(fs::read(m.m("w/n2/a")).unwrap(), b"A");
    assert!(!exists(&m.m("w/n")));
    assert!(r.upper("w/n2/a").is_file());
    assert!(!exists(&r.upper("w/n")), "w/n left in upper/");
    assert!(
        !exists(&r.upper("w/.wh.n")),
        "a whiteout for w/n, which SOURCE never had"
    );
    // And across directories, onto an empty directory of SOURCE: the target becomes opaque.
    fs::rename(m.m("w/n2"), m.m("w/d")).expect("rename onto the empty SOURCE directory w/d");
    assert_eq!(fs::read(m.m("w/d/a")).unwrap(), b"A");
    assert_marker(&r.upper("w/d/.wh..wh..opq"));
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&r.scene.src),
        "renames in the overlay",
    );
}

#[test]
fn deleting_a_source_entry_leaves_a_whiteout() {
    let r = basic_rig(Mode::Overlay);
    r.scene.file_with("w/onlyhidden/.env", b"SECRET=1\n");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    fs::remove_file(m.m("w/f.txt")).unwrap();
    assert_marker(&r.upper("w/.wh.f.txt"));
    fs::remove_dir_all(m.m("w/sub")).unwrap();
    assert_marker(&r.upper("w/.wh.sub"));
    assert!(
        !exists(&r.upper("w/sub")),
        "w/sub left in upper/ next to its whiteout"
    );
    // A file made again over its whiteout: the whiteout goes.
    fs::write(m.m("w/f.txt"), b"new\n").unwrap();
    assert!(!exists(&r.upper("w/.wh.f.txt")));
    assert_eq!(fs::read(r.upper("w/f.txt")).unwrap(), b"new\n");
    // A directory holding only hidden entries looks empty, so it can be removed (a whiteout
    // hides it, never ENOTEMPTY); the hidden entry stays in SOURCE.
    assert_eq!(names(&m.m("w/onlyhidden")), Vec::<String>::new());
    fs::remove_dir(m.m("w/onlyhidden")).expect("rmdir of a directory with only hidden entries");
    assert_marker(&r.upper("w/.wh.onlyhidden"));
    assert_eq!(names(&m.m("w")), ["d", "f.txt", "g.txt"]);
    let view = snapshot(m.mnt());
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "deletions");
    let m = r.mount(&basic_args(&r));
    assert_same_snapshot(&view, &snapshot(m.mnt()), "the view after a remount");
}

#[test]
fn a_directory_made_over_a_deleted_one_is_opaque() {
    let r = basic_rig(Mode::Overlay);
    r.scene.file_with("w/onlyhidden/.env", b"SECRET=1\n");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    fs::remove_dir_all(m.m("w/sub")).unwrap();
    fs::create_dir(m.m("w/sub")).expect("mkdir w/sub over the deleted SOURCE directory");
    assert_marker(&r.upper("w/sub/.wh..wh..opq"));
    assert!(
        !exists(&r.upper("w/.wh.sub")),
        "the whiteout of w/sub outlived its recreation"
    );
    assert_eq!(
        names(&m.m("w/sub")),
        Vec::<String>::new(),
        "recreated w/sub"
    );
    fs::remove_dir(m.m("w/onlyhidden")).unwrap();
    fs::create_dir(m.m("w/onlyhidden")).expect("mkdir w/onlyhidden over its whiteout");
    assert_marker(&r.upper("w/onlyhidden/.wh..wh..opq"));
    assert_hidden(m.mnt(), "w/onlyhidden/.env");
    let view = snapshot(m.mnt());
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "opaque directories");
    let m = r.mount(&basic_args(&r));
    assert_same_snapshot(&view, &snapshot(m.mnt()), "the view after a remount");
}

fn limits_rig(extra: &str) -> (Rig, Vec<String>) {
    let r = Rig::new(Mode::Overlay);
    r.scene.file_with("big", &vec![b'x'; 100 * 1024]);
    r.scene.file("small");
    let args = r.policy_args("", "", extra);
    (r, args)
}

/// Writes `data` to `path` (created) and syncs it; the first error of write or fsync.
fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[test]
fn overlay_bytes_limit_is_enospc_and_keeps_what_was_written() {
    let (r, args) = limits_rig("[limits]\noverlay_bytes = \"64 KiB\"");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&args);
    let a = vec![b'a'; 40 * 1024];
    write_synced(&m.m("a"), &a).expect("40 KiB under a 64 KiB limit");
    let res = write_synced(&m.m("b"), &vec![b'b'; 40 * 1024]);
    assert_errno(res, libc::ENOSPC, "40 more KiB past overlay_bytes = 64 KiB");
    assert_eq!(fs::read(m.m("a")).unwrap(), a, "a after the limit was hit");
    assert_eq!(
        fs::read(r.upper("a")).unwrap(),
        a,
        "upper/a after the limit"
    );
    // Copying up a file larger than what is left fails the same way and changes nothing.
    assert_errno(
        fs::OpenOptions::new().append(true).open(m.m("big")),
        libc::ENOSPC,
        "copy-up of a 100 KiB file past the limit",
    );
    assert_eq!(fs::read(m.m("big")).unwrap().len(), 100 * 1024);
    // Freeing space makes room again.
    fs::remove_file(m.m("a")).unwrap();
    write_synced(&m.m("c"), &vec![b'c'; 40 * 1024]).expect("40 KiB after a was removed");
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "overlay_bytes");
}

#[test]
fn overlay_files_limit_is_enospc_and_keeps_what_was_written() {
    let (r, args) = limits_rig("[limits]\noverlay_files = 4");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&args);
    let mut made = Vec::new();
    let mut refusal = None;
    for i in 0..10 {
        let name = format!("n{i}");
        match fs::write(m.m(&name), name.as_bytes()) {
            Ok(()) => made.push(name),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        made.len(),
        4,
        "files made under overlay_files = 4: {made:?}"
    );
    assert_errno(
        refusal.map_or(Ok(()), Err),
        libc::ENOSPC,
        "the fifth file past overlay_files = 4",
    );
    assert_errno(
        fs::create_dir(m.m("dir")),
        libc::ENOSPC,
        "mkdir past overlay_files",
    );
    for name in &made {
        assert_eq!(fs::read(m.m(name)).unwrap(), name.as_bytes(), "{name}");
    }
    // Changing a file already in upper/ needs no new entry.
    fs::write(m.m("n0"), b"again").expect("rewrite of a file already in the overlay");
    drop(m);
    assert_same_tree(&before, &tree_digest(&r.scene.src), "overlay_files");
}

/// Makes changes of every kind through a fresh mount of `r` and returns the view it showed.
fn change_everything(r: &Rig, args: &[String]) -> std::collections::BTreeMap<String, String> {
    let m = r.mount(args);
    fs::write(m.m("w/f.txt"), b"modified\n").unwrap();
    fs::write(m.m("w/new.txt"), b"new\n").unwrap();
    fs::remove_file(m.m("w/g.txt")).unwrap();
    fs::remove_dir_all(m.m("w/sub")).unwrap();
    fs::create_dir(m.m("w/sub2")).unwrap();
    fs::write(m.m("w/sub2/y.txt"), b"y\n").unwrap();
    fs::write(m.m("w/d/z.txt"), b"z\n").unwrap();
    std::os::unix::fs::symlink("f.txt", m.m("w/link")).unwrap();
    fs::create_dir_all(m.m("w/deep/er")).unwrap();
    lsetxattr(&m.m("w/f.txt"), b"user.k", b"v").unwrap();
    snapshot(m.mnt())
}

#[test]
fn a_remount_shows_the_same_view() {
    let r = basic_rig(Mode::Overlay);
    let args = basic_args(&r);
    let before = tree_digest(&r.scene.src);
    let view = change_everything(&r, &args);
    let m = r.mount(&args);
    assert_same_snapshot(&view, &snapshot(m.mnt()), "the view after a remount");
    assert_eq!(lgetxattr(&m.m("w/f.txt"), b"user.k").unwrap(), b"v");
    assert_hidden(m.mnt(), "w/.env");
    drop(m);
    assert!(r.overlay().join("overlay.toml").is_file());
    assert_same_tree(&before, &tree_digest(&r.scene.src), "remount");
}

/// Runs `scopefs mount ARGS SOURCE MNT` expecting a refusal: non-zero, one line on stderr,
/// nothing mounted. Returns the outcome.
fn refused_mount(args: &[String], source: &Path, mnt: &Path, what: &str) -> Outcome {
    let mut cmd = scopefs();
    cmd.arg("mount").args(args).arg(source).arg(mnt);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    if out.status.success() {
        cleanup_mount(mnt, None);
        panic!("{what}: the mount was accepted");
    }
    assert_not_mounted(mnt, what);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one clear line on stderr, got {:?}",
        out.stderr
    );
    out
}

#[test]
fn a_second_mount_of_the_same_overlay_is_refused() {
    let r = basic_rig(Mode::Overlay);
    let args = basic_args(&r);
    let mnt2 = r.scene.base().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    {
        let m = r.mount(&args);
        fs::write(m.m("w/new"), b"1").unwrap();
        let out = refused_mount(&args, &r.scene.src, &mnt2, "second mount, same overlay");
        assert!(
            out.stderr.contains("overlay") || out.stderr.contains("OVERLAY"),
            "the refusal should name the overlay: {}",
            out.stderr
        );
        // The first mount is unaffected.
        assert_eq!(fs::read(m.m("w/new")).unwrap(), b"1");
    }
    // Once unmounted, the lock is free again.
    let mut cmd = scopefs();
    cmd.arg("mount").args(&args).arg(&r.scene.src).arg(&mnt2);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let entry = mounts_at(&mnt2).pop();
    let seen = fs::read(mnt2.join("w/new"));
    let unmounted = entry
        .as_ref()
        .map_or(Ok(()), |e| unmount_checked(&mnt2, daemon_pid(e)));
    cleanup_mount(&mnt2, None);
    assert!(
        out.status.success() && entry.is_some(),
        "mount after the first was unmounted: {}\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(seen.unwrap(), b"1");
    unmounted.unwrap();
}

#[test]
fn an_overlay_made_for_another_source_is_refused() {
    let r = basic_rig(Mode::Overlay);
    let args = basic_args(&r);
    {
        let m = r.mount(&args);
        fs::write(m.m("w/new"), b"1").unwrap();
    }
    let toml_before = fs::read(r.overlay().join("overlay.toml")).unwrap();
    let upper_before = tree_digest(&r.overlay().join("upper"));
    let other = Scene::new();
    other.file("w/f.txt");
    let out = refused_mount(
        &["--overlay".to_owned(), r.overlay().display().to_string()],
        &other.src,
        &other.mnt,
        "an overlay of another SOURCE",
    );
    assert_eq!(out.code(), Some(2), "exit code: {}", out.stderr);
    assert_eq!(
        fs::read(r.overlay().join("overlay.toml")).unwrap(),
        toml_before
    );
    assert_same_tree(
        &upper_before,
        &tree_digest(&r.overlay().join("upper")),
        "upper/ after the refused mount",
    );
}

#[test]
fn source_names_like_whiteouts_cannot_be_changed_in_an_overlay() {
    let r = basic_rig(Mode::Overlay);
    let s = &r.scene;
    s.file_with("w/.wh.foo", b"looks like a whiteout\n");
    s.file("w/foo");
    s.file("w/.wh.d/x.txt");
    let before = tree_digest(&s.src);
    let m = r.mount(&basic_args(&r));
    // Both are shown; writing either would put a whiteout-shaped name into upper/.
    assert_eq!(
        fs::read(m.m("w/.wh.foo")).unwrap(),
        b"looks like a whiteout\n"
    );
    assert_errno(
        fs::OpenOptions::new().append(true).open(m.m("w/.wh.foo")),
        libc::EACCES,
        "open w/.wh.foo for writing",
    );
    assert_errno(
        fs::remove_file(m.m("w/.wh.foo")),
        libc::EACCES,
        "unlink w/.wh.foo",
    );
    assert_errno(
        fs::write(m.m("w/.wh.d/new.txt"), b"x"),
        libc::EACCES,
        "create inside w/.wh.d",
    );
    assert!(exists(&m.m("w/foo")), "w/foo is still there");
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&s.src),
        "overlay with .wh.* names in SOURCE",
    );
    assert!(
        !r.overlay().join("upper/w/.wh.foo").exists(),
        "nothing whiteout-shaped was written to upper/"
    );
}
