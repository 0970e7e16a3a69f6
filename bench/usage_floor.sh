#!/usr/bin/env bash
# What SQLite itself needs to store the charges of bench/replay_hostile.sh, with none of creditmeter's
# code: 620,000 usage rows (random hash identities, 100 clients) inserted by the sqlite3 shell from a
# temporary table, WAL, synchronous=FULL, foreign keys on, the bulk page cache and checkpoint interval of
# a replay; into the store's own schema in transactions of 40,000 rows (as a replay commits them) and of
# 5,000 (as replays did before), then with the index by client and moment left out. The first figure is
# the floor under which no replay into this schema can go on this machine. When bench/replay_hostile.sh
# has made its 1M-line corpus, mawk summing billsec over it (that benchmark's yardstick) is timed too.
# Usage: bench/usage_floor.sh [ROUNDS]   (default 3; prints each round)
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
cat > "$work/gen.py" <<'EOF'
import sys
out, rows = sys.argv[1], int(sys.argv[2])
lines = ["PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=ON;",
         "PRAGMA cache_size=-2000;", "PRAGMA wal_autocheckpoint=10000;",
         "CREATE TEMP TABLE src (n INTEGER PRIMARY KEY, ident TEXT, c INTEGER);",
         "INSERT INTO src SELECT value, 'h:' || lower(hex(randomblob(16))), 1 + abs(random()) % 100 FROM generate_series(1, 620000);",
         ".timer on"]
for b in range(620000 // rows):
    lo = b * rows + 1
    lines.append(
        "BEGIN IMMEDIATE; INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix,"
        " billsec, charged_seconds, cost, started_at, charged_at, start_key, answered_at, pricing)"
        " SELECT ident, (SELECT min(id) FROM clients) + c - 1, '1001', 'replay/asterisk-csv', n * 200, n,"
        " '7290' || (n % 100000), '729', 60, 60, 384850, 1790000000 + n * 3, 1796160113, 1790000000 + n * 3,"
        f" 1790000000 + n * 3 + 1, n % 5000 FROM src WHERE n BETWEEN {lo} AND {lo + rows - 1} ON CONFLICT DO NOTHING; COMMIT;")
open(out, "w").write("\n".join(lines) + "\n")
EOF
for rows in 40000 5000; do python3 "$work/gen.py" "$work/insert-$rows.sql" "$rows"; done
run() {  # name, SQL applied to the template first, rows per transaction
    rm -f "$work/f.db"*; cp "$work/template.db" "$work/f.db"
    sqlite3 "$work/f.db" "$2" >/dev/null
    sqlite3 "$work/f.db" < "$work/insert-$3.sql" | awk -v n="$1" '/^Run Time/ {r += $4; u += $6; s += $8}
        END {printf "%-46s %5.2f s (user %4.2f, sys %4.2f)\n", n, r, u, s}'
}
corpus=$cache/hostile-1000000.csv
echo "SQLite $(sqlite3 --version | cut -d' ' -f1), 620,000 rows"
for ((i = 1; i <= rounds; i++)); do
    if [[ -s $corpus ]]; then
        m0=$(date +%s.%N)
        mawk -F, '{s[$1]+=$14} END {for (k in s) n++; print n > "/dev/null"}' "$corpus"
        m1=$(date +%s.%N)
        awk -v a="$m0" -v b="$m1" 'BEGIN {printf "%-46s %5.2f s\n", "mawk over the hostile 1M-line corpus", b - a}'
    fi
    run "schema as stored, 40,000 rows a transaction" "SELECT 1" 40000
    run "schema as stored, 5,000 rows a transaction" "SELECT 1" 5000
    run "without the index by client, 40,000 rows" "DROP INDEX usage_client_moment" 40000
done
