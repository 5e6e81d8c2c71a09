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

/// Who answers a write in a deny view.
#[derive(Debug, Clone, Copy)]
enum Refuser {
    /// The default: the mount is `ro`, so the kernel refuses before asking the daemon.
    Kernel,
    /// With an audit log the mount is not `ro`: every write reaches the daemon, which must
    /// refuse it itself (and log it).
    Daemon,
}

/// Mounts the write scene with the deny policy, first `ro` (the kernel refuses) and then with
/// an audit log (the daemon refuses), runs `op` against each mount, asserts it failed with
/// EROFS, and asserts SOURCE is unchanged both while mounted and after. With the log, the
/// refusal must be logged as `denied` `EROFS` by `writes.mode=deny` for operation `logged_op`
/// on `logged_path`.
fn refused(what: &str, logged_op: &str, logged_path: &str, op: impl Fn(&Path) -> io::Result<()>) {
    refused_by(Refuser::Kernel, what, &op);
    let log = refused_by(Refuser::Daemon, what, &op);
    let denied: Vec<&serde_json::Value> = log
        .iter()
        .filter(|l| l["op"] == logged_op && l["path"] == logged_path)
        .collect();
    assert!(
        !denied.is_empty(),
        "{what}: no {logged_op} of {logged_path} in the audit log: {log:?}"
    );
    for line in denied {
        assert_eq!(line["event"], "denied", "{what}: {line}");
        assert_eq!(line["errno"], "EROFS", "{what}: {line}");
        assert_eq!(line["rule"], "writes.mode=deny", "{what}: {line}");
    }
}

/// One mount of [`refused`]; returns the audit log's lines (none for the kernel).
fn refused_by(
    by: Refuser,
    what: &str,
    op: &impl Fn(&Path) -> io::Result<()>,
) -> Vec<serde_json::Value> {
    let what = format!("{what} ({by:?} refuses)");
    let s = write_scene();
    let log = s.base().join("audit.jsonl");
    let before = tree_digest(&s.src);
    {
        let m = match by {
            Refuser::Kernel => s.mount(&[]),
            Refuser::Daemon => s.mount(&["--audit-log", log.to_str().unwrap()]),
        };
        let read_only = m.entry.mount_options.iter().any(|o| o == "ro");
        assert_eq!(
            read_only,
            matches!(by, Refuser::Kernel),
            "{what}: mount options {:?}",
            m.entry.mount_options
        );
        assert_errno(op(m.mnt()), libc::EROFS, &what);
        assert_same_tree(&before, &tree_digest(&s.src), &what);
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
    audit_lines(&log)
}

/// The lines of an audit log (none when there is no log).
fn audit_lines(log: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn create_new_file_is_erofs() {
    refused("create", "create", "new.txt", |m| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("new.txt"))
            .map(drop)
    });
}

#[test]
fn create_in_subdirectory_is_erofs() {
    refused("create d/new.txt", "create", "d/new.txt", |m| {
        fs::File::create(m.join("d/new.txt")).map(drop)
    });
}

#[test]
fn create_over_existing_file_is_erofs() {
    refused("creat(README.md)", "open", "README.md", |m| {
        fs::File::create(m.join("README.md")).map(drop)
    });
}

#[test]
fn mkdir_is_erofs() {
    refused("mkdir", "mkdir", "newdir", |m| {
        fs::create_dir(m.join("newdir"))
    });
}

#[test]
fn mknod_fifo_is_erofs() {
    refused("mknod fifo", "mknod", "newfifo", |m| {
        mknod(&m.join("newfifo"), libc::S_IFIFO | 0o644, 0)
    });
}

#[test]
fn mknod_regular_is_erofs() {
    refused("mknod regular", "mknod", "newreg", |m| {
        mknod(&m.join("newreg"), libc::S_IFREG | 0o644, 0)
    });
}

#[test]
fn symlink_is_erofs() {
    refused("symlink", "symlink", "newlink", |m| {
        std::os::unix::fs::symlink("README.md", m.join("newlink"))
    });
}

#[test]
fn link_is_erofs() {
    refused("link", "link", "README2.md", |m| {
        fs::hard_link(m.join("README.md"), m.join("README2.md"))
    });
}

#[test]
fn rename_file_is_erofs() {
    refused("rename file", "rename", "README.md", |m| {
        fs::rename(m.join("README.md"), m.join("README.old"))
    });
}

#[test]
fn rename_directory_is_erofs() {
    refused("rename dir", "rename", "d", |m| {
        fs::rename(m.join("d"), m.join("d2"))
    });
}

#[test]
fn rename_onto_existing_is_erofs() {
    refused("rename onto", "rename", "d/f.txt", |m| {
        fs::rename(m.join("d/f.txt"), m.join("README.md"))
    });
}

#[test]
fn unlink_file_is_erofs() {
    refused("unlink", "unlink", "README.md", |m| {
        fs::remove_file(m.join("README.md"))
    });
}

#[test]
fn unlink_symlink_is_erofs() {
    refused("unlink symlink", "unlink", "l", |m| {
        fs::remove_file(m.join("l"))
    });
}

#[test]
fn rmdir_is_erofs() {
    refused("rmdir", "rmdir", "e", |m| fs::remove_dir(m.join("e")));
}

#[test]
fn open_for_write_is_erofs() {
    refused("open O_WRONLY", "open", "README.md", |m| {
        open_raw(&m.join("README.md"), libc::O_WRONLY).map(drop)
    });
}

#[test]
fn open_read_write_is_erofs() {
    refused("open O_RDWR", "open", "README.md", |m| {
        open_raw(&m.join("README.md"), libc::O_RDWR).map(drop)
    });
}

#[test]
fn open_append_is_erofs() {
    refused("open O_APPEND", "open", "README.md", |m| {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.join("README.md"))?;
        f.write_all(b"appended\n")
    });
}

#[test]
fn open_with_o_trunc_is_erofs() {
    refused("open O_RDONLY|O_TRUNC", "setattr", "README.md", |m| {
        open_raw(&m.join("README.md"), libc::O_RDONLY | libc::O_TRUNC).map(drop)
    });
}

#[test]
fn reopen_for_write_through_proc_fd_is_erofs() {
    refused(
        "reopen /proc/self/fd/N for write",
        "open",
        "README.md",
        |m| {
            let f = fs::File::open(m.join("README.md"))?;
            let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
            open_raw(Path::new(&proc), libc::O_WRONLY).map(drop)
        },
    );
}

#[test]
fn truncate_is_erofs() {
    refused("truncate", "setattr", "README.md", |m| {
        truncate(&m.join("README.md"), 0)
    });
}

#[test]
fn chmod_is_erofs() {
    refused("chmod", "setattr", "README.md", |m| {
        fs::set_permissions(m.join("README.md"), fs::Permissions::from_mode(0o4777))
    });
}

#[test]
fn chmod_directory_is_erofs() {
    refused("chmod dir", "setattr", "d", |m| {
        fs::set_permissions(m.join("d"), fs::Permissions::from_mode(0o700))
    });
}

#[test]
fn chown_is_erofs() {
    refused("chown", "setattr", "README.md", |m| {
        std::os::unix::fs::chown(m.join("README.md"), Some(65534), Some(65534))
    });
}

#[test]
fn lchown_symlink_is_erofs() {
    refused("lchown", "setattr", "l", |m| {
        std::os::unix::fs::lchown(m.join("l"), Some(65534), Some(65534))
    });
}

#[test]
fn utimens_is_erofs() {
    refused("utimensat", "setattr", "README.md", |m| {
        utimens(&m.join("README.md"), 946_684_800, false)
    });
}

#[test]
fn futimens_on_a_read_only_descriptor_is_erofs() {
    refused("futimens", "setattr", "README.md", |m| {
        let f = fs::File::open(m.join("README.md"))?;
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800))
    });
}

#[test]
fn setxattr_is_erofs() {
    refused("setxattr", "setxattr", "README.md", |m| {
        lsetxattr(&m.join("README.md"), b"user.x", b"changed")
    });
}

#[test]
fn setxattr_new_attribute_is_erofs() {
    refused("setxattr new", "setxattr", "d", |m| {
        lsetxattr(&m.join("d"), b"user.new", b"v")
    });
}

#[test]
fn removexattr_is_erofs() {
    refused("removexattr", "removexattr", "README.md", |m| {
        lremovexattr(&m.join("README.md"), b"user.x")
    });
}

/// Writes aimed at a hidden name answer exactly as they do for a name that does not exist:
/// the errno depends on the operation only, never on whether the hidden entry exists.
#[test]
fn writes_to_hidden_names_reveal_nothing_and_change_nothing() {
    let ops: Vec<(&str, WriteOp)> = vec![
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
    for by in [Refuser::Kernel, Refuser::Daemon] {
        hidden_names_answer_as_absent_ones(by, &ops);
    }
}

/// A write aimed at a name: the mountpoint and the name's path in the view.
type WriteOp = fn(&Path, &Path) -> io::Result<()>;

fn hidden_names_answer_as_absent_ones(by: Refuser, ops: &[(&str, WriteOp)]) {
    let s = write_scene();
    s.file(".ssh/id_rsa");
    lsetxattr(&s.s(".env"), b"user.x", b"secret").unwrap();
    let before = tree_digest(&s.src);
    let log = s.base().join("audit.jsonl");
    let m = match by {
        Refuser::Kernel => s.mount(&[]),
        Refuser::Daemon => s.mount(&["--audit-log", log.to_str().unwrap()]),
    };
    for &(what, op) in ops {
        let what = format!("{what} ({by:?} refuses)");
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
        assert_same_tree(&before, &tree_digest(&s.src), &what);
    }
    drop(m);
    assert_same_tree(&before, &tree_digest(&s.src), "after unmount");
}

/// `fallocate` and `copy_file_range` change a file only through a descriptor open for
/// writing, which neither refuser hands out (the daemon refuses the open itself and logs it);
/// on a read-only descriptor the kernel answers `EBADF` before any request is sent.
#[test]
fn fallocate_and_copy_file_range_get_no_descriptor_to_write_through() {
    for by in [Refuser::Kernel, Refuser::Daemon] {
        let what = |op: &str| format!("{op} ({by:?} refuses)");
        let s = write_scene();
        let outside = s.base().join("outside.txt");
        fs::write(&outside, b"from outside the view\n").unwrap();
        let log = s.base().join("audit.jsonl");
        let before = tree_digest(&s.src);
        let m = match by {
            Refuser::Kernel => s.mount(&[]),
            Refuser::Daemon => s.mount(&["--audit-log", log.to_str().unwrap()]),
        };
        let file = m.m("README.md");
        assert_errno(
            open_raw(&file, libc::O_WRONLY),
            libc::EROFS,
            &what("open for fallocate"),
        );
        let read_only = fs::File::open(&file).unwrap();
        assert_errno(
            fallocate_fd(&read_only, 0, 1 << 20),
            libc::EBADF,
            &what("fallocate on a read-only descriptor"),
        );
        let from = fs::File::open(&outside).unwrap();
        assert_errno(
            copy_file_range(&from, &read_only, 8),
            libc::EBADF,
            &what("copy_file_range into a read-only descriptor"),
        );
        drop(read_only);
        assert_same_tree(&before, &tree_digest(&s.src), &what("fallocate"));
        drop(m);
        if matches!(by, Refuser::Daemon) {
            let lines = audit_lines(&log);
            assert!(
                lines.iter().any(|l| l["op"] == "open"
                    && l["path"] == "README.md"
                    && l["errno"] == "EROFS"),
                "the refused open is logged: {lines:?}"
            );
        }
        assert_same_tree(&before, &tree_digest(&s.src), &what("after unmount"));
    }
}
