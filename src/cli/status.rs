//! `scopefs status [MOUNTPOINT] [--json]`: the live views of this user (root sees root's),
//! from the state files their daemons keep (see [`crate::daemon::state`]): source, mountpoint,
//! write mode, overlay and how many changes it holds, policy file, daemon pid, uptime, and how
//! many operations were refused. Needs no root for the user's own views.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::cli::error::{CliError, CliResult};
use crate::daemon::state::{self, ViewState};
use crate::sys;

#[derive(Debug, Args)]
pub struct StatusCmd {
    /// Print JSON (an array of objects) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only the view mounted here.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: Option<PathBuf>,
}

/// One view as `status --json` prints it.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    mountpoint: &'a Path,
    source: &'a Path,
    write_mode: &'a str,
    overlay: Option<&'a Path>,
    /// Changes the overlay holds, as `scopefs diff` lists them (None without an overlay, or
    /// when it cannot be read).
    overlay_changes: Option<usize>,
    policy: Option<&'a Path>,
    pid: u32,
    started: u64,
    uptime_seconds: u64,
    denied: u64,
    /// Mounted in `scopefs run`'s own namespaces, seen only by its command.
    private: bool,
    reloads: u64,
    last_reload: Option<&'a state::ReloadOutcome>,
}

impl StatusCmd {
    pub fn run(self) -> CliResult {
        let uid = sys::euid();
        let mut views = state::live(uid)
            .map_err(|e| CliError::runtime(format!("cannot read the views' state files: {e}")))?;
        if let Some(mountpoint) = &self.mountpoint {
            let canonical = canonical_mountpoint(mountpoint)?;
            views.retain(|v| v.mountpoint == canonical);
            if views.is_empty() {
                return Err(not_a_view(mountpoint));
            }
        }
        let now = state::now();
        let shown: Vec<Shown> = views.iter().map(|v| shown(v, now)).collect();
        let text = if self.json {
            let mut text = serde_json::to_string_pretty(&shown)
                .map_err(|e| CliError::runtime(format!("cannot write JSON: {e}")))?;
            text.push('\n');
            text
        } else if shown.is_empty() {
            "no live scopefs views of this user\n".to_string()
        } else {
            shown.iter().map(text).collect::<Vec<_>>().join("\n")
        };
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| CliError::runtime(format!("cannot write to stdout: {e}")))
    }
}

/// `path` as the state files name it, or why it cannot be a view.
pub fn canonical_mountpoint(path: &Path) -> CliResult<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| {
        CliError::usage(format!(
            "MOUNTPOINT {}: {e}; `scopefs status` lists the live views",
            path.display()
        ))
    })
}

pub fn not_a_view(path: &Path) -> CliError {
    CliError::usage(format!(
        "{} is not a live scopefs view of this user; `scopefs status` lists them",
        path.display()
    ))
}

fn shown(view: &ViewState, now: u64) -> Shown<'_> {
    Shown {
        mountpoint: &view.mountpoint,
        source: &view.source,
        write_mode: &view.write_mode,
        overlay: view.overlay.as_deref(),
        overlay_changes: view.overlay.as_deref().and_then(overlay_changes),
        policy: view.policy.as_deref(),
        pid: view.pid,
        started: view.started,
        uptime_seconds: now.saturating_sub(view.started),
        denied: view.denied,
        private: view.private,
        reloads: view.reloads,
        last_reload: view.last_reload.as_ref(),
    }
}

/// How many changes the overlay at `dir` holds, as `diff` would list them.
fn overlay_changes(dir: &Path) -> Option<usize> {
    let overlay = crate::overlay::Overlay::open_for_review(dir, false).ok()?;
    let lower = super::diff::open_source(&overlay).ok()?;
    crate::overlay::changes::list(&overlay, std::os::fd::AsFd::as_fd(&lower))
        .ok()
        .map(|changes| changes.len())
}

fn text(view: &Shown) -> String {
    let mut out = format!(
        "{}  (pid {}, up {})\n  source   {}\n",
        view.mountpoint.display(),
        view.pid,
        uptime(view.uptime_seconds),
        view.source.display()
    );
    let writes = match (view.write_mode, view.overlay) {
        ("overlay", Some(dir)) => match view.overlay_changes {
            Some(n) => format!(
                "overlay {}: {n} change{}",
                dir.display(),
                if n == 1 { "" } else { "s" }
            ),
            None => format!("overlay {} (cannot be read)", dir.display()),
        },
        ("deny", _) => "denied (read-only)".to_string(),
        ("direct", _) => "direct, into SOURCE".to_string(),
        (mode, _) => mode.to_string(),
    };
    out.push_str(&format!("  writes   {writes}\n"));
    let policy = view
        .policy
        .map_or("built-in default and flags".to_string(), |p| {
            p.display().to_string()
        });
    out.push_str(&format!("  policy   {policy}\n"));
    if let Some(reload) = view.last_reload {
        let outcome = match (&reload.applied, &reload.reason) {
            (true, _) => "the last reload was applied".to_string(),
            (false, Some(reason)) => format!("the last reload was refused: {reason}"),
            (false, None) => "the last reload was refused".to_string(),
        };
        out.push_str(&format!("  reloads  {} ({outcome})\n", view.reloads));
    }
    out.push_str(&format!(
        "  denied   {} operation{}\n",
        view.denied,
        if view.denied == 1 { "" } else { "s" }
    ));
    if view.private {
        out.push_str("  seen only by the command of `scopefs run`\n");
    }
    out
}

/// `42s`, `5m 02s`, `3h 04m`, `2d 03h`.
fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::uptime;

    #[test]
    fn uptimes_read_as_written() {
        for (seconds, shown) in [
            (0, "0s"),
            (42, "42s"),
            (302, "5m 02s"),
            (3 * 3600 + 4 * 60 + 5, "3h 04m"),
            (2 * 86_400 + 3 * 3600, "2d 03h"),
        ] {
            assert_eq!(uptime(seconds), shown);
        }
    }
}
