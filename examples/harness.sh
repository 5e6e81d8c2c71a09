#!/usr/bin/env bash
# A test harness in shell: scope a project, run a command in the view, check the result,
# and always clean up. The pattern to copy is the trap: whatever happens (a failed check,
# Ctrl-C, a SIGTERM from the CI runner), the command is stopped, the view unmounted and the
# temporary directory removed.
#
#   examples/harness.sh                     # the stand-in agent below, on examples/sample-project
#   examples/harness.sh make test           # your command, run from the view's root
#
# Environment: SCOPEFS (the binary, default `scopefs` on PATH), HARNESS_PROJECT (default
# examples/sample-project), HARNESS_POLICY (default examples/policies/coding-agent.toml),
# HARNESS_EXPECT (the `scopefs diff` lines the run must leave, one per line; default: those of
# the stand-in agent, and not checked for a command you give). TMPDIR is honoured.
#
# Output is TAP-like: `ok - ...` / `not ok - ...`. Exit status: 1 if a check failed, else 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
scopefs=${SCOPEFS:-scopefs}
project=${HARNESS_PROJECT:-$here/sample-project}
policy=${HARNESS_POLICY:-$here/policies/coding-agent.toml}

if [[ $# -eq 0 ]]; then
    # A stand-in agent: reads code, tries a secret, writes a new source file.
    set -- sh -c 'cat src/lib.rs >/dev/null && ! cat .env 2>/dev/null && printf "pub fn extra() {}\n" > src/extra.rs'
    expect=${HARNESS_EXPECT-A src/extra.rs}
else
    expect=${HARNESS_EXPECT-}
fi

work=$(mktemp -d -t scopefs-harness.XXXXXX)
view=$work/view
overlay=$work/overlay
mkdir "$view"
command_pid=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $command_pid ]] && kill -0 "$command_pid" 2>/dev/null; then
        kill -TERM "$command_pid"
        wait "$command_pid" || :
    fi
    if mountpoint -q "$view"; then
        "$scopefs" umount "$view" || status=1
    fi
    # Never rm -rf a directory a view may still be mounted under: remove what is known.
    rmdir "$view" && rm -rf "$overlay" && rmdir "$work" || status=1
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed=0
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok - $what"
    else
        echo "not ok - $what"
        failed=1
    fi
}

digest() {
    (cd "$project" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
before=$(digest)

"$scopefs" mount -c "$policy" --overlay "$overlay" "$project" "$view"

check "the view hides .env" test ! -e "$view/.env"
check "the view hides private keys" test ! -e "$view/deploy/id_ed25519"
check "the view shows the code" test -f "$view/src/lib.rs"
check "README.md is not writable" eval "! (echo x >> '$view/README.md') 2>/dev/null"

# The command runs in the background so that a signal reaches the trap at once, not after
# the command has finished.
(cd "$view" && exec "$@") &
command_pid=$!
status=0
wait "$command_pid" || status=$?
command_pid=
check "the command succeeds (status $status)" test "$status" -eq 0

"$scopefs" umount "$view"
changes=$("$scopefs" diff "$overlay")
echo "# changes in the overlay:"
printf '%s\n' "${changes:-(none)}" | sed 's/^/#   /'
if [[ -n $expect ]]; then
    check "the overlay holds the expected changes" test "$changes" = "$expect"
fi
check "the project is untouched" test "$(digest)" = "$before"

exit "$failed"
