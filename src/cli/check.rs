//! `scopefs check [POLICY] [SOURCE]`: answers as `mount` would, without a MOUNTPOINT: the policy
//! (file and flags), and what `mount` would refuse besides (SOURCE if given, an overlay mode
//! without an overlay directory, the overlay's and the audit log's places). Every problem goes to
//! stderr on its own line (policy errors with file:line:column); the command then exits 2.
//! Warnings (an allow pattern such as `src/` that matches at any depth) go to stderr too and do
//! not fail it. On success it prints one `ok:` line. It never mounts or writes.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::PolicyArgs;
use crate::cli::error::{CliError, CliResult};
use crate::daemon;
use crate::policy::{Policy, PolicyErrors, WriteMode};

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
        let name = policy.as_ref().map_or_else(
            || {
                self.policy
                    .config
                    .as_ref()
                    .map_or("the policy".to_string(), |p| p.display().to_string())
            },
            Policy::name,
        );
        // What `mount` would refuse besides the policy's own errors: SOURCE, the overlay and
        // the audit log.
        let refusals: Vec<String> = match &policy {
            Some(policy) => daemon::inspect(policy, self.source.as_deref())
                .iter()
                .map(ToString::to_string)
                .collect(),
            None => self
                .source
                .as_deref()
                .and_then(|s| source_problem(s).map(|p| format!("{}: {p}", s.display())))
                .into_iter()
                .collect(),
        };
        let mut stderr = std::io::stderr().lock();
        // Nothing sensible is left to do if stderr is gone.
        for error in errors.iter() {
            let _ = writeln!(stderr, "{error}");
        }
        for refusal in &refusals {
            let _ = writeln!(stderr, "{refusal}");
        }
        let count = errors.len() + refusals.len();
        if count > 0 {
            let (s, them) = if count == 1 {
                ("", "it")
            } else {
                ("s", "them")
            };
            let whose = if refusals.is_empty() {
                format!("in {name}")
            } else {
                "(listed above)".to_string()
            };
            return Err(CliError::usage(format!(
                "{count} problem{s} {whose}; fix {them} and run check again"
            )));
        }
        let (Some(policy), Some(matcher)) = (policy, matcher) else {
            return Err(CliError::usage(format!("{name} is invalid")));
        };
        for warning in policy.warnings() {
            let _ = writeln!(stderr, "{}: warning: {}", warning.location, warning.message);
        }
        drop(stderr);
        if let Some(source) = &self.source {
            warn_hidden_history(source, &matcher);
        }
        let writes = match (policy.write_mode(), policy.overlay_dir()) {
            (WriteMode::Deny, _) => "writes denied".to_string(),
            (WriteMode::Overlay, Some(dir)) => format!("writes -> overlay {}", dir.display()),
            (WriteMode::Overlay, None) => "writes -> overlay".to_string(),
            (WriteMode::Direct, _) => "writes -> SOURCE (direct)".to_string(),
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

/// Warns on stderr, in one line, when SOURCE's git history holds files the view hides while it
/// shows `.git` (the agent could read them from the history).
pub fn warn_hidden_history(source: &std::path::Path, matcher: &crate::policy::Matcher) {
    if let Some(found) = crate::git::history::hidden_tracked(source, matcher) {
        eprintln!("scopefs: warning: {found}");
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
