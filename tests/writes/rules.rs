//! The "Always" rules of SPEC §3 in both write modes: reserved `.wh.*` names, device nodes,
//! setuid/setgid, `user.*` attributes only, ioctls, `nosuid,nodev`; renameat2 flags; new
//! entries owned by the caller; and a hard link cannot turn a read-only file writable.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

/// SOURCE: `w/` (writable) with two files, a directory and a hidden `.env`; `ro/` (visible,
/// not writable) with a file.
pub fn basic_rig(mode: Mode) -> Rig {
    let r = Rig::new(mode);
    let s = &r.scene;
    s.file("w/f.txt");
    s.file("w/g.txt");
    s.file("w/sub/x.txt");
    s.dir("w/d");
    s.file_with("w/.env", b"TOKEN=1\n");
    s.file("ro/f.txt");
    r
}

/// Mount arguments for [`basic_rig`]: default view, only `/w/` writable.
pub fn basic_args(r: &Rig) -> Vec<String> {
    r.policy_args("", "writable = [\"/w/\"]", "")
}

/// Runs `test` in overlay and in direct mode, both always, and fails with what failed in each.
fn both(test: impl Fn(Mode)) {
    let failed: Vec<String> = [Mode::Overlay, Mode::Direct]
        .into_iter()
        .filter_map(|mode| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(mode)))
                .err()
                .map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    format!("{} mode: {msg}", mode.name())
                })
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn reserved_whiteout_names_are_einval() {
    both(|mode| {
        let r = basic_rig(mode);
        let before = tree_digest(&r.scene.src);
        let m = r.mount(&basic_args(&r));
        let w = m.m("w");
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        assert_errno(
            fs::File::create(w.join(".wh.f.txt")),
            libc::EINVAL,
            &ctx("create .wh.f.txt"),
        );
        assert_errno(
            fs::create_dir(w.join(".wh..wh..opq")),
            libc::EINVAL,
            &ctx("mkdir .wh..wh..opq"),
        );
        assert_errno(
            mknod(&w.join(".wh.p"), libc::S_IFIFO | 0o644, 0),
            libc::EINVAL,
            &ctx("mknod .wh.p"),
        );
        assert_errno(
            std::os::unix::fs::symlink("f.txt", w.join(".wh.l")),
            libc::EINVAL,
            &ctx("symlink .wh.l"),
        );
        assert_errno(
            fs::hard_link(w.join("f.txt"), w.join(".wh.k")),
            libc::EINVAL,
            &ctx("link .wh.k"),
        );
        assert_errno(
            fs::rename(w.join("g.txt"), w.join(".wh.g.txt")),
            libc::EINVAL,
            &ctx("rename onto .wh.g.txt"),
        );
        assert_eq!(
            fs::read(w.join("f.txt")).unwrap(),
            content_for("w/f.txt".as_ref()),
            "{}",
            ctx("f.txt stays visible")
        );
        assert_eq!(
            names(&w),
            ["d", "f.txt", "g.txt", "sub"],
            "{}",
            ctx("listing")
        );
        drop(m);
        if mode == Mode::Overlay {
            assert_same_tree(&before, &tree_digest(&r.scene.src), "reserved names");
            assert!(
                !exists(&r.upper("w/f.txt")),
                "a refused .wh.f.txt left a whiteout behind"
            );
        }
    });
}

#[test]
fn device_mknod_is_eperm() {
    both(|mode| {
        let r = basic_rig(mode);
        let before = tree_digest(&r.scene.src);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        assert_errno(
            mknod(&m.m("w/null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3)),
            libc::EPERM,
            &ctx("mknod c 1 3"),
        );
        assert_errno(
            mknod(&m.m("w/sda"), libc::S_IFBLK | 0o660, libc::makedev(8, 0)),
            libc::EPERM,
            &ctx("mknod b 8 0"),
        );
        assert!(!exists(&m.m("w/null")) && !exists(&m.m("w/sda")));
        drop(m);
        assert_same_tree(&before, &tree_digest(&r.scene.src), &ctx("device mknod"));
    });
}

#[test]
fn setuid_and_setgid_are_stripped_on_chmod_and_create() {
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        fs::set_permissions(m.m("w/f.txt"), fs::Permissions::from_mode(0o6755))
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("chmod 6755")));
        for path in [m.m("w/f.txt"), r.layer("w/f.txt")] {
            assert_eq!(
                perm(&path),
                0o755,
                "{} {}",
                ctx("chmod 6755"),
                path.display()
            );
        }
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o6755)
            .open(m.m("w/new"))
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("create 6755")));
        drop(f);
        for path in [m.m("w/new"), r.layer("w/new")] {
            assert_eq!(
                perm(&path) & 0o6000,
                0,
                "{} {}",
                ctx("create 6755"),
                path.display()
            );
        }
    });
}

/// chmod, chown and utimensat of entries the view already holds in its writable layer (a file
/// it made, a file changed before, a symlink it made) change those entries and nothing else:
/// setuid and setgid are still stripped, and a symlink is changed itself, not its target.
#[test]
fn attributes_of_entries_already_written_change_those_entries() {
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str, rel: &str| format!("{} mode: {op} {rel}", mode.name());
        fs::write(m.m("w/new.txt"), b"new\n").unwrap();
        fs::set_permissions(m.m("w/f.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        for rel in ["w/new.txt", "w/f.txt"] {
            fs::set_permissions(m.m(rel), fs::Permissions::from_mode(0o6604))
                .unwrap_or_else(|e| panic!("{}: {e}", ctx("chmod", rel)));
            lchown(&m.m(rel), 1234, 4321).unwrap_or_else(|e| panic!("{}: {e}", ctx("chown", rel)));
            utimens(&m.m(rel), 946_684_800, false)
                .unwrap_or_else(|e| panic!("{}: {e}", ctx("utimensat", rel)));
            for path in [m.m(rel), r.layer(rel)] {
                let md = fs::symlink_metadata(&path).unwrap();
                assert_eq!(md.mode() & 0o7777, 0o604, "{}", ctx("mode of", rel));
                assert_eq!(
                    (md.uid(), md.gid()),
                    (1234, 4321),
                    "{}",
                    ctx("owner of", rel)
                );
                assert_eq!(md.mtime(), 946_684_800, "{}", ctx("mtime of", rel));
            }
        }
        std::os::unix::fs::symlink("f.txt", m.m("w/link")).unwrap();
        let target = fs::symlink_metadata(r.layer("w/f.txt")).unwrap();
        lchown(&m.m("w/link"), 2222, 3333)
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("lchown", "w/link")));
        utimens(&m.m("w/link"), 1_000_000_000, true)
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("utimensat nofollow", "w/link")));
        for path in [m.m("w/link"), r.layer("w/link")] {
            let md = fs::symlink_metadata(&path).unwrap();
            assert!(md.file_type().is_symlink(), "{}", ctx("type of", "w/link"));
            assert_eq!(
                (md.uid(), md.gid()),
                (2222, 3333),
                "{}",
                ctx("owner of", "w/link")
            );
            assert_eq!(md.mtime(), 1_000_000_000, "{}", ctx("mtime of", "w/link"));
        }
        let after = fs::symlink_metadata(r.layer("w/f.txt")).unwrap();
        assert_eq!(
            (after.uid(), after.gid(), after.mtime()),
            (target.uid(), target.gid(), target.mtime()),
            "{}",
            ctx("the link's target changed with", "w/link")
        );
    });
}

#[test]
fn copy_up_strips_setuid_and_security_capability() {
    let r = basic_rig(Mode::Overlay);
    let suid = r.scene.file("w/suid");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    // A version-2 file capability granting CAP_NET_RAW (bit 13), permitted and effective.
    let cap: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let capped = r.scene.file("w/capped");
    lsetxattr(&capped, b"security.capability", &cap).expect("set a file capability in SOURCE");
    lsetxattr(&capped, b"user.keep", b"1").unwrap();
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&basic_args(&r));
    for rel in ["w/suid", "w/capped"] {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.m(rel))
            .unwrap_or_else(|e| panic!("open {rel} for append: {e}"));
        f.write_all(b"more\n").unwrap();
    }
    assert_eq!(perm(&r.upper("w/suid")), 0o755, "copy-up of a setuid file");
    assert_eq!(
        perm(&m.m("w/suid")),
        0o755,
        "the view of the copied-up setuid file"
    );
    assert_errno(
        lgetxattr(&r.upper("w/capped"), b"security.capability"),
        libc::ENODATA,
        "security.capability on the copy in upper/",
    );
    assert_eq!(
        lgetxattr(&r.upper("w/capped"), b"user.keep").expect("user.* copied up"),
        b"1"
    );
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&r.scene.src),
        "copy-up of setid files",
    );
}

#[test]
fn only_user_xattrs_can_be_set() {
    both(|mode| {
        let r = basic_rig(mode);
        let before = tree_digest(&r.scene.src);
        let m = r.mount(&basic_args(&r));
        let f = m.m("w/f.txt");
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        for name in [&b"trusted.x"[..], b"security.x"] {
            let what = ctx(&format!("setxattr {}", String::from_utf8_lossy(name)));
            assert_errno(lsetxattr(&f, name, b"v"), libc::EOPNOTSUPP, &what);
        }
        if mode == Mode::Overlay {
            // Nothing was copied up for a refused attribute.
            assert_same_tree(&before, &tree_digest(&r.scene.src), &ctx("refused xattrs"));
        }
        lsetxattr(&f, b"user.ok", b"1").unwrap_or_else(|e| panic!("{}: {e}", ctx("user.ok")));
        assert_eq!(lgetxattr(&f, b"user.ok").unwrap(), b"1");
        lremovexattr(&f, b"user.ok").unwrap_or_else(|e| panic!("{}: {e}", ctx("remove user.ok")));
        assert_errno(
            lgetxattr(&f, b"user.ok"),
            libc::ENODATA,
            &ctx("removed user.ok"),
        );
    });
}

#[test]
fn ioctls_are_enotty_and_the_mount_is_nosuid_nodev() {
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.m("w/f.txt"))
            .unwrap();
        assert_errno(ioctl_getflags(&f), libc::ENOTTY, &ctx("FS_IOC_GETFLAGS"));
        for opt in ["nosuid", "nodev"] {
            assert!(
                m.entry.mount_options.iter().any(|o| o == opt),
                "{}: mount options {:?} lack {opt}",
                ctx("mount"),
                m.entry.mount_options
            );
        }
        assert!(
            !m.entry.mount_options.iter().any(|o| o == "ro"),
            "{}: a writable mode mounted read-only: {}",
            ctx("mount"),
            m.entry.line
        );
    });
}

#[test]
fn renameat2_exchange_noreplace_and_other_flags() {
    both(|mode| {
        let r = basic_rig(mode);
        let before = tree_digest(&r.scene.src);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        let (f, g) = (m.m("w/f.txt"), m.m("w/g.txt"));
        renameat2(&f, &g, libc::RENAME_EXCHANGE)
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("RENAME_EXCHANGE")));
        assert_eq!(fs::read(&f).unwrap(), content_for("w/g.txt".as_ref()));
        assert_eq!(fs::read(&g).unwrap(), content_for("w/f.txt".as_ref()));
        assert_eq!(
            fs::read(r.layer("w/f.txt")).unwrap(),
            content_for("w/g.txt".as_ref())
        );
        assert_eq!(
            fs::read(r.layer("w/g.txt")).unwrap(),
            content_for("w/f.txt".as_ref())
        );
        assert_errno(
            renameat2(&f, &g, libc::RENAME_NOREPLACE),
            libc::EEXIST,
            &ctx("RENAME_NOREPLACE onto an existing name"),
        );
        renameat2(&f, &m.m("w/h.txt"), libc::RENAME_NOREPLACE)
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("RENAME_NOREPLACE onto a new name")));
        assert_eq!(
            fs::read(m.m("w/h.txt")).unwrap(),
            content_for("w/g.txt".as_ref())
        );
        assert!(!exists(&f), "{}", ctx("NOREPLACE left the old name"));
        assert_errno(
            renameat2(&g, &m.m("w/i.txt"), libc::RENAME_WHITEOUT),
            libc::EINVAL,
            &ctx("RENAME_WHITEOUT"),
        );
        assert_errno(
            renameat2(&g, &m.m("w/.env"), libc::RENAME_EXCHANGE),
            libc::ENOENT,
            &ctx("RENAME_EXCHANGE with a hidden name"),
        );
        assert_errno(
            renameat2(&g, &m.m("ro/f.txt"), libc::RENAME_EXCHANGE),
            libc::EACCES,
            &ctx("RENAME_EXCHANGE with a not-writable name"),
        );
        assert_eq!(
            fs::read(m.m("ro/f.txt")).unwrap(),
            content_for("ro/f.txt".as_ref())
        );
        drop(m);
        match mode {
            Mode::Overlay => assert_same_tree(&before, &tree_digest(&r.scene.src), "renameat2"),
            Mode::Direct => {
                assert_eq!(fs::read(r.scene.s("w/.env")).unwrap(), b"TOKEN=1\n");
                assert_eq!(
                    fs::read(r.scene.s("ro/f.txt")).unwrap(),
                    content_for("ro/f.txt".as_ref())
                );
            }
        }
    });
}

#[test]
fn new_entries_belong_to_the_caller() {
    both(|mode| {
        let r = basic_rig(mode);
        r.scene.dir("w/pub");
        fs::set_permissions(r.scene.s("w/pub"), fs::Permissions::from_mode(0o777)).unwrap();
        r.scene.open_to_others();
        let mut args = basic_args(&r);
        args.push("--allow-other".to_owned());
        let m = r.mount(&args);
        let dir = m.m("w/pub");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("set -e; cd \"$1\"; echo hi > new; mkdir nd; ln -s new sl; mkfifo ff")
            .arg("sh")
            .arg(&dir)
            .uid(65534)
            .gid(65534);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{} mode: writing as uid 65534 failed: {}\n{}",
            mode.name(),
            out.status,
            out.stderr
        );
        for rel in ["w/pub/new", "w/pub/nd", "w/pub/sl", "w/pub/ff"] {
            for path in [m.m(rel), r.layer(rel)] {
                let md = fs::symlink_metadata(&path)
                    .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
                assert_eq!(
                    (md.uid(), md.gid()),
                    (65534, 65534),
                    "{} mode: owner of {}",
                    mode.name(),
                    path.display()
                );
            }
        }
    });
}

#[test]
fn a_hard_link_does_not_make_a_read_only_file_writable() {
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        let ctx = format!("{} mode: ln ro/f.txt w/l; write w/l", mode.name());
        // docs/overlay.md: a hardlink is a new way to write the same file, so `link` needs a writable
        // source too.
        assert_errno(
            fs::hard_link(m.m("ro/f.txt"), m.m("w/l")),
            libc::EACCES,
            &ctx,
        );
        assert!(!exists(&m.m("w/l")), "{ctx}: the link was made");
        let want = String::from_utf8(content_for("ro/f.txt".as_ref())).unwrap();
        let view = String::from_utf8_lossy(&fs::read(m.m("ro/f.txt")).unwrap()).into_owned();
        assert_eq!(
            view, want,
            "{ctx}: the not-writable ro/f.txt changed in the view"
        );
        let source =
            String::from_utf8_lossy(&fs::read(r.scene.s("ro/f.txt")).unwrap()).into_owned();
        assert_eq!(
            source, want,
            "{ctx}: the not-writable ro/f.txt changed in SOURCE"
        );
    });
}

#[test]
fn protect_can_be_emptied_in_the_policy_file() {
    both(|mode| {
        let r = basic_rig(mode);
        r.scene.file("w/.envrc");
        let m = r.mount(&r.policy_args("", "writable = [\"/w/\"]\nprotect = []", ""));
        fs::write(m.m("w/.envrc"), b"export X=1\n")
            .unwrap_or_else(|e| panic!("{} mode: .envrc with protect = []: {e}", mode.name()));
        assert_eq!(fs::read(r.layer("w/.envrc")).unwrap(), b"export X=1\n");
    });
}

#[test]
fn a_symlink_cannot_be_renamed_to_where_it_would_leave_source_in_direct_mode() {
    {
        let mode = Mode::Direct;
        let r = Rig::new(mode);
        r.scene.file("f.txt");
        r.scene.dir("w");
        // SOURCE's own `l`, which the rename would replace.
        r.scene.symlink("l", "f.txt");
        let m = r.mount(&r.policy_args("", "", ""));
        let mut problems = Vec::new();
        // At the root the target ../f.txt leaves SOURCE: the view could not show the link.
        for (link, dest) in [("w/l1", "l"), ("w/l2", "new")] {
            std::os::unix::fs::symlink("../f.txt", m.m(link)).expect("ln -s ../f.txt");
            let res = fs::rename(m.m(link), m.m(dest));
            if errno_of(&res) != Ok(libc::EACCES) {
                problems.push(format!(
                    "mv {link} {dest} (its target ../f.txt escapes from the root): expected EACCES, got {}",
                    outcome(&res)
                ));
            }
        }
        for name in names(m.mnt()) {
            if let Err(e) = fs::symlink_metadata(m.m(&name)) {
                problems.push(format!("{name} is listed at the root but lstat says {e}"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// In an overlay view a symlink the agent made is its own wherever it moves (SPEC §3a); it
/// resolves in the agent's own kernel, and SOURCE's `l` it replaced in the view is untouched.
#[test]
fn an_overlay_symlink_may_move_where_its_target_leaves_source() {
    let r = Rig::new(Mode::Overlay);
    r.scene.file("f.txt");
    r.scene.dir("w");
    r.scene.symlink("l", "f.txt");
    let before = tree_digest(&r.scene.src);
    let m = r.mount(&r.policy_args("", "", ""));
    for (link, dest) in [("w/l1", "l"), ("w/l2", "new")] {
        std::os::unix::fs::symlink("../f.txt", m.m(link)).expect("ln -s ../f.txt");
        fs::rename(m.m(link), m.m(dest)).unwrap_or_else(|e| panic!("mv {link} {dest}: {e}"));
        assert_eq!(
            fs::read_link(m.m(dest)).expect("readlink through the view"),
            Path::new("../f.txt"),
            "{dest} after the move"
        );
    }
    for name in names(m.mnt()) {
        fs::symlink_metadata(m.m(&name))
            .unwrap_or_else(|e| panic!("{name} is listed at the root but lstat says {e}"));
    }
    drop(m);
    assert_same_tree(
        &before,
        &tree_digest(&r.scene.src),
        "overlay moves of symlinks",
    );
}

/// The view root's own mode and times change in writable modes (SPEC §3a), as `touch VIEW`,
/// `chmod 755 VIEW` and `tar x -C VIEW` do; its owner and size do not.
#[test]
fn the_view_root_mode_and_times_change_in_writable_modes() {
    both(|mode| {
        let r = Rig::new(mode);
        r.scene.file("f.txt");
        let m = r.mount(&r.policy_args("", "", ""));
        fs::set_permissions(m.mnt(), fs::Permissions::from_mode(0o750))
            .unwrap_or_else(|e| panic!("{}: chmod 750 VIEW: {e}", mode.name()));
        assert_eq!(
            perm(m.mnt()),
            0o750,
            "{}: mode of the view root",
            mode.name()
        );
        utimens(m.mnt(), 946_684_800, false)
            .unwrap_or_else(|e| panic!("{}: touch VIEW: {e}", mode.name()));
        let mtime = fs::metadata(m.mnt()).unwrap().mtime();
        assert_eq!(
            mtime,
            946_684_800,
            "{}: mtime of the view root",
            mode.name()
        );
        assert_errno(
            lchown(m.mnt(), 1234, 1234),
            libc::EPERM,
            "chown of the view root",
        );
        if mode == Mode::Direct {
            assert_eq!(perm(&r.scene.src), 0o750, "direct: SOURCE's root mode");
        }
    });
}

/// A directory keeps its setgid bit (SPEC §3): set by chmod or given at mkdir, and inherited
/// by a directory made in it, whose entries take its group; and its setuid bit.
#[test]
fn a_directory_keeps_its_setgid_bit() {
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        let ctx = |op: &str| format!("{} mode: {op}", mode.name());
        fs::create_dir(m.m("w/sg")).unwrap_or_else(|e| panic!("{}: {e}", ctx("mkdir")));
        fs::set_permissions(m.m("w/sg"), fs::Permissions::from_mode(0o2755))
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("chmod 2755")));
        lchown(&m.m("w/sg"), 0, 4321).unwrap_or_else(|e| panic!("{}: {e}", ctx("chgrp")));
        fs::create_dir(m.m("w/sg/sub")).unwrap_or_else(|e| panic!("{}: {e}", ctx("mkdir sub")));
        fs::write(m.m("w/sg/f"), b"x").unwrap_or_else(|e| panic!("{}: {e}", ctx("create f")));
        for rel in ["w/sg", "w/sg/sub"] {
            for path in [m.m(rel), r.layer(rel)] {
                assert_eq!(
                    perm(&path) & 0o7777,
                    0o2755,
                    "{} {}",
                    ctx(rel),
                    path.display()
                );
            }
        }
        for rel in ["w/sg/sub", "w/sg/f"] {
            let gid = fs::metadata(m.m(rel)).unwrap().gid();
            assert_eq!(gid, 4321, "{}: group of {rel}", ctx("setgid directory"));
        }
        // Setuid too runs nothing on a directory: kept as well.
        fs::set_permissions(m.m("w/sg"), fs::Permissions::from_mode(0o6755))
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("chmod 6755")));
        assert_eq!(
            perm(&m.m("w/sg")),
            0o6755,
            "{}",
            ctx("chmod 6755 of a directory")
        );
    });
}

/// A new entry gets the mode asked for less the caller's umask, whatever the daemon's own
/// umask, at any name length: made by a shell with umask 0, a file is 0666 and a directory
/// 0777, though the daemon (started from this process) runs with a umask of 022.
#[test]
fn new_entries_get_the_mode_asked_for() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    assert_eq!(
        umask & 0o022,
        0o022,
        "this test needs a umask of 022 (or narrower) for the daemon it starts, to show that it does not narrow the modes of new entries"
    );
    both(|mode| {
        let r = basic_rig(mode);
        let m = r.mount(&basic_args(&r));
        for name in ["short".to_string(), "n".repeat(254)] {
            let (file, dir) = (m.m(format!("w/{name}")), m.m(format!("w/d{name}")));
            let out = Command::new("sh")
                .args(["-c", "umask 0 && : > \"$1\" && mkdir \"$2\"", "sh"])
                .arg(&file)
                .arg(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{} mode: {out:?}", mode.name());
            let len = name.len() + 1;
            assert_eq!(
                perm(&file),
                0o666,
                "{} mode: file, {len}-byte name",
                mode.name()
            );
            assert_eq!(
                perm(&dir),
                0o777,
                "{} mode: directory, {len}-byte name",
                mode.name()
            );
        }
    });
}
