//! `scopefs check [POLICY] [SOURCE]`: validates the policy (file and flags) and, if given, that
//! SOURCE is a directory. Every problem goes to stderr on its own line with file:line:column;
//! the command then exits 2. On success it prints one `ok:` line. It never mounts or writes.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::PolicyArgs;
use crate::cli::error::{CliError, CliResult};
use crate::policy::{Policy, PolicyError, PolicyErrors, WriteMode};

#[derive(Debug, Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Also check that this directory exists and can be mounted as SOURCE.
    #[arg(value_name = "SOURCE")]
    pub source: Option<PathBuf>,
}

impl CheckCmd {
    pub fn run(self) -> CliResult {
        let mut errors = PolicyErrors::new();
        let policy = Policy::from_overrides(&self.policy.overrides())
            .map_err(|e| errors.extend(e))
            .ok();
        let matcher = policy
            .as_ref()
            .and_then(|p| p.compile().map_err(|e| errors.extend(e)).ok());
        if let Some(source) = &self.source {
            if let Some(problem) = source_problem(source) {
                errors.push(PolicyError::new(
                    crate::policy::Location::Whole(source.clone()),
                    problem,
                ));
            }
        }
        let name = policy.as_ref().map_or_else(
            || {
                self.policy
                    .config
                    .as_ref()
                    .map_or("the policy".to_string(), |p| p.display().to_string())
            },
            Policy::name,
        );
        if !errors.is_empty() {
            let mut stderr = std::io::stderr().lock();
            for error in errors.iter() {
                // Nothing sensible is left to do if stderr is gone.
                let _ = writeln!(stderr, "{error}");
            }
            let count = errors.len();
            return Err(CliError::usage(format!(
                "{count} problem{} in {name}; fix {} and run check again",
                if count == 1 { "" } else { "s" },
                if count == 1 { "it" } else { "them" },
            )));
        }
        let (Some(policy), Some(matcher)) = (policy, matcher) else {
            return Err(CliError::usage(format!("{name} is invalid")));
        };
        let writes = match policy.write_mode() {
            WriteMode::Deny => "writes denied".to_string(),
            WriteMode::Overlay => match policy.overlay_dir() {
                Some(dir) => format!("writes -> overlay {}", dir.display()),
                None => "writes -> temporary overlay".to_string(),
            },
            WriteMode::Direct => "writes -> SOURCE (direct)".to_string(),
        };
        let presets = if policy.presets().is_empty() {
            "no presets".to_string()
        } else {
            format!("presets {}", policy.presets().join(", "))
        };
        let line = format!(
            "ok: {name} ({} rules; {presets}; {writes})",
            matcher.rule_count()
        );
        writeln!(std::io::stdout().lock(), "{line}")
            .map_err(|e| CliError::runtime(format!("cannot write to stdout: {e}")))
    }
}

/// Why `source` cannot be a SOURCE, if it cannot.
pub fn source_problem(source: &std::path::Path) -> Option<String> {
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some("SOURCE is not a directory; give the directory to show in the view".into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Some("SOURCE does not exist; check the path".into())
        }
        Err(err) => Some(format!(
            "cannot use SOURCE: {err}; check the path and its permissions"
        )),
    }
}
