#!/usr/bin/env bash
# Replay into a PostgreSQL store: bench/replay_hostile.sh's corpus (hash identities in random order, 100
# clients of which every third has two account codes, repeats, malformed lines, unknown accounts) replayed
# by `creditmeter replay` into a fresh database on a throw-away local server (scripts/pg-server, loopback,
# scram-sha-256). Prints lines/s and CDRs charged per second, peak RSS, and checks every client's Used
# against the corpus's independently computed expectation (exact to the µcr). The server runs on the same
# two cores as the replay, so the figure is the whole of both.
# CONNECTIONS is replay's --connections (batches committed at once; default 3), or a list to compare.
# Usage: [CREDITMETER_BIN=PATH] [CONNECTIONS="1 3"] bench/replay_pg.sh [N ...]   (default: 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); ((${#sizes[@]})) || sizes=(1000000)
source bench/common.sh
scripts/setup deps >/dev/null
bench_binary
bench_deck
bench_pg_server
psql() { PGPASSWORD=$(cat "$pg/password") "$pgbin/psql" -q -X -v ON_ERROR_STOP=1 "$@"; }
cp "$pg/password" "$cache/pg.password"
chmod 600 "$cache/pg.password"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $("$pgbin/postgres" --version)"
for n in "${sizes[@]}"; do
for connections in ${CONNECTIONS:-3}; do
    cdrs="$cache/hostile-$n.csv"
    [[ -s $cdrs ]] || python3 bench/hostile_corpus.py "$n" "$cdrs" "$deck"
    psql "$url" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench"
    cat > "$cache/pg.toml" <<EOF2
[store]
url = "${url%/postgres}/bench"
password_file = "pg.password"
[node]
name = "bench1"
[[plan]]
name = "default"
rates = "rates-5000.csv"
EOF2
    while IFS=$'\t' read -r user codes; do
        accounts=(); for c in $codes; do accounts+=(--account "$c"); done
        printf 'Bench#Pass1\nBench#Pass1\n' | "$bin" clients create --config "$cache/pg.toml" --username "$user" \
            --first-name B --last-name H --email "$user@example.com" "${accounts[@]}" --password-stdin >/dev/null
    done < "$cdrs.clients.tsv"
    psql "${url%/postgres}/bench" -c "CHECKPOINT" -c "VACUUM ANALYZE"
    bytes=$(stat -c %s "$cdrs")
    /usr/bin/time -f '%e %M %U %S' -o "$cache/time.txt" "$bin" replay --config "$cache/pg.toml" --format asterisk-csv \
        --timezone UTC --connections "$connections" --json "$cdrs" > "$cache/pg-replay.json" || { echo "replay failed (exit $?)"; exit 1; }
    read -r secs rss_kb usr sys < "$cache/time.txt"
    "$bin" clients list --config "$cache/pg.toml" --json > "$cache/pg-clients.json"
    python3 - "$n" "$bytes" "$secs" "$rss_kb" "$usr" "$sys" "$cdrs.expected.json" "$cache/pg-clients.json" \
        "$cache/pg-replay.json" "$connections" <<'PY'
import json, sys
n, size, secs, rss, usr, sys_, exp_path, got_path, summary_path, conns = sys.argv[1:]
n, size, secs, rss = int(n), int(size), float(secs), int(rss)
sys.path.insert(0, "bench")
from money import wrong_clients
bad = wrong_clients(exp_path, got_path)
s = json.load(open(summary_path))
print(f"replay into PostgreSQL, {conns} connections, {n:>9,} lines ({size/2**20:6.1f} MiB; {s['charged']:,} charged, {s['duplicates']:,} duplicates, "
      f"{s['quarantined']:,} quarantined): {secs:6.2f} s = {n/secs:>8,.0f} lines/s, {s['charged']/secs:>8,.0f} CDRs charged/s; "
      f"agent CPU {float(usr)+float(sys_):5.2f} s, peak RSS {rss/1024:5.1f} MiB; " + ("exact" if not bad else f"WRONG for {len(bad)} clients"))
if bad: sys.exit(1)
PY
done
done
