//! `scopefs discard OVERLAY [PATH...]`: drops the overlay's changes (all, or those at or beneath
//! the PATHs), so the view shows SOURCE there again. Refuses while a mount holds the overlay.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::overlay::Overlay;
use crate::overlay::apply as ops;
use crate::overlay::changes;
use crate::path::RelPath;

use super::apply::{parse_paths, selected};
use super::diff::{line, open_source};

#[derive(Debug, Args)]
pub struct DiscardCmd {
    /// The overlay directory (the one given to `mount --overlay`).
    pub overlay: PathBuf,
    /// Discard only the changes at or beneath these paths (relative to SOURCE).
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,
}

impl DiscardCmd {
    pub fn run(self) -> CliResult {
        let filters = parse_paths(&self.paths)?;
        let overlay = Overlay::open_for_review(&self.overlay, true)?;
        let lower = open_source(&overlay)?;
        let list =
            changes::list(&overlay, lower.as_fd()).map_err(|e| CliError::runtime(e.to_string()))?;
        let dropped: Vec<_> = if filters.is_empty() {
            list
        } else {
            selected(&list, &filters)?
                .into_iter()
                .filter(|c| filters.iter().any(|f| c.path.starts_with(f)))
                .collect()
        };
        let scopes = if filters.is_empty() {
            vec![RelPath::root()]
        } else {
            filters
        };
        let fail = |e: std::io::Error| {
            CliError::runtime(format!(
                "cannot discard from the overlay {}: {e}; run `scopefs diff` to see what is left",
                overlay.dir().display()
            ))
        };
        ops::discard(&overlay, lower.as_fd(), &scopes).map_err(fail)?;
        for scope in &scopes {
            ops::tidy(&overlay, lower.as_fd(), scope).map_err(fail)?;
        }
        if scopes.iter().any(RelPath::is_root) {
            overlay.retain_origins(|_| false).map_err(fail)?;
        } else {
            overlay
                .retain_origins(|p| !scopes.iter().any(|s| p.starts_with(s)))
                .map_err(fail)?;
            ops::prune_origins(&overlay).map_err(fail)?;
        }
        for change in &dropped {
            println!("discarded {}", line(change));
        }
        Ok(())
    }
}
