#!/usr/bin/env bash
# POSIX conformance: runs pjdfstest (the Rust port, crates.io `pjdfstest`) as root inside a
# writable view of each write mode, then checks each result against its list,
# scripts/pjdfstest-expected-MODE.txt.
#
#   scripts/pjdfstest.sh [overlay|direct]...     (both by default, overlay first)
#
# The views: `scopefs mount --writes overlay --overlay OV` or `--writes direct`, each with
# `--writable '**' --no-presets --allow-other -c POLICY SOURCE MNT`, where POLICY only sets
# `symlinks = "keep"`.
# - `--allow-other` because pjdfstest switches to other users (nobody, daemon) and checks
#   what they may do; FUSE lets only the mounting user in otherwise, and with it the kernel
#   checks permissions (`default_permissions`), as it does for any user of a shared view.
# - `symlinks = "keep"` because pjdfstest makes symlinks with absolute targets and targets
#   that do not exist anywhere; the default `contain` refuses those with EACCES by design.
#
# Prints, per mode, how many of all tests run passed and failed, the failures and the pass
# rate. Fails when a test fails that the mode's list does not name, when a test the list names
# passes (the list must stay true: take it out), when pjdfstest skips another number of tests
# than the EXPECTED_SKIPPED it always skips here, or when the pass rate is below the mode's
# floor (98% in overlay views). Each entry of a list is a deviation of SPEC, or a known bug,
# with its reason; a reason that starts `sometimes:` names a failure that depends on timing,
# whose passes are only noted. The rate leaves out
# the block and character device variants of the tests (`*::block`, `*::char`): each starts by
# making a device node, which no scopefs view allows, so they are checked to have failed on
# exactly that and reported apart; every other test counts.
#
# Needs root and /dev/fuse. pjdfstest is installed with `cargo install --locked` into
# target/tools, once per version. Its users are `nobody`/`nogroup` and `daemon`/`daemon`,
# which every Debian system has, so no account is created.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PJDFSTEST_VERSION=0.2.2
# The lowest pass rate (without the device variants) each mode may fall to. Direct mode lists
# known bugs it has yet to fix; raise its floor as they go.
declare -A MIN_PASS_PERCENT=([overlay]=98 [direct]=95)
# 13 tests remount the file system read-only (allow_remount = false here), one needs LINK_MAX.
EXPECTED_SKIPPED=14
tools=$repo/target/tools
pjdfstest=$tools/bin/pjdfstest

die() {
    echo "scripts/pjdfstest.sh: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root: pjdfstest switches users and the view is mounted with mount(2)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (modprobe fuse, or run the container with --device /dev/fuse)"
for user in nobody daemon; do
    getent passwd "$user" >/dev/null || die "user $user is missing: pjdfstest switches to it"
done
getent group nogroup >/dev/null || die "group nogroup is missing: pjdfstest switches to it"
modes=("$@")
[[ ${#modes[@]} -gt 0 ]] || modes=(overlay direct)
for mode in "${modes[@]}"; do
    [[ $mode == overlay || $mode == direct ]] || die "unknown mode $mode: use overlay or direct"
done

# Install pjdfstest unless this exact version is already there.
if ! grep -qF "\"pjdfstest $PJDFSTEST_VERSION " "$tools/.crates.toml" 2>/dev/null || [[ ! -x $pjdfstest ]]; then
    echo "installing pjdfstest $PJDFSTEST_VERSION into $tools"
    cargo install --locked --root "$tools" pjdfstest --version "=$PJDFSTEST_VERSION"
fi

# The debug build, which scripts/test.sh has just made in CI: the tests check behaviour, not
# speed, and a release build from scratch costs CI minutes.
cargo build --bin scopefs
scopefs=$repo/target/debug/scopefs

# One run of pjdfstest in a view of write mode $1, checked against its list.
run_mode() {
local mode=$1
local expected_file=$repo/scripts/pjdfstest-expected-$mode.txt
echo "== pjdfstest, $mode mode"
# Every entry: a test name (a glob), then its reason on the same line.
declare -A expected=()
while read -r name reason; do
    [[ -z $name || $name == \#* ]] && continue
    [[ -n $reason ]] || die "$expected_file: $name has no reason"
    expected[$name]=$reason
done <"$expected_file"

work=$(mktemp -d /tmp/scopefs-pjdfstest.XXXXXX)
mkdir "$work/source" "$work/mnt" "$work/other"
chmod 755 "$work" "$work/source" "$work/mnt"
cat >"$work/policy.toml" <<'EOF'
[view]
symlinks = "keep"
EOF
cat >"$work/pjdfstest.toml" <<'EOF'
[features]
posix_fallocate = {}
utime_now = {}
utimensat = {}
rename_ctime = {}

[settings]
naptime = 0.01
allow_remount = false

[dummy_auth]
entries = [
    ["nobody", "nogroup"],
    ["daemon", "daemon"],
]
EOF

local writes=(--writes overlay --overlay "$work/overlay")
[[ $mode == direct ]] && writes=(--writes direct)
"$scopefs" mount -c "$work/policy.toml" "${writes[@]}" \
    --writable '**' --no-presets --allow-other "$work/source" "$work/mnt"
mounted=$work/mnt
# The mount's source field is `scopefs:PID`, PID the daemon's.
daemon_pid=$(findmnt -n -o SOURCE "$work/mnt")
daemon_pid=${daemon_pid#scopefs:}
kill -0 "$daemon_pid" 2>/dev/null || die "the scopefs daemon is not running"
mkdir "$work/mnt/pjdfstest"

log=$work/pjdfstest.log
status=0
(cd "$work/mnt/pjdfstest" && NO_COLOR=1 timeout 1800 "$pjdfstest" -c "$work/pjdfstest.toml" \
    -p "$work/mnt/pjdfstest" -s "$work/other") >"$log" 2>&1 || status=$?
kill -0 "$daemon_pid" 2>/dev/null || { cat "$log"; die "the scopefs daemon died during the run"; }

# Result lines are `NAME   ok`, `NAME   FAILED` or `NAME   skipped` (colour codes stripped);
# the line after a failure says why. The plain log is kept in target/ for a look afterwards.
plain=$repo/target/pjdfstest-$mode.log
sed -e 's/\x1b\[[0-9;]*m//g' "$log" >"$plain"
summary=$(grep -E '^Summary: ' "$plain") || { cat "$plain"; die "pjdfstest did not finish (exit status $status)"; }
declare -A result=() why=()
while read -r name outcome; do
    result[$name]=$outcome
done < <(awk 'NF == 2 && ($2 == "ok" || $2 == "FAILED" || $2 == "skipped") { print $1, $2 }' "$plain")
while IFS=$'\t' read -r name reason; do
    why[$name]=$reason
done < <(awk '$NF == "FAILED" && NF == 2 { name = $1; getline; sub(/^[ \t]+/, ""); print name "\t" $0 }' "$plain")

passed=0 failed=0 skipped=0 device_passed=0 device_failed=0
failures=() unexpected=()
for name in $(printf '%s\n' "${!result[@]}" | sort); do
    case ${result[$name]} in
    ok) passed=$((passed + 1)) ;;
    skipped) skipped=$((skipped + 1)) ;;
    FAILED) failed=$((failed + 1)) failures+=("$name") ;;
    esac
    # The block and character device variants of a test start by making the device node.
    if [[ $name == *::block || $name == *::char ]]; then
        case ${result[$name]} in
        ok) device_passed=$((device_passed + 1)) ;;
        FAILED) device_failed=$((device_failed + 1)) ;;
        esac
    fi
done

# pjdfstest's own count must agree with ours.
[[ $summary == "Summary: $failed failed, $skipped skipped, $passed passed, "* ]] ||
    die "counted $failed failed, $skipped skipped, $passed passed but pjdfstest says: $summary"

# An expected failure matches a pattern of the list (printed); a device variant must also have
# failed on making the device node (an EPERM, or pjdfstest's assertion that mknod succeeds),
# not on what it went on to test.
expected_pattern() {
    local name=$1 pattern
    for pattern in "${!expected[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        if [[ $name == $pattern ]]; then
            if [[ $name == *::block || $name == *::char ]] &&
                [[ ${why[$name]} != *"Err\` value: EPERM" && ${why[$name]} != "assertion failed: mknod("* ]]; then
                return 1
            fi
            echo "$pattern"
            return 0
        fi
    done
    return 1
}

echo "pjdfstest ran $((passed + failed)) tests: $passed passed and $failed failed, $skipped skipped"
# Why pjdfstest skipped what it skipped, as it says it.
awk 'NF == 2 && $2 == "skipped" { getline; sub(/^[ \t]+/, ""); n[$0]++ }
    END { for (r in n) printf "  skipped: %d -- %s\n", n[r], r }' "$plain"
declare -A matched=()
for name in "${failures[@]}"; do
    if pattern=$(expected_pattern "$name"); then
        matched[$pattern]=$((${matched[$pattern]:-0} + 1))
        if [[ $pattern == "$name" ]]; then
            echo "  expected: $name -- ${expected[$pattern]}"
        fi
    else
        unexpected+=("$name")
        echo "  FAILED: $name -- ${why[$name]:-}"
    fi
done
for pattern in "${!matched[@]}"; do
    if [[ $pattern == *[*?[]* ]]; then
        echo "  expected: ${matched[$pattern]} tests matching $pattern -- ${expected[$pattern]}"
    fi
done
# A test the list expects to fail and that passes makes the list untrue: take it out.
stale=()
for pattern in "${!expected[@]}"; do
    for name in "${!result[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        if [[ $name == $pattern && ${result[$name]} == ok ]]; then
            if [[ ${expected[$pattern]} == sometimes:* ]]; then
                echo "  note: $name passed this time; $expected_file says it fails only sometimes"
            else
                stale+=("$name")
                echo "  PASSED: $name, which $expected_file expects to fail ($pattern)"
            fi
        fi
    done
done

# The rate leaves out the device variants: no scopefs view can make a device node.
total=$((passed + failed))
rated_passed=$((passed - device_passed))
rated_total=$((total - device_passed - device_failed))
[[ $rated_total -gt 0 ]] || die "pjdfstest ran no test"
percent() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
echo "pass rate: $rated_passed/$rated_total ($(percent "$rated_passed" "$rated_total")) without the $((device_passed + device_failed)) device variants; $passed/$total ($(percent "$passed" "$total")) of all"
if ((rated_passed * 100 < MIN_PASS_PERCENT[$mode] * rated_total)); then
    die "$mode: pass rate $rated_passed/$rated_total is below ${MIN_PASS_PERCENT[$mode]}%"
fi
if [[ ${#unexpected[@]} -gt 0 ]]; then
    die "$mode: ${#unexpected[@]} failure(s) not in $expected_file: ${unexpected[*]}"
fi
if [[ ${#stale[@]} -gt 0 ]]; then
    die "$mode: ${#stale[@]} test(s) passed that $expected_file expects to fail: ${stale[*]}; take them out of the list"
fi
if [[ $skipped -ne $EXPECTED_SKIPPED ]]; then
    die "$mode: pjdfstest skipped $skipped tests, not the $EXPECTED_SKIPPED it skips here (see the reasons above)"
fi
"$scopefs" umount "$work/mnt" || die "$mode: unmounting $work/mnt failed"
mounted=
rm -rf "$work"
work=
echo "pjdfstest ($mode): no failure beyond those listed in $expected_file"
}

work=
mounted=
cleanup() {
    if [[ -n $mounted ]]; then
        "$scopefs" umount "$mounted" || echo "scripts/pjdfstest.sh: unmounting $mounted failed" >&2
    fi
    if [[ -n $work ]]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
for mode in "${modes[@]}"; do
    run_mode "$mode"
done
