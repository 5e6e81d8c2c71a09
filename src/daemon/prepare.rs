//! Everything that can be checked before mounting: the policy, SOURCE, MOUNTPOINT, the
//! overlay's place and the FUSE device. Each problem names what is wrong and how to fix it, and
//! nothing is mounted or changed.

use std::path::{Path, PathBuf};

use super::{Error, Prepared};
use crate::policy::{Overrides, Policy, WriteMode};
use crate::sys::{self, mountinfo};

/// Checks the policy, SOURCE, MOUNTPOINT and the FUSE device; nothing is mounted yet.
pub fn prepare(overrides: &Overrides, source: &Path, mountpoint: &Path) -> Result<Prepared, Error> {
    let policy = Policy::from_overrides(overrides).map_err(Error::Policy)?;
    let source = check_source(source)?;
    if std::fs::canonicalize(mountpoint).is_ok_and(|m| m == source) {
        return Err(Error::Input(format!(
            "MOUNTPOINT {} is SOURCE itself, and a view cannot be mounted over the directory it \
             shows; to give a command the view at SOURCE's own path, use \
             `scopefs run --in-place {} -- COMMAND`",
            mountpoint.display(),
            source.display()
        )));
    }
    let mountpoint = check_mountpoint(mountpoint)?;
    if mountpoint.starts_with(&source) {
        return Err(Error::Input(format!(
            "MOUNTPOINT {} lies inside SOURCE {}: choose a mountpoint outside the directory you scope",
            mountpoint.display(),
            source.display()
        )));
    }
    check_writes(&policy, Some(&source), Some(&mountpoint))?;
    check_fuse_device()?;
    Ok(Prepared {
        policy,
        overrides: overrides.clone(),
        source,
        mountpoint,
    })
}

/// What [`prepare`] would refuse about `policy` (and `source`, if given) that needs neither a
/// MOUNTPOINT nor the FUSE device: what `scopefs check` reports, so that it answers as `mount`
/// would. Also checked: the places of the overlay and the audit log, which the daemon would
/// refuse when it opens them. Nothing is made or changed.
pub fn inspect(policy: &Policy, source: Option<&Path>) -> Vec<Error> {
    let mut problems = Vec::new();
    let source = source.and_then(|s| check_source(s).map_err(|e| problems.push(e)).ok());
    match check_writes(policy, source.as_deref(), None) {
        Err(e) => problems.push(e),
        Ok(()) => {
            if let Some(dir) = policy.overlay_dir() {
                if let Err(e) = crate::overlay::check_location(dir) {
                    problems.push(e.into());
                }
            }
        }
    }
    if let Some(log) = &policy.audit().log {
        let parent = log
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            problems.push(Error::Input(format!(
                "the audit log {}: its directory {} does not exist; create it first",
                log.display(),
                parent.display()
            )));
        }
    }
    problems
}

/// Overlay mode needs an overlay directory, and the overlay must lie outside SOURCE and
/// MOUNTPOINT (those known yet).
fn check_writes(
    policy: &Policy,
    source: Option<&Path>,
    mountpoint: Option<&Path>,
) -> Result<(), Error> {
    match policy.overlay_dir() {
        Some(overlay) => check_overlay(overlay, source, mountpoint),
        None if policy.write_mode() == WriteMode::Overlay => Err(Error::Input(format!(
            "{}: writes.mode = \"overlay\" needs an overlay directory: set [writes] overlay in \
             the policy or pass --overlay DIR (only `scopefs run` makes a temporary one by itself)",
            policy.name()
        ))),
        None => Ok(()),
    }
}

/// The overlay must lie outside SOURCE and MOUNTPOINT (the agent would see it, or it would
/// shadow itself); its own format is checked when the daemon opens it.
fn check_overlay(
    overlay: &Path,
    source: Option<&Path>,
    mountpoint: Option<&Path>,
) -> Result<(), Error> {
    let parent = overlay
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let canonical_parent = std::fs::canonicalize(parent).map_err(|e| {
        Error::Input(format!(
            "OVERLAY {}: its parent directory cannot be used ({e}): create it first",
            overlay.display()
        ))
    })?;
    let canonical = match overlay.file_name() {
        Some(name) => canonical_parent.join(name),
        None => canonical_parent,
    };
    let within = |dir: Option<&Path>| dir.is_some_and(|dir| canonical.starts_with(dir));
    if within(source) || within(mountpoint) {
        return Err(Error::Input(format!(
            "OVERLAY {} lies inside SOURCE or MOUNTPOINT: put it outside both, e.g. next to SOURCE",
            overlay.display()
        )));
    }
    Ok(())
}

fn check_source(source: &Path) -> Result<PathBuf, Error> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Input(format!(
                "SOURCE {} is not a directory: give the directory to scope",
                source.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Input(format!(
                "SOURCE {} does not exist: check the path",
                source.display()
            )));
        }
        Err(e) => {
            return Err(Error::Input(format!(
                "SOURCE {} cannot be read ({e}): check its permissions",
                source.display()
            )));
        }
    }
    std::fs::canonicalize(source)
        .map_err(|e| Error::Input(format!("SOURCE {}: {e}", source.display())))
}

fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf, Error> {
    let shown = mountpoint.display();
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Input(format!(
                "MOUNTPOINT {shown} is not a directory: mount on an empty directory"
            )));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(Error::Input(format!(
                "MOUNTPOINT {shown} is a dead mount (Transport endpoint is not connected): clear it with `scopefs umount {shown}`"
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Input(format!(
                "MOUNTPOINT {shown} does not exist: create it with `mkdir -p {shown}`"
            )));
        }
        Err(e) => {
            return Err(Error::Input(format!(
                "MOUNTPOINT {shown} cannot be used ({e}): check its permissions"
            )));
        }
    }
    let canonical = std::fs::canonicalize(mountpoint)
        .map_err(|e| Error::Input(format!("MOUNTPOINT {shown}: {e}")))?;
    let existing = mountinfo::find(&canonical)
        .map_err(|e| Error::System(format!("cannot read /proc/self/mountinfo: {e}")))?;
    if let Some(m) = existing {
        return Err(Error::Input(format!(
            "MOUNTPOINT {shown} is already a mount point ({}): unmount it first with `scopefs umount {shown}`",
            m.fs_type
        )));
    }
    let mut entries = std::fs::read_dir(&canonical)
        .map_err(|e| Error::Input(format!("MOUNTPOINT {shown} cannot be listed: {e}")))?;
    if entries.next().is_some() {
        return Err(Error::Input(format!(
            "MOUNTPOINT {shown} is not empty: mount on an empty directory so nothing is shadowed"
        )));
    }
    Ok(canonical)
}

fn open_fuse_device() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
}

/// Whether this process may open `/dev/fuse` itself.
pub fn fuse_device_opens() -> bool {
    open_fuse_device().is_ok()
}

/// The FUSE device must be there and open to this process; a normal user also needs
/// `fusermount3`, which mounts on the user's behalf (and opens the device with the user's own
/// rights, so it cannot help where the device is closed to them).
fn check_fuse_device() -> Result<(), Error> {
    match open_fuse_device() {
        Ok(_) if sys::euid() == 0 || sys::fusermount::find().is_some() => Ok(()),
        Ok(_) => Err(Error::System(
            "a normal user mounts through fusermount3, which is not installed: install the fuse3 package, or run as root".into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::System(
            "no /dev/fuse on this machine: load the module with `modprobe fuse`, or in a container run with `--device /dev/fuse --cap-add SYS_ADMIN`".into(),
        )),
        Err(e) if sys::euid() != 0 => Err(Error::System(format!(
            "cannot open /dev/fuse ({e}): this host lets only root use FUSE; open it to normal users with `chmod 0666 /dev/fuse` as root (what udev does on most distributions), or run as root"
        ))),
        Err(e) => Err(Error::System(format!(
            "cannot open /dev/fuse ({e}): check its permissions (in a container: --device /dev/fuse)"
        ))),
    }
}
