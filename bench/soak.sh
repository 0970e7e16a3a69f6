#!/usr/bin/env bash
# Soak: the release daemon tails a file receiving CDRs at a steady rate, with a rename rotation every
# minute, a webhook receiver failing a third of requests and SIGKILL + restart every 90 s; at the end the
# ledger must equal totals computed independently from the written lines, and every event must have
# been received once by webhook-id. Prints the figures; exit 0 only if everything holds.
#   bench/soak.sh [--minutes M] [--rate CDRS_PER_S] [--clients N] [--fail-rate F] [--seed S]
#                 [--rotate-seconds S] [--kill-seconds S] [--keep]
# Default 10 minutes. Shorter runs scale the rotation and kill intervals down in proportion
# (--minutes 2: a rotation every 12 s, a kill every 18 s), so they see as many of each.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup deps >/dev/null
mkdir -p bench/cache
build() { swift build -c release --product creditmeter > bench/cache/soak-build.log 2>&1; }
# Once more on failure: a build interrupted by another SwiftPM client can leave a stale file map behind.
build || build || { tail -40 bench/cache/soak-build.log; exit 1; }
bin="$(swift build -c release --show-bin-path 2>/dev/null)/creditmeter"
exec python3 bench/soak.py --bin "$bin" "$@"
