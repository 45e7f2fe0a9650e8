#!/bin/sh
# CPU cost of `wmbusd decode -` per telegram, whole process (release build).
#
# Input: every telegram of the public corpus (../shared/corpus or WMBUSD_CORPUS), each
# preceded by its prior telegrams (the full frames compact ones need), repeated until
# WMBUSD_BENCH_TELEGRAMS lines (default 100,000); keys from a configuration built from
# the corpus. The process runs WMBUSD_BENCH_RUNS times (default 3) with its output to
# /dev/null; user+sys CPU comes from /usr/bin/time, and the cost of starting with one
# telegram (measured the same way) is subtracted.
#
#   scripts/measure-decode.sh
#   WMBUSD_BENCH_TELEGRAMS=20000 scripts/measure-decode.sh
#   WMBUSD_BIN=/path/to/wmbusd scripts/measure-decode.sh   # skip the build
#
# Prints one line starting with MEASURE: the median CPU µs per telegram, and the
# startup CPU. Needs python3 (to read the corpus JSON lines).
set -eu
cd "$(dirname "$0")/.."
corpus=${WMBUSD_CORPUS:-../shared/corpus/wmbusmeters-public.jsonl}
lines=${WMBUSD_BENCH_TELEGRAMS:-100000}
runs=${WMBUSD_BENCH_RUNS:-3}
if [ -z "${WMBUSD_BIN:-}" ]; then
    cargo build --release --bin wmbusd >&2
    WMBUSD_BIN="$PWD/target/release/wmbusd"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$corpus" "$lines" "$work" <<'EOF'
import json, sys
corpus, lines, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entries = [json.loads(l) for l in open(corpus) if l.strip()]
one, keys = [], {}
for e in entries:
    one.extend(e.get("prior_telegrams") or [])
    one.append(e["telegram"])
    if e.get("key"):
        keys.setdefault(e["meter_id"], e["key"])
with open(f"{work}/telegrams.txt", "w") as f:
    for i in range(lines):
        f.write(one[i % len(one)] + "\n")
with open(f"{work}/first.txt", "w") as f:
    f.write(one[0] + "\n")
with open(f"{work}/keys.toml", "w") as f:
    f.write('[gateway]\nid = "measure"\n')
    for meter, key in sorted(keys.items()):
        f.write(f'[[meter]]\nid = "{meter}"\nkey = "{key}"\n')
EOF

# user+sys seconds of one `decode -` over $1.
cpu() {
    /usr/bin/time -f '%U %S' -o "$work/time" \
        "$WMBUSD_BIN" decode --config "$work/keys.toml" - <"$1" >/dev/null || true
    # The last line: before it, /usr/bin/time notes a non-zero exit status (a corpus
    # telegram without its key fails, as it should).
    tail -n 1 "$work/time" | awk '{ printf "%.4f\n", $1 + $2 }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

startup=$(for _ in $(seq "$runs"); do cpu "$work/first.txt"; done | median)
total=$(for _ in $(seq "$runs"); do cpu "$work/telegrams.txt"; done | median)
awk -v t="$total" -v s="$startup" -v n="$lines" 'BEGIN {
    printf "MEASURE decode - telegrams=%d cpu_s=%.3f startup_cpu_s=%.4f cpu_us_per_telegram=%.3f\n",
        n, t, s, (t - s) * 1e6 / n
}'
