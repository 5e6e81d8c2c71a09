//! The overlay directory of SPEC §4: where `--writes overlay` puts every change, and what `diff`,
//! `apply` and `discard` review afterwards.
//!
//! ```text
//! OVERLAY/
//!   overlay.toml   format = 1, source = "/canonical/SOURCE", created = "RFC3339 UTC"
//!   upper/         created and copied-up entries at their view paths; a deletion is an empty regular file ".wh.NAME" (mode 0) beside where NAME was; an opaque directory (lower contents ignored) holds an empty file ".wh..wh..opq"
//!   work/          scratch space on the same file system for atomic copy-up (build there, rename into upper); emptied at every open for mount
//!   origins        append-only provenance: one line per path, the state of SOURCE at that path the FIRST time the overlay touched it:  "<percent-encoded path> absent" | "<path> dir" | "<path> file <ino> <size> <mtime_ns>" | "<path> symlink <ino> <size> <mtime_ns>" | "<path> other <ino> <size> <mtime_ns>"; the first line for a path wins; a torn last line is ignored; percent-encode every byte outside [A-Za-z0-9._~/+-] (and '%' itself)
//!   lock           a file the live mount holds flock(LOCK_EX) on; apply/discard take it too (LOCK_NB) and refuse while a mount holds it
//! ```
//!
//! Details the format leaves open, decided here:
//! - In `origins` the root of SOURCE is written `.` (no [`RelPath`] component is ever `.`).
//! - A SOURCE path that is not UTF-8 cannot be a TOML string: `overlay.toml` then carries
//!   `source_pct`, the path percent-encoded as in `origins`, beside a lossy `source` for people;
//!   `source_pct` wins when present.
//! - The holder of `lock` writes its process id into it, so a refusal can name the process.
//! - OVERLAY must not lie inside SOURCE: the agent would see, and could edit, its own overlay.
//! - OVERLAY and `work/` are made 0700, and a mount refuses an OVERLAY that other users
//!   could enter (or rename away from a directory they can change): entries the agent makes
//!   belong to the agent, so an agent that reached `upper/` from outside could write there
//!   past every check of the view.
//! - The overlay's own files are opened without following a symlink and only once they are
//!   seen to be regular files, so a FIFO or a device in their place is an error, never a hang.
//!
//! This module owns the directory's layout, its lock and the provenance records. It reads
//! `upper/` only through descriptors, never following a symlink, because everything in it was
//! written by the agent (THREATS R11). It never touches SOURCE.

pub mod apply;
pub mod changes;

use std::collections::{BTreeSet, HashMap};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::path::{Name, RelPath};
use crate::sys::write as w;
use crate::sys::{self, FileType, Open};

/// The prefix of a whiteout: `.wh.NAME` in upper/ says NAME was deleted from the view.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The marker of an opaque directory: the lower directory's contents are not shown.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The version of the layout this code reads and writes.
pub const FORMAT: i64 = 1;

const CONFIG: &str = "overlay.toml";
const UPPER: &str = "upper";
const WORK: &str = "work";
const ORIGINS: &str = "origins";
const LOCK: &str = "lock";

/// Why an overlay directory could not be opened. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot {action} {}: {source}; check the path and its permissions", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot create the overlay {}: its parent directory does not exist; create the parent first", .0.display())]
    ParentMissing(PathBuf),
    #[error("the overlay {} is not a directory; give a new or empty directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is a non-empty directory but not a scopefs overlay (it has no overlay.toml); give a new or empty directory", .0.display())]
    NotAnOverlay(PathBuf),
    #[error("{} is not a scopefs overlay (no overlay.toml); give the directory that was passed to `mount --overlay`", .0.display())]
    Missing(PathBuf),
    #[error("{}: {problem}; the file is damaged or not a scopefs overlay, so review it by hand", path.display())]
    BadConfig { path: PathBuf, problem: String },
    #[error("{} has format {found}, which this scopefs (format {FORMAT}) cannot read; use the scopefs that made it", path.display())]
    NewerFormat { path: PathBuf, found: i64 },
    #[error("the overlay {} was made for SOURCE {}, not {}; mount {} with it, or give another overlay directory", dir.display(), recorded.display(), given.display(), recorded.display())]
    WrongSource {
        dir: PathBuf,
        recorded: PathBuf,
        given: PathBuf,
    },
    #[error("the overlay {} is inside SOURCE {}, where the agent could edit it; put it outside SOURCE", dir.display(), source_dir.display())]
    InsideSource { dir: PathBuf, source_dir: PathBuf },
    #[error("the overlay {} is in use by a live mount{}; unmount it first (`scopefs umount MOUNTPOINT`)", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { dir: PathBuf, pid: Option<u32> },
    #[error("{} is {kind}, not the regular file the overlay keeps there: the overlay is damaged; {fix}", path.display())]
    NotAFile {
        path: PathBuf,
        kind: &'static str,
        fix: &'static str,
    },
    #[error("{} is too large for {what} ({size} bytes, at most {limit}): the overlay is damaged; move the overlay aside", path.display())]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("the overlay {} {problem}, so the agent could change it behind the view's back; {fix}", dir.display())]
    NotPrivate {
        dir: PathBuf,
        problem: String,
        fix: String,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OverlayError {
    let path = path.to_path_buf();
    move |source| OverlayError::Io {
        action,
        path,
        source,
    }
}

/// The state of SOURCE at a path, as recorded the first time the overlay touched the path and as
/// compared again by `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerState {
    Absent,
    Dir,
    File { ino: u64, size: u64, mtime_ns: i128 },
    Symlink { ino: u64, size: u64, mtime_ns: i128 },
    Other { ino: u64, size: u64, mtime_ns: i128 },
}

/// Nanoseconds since the epoch (negative before it).
pub fn mtime_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

impl LowerState {
    /// The state of an entry from its `stat` (`None`: nothing there).
    pub fn of(stat: Option<&sys::Stat>) -> LowerState {
        let Some(st) = stat else {
            return LowerState::Absent;
        };
        let (ino, size, mtime_ns) = (st.ino, st.size, mtime_ns(st.mtime));
        match st.kind {
            FileType::Dir => LowerState::Dir,
            FileType::File => LowerState::File {
                ino,
                size,
                mtime_ns,
            },
            FileType::Symlink => LowerState::Symlink {
                ino,
                size,
                mtime_ns,
            },
            FileType::Fifo | FileType::Socket | FileType::CharDevice | FileType::BlockDevice => {
                LowerState::Other {
                    ino,
                    size,
                    mtime_ns,
                }
            }
        }
    }

    /// The record's words after the path, e.g. `file 12 5 1700000000000000000`.
    fn to_words(self) -> String {
        match self {
            LowerState::Absent => "absent".into(),
            LowerState::Dir => "dir".into(),
            LowerState::File {
                ino,
                size,
                mtime_ns,
            } => format!("file {ino} {size} {mtime_ns}"),
            LowerState::Symlink {
                ino,
                size,
                mtime_ns,
            } => format!("symlink {ino} {size} {mtime_ns}"),
            LowerState::Other {
                ino,
                size,
                mtime_ns,
            } => format!("other {ino} {size} {mtime_ns}"),
        }
    }

    fn from_words<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<LowerState> {
        let kind = words.next()?;
        let mut nums = || -> Option<(u64, u64, i128)> {
            let ino = words.next()?.parse().ok()?;
            let size = words.next()?.parse().ok()?;
            let mtime_ns = words.next()?.parse().ok()?;
            Some((ino, size, mtime_ns))
        };
        let state = match kind {
            "absent" => LowerState::Absent,
            "dir" => LowerState::Dir,
            "file" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::File {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            "symlink" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::Symlink {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            "other" => {
                let (ino, size, mtime_ns) = nums()?;
                LowerState::Other {
                    ino,
                    size,
                    mtime_ns,
                }
            }
            _ => return None,
        };
        words.next().is_none().then_some(state)
    }
}

/// The bytes `origins` writes as they are: `[A-Za-z0-9._~/+-]`; every other byte, `%` included,
/// is written `%XX`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'+')
    .remove(b'-');

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'/' | b'+' | b'-')
}

/// Percent-encodes every byte outside `[A-Za-z0-9._~/+-]`, `%` included, as `%XX`.
pub fn percent_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, ESCAPED).to_string()
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or an unescaped byte that
/// should have been escaped (decoding alone would let both through).
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        let well_formed = if b == b'%' {
            bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                && bytes.next().is_some_and(|l| l.is_ascii_hexdigit())
        } else {
            is_plain(b)
        };
        if !well_formed {
            return None;
        }
    }
    Some(percent_encoding::percent_decode_str(text).collect())
}

/// A path as written in `origins`: percent-encoded, the root as `.`.
pub fn encode_path(path: &RelPath) -> String {
    if path.is_root() {
        ".".into()
    } else {
        percent_encode(path.as_bytes())
    }
}

/// The inverse of [`encode_path`]; `None` unless the text is a normalised path.
pub fn decode_path(text: &str) -> Option<RelPath> {
    if text == "." {
        return Some(RelPath::root());
    }
    let bytes = percent_decode(text)?;
    let path = RelPath::parse(&bytes).ok()?;
    (path.as_bytes() == bytes.as_slice() && !path.is_root()).then_some(path)
}

/// One line of `origins`, without its newline.
fn origin_line(path: &RelPath, state: LowerState) -> String {
    format!("{} {}", encode_path(path), state.to_words())
}

fn parse_origin_line(line: &str) -> Option<(RelPath, LowerState)> {
    let mut words = line.split(' ');
    let path = decode_path(words.next()?)?;
    let state = LowerState::from_words(words)?;
    Some((path, state))
}

/// Parses `origins`: complete lines only (a torn last line is ignored), the first record of a
/// path wins, malformed lines are skipped.
fn parse_origins(data: &[u8]) -> HashMap<RelPath, LowerState> {
    let mut map = HashMap::new();
    let complete = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => data.get(..i).unwrap_or_default(),
        None => return map,
    };
    for line in complete.split(|b| *b == b'\n') {
        let parsed = std::str::from_utf8(line).ok().and_then(parse_origin_line);
        match parsed {
            Some((path, state)) => {
                map.entry(path).or_insert(state);
            }
            None if line.is_empty() => {}
            None => tracing::warn!(
                line = %String::from_utf8_lossy(line),
                "skipping a malformed line of the overlay's origins file"
            ),
        }
    }
    map
}

/// What the file system needs to know about upper/ when it mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpperIndex {
    /// Every path in upper/ (files, directories, symlinks, others), not the `.wh.` markers.
    pub entries: BTreeSet<RelPath>,
    /// View paths deleted by a whiteout.
    pub whiteouts: BTreeSet<RelPath>,
    /// Directories holding the opaque marker (the root included when it holds one).
    pub opaque: BTreeSet<RelPath>,
    /// Sum of the sizes of regular files.
    pub bytes: u64,
    /// Number of entries, whiteouts and opaque markers included.
    pub files: u64,
}

/// What one name in upper/ stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperName {
    /// An ordinary entry.
    Entry(Name),
    /// `.wh.NAME`: NAME is deleted.
    Whiteout(Name),
    /// `.wh..wh..opq`.
    Opaque,
    /// A `.wh.` name that names nothing valid (e.g. `.wh.` alone); ignored.
    Invalid,
}

impl UpperName {
    /// Classifies a name read from an upper directory.
    pub fn classify(name: &Name) -> UpperName {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_MARKER {
            return UpperName::Opaque;
        }
        match bytes.strip_prefix(WHITEOUT_PREFIX) {
            Some(rest) => match Name::new(rest) {
                Ok(target) => UpperName::Whiteout(target),
                Err(_) => UpperName::Invalid,
            },
            None => UpperName::Entry(name.clone()),
        }
    }
}

/// The `.wh.NAME` marker for `name`, or `None` when there is none: the result would be longer
/// than a name may be, or `name` is `.wh..opq`, whose marker would be the opaque marker.
pub fn whiteout_name(name: &Name) -> Option<Name> {
    let mut bytes = WHITEOUT_PREFIX.to_vec();
    bytes.extend_from_slice(name.as_bytes());
    if bytes == OPAQUE_MARKER {
        return None;
    }
    Name::new(&bytes).ok()
}

/// The `origins` file: records in memory and, when the overlay may be changed, the handle
/// appended to.
struct Origins {
    map: HashMap<RelPath, LowerState>,
    file: Option<File>,
}

/// An open overlay directory.
pub struct Overlay {
    dir: PathBuf,
    source: PathBuf,
    upper: OwnedFd,
    work: OwnedFd,
    /// Held open for as long as the overlay is: closing it releases the flock.
    _lock: Option<File>,
    origins: Mutex<Origins>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("dir", &self.dir)
            .field("source", &self.source)
            .field("locked", &self._lock.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct ConfigFile {
    format: i64,
    source: Option<String>,
    source_pct: Option<String>,
}

/// The longest `overlay.toml` read: the real one holds three short lines.
const CONFIG_MAX: u64 = 64 * 1024;

fn read_config(dir: &Path) -> Result<Option<PathBuf>, OverlayError> {
    let path = dir.join(CONFIG);
    let Some(file) = open_own(dir, CONFIG, false)? else {
        return Ok(None);
    };
    let size = file.metadata().map_err(io_err("read", &path))?.len();
    if size > CONFIG_MAX {
        return Err(OverlayError::TooLarge {
            path,
            what: "a configuration",
            size,
            limit: CONFIG_MAX,
        });
    }
    let mut text = Vec::new();
    file.take(CONFIG_MAX)
        .read_to_end(&mut text)
        .map_err(io_err("read", &path))?;
    let bad = |problem: String| OverlayError::BadConfig {
        path: path.clone(),
        problem,
    };
    let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    let config: ConfigFile = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    if config.format > FORMAT {
        return Err(OverlayError::NewerFormat {
            path,
            found: config.format,
        });
    }
    if config.format != FORMAT {
        return Err(bad(format!("unknown format {}", config.format)));
    }
    let source = match (config.source_pct, config.source) {
        (Some(pct), _) => percent_decode(&pct)
            .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
            .ok_or_else(|| bad("source_pct is not percent-encoded".into()))?,
        (None, Some(s)) => PathBuf::from(s),
        (None, None) => return Err(bad("no source".into())),
    };
    if !source.is_absolute() {
        return Err(bad("source is not an absolute path".into()));
    }
    Ok(Some(source))
}

fn config_text(source: &Path) -> String {
    let bytes = source.as_os_str().as_bytes();
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut text = format!("format = {FORMAT}\n");
    match std::str::from_utf8(bytes) {
        Ok(s) => text.push_str(&format!("source = {}\n", quoted(s))),
        Err(_) => {
            text.push_str(&format!(
                "source = {}\n",
                quoted(&String::from_utf8_lossy(bytes))
            ));
            text.push_str(&format!(
                "source_pct = {}\n",
                quoted(&percent_encode(bytes))
            ));
        }
    }
    text.push_str(&format!(
        "created = {}\n",
        quoted(&humantime::format_rfc3339_seconds(SystemTime::now()).to_string())
    ));
    text
}

/// What sort of entry `kind` is, for a message.
fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::File => "a regular file",
        FileType::Dir => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharDevice => "a character device",
        FileType::BlockDevice => "a block device",
    }
}

/// How to repair the overlay when its own file `name` is not a regular file.
fn repair_hint(name: &str) -> &'static str {
    match name {
        LOCK => "remove it; scopefs makes a new one",
        ORIGINS => {
            "move it aside and scopefs starts a new one (`apply` then holds every change to a file SOURCE has as a conflict until you review it and pass --force)"
        }
        _ => "put the original back, or move the whole overlay aside and start a new one",
    }
}

/// Opens the overlay's own file `name` (`overlay.toml`, `origins`, `lock`) in `dir` for reading
/// (with `write`, for reading and writing), never following a symlink and never opening
/// anything but a regular file: a handle on whatever is there comes first, its type is checked,
/// and only then is that very file opened (`O_NONBLOCK`), so a FIFO, a device or a symlink put
/// in its place is a clear error instead of a hang. `None`: there is no such file.
fn open_own(dir: &Path, name: &'static str, write: bool) -> Result<Option<File>, OverlayError> {
    let path = dir.join(name);
    let dir_fd = sys::open_root(dir).map_err(io_err("open", dir))?;
    let entry = Name::new(name.as_bytes())
        .map_err(|_| io_err("open", &path)(io::Error::from_raw_os_error(libc::EINVAL)))?;
    let rel = RelPath::root().join(&entry);
    let handle = match sys::resolve(dir_fd.as_fd(), &rel, Open::Path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let st = sys::fstat(handle.as_fd()).map_err(io_err("inspect", &path))?;
    if st.kind != FileType::File {
        return Err(OverlayError::NotAFile {
            path,
            kind: describe(st.kind),
            fix: repair_hint(name),
        });
    }
    sys::reopen_regular(dir_fd.as_fd(), &rel, handle.as_fd(), &st, write)
        .map(Some)
        .map_err(io_err("open", &path))
}

/// [`open_own`] for reading and writing, making the file (mode 0600) when it is missing.
fn open_own_or_create(dir: &Path, name: &'static str) -> Result<File, OverlayError> {
    let path = dir.join(name);
    let dir_fd = sys::open_root(dir).map_err(io_err("open", dir))?;
    let entry = Name::new(name.as_bytes())
        .map_err(|_| io_err("create", &path)(io::Error::from_raw_os_error(libc::EINVAL)))?;
    // O_EXCL: never opens what is already there, whatever its type.
    match w::create_file(dir_fd.as_fd(), &entry, 0o600) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", &path)(e)),
    }
    open_own(dir, name, true)?
        .ok_or_else(|| io_err("open", &path)(io::Error::from_raw_os_error(libc::ENOENT)))
}

/// Writes `data` to `dir/name` through `dir/name.tmp`, fsync'd, then renamed into place.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Takes the overlay's lock or says who holds it.
/// How many times a busy lock is tried, 20 ms apart.
const LOCK_TRIES: u32 = 10;

fn take_lock(dir: &Path) -> Result<File, OverlayError> {
    let path = dir.join(LOCK);
    let mut file = open_own_or_create(dir, LOCK)?;
    // A lock held only for an instant is no live mount: a process that forks keeps a copy of
    // the descriptor until its child execs. Try again briefly before calling it in use.
    let mut locked = false;
    for _ in 0..LOCK_TRIES {
        locked = w::try_lock_exclusive(&file).map_err(io_err("lock", &path))?;
        if locked {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if !locked {
        let mut text = String::new();
        let pid = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse().ok());
        return Err(OverlayError::InUse {
            dir: dir.to_path_buf(),
            pid,
        });
    }
    let record = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all(record.as_bytes()))
        .map_err(io_err("write the lock file", &path))?;
    Ok(file)
}

/// How the overlay's directories are made: mode 0700, so that only the daemon's user can
/// enter them (the umask can only take bits away).
fn private_dir() -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    builder
}

/// Refuses an overlay directory that users other than this process's could enter or replace,
/// since they could then change `upper/` behind the view's back (SPEC §4): it must belong to
/// this process's user and give group and others no access, and no directory above it that
/// other users can reach may let them rename entries (written by them, or theirs, unless
/// sticky). With `fresh` (an empty directory that is no overlay yet) a directory of this user
/// that others could enter is made 0700 instead.
fn check_private(dir: &Path, fresh: bool) -> Result<(), OverlayError> {
    check_ancestors(dir)?;
    let me = sys::euid();
    let meta = std::fs::symlink_metadata(dir).map_err(io_err("inspect", dir))?;
    let refuse = |problem: String, fix: String| OverlayError::NotPrivate {
        dir: dir.to_path_buf(),
        problem,
        fix,
    };
    if meta.uid() != me {
        return Err(refuse(
            format!(
                "belongs to uid {}, not to uid {me} that scopefs runs as",
                meta.uid()
            ),
            format!(
                "give a new directory, or check what it holds and `chown -R {me} {}`",
                dir.display()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        if !fresh {
            return Err(refuse(
                format!("can be entered by other users (mode {mode:04o})"),
                format!(
                    "check that it holds only what the view wrote (`scopefs diff {0}`), then `chmod 700 {0}`",
                    dir.display()
                ),
            ));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("make private (chmod 700)", dir))?;
    }
    Ok(())
}

/// Refuses an overlay at `dir` (which need not exist yet; its parent must) when a directory
/// above it lets users other than root and this process's rename it away: the check
/// [`Overlay::open_for_mount`] makes, for callers that must make it before they change ids.
pub fn check_location(dir: &Path) -> Result<(), OverlayError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::canonicalize(parent) {
        Ok(parent) => check_ancestors(&dir.file_name().map_or(parent.clone(), |n| parent.join(n))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(OverlayError::ParentMissing(dir.to_path_buf()))
        }
        Err(e) => Err(io_err("resolve the parent of", dir)(e)),
    }
}

/// Refuses `dir` when a directory above it lets users other than root and this process's
/// rename it away and put another in its place (they can reach that directory and write to
/// it, or own it; the sticky bit stops others from renaming what is not theirs).
fn check_ancestors(dir: &Path) -> Result<(), OverlayError> {
    let me = sys::euid();
    // In a user namespace of its own (a normal user's `run`), owners the namespace does not
    // map (root's `/` among them) all show as the overflow uid: who they are cannot be told
    // here. `run` checks the location with its real ids before it enters the namespace
    // ([`check_location`]); here they count as root does.
    let unmapped = sys::unmapped_owner();
    let refuse = |problem: String, fix: String| OverlayError::NotPrivate {
        dir: dir.to_path_buf(),
        problem,
        fix,
    };
    // From the root down: a directory others can reach and change lets them swap what lies
    // beneath it; one they cannot enter shields everything beneath it.
    let mut reachable = true;
    let ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    for ancestor in ancestors.into_iter().rev() {
        let meta = std::fs::symlink_metadata(ancestor).map_err(io_err("inspect", ancestor))?;
        let mode = meta.mode();
        let foreign = meta.uid() != 0 && meta.uid() != me && Some(meta.uid()) != unmapped;
        let sticky = mode & libc::S_ISVTX != 0;
        if reachable && (foreign || (mode & 0o022 != 0 && !sticky)) {
            let who = if foreign {
                format!("uid {}, who owns it,", meta.uid())
            } else {
                format!("other users (mode {:04o})", mode & 0o7777)
            };
            return Err(refuse(
                format!(
                    "lies in {}, where {who} could rename it and put another in its place",
                    ancestor.display()
                ),
                format!("put it in a directory that only root and uid {me} can change"),
            ));
        }
        reachable = reachable && (foreign || mode & 0o011 != 0);
    }
    Ok(())
}

/// Makes `dir/name` a directory if it is not one yet; refuses a symlink or another type there.
fn ensure_subdir(dir: &Path, name: &str, how: &DirBuilder) -> Result<(), OverlayError> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(OverlayError::BadConfig {
            path,
            problem: "not a directory".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            how.create(&path).map_err(io_err("create", &path))
        }
        Err(e) => Err(io_err("inspect", &path)(e)),
    }
}

fn open_subdir(dir: &Path, name: &str) -> Result<OwnedFd, OverlayError> {
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).map_err(io_err("open", &path))?;
    if !meta.is_dir() {
        return Err(OverlayError::BadConfig {
            path,
            problem: "not a directory".into(),
        });
    }
    sys::open_root(&path).map_err(io_err("open", &path))
}

/// Opens `origins`; with `writable`, for appending too, after cutting a torn last line so the
/// next record starts on a line of its own.
fn open_origins(dir: &Path, writable: bool) -> Result<Origins, OverlayError> {
    let path = dir.join(ORIGINS);
    let file = if writable {
        Some(open_own_or_create(dir, ORIGINS)?)
    } else {
        open_own(dir, ORIGINS, false)?
    };
    let mut data = Vec::new();
    if let Some(mut file) = file.as_ref() {
        file.read_to_end(&mut data).map_err(io_err("read", &path))?;
    }
    let map = parse_origins(&data);
    let Some(mut file) = file.filter(|_| writable) else {
        return Ok(Origins { map, file: None });
    };
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete != data.len() {
        file.set_len(complete as u64)
            .map_err(io_err("repair the torn last line of", &path))?;
    }
    // Records are appended: this handle is the only writer while the lock is held.
    file.seek(SeekFrom::End(0))
        .map_err(io_err("open for appending", &path))?;
    Ok(Origins {
        map,
        file: Some(file),
    })
}

impl Overlay {
    /// For `mount`: creates OVERLAY if missing (its parent must exist) with mode 0700, or checks
    /// it is a scopefs overlay (overlay.toml format 1) made for this canonical SOURCE (else a
    /// clear error naming both paths); an existing non-empty directory without overlay.toml is
    /// refused, and so is one that other users could enter or replace (an empty one of this
    /// user is made 0700); takes the lock (LOCK_EX|LOCK_NB: if held, error "OVERLAY is in use
    /// by a live mount (pid N if known)"); empties work/; returns the Overlay.
    pub fn open_for_mount(dir: &Path, source: &Path) -> Result<Overlay, OverlayError> {
        let source = std::fs::canonicalize(source).map_err(io_err("resolve SOURCE", source))?;
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(OverlayError::NotADirectory(dir.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Where others could replace it, nothing is made at all.
                let parent = dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                match std::fs::canonicalize(parent) {
                    Ok(parent) => check_ancestors(
                        &dir.file_name().map_or(parent.clone(), |n| parent.join(n)),
                    )?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(OverlayError::ParentMissing(dir.to_path_buf()));
                    }
                    Err(e) => return Err(io_err("resolve the parent of", dir)(e)),
                }
                match private_dir().create(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(OverlayError::ParentMissing(dir.to_path_buf()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err("create", dir)(e)),
                }
            }
            Err(e) => return Err(io_err("open", dir)(e)),
        }
        let dir = std::fs::canonicalize(dir).map_err(io_err("resolve", dir))?;
        if dir.starts_with(&source) {
            return Err(OverlayError::InsideSource {
                dir,
                source_dir: source,
            });
        }
        let check_existing = |dir: &Path| -> Result<bool, OverlayError> {
            match read_config(dir)? {
                Some(recorded) if recorded == source => Ok(true),
                Some(recorded) => Err(OverlayError::WrongSource {
                    dir: dir.to_path_buf(),
                    recorded,
                    given: source.clone(),
                }),
                None => Ok(false),
            }
        };
        let initialised = check_existing(&dir)?;
        if !initialised {
            let mut entries = std::fs::read_dir(&dir).map_err(io_err("list", &dir))?;
            // Only a lock file left by a mount racing to create the same overlay is tolerated.
            let foreign = entries.any(|e| e.map_or(true, |e| e.file_name() != LOCK));
            if foreign {
                return Err(OverlayError::NotAnOverlay(dir));
            }
        }
        check_private(&dir, !initialised)?;
        let lock = take_lock(&dir)?;
        if !check_existing(&dir)? {
            write_atomic(&dir, CONFIG, config_text(&source).as_bytes())
                .map_err(io_err("write overlay.toml in", &dir))?;
        }
        // upper/ is the view's root directory, whose mode the view shows; the overlay's own
        // mode keeps others out of it.
        ensure_subdir(&dir, UPPER, &DirBuilder::new())?;
        ensure_subdir(&dir, WORK, &private_dir())?;
        let upper = open_subdir(&dir, UPPER)?;
        let work = open_subdir(&dir, WORK)?;
        sys::tree::empty_dir(work.as_fd()).map_err(io_err("empty", &dir.join(WORK)))?;
        let origins = open_origins(&dir, true)?;
        Ok(Overlay {
            dir,
            source,
            upper,
            work,
            _lock: Some(lock),
            origins: Mutex::new(origins),
        })
    }

    /// For diff: no lock needed (read-only). For apply/discard: with_lock = true (refuse if held).
    pub fn open_for_review(dir: &Path, with_lock: bool) -> Result<Overlay, OverlayError> {
        let meta = std::fs::metadata(dir).map_err(io_err("open the overlay", dir))?;
        if !meta.is_dir() {
            return Err(OverlayError::NotADirectory(dir.to_path_buf()));
        }
        let dir = std::fs::canonicalize(dir).map_err(io_err("resolve", dir))?;
        let source = read_config(&dir)?.ok_or_else(|| OverlayError::Missing(dir.clone()))?;
        let lock = if with_lock {
            Some(take_lock(&dir)?)
        } else {
            None
        };
        let upper = open_subdir(&dir, UPPER)?;
        let work = open_subdir(&dir, WORK)?;
        let origins = open_origins(&dir, with_lock)?;
        Ok(Overlay {
            dir,
            source,
            upper,
            work,
            _lock: lock,
            origins: Mutex::new(origins),
        })
    }

    /// Refuses an overlay that users other than this process's could have entered or
    /// replaced (see `open_for_mount`): `apply` must copy only what the view wrote.
    pub fn check_private(&self) -> Result<(), OverlayError> {
        check_private(&self.dir, false)
    }

    /// The overlay directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The canonical SOURCE recorded in overlay.toml.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// `O_PATH` directory descriptor of upper/.
    pub fn upper(&self) -> BorrowedFd<'_> {
        self.upper.as_fd()
    }

    /// `O_PATH` directory descriptor of work/.
    pub fn work(&self) -> BorrowedFd<'_> {
        self.work.as_fd()
    }

    /// Whether this overlay holds the lock (opened for mount, apply or discard).
    pub fn is_locked(&self) -> bool {
        self._lock.is_some()
    }

    /// Records the lower state of `path` unless the path already has a record; appends a line
    /// and, unless SOURCE has nothing at `path`, fdatasyncs before returning, so the record is
    /// on disk before the change it describes is made. Thread-safe (&self; internal Mutex).
    ///
    /// A record of an absent entry is not synced on its own (the next synced record carries
    /// it): losing it in a crash changes nothing, since `apply` treats a path without a
    /// record as absent for an addition and as a conflict for anything else: as the record
    /// would have decided, or more strictly. This keeps creating many new files (an untar, a
    /// build) from costing one disk flush each.
    pub fn record_origin(&self, path: &RelPath, state: LowerState) -> io::Result<()> {
        let mut origins = self.origins.lock();
        if origins.map.contains_key(path) {
            return Ok(());
        }
        let Some(file) = origins.file.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the overlay was opened read-only for review",
            ));
        };
        let line = format!("{}\n", origin_line(path, state));
        file.write_all(line.as_bytes())?;
        if state != LowerState::Absent {
            file.sync_data()?;
        }
        origins.map.insert(path.clone(), state);
        Ok(())
    }

    /// The recorded lower state of `path`, if the overlay has touched it.
    pub fn origin(&self, path: &RelPath) -> Option<LowerState> {
        self.origins.lock().map.get(path).copied()
    }

    /// Rewrites `origins` keeping only the records for which `keep` is true (temporary file and
    /// rename), then appends to the new file. Needs the lock.
    pub fn retain_origins(&self, keep: impl Fn(&RelPath) -> bool) -> io::Result<()> {
        let mut origins = self.origins.lock();
        if origins.file.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the overlay was opened read-only for review",
            ));
        }
        origins.map.retain(|path, _| keep(path));
        let mut records: Vec<(&RelPath, &LowerState)> = origins.map.iter().collect();
        records.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::new();
        for (path, state) in records {
            text.push_str(&origin_line(path, *state));
            text.push('\n');
        }
        write_atomic(&self.dir, ORIGINS, text.as_bytes())?;
        let mut file = open_own(&self.dir, ORIGINS, true)
            .map_err(|e| io::Error::other(e.to_string()))?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        file.seek(SeekFrom::End(0))?;
        origins.file = Some(file);
        Ok(())
    }

    /// Walks upper/ (through descriptors, never following symlinks) and returns what the file
    /// system needs at mount: every upper path (files, dirs, symlinks; not the .wh.* markers),
    /// the whiteouts (view paths deleted), the opaque directories, and the usage (bytes = sum of
    /// regular file sizes, files = number of entries incl. whiteouts).
    pub fn scan(&self) -> io::Result<UpperIndex> {
        let mut index = UpperIndex::default();
        let mut stack = vec![RelPath::root()];
        while let Some(dir_path) = stack.pop() {
            let dir = sys::resolve(self.upper(), &dir_path, Open::Dir)?;
            for entry in sys::read_dir(dir.as_fd())? {
                let Ok(name) = Name::new(&entry.name) else {
                    continue;
                };
                match UpperName::classify(&name) {
                    UpperName::Opaque => {
                        index.opaque.insert(dir_path.clone());
                        index.files += 1;
                    }
                    UpperName::Whiteout(target) => {
                        index.whiteouts.insert(dir_path.join(&target));
                        index.files += 1;
                    }
                    UpperName::Invalid => {
                        tracing::warn!(dir = %dir_path, name = %name, "ignoring an invalid whiteout name in the overlay");
                    }
                    UpperName::Entry(name) => {
                        let st = match sys::stat_at(dir.as_fd(), &name) {
                            Ok(st) => st,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let path = dir_path.join(&name);
                        index.files += 1;
                        match st.kind {
                            FileType::File => index.bytes = index.bytes.saturating_add(st.size),
                            FileType::Dir => stack.push(path.clone()),
                            _ => {}
                        }
                        index.entries.insert(path);
                    }
                }
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        source: PathBuf,
        overlay: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("src");
        std::fs::create_dir(&source).unwrap();
        let overlay = tmp.path().join("ov");
        Fixture {
            source,
            overlay,
            _tmp: tmp,
        }
    }

    #[test]
    fn create_then_reopen() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let canon = std::fs::canonicalize(&f.source).unwrap();
        assert_eq!(ov.source(), canon);
        for name in [CONFIG, UPPER, WORK, ORIGINS, LOCK] {
            assert!(f.overlay.join(name).exists(), "{name}");
        }
        let config = std::fs::read_to_string(f.overlay.join(CONFIG)).unwrap();
        assert!(config.starts_with("format = 1\nsource = "), "{config}");
        assert!(config.contains("created = \"20"), "{config}");
        // RFC 3339 in UTC, to the second: `created = "YYYY-MM-DDTHH:MM:SSZ"`.
        let created = config
            .lines()
            .find_map(|l| l.strip_prefix("created = "))
            .unwrap();
        let created = created.trim_matches('"');
        assert_eq!(
            (created.len(), created.get(10..11)),
            (20, Some("T")),
            "{created}"
        );
        assert!(created.ends_with('Z'), "{created}");
        let when = humantime::parse_rfc3339(created).unwrap();
        let age = SystemTime::now().duration_since(when).unwrap();
        assert!(age < std::time::Duration::from_secs(600), "{created}");
        std::fs::write(f.overlay.join("work/junk"), b"x").unwrap();
        std::fs::create_dir(f.overlay.join("work/d")).unwrap();
        std::fs::write(f.overlay.join("work/d/y"), b"x").unwrap();
        drop(ov);
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        assert_eq!(
            std::fs::read_dir(f.overlay.join("work")).unwrap().count(),
            0
        );
        drop(ov);
        let review = Overlay::open_for_review(&f.overlay, false).unwrap();
        assert_eq!(review.source(), canon);
        assert!(!review.is_locked());
    }

    #[test]
    fn wrong_source_and_foreign_dirs_are_refused() {
        let f = fixture();
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());
        let other = f.source.parent().unwrap().join("other");
        std::fs::create_dir(&other).unwrap();
        let err = Overlay::open_for_mount(&f.overlay, &other).unwrap_err();
        assert!(matches!(err, OverlayError::WrongSource { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("/src") && msg.contains("/other"), "{msg}");

        let foreign = f.source.parent().unwrap().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes"), b"x").unwrap();
        let err = Overlay::open_for_mount(&foreign, &f.source).unwrap_err();
        assert!(matches!(err, OverlayError::NotAnOverlay(_)), "{err}");
        assert!(matches!(
            Overlay::open_for_review(&foreign, false).unwrap_err(),
            OverlayError::Missing(_)
        ));

        let empty = f.source.parent().unwrap().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(Overlay::open_for_mount(&empty, &f.source).is_ok());

        let orphan = f.source.parent().unwrap().join("no/such/dir");
        let err = Overlay::open_for_mount(&orphan, &f.source).unwrap_err();
        assert!(matches!(err, OverlayError::ParentMissing(_)), "{err}");

        let inside = f.source.join("ov");
        let err = Overlay::open_for_mount(&inside, &f.source).unwrap_err();
        assert!(matches!(err, OverlayError::InsideSource { .. }), "{err}");

        std::fs::write(f.overlay.join(CONFIG), "format = 7\nsource = \"/x\"\n").unwrap();
        let err = Overlay::open_for_review(&f.overlay, false).unwrap_err();
        assert!(matches!(err, OverlayError::NewerFormat { .. }), "{err}");
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn only_the_daemons_user_can_enter_the_overlay() {
        let f = fixture();
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());
        for dir in [&f.overlay, &f.overlay.join(WORK)] {
            assert_eq!(mode_of(dir), 0o700, "{}", dir.display());
        }
        // An overlay others could enter: whatever they put in upper/ would pass for the view's.
        chmod(&f.overlay, 0o755);
        let err = Overlay::open_for_mount(&f.overlay, &f.source).unwrap_err();
        assert!(matches!(err, OverlayError::NotPrivate { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("can be entered by other users (mode 0755)") && msg.contains("chmod 700"),
            "{msg}"
        );
        let review = Overlay::open_for_review(&f.overlay, true).unwrap();
        assert!(review.check_private().is_err());
        drop(review);
        chmod(&f.overlay, 0o700);
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());

        // Another user's directory, even 0700: its owner could change it.
        if sys::euid() == 0 {
            std::os::unix::fs::chown(&f.overlay, Some(65534), None).unwrap();
            let err = Overlay::open_for_mount(&f.overlay, &f.source).unwrap_err();
            assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
            std::os::unix::fs::chown(&f.overlay, Some(0), None).unwrap();
        }

        // An empty directory of this user is no overlay yet: it is made private.
        let empty = f.source.parent().unwrap().join("empty");
        std::fs::create_dir(&empty).unwrap();
        chmod(&empty, 0o777);
        drop(Overlay::open_for_mount(&empty, &f.source).unwrap());
        assert_eq!(mode_of(&empty), 0o700);

        // A parent others can write (and not sticky) lets them swap the overlay for their own.
        let shared = f.source.parent().unwrap().join("shared");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o777);
        let err = Overlay::open_for_mount(&shared.join("ov"), &f.source).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("where other users (mode 0777) could rename it"),
            "{msg}"
        );
        // Sticky, as /tmp is: others cannot rename what is not theirs.
        chmod(&shared, 0o1777);
        drop(Overlay::open_for_mount(&shared.join("ov"), &f.source).unwrap());
        // Behind a directory others cannot enter, nothing is in their reach.
        chmod(&shared, 0o777);
        let closed = shared.parent().unwrap().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::rename(&shared, closed.join("shared")).unwrap();
        chmod(&closed, 0o700);
        drop(Overlay::open_for_mount(&closed.join("shared/ov"), &f.source).unwrap());
    }

    #[test]
    fn overlay_files_of_another_type_are_refused_without_blocking() {
        let f = fixture();
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());
        let fifo = |path: &Path| {
            let dir = sys::open_root(path.parent().unwrap()).unwrap();
            let name = Name::new(path.file_name().unwrap().as_bytes()).unwrap();
            w::mknod(dir.as_fd(), &name, libc::S_IFIFO | 0o600).unwrap();
        };
        for name in [ORIGINS, LOCK, CONFIG] {
            let path = f.overlay.join(name);
            let saved = f.overlay.join("saved");
            std::fs::rename(&path, &saved).unwrap();
            fifo(&path);
            let mount = Overlay::open_for_mount(&f.overlay, &f.source).unwrap_err();
            let review = Overlay::open_for_review(&f.overlay, true).unwrap_err();
            for err in [mount, review] {
                let msg = err.to_string();
                assert!(
                    matches!(err, OverlayError::NotAFile { .. })
                        && msg.contains(&format!("{name} is a FIFO")),
                    "{name}: {msg}"
                );
            }
            std::fs::remove_file(&path).unwrap();
            symlink("saved", &path).unwrap();
            let err = Overlay::open_for_review(&f.overlay, true).unwrap_err();
            assert!(err.to_string().contains("is a symlink"), "{name}: {err}");
            std::fs::remove_file(&path).unwrap();
            std::fs::rename(&saved, &path).unwrap();
        }
        drop(Overlay::open_for_mount(&f.overlay, &f.source).unwrap());
    }

    #[test]
    fn the_lock_is_exclusive() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let err = Overlay::open_for_mount(&f.overlay, &f.source).unwrap_err();
        match &err {
            OverlayError::InUse { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("in use by a live mount (pid "));
        assert!(Overlay::open_for_review(&f.overlay, true).is_err());
        assert!(Overlay::open_for_review(&f.overlay, false).is_ok());
        drop(ov);
        let review = Overlay::open_for_review(&f.overlay, true).unwrap();
        assert!(Overlay::open_for_mount(&f.overlay, &f.source).is_err());
        drop(review);
        assert!(Overlay::open_for_mount(&f.overlay, &f.source).is_ok());
    }

    #[test]
    fn origins_first_record_wins_and_torn_lines_are_ignored() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let file = LowerState::File {
            ino: 7,
            size: 3,
            mtime_ns: -5,
        };
        ov.record_origin(&p("a/b"), file).unwrap();
        ov.record_origin(&p("a/b"), LowerState::Absent).unwrap();
        ov.record_origin(&p("new"), LowerState::Absent).unwrap();
        ov.record_origin(&RelPath::root(), LowerState::Dir).unwrap();
        assert_eq!(ov.origin(&p("a/b")), Some(file));
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert_eq!(text, "a/b file 7 3 -5\nnew absent\n. dir\n");
        // A crash mid-append leaves a torn line; a duplicate later line never wins.
        let mut torn = OpenOptions::new()
            .append(true)
            .open(f.overlay.join(ORIGINS))
            .unwrap();
        torn.write_all(b"new dir\nx sym").unwrap();
        drop(torn);
        let review = Overlay::open_for_review(&f.overlay, false).unwrap();
        assert_eq!(review.origin(&p("new")), Some(LowerState::Absent));
        assert_eq!(review.origin(&p("x")), None);
        drop(review);
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        ov.record_origin(&p("x"), LowerState::Dir).unwrap();
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert!(text.ends_with("new dir\nx dir\n"), "{text}");
        let ov = Overlay::open_for_review(&f.overlay, true).unwrap();
        assert_eq!(ov.origin(&p("x")), Some(LowerState::Dir));
        ov.retain_origins(|path| !path.starts_with(&p("a")))
            .unwrap();
        ov.record_origin(&p("z"), LowerState::Absent).unwrap();
        drop(ov);
        let text = std::fs::read_to_string(f.overlay.join(ORIGINS)).unwrap();
        assert_eq!(text, ". dir\nnew absent\nx dir\nz absent\n");
        let review = Overlay::open_for_review(&f.overlay, false).unwrap();
        assert!(review.record_origin(&p("q"), LowerState::Absent).is_err());
    }

    #[test]
    fn percent_encoding_round_trips() {
        let all: Vec<u8> = (0u8..=255).collect();
        assert_eq!(percent_decode(&percent_encode(&all)).unwrap(), all);
        for b in 0u8..=255 {
            let plain = b.is_ascii_alphanumeric() || b"._~/+-".contains(&b);
            let want = if plain {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(percent_encode(&[b]), want, "byte {b:#04x}");
        }
        assert_eq!(percent_decode("%ff%0a"), Some(vec![0xff, b'\n']));
        assert_eq!(percent_decode("%g0"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_encode(b"a b%\n\xff/c.rs"), "a%20b%25%0A%FF/c.rs");
        let weird = RelPath::parse(b"d\xffir/new\nline %20 .wh.x").unwrap();
        let enc = encode_path(&weird);
        assert!(!enc.contains(' ') && !enc.contains('\n'));
        assert_eq!(decode_path(&enc), Some(weird.clone()));
        assert_eq!(decode_path("."), Some(RelPath::root()));
        assert_eq!(decode_path("a/../b"), None);
        assert_eq!(decode_path("a//b"), None);
        assert_eq!(decode_path("a%2"), None);
        assert_eq!(decode_path("a b"), None);
        let line = origin_line(
            &weird,
            LowerState::Symlink {
                ino: 1,
                size: 2,
                mtime_ns: 3,
            },
        );
        assert_eq!(
            parse_origin_line(&line),
            Some((
                weird,
                LowerState::Symlink {
                    ino: 1,
                    size: 2,
                    mtime_ns: 3
                }
            ))
        );
        assert_eq!(parse_origin_line("a file 1 2"), None);
        assert_eq!(parse_origin_line("a dir extra"), None);
    }

    #[test]
    fn whiteouts_read_back_as_the_name_they_were_made_for() {
        let name = |b: &[u8]| Name::new(b).unwrap_or_else(|e| panic!("{e}"));
        for target in [&b"a"[..], b".wh.", b".wh.x", b".wh..wh..opq", &[b'n'; 251]] {
            let marker = whiteout_name(&name(target));
            assert_eq!(
                marker.map(|m| UpperName::classify(&m)),
                Some(UpperName::Whiteout(name(target)))
            );
        }
        // `.wh..opq` would be whited out by the opaque marker, `n`*252 by a name past NAME_MAX.
        assert_eq!(whiteout_name(&name(b".wh..opq")), None);
        assert_eq!(whiteout_name(&name(&[b'n'; 252])), None);
    }

    #[test]
    fn non_utf8_source_is_recorded_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp
            .path()
            .join(std::ffi::OsStr::from_bytes(b"s\xffrc \"q\""));
        std::fs::create_dir(&source).unwrap();
        let dir = tmp.path().join("ov");
        drop(Overlay::open_for_mount(&dir, &source).unwrap());
        let review = Overlay::open_for_review(&dir, false).unwrap();
        assert_eq!(review.source(), std::fs::canonicalize(&source).unwrap());
        assert!(Overlay::open_for_mount(&dir, &source).is_ok());
    }

    #[test]
    fn scan_finds_entries_whiteouts_and_opaque_dirs() {
        let f = fixture();
        let ov = Overlay::open_for_mount(&f.overlay, &f.source).unwrap();
        let up = f.overlay.join(UPPER);
        std::fs::create_dir_all(up.join("a/b")).unwrap();
        std::fs::write(up.join("a/b/f"), b"12345").unwrap();
        std::fs::write(up.join("top"), b"xy").unwrap();
        std::fs::write(up.join("a/.wh.gone"), b"").unwrap();
        std::fs::write(up.join(".wh.old"), b"").unwrap();
        std::fs::write(up.join("a/b/.wh..wh..opq"), b"").unwrap();
        std::fs::write(up.join(".wh."), b"").unwrap();
        symlink("/etc", up.join("link")).unwrap();
        // A symlink to a directory is listed, never entered.
        std::fs::create_dir(f.source.join("outside")).unwrap();
        std::fs::write(f.source.join("outside/secret"), b"zzzzzzzz").unwrap();
        symlink(f.source.join("outside"), up.join("a/escape")).unwrap();
        let index = ov.scan().unwrap();
        let set = |v: &[&str]| v.iter().map(|s| p(s)).collect::<BTreeSet<_>>();
        assert_eq!(
            index.entries,
            set(&["a", "a/b", "a/b/f", "top", "link", "a/escape"])
        );
        assert_eq!(index.whiteouts, set(&["a/gone", "old"]));
        assert_eq!(index.opaque, set(&["a/b"]));
        assert_eq!(index.bytes, 7);
        assert_eq!(index.files, 9);
    }
}
