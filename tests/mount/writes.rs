//! Deny mode: every write operation of SPEC §3 answers EROFS and SOURCE stays byte-for-byte,
//! mode-for-mode the same.

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::*;

/// SOURCE for the write tests: a file with a user xattr, a directory with a file, an empty
/// directory, a symlink, and a hidden `.env`.
fn write_scene() -> Scene {
    let s = Scene::new();
    let readme = s.file("README.md");
    lsetxattr(&readme, b"user.x", b"original").expect("set user.x in SOURCE");
    s.file("d/f.txt");
    s.dir("e");
    s.symlink("l", "README.md");
    s.file_with(".env", b"TOKEN=abc\n");
    s
}

/// Mounts the write scene with the default (deny) policy, runs `op` against the mount, asserts
/// it failed with EROFS, and asserts SOURCE is unchanged both while mounted and after.
fn refused(what: &str, op: impl FnOnce(&Path) -> io::Result<()>) {
    let s = write_scene();
    let before = tree_digest(&s.src);
    {
        let m = s.mount(&[]);
        assert_errno(op(m.mnt()), libc::EROFS, what);
        assert_same_tree(&before, &tree_digest(&s.src), what);
        // The view still shows the original state.
        assert_visible(&s, "README.md");
        assert_visible(&s, "d/f.txt");
        assert_listing(m.mnt(), &["README.md", "d", "e", "l"]);
    }
    assert_same_tree(
        &before,
        &tree_digest(&s.src),
        &format!("{what}, after unmount"),
    );
}

#[test]
fn create_new_file_is_erofs() {
    refused("create", |m| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("new.txt"))
            .map(drop)
    });
}

#[test]
fn create_in_subdirectory_is_erofs() {
    refused("create d/new.txt", |m| {
        fs::File::create(m.join("d/new.txt")).map(drop)
    });
}

#[test]
fn create_over_existing_file_is_erofs() {
    refused("creat(README.md)", |m| {
        fs::File::create(m.join("README.md")).map(drop)
    });
}

#[test]
fn mkdir_is_erofs() {
    refused("mkdir", |m| fs::create_dir(m.join("newdir")));
}

#[test]
fn mknod_fifo_is_erofs() {
    refused("mknod fifo", |m| {
        mknod(&m.join("newfifo"), libc::S_IFIFO | 0o644, 0)
    });
}

#[test]
fn mknod_regular_is_erofs() {
    refused("mknod regular", |m| {
        mknod(&m.join("newreg"), libc::S_IFREG | 0o644, 0)
    });
}

#[test]
fn symlink_is_erofs() {
    refused("symlink", |m| {
        std::os::unix::fs::symlink("README.md", m.join("newlink"))
    });
}

#[test]
fn link_is_erofs() {
    refused("link", |m| {
        fs::hard_link(m.join("README.md"), m.join("README2.md"))
    });
}

#[test]
fn rename_file_is_erofs() {
    refused("rename file", |m| {
        fs::rename(m.join("README.md"), m.join("README.old"))
    });
}

#[test]
fn rename_directory_is_erofs() {
    refused("rename dir", |m| fs::rename(m.join("d"), m.join("d2")));
}

#[test]
fn rename_onto_existing_is_erofs() {
    refused("rename onto", |m| {
        fs::rename(m.join("d/f.txt"), m.join("README.md"))
    });
}

#[test]
fn unlink_file_is_erofs() {
    refused("unlink", |m| fs::remove_file(m.join("README.md")));
}

#[test]
fn unlink_symlink_is_erofs() {
    refused("unlink symlink", |m| fs::remove_file(m.join("l")));
}

#[test]
fn rmdir_is_erofs() {
    refused("rmdir", |m| fs::remove_dir(m.join("e")));
}

#[test]
fn open_for_write_is_erofs() {
    refused("open O_WRONLY", |m| {
        open_raw(&m.join("README.md"), libc::O_WRONLY).map(drop)
    });
}

#[test]
fn open_read_write_is_erofs() {
    refused("open O_RDWR", |m| {
        open_raw(&m.join("README.md"), libc::O_RDWR).map(drop)
    });
}

#[test]
fn open_append_is_erofs() {
    refused("open O_APPEND", |m| {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.join("README.md"))?;
        f.write_all(b"appended\n")
    });
}

#[test]
fn open_with_o_trunc_is_erofs() {
    refused("open O_RDONLY|O_TRUNC", |m| {
        open_raw(&m.join("README.md"), libc::O_RDONLY | libc::O_TRUNC).map(drop)
    });
}

#[test]
fn reopen_for_write_through_proc_fd_is_erofs() {
    refused("reopen /proc/self/fd/N for write", |m| {
        let f = fs::File::open(m.join("README.md"))?;
        let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
        open_raw(Path::new(&proc), libc::O_WRONLY).map(drop)
    });
}

#[test]
fn truncate_is_erofs() {
    refused("truncate", |m| truncate(&m.join("README.md"), 0));
}

#[test]
fn chmod_is_erofs() {
    refused("chmod", |m| {
        fs::set_permissions(m.join("README.md"), fs::Permissions::from_mode(0o4777))
    });
}

#[test]
fn chmod_directory_is_erofs() {
    refused("chmod dir", |m| {
        fs::set_permissions(m.join("d"), fs::Permissions::from_mode(0o700))
    });
}

#[test]
fn chown_is_erofs() {
    refused("chown", |m| {
        std::os::unix::fs::chown(m.join("README.md"), Some(65534), Some(65534))
    });
}

#[test]
fn lchown_symlink_is_erofs() {
    refused("lchown", |m| {
        std::os::unix::fs::lchown(m.join("l"), Some(65534), Some(65534))
    });
}

#[test]
fn utimens_is_erofs() {
    refused("utimensat", |m| {
        utimens(&m.join("README.md"), 946_684_800, false)
    });
}

#[test]
fn futimens_on_a_read_only_descriptor_is_erofs() {
    refused("futimens", |m| {
        let f = fs::File::open(m.join("README.md"))?;
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800))
    });
}

#[test]
fn setxattr_is_erofs() {
    refused("setxattr", |m| {
        lsetxattr(&m.join("README.md"), b"user.x", b"changed")
    });
}

#[test]
fn setxattr_new_attribute_is_erofs() {
    refused("setxattr new", |m| {
        lsetxattr(&m.join("d"), b"user.new", b"v")
    });
}

#[test]
fn removexattr_is_erofs() {
    refused("removexattr", |m| {
        lremovexattr(&m.join("README.md"), b"user.x")
    });
}

/// Writes aimed at a hidden name answer exactly as they do for a name that does not exist:
/// the errno depends on the operation only, never on whether the hidden entry exists.
#[test]
fn writes_to_hidden_names_reveal_nothing_and_change_nothing() {
    type Op = fn(&Path, &Path) -> io::Result<()>;
    let ops: Vec<(&str, Op)> = vec![
        ("create", |_, p| {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map(drop)
        }),
        ("create_new", |_, p| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map(drop)
        }),
        ("open O_WRONLY", |_, p| {
            open_raw(p, libc::O_WRONLY).map(drop)
        }),
        ("mkdir", |_, p| fs::create_dir(p)),
        ("mknod", |_, p| mknod(p, libc::S_IFIFO | 0o644, 0)),
        ("symlink", |_, p| std::os::unix::fs::symlink("x", p)),
        ("link onto", |m, p| fs::hard_link(m.join("README.md"), p)),
        ("rename onto", |m, p| fs::rename(m.join("README.md"), p)),
        ("rename from", |m, p| fs::rename(p, m.join("moved"))),
        ("unlink", |_, p| fs::remove_file(p)),
        ("rmdir", |_, p| fs::remove_dir(p)),
        ("truncate", |_, p| truncate(p, 0)),
        ("chmod", |_, p| {
            fs::set_permissions(p, fs::Permissions::from_mode(0o777))
        }),
        ("chown", |_, p| {
            std::os::unix::fs::chown(p, Some(65534), Some(65534))
        }),
        ("utimens", |_, p| utimens(p, 0, true)),
        ("setxattr", |_, p| lsetxattr(p, b"user.y", b"v")),
        ("removexattr", |_, p| lremovexattr(p, b"user.x")),
    ];
    let s = write_scene();
    s.file(".ssh/id_rsa");
    lsetxattr(&s.s(".env"), b"user.x", b"secret").unwrap();
    let before = tree_digest(&s.src);
    let m = s.mount(&[]);
    for (what, op) in ops {
        // Each hidden path is compared with an absent path of the same shape: a name in the
        // root, or a name inside a directory.
        let pairs = [
            (m.m(".env"), m.m("no-such-name")),
            (m.m(".ssh"), m.m("no-such-name")),
            (m.m(".env.production"), m.m("no-such-name")),
            (m.m(".ssh/id_rsa"), m.m("no-such-dir/id_rsa")),
            (m.m(".ssh/new"), m.m("no-such-dir/new")),
        ];
        for (hidden, absent) in pairs {
            let reference = errno_of(&op(m.mnt(), &absent))
                .unwrap_or_else(|d| panic!("{what} on absent {} {d}", absent.display()));
            assert!(
                [libc::EROFS, libc::ENOENT, libc::EACCES].contains(&reference),
                "{what} on absent {}: {}",
                absent.display(),
                errno_name(reference)
            );
            let got = errno_of(&op(m.mnt(), &hidden))
                .unwrap_or_else(|d| panic!("{what} on hidden {} {d}", hidden.display()));
            assert_eq!(
                errno_name(got),
                errno_name(reference),
                "{what} on hidden {} answers differently from absent {}",
                hidden.display(),
                absent.display()
            );
        }
        assert_same_tree(&before, &tree_digest(&s.src), what);
    }
    drop(m);
    assert_same_tree(&before, &tree_digest(&s.src), "after unmount");
}
