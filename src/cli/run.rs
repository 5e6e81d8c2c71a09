//! `scopefs run`: mount a view, run one command in it, and clean up whatever happens.
//!
//! The view is served from this process while the command runs contained
//! ([`crate::sys::contain`]: namespaces of its own, the view locked over SOURCE, the overlay out
//! of reach), with its working directory at the view's counterpart of the caller's and
//! `SCOPEFS_VIEW` set. SIGINT and SIGTERM are passed on to the command; when it ends (or is
//! killed) everything it started ends too, the view is unmounted and the temporary mountpoint
//! and overlay are removed. The exit status is the command's, or 128+N when signal N ended it.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::PolicyArgs;
use crate::cli::error::{CliError, CliResult, ExitCode};
use crate::cli::summary::{self, Fate};
use crate::daemon::{self, Control, Daemon, OnStop};
use crate::policy::{Policy, WriteMode};
use crate::sys;
use crate::sys::contain::{Identity, Report, Spec};

#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Let other users enter the view; the kernel then checks permissions.
    #[arg(long = "allow-other")]
    pub allow_other: bool,
    /// Request-serving threads (default: 16, or twice the number of cores where that is more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// What the kernel may cache: auto, always, never (as for `mount`).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = crate::view::CacheMode::Auto)]
    pub cache: crate::view::CacheMode,
    /// Mount the view here (an empty directory) instead of a fresh temporary one.
    #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
    pub mountpoint: Option<PathBuf>,
    /// Run the command at SOURCE's own path, which the view covers in its namespace.
    #[arg(long = "in-place")]
    pub in_place: bool,
    /// Run the command as this user (name or uid; root only), with its groups, HOME, USER and
    /// LOGNAME. Implies --allow-other.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Keep the temporary overlay at exit (its path is printed).
    #[arg(long = "keep-overlay")]
    pub keep_overlay: bool,
    /// The directory to show a scoped view of.
    pub source: PathBuf,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

impl RunCmd {
    pub fn run(self) -> CliResult {
        let code = self.run_command()?;
        std::process::exit(code);
    }

    fn run_command(mut self) -> CliResult<i32> {
        let policy = Policy::from_overrides(&self.policy.overrides())
            .map_err(|e| CliError::usage(e.first_line()))?;
        let user = self.identity()?;
        let temp_overlay =
            policy.write_mode() == WriteMode::Overlay && policy.overlay_dir().is_none();
        if self.keep_overlay && !temp_overlay {
            return Err(CliError::usage(
                "--keep-overlay keeps a temporary overlay: use it with --writes overlay and no --overlay",
            ));
        }
        // The command is contained in a user namespace: fail now, with nothing mounted, where
        // the host forbids them.
        sys::ns::probe_userns().map_err(|e| CliError::runtime(sys::ns::refusal(&e)))?;
        // The user's own ids, before a user namespace maps them to root.
        let state_uid = sys::euid();
        let private = sys::euid() != 0 && daemon::fuse_device_opens();
        if private {
            // Made now, while the user is still themselves.
            if let Err(e) = daemon::state::dir(state_uid) {
                tracing::warn!(error = %e, "`scopefs status` will not list this view");
            }
            // Inside the namespace, owners it does not map cannot be told apart: the overlay's
            // place is judged now, with the real ids.
            if let Some(dir) = policy.overlay_dir() {
                crate::overlay::check_location(dir)?;
            }
            // A normal user mounts the view inside a user namespace of run's own (FUSE allows
            // it there), seen by the command only; no setuid helper is involved. Where the
            // device is closed to users, `prepare` below says so.
            sys::ns::become_root_with_own_mounts()
                .map_err(|e| CliError::runtime(sys::ns::refusal(&e)))?;
        }
        // 0700: the temporary overlay lives in it, and only the daemon's user may reach it.
        let scratch = tempfile::Builder::new()
            .prefix("scopefs-run.")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| CliError::runtime(format!("cannot make a temporary directory: {e}")))?;
        // The view is mounted apart from it, where a command running as another user can
        // reach it by its path ($SCOPEFS_VIEW). Removed (empty again) when this returns.
        let temp_view = match &self.mountpoint {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("scopefs-view.")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .tempdir()
                    .map_err(|e| {
                        CliError::runtime(format!("cannot make a temporary mountpoint: {e}"))
                    })?,
            ),
        };
        if temp_overlay {
            self.policy.overlay = Some(scratch.path().join("overlay"));
        }
        let mountpoint = match (&self.mountpoint, &temp_view) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir.path().to_path_buf(),
            (None, None) => return Err(CliError::runtime("no mountpoint")),
        };
        let prepared = daemon::prepare(&self.policy.overrides(), &self.source, &mountpoint)?;
        if let Ok(matcher) = prepared.policy.compile() {
            super::check::warn_hidden_history(&prepared.source, &matcher);
        }
        let options = daemon::Options {
            // Another user enters the view only with allow_other (and the kernel's checks).
            allow_other: self.allow_other || user.is_some(),
            threads: self.threads,
            cache: self.cache,
        };
        let daemon = Daemon::start(&prepared, &options)?;
        let control = daemon.control();
        super::mount::record_state(&control, state_uid, private);
        // Only the serving threads are confined: this thread must still start the command
        // (which inherits nothing of it) and unmount.
        let background = daemon.serve_in_background()?;

        let spec = self.spec(&prepared, scratch.path(), user);
        let status = spec.and_then(|spec| self.spawn_and_wait(spec, &control));

        control.shutdown();
        match background.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the file system thread ended with an error"),
            Err(_) => tracing::error!("the file system thread panicked"),
        }
        drop(control);
        if let Some(overlay) = self.policy.overlay.clone() {
            if prepared.policy.write_mode() == WriteMode::Overlay {
                let kept;
                let fate = if !temp_overlay {
                    Fate::Kept(&overlay)
                } else if self.keep_overlay {
                    kept = scratch.keep().join("overlay");
                    Fate::Kept(&kept)
                } else {
                    Fate::Discarded
                };
                print_summary(&overlay, &fate);
            }
        }
        drop(temp_view);
        status
    }

    /// The user of `--user`, looked up (root only).
    fn identity(&self) -> CliResult<Option<Identity>> {
        let Some(name) = &self.user else {
            return Ok(None);
        };
        if sys::euid() != 0 {
            return Err(CliError::usage(format!(
                "--user {name} needs root: as a normal user the command runs as you; drop --user"
            )));
        }
        match Identity::lookup(name) {
            Ok(Some(identity)) => Ok(Some(identity)),
            Ok(None) => Err(CliError::usage(format!(
                "--user {name}: no such user; give a user name or uid from /etc/passwd"
            ))),
            Err(e) => Err(CliError::runtime(format!(
                "--user {name}: cannot look it up: {e}"
            ))),
        }
    }

    /// What the command's container arranges: the view over SOURCE (and at the mountpoint),
    /// the scratch directory, overlay and audit log out of reach, the working directory.
    fn spec(
        &self,
        prepared: &daemon::Prepared,
        scratch: &Path,
        user: Option<Identity>,
    ) -> CliResult<Spec> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(CliError::usage("no COMMAND given after --"));
        };
        let canonical = |path: &Path| {
            std::fs::canonicalize(path)
                .map_err(|e| CliError::runtime(format!("{}: {e}", path.display())))
        };
        let source = &prepared.source;
        let here = std::env::current_dir().ok();
        let rel = here
            .as_ref()
            .and_then(|h| h.strip_prefix(source).ok())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let root = if self.in_place {
            source
        } else {
            &prepared.mountpoint
        };
        // (`join` of an empty path would add a trailing slash.)
        let cwd = if rel.as_os_str().is_empty() {
            root.clone()
        } else {
            root.join(&rel)
        };
        let mut hide_dirs = Vec::new();
        if let Some(overlay) = prepared.policy.overlay_dir() {
            hide_dirs.push(canonical(overlay)?);
        }
        let mut hide_files = Vec::new();
        if let Some(log) = &prepared.policy.audit().log {
            hide_files.push(canonical(log)?);
        }
        Ok(Spec {
            view: prepared.mountpoint.clone(),
            source: source.clone(),
            scratch: canonical(scratch)?,
            hide_dirs,
            hide_files,
            cwd,
            user,
            program: program.clone(),
            args: args.to_vec(),
        })
    }

    /// Starts the command contained, passes on SIGINT/SIGTERM (and reloads the policy on
    /// SIGHUP) while it runs, and returns its exit status.
    fn spawn_and_wait(&self, spec: Spec, control: &std::sync::Arc<Control>) -> CliResult<i32> {
        let (report, report_fd) = sys::spawn::report_pipe()
            .map_err(|e| CliError::runtime(format!("cannot make a pipe: {e}")))?;
        let args = super::contain::arguments(&spec, report_fd.as_raw_fd());
        let shown_view = if self.in_place {
            &spec.source
        } else {
            &spec.view
        };
        // The command inherits SCOPEFS_VIEW through the contained side.
        let env = [(std::ffi::OsStr::new("SCOPEFS_VIEW"), shown_view.as_os_str())];
        let mut child = sys::spawn::contained(&args, &env, report_fd)
            .map_err(|e| CliError::runtime(format!("cannot start the command's container: {e}")))?;
        let signals = daemon::handle_signals(control.clone(), OnStop::PassOn(child.id()))?;
        let started = match Report::read(report) {
            Some(Report::Started) => Ok(()),
            Some(Report::Failed(message)) => Err(CliError::runtime(message)),
            Some(Report::NotExecuted(error)) => Err(CliError::runtime(format!(
                "cannot start {}: {error}{}",
                spec.program.to_string_lossy(),
                self.hint(&spec)
            ))),
            // As a shell or `env` says it: 127 for no such command, 126 for one that cannot
            // be executed.
            Some(Report::CannotExecute { errno, message }) => Err(CliError {
                code: if errno == libc::ENOENT {
                    ExitCode::NotFound
                } else {
                    ExitCode::CannotExecute
                },
                message: format!(
                    "cannot execute {}: {message}{}",
                    spec.program.to_string_lossy(),
                    self.hint(&spec)
                ),
            }),
            None => Err(CliError::runtime(
                "the command's container ended before the command started",
            )),
        };
        let status = child
            .wait()
            .map_err(|e| CliError::runtime(format!("cannot wait for the command: {e}")));
        signals.stop();
        started?;
        let status = status?;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        })
    }

    /// Why a command may not start in the view's counterpart of the caller's directory.
    fn hint(&self, spec: &Spec) -> String {
        let root = if self.in_place {
            &spec.source
        } else {
            &spec.view
        };
        match spec.cwd.strip_prefix(root) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                format!(" (in {} of the view; is it hidden?)", rel.display())
            }
            _ => String::new(),
        }
    }
}

/// Prints the overlay's changes to stderr (see [`super::summary`]) and what becomes of it.
fn print_summary(dir: &Path, fate: &Fate) {
    let listed = crate::overlay::Overlay::open_for_review(dir, false)
        .map_err(|e| e.to_string())
        .and_then(|overlay| {
            let lower = super::diff::open_source(&overlay).map_err(|e| e.to_string())?;
            crate::overlay::changes::list(&overlay, std::os::fd::AsFd::as_fd(&lower))
                .map_err(|e| e.to_string())
        });
    for line in summary::lines(listed.as_deref().map_err(Clone::clone), fate) {
        eprintln!("{line}");
    }
}
