//! SOURCE changed by the host under a mounted view: a file whose names changed since the view
//! last looked is judged again before it serves anything (SPEC §2 `hardlinks`, §5).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const SECRET: &[u8] = b"API_KEY=reused-inode-7731\n";

fn is_secret(data: &[u8]) -> bool {
    !data.is_empty()
        && (data.windows(SECRET.len()).any(|w| w == SECRET) || SECRET.starts_with(data))
}

/// Creates `path` with `content` as a file whose inode number is `ino`: file systems such as
/// ext4 hand a freed inode number to the next file made, so a few tries find it.
fn create_with_ino(path: &Path, content: &[u8], ino: u64) {
    let dir = path.parent().unwrap();
    let mut spares = Vec::new();
    for i in 0..64 {
        let spare = dir.join(format!(".spare{i}"));
        fs::write(&spare, content).unwrap();
        if fs::metadata(&spare).unwrap().ino() == ino {
            fs::rename(&spare, path).unwrap();
            for s in spares {
                fs::remove_file(s).unwrap();
            }
            return;
        }
        spares.push(spare);
    }
    panic!(
        "the file system under {} did not reuse inode number {ino} within 64 new files; this \
         test needs one that does (ext4, xfs)",
        dir.display()
    );
}

/// The host deletes a visible hardlinked pair, makes `.env` (which gets the pair's inode
/// number) and links it into view: the new name is hidden, whatever the view knew of the old
/// pair.
fn reused_inode_case(args: &[&str]) {
    let s = Scene::new();
    s.file("docs/a.txt");
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/b.txt")).unwrap();
    let _m = s.mount(args);
    assert_visible(&s, "docs/a.txt");
    assert_visible(&s, "docs/b.txt");
    let ino = fs::metadata(s.s("docs/a.txt")).unwrap().ino();
    fs::remove_file(s.s("docs/a.txt")).unwrap();
    fs::remove_file(s.s("docs/b.txt")).unwrap();
    create_with_ino(&s.s(".env"), SECRET, ino);
    fs::hard_link(s.s(".env"), s.s("docs/c.txt")).unwrap();
    assert_hidden(&s.mnt, ".env");
    assert_hidden(&s.mnt, "docs/c.txt");
    let names = listing(&s.m("docs"));
    assert!(names.is_empty(), "docs lists {names:?}");
}

#[test]
fn hardlink_to_a_hidden_file_that_reuses_an_inode_number_is_hidden() {
    reused_inode_case(&[]);
}

#[test]
fn hardlink_to_a_hidden_file_that_reuses_an_inode_number_is_hidden_uncached() {
    reused_inode_case(&["--cache", "never"]);
}

/// The host renames one name of a visible pair to a hidden name and writes a secret into it:
/// the other name no longer serves the file.
#[test]
fn visible_hardlink_whose_other_name_became_hidden_is_hidden() {
    let s = Scene::new();
    s.file("docs/a.txt");
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/b.txt")).unwrap();
    let _m = s.mount(&["--cache", "never"]);
    assert_eq!(
        fs::read(s.m("docs/a.txt")).unwrap(),
        b"content of docs/a.txt\n"
    );
    fs::rename(s.s("docs/b.txt"), s.s(".env")).unwrap();
    fs::write(s.s(".env"), SECRET).unwrap();
    match fs::read(s.m("docs/a.txt")) {
        Ok(data) => panic!(
            "docs/a.txt, a hardlink of .env now, still served: {:?} (the secret: {})",
            String::from_utf8_lossy(&data),
            is_secret(&data)
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "read docs/a.txt: {e}"),
    }
    assert_hidden(&s.mnt, "docs/a.txt");
}

/// The same with the kernel caching: what it cached before the change may still be read for
/// a while (it is not the secret), but the secret never.
#[test]
fn visible_hardlink_whose_other_name_became_hidden_never_serves_the_secret_cached() {
    let s = Scene::new();
    s.file("docs/a.txt");
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/b.txt")).unwrap();
    let _m = s.mount(&[]);
    assert_eq!(
        fs::read(s.m("docs/a.txt")).unwrap(),
        b"content of docs/a.txt\n"
    );
    fs::rename(s.s("docs/b.txt"), s.s(".env")).unwrap();
    fs::write(s.s(".env"), SECRET).unwrap();
    // A name never looked up before is judged at once.
    fs::hard_link(s.s(".env"), s.s("docs/d.txt")).unwrap();
    assert_hidden(&s.mnt, "docs/d.txt");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(data) = fs::read(s.m("docs/a.txt")) {
            assert!(!is_secret(&data), "docs/a.txt served the secret of .env");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A visible pair stays visible when one of its files is written to (its ctime changes): the
/// view walks SOURCE again and finds the same names.
#[test]
fn visible_hardlinks_stay_visible_when_written() {
    let s = Scene::new();
    s.file("docs/a.txt");
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/b.txt")).unwrap();
    let _m = s.mount(&["--cache", "never"]);
    assert_visible(&s, "docs/a.txt");
    fs::write(s.s("docs/b.txt"), b"changed\n").unwrap();
    assert_eq!(fs::read(s.m("docs/a.txt")).unwrap(), b"changed\n");
    assert_eq!(fs::read(s.m("docs/b.txt")).unwrap(), b"changed\n");
    // And a new visible name of it is visible too.
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/c.txt")).unwrap();
    assert_eq!(fs::read(s.m("docs/c.txt")).unwrap(), b"changed\n");
    assert_eq!(fs::read(s.m("docs/a.txt")).unwrap(), b"changed\n");
}
