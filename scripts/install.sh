#!/usr/bin/env bash
# Builds scopefs and installs it under PREFIX (default /usr/local):
#
#   PREFIX/bin/scopefs
#   PREFIX/share/man/man1/scopefs.1, scopefs-SUBCOMMAND.1 (one per subcommand)
#   PREFIX/share/man/man5/*.5 (when the binary writes any)
#   PREFIX/share/bash-completion/completions/scopefs
#   PREFIX/share/zsh/site-functions/_scopefs
#   PREFIX/share/fish/vendor_completions.d/scopefs.fish
#
# The manual pages and completions come from the binary itself (`scopefs man --out-dir`,
# `scopefs completions SHELL`), so they always match it.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
usage: scripts/install.sh [--debug] [PREFIX]

Builds scopefs (a release build; --debug for a debug one) and installs the binary, its manual
pages and its shell completions (bash, zsh, fish) under PREFIX, /usr/local by default.
Writing to /usr/local needs root; `scripts/install.sh ~/.local` installs for yourself.
USAGE
}

build=()
prefix=
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --debug) build=(--debug) ;;
    -*)
        echo "scripts/install.sh: unknown option '$1'" >&2
        usage >&2
        exit 2
        ;;
    *)
        if [[ -n $prefix ]]; then
            echo "scripts/install.sh: one PREFIX only (got '$prefix' and '$1')" >&2
            exit 2
        fi
        prefix=$1
        ;;
    esac
    shift
done
prefix=${prefix:-/usr/local}

bin=$(scripts/build.sh "${build[@]}")

# The pages are written to a scratch directory first, then sorted by section.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$bin" man --out-dir "$scratch"

install -d "$prefix/bin" "$prefix/share/man/man1" \
    "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
    "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$prefix/bin/scopefs"
for page in "$scratch"/*.[0-9]; do
    section=${page##*.}
    install -d "$prefix/share/man/man$section"
    install -m 0644 "$page" "$prefix/share/man/man$section/"
done
"$bin" completions bash >"$scratch/scopefs.bash"
"$bin" completions zsh >"$scratch/_scopefs"
"$bin" completions fish >"$scratch/scopefs.fish"
install -m 0644 "$scratch/scopefs.bash" "$prefix/share/bash-completion/completions/scopefs"
install -m 0644 "$scratch/_scopefs" "$prefix/share/zsh/site-functions/_scopefs"
install -m 0644 "$scratch/scopefs.fish" "$prefix/share/fish/vendor_completions.d/scopefs.fish"

echo "installed $prefix/bin/scopefs, its manual pages under $prefix/share/man and completions for bash, zsh and fish"
case ":$PATH:" in
*":$prefix/bin:"*) ;;
*) echo "note: $prefix/bin is not on PATH; add it, or run $prefix/bin/scopefs" ;;
esac
