//! The mount lifecycle as a library, used by `mount` and `run` alike.
//!
//! - [`prepare`]: everything that can be checked before mounting (policy, SOURCE, MOUNTPOINT,
//!   the overlay's place, the FUSE device); nothing is mounted or changed.
//! - [`Daemon::start`]: opens SOURCE (and locks the overlay), mounts the view and makes the
//!   process non-dumpable; nothing is served yet, and on failure nothing is left mounted.
//! - [`Daemon::serve`]: confines the serving threads to SOURCE and the overlay (Landlock),
//!   follows changes under SOURCE, and serves until the view is unmounted.
//! - [`Control`]: what a running view is steered by: [`Control::reload`] (SIGHUP) and
//!   [`Control::shutdown`] (the drain, then the unmount).
//! - [`handle_signals`]: the one signal path: SIGHUP reloads, SIGINT and SIGTERM unmount the
//!   view (`mount`) or are passed on to the command (`run`).
//!
//! Failures are typed ([`Error`]); which exit code each becomes is the command line's business.

mod prepare;
mod signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::{Notifier, Session};

use crate::audit::Audit;
use crate::fuse::{self, MountConfig, ScopeFs, Serving};
use crate::overlay::{Overlay, OverlayError, Upper, UpperLimits};
use crate::policy::{Overrides, Policy, PolicyErrors, WriteMode};
use crate::sys;
use crate::view::{CacheMode, View, Watches, Writes};
use crate::write::Direct;

pub use prepare::{fuse_device_opens, inspect, prepare};
pub use signals::{OnStop, Signals, handle_signals};

/// Why a view could not be mounted or served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy (its file or its options) is invalid.
    #[error("{}", .0.first_line())]
    Policy(PolicyErrors),
    /// Something given (SOURCE, MOUNTPOINT, the overlay's place, the audit log) cannot be used
    /// as it is: the message says what and how to fix it. Nothing was mounted or changed.
    #[error("{0}")]
    Input(String),
    /// The overlay directory cannot be used.
    #[error("{0}")]
    Overlay(#[from] OverlayError),
    /// The machine or the kernel failed: no FUSE, a mount refused, a system call.
    #[error("{0}")]
    System(String),
}

/// How the view is mounted and served (SPEC §1's MOUNT options).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Other users may enter; the kernel then checks permissions.
    pub allow_other: bool,
    /// Request-serving threads (default: twice the number of cores).
    pub threads: Option<u16>,
    /// What the kernel may cache.
    pub cache: CacheMode,
}

/// A mount request whose inputs have all been checked.
#[derive(Debug)]
pub struct Prepared {
    pub policy: Policy,
    /// Where the policy came from, to read it again on SIGHUP.
    pub overrides: Overrides,
    pub source: PathBuf,
    pub mountpoint: PathBuf,
}

/// A view just mounted, not yet served.
pub struct Daemon {
    session: Session<ScopeFs>,
    /// The events of the view's watches, followed once serving starts.
    changes: Option<inotify::Inotify>,
    control: Arc<Control>,
}

/// What a mounted view is steered by, from any thread: reload and shutdown.
pub struct Control {
    view: Arc<View>,
    notifier: Notifier,
    serving: Serving,
    audit: Option<Arc<Audit>>,
    mountpoint: PathBuf,
    overrides: Overrides,
    write_mode: WriteMode,
}

/// Why a reload left the old policy in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{}", .0.first_line())]
    Invalid(PolicyErrors),
    #[error("writes.mode cannot change while mounted; unmount and mount again")]
    ModeChanged,
}

impl Daemon {
    /// Compiles the policy, opens SOURCE (and the overlay), and mounts the view at MOUNTPOINT.
    /// On failure nothing is left mounted.
    pub fn start(prepared: &Prepared, options: &Options) -> Result<Daemon, Error> {
        // Each file the agent holds open through the view costs a descriptor here.
        match sys::raise_descriptor_limit() {
            Ok(limit) => tracing::debug!(limit, "descriptor limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
        }
        let matcher = Arc::new(prepared.policy.compile().map_err(Error::Policy)?);
        let writes = open_writes(prepared)?;
        let mut view = View::new(&prepared.source, matcher, writes).map_err(|e| {
            Error::System(format!(
                "cannot open SOURCE {}: {e}",
                prepared.source.display()
            ))
        })?;
        let audit = match &prepared.policy.audit().log {
            Some(log) => {
                let events = prepared.policy.audit().events;
                let audit = Arc::new(Audit::open(log, events).map_err(|e| {
                    Error::Input(format!(
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
        let config = MountConfig {
            mountpoint: &prepared.mountpoint,
            read_only: view.read_only_mount(),
            allow_other: options.allow_other,
            threads: options.threads,
        };
        let fs = ScopeFs::new(view.clone());
        let serving = fs.serving();
        let session = fuse::mount(fs, &config).map_err(|e| Error::System(e.to_string()))?;
        if let Err(e) = sys::set_non_dumpable() {
            tracing::warn!(error = %e, "cannot make the daemon non-dumpable");
        }
        let control = Control {
            notifier: session.notifier(),
            view,
            serving,
            audit,
            mountpoint: prepared.mountpoint.clone(),
            overrides: prepared.overrides.clone(),
            write_mode: prepared.policy.write_mode(),
        };
        Ok(Daemon {
            session,
            changes,
            control: Arc::new(control),
        })
    }

    /// What steers this view once it is served.
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Serves the view on this thread until it is unmounted, then writes out the audit log.
    /// This thread, and the threads it starts (the serving threads, the one following changes),
    /// are first confined to SOURCE and the overlay; threads started before keep their rights.
    pub fn serve(self) -> Result<(), Error> {
        let Daemon {
            session,
            changes,
            control,
        } = self;
        crate::confine::restrict_thread_or_warn(&control.view.confinement());
        fuse::notify::follow_in_background(changes, &control.view, session.notifier());
        let audit = control.audit.clone();
        drop(control);
        let served = session
            .run()
            .map_err(|e| Error::System(format!("the file system stopped: {e}")));
        if let Some(audit) = audit {
            audit.close();
        }
        served
    }

    /// [`Daemon::serve`] on a thread of its own, so that the calling thread keeps its rights.
    pub fn serve_in_background(self) -> Result<JoinHandle<Result<(), Error>>, Error> {
        std::thread::Builder::new()
            .name("scopefs-session".into())
            .spawn(move || self.serve())
            .map_err(|e| Error::System(format!("cannot start serving the view: {e}")))
    }
}

impl Control {
    /// The view being served.
    pub fn view(&self) -> &Arc<View> {
        &self.view
    }

    /// Reads the policy again and puts it in force, then makes the kernel forget every cached
    /// entry so that what became hidden disappears at once; returns how many entries it was
    /// told of. An invalid policy, or one that changes the write mode, leaves the old one in
    /// force.
    pub fn reload(&self) -> Result<usize, ReloadError> {
        let policy = Policy::from_overrides(&self.overrides).map_err(ReloadError::Invalid)?;
        let matcher = policy.compile().map_err(ReloadError::Invalid)?;
        if policy.write_mode() != self.write_mode {
            return Err(ReloadError::ModeChanged);
        }
        self.view.reload(Arc::new(matcher));
        Ok(fuse::forget_everything(&self.view, &self.notifier))
    }

    /// Unmounts the view once the requests in hand are answered (detaching it lazily if it is
    /// busy); serving then ends.
    pub fn shutdown(&self) {
        fuse::unmount(&self.mountpoint, &self.serving);
    }
}

/// The writable layer the policy asks for; in overlay mode this opens and locks OVERLAY.
fn open_writes(prepared: &Prepared) -> Result<Writes, Error> {
    Ok(match prepared.policy.write_mode() {
        WriteMode::Deny => Writes::Deny,
        WriteMode::Direct => Writes::Layer(Box::new(Direct)),
        WriteMode::Overlay => {
            let Some(dir) = prepared.policy.overlay_dir() else {
                return Err(Error::Input(
                    "no overlay directory: pass --overlay DIR".into(),
                ));
            };
            let overlay = Overlay::open_for_mount(dir, &prepared.source)?;
            let limits = prepared.policy.limits();
            let limits = UpperLimits {
                bytes: limits.overlay_bytes,
                files: limits.overlay_files,
            };
            Writes::Layer(Box::new(Upper::new(overlay, limits).map_err(|e| {
                Error::System(format!("cannot read the overlay {}: {e}", dir.display()))
            })?))
        }
    })
}
