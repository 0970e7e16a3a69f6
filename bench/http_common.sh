# Shared by the wrk benchmarks (authorize.sh, cdr_post.sh): sourced, not run.
# Needs ROOT and BIN set (NEED_WRK=0 skips installing wrk); sets DIR (a scratch directory, removed on exit unless KEEP=1) and the
# trap that stops PID (the agent, once started) on exit.

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
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
