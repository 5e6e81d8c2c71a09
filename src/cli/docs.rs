//! `scopefs completions SHELL` and `scopefs man`: shell completions and manual pages generated
//! from the clap definitions (and, for `scopefs-policy(5)`, from docs/policy.md), so they never
//! drift from the command line; `scripts/install.sh` installs them. Nothing here touches a file
//! system other than the `--out-dir` the caller names.

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
    /// Write scopefs.1, one scopefs-SUBCOMMAND.1 page per subcommand and scopefs-policy.5 (the
    /// policy file's format) into this directory, instead of printing scopefs.1.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

impl ManCmd {
    pub fn run(self) -> CliResult {
        let cmd = Cli::command();
        let failed =
            |e: std::io::Error| CliError::runtime(format!("cannot render the manual pages: {e}"));
        let Some(dir) = &self.out_dir else {
            return write_stdout(&super::manpages::top(&cmd).map_err(failed)?.text);
        };
        for page in super::manpages::all(&cmd).map_err(failed)? {
            let path = dir.join(&page.file);
            std::fs::write(&path, &page.text)
                .map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::runtime(format!("cannot write to stdout: {e}")))
}
