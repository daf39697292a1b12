#!/usr/bin/env bash
# Build the npm package's generated part: the wasm module and its
# wasm-bindgen JS glue, into pkg/wasm/ (git-ignored).
#
#   scripts/build-pkg.sh            release build (Cargo profile wasm-release: size-optimised)
#   scripts/build-pkg.sh --dev      quick build for tests, with the test hooks
#                                   (feature test-hooks: `_failCommit`)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=wasm-release
flag=(--profile wasm-release)
if [[ "${1:-}" == "--dev" ]]; then
    profile=debug
    flag=(--features test-hooks)
fi
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --lib --target wasm32-unknown-unknown "${flag[@]}"
rm -rf pkg/wasm
wasm-bindgen --target web --out-dir pkg/wasm --out-name holdfast \
    "$target_dir/wasm32-unknown-unknown/$profile/holdfast.wasm"
raw=$(wc -c <pkg/wasm/holdfast_bg.wasm)
gz=$(gzip -9 -c pkg/wasm/holdfast_bg.wasm | wc -c)
echo "build-pkg: pkg/wasm/holdfast_bg.wasm ($profile): $raw bytes, $gz gzipped"
