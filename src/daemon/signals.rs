//! The daemon's one signal path, for `mount` and `run` alike: SIGHUP reloads the policy (an
//! invalid one keeps the old policy and says why on stderr); SIGINT and SIGTERM unmount the
//! view, or, while `run`'s command runs, are passed on to it.

use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::{Control, Error, ReloadError};
use crate::sys;

/// What SIGINT and SIGTERM do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Unmount the view (which ends serving); the signal thread then ends.
    Unmount,
    /// Pass the signal on to process `pid` (`run`'s command), which decides.
    PassOn(u32),
}

/// The thread handling the daemon's signals.
pub struct Signals {
    handle: signal_hook::iterator::Handle,
    thread: JoinHandle<()>,
}

/// Starts handling SIGHUP, SIGINT and SIGTERM for the view `control` steers. The thread starts
/// with the caller's rights: call this before the caller confines itself, since a reload reads
/// the policy file and an unmount may start `fusermount3`.
pub fn handle_signals(control: Arc<Control>, on_stop: OnStop) -> Result<Signals, Error> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::System(format!("cannot handle signals: {e}")))?;
    let handle = signals.handle();
    let thread = std::thread::spawn(move || {
        for signal in signals.forever() {
            match on_stop {
                _ if signal == SIGHUP => reload(&control),
                OnStop::Unmount => {
                    tracing::info!(signal, "unmounting");
                    control.shutdown();
                    break;
                }
                OnStop::PassOn(pid) => {
                    if let Err(e) = sys::spawn::kill(pid, signal) {
                        tracing::debug!(error = %e, signal, "the command is already gone");
                    }
                }
            }
        }
    });
    Ok(Signals { handle, thread })
}

impl Signals {
    /// Stops handling the signals and waits for the thread.
    pub fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// SIGHUP: the reload, and what became of it: one line on stderr (for `--foreground`), and
/// the state file (for `scopefs reload`).
fn reload(control: &Control) {
    match control.reload() {
        Ok(entries) => {
            eprintln!("scopefs: SIGHUP: the policy was reloaded and is in force");
            tracing::debug!(entries, "policy reloaded");
        }
        Err(e @ ReloadError::Invalid(_)) => {
            eprintln!(
                "scopefs: SIGHUP: the policy was not reloaded, the old one stays in force: {e}"
            );
        }
        Err(e @ ReloadError::ModeChanged) => {
            eprintln!("scopefs: SIGHUP: the policy was not reloaded: {e}");
        }
    }
}
