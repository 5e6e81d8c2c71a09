//! `scopefs completions SHELL` and `scopefs man`: shell completions and manual pages generated
//! from the clap definitions, so they never drift from the command line. Both are hidden from
//! `--help`; README says how to install their output. Nothing here touches a file system
//! other than the `--out-dir` the caller names.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::cli::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct CompletionsCmd {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsCmd {
    pub fn run(self) -> CliResult {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "scopefs", &mut out);
        write_stdout(&out)
    }
}

#[derive(Debug, Args)]
pub struct ManCmd {
    /// Write scopefs.1 and one scopefs-SUBCOMMAND.1 page per subcommand into this directory
    /// instead of printing scopefs.1.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

impl ManCmd {
    pub fn run(self) -> CliResult {
        let cmd = Cli::command();
        if let Some(dir) = &self.out_dir {
            return clap_mangen::generate_to(cmd, dir).map_err(|e| {
                CliError::runtime(format!(
                    "cannot write manual pages to {}: {e}",
                    dir.display()
                ))
            });
        }
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| CliError::runtime(format!("cannot render the manual page: {e}")))?;
        write_stdout(&out)
    }
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::runtime(format!("cannot write to stdout: {e}")))
}
