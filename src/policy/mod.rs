//! The policy: what the view shows and what it lets an agent change.
//!
//! [`Policy`] is the TOML file of SPEC §2 as data (serde, unknown keys refused), with the
//! options of §1 merged on top by [`Policy::from_overrides`]. [`Policy::compile`] turns it
//! into a [`Matcher`], immutable and shared by every request thread, whose every verdict names
//! the [`Rule`] that decided it. Problems are collected into [`PolicyErrors`], all of them, each
//! with file:line:column. This module never touches SOURCE: symlink targets, hardlinks and file
//! types are the view's business; it only answers questions about relative paths.
//!
//! Files: `file.rs` (parsing, options), `schema.rs` (the checks of a file before parsing), `pattern.rs` (checks one pattern), `presets.rs`
//! with `presets.toml` (the built-in lists), `matcher.rs` (the compiled matcher) over `list.rs` (one compiled pattern list, git's
//! ancestor walk) and `transit.rs` (directories on the way to an allowed path), `errors.rs`,
//! `size.rs` (`"2 GiB"`).

use std::fmt;
use std::path::PathBuf;

mod errors;
mod file;
mod list;
mod matcher;
mod pattern;
pub mod presets;
mod schema;
mod size;
mod transit;

pub use errors::{Location, PolicyError, PolicyErrors};
pub use file::{Audit, AuditEvents, Limits, Overrides, Pattern, Policy};
pub use matcher::{Matcher, Writability};
pub use size::parse_size;

/// What a path is, as far as pattern matching cares (`dir/` patterns match directories only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    NonDir,
}

/// `[view] symlinks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymlinkMode {
    #[default]
    Contain,
    Hide,
    Keep,
}

/// `[view] hardlinks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HardlinkMode {
    /// A multi-link file is hidden when SOURCE also reaches it through a name the view does
    /// not show; links from outside SOURCE do not count (a local `git clone`, pnpm, Nix).
    #[default]
    Hide,
    /// Also hidden: every multi-link file whose other names were not all found in SOURCE.
    Strict,
    /// Never hidden for its links.
    Keep,
}

/// `[view] inodes`: which inode numbers the view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InodeMode {
    /// SOURCE's own numbers, so tools that cache stat data (git's index) see an unchanged tree
    /// as unchanged.
    #[default]
    Source,
    /// Numbers handed out in order, which say nothing of SOURCE's.
    Synthetic,
}

/// `[writes] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    #[default]
    Deny,
    Overlay,
    Direct,
}

/// The name a value of one of the policy's enums has in the policy file (`"deny"`), as serde
/// writes it.
pub fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// A built-in preset (`secrets`, `vcs`, `exec-config`).
    Preset(&'static str),
    /// A line of a policy file.
    File { path: PathBuf, line: usize },
    /// A command-line flag such as `--hide`.
    Flag(&'static str),
    /// The built-in default (`allow = ["**"]` when no allow list is given).
    Default,
}

/// One pattern of the policy, with where it came from; verdicts carry it so `explain` and the
/// audit log can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub origin: RuleOrigin,
    /// The pattern as written, e.g. `".env"` or `"!secrets/public.txt"`.
    pub pattern: String,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            RuleOrigin::Preset(name) => write!(f, "preset {name}: {:?}", self.pattern),
            RuleOrigin::File { path, line } => {
                write!(f, "{}:{line}: {:?}", path.display(), self.pattern)
            }
            RuleOrigin::Flag(flag) => write!(f, "{flag} {:?}", self.pattern),
            RuleOrigin::Default => write!(f, "default {:?}", self.pattern),
        }
    }
}

/// The policy's verdict on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The path or an ancestor matches `allow`, and nothing hides it.
    Visible(Rule),
    /// Not allowed itself, but a directory on the way to something `allow` may match: shown,
    /// listing only visible entries. Only ever returned for [`Kind::Dir`].
    Transit,
    /// The path or an ancestor matches `hide` or an enabled preset. Hide always wins.
    Hidden(Rule),
    /// Neither allowed nor on the way to anything allowed.
    NotAllowed,
}

impl Decision {
    pub fn is_visible(&self) -> bool {
        matches!(self, Decision::Visible(_) | Decision::Transit)
    }
}
