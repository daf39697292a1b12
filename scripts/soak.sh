#!/usr/bin/env bash
# make soak: the long runs that make test keeps short.
#
#   1. the browser crash test (tests/e2e/crash.test.mjs) for
#      HOLDFAST_SOAK_ROUNDS rounds (default 200) with a CPU hog beside it
#      (one busy loop per core, HOLDFAST_SOAK_HOG=0 to leave it out): half
#      of the kills aimed at compaction and quarantine commits; then its
#      multi-tab mode (tests/e2e/crash-tabs.test.mjs: two tabs writing one
#      database) for as many rounds, beside the same hog;
#   2. the deterministic simulation with HOLDFAST_SOAK_SEEDS seeds (default
#      5000), and as many seeds of two tabs on one store under random
#      interleavings (tests/core_tabs_random.rs);
#   3. the hostile-client suite (crates/holdfast-server/tests/hostile_*.rs)
#      at the sizes issue 14 measured (HOLDFAST_HOSTILE_FULL=1).
#
# Expects what make test builds (pkg/wasm, holdfast-server, the e2e
# node_modules); the Makefile's soak target builds them first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${HOLDFAST_SOAK_ROUNDS:-200}"
seeds="${HOLDFAST_SOAK_SEEDS:-5000}"
hog_pids=()
stop_hog() {
  for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_hog EXIT

if [ "${HOLDFAST_SOAK_HOG:-1}" != 0 ]; then
  for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    hog_pids+=("$!")
  done
  echo "soak: CPU hog running (${#hog_pids[@]} busy loops)"
fi

start=$(date +%s)
HOLDFAST_CRASH_ROUNDS="$rounds" node --test tests/e2e/crash.test.mjs
echo "soak: crash test, $rounds rounds: $(( $(date +%s) - start )) s"
start=$(date +%s)
HOLDFAST_TABS_CRASH_ROUNDS="$rounds" node --test tests/e2e/crash-tabs.test.mjs
echo "soak: crash test with two tabs, $rounds rounds: $(( $(date +%s) - start )) s"
stop_hog
hog_pids=()

start=$(date +%s)
HOLDFAST_SIM_SEEDS="$seeds" cargo test --test simulation simulation_with -- --nocapture
echo "soak: simulation, $seeds seeds: $(( $(date +%s) - start )) s"
start=$(date +%s)
HOLDFAST_TABS_SEEDS="$seeds" cargo test --test core_tabs_random
echo "soak: two tabs under random interleavings, $seeds seeds: $(( $(date +%s) - start )) s"

start=$(date +%s)
HOLDFAST_HOSTILE_FULL=1 cargo test -p holdfast-server --test hostile_limits --test hostile_sockets -- --nocapture --test-threads 1
echo "soak: hostile clients at full size: $(( $(date +%s) - start )) s"
