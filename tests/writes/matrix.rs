//! SPEC §3, cell by cell: one test per write operation and mode, each trying the operation on
//! names of every column (hidden or not allowed, visible but not writable, visible and
//! writable) and checking the errno, that nothing refused changed SOURCE, that what succeeded
//! is seen through the view and landed in the right layer, and, in overlay mode, that SOURCE
//! never changed at all. Every failing cell of a test is reported together.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::common::*;
use crate::support::*;

/// `/ro/` and `/w/` are allowed (everything else at the root is not); `private/` is hidden on
/// top of the `secrets` preset; only `/w/` is writable, less the `exec-config` preset.
const VIEW: &str = "allow = [\"/ro/\", \"/w/\"]\nhide = [\"private/\"]";
const WRITABLE: &str = "writable = [\"/w/\"]";

/// New names nobody may make: hidden (existing or not) and not allowed (existing or not) are
/// EACCES; beneath a hidden or not-allowed directory the path does not resolve (ENOENT).
const NEW_HIDDEN: &[(&str, i32)] = &[
    ("w/.env", libc::EACCES),
    ("w/.env.local", libc::EACCES),
    ("na.txt", libc::EACCES),
    ("na_new.txt", libc::EACCES),
    ("w/private/new", libc::ENOENT),
    ("nadir/new", libc::ENOENT),
];
/// New names that are visible but not writable: outside `writable`, or `exec-config`.
const NEW_NOT_WRITABLE: &[&str] = &["ro/new", "ro/d/new", "w/.vscode/new.json", "w/.gitmodules"];
/// In an overlay view what the agent makes is its own (SPEC §3a): these hidden names inside
/// `writable` may be made (tests/writes/agent_own.rs), so this table, which governs SOURCE's
/// entries, leaves them out there.
const OVERLAY_OWN_NEW: &[&str] = &["w/.env", "w/.env.local"];
/// `exec-config` paths inside `writable`: refused at write time in direct mode only; an overlay
/// view writes them and review flags them (tests/review.rs).
const PROTECTED: &[&str] = &[
    "w/.vscode/new.json",
    "w/.gitmodules",
    "w/.envrc",
    "w/.vscode/settings.json",
    "w/.idea",
];
/// Existing files that are hidden or not allowed.
const FILE_HIDDEN: &[&str] = &["w/.env", "na.txt", "w/private/p.txt", "nadir/n.txt"];
/// Existing files that are visible but not writable.
const FILE_NOT_WRITABLE: &[&str] = &["ro/f.txt", "w/.envrc", "w/.vscode/settings.json"];
/// Existing directories that are hidden or not allowed.
const DIR_HIDDEN: &[&str] = &["w/private", "nadir"];
/// Existing empty directories that are visible but not writable.
const DIR_NOT_WRITABLE: &[&str] = &["ro/d", "w/.idea"];

/// What an operation acts on.
#[derive(Clone, Copy)]
enum Targets {
    /// A name to be made.
    NewName,
    /// An existing file.
    File,
    /// An existing empty directory.
    Dir,
}

/// One row of the table.
struct Op {
    name: &'static str,
    targets: Targets,
    /// The operation on MOUNTPOINT and a relative path.
    run: fn(&Path, &str) -> io::Result<()>,
    /// The writable-column target.
    writable: &'static str,
    /// After the writable-column operation succeeded: what the view and the layer must show.
    check: fn(&Rig, &str) -> Result<(), String>,
    /// More not-writable targets for this operation only.
    extra_not_writable: &'static [&'static str],
}

/// SOURCE for the table: see the target lists above.
fn matrix_rig(mode: Mode) -> Rig {
    let r = Rig::new(mode);
    let s = &r.scene;
    s.file("ro/f.txt");
    s.dir("ro/d");
    s.file("ro/sub/x.txt");
    s.file("w/f.txt");
    s.file("w/g.txt");
    s.dir("w/d");
    s.file("w/sub/x.txt");
    s.file_with("w/.env", b"TOKEN=1\n");
    s.file("w/private/p.txt");
    s.file("w/.envrc");
    s.file("w/.vscode/settings.json");
    s.dir("w/.idea");
    s.file("na.txt");
    s.file("nadir/n.txt");
    r
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn meta(path: &Path) -> Result<fs::Metadata, String> {
    fs::symlink_metadata(path).map_err(|e| format!("lstat {}: {e}", path.display()))
}

/// The view and the layer both show `rel` with `content`.
fn both_read(r: &Rig, rel: &str, content: &[u8]) -> Result<(), String> {
    for path in [r.scene.m(rel), r.layer(rel)] {
        let got = read(&path)?;
        expect(got == content, || {
            format!(
                "{} holds {:?}, want {:?}",
                path.display(),
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(content)
            )
        })?;
    }
    Ok(())
}

/// `rel` is gone from the view and from the layer; in overlay mode a whiteout stands for it.
fn removed(r: &Rig, rel: &str) -> Result<(), String> {
    expect(!exists(&r.scene.m(rel)), || {
        format!("{rel} still in the view")
    })?;
    match r.mode {
        Mode::Direct => expect(!exists(&r.scene.s(rel)), || {
            format!("{rel} still in SOURCE")
        }),
        Mode::Overlay => {
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let wh = r.upper(&format!("{dir}/.wh.{name}"));
            let m = meta(&wh).map_err(|e| format!("no whiteout for {rel}: {e}"))?;
            expect(m.is_file() && m.len() == 0, || {
                format!("whiteout {} is not an empty file", wh.display())
            })?;
            expect(!exists(&r.upper(rel)), || {
                format!("{rel} still in upper/ next to its whiteout")
            })
        }
    }
}

fn symlink_target(rel: &str) -> String {
    format!("{}w/f.txt", "../".repeat(rel.matches('/').count()))
}

fn create() -> Op {
    Op {
        name: "create",
        targets: Targets::NewName,
        run: |m, rel| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(m.join(rel))
                .map(drop)
        },
        writable: "w/new",
        check: |r, rel| {
            both_read(r, rel, b"")?;
            expect(perm(&r.scene.m(rel)) == 0o640, || {
                "mode of the new file".into()
            })
        },
        extra_not_writable: &[],
    }
}

fn mkdir() -> Op {
    Op {
        name: "mkdir",
        targets: Targets::NewName,
        run: |m, rel| fs::create_dir(m.join(rel)),
        writable: "w/new",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                expect(meta(&path)?.is_dir(), || {
                    format!("{} is not a directory", path.display())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn mknod_fifo() -> Op {
    Op {
        name: "mknod fifo",
        targets: Targets::NewName,
        run: |m, rel| mknod(&m.join(rel), libc::S_IFIFO | 0o644, 0),
        writable: "w/new",
        check: |r, rel| {
            use std::os::unix::fs::FileTypeExt;
            for path in [r.scene.m(rel), r.layer(rel)] {
                expect(meta(&path)?.file_type().is_fifo(), || {
                    format!("{} is not a FIFO", path.display())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn symlink() -> Op {
    Op {
        name: "symlink",
        targets: Targets::NewName,
        run: |m, rel| std::os::unix::fs::symlink(symlink_target(rel), m.join(rel)),
        writable: "w/new",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let got = fs::read_link(&path).map_err(|e| format!("readlink: {e}"))?;
                expect(got == Path::new(&symlink_target(rel)), || {
                    format!("{} -> {}", path.display(), got.display())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn link() -> Op {
    Op {
        name: "link",
        targets: Targets::NewName,
        run: |m, rel| fs::hard_link(m.join("w/g.txt"), m.join(rel)),
        writable: "w/new",
        check: |r, rel| {
            both_read(r, rel, &content_for("w/g.txt".as_ref()))?;
            both_read(r, "w/g.txt", &content_for("w/g.txt".as_ref()))
        },
        extra_not_writable: &[],
    }
}

fn rename_onto() -> Op {
    Op {
        name: "rename onto",
        targets: Targets::NewName,
        run: |m, rel| fs::rename(m.join("w/g.txt"), m.join(rel)),
        writable: "w/f.txt",
        check: |r, rel| {
            both_read(r, rel, &content_for("w/g.txt".as_ref()))?;
            removed(r, "w/g.txt")
        },
        extra_not_writable: &["ro/f.txt", "w/.envrc", "w/.vscode/settings.json"],
    }
}

fn write() -> Op {
    Op {
        name: "write (O_WRONLY|O_TRUNC)",
        targets: Targets::File,
        run: |m, rel| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(m.join(rel))?;
            f.write_all(b"changed\n")?;
            f.sync_all()
        },
        writable: "w/f.txt",
        check: |r, rel| both_read(r, rel, b"changed\n"),
        extra_not_writable: &[],
    }
}

fn open_for_write() -> Op {
    Op {
        name: "open O_RDWR",
        targets: Targets::File,
        run: |m, rel| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(m.join(rel))
                .map(drop)
        },
        writable: "w/f.txt",
        check: |r, rel| {
            let got = read(&r.scene.m(rel))?;
            expect(got == content_for(rel.as_ref()), || {
                format!("opening {rel} for writing changed it")
            })
        },
        extra_not_writable: &[],
    }
}

fn truncate_op() -> Op {
    Op {
        name: "truncate",
        targets: Targets::File,
        run: |m, rel| truncate(&m.join(rel), 3),
        writable: "w/f.txt",
        check: |r, rel| both_read(r, rel, b"con"),
        extra_not_writable: &[],
    }
}

fn fallocate_op() -> Op {
    Op {
        // A descriptor open for writing is needed: in the refused columns the open fails.
        name: "fallocate",
        targets: Targets::File,
        run: |m, rel| fallocate(&m.join(rel), 0, 8192),
        writable: "w/f.txt",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let len = meta(&path)?.len();
                expect(len == 8192, || format!("{} has size {len}", path.display()))?;
            }
            let got = read(&r.scene.m(rel))?;
            let want = content_for(rel.as_ref());
            expect(got.starts_with(&want), || {
                "fallocate lost the content".into()
            })
        },
        extra_not_writable: &[],
    }
}

fn chmod() -> Op {
    Op {
        name: "chmod",
        targets: Targets::File,
        run: |m, rel| fs::set_permissions(m.join(rel), fs::Permissions::from_mode(0o600)),
        writable: "w/f.txt",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let p = perm(&path);
                expect(p == 0o600, || format!("{} has mode {p:o}", path.display()))?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn chown() -> Op {
    Op {
        name: "chown",
        targets: Targets::File,
        run: |m, rel| lchown(&m.join(rel), 1234, 1234),
        writable: "w/f.txt",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let md = meta(&path)?;
                expect(md.uid() == 1234 && md.gid() == 1234, || {
                    format!("{} owned by {}:{}", path.display(), md.uid(), md.gid())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn utimens_op() -> Op {
    Op {
        name: "utimens",
        targets: Targets::File,
        run: |m, rel| utimens(&m.join(rel), 946_684_800, false),
        writable: "w/f.txt",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let t = meta(&path)?.mtime();
                expect(t == 946_684_800, || {
                    format!("{} has mtime {t}", path.display())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn setxattr() -> Op {
    Op {
        name: "setxattr user.*",
        targets: Targets::File,
        run: |m, rel| lsetxattr(&m.join(rel), b"user.test", b"v"),
        writable: "w/f.txt",
        check: |r, rel| {
            for path in [r.scene.m(rel), r.layer(rel)] {
                let v = lgetxattr(&path, b"user.test")
                    .map_err(|e| format!("getxattr {}: {e}", path.display()))?;
                expect(v == b"v", || {
                    format!("{} user.test = {v:?}", path.display())
                })?;
            }
            Ok(())
        },
        extra_not_writable: &[],
    }
}

fn unlink() -> Op {
    Op {
        name: "unlink",
        targets: Targets::File,
        run: |m, rel| fs::remove_file(m.join(rel)),
        writable: "w/f.txt",
        check: removed,
        extra_not_writable: &[],
    }
}

fn rmdir() -> Op {
    Op {
        name: "rmdir",
        targets: Targets::Dir,
        run: |m, rel| fs::remove_dir(m.join(rel)),
        writable: "w/d",
        check: removed,
        extra_not_writable: &[],
    }
}

fn rename_from() -> Op {
    Op {
        name: "rename from",
        targets: Targets::File,
        run: |m, rel| fs::rename(m.join(rel), m.join("w/moved")),
        writable: "w/f.txt",
        check: |r, rel| {
            both_read(r, "w/moved", &content_for(rel.as_ref()))?;
            removed(r, rel)
        },
        extra_not_writable: &[],
    }
}

/// Records a cell whose outcome is not `want` (`None`: success); true when it matched.
fn judge(failures: &mut Vec<String>, what: String, want: Option<i32>, got: io::Result<()>) -> bool {
    let ok = match (want, &got) {
        (None, Ok(())) => true,
        (Some(e), Err(err)) => err.raw_os_error() == Some(e),
        _ => false,
    };
    if !ok {
        failures.push(format!(
            "{what}: expected {}, got {}",
            want.map_or("success".to_owned(), name_of),
            outcome(&got)
        ));
    }
    ok
}

fn run_cells(mode: Mode, op: Op) {
    let rig = matrix_rig(mode);
    let args = rig.policy_args(VIEW, WRITABLE, "");
    let before = tree_digest(&rig.scene.src);
    let mut failures = Vec::new();
    {
        let m = rig.mount(&args);
        let (mut hidden, mut not_writable): (Vec<(&str, i32)>, Vec<&str>) = match op.targets {
            Targets::NewName => (NEW_HIDDEN.to_vec(), NEW_NOT_WRITABLE.to_vec()),
            Targets::File => (
                FILE_HIDDEN.iter().map(|p| (*p, libc::ENOENT)).collect(),
                FILE_NOT_WRITABLE.to_vec(),
            ),
            Targets::Dir => (
                DIR_HIDDEN.iter().map(|p| (*p, libc::ENOENT)).collect(),
                DIR_NOT_WRITABLE.to_vec(),
            ),
        };
        let mut extra_not_writable = op.extra_not_writable.to_vec();
        if mode == Mode::Overlay {
            if matches!(op.targets, Targets::NewName) {
                hidden.retain(|(rel, _)| !OVERLAY_OWN_NEW.contains(rel));
            }
            not_writable.retain(|rel| !PROTECTED.contains(rel));
            extra_not_writable.retain(|rel| !PROTECTED.contains(rel));
        }
        for (rel, errno) in hidden {
            judge(
                &mut failures,
                format!("{} {rel} (hidden or not allowed)", op.name),
                Some(errno),
                (op.run)(m.mnt(), rel),
            );
        }
        for rel in not_writable.iter().chain(&extra_not_writable) {
            judge(
                &mut failures,
                format!("{} {rel} (visible, not writable)", op.name),
                Some(libc::EACCES),
                (op.run)(m.mnt(), rel),
            );
        }
        if let Some(change) = tree_change(&before, &tree_digest(&rig.scene.src)) {
            failures.push(format!("refused {} changed SOURCE: {change}", op.name));
        }
        for rel in ["w/.env", "w/private", "na.txt", "nadir"] {
            if exists(&m.m(rel)) {
                failures.push(format!("{rel} became visible after refused {}", op.name));
            }
        }
        let rel = op.writable;
        let what = format!("{} {rel} (visible, writable)", op.name);
        if judge(&mut failures, what, None, (op.run)(m.mnt(), rel)) {
            if let Err(msg) = (op.check)(&rig, rel) {
                failures.push(format!("{} {rel} (visible, writable): {msg}", op.name));
            }
        }
        if mode == Mode::Overlay {
            if let Some(change) = tree_change(&before, &tree_digest(&rig.scene.src)) {
                failures.push(format!("overlay {} changed SOURCE: {change}", op.name));
            }
        }
    }
    match mode {
        Mode::Overlay => assert_same_tree(&before, &tree_digest(&rig.scene.src), op.name),
        Mode::Direct => {
            // Hidden entries survive whatever was done next to them.
            for rel in ["w/.env", "w/private/p.txt", "na.txt", "nadir/n.txt"] {
                assert!(exists(&rig.scene.s(rel)), "{rel} vanished from SOURCE");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mode, {}:\n{}",
        mode.name(),
        op.name,
        failures.join("\n")
    );
}

macro_rules! matrix {
    ($($op:ident),* $(,)?) => {
        mod overlay {
            $(
                #[test]
                fn $op() {
                    super::run_cells(super::Mode::Overlay, super::$op());
                }
            )*
        }
        mod direct {
            $(
                #[test]
                fn $op() {
                    super::run_cells(super::Mode::Direct, super::$op());
                }
            )*
        }
    };
}

matrix!(
    create,
    mkdir,
    mknod_fifo,
    symlink,
    link,
    rename_onto,
    write,
    open_for_write,
    truncate_op,
    fallocate_op,
    chmod,
    chown,
    utimens_op,
    setxattr,
    unlink,
    rmdir,
    rename_from,
);
