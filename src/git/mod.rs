//! Running the `git` command for scopefs's own look at repositories: the review of `.git/` in
//! an overlay and the warning that history holds what a view hides.
//!
//! Every run starts from a clean slate: the `GIT_*` variables of the caller's environment are
//! dropped (a `GIT_DIR` or `GIT_INDEX_FILE` there would point git elsewhere), hooks are switched
//! off (`core.hooksPath=/dev/null`), as are the file-system monitor, automatic maintenance and
//! terminal prompts, so that nothing scopefs asks of git runs code from a repository or writes
//! more than it was asked to. The repository is always named with `--git-dir`; no work tree is
//! ever read.
//!
//! The git command line rather than a library: every machine that has a repository worth
//! reviewing has it, it reads every repository format git writes (a library lags behind, for
//! example on reftable or new pack index versions), and `fetch` verifies each object it copies
//! (hashes and, with `transfer.fsckObjects`, well-formedness), which is what taking objects an
//! agent wrote into a real repository needs. The cost is a process per question, a few
//! milliseconds each; a review asks a handful per repository.

pub mod history;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why git could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program could not be started.
    #[error("cannot run git: {0}; install git (e.g. `apt-get install git`) and try again")]
    Missing(std::io::Error),
    /// git ran and failed.
    #[error("`git {args}` failed in {}: {stderr}", git_dir.display())]
    Failed {
        args: String,
        git_dir: PathBuf,
        stderr: String,
    },
}

/// One git command on the repository `git_dir`, with the settings of the module docs.
#[derive(Debug)]
pub struct Git {
    git_dir: PathBuf,
    config: Vec<String>,
    args: Vec<std::ffi::OsString>,
    input: Option<Vec<u8>>,
}

/// Settings every run gets: no hooks, no monitor, no maintenance.
const SETTINGS: [&str; 4] = [
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "maintenance.auto=false",
    "gc.auto=0",
];

impl Git {
    /// `git --git-dir=GIT_DIR ARGS...`.
    pub fn new<I, S>(git_dir: &Path, args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Git {
            git_dir: git_dir.to_path_buf(),
            config: Vec::new(),
            args: args
                .into_iter()
                .map(|a| a.as_ref().to_os_string())
                .collect(),
            input: None,
        }
    }

    /// Adds `-c KEY=VALUE`.
    pub fn config(mut self, setting: &str) -> Git {
        self.config.push(setting.to_string());
        self
    }

    /// Sends `input` on standard input.
    pub fn stdin(mut self, input: Vec<u8>) -> Git {
        self.input = Some(input);
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"GIT_") {
                command.env_remove(key);
            }
        }
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0");
        for setting in SETTINGS
            .iter()
            .copied()
            .chain(self.config.iter().map(String::as_str))
        {
            command.arg("-c").arg(setting);
        }
        command.arg("--git-dir").arg(&self.git_dir).args(&self.args);
        command
    }

    /// Runs it and returns its standard output; a failure carries git's standard error.
    pub fn output(mut self) -> Result<Vec<u8>, GitError> {
        let mut command = self.command();
        command
            .stdin(if self.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(GitError::Missing)?;
        // Written from a thread so a large answer cannot block git while it is still reading.
        let writer = match (self.input.take(), child.stdin.take()) {
            (Some(input), Some(mut stdin)) => {
                Some(std::thread::spawn(move || stdin.write_all(&input)))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(GitError::Missing)?;
        if let Some(writer) = writer {
            // git may stop reading early (and then fails, which `out` says): nothing to add.
            let _ = writer.join();
        }
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(GitError::Failed {
            args: self
                .args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            git_dir: self.git_dir,
            stderr: if stderr.is_empty() {
                format!("exit status {}", out.status)
            } else {
                stderr
            },
        })
    }

    /// Runs it for its success alone.
    pub fn run(self) -> Result<(), GitError> {
        self.output().map(drop)
    }
}

/// Whether `name` is a valid branch name for `refs/heads/NAME`.
pub fn valid_branch(name: &str) -> bool {
    !name.starts_with('-')
        && Command::new("git")
            .args(["check-ref-format", "--branch", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
