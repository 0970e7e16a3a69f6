#!/usr/bin/env bash
# Replay benchmark (issue 6 targets): a cdrgen file of N Asterisk CDRs for 1,000 clients, a 5,000-prefix
# deck, a fresh store; prints CDRs/s, the ratio to mawk summing billsec per account on the same file,
# and peak RSS. Usage: bench/replay.sh [N ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); ((${#sizes[@]})) || sizes=(100000 1000000)
cache=bench/cache; mkdir -p "$cache"
scripts/setup deps >/dev/null
swift build -c release --product creditmeter > "$cache/build.log" 2>&1 || { cat "$cache/build.log"; exit 1; }
bin="$(swift build -c release --show-bin-path 2>/dev/null)/creditmeter"
clients=1000

# A 5,000-prefix deck: every cdrgen destination prefix, extended with digits, plus a catch-all.
deck="$cache/rates-5000.csv"
[[ -s $deck ]] || bench/make_deck.py "$deck"

# The clients, created once through the CLI (yescrypt hashing dominates), then copied per run.
template="$cache/clients-$clients.db"
cat > "$cache/bench.toml" <<EOF2
[store]
path = "store.db"
[[plan]]
name = "default"
rates = "rates-5000.csv"
EOF2
if [[ ! -s $template ]]; then
    echo "creating $clients clients (once)…" >&2
    rm -f "$cache/store.db"*
    for i in $(seq 1 $clients); do
        u=$(printf 'c%04d' "$i")
        printf 'Bench#Pass1\nBench#Pass1\n' | "$bin" clients create --config "$cache/bench.toml" --username "$u" \
            --first-name B --last-name "$i" --email "$u@example.com" --password-stdin >/dev/null
        "$bin" clients recharge --config "$cache/bench.toml" "$u" 1000000 >/dev/null
    done
    sqlite3 "$cache/store.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
    cp "$cache/store.db" "$template"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for n in "${sizes[@]}"; do
    cdrs="$cache/asterisk-$n.csv"
    [[ -s $cdrs ]] || "$bin" cdrgen --format asterisk-csv --count "$n" --clients $clients --seed 6 -o "$cdrs"
    bytes=$(stat -c %s "$cdrs")
    # mawk reference: sum billsec per accountcode (field 14 of a quoted 21-column line).
    m0=$(date +%s.%N); mawk -F, '{s[$1]+=$14} END {for (k in s) n++; print n > "/dev/null"}' "$cdrs"; m1=$(date +%s.%N)
    rm -f "$cache/store.db"*; cp "$template" "$cache/store.db"
    /usr/bin/time -f '%e %M' -o "$cache/time.txt" "$bin" replay --config "$cache/bench.toml" --format asterisk-csv \
        --timezone UTC --json "$cdrs" > "$cache/replay.json"
    read -r secs rss_kb < "$cache/time.txt"
    charged=$(python3 -c "import json;print(json.load(open('$cache/replay.json'))['charged'])")
    python3 - "$n" "$bytes" "$secs" "$rss_kb" "$m0" "$m1" "$charged" <<'PY'
import sys
n, size, secs, rss, m0, m1, charged = sys.argv[1:]
n, size, secs, rss, mawk = int(n), int(size), float(secs), int(rss), float(m1) - float(m0)
print(f"replay {n:>9,} CDRs ({size/2**20:6.1f} MiB, {int(charged):,} charged): {secs:6.2f} s = {n/secs:>9,.0f} CDRs/s, "
      f"peak RSS {rss/1024:5.1f} MiB; mawk {mawk:5.2f} s; ratio {secs/mawk:4.1f}x")
PY
done
