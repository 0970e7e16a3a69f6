# Shared by the wrk benchmarks (authorize.sh, cdr_post.sh): sourced, not run.
# Needs ROOT and BIN set (NEED_WRK=0 skips installing wrk). Sets DIR (a scratch directory, removed
# on exit unless KEEP=1), PORT and BASE, writes the deck and the head of the config (store, plan,
# [api] listen), and defines start_agent; the exit trap stops PID (the agent, once started).
# STORE=postgres puts the store in a PostgreSQL database on a throw-away local server (scripts/pg-server,
# on the same cores) instead of a SQLite file.

if [ "${NEED_WRK:-1}" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (Debian package)..." >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
if [ ! -x "$BIN" ]; then
    echo "building the release binary (a few minutes on 2 cores)..." >&2
    (cd "$ROOT" && swift build -c release --product creditmeter >&2)
fi

DIR=$(mktemp -d "/tmp/cm-bench-$(basename "$0" .sh).XXXXXX")
PID=""
PGDIR=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ -n "$PGDIR" ]; then "$ROOT/scripts/pg-server" stop "$PGDIR" >/dev/null 2>&1 || true; rm -rf "$PGDIR"; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
cat > "$DIR/rates.csv" <<'EOF'
prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,description
*,0.05,0,60,60,catch-all
1,0.0123,0,6,6,NANP
1212,0.0099,0.001,30,6,New York
44,0.031,0,1,1,UK
447,0.107,0.0005,30,1,UK mobile
33,0.02,0,30,6,France
49,0.0205,0,60,60,Germany
EOF
# The config's common head; each benchmark appends its own tables.
if [ "${STORE:-sqlite}" = postgres ]; then
    "$ROOT/scripts/pg-server" install
    PGDIR=$(mktemp -d /tmp/cm-bench-pg.XXXXXX)
    PGURL=$("$ROOT/scripts/pg-server" start "$PGDIR")
    cp "$PGDIR/password" "$DIR/pg.password"
    chmod 600 "$DIR/pg.password"
    STORE_TOML="url = \"$PGURL\"
password_file = \"$DIR/pg.password\""
else
    STORE_TOML="path = \"$DIR/store.db\""
fi
cat > "$DIR/creditmeter.toml" <<EOF
[store]
$STORE_TOML

[[plan]]
name = "default"
rates = "$DIR/rates.csv"

[api]
listen = "127.0.0.1:$PORT"
EOF

# Starts the agent on "$DIR/creditmeter.toml" (extra arguments go to `run`) and waits for /healthz.
start_agent() {
    "$BIN" run --config "$DIR/creditmeter.toml" "$@" 2> "$DIR/daemon.log" &
    PID=$!
    for _ in $(seq 1 200); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/daemon.log" >&2; echo "the daemon exited" >&2; exit 1; }
        sleep 0.05
    done
    cat "$DIR/daemon.log" >&2; echo "the API never answered" >&2; exit 1
}
