#!/usr/bin/env bash
# Runs the whole test suite: unit tests, policy and view tests, and the real-mount tests
# (tests/mount/), which need root and /dev/fuse. A debug build is fast enough: the
# 100,000-file walk takes about ten seconds on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -e /dev/fuse ]]; then
    echo "scripts/test.sh: /dev/fuse is missing; the mount tests need FUSE (modprobe fuse, or run the container with --device /dev/fuse)" >&2
    exit 1
fi

cargo test --no-fail-fast --tests "$@"
