#!/usr/bin/env bash
# Runs the whole test suite: unit tests, policy and view tests, and the real-mount tests
# (tests/mount/, tests/writes/, ...), which need root and /dev/fuse. A debug build is fast
# enough: the 100,000-file walk takes about ten seconds on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
usage: scripts/test.sh [CARGO-TEST-ARGUMENTS...]

Runs the whole test suite (`cargo test --no-fail-fast --tests`): unit tests, the policy, CLI
and view tests, and the real-mount tests, which need root and /dev/fuse. About 3 minutes on
two idle cores. Arguments go to `cargo test`, for example:

  scripts/test.sh --test mount           one test binary (tests/mount/)
  scripts/test.sh --test run -- keep     the tests of tests/run.rs whose name contains "keep"
  scripts/test.sh -- --list              list the tests instead of running them

`cargo test --help` lists cargo's own options.
USAGE
}

case ${1:-} in
-h | --help)
    usage
    exit 0
    ;;
esac

if [[ ! -e /dev/fuse ]]; then
    echo "scripts/test.sh: /dev/fuse is missing; the mount tests need FUSE (modprobe fuse, or run the container with --device /dev/fuse)" >&2
    exit 1
fi

# tests/scripts.rs runs scripts/install.sh and scripts/demo.sh, which build scopefs as a user
# does (`cargo build`); built here first, their build finds it up to date.
cargo build --locked --bin scopefs
cargo test --no-fail-fast --tests "$@"
