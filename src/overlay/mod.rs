//! The overlay directory of SPEC §4: where `--writes overlay` puts every change, and what `diff`,
//! `apply` and `discard` review afterwards.
//!
//! ```text
//! OVERLAY/
//!   overlay.toml   format = 1, source = "/canonical/SOURCE", created = "RFC3339 UTC"
//!   upper/         created and copied-up entries at their view paths; a deletion is an empty regular file ".wh.NAME" (mode 0) beside where NAME was; an opaque directory (lower contents ignored) holds an empty file ".wh..wh..opq"
//!   work/          scratch space on the same file system for atomic copy-up (build there, rename into upper); emptied at every open for mount
//!   origins        append-only provenance: one line per path, the state of SOURCE at that path the FIRST time the overlay touched it:  "<percent-encoded path> absent" | "<path> hidden" (an entry the view hid: apply never writes over or deletes it, nor anything beneath) | "<path> dir" | "<path> file <ino> <size> <mtime_ns>" | "<path> symlink <ino> <size> <mtime_ns>" | "<path> other <ino> <size> <mtime_ns>"; the first line for a path wins; a torn last line is ignored; percent-encode every byte outside [A-Za-z0-9._~/+-] (and '%' itself)
//!   lock           a file the live mount holds flock(LOCK_EX) on; apply/discard take it too (LOCK_NB) and refuse while a mount holds it
//! ```
//!
//! Details the format leaves open, decided here:
//! - In `origins` the root of SOURCE is written `.` (no [`crate::path::RelPath`] component is
//!   ever `.`).
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
//! This module owns the directory's layout, its lock and the provenance records; the overlay
//! write layer ([`Upper`]: copy-up, whiteouts, opaque directories, the index of `upper/` and
//! the limits); and the review of its changes ([`changes`], [`apply`]). It reads `upper/` only
//! through descriptors, never following a symlink, because everything in it was written by the
//! agent (THREATS R11). It writes SOURCE only when `apply` is asked to.

pub mod apply;
pub mod changes;
mod copy_up;
mod files;
pub mod git;
mod hidden;
mod layer;
mod origins;
mod protect;
pub mod review;
mod upper;

pub use files::check_location;
pub use origins::{LowerState, decode_path, encode_path, mtime_ns, percent_decode, percent_encode};
pub use upper::{
    Upper, UpperIndex, UpperLimits, UpperName, is_reserved, whiteout_for, whiteout_name,
};

use std::fs::{DirBuilder, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use files::{
    check_ancestors, check_private, config_text, ensure_subdir, open_subdir, private_dir,
    read_config, take_lock, write_atomic,
};
use origins::{Origins, open_origins};

use crate::sys;

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
    #[error("the overlay's SOURCE {} cannot be opened: {err}; it was moved or deleted, so restore it (or discard the overlay)", source_dir.display())]
    SourceGone { source_dir: PathBuf, err: io::Error },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OverlayError {
    let path = path.to_path_buf();
    move |source| OverlayError::Io {
        action,
        path,
        source,
    }
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::time::SystemTime;

    use super::*;
    use crate::path::RelPath;

    pub(crate) fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    pub(crate) struct Fixture {
        _tmp: tempfile::TempDir,
        pub(crate) source: PathBuf,
        pub(crate) overlay: PathBuf,
    }

    pub(crate) fn fixture() -> Fixture {
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
}
