//! `scopefs check`.

use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct CheckCmd {}

impl CheckCmd {
    pub fn run(self) -> CliResult {
        Err(CliError::runtime("not built yet"))
    }
}
