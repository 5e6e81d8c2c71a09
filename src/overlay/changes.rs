//! The change list of an overlay: what `diff` shows and `apply` carries out (SPEC §4).
//!
//! [`list`] walks upper/ against SOURCE, both through descriptors (`openat2` with
//! `RESOLVE_NO_SYMLINKS` beneath each root), and returns one [`Change`] per path, sorted
//! bytewise:
//! - `A`: an upper entry with nothing in SOURCE at that path (new directories are listed too);
//! - `M`: the same type on both sides but other content (files: bytes; symlinks: target) or
//!   other permission bits; directories present on both sides with the same mode are not listed;
//! - `T`: a different type on both sides;
//! - `D`: a whiteout `.wh.NAME` whose NAME exists in SOURCE, or a child of SOURCE's directory
//!   that an opaque directory hides; one line for a deleted directory, never one per child.
//!
//! A path in SOURCE beneath a symlink counts as absent here (the view never follows it either);
//! `apply` refuses to write through it. Every change is checked against the `exec-config`
//! protect preset, and new or changed symlinks are flagged too (THREATS R11): both are
//! "sensitive", for a person to look at before applying. This module only reads.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::path::{Name, RelPath};
use crate::policy::{Kind, Matcher, Policy, RuleOrigin, Writability};
use crate::sys::tree::stat_beneath;
use crate::sys::{self, FileType, Open, Stat};

use super::{Overlay, UpperName};

/// The kind of change at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `A`: new in the view.
    Add,
    /// `M`: content or mode changed.
    Modify,
    /// `D`: deleted in the view.
    Delete,
    /// `T`: the type changed (e.g. a file replaced by a directory).
    TypeChange,
}

impl Op {
    /// The letter `diff` prints.
    pub fn letter(self) -> char {
        match self {
            Op::Add => 'A',
            Op::Modify => 'M',
            Op::Delete => 'D',
            Op::TypeChange => 'T',
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// The type of an entry, as `diff --json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Device,
}

impl EntryKind {
    pub fn of(kind: FileType) -> EntryKind {
        match kind {
            FileType::File => EntryKind::File,
            FileType::Dir => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
            FileType::CharDevice | FileType::BlockDevice => EntryKind::Device,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::Device => "device",
        }
    }

    fn policy_kind(self) -> Kind {
        match self {
            EntryKind::Dir => Kind::Dir,
            _ => Kind::NonDir,
        }
    }
}

/// What in upper/ stands for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An entry of upper/ at the path.
    Entry,
    /// A whiteout `.wh.NAME` beside the path.
    Whiteout,
    /// An opaque marker in an upper directory above the path.
    Opaque,
}

/// One change of the view against SOURCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    pub path: RelPath,
    /// The entry's type in the view; for `D`, the type of what is deleted from SOURCE.
    pub kind: EntryKind,
    /// The type in SOURCE (`None` for `A`).
    pub lower_kind: Option<EntryKind>,
    /// Permission bits in the view (upper) and in SOURCE, when both exist.
    pub modes: Option<(u32, u32)>,
    pub via: Via,
    /// Why a person should look at this change before applying it: the protect preset that
    /// matches (`exec-config`), `symlink`, `hidden-name` (the built-in `secrets` preset hides
    /// the name), `executable` (a file added with an execute bit).
    pub sensitive: Vec<String>,
}

impl Change {
    pub fn is_sensitive(&self) -> bool {
        !self.sensitive.is_empty()
    }

    /// Whether a protect preset matches the path: `apply` leaves the change out unless it is
    /// asked for by name or with `--include-protected`.
    pub fn is_protected(&self) -> bool {
        self.sensitive.iter().any(|flag| is_protect_flag(flag))
    }
}

/// A failure to read the overlay or SOURCE while listing changes.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path} in {side}: {source}; check that the overlay and SOURCE are readable")]
pub struct ListError {
    pub path: RelPath,
    pub side: &'static str,
    pub source: io::Error,
}

fn upper_err(path: &RelPath) -> impl FnOnce(io::Error) -> ListError {
    let path = path.clone();
    move |source| ListError {
        path,
        side: "the overlay",
        source,
    }
}

fn lower_err(path: &RelPath) -> impl FnOnce(io::Error) -> ListError {
    let path = path.clone();
    move |source| ListError {
        path,
        side: "SOURCE",
        source,
    }
}

/// Whether the regular files at `path` beneath the two roots have the same bytes.
pub fn same_content(a: BorrowedFd<'_>, b: BorrowedFd<'_>, path: &RelPath) -> io::Result<bool> {
    let fa = sys::open_regular(a, path, false)?;
    let fb = sys::open_regular(b, path, false)?;
    same_file_content(&fa, &fb)
}

/// Whether two open files hold the same bytes from their current positions on, read a block at
/// a time.
pub fn same_file_content(mut fa: &File, mut fb: &File) -> io::Result<bool> {
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba.get(..na) != bb.get(..nb) {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether the upper entry at `path` (its stat `up`) shows the same thing as SOURCE's (`low`):
/// same type, same permission bits, and the same bytes or symlink target. Directories compare
/// by mode only.
pub fn same_entry(
    upper: BorrowedFd<'_>,
    lower: BorrowedFd<'_>,
    path: &RelPath,
    up: &Stat,
    low: &Stat,
) -> io::Result<bool> {
    if up.kind != low.kind {
        return Ok(false);
    }
    match up.kind {
        FileType::Symlink => {
            let a = sys::readlink(sys::resolve(upper, path, Open::Path)?.as_fd())?;
            let b = sys::readlink(sys::resolve(lower, path, Open::Path)?.as_fd())?;
            Ok(a == b)
        }
        FileType::File => {
            Ok(up.perm == low.perm && up.size == low.size && same_content(upper, lower, path)?)
        }
        _ => Ok(up.perm == low.perm),
    }
}

/// The flag of a symlink added or changed.
pub const SYMLINK_FLAG: &str = "symlink";
/// The flag of an entry at a name the built-in `secrets` preset hides: the agent made it
/// (SPEC §3a), and it would land in SOURCE where a view hides it.
pub const HIDDEN_FLAG: &str = "hidden-name";
/// The flag of a regular file added with an execute bit.
pub const EXECUTABLE_FLAG: &str = "executable";

/// Whether `flag` (one of [`Change::sensitive`]) names a protect preset, not one of the flags
/// above.
fn is_protect_flag(flag: &str) -> bool {
    ![SYMLINK_FLAG, HIDDEN_FLAG, EXECUTABLE_FLAG].contains(&flag)
}

/// The matcher that says whether a path is sensitive: the `exec-config` protect preset, and
/// the built-in `secrets` preset for names a view hides.
fn sensitivity_matcher() -> Option<Matcher> {
    let text = "[writes]\nmode = \"overlay\"\nprotect = [\"exec-config\"]\n";
    let policy = Policy::parse(text, None).ok()?;
    policy.compile().ok()
}

fn sensitivity(
    matcher: Option<&Matcher>,
    path: &RelPath,
    (kind, op): (EntryKind, Op),
    up: Option<&Stat>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Writability::Protected(rule)) =
        matcher.map(|m| m.writable(path, kind.policy_kind()))
    {
        out.push(match rule.origin {
            RuleOrigin::Preset(name) => name.to_string(),
            _ => rule.pattern,
        });
    }
    if kind == EntryKind::Symlink && op != Op::Delete {
        out.push(SYMLINK_FLAG.into());
    }
    if op != Op::Delete && matcher.is_some_and(|m| !m.is_visible(path, kind.policy_kind())) {
        out.push(HIDDEN_FLAG.into());
    }
    let executable = up.is_some_and(|st| st.perm & 0o111 != 0);
    if op == Op::Add && kind == EntryKind::File && executable {
        out.push(EXECUTABLE_FLAG.into());
    }
    out
}

struct Walker<'a> {
    upper: BorrowedFd<'a>,
    lower: BorrowedFd<'a>,
    matcher: Option<Matcher>,
    out: Vec<Change>,
}

impl Walker<'_> {
    fn push(&mut self, op: Op, path: RelPath, up: Option<&Stat>, low: Option<&Stat>, via: Via) {
        let lower_kind = low.map(|s| EntryKind::of(s.kind));
        let kind = match (up, lower_kind) {
            (Some(s), _) => EntryKind::of(s.kind),
            (None, Some(k)) => k,
            (None, None) => EntryKind::File,
        };
        let modes = match (up, low) {
            (Some(u), Some(l)) => Some((u.perm, l.perm)),
            _ => None,
        };
        let sensitive = sensitivity(self.matcher.as_ref(), &path, (kind, op), up);
        self.out.push(Change {
            op,
            path,
            kind,
            lower_kind,
            modes,
            via,
            sensitive,
        });
    }

    /// Compares the upper directory `dir` with SOURCE's. `lower_dir`: SOURCE has a directory
    /// here; `opaque`: an opaque marker here or above hides SOURCE's children.
    fn walk(&mut self, dir: &RelPath, lower_dir: bool, opaque: bool) -> Result<(), ListError> {
        let fd: OwnedFd = sys::resolve(self.upper, dir, Open::Dir).map_err(upper_err(dir))?;
        let mut names: HashSet<Name> = HashSet::new();
        let mut whiteouts: Vec<Name> = Vec::new();
        let mut opaque_here = opaque;
        let mut entries = Vec::new();
        for entry in sys::read_dir(fd.as_fd()).map_err(upper_err(dir))? {
            let Ok(name) = Name::new(&entry.name) else {
                continue;
            };
            match UpperName::classify(&name) {
                UpperName::Entry(name) => {
                    names.insert(name.clone());
                    entries.push(name);
                }
                UpperName::Whiteout(target) => whiteouts.push(target),
                UpperName::Opaque => opaque_here = true,
                UpperName::Invalid => {}
            }
        }
        for name in entries {
            let path = dir.join(&name);
            let up = match sys::stat_at(fd.as_fd(), &name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(upper_err(&path)(e)),
            };
            let low = if lower_dir {
                stat_beneath(self.lower, &path).map_err(lower_err(&path))?
            } else {
                None
            };
            match &low {
                None => self.push(Op::Add, path.clone(), Some(&up), None, Via::Entry),
                Some(l) if l.kind != up.kind => {
                    self.push(Op::TypeChange, path.clone(), Some(&up), Some(l), Via::Entry)
                }
                Some(l) => {
                    let same = same_entry(self.upper, self.lower, &path, &up, l)
                        .map_err(lower_err(&path))?;
                    if !same {
                        self.push(Op::Modify, path.clone(), Some(&up), Some(l), Via::Entry);
                    }
                }
            }
            if up.kind == FileType::Dir {
                let lower_is_dir = low.is_some_and(|l| l.kind == FileType::Dir);
                self.walk(&path, lower_is_dir, opaque_here)?;
            }
        }
        if !lower_dir {
            return Ok(());
        }
        let mut covered = names;
        for name in whiteouts {
            if covered.contains(&name) {
                continue;
            }
            let path = dir.join(&name);
            if let Some(low) = stat_beneath(self.lower, &path).map_err(lower_err(&path))? {
                self.push(Op::Delete, path, None, Some(&low), Via::Whiteout);
            }
            covered.insert(name);
        }
        if opaque_here {
            let lfd = match sys::resolve(self.lower, dir, Open::Dir) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => {
                    return Ok(());
                }
                Err(e) => return Err(lower_err(dir)(e)),
            };
            for entry in sys::read_dir(lfd.as_fd()).map_err(lower_err(dir))? {
                let Ok(name) = Name::new(&entry.name) else {
                    continue;
                };
                if covered.contains(&name) {
                    continue;
                }
                let path = dir.join(&name);
                let low = match sys::stat_at(lfd.as_fd(), &name) {
                    Ok(st) => st,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(lower_err(&path)(e)),
                };
                self.push(Op::Delete, path, None, Some(&low), Via::Opaque);
            }
        }
        Ok(())
    }
}

/// Every change of the view against SOURCE, sorted by path (bytewise). `lower` is a root
/// descriptor of SOURCE ([`sys::open_root`] of [`Overlay::source`]).
pub fn list(overlay: &Overlay, lower: BorrowedFd<'_>) -> Result<Vec<Change>, ListError> {
    let mut walker = Walker {
        upper: overlay.upper(),
        lower,
        matcher: sensitivity_matcher(),
        out: Vec::new(),
    };
    walker.walk(&RelPath::root(), true, false)?;
    let mut out = walker.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A path quoted for one line of output, as git does: as it is when it is printable UTF-8,
/// else in double quotes with C escapes (`\n`, `\"`, `\\`, `\ooo` for other bytes).
pub fn quote(path: &RelPath) -> String {
    let bytes = path.as_bytes();
    let plain = std::str::from_utf8(bytes)
        .is_ok_and(|s| !s.chars().any(|c| c.is_control() || c == '"' || c == '\\'));
    if plain {
        return path.to_string();
    }
    let mut out = String::from("\"");
    // Walk the bytes, keeping valid multi-byte characters and escaping everything else.
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaped(&mut out, s);
                rest = &[];
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_escaped(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let skip = e.error_len().unwrap_or(bad.len()).min(bad.len());
                let (invalid, after) = bad.split_at(skip);
                for b in invalid {
                    out.push_str(&format!("\\{b:03o}"));
                }
                rest = after;
            }
        }
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::Path;

    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {} {}", c.op, c.path, c.sensitive.join(",")))
            .map(|s| s.trim_end().to_string())
            .collect()
    }

    fn setup() -> (tempfile::TempDir, Overlay) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let ov = Overlay::open_for_mount(&tmp.path().join("ov"), &src).unwrap();
        (tmp, ov)
    }

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn lists_each_kind_of_change_sorted() {
        let (tmp, ov) = setup();
        let src = tmp.path().join("src");
        let up = tmp.path().join("ov/upper");
        write(&src, "same.txt", b"same");
        write(&src, "mod.txt", b"old");
        write(&src, "mode.sh", b"x");
        write(&src, "gone.txt", b"x");
        write(&src, "olddir/a", b"x");
        write(&src, "olddir/b", b"x");
        write(&src, "t", b"file becomes dir");
        write(&src, "op/keep", b"k");
        write(&src, "op/drop1", b"k");
        write(&src, "op/sub/drop2", b"k");
        symlink("a", src.join("link")).unwrap();
        std::fs::create_dir(src.join("plain")).unwrap();
        write(&up, "same.txt", b"same");
        write(&up, "mod.txt", b"new");
        write(&up, "mode.sh", b"x");
        std::fs::set_permissions(up.join("mode.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(src.join("mode.sh"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        write(&up, ".wh.gone.txt", b"");
        write(&up, ".wh.olddir", b"");
        write(&up, ".wh.never-existed", b"");
        write(&up, "t/inside", b"x");
        write(&up, "new/deep/file", b"x");
        write(&up, "op/keep", b"k");
        write(&up, "op/.wh..wh..opq", b"");
        write(&up, ".git/config", b"[core]");
        symlink("b", up.join("link")).unwrap();
        std::fs::create_dir(up.join("plain")).unwrap();
        std::fs::set_permissions(up.join("plain"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(src.join("plain"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let root = sys::open_root(&src).unwrap();
        let changes = list(&ov, root.as_fd()).unwrap();
        assert_eq!(
            lines(&changes),
            vec![
                "A .git",
                "A .git/config exec-config",
                "D gone.txt",
                "M link symlink",
                "M mod.txt",
                "M mode.sh",
                "A new",
                "A new/deep",
                "A new/deep/file",
                "D olddir",
                "D op/drop1",
                "D op/sub",
                "T t",
                "A t/inside",
            ]
        );
        let d = changes.iter().find(|c| c.path == p("olddir")).unwrap();
        assert_eq!((d.kind, d.via), (EntryKind::Dir, Via::Whiteout));
        let d = changes.iter().find(|c| c.path == p("op/drop1")).unwrap();
        assert_eq!(d.via, Via::Opaque);
        let m = changes.iter().find(|c| c.path == p("mode.sh")).unwrap();
        assert_eq!(m.modes, Some((0o755, 0o644)));
    }

    #[test]
    fn paths_are_quoted_like_git() {
        assert_eq!(quote(&p("src/a.rs")), "src/a.rs");
        assert_eq!(quote(&p("a b/ü")), "a b/ü");
        assert_eq!(
            quote(&RelPath::parse(b"x\xff\ny\"").unwrap()),
            "\"x\\377\\ny\\\"\""
        );
    }
}
