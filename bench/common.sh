# Sourced by the benchmarks after they cd to the checkout's top: sets `cache` (bench/cache) and
# defines the steps several of them share.

cache=bench/cache
mkdir -p "$cache"

# Sets `bin`: CREDITMETER_BIN when given (to measure another build, e.g. an older commit's, on the same
# data), else this checkout's release build, built first (at low priority; its log in bench/cache).
bench_binary() {
    if [[ -n ${CREDITMETER_BIN:-} ]]; then
        bin=$CREDITMETER_BIN
        return
    fi
    nice -n 10 swift build -c release --product creditmeter > "$cache/build.log" 2>&1 || { cat "$cache/build.log"; exit 1; }
    bin="$(swift build -c release --show-bin-path 2>/dev/null)/creditmeter"
}

# Sets `deck`: bench/make_deck.py's 5,000-prefix rate deck, made once.
bench_deck() {
    deck="$cache/rates-5000.csv"
    [[ -s $deck ]] || bench/make_deck.py "$deck"
}

# Starts a throw-away PostgreSQL server on loopback (scripts/pg-server), stopped and removed on exit;
# sets `pg` (its directory), `url` (its postgres database, no password) and `pgbin`.
bench_pg_server() {
    scripts/pg-server install
    pg=$(mktemp -d /tmp/creditmeter-bench-pg.XXXXXX)
    trap 'scripts/pg-server stop "$pg" >/dev/null 2>&1 || true; rm -rf "$pg"' EXIT
    url=$(scripts/pg-server start "$pg")
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -t/ -k5,5n | tail -n1)
}
