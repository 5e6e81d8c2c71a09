#!/usr/bin/env bash
# Builds scopefs (a debug build, quick to make), mounts examples/sample-project with the
# default policy and shows what an agent sees. Needs root (or a normal user with fusermount3
# and /dev/fuse open to users). The binary is taken from wherever cargo puts it
# (CARGO_TARGET_DIR included): scripts/build.sh asks cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in
'') ;;
-h | --help)
  echo "usage: scripts/demo.sh   (builds, mounts examples/sample-project, shows the view, unmounts)"
  exit 0
  ;;
*)
  echo "scripts/demo.sh: takes no arguments; usage: scripts/demo.sh" >&2
  exit 2
  ;;
esac

bin=$(scripts/build.sh --debug)
echo "== built $bin"
src=$PWD/examples/sample-project
mnt=$(mktemp -d /tmp/scopefs-demo.XXXXXX)

cleanup() {
  if mountpoint -q "$mnt"; then
    "$bin" umount "$mnt"
  fi
  rmdir "$mnt"
}
trap cleanup EXIT

echo "== SOURCE: $src"
(cd "$src" && find . -mindepth 1 | sort)

"$bin" mount "$src" "$mnt"
echo
echo "== the view at $mnt (default policy: everything but the secrets preset, read-only)"
(cd "$mnt" && find . -mindepth 1 | sort)

echo
echo "== an agent tries to read secrets"
for f in .env config/.env.production deploy/id_ed25519 .ssh/config host-name config/env-link; do
  if out=$(cat "$mnt/$f" 2>&1); then
    echo "UNEXPECTED: $f was readable: $out" >&2
    exit 1
  fi
  echo "cat $f: ${out##*: }"
done

echo
echo "== an agent tries to write"
if out=$(touch "$mnt/src/new.rs" 2>&1); then
  echo "UNEXPECTED: the write succeeded" >&2
  exit 1
fi
echo "touch src/new.rs: ${out##*: }"

echo
echo "== why (scopefs explain)"
"$bin" explain "$src" .env config/.env.production deploy/id_ed25519 host-name config/env-link docs/latest.md src/main.rs

"$bin" umount "$mnt"
echo
echo "unmounted $mnt"
