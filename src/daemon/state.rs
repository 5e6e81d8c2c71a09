//! A small state file per live view, so that `scopefs status` can list the views of this user
//! and `scopefs reload` can tell whether the daemon put a new policy in force. (The daemon's
//! command line carries nothing: it is blanked so that other users learn no policy flags.)
//!
//! The files live in a directory only this user can enter: `/run/scopefs` for root,
//! `$XDG_RUNTIME_DIR/scopefs` for a normal user (or `/tmp/scopefs-UID` without one), mode 0700,
//! refused if it is a symlink, belongs to someone else or is open to others. Each file is named
//! by the daemon's pid, written whole through a rename, and removed when the view is unmounted.
//! A daemon that was killed leaves its file behind: readers check the pid still runs with the
//! start time recorded, and that the view is still mounted where the file says, and remove what
//! fails.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::sys::{self, mountinfo};

/// What a live view records about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewState {
    /// The process serving the view (`mount`'s daemon, or `run` itself).
    pub pid: u32,
    /// When that process started, in clock ticks since boot (`/proc/PID/stat`), so that a pid
    /// reused by another process is not taken for the daemon.
    pub start_ticks: u64,
    pub source: PathBuf,
    pub mountpoint: PathBuf,
    /// `deny`, `overlay` or `direct`.
    pub write_mode: String,
    pub overlay: Option<PathBuf>,
    /// The policy file, if the view was given one.
    pub policy: Option<PathBuf>,
    /// When the view was mounted, in seconds since the epoch.
    pub started: u64,
    /// Mounted in `run`'s own namespaces, where only its command sees it.
    pub private: bool,
    /// Operations the daemon refused under the policy (hidden names looked up, writes refused).
    pub denied: u64,
    /// Reloads (SIGHUP) answered so far, and what became of the last one.
    pub reloads: u64,
    pub last_reload: Option<ReloadOutcome>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// The new policy is in force.
    pub applied: bool,
    /// Why not, when it is not.
    pub reason: Option<String>,
}

/// The directory of this user's state files (made if missing), or why it cannot be used.
/// `uid` is the user's real id, taken before any user namespace is entered.
pub fn dir(uid: u32) -> io::Result<PathBuf> {
    let mut candidates = candidates(uid);
    let dir = candidates.swap_remove(0);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check_private(&dir, uid)?;
    Ok(dir)
}

/// This user's state directory if it exists and is private, without making it.
fn existing_dir(uid: u32) -> Option<PathBuf> {
    candidates(uid)
        .into_iter()
        .find(|d| check_private(d, uid).is_ok())
}

/// Where this user's state files may be, the one [`dir`] makes first: `/run/scopefs` for
/// root; for others `$XDG_RUNTIME_DIR/scopefs` where that directory is theirs, then
/// `/tmp/scopefs-UID`.
fn candidates(uid: u32) -> Vec<PathBuf> {
    if uid == 0 {
        return vec![PathBuf::from("/run/scopefs")];
    }
    let mut list = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if runtime.is_absolute() && owned_by(&runtime, uid) {
            list.push(runtime.join("scopefs"));
        }
    }
    list.push(PathBuf::from(format!("/tmp/scopefs-{uid}")));
    list
}

fn owned_by(path: &Path, uid: u32) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.uid() == uid)
}

/// A directory of `uid`'s own that no one else may enter: not a symlink, theirs, mode 0700.
fn check_private(dir: &Path, uid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    let euid = sys::euid();
    if !meta.is_dir() || (meta.uid() != uid && meta.uid() != euid) || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of uid {uid} (a directory of its own, mode 0700); \
                 remove it so that scopefs can make it again",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// The start time of process `pid`, in clock ticks since boot, while it runs (not once it has
/// exited and waits to be reaped).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let after_comm = sys::stat_after_comm(&pid.to_string()).ok()?;
    let mut fields = after_comm.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A live view's state file, kept up to date while the view is served; removed on drop.
pub struct Record {
    path: PathBuf,
    state: Mutex<ViewState>,
}

impl Record {
    /// Writes the first state of a view into `dir`.
    pub fn create(dir: &Path, state: ViewState) -> io::Result<Record> {
        let record = Record {
            path: dir.join(format!("{}.json", state.pid)),
            state: Mutex::new(state),
        };
        record.write(&record.state.lock())?;
        Ok(record)
    }

    /// Changes the state and writes it out.
    pub fn update(&self, change: impl FnOnce(&mut ViewState)) {
        let mut state = self.state.lock();
        let before = state.clone();
        change(&mut state);
        if *state != before {
            if let Err(e) = self.write(&state) {
                tracing::warn!(error = %e, path = %self.path.display(), "cannot update the view's state file");
            }
        }
    }

    fn write(&self, state: &ViewState) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(&text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!(error = %e, "cannot remove the view's state file");
        }
    }
}

/// Whether `state` describes a view that is live now: its process runs (the same process, by
/// its start time) and, unless it is private to `run`'s command, the view is mounted where it
/// says, by that process.
pub fn is_live(state: &ViewState, mounts: &[mountinfo::MountEntry]) -> bool {
    if start_ticks(state.pid) != Some(state.start_ticks) {
        return false;
    }
    state.private
        || mounts
            .iter()
            .any(|m| m.mount_point == state.mountpoint && m.scopefs_pid() == Some(state.pid))
}

/// The live views of user `uid`, by mountpoint. State files of views that are gone are removed.
pub fn live(uid: u32) -> io::Result<Vec<ViewState>> {
    let Some(dir) = existing_dir(uid) else {
        return Ok(Vec::new());
    };
    let mounts = mountinfo::read()?;
    let mut views = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let state: Option<ViewState> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match state {
            Some(state) if is_live(&state, &mounts) => views.push(state),
            // Gone (or not a state file of ours): nothing serves it any more.
            _ => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::debug!(error = %e, path = %path.display(), "cannot remove a stale state file");
                }
            }
        }
    }
    views.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
    Ok(views)
}

/// The state of the live view at `mountpoint` (canonical), if it is one of user `uid`'s.
pub fn find(uid: u32, mountpoint: &Path) -> io::Result<Option<ViewState>> {
    Ok(live(uid)?.into_iter().find(|v| v.mountpoint == mountpoint))
}

/// The state of the view served by `pid`, read afresh (for `reload`, which waits for it to
/// change).
pub fn read(uid: u32, pid: u32) -> Option<ViewState> {
    let dir = existing_dir(uid)?;
    let bytes = std::fs::read(dir.join(format!("{pid}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_of_this_process() {
        let mine = start_ticks(std::process::id());
        assert!(mine.is_some());
        assert_eq!(start_ticks(std::process::id()), mine);
        assert_eq!(start_ticks(u32::MAX), None);
    }
}
