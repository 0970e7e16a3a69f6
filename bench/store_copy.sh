#!/usr/bin/env bash
# `creditmeter store copy` of a SQLite ledger of about a million charges into a fresh PostgreSQL database on a
# throw-away local server (scripts/pg-server, loopback, scram-sha-256). The ledger is bench/replay_hostile.sh's
# hostile corpus (hash identities in random order, 100 clients, repeats, malformed lines, unknown accounts; 1.6
# million lines give about 990,000 charges) replayed into a fresh SQLite store, kept in bench/cache for the next run. Prints the copy's time, rows/s and
# peak RSS, then checks the totals independently of the copy's own verification: every client's Used and
# Assigned on PostgreSQL against SQLite's and against the corpus's expectation (exact to the µcr), and the
# usage rows and cost sum by psql against sqlite3. The server runs on the same two cores as the copy.
# Usage: [CREDITMETER_BIN=PATH] bench/store_copy.sh [N]   (N CDR lines, default 1600000: about a million charges)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1600000}
source bench/common.sh
scripts/setup deps >/dev/null
scripts/pg-server install
bench_binary
bench_deck
cdrs="$cache/hostile-$n.csv"
[[ -s $cdrs ]] || python3 bench/hostile_corpus.py "$n" "$cdrs" "$deck"

# The SQLite source: the corpus's clients, then one replay of the corpus.
src="copy-src-$n.db"
cat > "$cache/copy-src.toml" <<EOF2
[store]
path = "$src"
[node]
name = "bench1"
[[plan]]
name = "default"
rates = "rates-5000.csv"
EOF2
if [[ ! -s $cache/$src ]]; then
    rm -f "$cache/$src"*
    while IFS=$'\t' read -r user codes; do
        accounts=(); for c in $codes; do accounts+=(--account "$c"); done
        printf 'Bench#Pass1\nBench#Pass1\n' | "$bin" clients create --config "$cache/copy-src.toml" --username "$user" \
            --first-name B --last-name H --email "$user@example.com" "${accounts[@]}" --password-stdin >/dev/null
    done < "$cdrs.clients.tsv"
    "$bin" replay --config "$cache/copy-src.toml" --format asterisk-csv --timezone UTC "$cdrs" >/dev/null
    sqlite3 "$cache/$src" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi

pg=$(mktemp -d /tmp/creditmeter-bench-copy.XXXXXX)
trap 'scripts/pg-server stop "$pg" >/dev/null 2>&1 || true; rm -rf "$pg"' EXIT
url=$(scripts/pg-server start "$pg")
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -t/ -k5,5n | tail -n1)
psql() { PGPASSWORD=$(cat "$pg/password") "$pgbin/psql" -q -X -v ON_ERROR_STOP=1 "$@"; }
cp "$pg/password" "$cache/pg.password"
chmod 600 "$cache/pg.password"
psql "$url" -c "CREATE DATABASE copybench"
target="${url%/postgres}/copybench"
cat > "$cache/copy-pg.toml" <<EOF2
[store]
url = "$target"
password_file = "pg.password"
[node]
name = "bench1"
[[plan]]
name = "default"
rates = "rates-5000.csv"
EOF2

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $("$pgbin/postgres" --version)"
/usr/bin/time -f '%e %M %U %S' -o "$cache/time.txt" "$bin" store copy --config "$cache/copy-src.toml" --to "$target" \
    --password-file "$cache/pg.password" --json > "$cache/copy.json" 2> "$cache/copy.err" || { cat "$cache/copy.err"; exit 1; }
read -r secs rss_kb usr sys < "$cache/time.txt"
"$bin" clients list --config "$cache/copy-src.toml" --json > "$cache/copy-sqlite-clients.json"
"$bin" clients list --config "$cache/copy-pg.toml" --json > "$cache/copy-pg-clients.json"
sq=$(sqlite3 "$cache/$src" "SELECT count(*) || ' ' || coalesce(sum(cost), 0) FROM usage")
pq=$(psql -t -A "$target" -c "SELECT count(*) || ' ' || coalesce(sum(cost), 0) FROM usage")
python3 - "$secs" "$rss_kb" "$usr" "$sys" "$cache/copy.json" "$cdrs.expected.json" "$cache/copy-sqlite-clients.json" \
    "$cache/copy-pg-clients.json" "$sq" "$pq" <<'PY'
import json, sys
secs, rss, usr, sys_, summary, exp_path, sqlite_path, pg_path, sq, pq = sys.argv[1:]
secs, rss = float(secs), int(rss)
sys.path.insert(0, "bench")
from money import wrong_clients
s = json.load(open(summary))
bad = wrong_clients(exp_path, pg_path)
a = {c["username"]: (c["used"], c["assigned"]) for c in json.load(open(sqlite_path))}
b = {c["username"]: (c["used"], c["assigned"]) for c in json.load(open(pg_path))}
differ = [u for u in a if a[u] != b.get(u)] + [u for u in b if u not in a]
usage = s["rows"]["usage"]
ok = not bad and not differ and sq == pq and len(a) == len(b)
print(f"store copy of {s['total_rows']:,} rows ({usage:,} charges, {s['rows']['quarantine']:,} quarantined, "
      f"{s['rows']['outbox']:,} events): {secs:6.2f} s wall = {s['total_rows']/secs:>9,.0f} rows/s "
      f"({usage/secs:>9,.0f} charges/s); copy's own clock {s['seconds']} s; agent CPU {float(usr)+float(sys_):5.2f} s, "
      f"peak RSS {rss/1024:5.1f} MiB")
print(f"totals: usage rows/cost SQLite {sq}, PostgreSQL {pq}; {len(b)} clients; "
      + ("exact" if ok else f"WRONG: {len(bad)} clients off the corpus, {len(differ)} differ from SQLite"))
if not ok: sys.exit(1)
PY
