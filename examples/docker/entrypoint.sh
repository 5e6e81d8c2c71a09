#!/usr/bin/env bash
# Container entrypoint: serve a scoped view of the workspace for as long as the agent runs,
# then unmount. One view per container (per pod). The agent command is this script's
# arguments (the image's CMD, or what `docker run IMAGE ...` passes).
#
# Environment:
#   SCOPEFS_SOURCE      the real directory (default /workspace)
#   SCOPEFS_VIEW        where the view is mounted (default /view); the agent starts there
#   SCOPEFS_POLICY      a policy file (optional; default: secrets hidden, read-only)
#   SCOPEFS_OVERLAY     an overlay directory for the agent's changes (optional; put it on a
#                       volume to review them after the container ends). Without it, a
#                       policy in overlay mode gets a temporary overlay, summarised on
#                       stderr and deleted at exit.
#   SCOPEFS_IN_PLACE    1: the agent starts at SCOPEFS_SOURCE itself, which the view
#                       covers in the agent's namespace (SCOPEFS_VIEW is then unused), so
#                       it keeps the usual paths
#   SCOPEFS_AGENT_USER  run the agent as this user (name or uid) with its groups
#                       (`scopefs run --user`). Without it the agent is root in a user
#                       namespace of its own: it cannot undo the view, but root's files in
#                       the container stay writable to it. Set it whenever the agent is
#                       not trusted.
#   SCOPEFS_BIN         the scopefs binary (default: scopefs on PATH)
#
# `scopefs run` does the work: it mounts, starts the agent contained (its own user, mount
# and PID namespaces, the view's mounts locked, the real workspace and the overlay out of
# reach, a minimal /dev), passes SIGTERM and SIGINT on to it (so `docker stop` reaches the
# agent), and when the agent ends, ends whatever it left running, unmounts and exits with
# its status. It stays the parent of the agent, so this script execs it.
set -euo pipefail

source_dir=${SCOPEFS_SOURCE:-/workspace}
view_dir=${SCOPEFS_VIEW:-/view}
scopefs=${SCOPEFS_BIN:-scopefs}

if [[ $# -eq 0 ]]; then
    echo "entrypoint: no agent command given (pass it as the container's command)" >&2
    exit 2
fi
if [[ ! -d $source_dir ]]; then
    echo "entrypoint: SCOPEFS_SOURCE $source_dir is not a directory (mount the project there: -v \"\$PWD:$source_dir\")" >&2
    exit 2
fi
if [[ ! -e /dev/fuse ]]; then
    echo "entrypoint: /dev/fuse is missing: run the container with --device /dev/fuse --cap-add SYS_ADMIN" >&2
    exit 2
fi

args=()
if [[ -n ${SCOPEFS_POLICY:-} ]]; then
    args+=(--config "$SCOPEFS_POLICY")
fi
if [[ -n ${SCOPEFS_OVERLAY:-} ]]; then
    args+=(--overlay "$SCOPEFS_OVERLAY")
fi
if [[ ${SCOPEFS_IN_PLACE:-0} == 1 ]]; then
    args+=(--in-place)
else
    mkdir -p "$view_dir"
    args+=(--mountpoint "$view_dir")
fi
if [[ -n ${SCOPEFS_AGENT_USER:-} ]]; then
    # The kernel then checks the agent's permissions against the modes the view shows.
    args+=(--user "$SCOPEFS_AGENT_USER")
fi

# From inside SOURCE, `run` starts the agent at the view's root.
cd "$source_dir"
exec "$scopefs" run "${args[@]}" "$source_dir" -- "$@"
