#!/usr/bin/env bash
# What SQLite itself needs to store the charges of bench/replay_hostile.sh, with none of creditmeter's
# code: 620,000 usage rows (random hash identities, 100 clients) inserted by the sqlite3 shell from a
# temporary table, 124 transactions of 5,000 rows, WAL, synchronous=FULL, foreign keys on, the bulk page
# cache and checkpoint interval of a replay; into the store's own schema, then with the index by client
# and moment left out. The difference is that index's price per replay; the first figure is the floor
# under which no replay into this schema can go on this machine.
# Usage: bench/usage_floor.sh [ROUNDS]   (default 3; prints each round, best last)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cache=bench/cache; mkdir -p "$cache"
scripts/setup deps >/dev/null
swift build -c release --product creditmeter > "$cache/build.log" 2>&1 || { cat "$cache/build.log"; exit 1; }
bin="$(swift build -c release --show-bin-path 2>/dev/null)/creditmeter"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '[store]\npath = "%s/t.db"\n' "$work" > "$work/t.toml"
# A store of the current schema with 100 clients.
for i in $(seq -w 1 100); do
    printf 'Bench#Pass1\nBench#Pass1\n' | "$bin" clients create --config "$work/t.toml" --username "f$i" \
        --first-name F --last-name L --email "f$i@example.com" --password-stdin >/dev/null
done
sqlite3 "$work/t.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
cp "$work/t.db" "$work/template.db"
python3 - "$work/insert.sql" <<'PY'
import sys
lines = ["PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=ON;",
         "PRAGMA cache_size=-3000;", "PRAGMA wal_autocheckpoint=10000;",
         "CREATE TEMP TABLE src (n INTEGER PRIMARY KEY, ident TEXT, c INTEGER);",
         "INSERT INTO src SELECT value, 'h:' || lower(hex(randomblob(16))), 1 + abs(random()) % 100 FROM generate_series(1, 620000);",
         ".timer on"]
for b in range(124):
    lo = b * 5000 + 1
    lines.append(
        "BEGIN IMMEDIATE; INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix,"
        " billsec, charged_seconds, cost, started_at, charged_at, start_key, answered_at, pricing)"
        " SELECT ident, (SELECT min(id) FROM clients) + c - 1, '1001', 'replay/asterisk-csv', n * 200, n,"
        " '7290' || (n % 100000), '729', 60, 60, 384850, 1790000000 + n * 3, 1796160113, 1790000000 + n * 3,"
        f" 1790000000 + n * 3 + 1, n % 5000 FROM src WHERE n BETWEEN {lo} AND {lo + 4999} ON CONFLICT DO NOTHING; COMMIT;")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
run() {  # name, SQL applied to the template first
    rm -f "$work/f.db"*; cp "$work/template.db" "$work/f.db"
    sqlite3 "$work/f.db" "$2" >/dev/null
    sqlite3 "$work/f.db" < "$work/insert.sql" | awk -v n="$1" '/^Run Time/ {r += $4; u += $6; s += $8}
        END {printf "%-28s %5.2f s (user %4.2f, sys %4.2f)\n", n, r, u, s}'
}
echo "SQLite $(sqlite3 --version | cut -d' ' -f1), 620,000 rows in 124 transactions"
for ((i = 1; i <= rounds; i++)); do
    run "schema as stored" "SELECT 1"
    run "without the client index" "DROP INDEX usage_client_moment"
done
