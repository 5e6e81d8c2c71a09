//! The one error type of the view, and the errno each failure becomes. A refusal of the policy
//! carries the path it concerns and the rule that decided ([`Refusal`]), so that the one place
//! that answers the kernel with the failure also writes it to the audit log.

use std::io;

use crate::path::RelPath;

/// A failed file-system operation. Every variant maps to one errno in [`FsError::errno`],
/// through a `match` without a catch-all, so a new failure needs a decision.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The name does not exist, or exists but is hidden (the two are indistinguishable).
    #[error("no such entry")]
    NotFound,
    /// The view is read-only (`writes.mode = "deny"`).
    #[error("read-only view")]
    ReadOnly,
    /// The operation is refused by the policy or on this kind of file.
    #[error("access refused")]
    Access,
    /// A malformed name or argument.
    #[error("invalid argument")]
    Invalid,
    /// A name longer than 255 bytes.
    #[error("name too long")]
    NameTooLong,
    /// Not a directory where one was needed.
    #[error("not a directory")]
    NotDir,
    /// No such extended attribute (or one outside `user.*`).
    #[error("no such attribute")]
    NoData,
    /// The caller's buffer is too small.
    #[error("buffer too small")]
    Range,
    /// The name exists already.
    #[error("already exists")]
    Exists,
    /// A directory that still has visible entries.
    #[error("directory not empty")]
    NotEmpty,
    /// A directory where a non-directory was needed.
    #[error("is a directory")]
    IsDir,
    /// Renaming a directory that exists in SOURCE: tools fall back to copying.
    #[error("cross-device rename")]
    CrossDevice,
    /// An operation no one may do here (device nodes, changing owners).
    #[error("operation not permitted")]
    NotPermitted,
    /// Not supported here (extended attributes outside `user.*`).
    #[error("not supported")]
    NotSupported,
    /// Past `overlay_bytes` or `overlay_files`.
    #[error("overlay limit reached")]
    NoSpace,
    /// The kernel need not open files and directories of this view: told so once, it stops
    /// asking.
    #[error("opens are not needed")]
    NoOpen,
    /// The node's name now leads to another file of SOURCE: the kernel is to look the name up
    /// again (and gets a new node).
    #[error("stale node")]
    Stale,
    /// A file handle the view did not hand out.
    #[error("bad file handle")]
    BadHandle,
    /// Any other failure of a syscall on SOURCE, with its errno.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// One of the failures above, decided by a rule of the policy: the path and the rule go to
    /// the audit log.
    #[error("{} ({})", .0.error, .0.rule)]
    Refused(Box<Refusal>),
}

/// What a refusal concerns and why.
#[derive(Debug)]
pub struct Refusal {
    /// The failure the request gets.
    pub error: FsError,
    /// The path refused.
    pub path: RelPath,
    /// The rule that decided, as the audit log names it.
    pub rule: String,
}

impl FsError {
    /// The errno the kernel is given.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::ReadOnly => libc::EROFS,
            FsError::Access => libc::EACCES,
            FsError::Invalid => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NotDir => libc::ENOTDIR,
            FsError::NoData => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::IsDir => libc::EISDIR,
            FsError::CrossDevice => libc::EXDEV,
            FsError::NotPermitted => libc::EPERM,
            FsError::NoSpace => libc::ENOSPC,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::NoOpen => libc::ENOSYS,
            FsError::BadHandle => libc::EBADF,
            FsError::Stale => libc::ESTALE,
            FsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::Refused(refusal) => refusal.error.errno(),
        }
    }

    /// `error`, refused at `path` by `rule`.
    pub fn refused(error: FsError, path: &RelPath, rule: impl std::fmt::Display) -> FsError {
        FsError::Refused(Box::new(Refusal {
            error,
            path: path.clone(),
            rule: rule.to_string(),
        }))
    }

    /// The refusal behind the failure, if the policy decided it.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            FsError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// Whether the failure is [`FsError::NotFound`], refused or not.
    pub fn is_not_found(&self) -> bool {
        match self {
            FsError::NotFound => true,
            FsError::Refused(refusal) => refusal.error.is_not_found(),
            _ => false,
        }
    }

    /// Maps the failure to resolve a path in SOURCE: anything that means "not reachable without
    /// following a symlink or leaving SOURCE" is simply "not there".
    pub fn resolving(err: io::Error) -> FsError {
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ELOOP | libc::EXDEV | libc::ENOTDIR | libc::ENAMETOOLONG) => {
                FsError::NotFound
            }
            _ => FsError::Io(err),
        }
    }
}

/// Results of view operations.
pub type FsResult<T> = Result<T, FsError>;
