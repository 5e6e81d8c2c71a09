#!/usr/bin/env bash
# How fast is scopefs? Times the same workloads on the directory itself (native), on scopefs
# (default options, and each other --cache mode `scopefs mount --help` offers), on bindfs and on
# fuse-overlayfs, each on a fresh mount, and prints one table with the ratios.
#
#   scripts/bench.sh              full run: the linux-source-6.1 tree (~78k files) + 1 GiB file
#   scripts/bench.sh --quick      a small generated tree (3,000 files, 64 MiB file): seconds
#   scripts/bench.sh --quick --files 10000 --workloads gitstatus,gitcommit
#                                 git on a generated 10,000-file repository
#   scripts/bench.sh --million    1,000,000 files: find | wc -l through scopefs, peak RSS and fds
#
# Needs root, /dev/fuse and a Rust toolchain. Installs what is missing from Debian
# (linux-source-6.1, bindfs, fuse-overlayfs, ripgrep, git, fuse3, python3, xz-utils), and
# prepares everything under the work directory once (cached across runs).
# See `scripts/bench.sh --help` for the options.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
HELPER=$REPO/scripts/bench_helper.py

# scopefs variants, "NAME|extra mount options". One per --cache value is added when
# `scopefs mount --help` offers a --cache option; add others here (e.g. "scopefs-t1|--threads 1").
SCOPEFS_VARIANTS=("scopefs|")

WORKDIR=${BENCH_WORKDIR:-/var/tmp/scopefs-bench}
REPEATS=
COLD=
MODE=full
SCOPEFS=
OUTDIR=$REPO/target/bench
INSTALL=1
PAUSE_RECLAIM=1
PAUSED_KDAMONDS=()
SCRATCH_FS=1
WORKLOADS="walk,search,gitstatus,gitminimal,gitcommit,seqread,randread,untar"
# Variants measured only when --systems names them (NAME|extra mount options; the policy file
# is written at start).
EXTRA_VARIANTS=("scopefs-synthetic|-c WORKDIR/synthetic.toml" "scopefs-t8|--threads 8" "scopefs-t16|--threads 16")
QUICK_FILES=3000
SYSTEMS=
SEARCH_STRING=EXPORT_SYMBOL
ORIG_ARGS="$*"

usage() {
  cat <<EOF
usage: scripts/bench.sh [--quick | --million] [options]

  --quick              small generated tree (3,000 files, 64 MiB file, 2,000-file tarball), 2 repeats
  --files N            with --quick: generate N files instead (50 per directory)
  --million            the 1,000,000-file resource measurement instead of the workloads
  --repeats N          repeated passes after the first (default 5; --quick 2; --million 2)
  --cold N             cold first passes, each on a fresh mount after dropping caches; the
                       table shows their median (default 3; --quick 1). Cold times move by
                       tens of percent between runs on a VM, so one is not enough to compare
  --workdir DIR        where trees, mounts and scratch space live (default /var/tmp/scopefs-bench,
                       or \$BENCH_WORKDIR); trees are built once and reused
  --scopefs BIN        scopefs binary to measure (default: cargo build --release in this repo)
  --workloads LIST     comma-separated subset of: $WORKLOADS
  --systems LIST       comma-separated subset of: native, scopefs variants, bindfs, fuse-overlayfs;
                       also scopefs-synthetic (inodes = "synthetic") and scopefs-t8, scopefs-t16
                       (--threads 8, 16), measured only when named
  --out DIR            where results.md / results.tsv go (default target/bench)
  --no-install         do not apt-get install missing packages
  --keep-reclaim       leave running DAMON reclaimers alone; by default each kdamond that is
                       "on" is switched off for the run and back on at its end, since one that
                       pages out idle memory empties the page cache under the warm passes
  --scratch-in-workdir untar and rm in the work directory's own file system; by default each
                       pass gets a fresh ext4 image (loop-mounted), so that one system's
                       deletions cannot slow the next one's creations (ext4 without a journal
                       passes over inodes freed in the last 1-5 minutes when it allocates)
  -h, --help           this text

Workloads (each on a fresh mount; caches dropped before each first pass):
  walk       find MNT -type f -printf '%s\n'
  search     rg -c $SEARCH_STRING MNT
  gitstatus  GIT_OPTIONAL_LOCKS=0 git -C MNT status   (no system writes the index)
  gitminimal the same with -c core.checkStat=minimal (inode numbers, owners and sub-second
             times not compared, as a user of a view can configure)
  gitcommit  git add -A && git commit --allow-empty in the mount (writable mounts only:
             scopefs --overlay, fuse-overlayfs; native is not written to)
  seqread    cat MNT/big.bin
  randread   random 4 KiB preads of MNT/big.bin (20,000; --quick 2,000)
  untar      tar -xf of 10,000 small files into the mount, then rm -rf of them
             (writable mounts only: native, scopefs --overlay, fuse-overlayfs)
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --repeats|--cold|--workdir|--scopefs|--workloads|--systems|--out|--files)
      [[ $# -ge 2 ]] || { echo "scripts/bench.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
  esac
  case $1 in
    --quick) MODE=quick ;;
    --files) QUICK_FILES=$2; shift ;;
    --million) MODE=million ;;
    --repeats) REPEATS=$2; shift ;;
    --cold) COLD=$2; shift ;;
    --workdir) WORKDIR=$2; shift ;;
    --scopefs) SCOPEFS=$2; shift ;;
    --workloads) WORKLOADS=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --keep-reclaim) PAUSE_RECLAIM=0 ;;
    --scratch-in-workdir) SCRATCH_FS=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "scripts/bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

case $MODE in
  full) : "${REPEATS:=5}" "${COLD:=3}"; UNTAR_FILES=10000; RANDREADS=20000; BIG_MIB=1024 ;;
  quick) : "${REPEATS:=2}" "${COLD:=1}"; UNTAR_FILES=2000; RANDREADS=2000; BIG_MIB=64 ;;
  million) : "${REPEATS:=2}" "${COLD:=1}" ;;
esac
[[ $QUICK_FILES =~ ^[1-9][0-9]*$ ]] || { echo "scripts/bench.sh: --files wants a number" >&2; exit 2; }
[[ $REPEATS =~ ^[0-9]+$ ]] || { echo "scripts/bench.sh: --repeats wants a number" >&2; exit 2; }
[[ $COLD =~ ^[1-9][0-9]*$ ]] || { echo "scripts/bench.sh: --cold wants a number of at least 1" >&2; exit 2; }
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'scripts/bench.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (FUSE mounts, dropping the page cache)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (modprobe fuse, or run the container with --device /dev/fuse)"

# ---------------------------------------------------------------------------------------
# Packages

install_packages() {
  local want=(bindfs fuse-overlayfs ripgrep git fuse3 python3 xz-utils tar findutils)
  [[ $MODE == full ]] && want+=(linux-source-6.1)
  local missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  [[ $INSTALL -eq 1 ]] || die "missing packages: ${missing[*]} (drop --no-install, or apt-get install them)"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

# ---------------------------------------------------------------------------------------
# scopefs binary: built from this repo, copied so a rebuild during the run changes nothing

prepare_scopefs() {
  mkdir -p "$WORKDIR/bin"
  if [[ -z $SCOPEFS ]]; then
    say "building scopefs (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet)
    SCOPEFS=$REPO/target/release/scopefs
    SCOPEFS_REV="commit $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  else
    SCOPEFS_REV="$SCOPEFS ($("$SCOPEFS" --version 2>/dev/null || echo 'no --version'))"
  fi
  [[ -x $SCOPEFS ]] || die "scopefs binary not found: $SCOPEFS"
  cp "$SCOPEFS" "$WORKDIR/bin/scopefs.tmp"
  mv "$WORKDIR/bin/scopefs.tmp" "$WORKDIR/bin/scopefs"
  SCOPEFS=$WORKDIR/bin/scopefs

  # One variant per --cache mode but the default (the plain "scopefs" run), if the binary has
  # the option: values from clap's "[possible values: a, b]" or its long-help list ("- a: ...").
  local help modes
  help=$("$SCOPEFS" mount --help)
  modes=$(awk '
    /^ *(-[a-zA-Z], )?--cache[ =<]/ { on = 1 }
    on && /^ *--?[a-zA-Z]/ && !/--cache/ { on = 0 }
    on {
      buf = buf " " $0
      if (match($0, /^ *- [A-Za-z0-9_-]+:/)) {
        v = substr($0, RSTART, RLENGTH); sub(/^ *- /, "", v); sub(/:$/, "", v); listed = listed " " v
      }
    }
    END {
      gsub(/[ \t]+/, " ", buf)
      if (listed == "" && match(buf, /possible values: [^]]*/)) {
        listed = substr(buf, RSTART + 17, RLENGTH - 17); gsub(/,/, " ", listed)
      }
      if (match(buf, /\[default: [^]]*/)) default = substr(buf, RSTART + 10, RLENGTH - 10)
      n = split(listed, all, " ")
      for (i = 1; i <= n; i++) if (all[i] != default) out = out " " all[i]
      print out
    }' <<< "$help")
  if [[ -z $modes ]] && grep -q -- '--cache' <<< "$help"; then
    echo "note: scopefs has a --cache option but no list of values was found; add variants to SCOPEFS_VARIANTS" >&2
  fi
  local m
  for m in $modes; do SCOPEFS_VARIANTS+=("scopefs-cache-$m|--cache $m"); done
}

# ---------------------------------------------------------------------------------------
# Trees (cached: each step leaves a marker next to src/)

make_git_repo() { # DIR
  local d=$1
  rm -rf "$d/.git"
  git -C "$d" init -q
  git -C "$d" config gc.auto 0
  printf 'big.bin\n' >> "$d/.git/info/exclude"
  git -C "$d" add -A -- . ':!big.bin'
  [[ -n $(git -C "$d" ls-files | head -1) ]] || die "git add found nothing to add in $d (a .gitignore ignores everything?)"
  git -C "$d" -c user.name=bench -c user.email=bench@localhost commit -q -m tree
  git -C "$d" repack -adq --window=0
  git -C "$d" update-index -q --refresh
}

make_big() { # FILE MIB
  head -c "$(($2 * 1024 * 1024))" /dev/urandom > "$1.tmp"
  mv "$1.tmp" "$1"
}

make_tarball() { # TARBALL COUNT
  local tmp
  tmp=$(mktemp -d "$WORKDIR/untar-gen.XXXXXX")
  python3 "$HELPER" gen-untar "$tmp" --count "$2"
  tar -C "$tmp" -cf "$1.tmp" untar
  mv "$1.tmp" "$1"
  rm -rf "$tmp"
}

prepare_tree() {
  local base
  if [[ $MODE == full ]]; then
    base=$WORKDIR/linux
    local tarxz
    tarxz=$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || ls /usr/src/linux-source-*.tar.xz | head -1)
    [[ -f $tarxz ]] || die "no linux-source tarball under /usr/src (apt-get install linux-source-6.1)"
    mkdir -p "$base"
    if [[ ! -e $base/.unpacked ]]; then
      say "unpacking $tarxz into $base/src (once)"
      rm -rf "$base/src" "$base/unpack"
      mkdir -p "$base/unpack"
      tar -C "$base/unpack" -xJf "$tarxz"
      mv "$base/unpack/$(ls "$base/unpack" | head -1)" "$base/src"
      rmdir "$base/unpack"
      # Debian's packaging appends "/*" to the top-level .gitignore (its repository holds only
      # debian/); drop that so git and ripgrep see the tree as upstream's checkout.
      sed -i '/^# Debian packaging/,/^!\/debian\/$/d' "$base/src/.gitignore"
      touch "$base/.unpacked"
    fi
  else
    base=$WORKDIR/quick
    ((QUICK_FILES == 3000)) || base=$WORKDIR/quick-$QUICK_FILES
    mkdir -p "$base"
    if [[ ! -e $base/.unpacked ]]; then
      say "generating a tree of $QUICK_FILES files in $base/src (once)"
      rm -rf "$base/src"
      python3 "$HELPER" gen-tree "$base/src" --dirs $(((QUICK_FILES + 49) / 50)) --files 50
      find "$base/src" -exec touch -h -d @1577836800 {} +
      touch "$base/.unpacked"
    fi
  fi
  SRC=$base/src
  if [[ ! -e $base/.git-done ]]; then
    say "making $SRC a git repository (once)"
    make_git_repo "$SRC"
    touch "$base/.git-done"
  fi
  if [[ ! -e $base/.big-done ]]; then
    say "writing $BIG_MIB MiB of random data to $SRC/big.bin (once)"
    make_big "$SRC/big.bin" "$BIG_MIB"
    touch "$base/.big-done"
  fi
  TARBALL=$WORKDIR/untar-$UNTAR_FILES.tar
  if [[ ! -f $TARBALL ]]; then
    say "making a tarball of $UNTAR_FILES small files (once)"
    make_tarball "$TARBALL" "$UNTAR_FILES"
  fi
  NFILES=$(find "$SRC" -type f | wc -l)
}

# ---------------------------------------------------------------------------------------
# Mounts

MNTROOT=$WORKDIR/mnt
SCRATCH=$WORKDIR/scratch
SCRATCH_IMG=$WORKDIR/scratch.img
SCRATCH_MIB=4096
LOGDIR=$WORKDIR/logs
MNT=
DAEMON_PID=
PEER_PID=
SAMPLER_PID=

mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

scopefs_pid() { # MNT -> pid from the mount source "scopefs:PID"
  awk -v m="$1" '$5 == m { for (i = 6; i <= NF; i++) if ($i == "-") { s = $(i + 2); sub(/^scopefs:/, "", s); print s; exit } }' /proc/self/mountinfo
}

wait_mounted() { # MNT PID
  local i
  for ((i = 0; i < 200; i++)); do
    mounted "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_sampler() { # PID NAME: returns once the first sample is written
  rm -f "$LOGDIR/sample.$2"
  python3 "$HELPER" sample "$1" "$LOGDIR/sample.$2" &
  SAMPLER_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $LOGDIR/sample.$2 ]] && return
    sleep 0.05
  done
  die "the resource sampler did not start"
}

stop_sampler() { # WORKLOAD SYSTEM: records peak fds and VmHWM (KiB) in $RES_TSV
  if [[ -n $SAMPLER_PID ]]; then
    local hwm fds shwm
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null || true)
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    read -r fds shwm < "$LOGDIR/sample.$2" || true
    ((${shwm:-0} > ${hwm:-0})) && hwm=$shwm
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "${fds:-0}" "${hwm:-0}" >> "$RES_TSV"
  fi
}

# Where the writing workloads write: a fresh ext4 file system per pass (see --scratch-in-workdir).
fresh_scratch() {
  drop_scratch
  rm -rf "$SCRATCH"
  mkdir -p "$SCRATCH"
  ((SCRATCH_FS)) || return 0
  truncate -s "${SCRATCH_MIB}M" "$SCRATCH_IMG"
  mkfs.ext4 -q -F "$SCRATCH_IMG" > /dev/null || die "mkfs.ext4 $SCRATCH_IMG failed (--scratch-in-workdir writes to $WORKDIR instead)"
  mount -o loop "$SCRATCH_IMG" "$SCRATCH" \
    || die "cannot loop-mount $SCRATCH_IMG on $SCRATCH (--scratch-in-workdir writes to $WORKDIR instead)"
}

drop_scratch() {
  if mounted "$SCRATCH"; then
    umount "$SCRATCH" || die "cannot unmount the scratch file system $SCRATCH"
  fi
  rm -f "$SCRATCH_IMG"
}

# mount_system SYSTEM WORKLOAD: sets MNT (and DAEMON_PID for daemons)
mount_system() {
  local sys=$1 w=$2 writes=0
  [[ $w == untar || $w == gitcommit ]] && writes=1
  ((writes)) && fresh_scratch
  DAEMON_PID=
  PEER_PID=
  case $sys in
    native)
      if ((writes)); then
        MNT=$SCRATCH/native
        rm -rf "$MNT"; mkdir -p "$MNT"
      else
        MNT=$SRC
      fi
      return ;;
    bindfs)
      MNT=$MNTROOT/$sys; mkdir -p "$MNT"
      bindfs -f "$SRC" "$MNT" 2>>"$LOGDIR/bindfs.log" &
      PEER_PID=$! ;;
    fuse-overlayfs)
      MNT=$MNTROOT/$sys; mkdir -p "$MNT"
      rm -rf "$SCRATCH/fo"; mkdir -p "$SCRATCH/fo/upper" "$SCRATCH/fo/work"
      fuse-overlayfs -f -o "lowerdir=$SRC,upperdir=$SCRATCH/fo/upper,workdir=$SCRATCH/fo/work" "$MNT" \
        2>>"$LOGDIR/fuse-overlayfs.log" &
      PEER_PID=$! ;;
    scopefs*)
      local v opts=() found=0
      for v in "${SCOPEFS_VARIANTS[@]}" "${EXTRA_VARIANTS[@]}"; do
        if [[ ${v%%|*} == "$sys" ]]; then
          read -r -a opts <<< "${v#*|}"
          opts=("${opts[@]/#WORKDIR/$WORKDIR}")
          found=1
        fi
      done
      ((found)) || die "unknown system $sys"
      if ((writes)); then
        rm -rf "$SCRATCH/overlay"
        opts+=(--overlay "$SCRATCH/overlay")
      fi
      MNT=$MNTROOT/$sys; mkdir -p "$MNT"
      "$SCOPEFS" mount "${opts[@]}" "$SRC" "$MNT" || die "scopefs mount failed"
      DAEMON_PID=$(scopefs_pid "$MNT")
      [[ -n $DAEMON_PID ]] || die "no scopefs:PID source for $MNT in /proc/self/mountinfo" ;;
    *) die "unknown system $sys" ;;
  esac
  if [[ -n $PEER_PID ]]; then
    wait_mounted "$MNT" "$PEER_PID" || die "$sys did not mount (see $LOGDIR/$sys.log)"
    DAEMON_PID=$PEER_PID
  fi
  start_sampler "$DAEMON_PID" "$sys"
}

umount_system() { # SYSTEM WORKLOAD
  local sys=$1
  case $sys in
    native) ;;
    scopefs*)
      stop_sampler "$2" "$sys"
      "$SCOPEFS" umount "$MNT" ;;
    *)
      stop_sampler "$2" "$sys"
      fusermount3 -u "$MNT"
      wait "$PEER_PID" 2>/dev/null || true ;;
  esac
  [[ $2 == untar || $2 == gitcommit ]] && drop_scratch
  MNT=
}

# A DAMON reclaimer (`pageout` of memory idle for a while, as some VMs run) evicts the page
# cache between warm passes, so warm native reads stop being warm. Paused for the run.
pause_reclaim() {
  ((PAUSE_RECLAIM)) || return 0
  local k
  for k in /sys/kernel/mm/damon/admin/kdamonds/*; do
    [[ -f $k/state && $(cat "$k/state") == on ]] || continue
    if echo off > "$k/state"; then
      PAUSED_KDAMONDS+=("$k")
      say "paused the DAMON reclaimer $k for the run (--keep-reclaim leaves it on)"
    fi
  done
}

resume_reclaim() {
  local k
  for k in "${PAUSED_KDAMONDS[@]}"; do
    echo on > "$k/state" || echo "scripts/bench.sh: could not switch $k back on" >&2
  done
  PAUSED_KDAMONDS=()
}

cleanup() {
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  resume_reclaim
  local m
  for m in $(awk -v r="$MNTROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null); do
    case $m in
      */scopefs*) "$SCOPEFS" umount "$m" 2>/dev/null || umount -l "$m" ;;
      *) fusermount3 -u "$m" 2>/dev/null || umount -l "$m" ;;
    esac
  done
  if mounted "$SCRATCH"; then umount "$SCRATCH" 2>/dev/null || umount -l "$SCRATCH"; fi
  rm -f "$SCRATCH_IMG"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Workloads

DROP_OK=1
drop_caches() {
  sync
  if ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    ((DROP_OK)) && echo "warning: cannot write /proc/sys/vm/drop_caches: first passes are not cold" >&2
    DROP_OK=0
  fi
}

w_walk() { find "$1" -type f -printf '%s\n' > /dev/null; }
w_search() { rg -c "$SEARCH_STRING" "$1" > /dev/null; }
w_gitstatus() { GIT_OPTIONAL_LOCKS=0 git -C "$1" status > /dev/null; }
w_gitminimal() { GIT_OPTIONAL_LOCKS=0 git -c core.checkStat=minimal -C "$1" status > /dev/null; }
w_gitcommit() {
  git -C "$1" add -A && git -C "$1" -c user.name=bench -c user.email=bench@localhost commit -q --allow-empty -m bench
}
w_seqread() { cat "$1/big.bin" > /dev/null; }
w_randread() { python3 "$HELPER" randread "$1/big.bin" --count "$RANDREADS"; }
w_untar() { tar -xf "$TARBALL" -C "$1"; }
w_rm() { rm -rf "$1/untar"; }

FAILED=0
# timed WORKLOAD SYSTEM KIND: runs w_WORKLOAD on $MNT, appends a line to $TSV
timed() {
  local w=$1 sys=$2 kind=$3 t0 t1 rc=0
  t0=$EPOCHREALTIME
  "w_$w" "$MNT" 2>>"$LOGDIR/$w.$sys.err" || rc=$?
  t1=$EPOCHREALTIME
  if ((rc != 0)); then
    echo "  $w on $sys ($kind pass) failed with status $rc: $(tail -n 3 "$LOGDIR/$w.$sys.err" | tr '\n' ' ')" >&2
    FAILED=1
    printf '%s\t%s\t%s\tnan\n' "$w" "$sys" "$kind" >> "$TSV"
    return
  fi
  printf '%s\t%s\t%s\t%s\n' "$w" "$sys" "$kind" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" >> "$TSV"
}

run_workload() { # WORKLOAD SYSTEM
  local w=$1 sys=$2 i c
  printf '  %-10s %-22s' "$w" "$sys" >&2
  # Each cold pass on its own fresh mount; the repeats follow the first one.
  for ((c = 0; c < COLD; c++)); do
    mount_system "$sys" "$w"
    if [[ $w == untar ]]; then
      # The first rm follows a sync (drop_caches needs one), so it also frees allocated
      # blocks: slow on a file system mounted with "discard". Repeats do not sync: they time
      # the file-system layer, as a tool that writes and deletes without fsync sees it.
      drop_caches; timed untar "$sys" first
      drop_caches; timed rm "$sys" first
      if ((c == 0)); then
        for ((i = 0; i < REPEATS; i++)); do
          timed untar "$sys" rep
          timed rm "$sys" rep
        done
      fi
    else
      drop_caches; timed "$w" "$sys" first
      if ((c == 0)); then
        for ((i = 0; i < REPEATS; i++)); do timed "$w" "$sys" rep; done
      fi
    fi
    umount_system "$sys" "$w"
  done
  awk -F'\t' -v w="$w" -v s="$sys" '$1 == w && $2 == s { if ($3 == "first") f = f " " $4; else r = r " " $4 }
    END { printf " first%s  repeats%s\n", f, r }' "$TSV" >&2
}

machine_info() {
  local fs
  fs=$(df -PT "$WORKDIR" | awk 'NR == 2 { print $2 " on " $1 }')
  echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- work directory: $WORKDIR ($fs)"
  if ((SCRATCH_FS)); then
    echo "- untar and rm write to a fresh ${SCRATCH_MIB} MiB ext4 image (mkfs.ext4 defaults, loop-mounted) per pass, for every system"
  else
    echo "- untar and rm write to the work directory's file system (--scratch-in-workdir)"
  fi
  echo "- scopefs: $SCOPEFS_REV; bindfs $(bindfs --version 2>/dev/null | awk '{ print $2; exit }'); fuse-overlayfs $(fuse-overlayfs --version 2>/dev/null | awk '/^fuse-overlayfs/ { print $NF; exit }'); ripgrep $(rg --version | awk '{ print $2; exit }'); git $(git --version | awk '{ print $3 }')"
  echo "- command: \`scripts/bench.sh $ORIG_ARGS\` ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  if ((${#PAUSED_KDAMONDS[@]})); then
    echo "- DAMON reclaimer paused during the run (${PAUSED_KDAMONDS[*]})"
  elif ! ((PAUSE_RECLAIM)) && grep -qx on /sys/kernel/mm/damon/admin/kdamonds/*/state 2>/dev/null; then
    echo "- a DAMON reclaimer ran during the run (--keep-reclaim): warm passes may not have been warm"
  fi
}

# ---------------------------------------------------------------------------------------
# --million

run_million() {
  # MILLION_DIRS / MILLION_FILES shrink the tree to try the script out.
  local dirs=${MILLION_DIRS:-1000} files=${MILLION_FILES:-1000}
  local total=$((dirs * files))
  local base=$WORKDIR/million-${dirs}x$files
  mkdir -p "$base" "$LOGDIR" "$MNTROOT"
  if [[ ! -e $base/.ready ]]; then
    say "generating $dirs directories x $files files in $base/src (once)"
    rm -rf "$base/src"
    python3 "$HELPER" gen-million "$base/src" --dirs "$dirs" --files "$files"
    touch "$base/.ready"
  fi
  SRC=$base/src
  RES_TSV=$LOGDIR/million-res.tsv
  : > "$RES_TSV"
  local out=$OUTDIR/million.md t0 t1 n i times=() first
  mkdir -p "$OUTDIR"

  local rows=() w
  for w in names stat; do
    local cmd=(find "$SRC" -type f) what="\`find -type f \\| wc -l\`"
    if [[ $w == stat ]]; then
      cmd+=(-printf '%s\n')
      what="\`find -type f -printf %s \\| wc -l\` (a stat of every file)"
    fi
    local sys
    for sys in native scopefs; do
      local root=$SRC t0 t1 n first times=() i
      if [[ $sys == scopefs ]]; then
        MNT=$MNTROOT/scopefs; mkdir -p "$MNT"
        "$SCOPEFS" mount "$SRC" "$MNT"
        DAEMON_PID=$(scopefs_pid "$MNT")
        start_sampler "$DAEMON_PID" scopefs
        root=$MNT
      fi
      say "$sys: $what"
      drop_caches
      t0=$EPOCHREALTIME; n=$("${cmd[@]/#$SRC/$root}" | wc -l); t1=$EPOCHREALTIME
      first=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
      [[ $n -eq $total ]] || { echo "  expected $total files through $sys, found $n" >&2; FAILED=1; }
      for ((i = 0; i < REPEATS; i++)); do
        t0=$EPOCHREALTIME; "${cmd[@]/#$SRC/$root}" | wc -l > /dev/null; t1=$EPOCHREALTIME
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
      done
      echo "  $n files, first ${first}s, repeats ${times[*]}" >&2
      if [[ $sys == native ]]; then
        rows+=("| native | $what | $n | $first | ${times[*]} | | | | |")
      else
        local rss_now fds_now fds hwm
        rss_now=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status")
        fds_now=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
        : > "$RES_TSV"
        stop_sampler "$w" scopefs
        "$SCOPEFS" umount "$MNT"
        read -r _ _ fds hwm < "$RES_TSV"
        rows+=("| scopefs (default, fresh mount) | $what | $n | $first | ${times[*]} | $((hwm / 1024)) MiB | $((rss_now / 1024)) MiB | $fds | $fds_now |")
      fi
    done
  done
  {
    echo "# scopefs: $total files"
    echo
    machine_info
    echo "- tree: $dirs directories x $files files of 6 bytes ($base/src); first pass after \`sync; echo 3 > /proc/sys/vm/drop_caches\`, then $REPEATS repeats"
    echo
    echo "| system | command | files seen | first pass (s) | repeats (s) | daemon peak RSS (VmHWM) | daemon RSS at the end | peak open fds | open fds at the end |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
  } > "$out"
  echo
  cat "$out"
  echo
  echo "written to $out"
}

# ---------------------------------------------------------------------------------------
# main

install_packages
pause_reclaim
mkdir -p "$WORKDIR" "$MNTROOT" "$SCRATCH" "$LOGDIR"
prepare_scopefs
printf '[view]\ninodes = "synthetic"\n' > "$WORKDIR/synthetic.toml"
if [[ $MODE == million ]]; then
  run_million
  exit "$FAILED"
fi
prepare_tree

ALL_SYSTEMS=(native)
for v in "${SCOPEFS_VARIANTS[@]}"; do ALL_SYSTEMS+=("${v%%|*}"); done
ALL_SYSTEMS+=(bindfs fuse-overlayfs)
if [[ -n $SYSTEMS ]]; then
  IFS=, read -r -a sel <<< "$SYSTEMS"
  ALL_SYSTEMS=("${sel[@]}")
fi
IFS=, read -r -a WL <<< "$WORKLOADS"

TSV=$LOGDIR/times.tsv
RES_TSV=$LOGDIR/resources.tsv
: > "$TSV"
: > "$RES_TSV"
rm -f "$LOGDIR"/*.err

say "source: $SRC ($NFILES files), $REPEATS repeats, systems: ${ALL_SYSTEMS[*]}"
for w in "${WL[@]}"; do
  declare -F "w_$w" > /dev/null || die "unknown workload $w"
  for sys in "${ALL_SYSTEMS[@]}"; do
    [[ $w == untar && $sys == bindfs ]] && continue # writes would land in SOURCE
    # Commits would land in SOURCE's repository.
    [[ $w == gitcommit && ($sys == bindfs || $sys == native) ]] && continue
    run_workload "$w" "$sys"
  done
done

LABELS=$LOGDIR/labels.tsv
big_label=$( ((BIG_MIB >= 1024)) && echo "$((BIG_MIB / 1024)) GiB" || echo "$BIG_MIB MiB")
{
  printf 'walk\tfind -type f -printf %%s (%s files)\n' "$NFILES"
  printf 'search\trg -c %s\n' "$SEARCH_STRING"
  printf 'gitstatus\tgit status\n'
  printf 'gitminimal\tgit -c core.checkStat=minimal status\n'
  printf 'gitcommit\tgit add -A && git commit (overlay)\n'
  printf 'seqread\tcat %s file\n' "$big_label"
  printf 'randread\t%s random 4 KiB preads\n' "$RANDREADS"
  printf 'untar\tuntar %s files (overlay)\n' "$UNTAR_FILES"
  printf 'rm\trm -rf %s files (overlay)\n' "$UNTAR_FILES"
} > "$LABELS"

mkdir -p "$OUTDIR"
{
  echo "# scopefs benchmark"
  echo
  machine_info
  echo "- source: $SRC, $NFILES files; first pass after \`sync; echo 3 > /proc/sys/vm/drop_caches\`$( ((DROP_OK)) || echo ' (FAILED: first passes not cold)'), then the median of $REPEATS repeats on the same mount; first pass = median of $COLD, each on a fresh mount"
  echo
  echo "Seconds. Ratio columns: scopefs time ÷ the other system's, median of repeats (first pass in parentheses)."
  echo
  python3 "$HELPER" report "$TSV" --labels "$LABELS"
  echo
  echo "Daemon resources per workload: peak open fds (sampled every 50 ms) / peak RSS (VmHWM)."
  echo
  python3 "$HELPER" resources "$RES_TSV" --labels "$LABELS"
} > "$OUTDIR/results.md"
cp "$TSV" "$OUTDIR/results.tsv"
cp "$RES_TSV" "$OUTDIR/resources.tsv"

echo
cat "$OUTDIR/results.md"
echo
echo "written to $OUTDIR/results.md (raw: results.tsv, resources.tsv; logs in $LOGDIR)"
exit "$FAILED"
