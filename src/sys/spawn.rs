//! Starting the contained side of `scopefs run` ([`super::contain`]) from the process that
//! serves the view, and the descriptor it reports on.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::check;

/// A pipe for the contained side's report: the end to read, and the end it writes to.
pub fn report_pipe() -> io::Result<(File, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok((File::from(read), write))
}

/// Starts this very binary (`/proc/self/exe`) with `args` and `env` added to the environment,
/// handing it `report` under the same descriptor number (every other descriptor of this
/// process is close-on-exec). The child is killed if the calling thread ends first, so a
/// contained command never outlives `run`.
pub fn contained(
    args: &[OsString],
    env: &[(&OsStr, &OsStr)],
    report: OwnedFd,
) -> io::Result<Child> {
    let parent = std::process::id();
    let report_fd = report.as_raw_fd();
    let mut command = Command::new("/proc/self/exe");
    command.args(args).envs(env.iter().copied());
    // The command keeps the descriptor limits its caller gave run, not the daemon's.
    starting_limits(&mut command);
    // SAFETY: the hook runs in the forked child before exec and only makes raw system calls
    // without allocating, so it is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            check(libc::fcntl(report_fd, libc::F_SETFD, 0))?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            // The parent may have ended before the death signal was armed.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(report);
    child
}

/// Takes over the descriptor `fd` that the parent handed down ([`contained`]), making it
/// close-on-exec so that nothing started later inherits it.
pub fn inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: fcntl on a descriptor number has no memory effects; it fails on a closed one.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    // SAFETY: the descriptor is open (fcntl succeeded), was handed to this process for this
    // purpose, and nothing else in it owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives `cmd`, once forked, the descriptor limit this process started with, should it have
/// raised its own ([`super::raise_descriptor_limit`]): the command keeps its caller's limits,
/// not the daemon's (programs that use `select` need a soft limit of at most 1,024).
pub fn starting_limits(cmd: &mut Command) {
    let Some(limit) = super::starting_descriptor_limit() else {
        return;
    };
    // SAFETY: the hook runs in the forked child before exec and only calls setrlimit on a
    // struct prepared here, allocating nothing, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setrlimit(libc::RLIMIT_NOFILE, &limit))?;
            Ok(())
        });
    }
}

/// Sends `signal` to the process `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    let signal = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::kill_process(pid, signal)?)
}
