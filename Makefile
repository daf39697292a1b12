# holdfast — the commands a developer and CI run.
#
#   make test    install what the tests need (scripts/setup.sh installs only what
#                is missing), run the native tests and the simulation, the
#                browser tests in headless Chromium against real IndexedDB,
#                the npm package's tests in node, the browser E2E tests
#                (tests/e2e: Playwright + /usr/bin/chromium), check the crate
#                layering (scripts/check-layers.sh) and formatting
#   make demo    build the wasm package, the demo app (www/) and the server, and
#                serve them on http://127.0.0.1:3030 (HOLDFAST_DEMO_LISTEN,
#                HOLDFAST_DEMO_DATA); Ctrl-C stops it, the data stays
#   make bench   holdfast against automerge-repo 2.5.6, same workloads, same run
#                (bench/README.md): prints the table, writes bench/results/;
#                BENCH_REPS, BENCH_ONLY=W1,W3, BENCH_W7_SECONDS, BENCH_W7_CLIENTS,
#                BENCH_W7N_CLIENTS
#   make soak    the long runs make test keeps short (scripts/soak.sh): the
#                browser crash test and its two-tab mode for
#                HOLDFAST_SOAK_ROUNDS rounds each (200)
#                beside a CPU hog, the simulation with HOLDFAST_SOAK_SEEDS (5000)
#   make fuzz    the peer-input fuzz target (fuzz/) for FUZZ_SECONDS (1800),
#                validation on; fails on any panic or an input over 100 ms
#   make fuzz-cov  the coverage-guided targets (fuzz/libfuzzer: cargo-fuzz,
#                libFuzzer, nightly; setup fuzz-tools installs both if
#                missing): FUZZ_TARGETS (frame_decode repo_frames) one after
#                the other, each for FUZZ_MINUTES (10), one process; prints
#                libFuzzer's final figures, fails on a crash (any panic), an
#                input over 10 s or 2 GiB RSS. make test replays the
#                checked-in corpus (fuzz/libfuzzer/corpus/) on stable
#   make fmt     format all Rust code
#   make lint    clippy on every crate and target (and the wasm library with
#                and without test hooks), warnings are errors
#   make clean   remove cargo's build output and tests/js/node_modules
#
# Environment knobs (set in the environment or on the command line):
#   HOLDFAST_SIM_SEEDS  number of deterministic-simulation seeds the simulation
#                       tests run (default 1000); passed through to cargo test
#   HOLDFAST_SEED       replay exactly one seed (a failing run prints it), e.g.
#                       make test HOLDFAST_SEED=1234
#   HOLDFAST_CRASH_ROUNDS  browser crash-test rounds (tests/e2e/crash.test.mjs,
#                       default 20); HOLDFAST_CRASH_SEED replays its kill delays,
#                       HOLDFAST_CRASH_AIMED the share of kills aimed at
#                       compaction/quarantine commits (default 0.5)
#   HOLDFAST_TABS_CRASH_ROUNDS  rounds of the two-tab crash test
#                       (tests/e2e/crash-tabs.test.mjs, default 20);
#                       HOLDFAST_TABS_CRASH_SEED replays its kill delays
#   CARGO_TARGET_DIR    where cargo builds (cargo's default: ./target)
#   CI=true             set by CI; scripts/setup.sh never prompts in any case

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO       ?= cargo
WASM_TARGET := wasm32-unknown-unknown
SETUP       := scripts/setup.sh

HOLDFAST_SIM_SEEDS ?= 1000
export HOLDFAST_SIM_SEEDS
ifdef HOLDFAST_SEED
export HOLDFAST_SEED
endif

.PHONY: test demo bench soak fuzz fuzz-cov fmt lint clean

# The browser E2E tests (node --test tests/e2e/, ~3 min, most of it the
# browser crash tests: HOLDFAST_CRASH_ROUNDS and HOLDFAST_TABS_CRASH_ROUNDS,
# default 20 each) need what the lines
# before them provide: pkg/wasm/ (scripts/build-pkg.sh --dev), the
# holdfast-server binary (cargo build -p holdfast-server; the harness finds it
# through CARGO_TARGET_DIR, or HOLDFAST_SERVER_BIN), /usr/bin/chromium (setup
# browser) and tests/e2e/node_modules with playwright-core (setup playwright).
test:
	$(SETUP) node-test-deps wasm-target wasm-tools browser postgres playwright examples
	$(CARGO) test --workspace --all-targets -- --skip simulation_with
	$(CARGO) test --test simulation simulation_with -- --nocapture
	# The server's protocol, durability and hostile-frame suites again, on
	# 3 shards (one at a time: hostile_ops counts the shard threads' panics).
	HOLDFAST_TEST_SHARDS=3 $(CARGO) test -p holdfast-server --test integration_protocol --test integration_durability --test hostile_frames --test hostile_ops --test hostile_sockets --test metrics -- --test-threads=1
	WASM_BINDGEN_TEST_TIMEOUT=180 wasm-pack test --headless --chrome -- --features test-hooks --test web_idb --test web_idb_worker --test web_repo --test web_ops --test core_peer_input --test core_peer_ops
	scripts/build-pkg.sh --dev
	$(CARGO) build -p holdfast-server
	node --test tests/js/
	node --test tests/e2e/
	$(CARGO) check --lib --target $(WASM_TARGET)
	scripts/check-layers.sh
	$(CARGO) fmt --all -- --check

demo:
	scripts/demo.sh

FUZZ_SECONDS ?= 1800
fuzz:
	$(CARGO) run --release -p holdfast-fuzz -- --seconds $(FUZZ_SECONDS)

# cargo +nightly fuzz run per target (fuzz/libfuzzer/fuzz.sh --help); new
# inputs go to fuzz/libfuzzer/work/ (ignored), crashes to .../artifacts/.
FUZZ_MINUTES ?= 10
FUZZ_TARGETS ?= frame_decode repo_frames
fuzz-cov:
	$(SETUP) fuzz-tools
	fuzz/libfuzzer/fuzz.sh --minutes $(FUZZ_MINUTES) $(FUZZ_TARGETS)

# Release builds only: the wasm package (scripts/build-pkg.sh), the server and
# the W7 load generator. Not part of make test.
bench:
	$(SETUP) wasm-target wasm-bindgen browser playwright bench-deps postgres
	scripts/build-pkg.sh
	$(CARGO) build --release -p holdfast-server -p holdfast-load
	node bench/run.mjs

soak:
	$(SETUP) node-test-deps wasm-target wasm-tools browser playwright
	scripts/build-pkg.sh --dev
	$(CARGO) build -p holdfast-server
	scripts/soak.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --lib --target $(WASM_TARGET) --features test-hooks -- -D warnings
	$(CARGO) clippy --lib --target $(WASM_TARGET) -- -D warnings

clean:
	$(CARGO) clean
	rm -rf tests/js/node_modules tests/e2e/node_modules bench/node_modules bench/site bench/results
