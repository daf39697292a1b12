#!/usr/bin/env bash
# scripts/setup.sh — install what holdfast's builds and tests need, and only
# what is missing. Safe to run again and again: a warm machine takes seconds.
#
# Usage: scripts/setup.sh COMPONENT...
#
#   node-test-deps  npm ci in tests/js (golden codec tests against automerge-repo)
#   wasm-target     rustup target wasm32-unknown-unknown
#   wasm-tools      wasm-pack 0.15.1 and wasm-bindgen-cli at Cargo.lock's wasm-bindgen version
#   wasm-bindgen    wasm-bindgen-cli alone (what scripts/build-pkg.sh needs)
#   browser         Debian chromium + chromium-driver (headless browser tests)
#   postgres        Debian postgresql (the PostgreSQL storage's tests start their own
#                   cluster with its initdb and pg_ctl; the system cluster is not used)
#   playwright      npm ci in every package under tests/ or www/ that lists playwright-core
#   bench-deps      npm ci in bench/ (automerge-repo 2.5.6 + adapters, esbuild: make bench)
#   examples        npm ci in examples/vite-react (React, Vite: its build and Playwright test)
#   fuzz-tools      a nightly toolchain (profile minimal) and cargo-fuzz 0.13.2 (make fuzz-cov;
#                   not in "all": make test replays the libFuzzer corpus on stable)
#   all             all of the above but fuzz-tools
#
# Each step prints one line: "present" (skipped) or "installing…" followed by
# its time. Never interactive; CI=true is honoured (no progress bars, no prompts).
# Nothing here downloads a browser or a prebuilt binary: everything comes from
# crates.io, the npm registry or Debian's packages.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WASM_TARGET=wasm32-unknown-unknown
WASM_PACK_VERSION=0.15.1
CARGO_FUZZ_VERSION=0.13.2
BROWSER_PACKAGES=(chromium chromium-driver)
NODE_TEST_DIR=tests/js
LOCK_STAMP=.holdfast-lock-hash   # written into node_modules/ after a good npm ci

export DEBIAN_FRONTEND=noninteractive
export npm_config_yes=true npm_config_fund=false npm_config_audit=false
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
    export npm_config_progress=false CARGO_TERM_PROGRESS_WHEN=never
fi

# --- output helpers --------------------------------------------------------

say() { printf 'setup: %-16s %s\n' "$1" "$2"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# timed STEP CMD... — run CMD, then report how long it took.
timed() {
    local step=$1 start
    shift
    start=$(date +%s)
    "$@"
    say "$step" "done in $(( $(date +%s) - start ))s"
}

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH ($2)"; }

# as_root CMD... — we are root on the project's machines; elsewhere use sudo
# without prompting (fails rather than asks for a password).
as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

# --- npm packages ------------------------------------------------------------

lock_hash() {
    # The lockfile pins everything; package.json is in the stamp so that an
    # edit to it makes npm ci run (and fail loudly if the lockfile is stale),
    # node's version because native modules are built against it.
    { cat "$1/package.json" "$1/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1
}

# npm_ci STEP DIR — npm ci in DIR unless node_modules matches the lockfile.
npm_ci() {
    local step=$1 dir=$2 stamp want
    [[ -f "$dir/package-lock.json" ]] ||
        die "$dir/package-lock.json is missing: run 'npm install --prefix $dir' and commit the lockfile"
    need npm "Node.js and npm come with the machine image"
    stamp="$dir/node_modules/$LOCK_STAMP"
    want=$(lock_hash "$dir")
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        say "$step" "present ($dir/node_modules matches package-lock.json)"
        return
    fi
    say "$step" "installing… (npm ci --prefix $dir)"
    timed "$step" npm ci --prefix "$dir" --no-audit --no-fund
    printf '%s\n' "$want" >"$stamp"
}

setup_node_test_deps() {
    if [[ ! -f "$NODE_TEST_DIR/package.json" ]]; then
        say node-test-deps "skip: $NODE_TEST_DIR/package.json does not exist on this branch (no JS golden tests yet)"
        return
    fi
    npm_ci node-test-deps "$NODE_TEST_DIR"
}

setup_playwright() {
    local found=0 pkg
    for pkg in tests/*/package.json www/package.json; do
        [[ -f "$pkg" ]] || continue
        grep -q '"playwright-core"' "$pkg" || continue
        found=1
        npm_ci playwright "$(dirname "$pkg")"
    done
    if [[ $found -eq 0 ]]; then
        say playwright "skip: no package.json under tests/ or www/ lists playwright-core yet"
    fi
}

setup_bench_deps() {
    npm_ci bench-deps bench
}

setup_examples() {
    npm_ci examples examples/vite-react
}

# --- Rust --------------------------------------------------------------------

setup_wasm_target() {
    need rustup "the machine's Rust toolchain is installed with rustup"
    if rustup target list --installed | grep -qx "$WASM_TARGET"; then
        say wasm-target "present ($WASM_TARGET)"
        return
    fi
    say wasm-target "installing… (rustup target add $WASM_TARGET)"
    timed wasm-target rustup target add "$WASM_TARGET"
}

# installed_version CMD — "X.Y.Z" from "CMD --version", or empty.
installed_version() {
    command -v "$1" >/dev/null 2>&1 || return 0
    "$1" --version 2>/dev/null | awk '{print $2; exit}'
}

# The wasm-bindgen version Cargo.lock resolved (empty if none).
locked_wasm_bindgen() {
    [[ -f Cargo.lock ]] || return 0
    awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock
}

setup_wasm_tools() {
    setup_wasm_pack
    setup_wasm_bindgen
}

setup_wasm_pack() {
    need cargo "the machine's Rust toolchain"
    local have
    have=$(installed_version wasm-pack)
    if [[ "$have" == "$WASM_PACK_VERSION" ]]; then
        say wasm-pack "present ($have)"
    else
        say wasm-pack "installing… (${have:-none} -> $WASM_PACK_VERSION, cargo install, ~2.5 min)"
        timed wasm-pack cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --force
    fi
}

setup_wasm_bindgen() {
    need cargo "the machine's Rust toolchain"
    local have want
    # The CLI must match the library exactly, or wasm-pack tries to download
    # one (fails here) and then silently builds its own on every run.
    want=$(locked_wasm_bindgen)
    if [[ -z "$want" ]]; then
        say wasm-bindgen "skip: wasm-bindgen is not in Cargo.lock yet"
        return
    fi
    have=$(installed_version wasm-bindgen)
    if [[ "$have" == "$want" ]]; then
        say wasm-bindgen "present ($have, as in Cargo.lock)"
    else
        # No --locked: its own lockfile pins a crate version this registry lacks.
        say wasm-bindgen "installing… (${have:-none} -> $want, cargo install, ~2.5 min)"
        timed wasm-bindgen cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

# cargo-fuzz builds its targets with sanitizer coverage (-Z flags): nightly.
setup_fuzz_tools() {
    need rustup "the machine's Rust toolchain is installed with rustup"
    need cargo "the machine's Rust toolchain"
    local have
    if rustup toolchain list | grep -q '^nightly-'; then
        say nightly "present ($(rustup run nightly rustc --version | awk '{print $2, $4}' | tr -d ')'))"
    else
        say nightly "installing… (rustup toolchain install nightly --profile minimal)"
        timed nightly rustup toolchain install nightly --profile minimal
    fi
    # `cargo fuzz --version` prints "cargo-fuzz X.Y.Z".
    have=$(cargo fuzz --version 2>/dev/null | awk '{print $2; exit}' || true)
    if [[ "$have" == "$CARGO_FUZZ_VERSION" ]]; then
        say cargo-fuzz "present ($have)"
    else
        say cargo-fuzz "installing… (${have:-none} -> $CARGO_FUZZ_VERSION, cargo install, ~1 min)"
        timed cargo-fuzz cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
    fi
}

# --- Debian packages ---------------------------------------------------------

dpkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_install() {
    local step=$1 missing=() pkg
    shift
    for pkg in "$@"; do
        dpkg_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "$step" "present ($*)"
        return
    fi
    need apt-get "Debian's packages are installed with apt-get"
    say "$step" "installing… (apt-get install ${missing[*]})"
    if [[ $APT_UPDATED -eq 0 ]]; then
        timed apt-update quietly as_root apt-get update -qq
        APT_UPDATED=1
    fi
    timed "$step" quietly as_root apt-get install -y -qq "${missing[@]}"
}

# quietly CMD... — run CMD with its output kept in a log, shown only if it fails
# (dpkg prints hundreds of lines even with -qq).
quietly() {
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$log" >&2
        rm -f "$log"
        die "'$*' failed with exit code $rc"
    fi
    rm -f "$log"
}

setup_browser() {
    apt_install browser "${BROWSER_PACKAGES[@]}"
}

setup_postgres() {
    apt_install postgres postgresql
}

# --- main --------------------------------------------------------------------

usage() {
    sed -n '4,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -gt 0 ]] || usage
components=()
for arg in "$@"; do
    case $arg in
        all) components+=(node-test-deps wasm-target wasm-tools browser postgres playwright examples bench-deps) ;;
        node-test-deps | wasm-target | wasm-tools | wasm-bindgen | browser | postgres | playwright | examples | bench-deps | fuzz-tools) components+=("$arg") ;;
        -h | --help) usage ;;
        *) printf 'setup: unknown component: %s\n' "$arg" >&2; usage ;;
    esac
done

start=$(date +%s)
for c in "${components[@]}"; do
    "setup_${c//-/_}"
done
say total "$(( $(date +%s) - start ))s"
