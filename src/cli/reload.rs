//! `scopefs reload MOUNTPOINT`: checks the view's policy file as `check` does, signals its
//! daemon (SIGHUP), waits for the daemon's answer in the view's state file and says whether the
//! new policy is in force. An invalid file is reported with its `FILE:LINE:COLUMN` lines and
//! exit 2, and the daemon is not signalled.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::daemon::state;
use crate::policy::{Overrides, Policy, PolicyErrors};
use crate::sys;

/// How long `reload` waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ReloadCmd {
    /// Where the view is mounted (`scopefs status` lists them).
    pub mountpoint: PathBuf,
}

impl ReloadCmd {
    pub fn run(self) -> CliResult {
        let uid = sys::euid();
        let canonical = super::status::canonical_mountpoint(&self.mountpoint)?;
        let view = state::find(uid, &canonical)
            .map_err(|e| CliError::runtime(format!("cannot read the views' state files: {e}")))?
            .ok_or_else(|| super::status::not_a_view(&self.mountpoint))?;
        let shown = self.mountpoint.display();
        let Some(file) = &view.policy else {
            return Err(CliError::usage(format!(
                "the view at {shown} has no policy file (its policy is the built-in default and \
                 flags): there is nothing to read again; unmount it and mount it with -c FILE"
            )));
        };
        check_file(file)?;
        let before = view.reloads;
        sys::spawn::kill(view.pid, libc::SIGHUP).map_err(|e| {
            CliError::runtime(format!(
                "cannot signal the daemon of {shown} (pid {}): {e}",
                view.pid
            ))
        })?;
        let start = Instant::now();
        loop {
            match state::read(uid, view.pid) {
                Some(now) if now.reloads > before => {
                    return match now.last_reload {
                        Some(state::ReloadOutcome { applied: true, .. }) => {
                            let line = format!(
                                "reloaded {shown}: the policy of {} is in force\n",
                                file.display()
                            );
                            std::io::stdout()
                                .lock()
                                .write_all(line.as_bytes())
                                .map_err(|e| {
                                    CliError::runtime(format!("cannot write to stdout: {e}"))
                                })
                        }
                        Some(state::ReloadOutcome { reason, .. }) => Err(CliError::usage(format!(
                            "{shown} keeps its old policy: {}",
                            reason.unwrap_or_else(|| "the daemon refused the new one".into())
                        ))),
                        None => Err(CliError::runtime(format!(
                            "the daemon of {shown} answered without saying what became of the reload"
                        ))),
                    };
                }
                Some(_) => {}
                None => {
                    return Err(CliError::runtime(format!(
                        "the view at {shown} went away before its daemon answered"
                    )));
                }
            }
            if start.elapsed() > ANSWER_TIMEOUT {
                return Err(CliError::runtime(format!(
                    "sent SIGHUP to the daemon of {shown} (pid {}), which has not answered within \
                     {}s; `scopefs status {shown}` shows the last reload's outcome",
                    view.pid,
                    ANSWER_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The policy file checked as `check` checks it: every error on its own line, then exit 2.
fn check_file(file: &std::path::Path) -> CliResult {
    let overrides = Overrides {
        config: Some(file.to_path_buf()),
        ..Overrides::default()
    };
    let mut errors = PolicyErrors::new();
    if let Ok(policy) = Policy::from_overrides(&overrides).map_err(|e| errors.extend(e)) {
        let _ = policy.compile().map_err(|e| errors.extend(e));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let mut stderr = std::io::stderr().lock();
    for error in errors.iter() {
        let _ = writeln!(stderr, "{error}");
    }
    let count = errors.len();
    Err(CliError::usage(format!(
        "{count} problem{} in {}; the daemon was not signalled and keeps its policy",
        if count == 1 { "" } else { "s" },
        file.display()
    )))
}
