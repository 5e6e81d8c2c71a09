//! `scopefs mount`: check everything that can be checked before mounting, then mount and serve.
//!
//! Without `--foreground` the command starts itself again as the daemon (in its own process
//! group, standard streams detached) and waits for one line on the daemon's standard output:
//! `ready` once the mount answers requests, or `error CODE MESSAGE` if mounting failed. So a
//! failure is reported by the command the user ran, with nothing left mounted.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use fuser::{Config, MountOption, Notifier, Session, SessionACL};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::audit::Audit;
use crate::cli::PolicyArgs;
use crate::error::{CliError, CliResult, ExitCode};
use crate::fuse::{ScopeFs, Serving};
use crate::overlay::{Overlay, Upper, UpperLimits};
use crate::policy::{Policy, WriteMode};
use crate::sys::{self, mountinfo};
use crate::view::{CacheMode, View, Watches, Writes};
use crate::write::Direct;

/// How long `mount` waits for the daemon to answer before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an unmount waits for the requests in hand to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct MountCmd {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub options: MountOptions,
    /// The directory to show a scoped view of.
    pub source: PathBuf,
    /// An empty directory to mount the view on.
    pub mountpoint: PathBuf,
}

/// The MOUNT options of SPEC §1.
#[derive(Debug, Clone, Default, Args)]
pub struct MountOptions {
    /// Stay attached: serve in this process until unmounted or signalled.
    #[arg(long)]
    pub foreground: bool,
    /// Let other users enter the view; the kernel then checks permissions
    /// (default_permissions).
    #[arg(long = "allow-other")]
    pub allow_other: bool,
    /// Request-serving threads (default: twice the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// What the kernel may cache: auto (everything, until inotify reports a change underneath;
    /// 1 s where no watch is possible), always (for a SOURCE nothing else changes), never.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = CacheMode::Auto)]
    pub cache: CacheMode,
    /// Internal: run as the detached daemon and report readiness on standard output.
    #[arg(long = "daemon-child", hide = true)]
    pub daemon_child: bool,
}

/// A mount request whose inputs have all been checked.
pub struct Prepared {
    pub policy: Policy,
    pub source: PathBuf,
    pub mountpoint: PathBuf,
}

impl MountCmd {
    pub fn run(self) -> CliResult {
        let prepared = match prepare(&self.policy, &self.source, &self.mountpoint) {
            Ok(p) => p,
            Err(e) if self.options.daemon_child => return report_error(e),
            Err(e) => return Err(e),
        };
        if self.options.foreground || self.options.daemon_child {
            serve(prepared, &self.policy, &self.options)
        } else {
            detach(&prepared.mountpoint)
        }
    }
}

/// Checks the policy, SOURCE, MOUNTPOINT and the FUSE device; nothing is mounted yet.
pub fn prepare(args: &PolicyArgs, source: &Path, mountpoint: &Path) -> CliResult<Prepared> {
    let policy =
        Policy::from_overrides(&args.overrides()).map_err(|e| CliError::usage(e.first_line()))?;
    let source = check_source(source)?;
    let mountpoint = check_mountpoint(mountpoint)?;
    if mountpoint.starts_with(&source) {
        return Err(CliError::usage(format!(
            "MOUNTPOINT {} lies inside SOURCE {}: choose a mountpoint outside the directory you scope",
            mountpoint.display(),
            source.display()
        )));
    }
    if let Some(overlay) = policy.overlay_dir() {
        check_overlay(overlay, &source, &mountpoint)?;
    } else if policy.write_mode() == WriteMode::Overlay {
        return Err(CliError::usage(
            "writes.mode = \"overlay\" needs an overlay directory: set [writes] overlay in the policy or pass --overlay DIR",
        ));
    }
    check_fuse_device()?;
    Ok(Prepared {
        policy,
        source,
        mountpoint,
    })
}

/// The overlay must lie outside SOURCE and MOUNTPOINT (the agent would see it, or it would
/// shadow itself); its own format is checked when the daemon opens it.
fn check_overlay(overlay: &Path, source: &Path, mountpoint: &Path) -> CliResult {
    let parent = overlay
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let canonical_parent = std::fs::canonicalize(parent).map_err(|e| {
        CliError::usage(format!(
            "OVERLAY {}: its parent directory cannot be used ({e}): create it first",
            overlay.display()
        ))
    })?;
    let canonical = match overlay.file_name() {
        Some(name) => canonical_parent.join(name),
        None => canonical_parent,
    };
    if canonical.starts_with(source) || canonical.starts_with(mountpoint) {
        return Err(CliError::usage(format!(
            "OVERLAY {} lies inside SOURCE or MOUNTPOINT: put it outside both, e.g. next to SOURCE",
            overlay.display()
        )));
    }
    Ok(())
}

fn check_source(source: &Path) -> CliResult<PathBuf> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CliError::usage(format!(
                "SOURCE {} is not a directory: give the directory to scope",
                source.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::usage(format!(
                "SOURCE {} does not exist: check the path",
                source.display()
            )));
        }
        Err(e) => {
            return Err(CliError::usage(format!(
                "SOURCE {} cannot be read ({e}): check its permissions",
                source.display()
            )));
        }
    }
    std::fs::canonicalize(source)
        .map_err(|e| CliError::usage(format!("SOURCE {}: {e}", source.display())))
}

fn check_mountpoint(mountpoint: &Path) -> CliResult<PathBuf> {
    let shown = mountpoint.display();
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CliError::usage(format!(
                "MOUNTPOINT {shown} is not a directory: mount on an empty directory"
            )));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(CliError::usage(format!(
                "MOUNTPOINT {shown} is a dead mount (Transport endpoint is not connected): clear it with `scopefs umount {shown}`"
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::usage(format!(
                "MOUNTPOINT {shown} does not exist: create it with `mkdir -p {shown}`"
            )));
        }
        Err(e) => {
            return Err(CliError::usage(format!(
                "MOUNTPOINT {shown} cannot be used ({e}): check its permissions"
            )));
        }
    }
    let canonical = std::fs::canonicalize(mountpoint)
        .map_err(|e| CliError::usage(format!("MOUNTPOINT {shown}: {e}")))?;
    let existing = mountinfo::find(&canonical)
        .map_err(|e| CliError::runtime(format!("cannot read /proc/self/mountinfo: {e}")))?;
    if let Some(m) = existing {
        return Err(CliError::usage(format!(
            "MOUNTPOINT {shown} is already a mount point ({}): unmount it first with `scopefs umount {shown}`",
            m.fs_type
        )));
    }
    let mut entries = std::fs::read_dir(&canonical)
        .map_err(|e| CliError::usage(format!("MOUNTPOINT {shown} cannot be listed: {e}")))?;
    if entries.next().is_some() {
        return Err(CliError::usage(format!(
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
fn check_fuse_device() -> CliResult {
    match open_fuse_device() {
        Ok(_) if sys::euid() == 0 || sys::fusermount::find().is_some() => Ok(()),
        Ok(_) => Err(CliError::runtime(
            "a normal user mounts through fusermount3, which is not installed: install the fuse3 package, or run as root",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::runtime(
            "no /dev/fuse on this machine: load the module with `modprobe fuse`, or in a container run with `--device /dev/fuse --cap-add SYS_ADMIN`",
        )),
        Err(e) if sys::euid() != 0 => Err(CliError::runtime(format!(
            "cannot open /dev/fuse ({e}): this host lets only root use FUSE; open it to normal users with `chmod 0666 /dev/fuse` as root (what udev does on most distributions), or run as root"
        ))),
        Err(e) => Err(CliError::runtime(format!(
            "cannot open /dev/fuse ({e}): check its permissions (in a container: --device /dev/fuse)"
        ))),
    }
}

/// Starts the daemon and waits until it reports the mount ready or failed.
fn detach(mountpoint: &Path) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::runtime(format!("cannot find the scopefs binary: {e}")))?;
    // The arguments go on the daemon's standard input, not on its command line, which every
    // user can read for as long as the daemon runs.
    let mut child = Command::new(exe)
        .arg(crate::cli::ARGS_ON_STDIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::runtime(format!("cannot start the daemon: {e}")))?;
    let mut sent = Vec::new();
    for arg in crate::cli::arguments_given()
        .iter()
        .skip(1)
        .map(|a| a.as_os_str())
        .chain([std::ffi::OsStr::new("--daemon-child")])
    {
        sent.extend_from_slice(arg.as_bytes());
        sent.push(0);
    }
    if let Some(mut stdin) = child.stdin.take() {
        // A daemon that died at once is reported below, by what it (did not) say.
        if let Err(e) = stdin.write_all(&sent) {
            tracing::debug!(error = %e, "cannot send the daemon its arguments");
        }
    }
    let Some(stdout) = child.stdout.take() else {
        return Err(CliError::runtime("cannot talk to the daemon"));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = sys::unmount(mountpoint, true);
            return Err(CliError::runtime(format!(
                "the mount did not answer within {}s; nothing is left mounted",
                READY_TIMEOUT.as_secs()
            )));
        }
    };
    let line = line.trim_end();
    if line == "ready" {
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("error ") {
        let (code, message) = rest.split_once(' ').unwrap_or(("1", rest));
        let _ = child.wait();
        return Err(CliError {
            code: if code == "2" {
                ExitCode::Usage
            } else {
                ExitCode::Runtime
            },
            message: message.to_string(),
        });
    }
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    Err(CliError::runtime(format!(
        "the daemon exited before the mount answered ({status}); run with --foreground to see why"
    )))
}

/// In the daemon child: reports a failure on standard output for the waiting parent.
fn report_error(err: CliError) -> CliResult {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "error {} {}", err.code as i32, err.message);
    let _ = out.flush();
    Err(err)
}

/// A view just mounted, its session not yet serving.
pub struct Started {
    pub session: Session<ScopeFs>,
    pub view: Arc<View>,
    /// The audit log, to close (and flush) once the session has ended.
    pub audit: Option<Arc<Audit>>,
    /// The events of the view's watches, for [`crate::fuse::follow_changes`].
    pub changes: Option<inotify::Inotify>,
    /// The requests being served, for [`unmount_view`].
    pub serving: Serving,
}

impl Started {
    /// Follows changes under SOURCE on a thread of its own (which inherits the calling
    /// thread's confinement), for as long as the view lives.
    pub fn follow_changes(changes: Option<inotify::Inotify>, view: &Arc<View>, notifier: Notifier) {
        let Some(changes) = changes else {
            return;
        };
        let view = Arc::downgrade(view);
        let spawned = std::thread::Builder::new()
            .name("scopefs-changes".into())
            .spawn(move || crate::fuse::follow_changes(changes, view, notifier));
        if let Err(e) = spawned {
            // Without the thread the watches' events go unread: never rely on them.
            tracing::error!(error = %e, "cannot follow changes under SOURCE");
        }
    }
}

/// Compiles the policy, opens SOURCE (and the overlay), and mounts the view at MOUNTPOINT.
/// On failure nothing is left mounted.
pub fn start(prepared: &Prepared, options: &MountOptions) -> CliResult<Started> {
    // Each file the agent holds open through the view costs a descriptor here.
    match sys::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let matcher = Arc::new(
        prepared
            .policy
            .compile()
            .map_err(|e| CliError::usage(e.first_line()))?,
    );
    let writes = open_writes(prepared)?;
    let mut view = View::new(&prepared.source, matcher, writes).map_err(|e| {
        CliError::runtime(format!(
            "cannot open SOURCE {}: {e}",
            prepared.source.display()
        ))
    })?;
    let audit = match &prepared.policy.audit().log {
        Some(log) => {
            let audit = Arc::new(Audit::open(log, prepared.policy.audit().events).map_err(|e| {
                CliError::usage(format!(
                    "cannot open the audit log {} ({e}): check that its directory exists and is writable",
                    log.display()
                ))
            })?);
            view = view.with_audit(audit.clone());
            Some(audit)
        }
        None => None,
    };
    let mut changes = None;
    if options.cache == CacheMode::Auto && Watches::local(view.scope().root()) {
        match Watches::new() {
            Ok((watches, events)) => {
                view = view.with_watches(watches);
                changes = Some(events);
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SOURCE; caching briefly"),
        }
    }
    let view = Arc::new(view.with_cache(options.cache));
    let fs = ScopeFs::new(view.clone());
    let serving = fs.serving();
    let session = if sys::euid() == 0 {
        mount_direct(fs, prepared, options)?
    } else {
        mount_with_fusermount(fs, prepared, options)?
    };
    if let Err(e) = sys::set_non_dumpable() {
        tracing::warn!(error = %e, "cannot make the daemon non-dumpable");
    }
    Ok(Started {
        session,
        view,
        audit,
        changes,
        serving,
    })
}

/// Unmounts the view at `mountpoint` once the requests in hand are answered, detaching it
/// lazily if it is busy: with umount2 as root, with `fusermount3 -u` as a normal user.
pub fn unmount_view(mountpoint: &Path, serving: &Serving) {
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

/// Mounts and serves until unmounted or signalled.
fn serve(prepared: Prepared, args: &PolicyArgs, options: &MountOptions) -> CliResult {
    let report = |err: CliError| {
        if options.daemon_child {
            report_error(err)
        } else {
            Err(err)
        }
    };
    let Started {
        session,
        view,
        audit,
        changes,
        serving,
    } = match start(&prepared, options) {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    let notifier = session.notifier();
    let mountpoint = prepared.mountpoint.clone();
    let args = args.clone();
    let write_mode = prepared.policy.write_mode();
    let reloading = view.clone();
    match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                let view = reloading;
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        reload(&view, &notifier, &args, write_mode);
                        continue;
                    }
                    tracing::info!(signal, "unmounting");
                    unmount_view(&mountpoint, &serving);
                    break;
                }
            });
        }
        Err(e) => return report(CliError::runtime(format!("cannot handle signals: {e}"))),
    }
    if options.daemon_child {
        let mountpoint = prepared.mountpoint.clone();
        std::thread::spawn(move || announce_ready(&mountpoint));
    }
    crate::confine::restrict_thread_or_warn(&view.confinement());
    Started::follow_changes(changes, &view, session.notifier());
    let served = session
        .run()
        .map_err(|e| CliError::runtime(format!("the file system stopped: {e}")));
    if let Some(audit) = audit {
        audit.close();
    }
    served
}

/// SIGHUP: reads the policy again and puts it in force, then makes the kernel forget every
/// cached entry so that what became hidden disappears at once. An invalid policy, or one that
/// changes the write mode, keeps the old policy and says why on stderr.
pub fn reload(view: &View, notifier: &Notifier, args: &PolicyArgs, write_mode: WriteMode) {
    let compiled = Policy::from_overrides(&args.overrides()).and_then(|policy| {
        let matcher = policy.compile()?;
        Ok((policy, matcher))
    });
    let (policy, matcher) = match compiled {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "scopefs: SIGHUP: the policy was not reloaded, the old one stays in force: {}",
                e.first_line()
            );
            tracing::error!(error = %e.first_line(), "policy reload refused");
            return;
        }
    };
    if policy.write_mode() != write_mode {
        eprintln!(
            "scopefs: SIGHUP: the policy was not reloaded: writes.mode cannot change while mounted; unmount and mount again"
        );
        tracing::error!("policy reload refused: the write mode changed");
        return;
    }
    view.reload(Arc::new(matcher));
    let entries = crate::fuse::forget_everything(view, notifier);
    tracing::info!(entries, "policy reloaded");
}

/// The writable layer the policy asks for; in overlay mode this opens and locks OVERLAY.
fn open_writes(prepared: &Prepared) -> CliResult<Writes> {
    Ok(match prepared.policy.write_mode() {
        WriteMode::Deny => Writes::Deny,
        WriteMode::Direct => Writes::Layer(Box::new(Direct)),
        WriteMode::Overlay => {
            let Some(dir) = prepared.policy.overlay_dir() else {
                return Err(CliError::usage("no overlay directory: pass --overlay DIR"));
            };
            let overlay = Overlay::open_for_mount(dir, &prepared.source)
                .map_err(|e| CliError::usage(e.to_string()))?;
            let limits = prepared.policy.limits();
            let limits = UpperLimits {
                bytes: limits.overlay_bytes,
                files: limits.overlay_files,
            };
            Writes::Layer(Box::new(Upper::new(overlay, limits).map_err(|e| {
                CliError::runtime(format!("cannot read the overlay {}: {e}", dir.display()))
            })?))
        }
    })
}

fn kernel_mount_options(prepared: &Prepared, options: &MountOptions) -> sys::FuseMountOptions {
    sys::FuseMountOptions {
        source: format!("{}{}", mountinfo::SOURCE_PREFIX, std::process::id()),
        fs_type: "fuse.scopefs".into(),
        read_only: read_only(&prepared.policy),
        allow_other: options.allow_other,
        default_permissions: options.allow_other,
    }
}

/// As root: mounts with mount(2) directly, typed `fuse.scopefs`, and starts a session on the
/// connection. A failed handshake leaves nothing mounted.
fn mount_direct(
    fs: ScopeFs,
    prepared: &Prepared,
    options: &MountOptions,
) -> CliResult<Session<ScopeFs>> {
    let shown = prepared.mountpoint.display();
    let fd = sys::mount_fuse(
        &prepared.mountpoint,
        &kernel_mount_options(prepared, options),
    )
    .map_err(|e| CliError::runtime(format!("cannot mount at {shown}: {e}")))?;
    start_session(fs, fd, prepared, options, |path| sys::unmount(path, true))
}

/// As a normal user: mounts through `fusermount3` (which opens `/dev/fuse` as root on the
/// user's behalf) and starts a session on the connection it hands back.
fn mount_with_fusermount(
    fs: ScopeFs,
    prepared: &Prepared,
    options: &MountOptions,
) -> CliResult<Session<ScopeFs>> {
    let shown = prepared.mountpoint.display();
    let fusermount = sys::fusermount::find().ok_or_else(|| {
        CliError::runtime(format!(
            "cannot mount at {shown} as a normal user without fusermount3: install the fuse3 package, or run as root"
        ))
    })?;
    let fd = sys::fusermount::mount(
        &fusermount,
        &prepared.mountpoint,
        &kernel_mount_options(prepared, options),
    )
    .map_err(|e| CliError::runtime(format!("cannot mount at {shown}: {e}")))?;
    start_session(fs, fd, prepared, options, |path| {
        sys::fusermount::unmount(path, true)
    })
}

/// Starts a session on a fresh FUSE connection; if the kernel's handshake fails, `detach`
/// removes the mount again.
fn start_session(
    fs: ScopeFs,
    fd: std::os::fd::OwnedFd,
    prepared: &Prepared,
    options: &MountOptions,
    detach: impl Fn(&Path) -> std::io::Result<()>,
) -> CliResult<Session<ScopeFs>> {
    let config = fuse_config(&prepared.policy, options);
    Session::from_fd(fs, fd, config.acl, config).map_err(|e| {
        if let Err(e) = detach(&prepared.mountpoint) {
            tracing::error!(error = %e, "cannot detach the failed mount");
        }
        CliError::runtime(format!(
            "the kernel did not start the file system at {}: {e}",
            prepared.mountpoint.display()
        ))
    })
}

/// Whether the kernel mount is flagged read-only: in deny mode, unless an audit log must see
/// the refused writes (the daemon then refuses each with `EROFS` itself).
fn read_only(policy: &Policy) -> bool {
    policy.write_mode() == WriteMode::Deny && policy.audit().log.is_none()
}

fn fuse_config(policy: &Policy, options: &MountOptions) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!(
            "{}{}",
            mountinfo::SOURCE_PREFIX,
            std::process::id()
        )),
        MountOption::Subtype("scopefs".into()),
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if read_only(policy) {
        config.mount_options.push(MountOption::RO);
    }
    if options.allow_other {
        config.mount_options.push(MountOption::DefaultPermissions);
        config.acl = SessionACL::All;
    }
    // Two per core: requests mostly wait on the disk, and tools that stat in parallel (git's
    // index check) keep more than one per core busy; single-stream reads, walks and untar
    // measured the same either way (README § Performance).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    config.n_threads = Some(options.threads.map_or(2 * cores, usize::from));
    config
}

/// Waits until the mount answers, then tells the waiting `mount` command and lets go of it.
fn announce_ready(mountpoint: &Path) {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if std::fs::metadata(mountpoint).is_ok() {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            if let Err(e) = sys::stdout_to_null() {
                tracing::warn!(error = %e, "cannot detach standard output");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
