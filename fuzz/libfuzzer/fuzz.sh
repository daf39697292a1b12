#!/usr/bin/env bash
# fuzz/libfuzzer/fuzz.sh — run the coverage-guided targets (cargo-fuzz,
# libFuzzer) one after the other, each for the given minutes, and print
# libFuzzer's final figures. `make fuzz-cov` runs it after
# `scripts/setup.sh fuzz-tools` (nightly + cargo-fuzz).
#
# Usage: fuzz/libfuzzer/fuzz.sh [--minutes N] [--cmin] [TARGET...]
#
#   --minutes N  fuzz each target N minutes (default 10), in sequence
#   --cmin       after a run without a crash, add the new inputs to the
#                checked-in corpus and minimize it (cargo fuzz cmin) to the
#                fewest inputs that reach every edge the whole set reaches
#                (-use_counters=0: hit counts do not count, which keeps the
#                corpus at hundreds of inputs rather than thousands)
#   TARGET       frame_decode, repo_frames (default: both, in that order)
#
# Inputs libFuzzer finds go to fuzz/libfuzzer/work/<target>/ (git-ignored);
# the checked-in corpus/<target>/ is read, not written. One process, one
# job (-jobs/-workers unset): the machines are shared. Limits per input:
# -timeout=10 s (an input that slow is a finding), -rss_limit_mb=2048,
# -max_len 64 KiB (repo_frames) or 16 KiB (frame_decode). A crash stops the
# script with libFuzzer's exit status; the input is in artifacts/<target>/.
# Output of each run: work/<target>.log.
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
cd "$ROOT"

minutes=10
cmin=0
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --cmin) cmin=1; shift ;;
        -h | --help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        frame_decode | repo_frames) targets+=("$1"); shift ;;
        *) printf 'fuzz.sh: unknown argument: %s\n' "$1" >&2; exit 2 ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(frame_decode repo_frames)
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -gt 0 ]] || { echo "fuzz.sh: --minutes wants a positive integer" >&2; exit 2; }

# Release build with debug assertions and overflow checks (automerge's
# debug_assert!s are findings too), no sanitizer: holdfast-core and
# automerge have no unsafe code, and AddressSanitizer made repo_frames 5 to
# 14 times slower per input (its allocator on automerge's allocations).
FUZZ=(cargo +nightly fuzz)
BUILD=(--fuzz-dir "$DIR" -O -a -s none)

max_len() {
    case $1 in
        repo_frames) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

for t in "${targets[@]}"; do
    mkdir -p "$DIR/work/$t" "$DIR/corpus/$t"
    log="$DIR/work/$t.log"
    printf 'fuzz-cov: %s for %s min (corpus/%s: %s inputs; new ones go to work/%s/; log %s)\n' \
        "$t" "$minutes" "$t" "$(find "$DIR/corpus/$t" -type f | wc -l)" "$t" "${log#"$ROOT"/}"
    start=$(date +%s)
    set +e
    "${FUZZ[@]}" run "${BUILD[@]}" "$t" "$DIR/work/$t" "$DIR/corpus/$t" -- \
        -max_total_time=$((minutes * 60)) \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" \
        -dict="$DIR/dict/$t.dict" \
        -print_final_stats=1 \
        -print_pcs=0 \
        2>&1 | tee "$log" | grep --line-buffered -E '^#[0-9]+\s+(INITED|pulse)|ERROR|panicked|^SUMMARY|^artifact_prefix|Test unit written'
    # The fuzzer's status (grep's is 1 when nothing matched).
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(($(date +%s) - start))
    echo "fuzz-cov: $t: libFuzzer exited $rc after ${secs}s; final figures:"
    grep -E '^#[0-9]+\s+DONE|^stat::|^Done [0-9]+ runs' "$log" | sed 's/^/  /' || true
    if [[ $rc -ne 0 ]]; then
        echo "fuzz-cov: $t FAILED (crash, timeout or out-of-memory): see $log and $DIR/artifacts/$t/" >&2
        exit "$rc"
    fi
    if [[ $cmin -eq 1 ]]; then
        cp -n "$DIR/work/$t"/* "$DIR/corpus/$t"/ 2>/dev/null || true
        "${FUZZ[@]}" cmin "${BUILD[@]}" "$t" "$DIR/corpus/$t" -- \
            -max_len="$(max_len "$t")" -use_counters=0 -timeout=10 -rss_limit_mb=2048 2>&1 | tail -3
        echo "fuzz-cov: $t: corpus/$t now holds $(find "$DIR/corpus/$t" -type f | wc -l) inputs, $(du -sk "$DIR/corpus/$t" | cut -f1) KiB"
    fi
done
