#!/bin/sh
# Decode CPU per telegram, side by side: `wmbusd decode -` versus wmbusmeters reading a
# simulation file, on the same real telegrams of the corpus.
#
#   scripts/compare-wmbusmeters.sh /path/to/wmbusmeters
#   BENCH_TELEGRAMS=100000 BENCH_RUNS=5 scripts/compare-wmbusmeters.sh ~/src/wmbusmeters/build/wmbusmeters
#   scripts/compare-wmbusmeters.sh --wmbusd-only     # our side alone, same telegrams
#
# The wmbusmeters binary is the caller's: this script neither fetches nor builds it.
#
# Telegrams: for each driver of BENCH_DRIVERS (default: ten encrypted meter models) the
# first corpus entry that has an AES key, is a wireless frame, needs no prior telegram and
# is reproduced by wmbusmeters. An entry either program does not decode is left out (and
# named). The chosen telegrams are repeated round-robin to BENCH_TELEGRAMS lines.
#
# - wmbusmeters: `--format=json --ignoreduplicates=false simulation_N.txt` (lines
#   `telegram=|HEX|`), one meter per model given on the command line as NAME DRIVER ID KEY;
# - wmbusd: `decode --config bench.toml -` (the same hex, one a line; the keys as [[meter]]
#   tables).
#
# Both write their JSON to /dev/null. CPU = user+sys of the whole process (wait4 rusage).
# CPU per telegram = (CPU with N telegrams - CPU with 1 telegram) / (N - 1), so the
# start-up cost (argument parsing, driver tables) is not counted; median of BENCH_RUNS runs.
#
# Env: BENCH_TELEGRAMS (50000), BENCH_RUNS (3), BENCH_DRIVERS (corpus `driver` names),
# WMBUSMETERS_DRIVER (the driver given to wmbusmeters for every meter, e.g. auto; default:
# each entry's own), WMBUSD_BIN (default: cargo build --release, target/release/wmbusd),
# WMBUSD_CORPUS (../shared/corpus/wmbusmeters-public.jsonl).
# Needs python3. Prints one line per program and a RATIO line.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}
if [ $# -ne 1 ]; then
    usage >&2
    exit 2
fi
case $1 in
    -h | --help) usage; exit 0 ;;
esac
WMBUSMETERS=$1
if [ "$WMBUSMETERS" = "--wmbusd-only" ]; then
    WMBUSMETERS=
elif [ ! -x "$WMBUSMETERS" ]; then
    echo "compare-wmbusmeters: $WMBUSMETERS is not an executable" >&2
    exit 2
fi
case $WMBUSMETERS in
    /* | "") ;;
    *) WMBUSMETERS="$PWD/$WMBUSMETERS" ;;
esac

cd "$(dirname "$0")/.."
N=${BENCH_TELEGRAMS:-50000}
RUNS=${BENCH_RUNS:-3}
CORPUS=${WMBUSD_CORPUS:-../shared/corpus/wmbusmeters-public.jsonl}
DRIVERS=${BENCH_DRIVERS:-"aventieswm caltose elf2 engelmann-faw iwmtx5 kaden kadenwater picoflux unismart waterstarm"}
if [ -z "${WMBUSD_BIN:-}" ]; then
    cargo build --release --quiet --bin wmbusd
    WMBUSD_BIN="$PWD/target/release/wmbusd"
fi
if [ ! -r "$CORPUS" ]; then
    echo "compare-wmbusmeters: no corpus at $CORPUS (set WMBUSD_CORPUS)" >&2
    exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Candidates, one a line: driver meter_id key hex (separators removed). The driver is the
# name wmbusmeters printed for the entry (`expected.meter`: drivers were renamed over time,
# e.g. engelmann-faw became engelmann_faw), or WMBUSMETERS_DRIVER (e.g. auto) for all.
python3 - "$CORPUS" "${WMBUSMETERS_DRIVER:-}" $DRIVERS > "$WORK/candidates" <<'EOF'
import json, re, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for driver in sys.argv[3:]:
    for r in rows:
        if (r.get("driver") == driver and r.get("key") and r.get("frame") == "wmbus"
                and not r.get("prior_telegrams") and r.get("reproduced")):
            name = sys.argv[2] or r.get("expected", {}).get("meter") or driver
            print(name, r["meter_id"], r["key"], re.sub(r"[^0-9A-Fa-f]", "", r["telegram"]))
            break
    else:
        print(f"compare-wmbusmeters: no telegram for driver {driver}", file=sys.stderr)
EOF

# A telegram is kept when both programs decode it alone.
: > "$WORK/chosen"
while read -r driver id key hex; do
    printf '[gateway]\nid = "bench"\n\n[[meter]]\nid = "%s"\nname = "m%s"\nkey = "%s"\n' \
        "$id" "$id" "$key" > "$WORK/one.toml"
    printf 'telegram=|%s|\n' "$hex" > "$WORK/simulation_one.txt"
    if ! "$WMBUSD_BIN" decode --config "$WORK/one.toml" "$hex" > /dev/null 2>&1; then
        echo "compare-wmbusmeters: left out $driver $id: wmbusd does not decode it" >&2
        continue
    fi
    [ -z "$WMBUSMETERS" ] || got=$("$WMBUSMETERS" --silent --format=json --ignoreduplicates=false \
        "$WORK/simulation_one.txt" "m$id" "$driver" "$id" "$key" 2> /dev/null | grep -c '^{' || true)
    if [ -n "$WMBUSMETERS" ] && [ "$got" != 1 ]; then
        echo "compare-wmbusmeters: left out $driver $id: wmbusmeters does not decode it" >&2
        continue
    fi
    echo "$driver $id $key $hex" >> "$WORK/chosen"
done < "$WORK/candidates"
MODELS=$(wc -l < "$WORK/chosen")
if [ "$MODELS" -eq 0 ]; then
    echo "compare-wmbusmeters: no telegram both programs decode" >&2
    exit 1
fi

# Inputs for 1 and N telegrams; meters of both programs.
printf '[gateway]\nid = "bench"\n\n' > "$WORK/bench.toml"
set --
while read -r driver id key hex; do
    printf '[[meter]]\nid = "%s"\nname = "m%s"\nkey = "%s"\n\n' "$id" "$id" "$key" >> "$WORK/bench.toml"
    set -- "$@" "m$id" "$driver" "$id" "$key"
done < "$WORK/chosen"
for count in 1 "$N"; do
    awk -v n="$count" '{ hex[NR] = $4 } END { for (i = 0; i < n; i++) print hex[i % NR + 1] }' \
        "$WORK/chosen" > "$WORK/hex_$count.txt"
    sed 's/.*/telegram=|&|/' "$WORK/hex_$count.txt" > "$WORK/simulation_$count.txt"
done

# cpu_seconds CHECK STDIN CMD...: user+sys seconds of CMD (and its children), stdout to
# /dev/null; CHECK=exit: a non-zero exit status fails (wmbusmeters' own exit status is not
# relied on: its readings were counted above).
cpu_seconds() {
    python3 - "$@" <<'EOF'
import os, subprocess, sys
check, stdin, cmd = sys.argv[1] == "exit", open(sys.argv[2], "rb"), sys.argv[3:]
child = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
code = os.waitstatus_to_exitcode(status)
if check and code != 0:
    sys.exit(f"compare-wmbusmeters: {cmd[0]} exited {code}")
print(f"{usage.ru_utime + usage.ru_stime:.6f}")
EOF
}

wmbusd_cpu() {
    cpu_seconds exit "$WORK/hex_$1.txt" "$WMBUSD_BIN" decode --config "$WORK/bench.toml" -
}

wmbusmeters_cpu() {
    count=$1
    shift
    cpu_seconds any /dev/null "$WMBUSMETERS" --silent --format=json --ignoreduplicates=false \
        "$WORK/simulation_$count.txt" "$@"
}

# Sanity: wmbusmeters prints one JSON line per telegram of the N file.
lines=$N
[ -z "$WMBUSMETERS" ] || lines=$("$WMBUSMETERS" --silent --format=json \
    --ignoreduplicates=false "$WORK/simulation_$N.txt" "$@" 2> /dev/null | grep -c '^{' || true)
if [ "$lines" != "$N" ]; then
    echo "compare-wmbusmeters: wmbusmeters printed $lines readings for $N telegrams" >&2
    exit 1
fi

# per_telegram PROGRAM: median over RUNS of (cpu(N) - cpu(1)) / (N - 1), in µs.
per_telegram() {
    program=$1
    shift
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        one=$("${program}_cpu" 1 "$@")
        all=$("${program}_cpu" "$N" "$@")
        echo "$one $all"
        i=$((i + 1))
    done | awk -v n="$N" '{ us[NR] = ($2 - $1) / (n - 1) * 1e6; start[NR] = $1 * 1e3 }
        END {
            # Sort the runs and take the middle one.
            for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++)
                if (us[j] < us[i]) { t = us[i]; us[i] = us[j]; us[j] = t; t = start[i]; start[i] = start[j]; start[j] = t }
            m = int((NR + 1) / 2); printf "%.3f %.1f\n", us[m], start[m]
        }'
}

WMBUSD_RESULT=$(per_telegram wmbusd)
echo "telegrams: $N per run ($MODELS meter models, round-robin), runs: $RUNS, median"
echo "$WMBUSD_RESULT" | awk '{ printf "wmbusd       %10.3f us CPU/telegram (1 telegram: %.1f ms)\n", $1, $2 }'
[ -n "$WMBUSMETERS" ] || exit 0
WMBUSMETERS_RESULT=$(per_telegram wmbusmeters "$@")
echo "$WMBUSMETERS_RESULT" | awk '{ printf "wmbusmeters  %10.3f us CPU/telegram (1 telegram: %.1f ms)\n", $1, $2 }'
echo "$WMBUSD_RESULT $WMBUSMETERS_RESULT" | awk '{ if ($1 > 0) printf "RATIO wmbusmeters/wmbusd = %.1fx\n", $3 / $1; else print "RATIO n/a (wmbusd below measurement resolution)" }'
