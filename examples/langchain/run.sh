#!/usr/bin/env bash
# Runs the LangChain example end to end: a virtualenv with the pinned requirements, then
# `scopefs run` with examples/policies/coding-agent.toml and an overlay, agent.py inside, and
# checks of what the agent's write left (in the overlay, not in the project).
#
#   examples/langchain/run.sh
#
# Environment: SCOPEFS (the binary, default `scopefs` on PATH); PYTHON (default python3, which
# needs the venv module: apt-get install python3-venv); LANGCHAIN_VENV (where the virtualenv
# is kept, default ~/.cache/scopefs/langchain-venv). The virtualenv is reused while
# requirements.txt is unchanged, so only the first run downloads anything.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
examples=$(dirname "$here")
scopefs=${SCOPEFS:-scopefs}
python=${PYTHON:-python3}
venv=${LANGCHAIN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/scopefs/langchain-venv}
project=$examples/sample-project

wanted=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
mkdir -p "$(dirname "$venv")"
# One run at a time builds or uses the shared virtualenv.
exec 9> "$venv.lock"
flock 9
if [[ $(cat "$venv/.requirements-sha256" 2>/dev/null) != "$wanted" ]]; then
    echo "# creating the virtualenv $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        -r "$here/requirements.txt"
    echo "$wanted" > "$venv/.requirements-sha256"
fi

work=$(mktemp -d -t scopefs-langchain.XXXXXX)
trap 'rm -rf "$work"' EXIT

digest() {
    (cd "$project" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
before=$(digest)

status=0
"$scopefs" run -c "$examples/policies/coding-agent.toml" --overlay "$work/overlay" \
    "$project" -- "$venv/bin/python" "$here/agent.py" --transcript "$work/transcript.json" \
    || status=$?

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
check "the agent's expectations hold (agent.py exited $status)" test "$status" -eq 0
check "the write landed in the overlay" \
    grep -qx "The greeting is built in src/lib.rs." "$work/overlay/upper/src/agent_notes.md"
check "scopefs diff lists exactly that write" \
    test "$("$scopefs" diff "$work/overlay")" = "A src/agent_notes.md"
check "the project is untouched" test "$(digest)" = "$before"
check "the transcript shows the .env read failing" \
    grep -q '"result": "Error: no such file or directory: .env"' "$work/transcript.json"
exit "$failed"
