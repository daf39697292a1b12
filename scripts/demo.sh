#!/usr/bin/env bash
# make demo: build the wasm package, the demo app and the server, then serve
# the app and sync on one port on 127.0.0.1. Ctrl-C stops the server cleanly
# (in-flight commits finish); the data stays in $HOLDFAST_DEMO_DATA.
#
#   HOLDFAST_DEMO_LISTEN  address to listen on (default 127.0.0.1:3030)
#   HOLDFAST_DEMO_DATA    data directory (default ./demo-data)
#   HOLDFAST_DEMO_BUILD_ONLY=1   build everything, do not start the server
set -euo pipefail
cd "$(dirname "$0")/.."

listen=${HOLDFAST_DEMO_LISTEN:-127.0.0.1:3030}
data=${HOLDFAST_DEMO_DATA:-demo-data}
target_dir=${CARGO_TARGET_DIR:-target}
site="$target_dir/demo-site"

scripts/setup.sh wasm-target wasm-tools
scripts/build-pkg.sh
cargo build --release -p holdfast-server

# The site: the app next to a copy of the npm package it imports.
rm -rf "$site"
mkdir -p "$site"
cp -r www/. "$site/"
rm -f "$site/README.md"
mkdir -p "$site/pkg"
cp pkg/index.js pkg/draft.js pkg/tabs.js pkg/share.js pkg/index.d.ts pkg/package.json "$site/pkg/"
cp -r pkg/wasm "$site/pkg/wasm"
echo "demo: site assembled in $site"

if [[ "${HOLDFAST_DEMO_BUILD_ONLY:-}" == "1" ]]; then
    exit 0
fi
echo "demo: open http://$listen/ (two windows sync; 'Go offline' to try offline editing)"
echo "demo: data in $data; Ctrl-C to stop"
exec "$target_dir/release/holdfast-server" --listen "$listen" --data "$data" --www "$site"
