//! User namespaces and mount-table changes for containing `run`'s command: entering a user
//! namespace as its root, giving a child namespace ids that read as on the host, the mount
//! operations the container is built from (detached copies of mounts, attaching them, tmpfs,
//! per-mount attributes), and the one line that explains a host forbidding user namespaces.
//!
//! Everything here acts on the calling process's own namespaces; nothing knows what is being
//! contained or why.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Pid, Uid};

use super::check;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn from_nix(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Writes `data` to a `/proc` control file in one `write`, as id maps require.
fn write_proc(path: &str, data: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let written = file.write(data.as_bytes())?;
    if written != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

/// Enters a new user namespace, together with the namespaces in `also` (then owned by it), as
/// its root: uid and gid 0 inside are this process's own ids outside, and `setgroups` is
/// denied, which is all an unprivileged process may map. Must be called while the process has
/// a single thread.
pub fn become_root_of_new_userns(also: CloneFlags) -> io::Result<()> {
    let uid = Uid::effective();
    let gid = Gid::effective();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | also).map_err(from_nix)?;
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    Ok(())
}

/// Becomes root of a new user namespace with a mount namespace of its own whose mounts are
/// all private: mounts made now are seen by this process and its children only.
pub fn become_root_with_own_mounts() -> io::Result<()> {
    become_root_of_new_userns(CloneFlags::CLONE_NEWNS)?;
    make_all_private()
}

/// Whether this host lets the calling user make a user namespace it can act in: a throwaway
/// child is cloned into one and maps its ids there (the step AppArmor's restriction refuses),
/// then exits. The error is the kernel's answer; [`refusal`] explains it.
pub fn probe_userns() -> io::Result<()> {
    let maps = [
        (c"/proc/self/setgroups", "deny".to_string()),
        (c"/proc/self/uid_map", format!("0 {} 1", Uid::effective())),
        (c"/proc/self/gid_map", format!("0 {} 1", Gid::effective())),
    ];
    // SAFETY: clone without CLONE_VM gives the child a copy of this address space, as fork
    // does. The child only makes raw system calls on buffers prepared above (no allocation,
    // no locks) and leaves with _exit, so it is async-signal-safe even in a threaded parent.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWUSER | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        for (path, data) in &maps {
            // SAFETY: `path` is a valid C string and `data` a live buffer of `data.len()` bytes.
            let ok = unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                fd >= 0 && libc::write(fd, data.as_ptr().cast(), data.len()) >= 0
            };
            if !ok {
                // SAFETY: __errno_location is this thread's errno; _exit ends the child.
                unsafe { libc::_exit((*libc::__errno_location()).clamp(1, 255)) };
            }
        }
        // SAFETY: _exit ends the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    let pid = Pid::from_raw(libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid"))?);
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => {
                return Err(io::Error::from_raw_os_error(errno));
            }
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::EPERM)),
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(from_nix(e)),
        }
    }
}

/// Gives the user namespace of `child` (just made, without maps yet) ids that read as on the
/// host: every id this process's namespace maps is mapped to itself as seen from outside. So
/// host root stays uid 0, a user's own uid stays theirs, and file owners keep their numbers.
/// Needs CAP_SETUID and CAP_SETGID in this process's namespace.
pub fn map_ids_as_outside(child: Pid) -> io::Result<()> {
    for kind in ["uid_map", "gid_map"] {
        let own = std::fs::read_to_string(format!("/proc/self/{kind}"))?;
        write_proc(&format!("/proc/{child}/{kind}"), &inverted(&own))?;
    }
    Ok(())
}

/// An id map with its two id columns swapped: "inside outside count" → "outside inside count".
fn inverted(map: &str) -> String {
    map.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let inside = fields.next()?;
            let outside = fields.next()?;
            let count = fields.next()?;
            Some(format!("{outside} {inside} {count}\n"))
        })
        .collect()
}

/// The user-namespace settings of this host (`None` where the kernel has no such file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HostSettings {
    max_user_namespaces: Option<u64>,
    unprivileged_userns_clone: Option<u64>,
    apparmor_restrict_unprivileged_userns: Option<u64>,
}

impl HostSettings {
    fn read() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        HostSettings {
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_unprivileged_userns: read(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
        }
    }
}

/// One line saying why the kernel refused a user namespace (`err`), naming the host setting
/// responsible and how to allow it.
pub fn refusal(err: &io::Error) -> String {
    explain(err, &HostSettings::read(), Uid::effective().is_root())
}

fn explain(err: &io::Error, host: &HostSettings, root: bool) -> String {
    const WHY: &str = "scopefs run contains the command in a user namespace";
    if host.max_user_namespaces == Some(0) {
        return format!(
            "user namespaces are disabled on this host (user.max_user_namespaces = 0) and {WHY}: \
             allow them with `sysctl -w user.max_user_namespaces=15000` (as root)"
        );
    }
    if err.raw_os_error() == Some(libc::ENOSPC) {
        let max = host
            .max_user_namespaces
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        return format!(
            "the host's limit of user namespaces is reached (user.max_user_namespaces = {max}) \
             and {WHY}: raise it with `sysctl -w user.max_user_namespaces=N` (as root) or end \
             other sandboxes"
        );
    }
    if !root && host.unprivileged_userns_clone == Some(0) {
        return format!(
            "unprivileged user namespaces are disabled on this host \
             (kernel.unprivileged_userns_clone = 0) and {WHY}: allow them with \
             `sysctl -w kernel.unprivileged_userns_clone=1` (as root), or run scopefs as root"
        );
    }
    if !root && host.apparmor_restrict_unprivileged_userns == Some(1) {
        return format!(
            "AppArmor restricts unprivileged user namespaces on this host \
             (kernel.apparmor_restrict_unprivileged_userns = 1) and {WHY}: allow them with \
             `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (as root) or an AppArmor \
             profile for scopefs that grants `userns,`, or run scopefs as root"
        );
    }
    format!(
        "cannot make a user namespace ({err}) and {WHY}: a seccomp filter or the container \
         runtime forbids it (in Docker, run with --cap-add SYS_ADMIN and the default seccomp \
         profile)"
    )
}

/// Makes every mount of this mount namespace private, so that nothing mounted here propagates
/// to other namespaces and nothing mounted there appears here.
pub fn make_all_private() -> io::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(from_nix)
}

/// A detached copy of the mount (and, with `recursive`, the mounts beneath) at `path`, taken
/// now, to attach later with [`attach`] even if `path` is covered meanwhile.
pub fn copy_mount(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(rustix::mount::open_tree(rustix::fs::CWD, path, flags)?)
}

/// Attaches a mount copied with [`copy_mount`] at `target`, covering what is there.
pub fn attach(mount: &OwnedFd, target: &Path) -> io::Result<()> {
    use rustix::mount::MoveMountFlags;
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH;
    Ok(rustix::mount::move_mount(
        mount,
        c"",
        rustix::fs::CWD,
        target,
        flags,
    )?)
}

/// Mounts a file system without a device (`tmpfs`, `proc`, `devpts`) at `target`.
pub fn mount_virtual(fs_type: &str, target: &Path, flags: MsFlags, data: &str) -> io::Result<()> {
    nix::mount::mount(Some(fs_type), target, Some(fs_type), flags, Some(data)).map_err(from_nix)
}

/// Attributes of a mount that [`set_attributes`] changes.
pub mod attr {
    pub const READ_ONLY: u64 = libc::MOUNT_ATTR_RDONLY;
    pub const NO_DEVICES: u64 = libc::MOUNT_ATTR_NODEV;
}

/// Sets (`set`) and clears (`clear`) the [`attr`] flags of the mount at `path` (and, with
/// `recursive`, of every mount beneath it) in this namespace only: `mount_setattr`.
pub fn set_attributes(path: &Path, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let c = cpath(path)?;
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `c` is a valid C string and `attr` a mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        ) as libc::c_int
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(max: Option<u64>, clone: Option<u64>, apparmor: Option<u64>) -> HostSettings {
        HostSettings {
            max_user_namespaces: max,
            unprivileged_userns_clone: clone,
            apparmor_restrict_unprivileged_userns: apparmor,
        }
    }

    #[test]
    fn each_refusal_names_its_setting() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        let cases = [
            (
                &enospc,
                host(Some(0), None, None),
                false,
                "user.max_user_namespaces = 0",
            ),
            (
                &enospc,
                host(Some(0), Some(1), None),
                true,
                "user.max_user_namespaces = 0",
            ),
            (
                &enospc,
                host(Some(7), None, None),
                true,
                "user.max_user_namespaces = 7",
            ),
            (
                &eperm,
                host(Some(100), Some(0), None),
                false,
                "kernel.unprivileged_userns_clone = 0",
            ),
            (
                &eperm,
                host(Some(100), None, Some(1)),
                false,
                "kernel.apparmor_restrict_unprivileged_userns = 1",
            ),
            (
                &eperm,
                host(Some(100), Some(0), Some(1)),
                true,
                "seccomp filter or the container runtime",
            ),
        ];
        for (err, settings, root, expected) in cases {
            let line = explain(err, &settings, root);
            assert!(line.contains(expected), "{settings:?} root={root}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(line.contains("sysctl -w") || expected.contains("seccomp"));
        }
    }

    #[test]
    fn inverted_maps_swap_the_id_columns() {
        assert_eq!(
            inverted("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(
            inverted("0 1000 1\n1 100000 65536\n"),
            "1000 0 1\n100000 1 65536\n"
        );
    }
}
