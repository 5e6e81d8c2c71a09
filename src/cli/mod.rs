//! The command line of SPEC §1: clap definitions, one file per subcommand. Each turns its
//! arguments into library calls and prints the result; none holds file-system logic.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};

use crate::cli::error::{CliError, CliResult, ExitCode};
use crate::policy::{Overrides, WriteMode};

pub mod apply;
pub mod check;
pub mod contain;
pub mod diff;
pub mod discard;
pub mod docs;
pub mod error;
pub mod explain;
pub mod git_review;
mod manpages;
pub mod mount;
pub mod reload;
mod review;
pub mod run;
pub mod status;
mod summary;
pub mod umount;

/// A scoped view of a directory for an AI agent: only allowlisted paths appear, secrets are
/// hidden, and writes are denied, confined or redirected.
#[derive(Debug, Parser)]
#[command(name = "scopefs", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a scoped view of SOURCE at MOUNTPOINT.
    Mount(mount::MountCmd),
    /// Mount a view, run COMMAND in it, then unmount and clean up.
    Run(run::RunCmd),
    /// Unmount a view and wait until its daemon has exited.
    Umount(umount::UmountCmd),
    /// List the live views of this user: source, mode, overlay, policy, daemon, refusals.
    Status(status::StatusCmd),
    /// Read a view's policy file again (after checking it) and say whether it is in force.
    Reload(reload::ReloadCmd),
    /// Print each PATH's verdict and the rule that decided it (or the whole view with --tree).
    Explain(explain::ExplainCmd),
    /// Validate a policy file (and SOURCE, if given).
    Check(check::CheckCmd),
    /// List the changes an overlay holds against its SOURCE.
    Diff(diff::DiffCmd),
    /// Copy an overlay's changes (all, or the PATHs given) into SOURCE.
    Apply(apply::ApplyCmd),
    /// Drop an overlay's changes (all, or the PATHs given).
    Discard(discard::DiscardCmd),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsCmd),
    /// Print the manual page (or write all of them, scopefs-policy(5) included, with --out-dir).
    Man(docs::ManCmd),
    /// Internal: the contained side of `run`, which starts it.
    #[command(name = "internal-contain", hide = true)]
    InternalContain(contain::ContainCmd),
}

/// The policy options shared by `mount`, `run`, `explain` and `check` (SPEC §1).
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// Policy file (TOML). Without it: everything visible except the `secrets` preset, writes
    /// denied.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Replace the allow list with these patterns (repeatable).
    #[arg(long = "allow", value_name = "PATTERN")]
    pub allow: Vec<String>,
    /// Append to the hide list (repeatable).
    #[arg(long = "hide", value_name = "PATTERN")]
    pub hide: Vec<String>,
    /// Drop the built-in preset hides.
    #[arg(long = "no-presets")]
    pub no_presets: bool,
    /// Write mode.
    #[arg(long = "writes", value_name = "MODE", value_enum)]
    pub writes: Option<WriteModeArg>,
    /// Overlay directory; implies --writes overlay.
    #[arg(long = "overlay", value_name = "DIR")]
    pub overlay: Option<PathBuf>,
    /// Replace the writable list with these patterns (repeatable).
    #[arg(long = "writable", value_name = "PATTERN")]
    pub writable: Vec<String>,
    /// JSON-lines audit log.
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// `--writes` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteModeArg {
    Deny,
    Overlay,
    Direct,
}

impl PolicyArgs {
    /// The options as the policy takes them.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            allow: self.allow.clone(),
            hide: self.hide.clone(),
            no_presets: self.no_presets,
            writes: self.writes.map(WriteMode::from),
            overlay: self.overlay.clone(),
            writable: self.writable.clone(),
            audit_log: self.audit_log.clone(),
        }
    }
}

impl From<WriteModeArg> for WriteMode {
    fn from(arg: WriteModeArg) -> Self {
        match arg {
            WriteModeArg::Deny => WriteMode::Deny,
            WriteModeArg::Overlay => WriteMode::Overlay,
            WriteModeArg::Direct => WriteMode::Direct,
        }
    }
}

/// The argument that makes scopefs read its real arguments from standard input: how `mount`
/// starts its detached daemon without putting the policy flags on a command line.
pub const ARGS_ON_STDIN: &str = "--args-on-stdin";

/// The command's arguments: its own, or, when started with [`ARGS_ON_STDIN`] alone, those
/// sent NUL-terminated on standard input (which is then pointed at `/dev/null`). They are kept
/// for [`arguments_given`], since [`hide_arguments`] blanks the command line afterwards.
pub fn arguments() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args
        .get(1..)
        .is_some_and(|rest| rest == [OsString::from(ARGS_ON_STDIN)])
    {
        args.truncate(1);
        let mut sent = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut sent) {
            tracing::error!(error = %e, "cannot read the arguments sent on standard input");
        }
        // Each argument ends with a NUL (an empty one included).
        if let Some(body) = sent.strip_suffix(&[0]) {
            args.extend(
                body.split(|b| *b == 0)
                    .map(|a| OsString::from_vec(a.to_vec())),
            );
        }
        if let Err(e) = crate::sys::stdin_to_null() {
            tracing::warn!(error = %e, "cannot detach standard input");
        }
    }
    let _ = GIVEN.set(args.clone());
    args
}

static GIVEN: OnceLock<Vec<OsString>> = OnceLock::new();

/// The arguments [`arguments`] returned (program name first), or the command line's.
pub fn arguments_given() -> Vec<OsString> {
    GIVEN
        .get()
        .cloned()
        .unwrap_or_else(|| std::env::args_os().collect())
}

/// Blanks the command line after the subcommand's name, so that other users reading
/// `/proc/PID/cmdline` (`ps`) do not learn the policy flags (`--hide private/`) of a daemon
/// that may run for hours. Called once the arguments are parsed.
pub fn hide_arguments() {
    if let Err(e) = crate::sys::hide_arguments(2) {
        tracing::debug!(error = %e, "cannot blank the command line");
    }
}

impl From<crate::daemon::Error> for CliError {
    fn from(err: crate::daemon::Error) -> Self {
        use crate::daemon::Error;
        let code = match &err {
            Error::Policy(_) | Error::Input(_) | Error::Overlay(_) => ExitCode::Usage,
            Error::System(_) => ExitCode::Runtime,
        };
        CliError {
            code,
            message: err.to_string(),
        }
    }
}

/// Runs one parsed command line.
/// Whether what goes to stderr may be coloured: only on a terminal, and not when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Mount(cmd) => cmd.run(),
        Command::Umount(cmd) => cmd.run(),
        Command::Status(cmd) => cmd.run(),
        Command::Reload(cmd) => cmd.run(),
        Command::Run(cmd) => cmd.run(),
        Command::Explain(cmd) => cmd.run(),
        Command::Check(cmd) => cmd.run(),
        Command::Diff(cmd) => cmd.run(),
        Command::Apply(cmd) => cmd.run(),
        Command::Discard(cmd) => cmd.run(),
        Command::Completions(cmd) => cmd.run(),
        Command::Man(cmd) => cmd.run(),
        Command::InternalContain(cmd) => cmd.run(),
    }
}
