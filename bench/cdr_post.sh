#!/usr/bin/env bash
# Throughput and answer latency of POST /v1/cdr/{source} (CDRs over HTTP) on the SQLite store,
# measured with wrk against the release binary.
#
#   bench/cdr_post.sh [DOCS] [SECONDS]          defaults: 60000 documents, 10 s
#
# Starts `creditmeter run` with one `receive = "http"` freeswitch-json source and a scratch store,
# creates 50 clients, writes DOCS mod_json_cdr documents with `creditmeter cdrgen --format
# freeswitch-json` (A-legs and B-legs, about 1.6 KB each), then runs wrk with CONNS (default 16)
# keep-alive connections posting them back to back, each request one document with a new uuid.
# Prints wrk's requests/s (= CDRs/s) and latency percentiles, the non-2xx count, how many
# documents the store charged, and the quarantine size (0 expected). A run that posts more
# requests than there are documents starts again from the first (charged once, counted as
# duplicates): the script says so, and the figure then includes cheap duplicate requests.
#
# Env: CREDITMETER_BIN (default .build/release/creditmeter, built if missing), CONNS (16),
#      THREADS (2), KEEP=1 keeps the scratch directory, PERF=FILE records a perf profile of the agent.
set -euo pipefail

DOCS=${1:-60000}
SECONDS_RUN=${2:-10}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CREDITMETER_BIN:-$ROOT/.build/release/creditmeter}

# shellcheck source=bench/http_common.sh
source "$ROOT/bench/http_common.sh"

TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$DIR/cdr.token"
chmod 600 "$DIR/cdr.token"
cat >> "$DIR/creditmeter.toml" <<EOF

[[source]]
name = "fs-http"
receive = "http"
format = "freeswitch-json"
token_file = "$DIR/cdr.token"
timezone = "UTC"
EOF

echo "creating 50 clients and $DOCS documents..." >&2
for i in $(seq 1 50); do
    u=$(printf 'c%04d' "$i")
    printf 'Passw0rd!\nPassw0rd!\n' | "$BIN" clients create --config "$DIR/creditmeter.toml" --username "$u" \
        --first-name Bench --last-name Client --email "$u@example.com" --password-stdin >/dev/null
    "$BIN" clients recharge --config "$DIR/creditmeter.toml" "$u" 1000000 >/dev/null
done
printf 'Passw0rd!\nPassw0rd!\n' | "$BIN" clients create --config "$DIR/creditmeter.toml" --username trunk \
    --first-name Bench --last-name Trunk --email trunk@example.com --password-stdin >/dev/null
"$BIN" cdrgen --format freeswitch-json --count "$DOCS" --clients 50 --seed 5 -o "$DIR/docs.jsonl"

start_agent

cat > "$DIR/post.lua" <<'EOF'
-- Each wrk thread posts its share of the documents (every THREADS-th line), one a request.
local next_id = 0
function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
end
function init(args)
    docs = {}
    local n, threads = 0, tonumber(args[2])
    for line in io.lines(args[1]) do
        if n % threads == id then docs[#docs + 1] = line end
        n = n + 1
    end
    i = 0
    wrk.headers["Authorization"] = "Bearer " .. args[3]
    wrk.headers["Content-Type"] = "application/json"
end
function request()
    i = i + 1
    if i > #docs then i = 1 end
    return wrk.format("POST", "/v1/cdr/fs-http?uuid=bench", nil, docs[i])
end
EOF

echo "posting with $CONNS connections for ${SECONDS_RUN}s..." >&2
# PERF=FILE records the agent's profile during the run (perf report -i FILE).
if [ -n "${PERF:-}" ]; then perf record -F 499 -g -p "$PID" -o "$PERF" -- sleep "$SECONDS_RUN" 2>/dev/null & fi
wrk -t "$THREADS" -c "$CONNS" -d "${SECONDS_RUN}s" --latency -s "$DIR/post.lua" "$BASE/v1/cdr/fs-http" \
    -- "$DIR/docs.jsonl" "$THREADS" "$TOKEN" | tee "$DIR/wrk.txt"
cpu=$(awk "{print (\$14+\$15)/100}" /proc/$PID/stat)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
echo "agent CPU time during the run: ${cpu}s"

requests=$(awk '/requests in/ {print $1}' "$DIR/wrk.txt")
charged=$(sqlite3 "$DIR/store.db" "SELECT count(*) FROM usage")
quarantined=$(sqlite3 "$DIR/store.db" "SELECT count(*) FROM quarantine")
echo
echo "documents: $DOCS, requests: $requests, charged rows in the store: $charged, quarantined: $quarantined"
if [ "${requests:-0}" -gt "$DOCS" ]; then
    echo "note: wrk posted more requests than documents; the surplus were duplicates (charged nothing)"
fi
