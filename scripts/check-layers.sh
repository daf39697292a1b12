#!/usr/bin/env bash
# The crate graph the layout promises (docs/design.md §1), checked:
#   - holdfast-core depends on no IO library (no tokio, no wasm-bindgen,
#     no web-sys, no js-sys, no socket or HTTP crate), for the host and for
#     wasm32, dev-dependencies included;
#   - holdfast-core builds for wasm32 on its own.
# Import circles and file lengths are checked by tests/layers.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(tokio|tokio-[a-z-]+|mio|socket2|hyper|axum|tungstenite|wasm-bindgen|wasm-bindgen-[a-z-]+|js-sys|web-sys|gloo-[a-z-]+)$'
status=0
for target in host wasm32-unknown-unknown; do
    args=(-p holdfast-core --prefix none --format '{p}' -e normal,build,dev)
    [[ $target == host ]] || args+=(--target "$target")
    names=$(cargo tree "${args[@]}" | awk '{print $1}' | sort -u)
    bad=$(grep -E "$forbidden" <<<"$names" || true)
    if [[ -n $bad ]]; then
        echo "check-layers: holdfast-core ($target) depends on IO crates:" $bad >&2
        echo "  see: cargo tree -p holdfast-core --target $target -i <crate>" >&2
        status=1
    fi
done

# automerge needs a getrandom backend on wasm32; choosing one (wasm_js) is
# the final binary's business (the root crate does), so this standalone
# check names the "custom" backend, which leaves the symbol to the linker.
# Its own target directory keeps these flags away from the real wasm build.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/check-layers" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS='--cfg getrandom_backend="custom"' \
    cargo check -q -p holdfast-core --target wasm32-unknown-unknown || status=1

if [[ $status == 0 ]]; then
    echo "check-layers: holdfast-core has no IO dependency (host, wasm32) and builds for wasm32"
fi
exit $status
