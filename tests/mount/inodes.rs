//! Inode numbers (`[view] inodes`): SOURCE's own by default, stable across remounts and
//! copy-up, from a range of their own where SOURCE has none, never confused when SOURCE gives a
//! number to a new file while the kernel still holds the old one. (`synthetic` is in view.rs.)

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Scene;

/// `lstat`'s inode number.
fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .ino()
}

/// A small tree: directories, files, a symlink inside SOURCE, a hard link and a hidden file.
fn tree(scene: &Scene) -> Vec<&'static str> {
    scene.file("src/main.rs");
    scene.file("src/lib/mod.rs");
    scene.file("README.md");
    scene.file(".env");
    symlink("README.md", scene.s("readme-link")).unwrap();
    // Two names of one file, both visible: one inode, one number.
    fs::hard_link(scene.s("README.md"), scene.s("src/README.link")).unwrap();
    vec![
        "src/README.link",
        "src",
        "src/main.rs",
        "src/lib",
        "src/lib/mod.rs",
        "README.md",
        "readme-link",
    ]
}

#[test]
fn unchanged_entries_show_sources_inode_numbers_and_a_remount_the_same() {
    let scene = Scene::new();
    let paths = tree(&scene);
    let mut seen = Vec::new();
    for round in 0..2 {
        let view = scene.mount(&[]);
        let numbers: Vec<u64> = paths.iter().map(|p| ino(&view.m(p))).collect();
        for (path, number) in paths.iter().zip(&numbers) {
            assert_eq!(
                *number,
                ino(&scene.s(path)),
                "st_ino of {path} (mount {round})"
            );
        }
        assert_eq!(
            ino(view.mnt()),
            ino(&scene.src),
            "the root shows SOURCE's number"
        );
        // readdir agrees with stat (readdirplus hands out the same nodes).
        for entry in fs::read_dir(view.m("src")).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(
                std::os::unix::fs::DirEntryExt::ino(&entry),
                ino(&entry.path()),
                "{:?}",
                entry.path()
            );
        }
        seen.push(numbers);
    }
    assert_eq!(seen[0], seen[1], "a remount shows the same numbers");
}

#[test]
fn a_copy_up_keeps_its_number_and_overlay_entries_get_a_range_of_their_own() {
    let scene = Scene::new();
    scene.file("dir/file.txt");
    scene.file("dir/other.txt");
    let source: Vec<u64> = ["dir", "dir/file.txt", "dir/other.txt"]
        .iter()
        .map(|p| ino(&scene.s(p)))
        .collect();
    let ov = scene.base().join("ov");
    let ov = ov.to_str().unwrap();
    let (made, made_dir);
    {
        let view = scene.mount(&["--overlay", ov]);
        let before = ino(&view.m("dir/file.txt"));
        assert_eq!(before, source[1]);
        fs::write(view.m("dir/file.txt"), b"changed\n").unwrap();
        assert_eq!(
            ino(&view.m("dir/file.txt")),
            before,
            "copy-up keeps the number"
        );
        fs::write(view.m("dir/new.txt"), b"new\n").unwrap();
        fs::create_dir(view.m("newdir")).unwrap();
        made = ino(&view.m("dir/new.txt"));
        made_dir = ino(&view.m("newdir"));
        for number in [made, made_dir] {
            assert!(
                number >= 1 << 62,
                "an entry made only in the overlay gets a number from its own range: {number}"
            );
            assert!(!source.contains(&number));
        }
        assert_eq!(ino(&view.m("dir")), source[0], "a copied-up directory too");
    }
    let view = scene.mount(&["--overlay", ov]);
    assert_eq!(ino(&view.m("dir")), source[0]);
    assert_eq!(ino(&view.m("dir/file.txt")), source[1], "after a remount");
    assert_eq!(ino(&view.m("dir/other.txt")), source[2]);
    assert_eq!(ino(&view.m("dir/new.txt")), made);
    assert_eq!(ino(&view.m("newdir")), made_dir);
    assert_eq!(fs::read(view.m("dir/file.txt")).unwrap(), b"changed\n");
}

/// Makes a file at `path` in SOURCE with `content` until the file system gives it the inode
/// number `number` (ext4 and most others give a freed number again soon), trying `tries`
/// files; those that got another number are moved aside. Whether it happened: another process
/// may take the number first.
fn make_with_number(path: &Path, content: &[u8], number: u64, tries: usize) -> bool {
    let aside = path.with_extension("aside");
    fs::create_dir_all(&aside).unwrap();
    for i in 0..tries {
        fs::write(path, content).unwrap();
        if ino(path) == number {
            return true;
        }
        fs::rename(path, aside.join(i.to_string())).unwrap();
    }
    false
}

#[test]
fn a_number_given_again_while_the_kernel_holds_the_old_file_is_never_confused() {
    let scene = Scene::new();
    let view = scene.mount(&[]);
    // A descriptor keeps the old node alive in the kernel (a read-only view opens nothing in
    // the daemon, so SOURCE's inode is freed when the file is deleted there). Other processes
    // may take the freed number first, so each round tries a new file, within a time bound.
    let started = Instant::now();
    let (name, mut old, number) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the file system never gave a freed inode number again within 60 s; this test needs one that does (ext4, xfs and btrfs do)"
        );
        let name = format!("a{}", started.elapsed().as_nanos());
        scene.file_with(&name, b"the old file\n");
        let old = File::open(view.m(&name)).unwrap();
        let number = old.metadata().unwrap().ino();
        assert_eq!(number, ino(&scene.s(&name)));
        fs::remove_file(scene.s(&name)).unwrap();
        if make_with_number(&scene.s(&name), b"the new file\n", number, 200) {
            break (name, old, number);
        }
    };

    // The view shows the new file (inotify tells the kernel at once; poll for slow machines).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if fs::read(view.m(&name)).is_ok_and(|c| c == b"the new file\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the view never showed the new file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let new = ino(&view.m(&name));
    assert_ne!(
        new, number,
        "while the old node lives, the new file gets a number of its own"
    );
    // The old descriptor never reaches the new file.
    let mut data = Vec::new();
    let read = old.read_to_end(&mut data);
    assert!(
        read.is_err() || data != b"the new file\n",
        "the old descriptor read the new file: {read:?} {:?}",
        String::from_utf8_lossy(&data)
    );
    assert_ne!(
        old.metadata().map(|m| m.ino()).ok(),
        Some(new),
        "the old descriptor is not the new file"
    );
    drop(old);
    // Once the kernel forgets the old node, a remount shows SOURCE's number again.
    drop(view);
    let view = scene.mount(&[]);
    assert_eq!(ino(&view.m(&name)), number);
}
