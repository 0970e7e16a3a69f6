#!/usr/bin/env bash
# Check-and-reserve latency in the store, on SQLite and on PostgreSQL (a throw-away local server,
# scripts/pg-server): three agents' holds connections, set up as `run` sets its own, ask at a paced rate
# (HOLDS_RATE per second in all, default 1000, for HOLDS_SECONDS, default 10) for 1,000 clients with four
# live calls each, each answer one check-and-reserve transaction; latency is counted from when the answer
# was due. A third connection plays the API's own (on SQLite it checkpoints passively every 500 ms, as
# `run` does). Then a recharge on one agent and the next answer on another, 200 times: the time until
# an answer shows the recharge.
# This measures the store's side of authorize (what an agent does per answer, without HTTP); the
# figures come from the test build (debug), whose Swift is slower than a release build's while the
# round trips and SQLite's own work are the same.
# Usage: [HOLDS_RATE=N] [HOLDS_SECONDS=S] bench/holds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup deps >/dev/null
scripts/pg-server install
pg=$(mktemp -d /tmp/creditmeter-bench-holds.XXXXXX)
trap 'scripts/pg-server stop "$pg" >/dev/null 2>&1 || true; rm -rf "$pg"' EXIT
scripts/pg-server start "$pg" >/dev/null
swift build --build-tests > /dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
CREDITMETER_BENCH_HOLDS=1 CREDITMETER_TEST_PG_DIR="$pg" CREDITMETER_REQUIRE_PG=1 \
    swift test --skip-build --filter HoldsBenchmark 2>&1 | grep -E '^holds bench|✘|error' || true
