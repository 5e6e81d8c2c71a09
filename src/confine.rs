//! Self-confinement of the daemon's request threads with Landlock (THREATS R10).
//!
//! Once mounted, the threads that serve requests may read SOURCE (and, in direct mode, change
//! it), change the overlay, append to the audit log and read `/proc` (for `comm` in the audit
//! log and to reopen descriptors) — nothing else. A logic bug that tried to open a path outside
//! those trees then gets `EACCES` instead of reaching it. Landlock restricts the calling thread
//! and the threads it starts afterwards, so the caller confines the thread that will run the
//! session, while the threads started before it (signals, unmounting, the audit writer) and
//! the command `run` starts keep their rights. On a kernel without Landlock the daemon warns
//! and carries on.

use std::os::fd::BorrowedFd;

use landlock::{
    ABI, Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus,
};

/// The newest Landlock ABI this code knows; older kernels get what they support.
const ABI_KNOWN: ABI = ABI::V6;

/// What the confined threads may reach.
#[derive(Debug, Default)]
pub struct Confinement<'a> {
    /// Trees to read (SOURCE in deny and overlay mode).
    pub read: Vec<BorrowedFd<'a>>,
    /// Trees to read and change (the overlay; SOURCE in direct mode).
    pub write: Vec<BorrowedFd<'a>>,
    /// Single files to append to (the audit log).
    pub append: Vec<BorrowedFd<'a>>,
}

/// How much of the confinement the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    Partly,
    Not,
}

/// Rights to change a tree: everything but devices, execution and device ioctls.
fn write_rights() -> BitFlags<AccessFs> {
    AccessFs::from_all(ABI_KNOWN)
        & !(AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::Execute | AccessFs::IoctlDev)
}

fn read_rights() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Confines the calling thread (and the threads it starts from now on).
pub fn restrict_thread(rules: &Confinement<'_>) -> Result<Enforced, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot confine the daemon with Landlock: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_KNOWN))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?;
    for fd in &rules.read {
        ruleset = ruleset
            .add_rule(PathBeneath::new(*fd, read_rights()))
            .map_err(|e| fail(&e))?;
    }
    for fd in &rules.write {
        ruleset = ruleset
            .add_rule(PathBeneath::new(*fd, write_rights()))
            .map_err(|e| fail(&e))?;
    }
    for fd in &rules.append {
        ruleset = ruleset
            .add_rule(PathBeneath::new(*fd, AccessFs::WriteFile))
            .map_err(|e| fail(&e))?;
    }
    if let Ok(proc_fd) = PathFd::new("/proc") {
        ruleset = ruleset
            .add_rule(PathBeneath::new(proc_fd, AccessFs::ReadFile))
            .map_err(|e| fail(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| fail(&e))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partly,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

/// Confines the calling thread, warning on stderr when the kernel cannot (fully) do it.
pub fn restrict_thread_or_warn(rules: &Confinement<'_>) {
    match restrict_thread(rules) {
        Ok(Enforced::Fully) => tracing::debug!("confined with Landlock"),
        Ok(Enforced::Partly) => tracing::warn!(
            "this kernel enforces only part of the Landlock confinement of the daemon"
        ),
        Ok(Enforced::Not) => {
            eprintln!("scopefs: warning: this kernel has no Landlock; the daemon runs unconfined")
        }
        Err(e) => eprintln!("scopefs: warning: {e}; the daemon runs unconfined"),
    }
}
