#!/usr/bin/env bash
# Recreates fuzz/corpus/{decode_plain,decode_keyed,records}/ from the telegram corpus
# (tests/data/wmbusmeters-public.jsonl) and the test vectors of protocol.md.
# Seed layouts follow the fuzz targets:
#   decode_plain : prior telegrams, then the telegram, back to back (split by L-field)
#   decode_keyed : 16-byte key (zeros when the entry has none), then as decode_plain
#   records      : record area of unencrypted frames (after the TPL header; approximate)
# Seeds are named by SHA-1 of their content, as libFuzzer names the inputs it adds, so
# re-running keeps what earlier fuzzing runs found; `--clean` starts from the seeds only.
#
# Usage: fuzz/seed.sh [--clean] [CORPUS.jsonl]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/corpus"
if [ "${1:-}" = "--clean" ]; then
    rm -rf "$out/decode_plain" "$out/decode_keyed" "$out/records"
    shift
fi
corpus="${1:-$here/../tests/data/wmbusmeters-public.jsonl}"
mkdir -p "$out/decode_plain" "$out/decode_keyed" "$out/records"

python3 - "$corpus" "$out" <<'PY'
import hashlib, json, re, sys
from pathlib import Path

corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
corpus_root = out.parent  # fuzz/

def hexbytes(text):
    # Separators as in the corpus notes ('_', '|', white space) are not data.
    return bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", text))

def write(target, data):
    if data:
        name = hashlib.sha1(data).hexdigest()
        (out / target / name).write_bytes(data)

def record_area(frame):
    """Bytes after the TPL header of an unencrypted frame, or None (approximate)."""
    if len(frame) > 4 and frame[0] == 0x68 and frame[3] == 0x68:
        # Wired long frame: 68 L L 68 C A CI ... CS 16
        ci, body, end = frame[6], 7, len(frame) - 2
    elif len(frame) > 11:
        ci, body, end = frame[10], 11, len(frame)
    else:
        return None
    header = {0x78: 0, 0x7A: 4, 0x72: 12}.get(ci)
    if header is None:
        return None
    start = body + header
    if header:
        cf = frame[start - 2] | frame[start - 1] << 8
        mode = (cf >> 8) & 0x1F
        if mode == 7:
            start += 1  # the configuration field extension byte
        # Encrypted payloads are only useful when already decrypted (start with 2F 2F).
        if mode != 0 and frame[start:start + 2] != b"\x2f\x2f":
            return None
    return frame[start:end]

# Full frames with their keys, from protocol.md §1.2, §4.2, §4.3, §4.5, §7.4.
VECTORS = [
    ("2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A", None),
    ("304493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3B853", None),
    ("2E44931578563412330 37A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3", "0102030405060708090A0B0C0D0E0F11"),
    ("4644A2054400 00570C37 72440000 57A2050C37A3003005D898C64FD0C9BD2634365084E4DF946736C71A2103E45A190CAA1A49B602E46C9F45FCEE79AFBE34F0C167FD857F659E", "CAFEBABE123456789ABCDEF0CAFEBABE"),
    ("2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24", "28F64A24988064A079AA2C807D6102AE"),
    ("43449315785634123303 8C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93", "000102030405060708090A0B0C0D0E0F"),
    ("530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D972785634129315330375002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93", "000102030405060708090A0B0C0D0E0F"),
    ("C244C514044305430004 8C200E900F002C25895E02003B0877D31DA840B17A0E0090 07100F8FAD4C4E61400DA4F3B1F7E273CC4C5C07F93CD20B237345DB39F9A98F8415E1C4B7A25C86E4C22D05C3352FA7E2E5627031F14643063F1DC8FE2C32459B6F02E4234B447B18E4BFDA8C4DA9B1EDE6CF29D0B2122A3E8B9DEEBEE3E6DBE6617B4E709EC6B595179CB01C2C0BDE6723A345B708652880C114A58DA07C73AD9EB8ACB17FA0A88F19BC84CB1F C56672DE8A9603FD0C050100 02FD0B2111F60B", "622B9656991FF0C1574C0950CF9278D1"),
    # Kamstrup C1 full frame, then the compact frame that refers to it (ELL shown decrypted).
    ("5C442D2C06357260190C8D207B70032F21271D7802F9FF15011104061765000004EEFF07BFA8000004EEFF08D24F00000414B1FB000002FD170000026CE919426CFF184406F764000044 14E8FA0000043B0B0000000259DB11025D1C0B"
     "3F442D2C06357260190C8D207C71032F21255C79DD8292830111176500 00BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B", None),
]
for frame, key in VECTORS:
    data = hexbytes(frame)
    write("decode_plain", data)
    write("decode_keyed", (hexbytes(key) if key else bytes(16)) + data)

# Record areas from protocol.md §5.12 and §7.4.
RECORD_VECTORS = [
    "2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F",
    "2F2F0E137506000000000DFD1120656 46F4D2053202 16C75646F6D7473657454207373656C657269772052454 24D412F2F",
    "046D3A2A283C04067D24000004131794140001FD1700426C1F3C44 06250B000084010653230000840F06000000002F2F2F2F2F03FD0C05010002FD0B2111",
    "046D1912A62B036E000000426CE1F1436E00000002FF2C0000 0259D40902 65FC0902FD66A000",
    "0202D20402152E16022A3423",
    "04 06 A6 0B 00 00 04 FF 07 4E 11 00 00 04 FF 08 13 07 00 00 04 14 C9 1A 00 00 02 FD 17 00 00 04 3B 00 00 00 00 02 59 B1 0B 02 5D 67 09",
]
for area in RECORD_VECTORS:
    write("records", hexbytes(area))

entries = 0
for line in corpus.read_text().splitlines():
    if not line.strip():
        continue
    entry = json.loads(line)
    entries += 1
    telegram = hexbytes(entry["telegram"])
    prior = b"".join(hexbytes(t) for t in entry.get("prior_telegrams") or [])
    key = hexbytes(entry["key"]) if entry.get("key") else bytes(16)
    write("decode_plain", prior + telegram)
    write("decode_keyed", key + prior + telegram)
    for frame in [telegram] + [hexbytes(t) for t in entry.get("prior_telegrams") or []]:
        area = record_area(frame)
        if area:
            write("records", area)

# Minimised inputs of past findings (fuzz/regressions/<target>/), kept in git.
for target in ("decode_plain", "decode_keyed", "records"):
    regressions = corpus_root / "regressions" / target
    if regressions.is_dir():
        for path in sorted(regressions.iterdir()):
            write(target, path.read_bytes())

for target in ("decode_plain", "decode_keyed", "records"):
    print(f"{target}: {len(list((out / target).iterdir()))} files")
print(f"from {entries} corpus entries and {len(VECTORS)} protocol.md frames")
PY
