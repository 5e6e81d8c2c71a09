//! The session: mounting the view, serving it, and the drain before an unmount. An unmount ends
//! the kernel's side of the connection at once, and a reply written after that fails (fuser
//! logs each such failure as an error, on the terminal of `run` or a foreground mount), so the
//! unmount first lets the requests in hand be answered.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL};

use super::ScopeFs;
use crate::sys::{self, mountinfo};

/// How long an unmount waits for the requests in hand to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the requests being served must have been none before an unmount goes ahead.
const SETTLE: Duration = Duration::from_millis(5);

/// Request-serving threads unless `--threads` says otherwise (or the machine has more than
/// eight cores, which get two each).
const DEFAULT_THREADS: usize = 16;

/// Counts the requests the daemon has taken and not yet answered, for the drain.
#[derive(Debug, Clone, Default)]
pub struct Serving(Arc<AtomicUsize>);

/// One request being served, counted until dropped.
pub(super) struct Served<'a>(&'a AtomicUsize);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Serving {
    pub(super) fn enter(&self) -> Served<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        Served(&self.0)
    }

    /// Waits, for at most `limit`, until no request has been in hand for a few milliseconds;
    /// whether that happened.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.0.load(Ordering::Acquire) == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE {
                    return true;
                }
            } else {
                idle_since = None;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// How the view is mounted.
#[derive(Debug, Clone)]
pub struct MountConfig<'a> {
    pub mountpoint: &'a Path,
    /// The kernel refuses every write itself.
    pub read_only: bool,
    /// Other users may enter; the kernel then checks permissions (`default_permissions`).
    pub allow_other: bool,
    /// Request-serving threads (default: 16, or twice the number of cores where that is more).
    pub threads: Option<u16>,
}

/// Why the view could not be mounted; nothing is left mounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount at {}: {source}", .mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        source: io::Error,
    },
    #[error("cannot mount at {} as a normal user without fusermount3: install the fuse3 package, or run as root", .0.display())]
    NoFusermount(PathBuf),
    #[error("the kernel did not start the file system at {}: {source}", .mountpoint.display())]
    Handshake {
        mountpoint: PathBuf,
        source: io::Error,
    },
}

/// Mounts `fs` as `config` says and starts a session on the connection, not yet serving: with
/// mount(2) as root, through `fusermount3` (which opens `/dev/fuse` as root on the user's
/// behalf) as a normal user. A failed handshake leaves nothing mounted.
pub fn mount(fs: ScopeFs, config: &MountConfig<'_>) -> Result<Session<ScopeFs>, MountError> {
    let failed = |source| MountError::Mount {
        mountpoint: config.mountpoint.to_path_buf(),
        source,
    };
    let options = kernel_mount_options(config);
    if sys::euid() == 0 {
        let fd = sys::mount_fuse(config.mountpoint, &options).map_err(failed)?;
        start_session(fs, fd, config, |path| sys::unmount(path, true))
    } else {
        let fusermount = sys::fusermount::find()
            .ok_or_else(|| MountError::NoFusermount(config.mountpoint.to_path_buf()))?;
        let fd =
            sys::fusermount::mount(&fusermount, config.mountpoint, &options).map_err(failed)?;
        start_session(fs, fd, config, |path| sys::fusermount::unmount(path, true))
    }
}

fn kernel_mount_options(config: &MountConfig<'_>) -> sys::FuseMountOptions {
    sys::FuseMountOptions {
        source: format!("{}{}", mountinfo::SOURCE_PREFIX, std::process::id()),
        fs_type: "fuse.scopefs".into(),
        read_only: config.read_only,
        allow_other: config.allow_other,
        default_permissions: config.allow_other,
    }
}

/// Starts a session on a fresh FUSE connection; if the kernel's handshake fails, `detach`
/// removes the mount again.
fn start_session(
    fs: ScopeFs,
    fd: OwnedFd,
    config: &MountConfig<'_>,
    detach: impl Fn(&Path) -> io::Result<()>,
) -> Result<Session<ScopeFs>, MountError> {
    let fuse = fuse_config(config);
    Session::from_fd(fs, fd, fuse.acl, fuse).map_err(|source| {
        if let Err(e) = detach(config.mountpoint) {
            tracing::error!(error = %e, "cannot detach the failed mount");
        }
        MountError::Handshake {
            mountpoint: config.mountpoint.to_path_buf(),
            source,
        }
    })
}

fn fuse_config(config: &MountConfig<'_>) -> Config {
    let mut fuse = Config::default();
    fuse.mount_options = vec![
        MountOption::FSName(format!(
            "{}{}",
            mountinfo::SOURCE_PREFIX,
            std::process::id()
        )),
        MountOption::Subtype("scopefs".into()),
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if config.read_only {
        fuse.mount_options.push(MountOption::RO);
    }
    if config.allow_other {
        fuse.mount_options.push(MountOption::DefaultPermissions);
        fuse.acl = SessionACL::All;
    }
    // Requests mostly wait on the disk, and tools that stat in parallel (git checks its index
    // from up to 20 threads) keep many in hand: at least 16, two per core where that is more.
    // On a cold tree 16 let git status's first pass beat the peers where 4 only drew level;
    // warm passes, reads and untar measured the same or better (docs/performance.md).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = DEFAULT_THREADS.max(2 * cores);
    fuse.n_threads = Some(config.threads.map_or(default, usize::from));
    fuse
}

/// Unmounts the view at `mountpoint` once the requests in hand are answered, detaching it
/// lazily if it is busy: with umount2 as root, with `fusermount3 -u` as a normal user.
pub fn unmount(mountpoint: &Path, serving: &Serving) {
    if !serving.wait_idle(DRAIN_TIMEOUT) {
        tracing::debug!("requests still in hand after {DRAIN_TIMEOUT:?}; unmounting anyway");
    }
    let unmount = |lazy| {
        if sys::euid() == 0 {
            sys::unmount(mountpoint, lazy)
        } else {
            sys::fusermount::unmount(mountpoint, lazy)
        }
    };
    if let Err(e) = unmount(false) {
        tracing::warn!(error = %e, "unmount failed; detaching lazily");
        if let Err(e) = unmount(true) {
            tracing::error!(error = %e, "cannot detach the mount");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_unmount_waits_for_the_requests_in_hand() {
        let serving = Serving::default();
        assert!(serving.wait_idle(Duration::from_secs(1)), "nothing in hand");
        let taken = serving.enter();
        assert!(
            !serving.wait_idle(Duration::from_millis(20)),
            "a request in hand was not waited for"
        );
        // Both ends are read on one clock, around the answer itself, so a waiter that starts
        // late (a loaded machine) cannot make the check fail, and one that returns before the
        // answer always does.
        let (idle, answered, returned) = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let idle = serving.wait_idle(Duration::from_secs(5));
                (idle, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(50));
            let answered = Instant::now();
            drop(taken);
            let (idle, returned) = waiter.join().unwrap();
            (idle, answered, returned)
        });
        assert!(idle, "the wait gave up with the request answered");
        assert!(
            returned >= answered + SETTLE,
            "the wait ended {:?} before the request was answered and settled",
            (answered + SETTLE).saturating_duration_since(returned)
        );
    }
}
