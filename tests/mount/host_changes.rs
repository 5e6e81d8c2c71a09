//! SOURCE changed by the host under a mounted view: a file whose names changed since the view
//! last looked is judged again before it serves anything (SPEC §2 `hardlinks`, §5).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const SECRET: &[u8] = b"API_KEY=reused-inode-7731\n";

fn is_secret(data: &[u8]) -> bool {
    !data.is_empty()
        && (data.windows(SECRET.len()).any(|w| w == SECRET) || SECRET.starts_with(data))
}

/// Creates `path` with `content` as a file whose inode number is `ino`: file systems such as
/// ext4 hand a freed inode number to the next file made, once nothing holds the old file open
/// (the daemon closes it when the kernel releases it, a moment after the test's last close).
fn create_with_ino(path: &Path, content: &[u8], ino: u64) {
    let dir = path.parent().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut spares = Vec::new();
        for i in 0..16 {
            let spare = dir.join(format!(".spare{i}"));
            fs::write(&spare, content).unwrap();
            let found = fs::metadata(&spare).unwrap().ino() == ino;
            spares.push(spare);
            if found {
                let spare = spares.pop().unwrap();
                fs::rename(&spare, path).unwrap();
                for s in spares {
                    fs::remove_file(s).unwrap();
                }
                return;
            }
        }
        for s in spares {
            fs::remove_file(s).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the file system under {} did not reuse inode number {ino} within 10 s",
            dir.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A small ext4 file system of the test's own, loop-mounted at a scene's SOURCE, so that the
/// inode numbers it hands out are not taken by other tests running at the same time.
struct Ext4Source<'a> {
    scene: &'a Scene,
}

impl<'a> Ext4Source<'a> {
    fn mount(scene: &'a Scene) -> Ext4Source<'a> {
        let image = scene.base().join("ext4.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(32 << 20))
            .expect("create the ext4 image");
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&scene.src));
        Ext4Source { scene }
    }
}

impl Drop for Ext4Source<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.scene.src)
            .status();
    }
}

/// The host deletes a visible hardlinked pair, makes `.env` (which gets the pair's inode
/// number) and links it into view: the new name is hidden, whatever the view knew of the old
/// pair.
fn reused_inode_case(args: &[&str]) {
    let s = Scene::new();
    let _ext4 = Ext4Source::mount(&s);
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
/// the other name no longer serves the file. The view judged the pair before (through the name
/// that goes), so it has to notice that the file's names changed since.
fn renamed_to_hidden_case(args: &[&str], read_first: bool) {
    let s = Scene::new();
    s.file("docs/a.txt");
    fs::hard_link(s.s("docs/a.txt"), s.s("docs/b.txt")).unwrap();
    let _m = s.mount(args);
    assert_eq!(
        fs::read(s.m("docs/b.txt")).unwrap(),
        b"content of docs/a.txt\n"
    );
    if read_first {
        assert_eq!(
            fs::read(s.m("docs/a.txt")).unwrap(),
            b"content of docs/a.txt\n"
        );
    }
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

#[test]
fn visible_hardlink_whose_other_name_became_hidden_is_hidden() {
    // docs/a.txt is looked up for the first time after the change.
    renamed_to_hidden_case(&[], false);
}

#[test]
fn visible_hardlink_whose_other_name_became_hidden_is_hidden_uncached() {
    // Without kernel caching, even a name read before the change is judged again at once.
    renamed_to_hidden_case(&["--cache", "never"], true);
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
