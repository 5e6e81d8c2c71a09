//! `scopefs umount`.

use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct UmountCmd {}

impl UmountCmd {
    pub fn run(self) -> CliResult {
        Err(CliError::runtime("not built yet"))
    }
}
