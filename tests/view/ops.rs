//! The view's operations in each write mode, driven without the kernel: what is seen, what may
//! change, where the change lands, and the errno of each refusal (SPEC §2, §3, §4).

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::time::{Duration, UNIX_EPOCH};

use libc::{EACCES, EINVAL, ENOENT, ENOSPC, ENOTEMPTY, EPERM, EROFS, EXDEV};
use scopefs::path::Name;
use scopefs::sys::FileType;
use scopefs::sys::write::SetTime;
use scopefs::view::{Caller, SetAttr};

use crate::harness::ROOT_CALLER;
use crate::{Scene, errno, tree};

const DENY: &str = "";
const OVERLAY: &str = "[writes]\nmode = \"overlay\"\n";
const DIRECT: &str = "[writes]\nmode = \"direct\"\nwritable = [\"src/\"]\n";

/// A SOURCE with visible files, secrets the default policy hides, and a directory that holds
/// only hidden entries.
fn scene() -> Scene {
    let s = Scene::new();
    s.file("README", b"hello\n");
    s.file("src/a.rs", b"fn a() {}\n");
    s.file("src/key.pem", b"-----BEGIN-----\n");
    s.file(".env", b"SECRET=1\n");
    s.file("config/.env.local", b"SECRET=2\n");
    s
}

#[test]
fn lookup_and_readdir_show_only_what_the_policy_shows() {
    let s = scene();
    symlink(".env", s.src.join("to-secret")).unwrap();
    symlink("README", s.src.join("to-readme")).unwrap();
    let v = s.view(DENY);
    assert_eq!(
        v.readdir("").unwrap(),
        ["README", "config", "src", "to-readme"]
    );
    assert_eq!(v.readdir("src").unwrap(), ["a.rs"]);
    assert!(v.readdir("config").unwrap().is_empty());
    assert_eq!(v.read("src/a.rs").unwrap(), b"fn a() {}\n");
    assert_eq!(v.read("to-readme").unwrap(), b"hello\n");
    for hidden in [
        ".env",
        ".ENV",
        "config/.env.local",
        "src/key.pem",
        "to-secret",
    ] {
        assert_eq!(errno(v.lstat(hidden)), ENOENT, "{hidden}");
    }
    assert_eq!(errno(v.lstat("nothing")), ENOENT);
    // A directory's size and link count say nothing of what it hides.
    let config = v.lstat("config").unwrap().attr;
    assert_eq!(
        (config.kind, config.nlink, config.size),
        (FileType::Dir, 1, 4096)
    );
}

#[test]
fn a_read_only_view_refuses_every_change_with_erofs() {
    let s = scene();
    let before = tree(&s.src);
    let v = s.view(DENY);
    assert_eq!(errno(v.create("new", b"x")), EROFS);
    assert_eq!(errno(v.create("README", b"x")), EROFS);
    assert_eq!(errno(v.write_at("README", 0, b"x")), EROFS);
    assert_eq!(errno(v.truncate("README", 0)), EROFS);
    assert_eq!(errno(v.chmod("README", 0o600)), EROFS);
    assert_eq!(errno(v.mkdir("d", 0o755)), EROFS);
    assert_eq!(errno(v.symlink(b"README", "l")), EROFS);
    assert_eq!(errno(v.unlink("README")), EROFS);
    assert_eq!(errno(v.rename("README", "moved")), EROFS);
    assert_eq!(errno(v.rmdir("config")), EROFS);
    // Hidden is absent, whatever the mode.
    assert_eq!(errno(v.unlink(".env")), ENOENT);
    assert_eq!(tree(&s.src), before);
    assert!(!s.overlay.exists());
}

#[test]
fn direct_writes_change_source_on_writable_paths_only() {
    let s = scene();
    s.file("src/d/.env", b"SECRET=3\n");
    let v = s.view(DIRECT);
    v.create("src/new.rs", b"new\n").unwrap();
    assert_eq!(fs::read(s.src.join("src/new.rs")).unwrap(), b"new\n");
    v.write_at("src/a.rs", 0, b"FN").unwrap();
    assert_eq!(fs::read(s.src.join("src/a.rs")).unwrap(), b"FN a() {}\n");
    v.rename("src/a.rs", "src/b.rs").unwrap();
    assert!(s.src.join("src/b.rs").exists() && !s.src.join("src/a.rs").exists());
    v.chmod("src/b.rs", 0o4755).unwrap();
    assert_eq!(
        fs::metadata(s.src.join("src/b.rs")).unwrap().mode() & 0o7777,
        0o755
    );
    v.mkdir("src/m", 0o750).unwrap();
    assert!(s.src.join("src/m").is_dir());
    // Not writable, or hidden: refused, and nothing of SOURCE changes.
    assert_eq!(errno(v.create("top", b"x")), EACCES);
    assert_eq!(errno(v.unlink("README")), EACCES);
    assert_eq!(errno(v.rename("src/b.rs", "b.rs")), EACCES);
    assert_eq!(errno(v.create("src/.env", b"x")), EACCES);
    assert!(!s.src.join("top").exists() && !s.src.join("src/.env").exists());
    // Nothing hidden is ever deleted: a directory holding a hidden entry is not empty.
    assert_eq!(errno(v.rmdir("src/d")), ENOTEMPTY);
    assert_eq!(fs::read(s.src.join("src/d/.env")).unwrap(), b"SECRET=3\n");
    v.unlink("src/new.rs").unwrap();
    assert!(!s.src.join("src/new.rs").exists());
    assert!(!s.overlay.exists(), "direct mode made an overlay");
}

#[test]
fn overlay_changes_land_in_upper_and_source_never_changes() {
    let s = scene();
    let before = tree(&s.src);
    let v = s.view(OVERLAY);
    v.create("new.txt", b"new\n").unwrap();
    v.write_at("README", 0, b"HE").unwrap();
    v.truncate("src/a.rs", 2).unwrap();
    v.chmod("README", 0o4700).unwrap();
    assert_eq!(errno(v.unlink("src/key.pem")), ENOENT);
    v.symlink(b"README", "link").unwrap();
    v.rename("new.txt", "renamed.txt").unwrap();
    v.unlink("src/a.rs").unwrap();
    v.mkdir("src/a.rs", 0o755).unwrap();
    let seen = v.snapshot();
    let dir_mode = |rel: &str| {
        let mode = fs::metadata(s.src.join(rel)).unwrap().mode() & 0o7777;
        format!("dir {mode:o}")
    };
    let want = [
        ("README", "file 700 \"HEllo\\n\"".to_owned()),
        ("config", dir_mode("config")),
        ("link", "symlink -> \"README\"".to_owned()),
        ("renamed.txt", "file 644 \"new\\n\"".to_owned()),
        ("src", dir_mode("src")),
        ("src/a.rs", "dir 755".to_owned()),
    ];
    let want: Vec<(String, String)> = want.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), want);
    assert_eq!(tree(&s.src), before, "SOURCE changed");
    // upper/ holds the copies, the new entries and the markers, in the OCI layer format.
    assert_eq!(fs::read(s.upper("README")).unwrap(), b"HEllo\n");
    assert_eq!(
        fs::metadata(s.upper("README")).unwrap().mode() & 0o7777,
        0o700
    );
    assert!(s.upper("renamed.txt").is_file() && !s.upper("new.txt").exists());
    // SOURCE's src/a.rs was a file: the directory made in its place hides it.
    assert!(s.upper("src/a.rs/.wh..wh..opq").is_file());
}

#[test]
fn overlay_deletions_leave_whiteouts_and_source_directories_do_not_move() {
    let s = scene();
    let v = s.view(OVERLAY);
    assert_eq!(errno(v.rename("src", "lib")), EXDEV);
    v.unlink("README").unwrap();
    assert!(s.upper(".wh.README").is_file());
    // Holding only hidden entries, it is empty in the view: it goes, its entries stay.
    v.rmdir("config").unwrap();
    assert!(s.upper(".wh.config").is_file());
    assert_eq!(v.readdir("").unwrap(), ["src"]);
    assert_eq!(
        fs::read(s.src.join("config/.env.local")).unwrap(),
        b"SECRET=2\n"
    );
    // A name made again after its deletion shows the new entry only.
    v.mkdir("config", 0o700).unwrap();
    assert!(v.readdir("config").unwrap().is_empty());
    assert!(!s.upper(".wh.config").exists());
    v.create("README", b"again\n").unwrap();
    assert_eq!(v.read("README").unwrap(), b"again\n");
    assert!(!s.upper(".wh.README").exists());
}

#[test]
fn reserved_names_and_device_nodes_are_refused_in_every_writable_mode() {
    for policy in [OVERLAY, DIRECT] {
        let s = scene();
        let v = s.view(policy);
        assert_eq!(errno(v.create("src/.wh.x", b"x")), EINVAL);
        assert_eq!(errno(v.mkdir("src/.wh..wh..opq", 0o755)), EINVAL);
        assert_eq!(errno(v.rename("src/a.rs", "src/.wh.a.rs")), EINVAL);
        assert_eq!(errno(v.rename("src/a.rs", ".wh.")), EINVAL);
        let parent = v.lstat("src").unwrap().ino;
        for (name, kind) in [("sda", libc::S_IFBLK), ("null", libc::S_IFCHR)] {
            let name = Name::new(name.as_bytes()).unwrap();
            let made = v.view.mknod(parent, &name, kind | 0o600, 0, ROOT_CALLER);
            assert_eq!(made.unwrap_err().errno(), EPERM);
        }
        assert_eq!(v.readdir("src").unwrap(), ["a.rs"]);
    }
}

#[test]
fn overlay_limits_refuse_with_enospc_and_keep_what_was_written() {
    let s = scene();
    let policy = format!("{OVERLAY}[limits]\noverlay_bytes = \"1 KiB\"\noverlay_files = 4\n");
    let v = s.view(&policy);
    v.create("a", &[b'a'; 600]).unwrap();
    assert_eq!(errno(v.create("b", &[b'b'; 600])), ENOSPC);
    assert_eq!(v.read("a").unwrap(), [b'a'; 600]);
    // `b` was made before its data was refused: two files, and room for two more.
    v.create("c", b"c").unwrap();
    v.create("d", b"d").unwrap();
    assert_eq!(errno(v.create("e", b"e")), ENOSPC);
    assert_eq!(errno(v.lstat("e")), ENOENT);
    assert_eq!(v.read("c").unwrap(), b"c");
}

#[test]
fn a_new_view_of_the_same_overlay_shows_the_same_tree() {
    let s = scene();
    let first = s.view(OVERLAY);
    first.create("src/new.rs", b"new\n").unwrap();
    first.unlink("README").unwrap();
    first.mkdir("out", 0o700).unwrap();
    first.write_at("src/a.rs", 3, b"b").unwrap();
    let seen = first.snapshot();
    // The overlay is locked while a view holds it.
    drop(first);
    let again = s.view(OVERLAY);
    assert_eq!(again.snapshot(), seen);
}

#[test]
fn setattr_changes_owner_and_times_in_the_copy() {
    let s = scene();
    let before = tree(&s.src);
    let v = s.view(OVERLAY);
    let ino = v.lstat("README").unwrap().ino;
    let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let set = SetAttr {
        uid: Some(1234),
        gid: Some(4321),
        mtime: Some(SetTime::At(t)),
        ..SetAttr::default()
    };
    let st = v.view.setattr(ino, set, None, ROOT_CALLER).unwrap().attr;
    assert_eq!((st.uid, st.gid, st.mtime), (1234, 4321, t));
    let copy = fs::metadata(s.upper("README")).unwrap();
    assert_eq!(
        (copy.uid(), copy.gid(), copy.mtime()),
        (1234, 4321, 1_000_000_000)
    );
    // Only root gives a file away.
    let user = Caller {
        uid: 1234,
        gid: 4321,
        ..ROOT_CALLER
    };
    let away = SetAttr {
        uid: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(
        v.view.setattr(ino, away, None, user).unwrap_err().errno(),
        EPERM
    );
    assert_eq!(tree(&s.src), before);
}
