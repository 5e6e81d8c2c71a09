#!/usr/bin/env bash
# Builds the scopefs binary and prints its path, wherever cargo put it (CARGO_TARGET_DIR,
# `build.target-dir` in a cargo config, or target/). Used by demo.sh and install.sh.
#
#   scripts/build.sh            a release build
#   scripts/build.sh --debug    a debug build (quicker to build, slower to run)
#
# cargo's own output goes to stderr; stdout is the one path.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=(--release)
case ${1:-} in
'') ;;
--debug) profile=() ;;
-h | --help)
    echo "usage: scripts/build.sh [--debug]"
    exit 0
    ;;
*)
    echo "scripts/build.sh: unknown argument '$1'; usage: scripts/build.sh [--debug]" >&2
    exit 2
    ;;
esac

# cargo reports each artifact as one JSON line; the binary's carries its "executable" path.
messages=$(cargo build "${profile[@]}" --locked --bin scopefs --message-format=json-render-diagnostics)
bin=$(sed -n 's/.*"reason":"compiler-artifact".*"executable":"\([^"]*\/scopefs\)".*/\1/p' <<<"$messages" | tail -n 1)
if [[ -z $bin || ! -x $bin ]]; then
    echo "scripts/build.sh: cargo built no scopefs binary that this script could find (got '${bin}')" >&2
    exit 1
fi
echo "$bin"
