//! `scopefs apply OVERLAY [PATH...] [--dry-run] [--force]`: carries the overlay's changes (all,
//! or those at or beneath the PATHs) into SOURCE, then drops them from the overlay.
//!
//! Order of refusals, each before anything is written: the overlay is in use by a mount (exit
//! 2); a PATH has no change (exit 2); a change would write through a symlink in SOURCE, or is of
//! a type apply does not copy (exit 1); SOURCE changed since the overlay first touched a path
//! (every conflict listed, exit 3, unless `--force`). Prints one line per applied change.
//! Protected changes (exec-config) not named by a PATH are left out unless
//! `--include-protected`, and listed; a change over an entry of SOURCE the view hid is a
//! conflict that `--force` does not override: it stays in the overlay.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::cli::error::{CliError, CliResult, ExitCode};
use crate::overlay::changes;
use crate::overlay::changes::Change;
use crate::overlay::git::Repository;
use crate::overlay::review::{
    ApplyError, Conflict, ConflictReason, Plan, PlanError, Refusal, Review,
};
use crate::path::RelPath;

use super::diff::line;
use super::git_review::{GitBranchArgs, refuse_git_paths, report_branches, report_left_alone};

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
    /// Apply even where SOURCE changed since the overlay copied the path (never over an entry
    /// the view hid).
    #[arg(long)]
    pub force: bool,
    /// Apply protected changes too (exec-config: git hooks and config, CI workflows, editor
    /// and shell settings), which are otherwise left out unless their PATH is given.
    #[arg(long)]
    pub include_protected: bool,
    #[command(flatten)]
    pub git: GitBranchArgs,
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

/// How a plan that could not be made reads: a PATH without a change is a usage error.
pub fn plan_error(err: PlanError) -> CliError {
    match err {
        PlanError::Unchanged(path) => CliError::usage(format!(
            "PATH {} has no change in the overlay; run `scopefs diff` to see the changed paths",
            changes::quote(&path)
        )),
        PlanError::List(e) => CliError::runtime(e.to_string()),
        PlanError::Compare(e) => {
            CliError::runtime(format!("cannot compare the overlay with SOURCE: {e}"))
        }
    }
}

/// How a refused plan reads, its problems or conflicts having been listed.
fn refusal(refused: Refusal) -> CliError {
    match refused {
        Refusal::Unsafe(n) => CliError::runtime(format!(
            "apply refused: {n} change(s) cannot be applied safely (listed above); nothing was applied"
        )),
        Refusal::Conflicts(n) => CliError {
            code: ExitCode::Conflict,
            message: format!(
                "apply refused: {n} conflict(s) (listed above); nothing was applied. Review them with `scopefs diff`, then discard those paths or rerun with --force to overwrite SOURCE"
            ),
        },
    }
}

impl ApplyCmd {
    pub fn run(self) -> CliResult {
        let filters = parse_paths(&self.paths)?;
        refuse_git_paths(&filters)?;
        let overlay = super::review::open(&self.overlay, true)?;
        // What others could have written into the overlay is not what the view wrote.
        overlay.check_private()?;
        let review = Review::new(overlay)?;
        let plan = review
            .plan_to_apply(&filters, self.include_protected)
            .map_err(plan_error)?;
        let repos = self.repositories(&review, &filters)?;
        report_left_out(&plan.left_out);
        if plan.changes.is_empty() && plan.withheld.is_empty() && repos.is_empty() {
            if plan.left_out.is_empty() {
                eprintln!("scopefs: the overlay holds no changes; nothing to apply");
            }
            return Ok(());
        }
        for p in &plan.problems {
            eprintln!("error: {p}");
        }
        report_conflicts(&plan.conflicts, self.force);
        plan.check(self.force).map_err(refusal)?;
        if self.dry_run {
            for change in &plan.changes {
                println!("{}", line(change));
            }
            match &self.git.git_branch {
                None => report_left_alone(&repos),
                Some(branch) => report_branches(&repos, branch),
            }
            eprintln!(
                "scopefs: dry run: {} change(s) would be applied; nothing was changed",
                plan.changes.len()
            );
            return Ok(());
        }
        if !plan.changes.is_empty() || !plan.withheld.is_empty() {
            self.apply_files(&review, &plan)?;
        }
        if self.git.git_branch.is_some() {
            self.git.take(&review, &repos, &filters)
        } else {
            report_left_alone(&repos);
            Ok(())
        }
    }

    /// Carries out the plan's file changes, one line each.
    fn apply_files(&self, review: &Review, plan: &Plan) -> CliResult {
        let total = plan.changes.len();
        let bar = (total > PROGRESS_THRESHOLD && std::io::stderr().is_terminal())
            .then(|| indicatif::ProgressBar::new(total as u64));
        let applied = review.apply(plan, self.force, |change, error| {
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
        let outcome = applied.map_err(|e| match e {
            ApplyError::Refused(refused) => refusal(refused),
            ApplyError::Tidy(_) => {
                CliError::runtime(format!("{e}; run `scopefs diff` to see what is left"))
            }
            ApplyError::Origins(_) => CliError::runtime(e.to_string()),
        })?;
        if !plan.withheld.is_empty() {
            eprintln!(
                "scopefs: {} change(s) left in the overlay: SOURCE holds entries there that the view hid, which apply never writes over or deletes",
                plan.withheld.len()
            );
        }
        if !outcome.failed.is_empty() {
            return Err(CliError::runtime(format!(
                "{} change(s) could not be applied (listed above) and stay in the overlay; {} applied",
                outcome.failed.len(),
                outcome.applied.len()
            )));
        }
        Ok(())
    }

    /// The repositories the overlay changed, summarised (read before anything is applied, so
    /// that they describe what the agent left).
    fn repositories(&self, review: &Review, filters: &[RelPath]) -> CliResult<Vec<Repository>> {
        let list = review
            .changes()
            .map_err(|e| CliError::runtime(e.to_string()))?;
        let (_, repos) = crate::overlay::git::split(list);
        Ok(repos
            .into_iter()
            .filter(|(dir, _)| filters.is_empty() || filters.iter().any(|f| dir.starts_with(f)))
            .map(|(dir, changes)| {
                if self.git.git_branch.is_some() {
                    Repository::summarize(review, dir, changes)
                } else {
                    Repository::unread(dir, changes)
                }
            })
            .collect())
    }
}

fn report_conflicts(conflicts: &[Conflict], forced: bool) {
    for c in conflicts {
        match (forced, &c.reason) {
            (true, ConflictReason::HiddenInSource) => eprintln!("{c} (left in the overlay)"),
            (true, _) => eprintln!("{c} (overwritten: --force)"),
            (false, _) => eprintln!("{c}"),
        }
    }
}

/// Says which protected changes `apply` left out, and how to apply them.
fn report_left_out(left_out: &[Change]) {
    for change in left_out {
        eprintln!("left out: {}", line(change));
    }
    if !left_out.is_empty() {
        eprintln!(
            "scopefs: {} protected change(s) left out and kept in the overlay; review them with `scopefs diff --patch`, then apply them by naming their PATHs or with --include-protected",
            left_out.len()
        );
    }
}
