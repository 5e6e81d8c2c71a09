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
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::PolicyArgs;
use crate::cli::error::{CliError, CliResult, ExitCode};
use crate::daemon::{self, Daemon, OnStop};
use crate::sys;
use crate::view::CacheMode;

/// How long `mount` waits for the daemon to answer before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Request-serving threads (default: 16, or twice the number of cores where that is more).
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

impl MountOptions {
    /// The options as the daemon takes them.
    pub fn daemon(&self) -> daemon::Options {
        daemon::Options {
            allow_other: self.allow_other,
            threads: self.threads,
            cache: self.cache,
        }
    }
}

impl MountCmd {
    pub fn run(self) -> CliResult {
        let overrides = self.policy.overrides();
        let prepared = match daemon::prepare(&overrides, &self.source, &self.mountpoint) {
            Ok(p) => p,
            Err(e) if self.options.daemon_child => return report_error(e.into()),
            Err(e) => return Err(e.into()),
        };
        if !self.options.daemon_child {
            if let Ok(matcher) = prepared.policy.compile() {
                super::check::warn_hidden_history(&prepared.source, &matcher);
            }
        }
        if self.options.foreground || self.options.daemon_child {
            serve(&prepared, &self.options)
        } else {
            detach(&prepared.mountpoint)
        }
    }
}

/// Mounts and serves until unmounted or signalled.
fn serve(prepared: &daemon::Prepared, options: &MountOptions) -> CliResult {
    let report = |err: daemon::Error| {
        if options.daemon_child {
            report_error(err.into())
        } else {
            Err(err.into())
        }
    };
    let daemon = match Daemon::start(prepared, &options.daemon()) {
        Ok(daemon) => daemon,
        Err(e) => return report(e),
    };
    record_state(&daemon.control(), sys::euid(), false);
    // Kept until serving ends; the process exits then.
    let _signals = match daemon::handle_signals(daemon.control(), OnStop::Unmount) {
        Ok(signals) => signals,
        Err(e) => return report(e),
    };
    if options.daemon_child {
        let mountpoint = prepared.mountpoint.clone();
        std::thread::spawn(move || announce_ready(&mountpoint));
    }
    Ok(daemon.serve()?)
}

/// Writes the view's state file for `scopefs status` and `scopefs reload`, in the state
/// directory of user `uid`; a view that cannot is served all the same, with a warning.
pub(super) fn record_state(control: &std::sync::Arc<daemon::Control>, uid: u32, private: bool) {
    let recorded = daemon::state::dir(uid)
        .map_err(|e| format!("no state directory: {e}"))
        .and_then(|dir| {
            control
                .record_state(&dir, private)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "`scopefs status` will not list this view");
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
