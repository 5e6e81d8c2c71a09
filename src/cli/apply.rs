//! `scopefs apply OVERLAY [PATH...] [--dry-run] [--force]`: carries the overlay's changes (all,
//! or those at or beneath the PATHs) into SOURCE, then drops them from the overlay.
//!
//! Order of refusals, each before anything is written: the overlay is in use by a mount (exit
//! 2); a PATH has no change (exit 2); a change would write through a symlink in SOURCE, or is of
//! a type apply does not copy (exit 1); SOURCE changed since the overlay first touched a path
//! (every conflict listed, exit 3, unless `--force`). Prints one line per applied change.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, CliResult, ExitCode};
use crate::overlay::Overlay;
use crate::overlay::apply::{self as ops, Conflict};
use crate::overlay::changes::{self, Change};
use crate::path::RelPath;

use super::diff::{line, open_source};

/// Above this many changes, `apply` shows a progress bar (on a terminal).
const PROGRESS_THRESHOLD: usize = 100;

#[derive(Debug, Args)]
pub struct ApplyCmd {
    /// The overlay directory (the one given to `mount --overlay`).
    pub overlay: PathBuf,
    /// Apply only the changes at or beneath these paths (relative to SOURCE).
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,
    /// Print what would be applied and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even where SOURCE changed since the overlay copied the path.
    #[arg(long)]
    pub force: bool,
}

/// Parses PATH arguments relative to SOURCE.
pub fn parse_paths(paths: &[OsString]) -> CliResult<Vec<RelPath>> {
    paths
        .iter()
        .map(|p| {
            RelPath::parse_os(p).map_err(|e| {
                CliError::usage(format!(
                    "PATH {}: {e}; give a path relative to SOURCE, as `diff` prints it",
                    p.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// The changes a command works on: all, or those the PATHs select (each must select one).
pub fn selected(list: &[Change], filters: &[RelPath]) -> CliResult<Vec<Change>> {
    ops::select(list, filters).map_err(|path| {
        CliError::usage(format!(
            "PATH {} has no change in the overlay; run `scopefs diff` to see the changed paths",
            changes::quote(&path)
        ))
    })
}

impl ApplyCmd {
    pub fn run(self) -> CliResult {
        let filters = parse_paths(&self.paths)?;
        let overlay = Overlay::open_for_review(&self.overlay, true)?;
        // What others could have written into the overlay is not what the view wrote.
        overlay.check_private()?;
        let lower = open_source(&overlay)?;
        let list =
            changes::list(&overlay, lower.as_fd()).map_err(|e| CliError::runtime(e.to_string()))?;
        let chosen = selected(&list, &filters)?;
        if chosen.is_empty() {
            eprintln!("scopefs: the overlay holds no changes; nothing to apply");
            return Ok(());
        }
        let problems = ops::preflight(lower.as_fd(), &chosen);
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("error: {p}");
            }
            return Err(CliError::runtime(format!(
                "apply refused: {} change(s) cannot be applied safely (listed above); nothing was applied",
                problems.len()
            )));
        }
        let conflicts = ops::conflicts(&overlay, lower.as_fd(), &chosen).map_err(|e| {
            CliError::runtime(format!("cannot compare the overlay with SOURCE: {e}"))
        })?;
        if !conflicts.is_empty() {
            report_conflicts(&conflicts, self.force);
            if !self.force {
                return Err(CliError {
                    code: ExitCode::Conflict,
                    message: format!(
                        "apply refused: {} conflict(s) (listed above); nothing was applied. Review them with `scopefs diff`, then discard those paths or rerun with --force to overwrite SOURCE",
                        conflicts.len()
                    ),
                });
            }
        }
        if self.dry_run {
            for change in &chosen {
                println!("{}", line(change));
            }
            eprintln!(
                "scopefs: dry run: {} change(s) would be applied; nothing was changed",
                chosen.len()
            );
            return Ok(());
        }
        let bar = (chosen.len() > PROGRESS_THRESHOLD && std::io::stderr().is_terminal())
            .then(|| indicatif::ProgressBar::new(chosen.len() as u64));
        let outcome = ops::apply(&overlay, lower.as_fd(), &chosen, |change, error| {
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            let text = match error {
                None => line(change),
                Some(problem) => format!("error: {}: {problem}", changes::quote(&change.path)),
            };
            match (&bar, error) {
                (Some(bar), _) => bar.println(text),
                (None, None) => println!("{text}"),
                (None, Some(_)) => eprintln!("{text}"),
            }
        });
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let scopes = if filters.is_empty() {
            vec![RelPath::root()]
        } else {
            filters
        };
        for scope in &scopes {
            ops::tidy(&overlay, lower.as_fd(), scope).map_err(|e| {
                CliError::runtime(format!(
                    "applied, but cannot remove the applied entries from the overlay: {e}; run `scopefs diff` to see what is left"
                ))
            })?;
        }
        ops::prune_origins(&overlay).map_err(|e| {
            CliError::runtime(format!(
                "applied, but cannot rewrite the overlay's origins file: {e}"
            ))
        })?;
        if !outcome.failed.is_empty() {
            return Err(CliError::runtime(format!(
                "{} change(s) could not be applied (listed above) and stay in the overlay; {} applied",
                outcome.failed.len(),
                outcome.applied.len()
            )));
        }
        Ok(())
    }
}

fn report_conflicts(conflicts: &[Conflict], forced: bool) {
    for c in conflicts {
        if forced {
            eprintln!("{c} (overwritten: --force)");
        } else {
            eprintln!("{c}");
        }
    }
}
