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
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Request-serving threads (default: 16, or twice the number of cores where that is more).
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
    /// What the view's state file says of it at first.
    described: state::ViewState,
    /// The thread keeping the state file up to date, once there is one.
    recorder: parking_lot::Mutex<Option<Recorder>>,
}

/// The thread that owns a view's state file: it writes the count of refusals every second and
/// each reload's outcome as it comes, and removes the file when told to stop. It runs with the
/// rights of the thread that started it, so the file can be removed after the serving thread
/// confined itself.
struct Recorder {
    tx: mpsc::Sender<Recorded>,
    thread: JoinHandle<()>,
}

enum Recorded {
    Reload(state::ReloadOutcome),
    Stop,
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
        let pid = std::process::id();
        let described = state::ViewState {
            pid,
            start_ticks: state::start_ticks(pid).unwrap_or_default(),
            source: prepared.source.clone(),
            mountpoint: prepared.mountpoint.clone(),
            write_mode: crate::policy::name_of(&prepared.policy.write_mode()),
            overlay: prepared
                .policy
                .overlay_dir()
                .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())),
            policy: prepared
                .policy
                .file()
                .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf())),
            started: state::now(),
            private: false,
            denied: 0,
            reloads: 0,
            last_reload: None,
        };
        let control = Control {
            notifier: session.notifier(),
            view,
            serving,
            audit,
            mountpoint: prepared.mountpoint.clone(),
            overrides: prepared.overrides.clone(),
            write_mode: prepared.policy.write_mode(),
            described,
            recorder: parking_lot::Mutex::new(None),
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
        let served = session
            .run()
            .map_err(|e| Error::System(format!("the file system stopped: {e}")));
        control.stop_recording();
        drop(control);
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
        let result = self.try_reload();
        if let Some(recorder) = self.recorder.lock().as_ref() {
            let outcome = state::ReloadOutcome {
                applied: result.is_ok(),
                reason: result.as_ref().err().map(ToString::to_string),
            };
            let _ = recorder.tx.send(Recorded::Reload(outcome));
        }
        result
    }

    fn try_reload(&self) -> Result<usize, ReloadError> {
        let policy = Policy::from_overrides(&self.overrides).map_err(ReloadError::Invalid)?;
        let matcher = policy.compile().map_err(ReloadError::Invalid)?;
        if policy.write_mode() != self.write_mode {
            return Err(ReloadError::ModeChanged);
        }
        self.view.reload(Arc::new(matcher));
        Ok(fuse::forget_everything(&self.view, &self.notifier))
    }

    /// Writes the view's state file into `dir` (see [`state`]) and keeps it up to date until
    /// serving ends; `private` when the view is mounted in `run`'s own namespaces. Call it
    /// before serving, from a thread that is not confined.
    pub fn record_state(self: &Arc<Self>, dir: &Path, private: bool) -> Result<(), Error> {
        let described = state::ViewState {
            private,
            ..self.described.clone()
        };
        let record = state::Record::create(dir, described).map_err(|e| {
            Error::System(format!(
                "cannot write the view's state file in {}: {e}",
                dir.display()
            ))
        })?;
        let (tx, rx) = mpsc::channel();
        let control = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("scopefs-state".into())
            .spawn(move || keep_recording(&record, &rx, &control))
            .map_err(|e| Error::System(format!("cannot start the state thread: {e}")))?;
        *self.recorder.lock() = Some(Recorder { tx, thread });
        Ok(())
    }

    /// Stops keeping the state file and removes it.
    fn stop_recording(&self) {
        let recorder = self.recorder.lock().take();
        if let Some(recorder) = recorder {
            let _ = recorder.tx.send(Recorded::Stop);
            if recorder.thread.join().is_err() {
                tracing::error!("the state thread panicked");
            }
        }
    }

    /// Unmounts the view once the requests in hand are answered (detaching it lazily if it is
    /// busy); serving then ends.
    pub fn shutdown(&self) {
        fuse::unmount(&self.mountpoint, &self.serving);
    }
}

/// The recorder's loop: the refusals counted, every second; reloads as they come; the file
/// removed (when `record` drops) at the end.
fn keep_recording(record: &state::Record, rx: &mpsc::Receiver<Recorded>, control: &Weak<Control>) {
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Recorded::Reload(outcome)) => record.update(|s| {
                s.reloads += 1;
                s.last_reload = Some(outcome);
            }),
            Ok(Recorded::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let Some(control) = control.upgrade() else {
            return;
        };
        let denied = control.view.refusals();
        record.update(|s| s.denied = denied);
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
