//! `scopefs mount`.

use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct MountCmd {}

impl MountCmd {
    pub fn run(self) -> CliResult {
        Err(CliError::runtime("not built yet"))
    }
}
