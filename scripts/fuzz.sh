#!/usr/bin/env bash
# The cargo-fuzz targets of fuzz/ (their own workspace).
#
#   scripts/fuzz.sh build                      build every target
#   scripts/fuzz.sh replay                     build, then run each target once over each of
#                                              its committed seeds, fuzz/corpus/TARGET (CI)
#   scripts/fuzz.sh run SECONDS [TARGET...]    run each target (all by default) for SECONDS,
#                                              one after the other, under `nice -n 19`, and print
#                                              executions, corpus size and whether it crashed
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them. Install it with `cargo install cargo-fuzz --locked`.
#
# A run reads the committed seeds in fuzz/corpus/TARGET and writes what it finds to
# fuzz/target/corpus/TARGET, so the seeds stay small; a crashing input is saved in
# fuzz/artifacts/TARGET/. To keep a finding as a regression seed, minimise it with
# `cargo fuzz tmin TARGET FILE` and copy it into fuzz/corpus/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1

usage() {
    echo "usage: scripts/fuzz.sh build | scripts/fuzz.sh replay | scripts/fuzz.sh run SECONDS [TARGET...]" >&2
    exit 2
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

mode=${1:-}
case $mode in
build)
    [[ $# -eq 1 ]] || usage
    cargo fuzz build
    ;;
replay)
    [[ $# -eq 1 ]] || usage
    cargo fuzz build
    # -runs=0: execute the seeds and nothing else; a few seconds each, bounded all the same.
    failed=0
    while read -r target; do
        seeds=$(find "corpus/$target" -type f | wc -l)
        if [[ $seeds -eq 0 ]]; then
            echo "$target: no seeds in fuzz/corpus/$target" >&2
            failed=1
            continue
        fi
        log=target/replay-$target.log
        start=$(date +%s)
        if timeout 300 cargo fuzz run "$target" "corpus/$target" -- -runs=0 >"$log" 2>&1; then
            echo "$target: $seeds seeds replayed in $(($(date +%s) - start))s, no crash"
        else
            echo "$target: the replay of its $seeds seeds failed (see fuzz/$log):" >&2
            tail -n 20 "$log" >&2
            failed=1
        fi
    done < <(cargo fuzz list)
    exit $failed
    ;;
run)
    [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
    seconds=$2
    shift 2
    if [[ $# -gt 0 ]]; then
        targets=("$@")
    else
        mapfile -t targets < <(cargo fuzz list)
    fi
    cargo fuzz build
    failed=0
    for target in "${targets[@]}"; do
        work=target/corpus/$target
        mkdir -p "$work" "corpus/$target"
        log=target/fuzz-$target.log
        start=$(date +%s)
        status=0
        nice -n 19 cargo fuzz run "$target" "$work" "corpus/$target" -- \
            -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
        elapsed=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        # libFuzzer's last status line has "corp: ENTRIES/SIZE"; the seeds count too.
        corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -n 1 | sed 's/corp: //')
        files=$(find "$work" -type f | wc -l)
        if [[ $status -eq 0 ]]; then
            crashed=no
        else
            crashed="YES (exit $status; see fuzz/$log and fuzz/artifacts/$target/)"
            failed=1
        fi
        printf '%s: %ss, %s executions (%s/s), corpus %s entries (%s files in fuzz/%s), crashed: %s\n' \
            "$target" "$elapsed" "${execs:-?}" "${speed:-?}" "${corpus:-?}" "$files" "$work" "$crashed"
    done
    exit $failed
    ;;
*)
    usage
    ;;
esac
