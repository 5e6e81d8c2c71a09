//! Thin adapter from fuser to the view.
