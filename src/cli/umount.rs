//! `scopefs umount`: unmount a view and wait until its daemon has exited.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::sys::{self, mountinfo};

/// How long `umount` waits for the daemon to exit after the unmount.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct UmountCmd {
    /// Detach now even if the view is busy; it goes away when the last user leaves.
    #[arg(long)]
    pub lazy: bool,
    /// Where the view is mounted.
    pub mountpoint: PathBuf,
}

impl UmountCmd {
    pub fn run(self) -> CliResult {
        let shown = self.mountpoint.display();
        if let Err(e) = std::fs::metadata(&self.mountpoint) {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                // A dead mount: its daemon is gone; detach what is left.
                return unmount(&self.mountpoint, true);
            }
            return Err(CliError::usage(format!("MOUNTPOINT {shown}: {e}")));
        }
        let canonical = std::fs::canonicalize(&self.mountpoint)
            .map_err(|e| CliError::usage(format!("MOUNTPOINT {shown}: {e}")))?;
        let entry = mountinfo::find(&canonical)
            .map_err(|e| CliError::runtime(format!("cannot read /proc/self/mountinfo: {e}")))?
            .ok_or_else(|| CliError::usage(format!("{shown} is not a mount point")))?;
        let Some(pid) = entry.scopefs_pid() else {
            return Err(CliError::usage(format!(
                "{shown} is not a scopefs view (it is {}): use umount(8)",
                entry.fs_type
            )));
        };
        unmount(&canonical, self.lazy)?;
        let start = Instant::now();
        while sys::process_alive(pid) {
            if start.elapsed() > EXIT_TIMEOUT {
                return Err(CliError::runtime(format!(
                    "unmounted, but the daemon (pid {pid}) has not exited after {}s",
                    EXIT_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

fn unmount(path: &Path, lazy: bool) -> CliResult {
    let shown = path.display();
    if sys::euid() != 0 {
        let status = Command::new("fusermount3")
            .arg(if lazy { "-uz" } else { "-u" })
            .arg(path)
            .status()
            .map_err(|e| {
                CliError::runtime(format!(
                    "cannot run fusermount3 ({e}): install the fuse3 package or run as root"
                ))
            })?;
        return if status.success() {
            Ok(())
        } else {
            Err(CliError::runtime(format!(
                "fusermount3 could not unmount {shown}"
            )))
        };
    }
    match sys::unmount(path, lazy) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(CliError::runtime(format!(
            "{shown} is busy: a process still uses it; close it, or pass --lazy to detach now"
        ))),
        Err(e) => Err(CliError::runtime(format!("cannot unmount {shown}: {e}"))),
    }
}
