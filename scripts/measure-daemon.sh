#!/bin/sh
# Resource use of `wmbusd run` with an iM871A simulator on a pty and a real mosquitto:
# RSS idle and under load (VmRSS from /proc/PID/status) and CPU time per telegram
# ((utime+stime from /proc/PID/stat) / telegrams) while telegrams arrive at a fixed rate.
#
# The daemon is the release build; the harness (simulator, subscriber) is the debug test
# binary of tests/daemon_e2e.rs, test `measure_rss_and_cpu_per_telegram`.
#
#   scripts/measure-daemon.sh                  # 30 s at 1,000 telegrams/s
#   WMBUSD_MEASURE_SECS=10 WMBUSD_MEASURE_RATE=500 scripts/measure-daemon.sh
#   WMBUSD_MEASURE_FSYNC=interval scripts/measure-daemon.sh   # spool fsync once a second
#
# Needs mosquitto (PATH or /usr/sbin). Prints one line starting with MEASURE.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin wmbusd
WMBUSD_BIN="$PWD/target/release/wmbusd" \
    cargo test --test daemon_e2e measure_rss_and_cpu_per_telegram -- --ignored --nocapture 2>&1 |
    grep -E '^MEASURE|panicked|test result'
