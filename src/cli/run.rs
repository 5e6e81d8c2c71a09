//! `scopefs run`: mount a view, run one command in it, and clean up whatever happens.
//!
//! The view is served from this process while the command runs as a child, with its working
//! directory at the view's counterpart of the caller's and `SCOPEFS_VIEW` set. SIGINT and
//! SIGTERM are passed on to the command; when it ends (or is killed) the view is unmounted and
//! the temporary mountpoint and overlay are removed. The exit status is the command's, or
//! 128+N when signal N ended it.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::mount::{self, MountOptions};
use crate::cli::PolicyArgs;
use crate::error::{CliError, CliResult};
use crate::policy::{Policy, WriteMode};
use crate::sys;

#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Let other users enter the view; the kernel then checks permissions.
    #[arg(long = "allow-other")]
    pub allow_other: bool,
    /// Request-serving threads (default: twice the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// What the kernel may cache: auto, always, never (as for `mount`).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = crate::view::CacheMode::Auto)]
    pub cache: crate::view::CacheMode,
    /// Mount the view here (an empty directory) instead of a fresh temporary one.
    #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
    pub mountpoint: Option<PathBuf>,
    /// Run the command in a private mount namespace where the view covers SOURCE's own path.
    #[arg(long = "in-place")]
    pub in_place: bool,
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
        let policy =
            Policy::from_args(&self.policy).map_err(|e| CliError::usage(e.first_line()))?;
        let scratch = tempfile::Builder::new()
            .prefix("scopefs-run.")
            .tempdir()
            .map_err(|e| CliError::runtime(format!("cannot make a temporary directory: {e}")))?;
        let temp_overlay =
            policy.write_mode() == WriteMode::Overlay && policy.overlay_dir().is_none();
        if temp_overlay {
            self.policy.overlay = Some(scratch.path().join("overlay"));
        } else if self.keep_overlay {
            return Err(CliError::usage(
                "--keep-overlay keeps a temporary overlay: use it with --writes overlay and no --overlay",
            ));
        }
        let mountpoint = match &self.mountpoint {
            Some(dir) => dir.clone(),
            None => {
                let dir = scratch.path().join("view");
                std::fs::create_dir(&dir).map_err(|e| {
                    CliError::runtime(format!("cannot make a temporary mountpoint: {e}"))
                })?;
                dir
            }
        };
        let prepared = mount::prepare(&self.policy, &self.source, &mountpoint)?;
        let options = MountOptions {
            allow_other: self.allow_other,
            threads: self.threads,
            cache: self.cache,
            ..MountOptions::default()
        };
        let mut started = mount::start(&prepared, &options)?;
        let mut unmounter = started.session.unmount_callable();
        let notifier = started.session.notifier();
        let view = started.view;
        let started_audit = started.audit;
        let session = started.session;
        let serving = view.clone();
        let changes = started.changes;
        let in_hand = started.serving;
        let changes_notifier = session.notifier();
        // Only the serving threads are confined: this thread must still start the command
        // (which inherits nothing of it) and unmount.
        let background = std::thread::Builder::new()
            .name("scopefs-session".into())
            .spawn(move || {
                crate::confine::restrict_thread_or_warn(&serving.confinement());
                mount::Started::follow_changes(changes, &serving, changes_notifier);
                drop(serving);
                session.run()
            })
            .map_err(|e| CliError::runtime(format!("cannot start serving the view: {e}")))?;

        let status = self.spawn_and_wait(&prepared.source, &prepared.mountpoint, &view, &notifier);

        mount::unmount_view(&prepared.mountpoint, &mut unmounter, &in_hand);
        match background.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the file system thread ended with an error"),
            Err(_) => tracing::error!("the file system thread panicked"),
        }
        if let Some(audit) = &started_audit {
            audit.close();
        }
        drop(view);
        if let Some(overlay) = &self.policy.overlay {
            if prepared.policy.write_mode() == WriteMode::Overlay {
                print_summary(overlay);
            }
        }
        if temp_overlay && self.keep_overlay {
            let kept = scratch.keep();
            eprintln!(
                "scopefs: the overlay is kept at {}",
                kept.join("overlay").display()
            );
            if let Err(e) = std::fs::remove_dir(kept.join("view")) {
                tracing::debug!(error = %e, "no temporary mountpoint to remove");
            }
        }
        status
    }

    /// Starts the command in the view, passes on SIGINT/SIGTERM (and reloads the policy on
    /// SIGHUP) while it runs, and returns its exit status.
    fn spawn_and_wait(
        &self,
        source: &Path,
        view_dir: &Path,
        view: &std::sync::Arc<crate::view::View>,
        notifier: &fuser::Notifier,
    ) -> CliResult<i32> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(CliError::usage("no COMMAND given after --"));
        };
        let here = std::env::current_dir().ok();
        let rel = here
            .as_ref()
            .and_then(|h| h.strip_prefix(source).ok())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut cmd = Command::new(program);
        cmd.args(args);
        if self.in_place {
            cmd.env("SCOPEFS_VIEW", source);
            sys::spawn::in_place(&mut cmd, view_dir, source, &source.join(&rel))
                .map_err(|e| CliError::usage(format!("cannot prepare --in-place: {e}")))?;
        } else {
            cmd.env("SCOPEFS_VIEW", view_dir);
            cmd.current_dir(view_dir.join(&rel));
        }
        let mut child = cmd.spawn().map_err(|e| {
            CliError::runtime(format!(
                "cannot start {}: {e}{}",
                program.to_string_lossy(),
                if rel.as_os_str().is_empty() {
                    String::new()
                } else {
                    format!(" (in {} of the view; is it hidden?)", rel.display())
                }
            ))
        })?;
        let pid = child.id();
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| CliError::runtime(format!("cannot handle signals: {e}")))?;
        let handle = signals.handle();
        let view = view.clone();
        let notifier = notifier.clone();
        let args = self.policy.clone();
        let write_mode = view.write_mode();
        let forwarder = std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    mount::reload(&view, &notifier, &args, write_mode);
                } else if let Err(e) = sys::spawn::kill(pid, signal) {
                    tracing::debug!(error = %e, signal, "the command is already gone");
                }
            }
        });
        let status = child
            .wait()
            .map_err(|e| CliError::runtime(format!("cannot wait for the command: {e}")))?;
        handle.close();
        let _ = forwarder.join();
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        })
    }
}

/// Prints the overlay's changes to stderr, one `diff` line each.
fn print_summary(dir: &Path) {
    let listed = crate::overlay::Overlay::open_for_review(dir, false)
        .map_err(|e| e.to_string())
        .and_then(|overlay| {
            let lower = super::diff::open_source(&overlay).map_err(|e| e.to_string())?;
            crate::overlay::changes::list(&overlay, std::os::fd::AsFd::as_fd(&lower))
                .map_err(|e| e.to_string())
        });
    match listed {
        Ok(changes) if changes.is_empty() => eprintln!("scopefs: no changes"),
        Ok(changes) => {
            eprintln!("scopefs: {} change(s) in the overlay:", changes.len());
            for change in &changes {
                eprintln!("{}", super::diff::line(change));
            }
        }
        Err(e) => eprintln!("scopefs: cannot list the overlay's changes: {e}"),
    }
}
