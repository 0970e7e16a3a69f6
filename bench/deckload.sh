#!/bin/sh
# Deck load time: a 100,000-prefix deck with three windows per prefix (300,000 rows) against a plain
# 100,000-prefix deck, each loaded by `creditmeter config check` (which parses and validates the deck,
# overlap checks included). Usage: bench/deckload.sh [BINARY]   (default .build/release/creditmeter)
set -eu
BIN=${1:-.build/release/creditmeter}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
python3 - "$DIR" <<'PY'
import sys
d = sys.argv[1]
base = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment"
with open(f"{d}/plain.csv", "w") as f:
    f.write(base + "\n")
    for n in range(100_000):
        f.write(f"{1_000_000 + n * 7},0.1,0,60,60\n")
with open(f"{d}/windowed.csv", "w") as f:
    f.write(base + ",weekdays,time_from,time_to,description\n")
    for n in range(100_000):
        p = 1_000_000 + n * 7
        f.write(f"{p},0.1,0,60,60,mon-fri,08:00,18:00,peak\n{p},0.05,0,60,60,mon-fri,18:00,24:00,evening\n"
                f"{p},0.02,0,60,60,\"sat,sun\",,,weekend\n")
for name in ("plain", "windowed"):
    with open(f"{d}/{name}.toml", "w") as f:
        f.write(f'[store]\npath = "{d}/{name}.db"\n\n[[plan]]\nname = "default"\nrates = "{d}/{name}.csv"\n'
                f'timezone = "Europe/London"\n')
PY
for name in plain windowed; do
    best=""
    for run in 1 2 3; do
        start=$(date +%s.%N)
        "$BIN" config check --config "$DIR/$name.toml" >/dev/null
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    done
    rows=$(($(wc -l < "$DIR/$name.csv") - 1))
    echo "$name deck ($rows rows): config check best of 3 = ${best}s"
done
