//! `scopefs explain [POLICY] SOURCE [PATH...] [--tree]`: prints, for each PATH, whether the view
//! shows it, the rule that decided, and whether it could be written; with `--tree`, the view as
//! it would appear, without mounting. Verdicts come from [`Scope`], the same code the mount uses,
//! so what explain says is what an agent would see. It never writes anything.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::cli::PolicyArgs;
use crate::cli::check::source_problem;
use crate::cli::error::{CliError, CliResult};
use crate::path::{RelPath, RelPathError};
use crate::policy::{Decision, Kind, Matcher, Policy, Writability, WriteMode};
use crate::view::{HiddenReason, Scope, Verdict};

/// `--tree` stops descending below this depth and says so.
const MAX_TREE_DEPTH: usize = 256;

#[derive(Debug, Args)]
pub struct ExplainCmd {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The directory the view would show.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Paths relative to SOURCE to explain, e.g. `config/.env`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print the view as it would appear (below each PATH, or all of it), one path per line,
    /// directories with a trailing `/`.
    #[arg(long)]
    pub tree: bool,
}

impl ExplainCmd {
    pub fn run(self) -> CliResult {
        let policy =
            Policy::from_overrides(&self.policy.overrides()).map_err(|e| policy_error(&e))?;
        let matcher = Arc::new(policy.compile().map_err(|e| policy_error(&e))?);
        if let Some(problem) = source_problem(&self.source) {
            return Err(CliError::usage(format!(
                "{}: {problem}",
                self.source.display()
            )));
        }
        let paths = parse_paths(&self.source, &self.paths)?;
        if paths.is_empty() && !self.tree {
            return Err(CliError::usage(
                "nothing to explain: give one or more PATHs relative to SOURCE, or --tree",
            ));
        }
        let scope = Scope::open(&self.source, Arc::clone(&matcher)).map_err(|e| {
            CliError::runtime(format!("cannot open SOURCE {}: {e}", self.source.display()))
        })?;
        let mut out = Vec::new();
        for path in &paths {
            let line = explain_one(&scope, &matcher, path)?;
            out.push(format!("{path}: {line}"));
        }
        if self.tree {
            let roots = if paths.is_empty() {
                vec![RelPath::root()]
            } else {
                paths
            };
            for root in &roots {
                tree(&scope, root, 0, &mut out)?;
            }
        }
        let mut stdout = std::io::stdout().lock();
        for line in out {
            if let Err(err) = writeln!(stdout, "{line}") {
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(CliError::runtime(format!("cannot write to stdout: {err}")));
            }
        }
        Ok(())
    }
}

fn policy_error(errors: &crate::policy::PolicyErrors) -> CliError {
    CliError::usage(errors.to_string())
}

/// Parses every PATH, reporting all bad ones at once.
fn parse_paths(source: &Path, paths: &[PathBuf]) -> CliResult<Vec<RelPath>> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for path in paths {
        match RelPath::parse_os(path.as_os_str()) {
            Ok(rel) => good.push(rel),
            Err(err) => bad.push(path_problem(source, path, err)),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(CliError::usage(bad.join("\n")))
    }
}

fn path_problem(source: &Path, path: &Path, err: RelPathError) -> String {
    let hint = match err {
        RelPathError::Absolute => std::fs::canonicalize(source)
            .ok()
            .and_then(|root| path.strip_prefix(&root).ok().map(Path::to_path_buf))
            .or_else(|| path.strip_prefix(source).ok().map(Path::to_path_buf))
            .map(|rel| format!(" (here: {:?})", rel.display().to_string()))
            .unwrap_or_default(),
        RelPathError::Escapes | RelPathError::Name(_) => String::new(),
    };
    format!(
        "PATH {:?}: {err}{hint}",
        String::from_utf8_lossy(path.as_os_str().as_bytes())
    )
}

/// The verdict text for one path.
fn explain_one(scope: &Scope, matcher: &Matcher, path: &RelPath) -> CliResult<String> {
    let verdict = scope
        .explain(path)
        .map_err(|e| CliError::runtime(format!("cannot explain {path}: {e}")))?;
    let writability = match &verdict {
        Verdict::Visible(_) => matcher.writable(path, kind_in_view(scope, path)),
        _ => Writability::NotWritable,
    };
    let if_created = match &verdict {
        Verdict::Missing => matcher.decide(path, Kind::NonDir),
        _ => Decision::NotAllowed,
    };
    Ok(describe(
        &verdict,
        matcher.write_mode(),
        &writability,
        &if_created,
    ))
}

/// Whether a visible `path` is a directory, read from its parent's listing in the view (so the
/// answer comes from the same descriptor-based code as the mount).
fn kind_in_view(scope: &Scope, path: &RelPath) -> Kind {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Kind::Dir;
    };
    let is_dir = scope
        .visible_children(&parent)
        .ok()
        .and_then(|children| {
            children
                .into_iter()
                .find(|(child, _)| child.as_bytes() == name)
                .map(|(_, is_dir)| is_dir)
        })
        .unwrap_or(false);
    if is_dir { Kind::Dir } else { Kind::NonDir }
}

/// The text after `PATH: ` for a verdict. `writability` matters only for a visible path,
/// `if_created` (the policy's verdict on a file of that name) only for a missing one.
pub fn describe(
    verdict: &Verdict,
    mode: WriteMode,
    writability: &Writability,
    if_created: &Decision,
) -> String {
    match verdict {
        Verdict::Visible(rule) => {
            let writes = match (mode, writability) {
                (WriteMode::Deny, _) => "read-only (writes.mode=deny)".to_string(),
                (_, Writability::Protected(rule)) => format!("protected ({rule})"),
                (_, Writability::NotWritable) => {
                    "not writable (no writable pattern matches)".to_string()
                }
                (WriteMode::Overlay, Writability::Writable(rule)) => {
                    format!("writable -> overlay ({rule})")
                }
                (WriteMode::Direct, Writability::Writable(rule)) => {
                    format!("writable -> SOURCE ({rule})")
                }
            };
            format!("visible ({rule}), {writes}")
        }
        Verdict::Transit => "on the way to allowed paths (lists only visible entries)".to_string(),
        Verdict::Hidden(reason @ HiddenReason::NotAllowed) => reason.to_string(),
        Verdict::Hidden(reason) => format!("hidden ({reason})"),
        Verdict::Missing => {
            let would = match if_created {
                Decision::Visible(rule) => format!("visible ({rule})"),
                Decision::Hidden(rule) => format!("hidden ({rule})"),
                Decision::Transit | Decision::NotAllowed => "not allowed".to_string(),
            };
            format!("does not exist in SOURCE (if created as a file: {would})")
        }
    }
}

/// Appends the view below `dir`, depth-first, one path per line, directories with a trailing `/`.
fn tree(scope: &Scope, dir: &RelPath, depth: usize, out: &mut Vec<String>) -> CliResult {
    let children = scope
        .visible_children(dir)
        .map_err(|e| CliError::runtime(format!("cannot list {dir} in the view: {e}")))?;
    for (name, is_dir) in children {
        let path = dir.join(&name);
        if !is_dir {
            out.push(path.to_string());
            continue;
        }
        out.push(format!("{path}/"));
        if depth + 1 >= MAX_TREE_DEPTH {
            out.push(format!(
                "{path}/... (deeper than {MAX_TREE_DEPTH} levels, not shown)"
            ));
            continue;
        }
        tree(scope, &path, depth + 1, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Rule, RuleOrigin};

    fn rule(origin: RuleOrigin, pattern: &str) -> Rule {
        Rule {
            origin,
            pattern: pattern.into(),
        }
    }

    #[test]
    fn verdict_lines() {
        let secrets = rule(RuleOrigin::Preset("secrets"), ".env");
        let all = rule(RuleOrigin::Default, "**");
        let file = rule(
            RuleOrigin::File {
                path: "p.toml".into(),
                line: 4,
            },
            "src/",
        );
        let exec = rule(RuleOrigin::Preset("exec-config"), "**/.git/config");
        let none = Writability::NotWritable;
        let na = Decision::NotAllowed;
        let cases: Vec<(Verdict, WriteMode, Writability, Decision, &str)> = vec![
            (
                Verdict::Hidden(HiddenReason::Rule(secrets.clone())),
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "hidden (preset secrets: \".env\")",
            ),
            (
                Verdict::Visible(all.clone()),
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "visible (default \"**\"), read-only (writes.mode=deny)",
            ),
            (
                Verdict::Visible(all.clone()),
                WriteMode::Overlay,
                Writability::Writable(file.clone()),
                na.clone(),
                "visible (default \"**\"), writable -> overlay (p.toml:4: \"src/\")",
            ),
            (
                Verdict::Visible(file.clone()),
                WriteMode::Direct,
                Writability::Writable(all.clone()),
                na.clone(),
                "visible (p.toml:4: \"src/\"), writable -> SOURCE (default \"**\")",
            ),
            (
                Verdict::Visible(all.clone()),
                WriteMode::Overlay,
                Writability::Protected(exec),
                na.clone(),
                "visible (default \"**\"), protected (preset exec-config: \"**/.git/config\")",
            ),
            (
                Verdict::Visible(all.clone()),
                WriteMode::Overlay,
                none.clone(),
                na.clone(),
                "visible (default \"**\"), not writable (no writable pattern matches)",
            ),
            (
                Verdict::Hidden(HiddenReason::Hardlink),
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "hidden (hardlink to a name the view does not show)",
            ),
            (
                Verdict::Hidden(HiddenReason::Symlink("target escapes SOURCE".into())),
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "hidden (symlink: target escapes SOURCE)",
            ),
            (
                Verdict::Transit,
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "on the way to allowed paths (lists only visible entries)",
            ),
            (
                Verdict::Hidden(HiddenReason::NotAllowed),
                WriteMode::Deny,
                none.clone(),
                na.clone(),
                "not allowed (no allow pattern matches it or an ancestor)",
            ),
            (
                Verdict::Missing,
                WriteMode::Deny,
                none.clone(),
                Decision::Hidden(secrets),
                "does not exist in SOURCE (if created as a file: hidden (preset secrets: \".env\"))",
            ),
            (
                Verdict::Missing,
                WriteMode::Deny,
                none,
                na,
                "does not exist in SOURCE (if created as a file: not allowed)",
            ),
        ];
        for (verdict, mode, writability, if_created, want) in cases {
            assert_eq!(describe(&verdict, mode, &writability, &if_created), want);
        }
    }

    #[test]
    fn bad_paths_are_all_reported() {
        let got = parse_paths(
            Path::new("/src"),
            &["/src/a.rs".into(), "../x".into(), "ok".into()],
        );
        let message = got.err().map(|e| e.message).unwrap_or_default();
        assert_eq!(
            message,
            "PATH \"/src/a.rs\": the path is absolute; give it relative to SOURCE (here: \"a.rs\")\n\
             PATH \"../x\": the path climbs above SOURCE with `..`"
        );
        let ok = parse_paths(Path::new("/src"), &["src/../.env".into(), "./.env".into()]);
        let ok: Vec<String> = ok
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ok, [".env", ".env"]);
    }
}
