#!/bin/sh
# Benchmark of `wmbusd central` (test `bench_central` of tests/central.rs, run against the
# release build): WMBUSD_BENCH_FRAMES raw frames (default 100,000) of 10 simulated
# gateways covering 1,000 meters (each telegram forwarded by 2–3 of them) are queued at a
# real mosquitto for the instances' persistent shared-subscription sessions; then one, and
# in a second run two, instances take them into a real PostgreSQL (batched transactions,
# copies merged into one row per telegram, readings published from the store). Prints
# frames/s from the first stored row to the last telegram stored, and the speed-up.
#
#   scripts/measure-central.sh
#   WMBUSD_BENCH_FRAMES=20000 scripts/measure-central.sh
#
# Needs mosquitto and the PostgreSQL server binaries (/usr/lib/postgresql/*/bin).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin wmbusd
WMBUSD_BIN="$PWD/target/release/wmbusd" \
    cargo test --test central bench_central -- --ignored --nocapture 2>&1 |
    grep -E '^MEASURE|panicked|test result'
