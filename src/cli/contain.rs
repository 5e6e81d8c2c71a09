//! `scopefs internal-contain` (hidden): the contained side of `scopefs run`, which starts it
//! with the command and the paths to arrange ([`arguments`]) and reads its report. It is
//! never run by hand; [`crate::sys::contain`] does the work.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::sys::contain::{Identity, Spec};

#[derive(Debug, Args)]
pub struct ContainCmd {
    /// The descriptor to report on.
    #[arg(long = "report-fd")]
    pub report_fd: RawFd,
    /// Where the view is mounted.
    #[arg(long)]
    pub view: PathBuf,
    /// SOURCE, covered by the view.
    #[arg(long)]
    pub source: PathBuf,
    /// `run`'s scratch directory.
    #[arg(long)]
    pub scratch: PathBuf,
    /// A directory to hide (repeatable).
    #[arg(long = "hide-dir")]
    pub hide_dirs: Vec<PathBuf>,
    /// A file to hide (repeatable).
    #[arg(long = "hide-file")]
    pub hide_files: Vec<PathBuf>,
    /// The command's working directory.
    #[arg(long)]
    pub cwd: PathBuf,
    /// The user to run as: NAME:UID:GID:GROUPS:HOME (GROUPS comma-separated).
    #[arg(long, value_parser = parse_identity)]
    pub user: Option<IdentityArg>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// `--user`'s value, parsed.
#[derive(Debug, Clone)]
pub struct IdentityArg(Identity);

fn parse_identity(s: &str) -> Result<IdentityArg, String> {
    let mut parts = s.splitn(5, ':');
    let mut next = || parts.next().ok_or_else(|| format!("bad identity {s:?}"));
    let name = next()?.to_string();
    let number = |v: &str| v.parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    let uid = number(next()?)?;
    let gid = number(next()?)?;
    let groups = next()?
        .split(',')
        .filter(|g| !g.is_empty())
        .map(number)
        .collect::<Result<Vec<_>, _>>()?;
    let home = PathBuf::from(next()?);
    Ok(IdentityArg(Identity {
        name: name.into(),
        uid,
        gid,
        groups,
        home,
    }))
}

/// The command line that makes `scopefs internal-contain` carry out `spec`, reporting on
/// `report_fd`.
pub fn arguments(spec: &Spec, report_fd: RawFd) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "internal-contain".into(),
        "--report-fd".into(),
        report_fd.to_string().into(),
        "--view".into(),
        spec.view.clone().into(),
        "--source".into(),
        spec.source.clone().into(),
        "--scratch".into(),
        spec.scratch.clone().into(),
        "--cwd".into(),
        spec.cwd.clone().into(),
    ];
    for dir in &spec.hide_dirs {
        args.push("--hide-dir".into());
        args.push(dir.clone().into());
    }
    for file in &spec.hide_files {
        args.push("--hide-file".into());
        args.push(file.clone().into());
    }
    if let Some(user) = &spec.user {
        let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
        let mut value = OsString::new();
        value.push(&user.name);
        value.push(format!(":{}:{}:{}:", user.uid, user.gid, groups.join(",")));
        value.push(&user.home);
        args.push("--user".into());
        args.push(value);
    }
    args.push("--".into());
    args.push(spec.program.clone());
    args.extend(spec.args.iter().cloned());
    args
}

impl ContainCmd {
    pub fn run(self) -> CliResult {
        let report = crate::sys::spawn::inherited(self.report_fd)
            .map_err(|e| CliError::runtime(format!("no report descriptor: {e}")))?;
        let mut command = self.command.into_iter();
        let program = command
            .next()
            .ok_or_else(|| CliError::usage("no COMMAND given after --"))?;
        let spec = Spec {
            view: self.view,
            source: self.source,
            scratch: self.scratch,
            hide_dirs: self.hide_dirs,
            hide_files: self.hide_files,
            cwd: self.cwd,
            user: self.user.map(|u| u.0),
            program,
            args: command.collect(),
        };
        std::process::exit(crate::sys::contain::run(&spec, report));
    }
}
