#!/usr/bin/env bash
# Mounts examples/sample-project with the default policy and shows what an agent sees.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=$PWD/target/release/scopefs
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
