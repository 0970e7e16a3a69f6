#!/usr/bin/env bash
# 1, 2 and 4 agents (`creditmeter run`, nodes pbx1…pbx4) tailing into one PostgreSQL database on a
# throw-away local server (scripts/pg-server: loopback, scram-sha-256; on the same cores as the agents).
# Prints, per agent count: the lines/s each agent and all of them committed when every file got a whole
# hostile corpus at once (random hash identities, repeats, bad lines, unknown accounts, clients with two
# account codes; exact to the µcr against the corpora's own costs), and the append-to-committed p50/p99
# of single lines written at RATE lines/s per agent. See bench/tail_pg.py for the method.
# Usage: [CREDITMETER_BIN=PATH] [AGENTS="1 2 4"] [LINES=100000] [RATE=50] [SECONDS_EACH=20] bench/tail_pg.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
scripts/setup deps >/dev/null
bench_binary
bench_deck
bench_pg_server
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $("$pgbin/postgres" --version)"
python3 bench/tail_pg.py --bin "$bin" --url "$url" --password-file "$pg/password" --pgbin "$pgbin" \
    --corpus-dir "$cache" --deck "$deck" --agents "${AGENTS:-1 2 4}" --lines "${LINES:-100000}" \
    --rate "${RATE:-50}" --seconds "${SECONDS_EACH:-20}"
