//! What the review commands (`diff`, `apply`, `discard`, and `run`'s summary) share: how the
//! overlay's failures become exit codes.

use crate::cli::error::CliError;
use crate::overlay::OverlayError;

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
