//! Every raw syscall and unsafe block.
