#!/usr/bin/env bash
# Latency of GET /v1/authorize on loopback, measured with wrk against the release binary.
#
#   bench/authorize.sh [CLIENTS] [RATE] [SECONDS]      defaults: 1000 clients, 1000 req/s, 20 s
#
# Starts `creditmeter run` with a scratch config and store, creates CLIENTS clients through the admin
# API (each with one account code, recharged), then runs wrk twice:
#   1. paced: CONNS connections, each waiting CONNS*1000/RATE ms between requests (wrk's Lua delay()),
#      so the offered load is about RATE req/s. Plain wrk has no exact constant-rate mode (wrk2 does,
#      and is not in Debian); the script prints the rate it achieved next to the target.
#   2. closed loop: CONNS connections back to back, to show the ceiling on this machine.
# Each request names one of 4 call ids per client, so it takes the reservation path (drop the call's
# old hold, recompute, hold again), as a PBX retrying or re-authorizing a call would.
#
# Env: CREDITMETER_BIN (default .build/release/creditmeter, built if missing), CONNS (default 10),
#      THREADS (default 2), KEEP=1 keeps the scratch directory, STORE=postgres keeps the store in a
#      PostgreSQL database on a throw-away local server (on the same cores) instead of SQLite.
#
#   HOLDS=25000 bench/authorize.sh      the made-up call id attack instead (Python, no wrk):
# one "hog" account asks with HOLDS fresh call ids (each allowed one is a live hold), then a victim
# client's authorize latency is measured sequentially over keep-alive, first quiet and then while the
# hog keeps flooding new call ids from another process. HOLD_CAP=N writes `[authorize]
# max_holds_per_client = N` (raise it to HOLDS to make the agent keep all of them; a build without
# the key refuses the config). VICTIM_REQUESTS (default 2000), FLOODERS (flooding processes, default 4).
set -euo pipefail

CLIENTS=${1:-1000}
RATE=${2:-1000}
SECONDS_RUN=${3:-20}
CONNS=${CONNS:-10}
THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CREDITMETER_BIN:-$ROOT/.build/release/creditmeter}

# The made-up call id run (HOLDS) uses Python, not wrk.
NEED_WRK=$([ -z "${HOLDS:-}" ] && echo 1 || echo 0)
# shellcheck source=bench/http_common.sh
source "$ROOT/bench/http_common.sh"

TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" > "$DIR/admin.token"
cat >> "$DIR/creditmeter.toml" <<EOF
admin_token_file = "$DIR/admin.token"

[authorize]
max_call_seconds = 3600
EOF
if [ -n "${HOLD_CAP:-}" ]; then echo "max_holds_per_client = $HOLD_CAP" >> "$DIR/creditmeter.toml"; fi

start_agent --log-level warning

if [ -n "${HOLDS:-}" ]; then
    for u in hog victim; do
        acct=$([ "$u" = hog ] && echo 900001 || echo 100001)
        curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -X POST "$BASE/v1/clients" --data-binary \
            "{\"username\":\"$u\",\"first_name\":\"Bench\",\"last_name\":\"Client\",\"email\":\"$u@example.com\",\"password\":\"Passw0rd!\",\"password_confirmation\":\"Passw0rd!\",\"accounts\":[\"$acct\"]}"
        curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -X POST "$BASE/v1/clients/$u/recharge" \
            --data-binary '{"amount":"1000000"}'
    done
    cat > "$DIR/holds.py" <<'EOF'
import http.client, subprocess, sys, time
port, holds, n, flooders = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def ask(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.read().decode().strip()

def fill(start, count):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    answers = {}
    for i in range(start, start + count):
        a = ask(conn, f"/v1/authorize?account=900001&dst=442071234567&call=fake-{i}&format=text")
        key = "ALLOW" if a.startswith("ALLOW") else a
        answers[key] = answers.get(key, 0) + 1
    return answers

def live():
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for line in ask(conn, "/metrics").splitlines():
        if line.startswith("creditmeter_reservations_live"):
            return line.split()[-1]
    return "?"

def victim(label):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lat = []
    for i in range(n):
        t = time.perf_counter()
        a = ask(conn, f"/v1/authorize?account=100001&dst=442071234567&call=victim-{i % 4}&format=text")
        lat.append(time.perf_counter() - t)
        assert a.startswith("ALLOW"), a
    lat.sort()
    ms = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"{label:<34} p50 {ms(0.5):8.3f} ms   p99 {ms(0.99):8.3f} ms   max {lat[-1] * 1000:8.3f} ms")

if len(sys.argv) > 5:  # a flooding child: fresh call ids until killed
    fill(int(sys.argv[5]), 10**9)
    sys.exit(0)
t = time.perf_counter()
answers = fill(0, holds)
print(f"hog asked {holds} made-up call ids in {time.perf_counter() - t:.1f} s: {answers}; live holds {live()}")
victim("victim, quiet")
floods = [subprocess.Popen([sys.executable, __file__, str(port), "0", "0", "0", str((k + 1) * 10**8)])
          for k in range(flooders)]
time.sleep(1)  # let the flood get going; this is a load generator, not a test
victim(f"victim, while {flooders} connections flood")
for f in floods: f.kill()
print(f"live holds after the flood {live()}")
EOF
    echo "made-up call ids: HOLDS=$HOLDS, HOLD_CAP=${HOLD_CAP:-default}, $(nproc) cores"
    python3 "$DIR/holds.py" "$PORT" "$HOLDS" "${VICTIM_REQUESTS:-2000}" "${FLOODERS:-4}"
    exit 0
fi

echo "creating $CLIENTS clients through the admin API..." >&2
for i in $(seq 1 "$CLIENTS"); do
    u=$(printf 'c%05d' "$i")
    curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -X POST "$BASE/v1/clients" --data-binary \
        "{\"username\":\"$u\",\"first_name\":\"Bench\",\"last_name\":\"Client\",\"email\":\"$u@example.com\",\"password\":\"Passw0rd!\",\"password_confirmation\":\"Passw0rd!\",\"accounts\":[\"$((100000 + i))\"]}"
    curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -X POST "$BASE/v1/clients/$u/recharge" \
        --data-binary '{"amount":"250"}'
done

cat > "$DIR/authorize.lua" <<'EOF'
local clients = tonumber(os.getenv("BENCH_CLIENTS"))
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS"))
local dsts = {"442071234567", "447700900123", "12125550123", "13105550123", "33142685300", "4930123456"}
local threads = 0
local n = 0
-- setup runs in the main state; "tid" becomes a global in each thread's own state.
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) n = (tid or 0) * 104729 end
function request()
    n = n + 1
    local c = (n * 7919) % clients + 1
    local path = string.format("/v1/authorize?account=%d&dst=%s&call=bench-%d-%d&format=text",
        100000 + c, dsts[n % #dsts + 1], c, n % 4)
    return wrk.format("GET", path)
end
function delay() return delay_ms end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d socket_errors=%d non2xx=%d\n",
        summary.requests, summary.duration, math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
        math.floor(latency:percentile(99)), math.floor(latency.max), e.connect + e.read + e.write + e.timeout, e.status))
end
EOF

run_wrk() { # label delay_ms
    local out
    out=$(BENCH_CLIENTS=$CLIENTS BENCH_DELAY_MS=$2 wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --latency \
        -s "$DIR/authorize.lua" "$BASE" | grep '^RESULT')
    python3 - "$1" "$out" <<'EOF'
import sys
label, line = sys.argv[1], sys.argv[2]
kv = dict(p.split("=") for p in line.split()[1:])
rate = int(kv["requests"]) / (int(kv["duration_us"]) / 1e6)
ms = lambda k: int(kv[k]) / 1000
print(f"{label:<44} {rate:9.0f} req/s   p50 {ms('p50_us'):6.3f} ms   p90 {ms('p90_us'):6.3f} ms   "
      f"p99 {ms('p99_us'):6.3f} ms   max {ms('max_us'):7.3f} ms   errors {kv['socket_errors']}/{kv['non2xx']}")
EOF
}

# Warm up (connections, caches), then measure.
BENCH_CLIENTS=$CLIENTS BENCH_DELAY_MS=0 wrk -t"$THREADS" -c"$CONNS" -d2s -s "$DIR/authorize.lua" "$BASE" >/dev/null
echo "authorize on loopback: $CLIENTS clients, $CONNS connections, $THREADS wrk threads, ${SECONDS_RUN}s per run, $(nproc) cores"
DELAY=$(( CONNS * 1000 / RATE ))
run_wrk "paced, target $RATE req/s (delay ${DELAY} ms/conn)" "$DELAY"
run_wrk "closed loop, $CONNS connections" 0
echo "answers by reason:"
curl -fsS "$BASE/metrics" | grep '^creditmeter_authorize_total' | sed 's/^/  /'
