//! What the write-mode tests share: a rig (a scene plus its overlay directory and policy file),
//! the layer a change lands in, a snapshot of what a tree shows, and the syscalls std lacks.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::common::*;

/// The two write modes that change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Overlay,
    Direct,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Overlay => "overlay",
            Mode::Direct => "direct",
        }
    }
}

/// A scene with a write mode: the overlay lives next to SOURCE as `overlay/`.
pub struct Rig {
    pub scene: Scene,
    pub mode: Mode,
}

impl Rig {
    pub fn new(mode: Mode) -> Rig {
        Rig {
            scene: Scene::new(),
            mode,
        }
    }

    /// OVERLAY (it need not exist yet).
    pub fn overlay(&self) -> PathBuf {
        self.scene.base().join("overlay")
    }

    /// OVERLAY/upper joined with `rel`.
    pub fn upper(&self, rel: &str) -> PathBuf {
        self.overlay().join("upper").join(rel)
    }

    /// Where a change of `rel` lands: OVERLAY/upper in overlay mode, SOURCE in direct mode.
    pub fn layer(&self, rel: &str) -> PathBuf {
        match self.mode {
            Mode::Overlay => self.upper(rel),
            Mode::Direct => self.scene.s(rel),
        }
    }

    /// Writes a policy file whose `[writes]` section sets this rig's mode (and overlay), with
    /// `view` and `extra` (more TOML sections) around it, and returns the mount arguments.
    pub fn policy_args(&self, view: &str, writable: &str, extra: &str) -> Vec<String> {
        let overlay = match self.mode {
            Mode::Overlay => "overlay = \"overlay\"\n",
            Mode::Direct => "",
        };
        let text = format!(
            "[view]\n{view}\n[writes]\nmode = \"{}\"\n{overlay}{writable}\n{extra}\n",
            self.mode.name()
        );
        let path = self.scene.policy(&text);
        vec!["-c".to_owned(), path.display().to_string()]
    }

    pub fn mount(&self, args: &[String]) -> Mounted<'_> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.scene.mount(&args)
    }
}

/// What a tree shows of one entry: type, permission bits, content or target.
pub fn describe(path: &Path) -> io::Result<String> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    Ok(if ft.is_dir() {
        format!("dir {mode:o}")
    } else if ft.is_file() {
        let data = fs::read(path)?;
        format!("file {mode:o} {:?}", String::from_utf8_lossy(&data))
    } else if ft.is_symlink() {
        format!("symlink -> {:?}", fs::read_link(path)?)
    } else if ft.is_fifo() {
        format!("fifo {mode:o}")
    } else {
        format!("other {mode:o}")
    })
}

/// Every entry below `root` (excluded) as [`describe`] shows it, keyed by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    snapshot_into(root, root, &mut out);
    out
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    names.sort();
    for path in names {
        let rel = path
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        let desc = describe(&path).unwrap_or_else(|e| panic!("describe {}: {e}", path.display()));
        let is_dir = desc.starts_with("dir ");
        out.insert(rel, desc);
        if is_dir {
            snapshot_into(root, &path, out);
        }
    }
}

/// Asserts two snapshots are equal, listing the entries that differ.
#[track_caller]
pub fn assert_same_snapshot(
    want: &BTreeMap<String, String>,
    got: &BTreeMap<String, String>,
    context: &str,
) {
    if want == got {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing {k}: {v}")),
            Some(w) if w != v => diffs.push(format!("{k}: want {v}, got {w}")),
            Some(_) => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diffs.push(format!("extra {k}: {v}"));
        }
    }
    panic!("{context}:\n{}", diffs.join("\n"));
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// renameat2(2) with `flags`, both paths absolute.
pub fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let f = cpath(from);
    let t = cpath(to);
    // SAFETY: both paths are NUL-terminated strings that live across the call.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    })
}

/// lchown(2).
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let p = cpath(path);
    // SAFETY: p is NUL-terminated.
    check(unsafe { libc::lchown(p.as_ptr(), uid, gid) })
}

/// Opens `path` read-write and fallocates `len` bytes from offset 0.
pub fn fallocate(path: &Path, mode: libc::c_int, len: i64) -> io::Result<()> {
    let file = open_raw(path, libc::O_RDWR)?;
    // SAFETY: the descriptor is open for the duration of the call.
    check(unsafe { libc::fallocate(file.as_raw_fd(), mode, 0, len) })
}

/// An ioctl with no argument data on an open file, for the ENOTTY rule.
pub fn ioctl_getflags(file: &fs::File) -> io::Result<()> {
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long through the pointer, which is valid.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::FS_IOC_GETFLAGS,
            &mut flags as *mut libc::c_long,
        )
    };
    check(rc)
}

/// The mode of `path` (not following a final symlink) masked to the permission bits.
pub fn perm(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Whether `path` exists (not following a final symlink).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The names in `dir`, sorted, as text.
pub fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            String::from_utf8_lossy(e.expect("directory entry").file_name().as_bytes()).into_owned()
        })
        .collect();
    out.sort();
    out
}

/// The result of an operation as text: `ok` or the errno's name.
pub fn outcome<T>(res: &io::Result<T>) -> String {
    match res {
        Ok(_) => "ok".to_owned(),
        Err(e) => match e.raw_os_error() {
            Some(n) => name_of(n),
            None => format!("{e}"),
        },
    }
}

/// The symbolic name of an errno, including the ones the shared helper does not know.
pub fn name_of(errno: i32) -> String {
    match errno {
        libc::ENOSPC => "ENOSPC".to_owned(),
        libc::EBADF => "EBADF".to_owned(),
        libc::EBUSY => "EBUSY".to_owned(),
        libc::ELOOP => "ELOOP".to_owned(),
        n => errno_name(n),
    }
}

/// How `after` differs from `before` (two [`tree_digest`]s), or `None` when they are equal.
pub fn tree_change(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
) -> Option<String> {
    if before == after {
        return None;
    }
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("removed {:?}", String::from_utf8_lossy(k))),
            Some(w) if w != v => diffs.push(format!(
                "changed {:?}: {v} -> {w}",
                String::from_utf8_lossy(k)
            )),
            Some(_) => {}
        }
    }
    for k in after.keys() {
        if !before.contains_key(k) {
            diffs.push(format!("added {:?}", String::from_utf8_lossy(k)));
        }
    }
    Some(diffs.join("; "))
}
