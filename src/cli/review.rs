//! What the review commands (`diff`, `apply`, `discard`, and `run`'s summary) share: how the
//! overlay they are given is opened, and how its failures become exit codes.

use std::path::Path;

use crate::cli::error::{CliError, CliResult};
use crate::overlay::{Overlay, OverlayError};

/// Opens the OVERLAY a review command was given (locked for `apply` and `discard`). An OVERLAY
/// that is not there is a usage error (exit 2), as one that is not an overlay is: the
/// argument is wrong, not the machine.
pub fn open(dir: &Path, with_lock: bool) -> CliResult<Overlay> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::usage(format!(
            "OVERLAY {} does not exist: give the directory passed to `mount --overlay` (or kept \
             by `run --keep-overlay`); `scopefs status` names the overlays of live views",
            dir.display()
        ))),
        _ => Ok(Overlay::open_for_review(dir, with_lock)?),
    }
}

impl From<OverlayError> for CliError {
    /// A failure to read or write the overlay is a runtime failure (exit 1); anything else is
    /// an overlay that cannot be used as given (exit 2: nothing was changed).
    fn from(err: OverlayError) -> Self {
        match err {
            OverlayError::Io { .. } => CliError::runtime(err.to_string()),
            _ => CliError::usage(err.to_string()),
        }
    }
}
