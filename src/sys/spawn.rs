//! Starting a command in a private mount namespace where the view covers SOURCE's own path
//! (`scopefs run --in-place`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::check;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Arranges for `cmd`, once forked, to enter a new mount namespace (with every mount made
/// private, so nothing propagates back), bind the view at `view` over `source`, and change
/// to `cwd` — a path under `source`, now reached through the view. Processes outside the
/// namespace keep seeing the real directory. Needs CAP_SYS_ADMIN.
pub fn in_place(cmd: &mut Command, view: &Path, source: &Path, cwd: &Path) -> io::Result<()> {
    let view = cpath(view)?;
    let source = cpath(source)?;
    let cwd = cpath(cwd)?;
    // SAFETY: the hook runs in the forked child before exec and only makes raw syscalls on
    // strings prepared here, allocating nothing, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                view.as_ptr(),
                source.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::chdir(cwd.as_ptr()))?;
            Ok(())
        });
    }
    Ok(())
}

/// Sends `signal` to the process `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill has no memory effects.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}
