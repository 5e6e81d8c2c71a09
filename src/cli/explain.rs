//! `scopefs explain`.

use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct ExplainCmd {}

impl ExplainCmd {
    pub fn run(self) -> CliResult {
        Err(CliError::runtime("not built yet"))
    }
}
