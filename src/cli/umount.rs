//! `scopefs umount`: unmount a view and wait until its daemon has exited (`--lazy`: detach it
//! and return at once; the daemon exits when the last process using the view lets go).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::sys::{self, mountinfo};

/// How long `umount` waits for the daemon to exit after the unmount.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct UmountCmd {
    /// Detach now even if the view is busy, and return at once; the daemon exits when the last
    /// process using the view lets go.
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
        if self.lazy {
            // Detached: whoever still uses the view keeps it (and its daemon) until done.
            return Ok(());
        }
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
    let result = if sys::euid() == 0 {
        sys::unmount(path, lazy)
    } else {
        sys::fusermount::unmount(path, lazy)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) || e.kind() == ErrorKind::ResourceBusy => {
            Err(CliError::runtime(format!(
                "{shown} is busy: a process still uses it; close it, or pass --lazy to detach now"
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound && sys::euid() != 0 => Err(CliError::runtime(
            format!("cannot unmount {shown} as a normal user: {e}; install it, or run as root"),
        )),
        Err(e) => Err(CliError::runtime(format!("cannot unmount {shown}: {e}"))),
    }
}
