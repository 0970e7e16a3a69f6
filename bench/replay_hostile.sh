#!/usr/bin/env bash
# Replay benchmark on data shaped like a real Master.csv (bench/hostile_corpus.py): 16 columns, so every
# identity is a hash arriving in random order; 100 clients, every third with two account codes; ~2 %
# repeated lines, ~2 % malformed lines, ~1.5 % unknown accounts; a 5,000-prefix deck; a fresh store.
# For each size prints the time, peak RSS, the ratio to mawk summing billsec over the same file, and
# checks every client's Used against the corpus's independently computed expectation (exact to the µcr).
# Then the growth ratio time(largest) / time(smallest), which is linear when it is about size ratio.
# Usage: [CREDITMETER_BIN=PATH] bench/replay_hostile.sh [N ...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); ((${#sizes[@]})) || sizes=(100000 1000000)
source bench/common.sh
scripts/setup deps >/dev/null
bench_binary
bench_deck

cat > "$cache/hostile.toml" <<EOF2
[store]
path = "hostile.db"
[[plan]]
name = "default"
rates = "rates-5000.csv"
EOF2

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
declare -A took
for n in "${sizes[@]}"; do
    cdrs="$cache/hostile-$n.csv"
    [[ -s $cdrs ]] || python3 bench/hostile_corpus.py "$n" "$cdrs" "$deck"
    template="$cache/hostile-clients.db"
    if [[ ! -s $template ]]; then
        rm -f "$cache/hostile.db"*
        while IFS=$'\t' read -r user codes; do
            accounts=(); for c in $codes; do accounts+=(--account "$c"); done
            printf 'Bench#Pass1\nBench#Pass1\n' | "$bin" clients create --config "$cache/hostile.toml" --username "$user" \
                --first-name B --last-name H --email "$user@example.com" "${accounts[@]}" --password-stdin >/dev/null
        done < "$cdrs.clients.tsv"
        "$bin" status --config "$cache/hostile.toml" >/dev/null
        sqlite3 "$cache/hostile.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
        cp "$cache/hostile.db" "$template"
    fi
    bytes=$(stat -c %s "$cdrs")
    m0=$(date +%s.%N); mawk -F, '{s[$1]+=$14} END {for (k in s) n++; print n > "/dev/null"}' "$cdrs"; m1=$(date +%s.%N)
    rm -f "$cache/hostile.db"*; cp "$template" "$cache/hostile.db"
    /usr/bin/time -f '%e %M %U %S' -o "$cache/time.txt" "$bin" replay --config "$cache/hostile.toml" --format asterisk-csv \
        --timezone UTC --json "$cdrs" > "$cache/hostile-replay.json" || { echo "replay failed (exit $?)"; exit 1; }
    read -r secs rss_kb usr sys < "$cache/time.txt"
    took[$n]=$secs
    "$bin" clients list --config "$cache/hostile.toml" --json > "$cache/hostile-clients.json"
    python3 - "$n" "$bytes" "$secs" "$rss_kb" "$m0" "$m1" "$cdrs.expected.json" "$cache/hostile-clients.json" \
        "$cache/hostile-replay.json" "$usr" "$sys" <<'PY'
import json, sys
n, size, secs, rss, m0, m1, exp_path, got_path, summary_path, usr, sys_ = sys.argv[1:]
cpu = float(usr) + float(sys_)
n, size, secs, rss, mawk = int(n), int(size), float(secs), int(rss), float(m1) - float(m0)
sys.path.insert(0, "bench")
from money import wrong_clients
bad = wrong_clients(exp_path, got_path)
s = json.load(open(summary_path))
print(f"replay {n:>9,} lines ({size/2**20:6.1f} MiB; {s['charged']:,} charged, {s['duplicates']:,} duplicates, "
      f"{s['quarantined']:,} quarantined): {secs:6.2f} s (CPU {cpu:5.2f} s) = {n/secs:>9,.0f} lines/s, peak RSS {rss/1024:5.1f} MiB; "
      f"mawk {mawk:5.2f} s; ratio {secs/mawk:4.1f}x; " + ("exact" if not bad else f"WRONG for {len(bad)} clients"))
if bad: sys.exit(1)
PY
done
if ((${#sizes[@]} > 1)); then
    lo=${sizes[0]}; hi=${sizes[-1]}
    python3 -c "print(f'growth: time({$hi:,}) / time({$lo:,}) = {${took[$hi]} / ${took[$lo]}:.1f} for {$hi / $lo:.0f}x the lines')"
fi
