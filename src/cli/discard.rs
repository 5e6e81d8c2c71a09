//! `scopefs discard OVERLAY [PATH...]`: drops the overlay's changes (all, or those at or beneath
//! the PATHs), so the view shows SOURCE there again. Refuses while a mount holds the overlay.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::error::{CliError, CliResult};
use crate::overlay::review::{DiscardError, Review};

use super::apply::{parse_paths, plan_error};
use super::diff::line;

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
        let review = Review::new(super::review::open(&self.overlay, true)?)?;
        let dropped = review.discard(&filters).map_err(|e| match e {
            DiscardError::Plan(e) => plan_error(e),
            DiscardError::Io { .. } => {
                CliError::runtime(format!("{e}; run `scopefs diff` to see what is left"))
            }
        })?;
        for change in &dropped {
            println!("discarded {}", line(change));
        }
        Ok(())
    }
}
