#!/bin/sh
# Benchmark of `wmbusd run` against a real mosquitto (test `bench_daemon` of
# tests/daemon_scale.rs, run against the release build):
#
# - latency: an iM871A simulator on a pseudo-terminal, 20 telegrams/s; p50/p99 of the time
#   from handing a telegram to the simulator to its arrival at an MQTT subscriber; idle RSS
#   and start-up time;
# - throughput: a replay radio over WMBUSD_BENCH_TELEGRAMS telegrams as fast as the daemon
#   takes them, QoS 1 to the broker; telegrams/s at the subscriber, CPU µs of the daemon per
#   telegram (utime+stime from /proc/PID/stat), RSS after the load.
#
# Each run is done with 10 and with 10,000 configured meters, spool fsync "always".
#
#   scripts/measure-daemon.sh
#   WMBUSD_BENCH_TELEGRAMS=20000 WMBUSD_BENCH_FSYNC=interval scripts/measure-daemon.sh
#   WMBUSD_BENCH_METER_COUNTS="10" scripts/measure-daemon.sh
#   WMBUSD_BENCH_STORE=1 scripts/measure-daemon.sh      # with the SQLite reading store
#
# Needs mosquitto (PATH or /usr/sbin). Prints one line starting with MEASURE per run.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin wmbusd
for meters in ${WMBUSD_BENCH_METER_COUNTS:-10 10000}; do
    WMBUSD_BIN="$PWD/target/release/wmbusd" WMBUSD_BENCH_METERS=$meters \
        cargo test --test daemon_scale bench_daemon -- --ignored --nocapture 2>&1 |
        grep -E '^MEASURE|panicked|test result'
done
