//! The file-system logic.
