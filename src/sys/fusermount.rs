//! Mounting and unmounting through `fusermount3`, the setuid helper of the fuse3 package, for
//! a normal user who may not mount (or open `/dev/fuse`) directly.
//!
//! `fusermount3 -o OPTIONS -- MOUNTPOINT` opens `/dev/fuse`, mounts, and hands the open device
//! back over the socket named by `_FUSE_COMMFD` (SCM_RIGHTS); `fusermount3 -u [-z]` unmounts.

use std::ffi::OsString;
use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use super::{FuseMountOptions, check};

/// Where `fusermount3` is: on PATH, or in the usual places.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("fusermount3"))
        .find(|candidate| candidate.is_file())
}

/// The `-o` option string for `options` (fusermount3 adds rootmode, user_id and group_id).
fn option_string(options: &FuseMountOptions) -> String {
    let mut out = vec![
        format!("fsname={}", options.source),
        format!(
            "subtype={}",
            options
                .fs_type
                .strip_prefix("fuse.")
                .unwrap_or(&options.fs_type)
        ),
        "nosuid".to_string(),
        "nodev".to_string(),
    ];
    if options.read_only {
        out.push("ro".to_string());
    }
    if options.allow_other {
        out.push("allow_other".to_string());
    }
    if options.default_permissions {
        out.push("default_permissions".to_string());
    }
    out.join(",")
}

/// Mounts a FUSE file system at `mountpoint` with `fusermount` (the helper at that path) and
/// returns the connection's descriptor.
pub fn mount(
    fusermount: &Path,
    mountpoint: &Path,
    options: &FuseMountOptions,
) -> io::Result<OwnedFd> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs_fd = theirs.as_raw_fd();
    let mut command = Command::new(fusermount);
    command
        .arg("-o")
        .arg(option_string(options))
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the hook runs in the forked child before exec and only calls fcntl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            check(libc::fcntl(theirs_fd, libc::F_SETFD, 0))?;
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop(theirs);
    let received = receive_fd(&ours);
    drop(ours);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait()?;
    match received {
        Ok(fd) if status.success() => Ok(fd),
        Ok(_) | Err(_) => Err(io::Error::other(format!(
            "{} failed ({status}): {}",
            fusermount.display(),
            stderr.trim()
        ))),
    }
}

/// Receives one descriptor sent with SCM_RIGHTS.
fn receive_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    for control in message
        .cmsgs()
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?
    {
        if let ControlMessageOwned::ScmRights(fds) = control {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns
                // it.
                return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENODATA))
}

/// Unmounts `mountpoint` with `fusermount3 -u` (`-uz` with `lazy`: detach even if busy).
pub fn unmount(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    let fusermount = find().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "fusermount3 is not installed (package fuse3)",
        )
    })?;
    let output = Command::new(&fusermount)
        .arg(if lazy { "-uz" } else { "-u" })
        .arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    let said: OsString = std::os::unix::ffi::OsStringExt::from_vec(output.stderr);
    let said = said.to_string_lossy();
    let busy = said.contains("busy");
    Err(io::Error::new(
        if busy {
            io::ErrorKind::ResourceBusy
        } else {
            io::ErrorKind::Other
        },
        said.trim().to_string(),
    ))
}
