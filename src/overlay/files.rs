//! The overlay's own files and its privacy: `overlay.toml`, the lock, and the checks that no
//! user but the daemon's can enter or replace the overlay directory (SPEC §4).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{CONFIG, FORMAT, LOCK, ORIGINS, OverlayError, io_err, percent_decode, percent_encode};
use crate::path::{Name, RelPath};
use crate::sys::write as w;
use crate::sys::{self, FileType, Open};

#[derive(serde::Deserialize)]
struct ConfigFile {
    format: i64,
    source: Option<String>,
    source_pct: Option<String>,
}

/// The longest `overlay.toml` read: the real one holds three short lines.
const CONFIG_MAX: u64 = 64 * 1024;

pub(super) fn read_config(dir: &Path) -> Result<Option<PathBuf>, OverlayError> {
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

pub(super) fn config_text(source: &Path) -> String {
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
pub(super) fn open_own(
    dir: &Path,
    name: &'static str,
    write: bool,
) -> Result<Option<File>, OverlayError> {
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
pub(super) fn open_own_or_create(dir: &Path, name: &'static str) -> Result<File, OverlayError> {
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
pub(super) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
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

pub(super) fn take_lock(dir: &Path) -> Result<File, OverlayError> {
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
pub(super) fn private_dir() -> DirBuilder {
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
pub(super) fn check_private(dir: &Path, fresh: bool) -> Result<(), OverlayError> {
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
/// [`super::Overlay::open_for_mount`] makes, for callers that must make it before they change ids.
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
pub(super) fn check_ancestors(dir: &Path) -> Result<(), OverlayError> {
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
pub(super) fn ensure_subdir(dir: &Path, name: &str, how: &DirBuilder) -> Result<(), OverlayError> {
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

pub(super) fn open_subdir(dir: &Path, name: &str) -> Result<OwnedFd, OverlayError> {
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::super::tests::fixture;
    use super::super::{Overlay, WORK};
    use super::*;

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
}
