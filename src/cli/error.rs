//! The error a command ends with, and the exit code it maps to (SPEC §1).

use std::fmt;

/// A failure of a whole command: one line for the user saying what is wrong and how to fix it.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

/// Exit codes of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 1: a runtime failure.
    Runtime = 1,
    /// 2: a usage or policy error; nothing was mounted or changed.
    Usage = 2,
    /// 3: `apply` refused because of conflicts.
    Conflict = 3,
    /// 126: `run`'s command exists but cannot be executed (as a shell or `env` says it).
    CannotExecute = 126,
    /// 127: `run`'s command was not found.
    NotFound = 127,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::Usage,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::Runtime,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T = ()> = Result<T, CliError>;
