#!/usr/bin/env bash
# Fuzz every CDR parser, the rate-deck parser and the config loader with a bigger budget than the CI run
# of Tests/FuzzTests, in release mode. Prints inputs/s per target and every failing case; a crash or hang
# writes the input to --out and names it. Usage:
#   bench/fuzz.sh [--scale N] [--iterations N] [--seed S] [--case K] [--out DIR]
#     --scale N       N times each target's CI count (default 100: ~500,000 CDR lines per parser)
#     --iterations N  exactly N inputs per target instead (overrides --scale)
#     --seed S        the run's seed (default: a new one, printed; FUZZ_SEED also works)
#     --case K        replay only case K of the seed (to reproduce a failure)
#     --out DIR       where failing, crashing, hanging and slowest inputs go (default bench/cache/fuzz)
# Exit status: 0 when every target passed, 1 otherwise. Found inputs belong in
# Tests/FuzzTests/RegressionCases.swift.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${FUZZ_SCALE:-100}
iterations=${FUZZ_ITERATIONS:-}
seed=${FUZZ_SEED:-$(( $(date +%s) % 1000000007 ))}
case_=${FUZZ_CASE:-}
out=${FUZZ_OUT:-$PWD/bench/cache/fuzz}
while (($#)); do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --iterations) iterations=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --case) case_=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "fuzz.sh: unknown argument $1 (try --help)" >&2; exit 64 ;;
    esac
done
mkdir -p "$out"
scripts/setup deps >/dev/null

# A build folder of its own: release tests need -enable-testing (other test targets use @testable), and
# building with it in .build would make the next plain release build (bench/replay.sh) start over.
scratch=${FUZZ_BUILD_PATH:-$PWD/.build-fuzz}
swiftpm=(-c release --scratch-path "$scratch" -Xswiftc -enable-testing)
log="$out/build.log"
echo "fuzz.sh: building the tests in release mode in $scratch (the first time takes minutes; log in $log)" >&2
swift build "${swiftpm[@]}" --build-tests > "$log" 2>&1 || { tail -40 "$log"; exit 1; }

export FUZZ_SEED=$seed FUZZ_SCALE=$scale FUZZ_OUT=$out FUZZ_KEEP_SLOWEST=1
# Release code is ~20x faster than the CI's debug build: one input taking 2 s is a finding (known: ~1 s
# for ~300 KB of non-UTF-8 bytes in a JSON key or a deck header, which are lowercased whole).
export FUZZ_SLOW_SECONDS=${FUZZ_SLOW_SECONDS:-2} FUZZ_HANG_SECONDS=${FUZZ_HANG_SECONDS:-10}
[[ -n $iterations ]] && export FUZZ_ITERATIONS=$iterations
[[ -n $case_ ]] && export FUZZ_CASE=$case_

echo "fuzz.sh: seed $seed, $(nproc) cores, ${iterations:+$iterations inputs per target}${iterations:-scale $scale}" >&2
started=$(date +%s)
set +e
swift test "${swiftpm[@]}" --skip-build --no-parallel --filter FuzzTests > "$out/run.log" 2>&1
status=$?
# From here on a grep that finds nothing is an answer, not an error.
set +o pipefail
elapsed=$(( $(date +%s) - started ))

grep -E '^fuzz: .*inputs in' "$out/run.log" | grep -v self-test | sed 's/^fuzz: /  /' || true
# Property violations (recorded issues), crashes and hangs, with the file holding each input.
# (The harness's self-test breaks a property on purpose, as a known issue: not a finding.)
failures=$(grep -E 'FUZZ_CASE=|fuzz: (CRASH|HANG)|Expectation failed|recorded an issue|unexpected signal' "$out/run.log" \
    | grep -v -e 'self-test' -e 'known issue' | sort -u || true)
total=$(grep -E '^fuzz: .*inputs in' "$out/run.log" | grep -v self-test | awk '{ s += $3 } END { print s + 0 }')
echo "fuzz.sh: ${total:-0} inputs in ${elapsed} s (seed $seed), test status $status"
if [[ $status -ne 0 || -n $failures ]]; then
    echo "fuzz.sh: FAILING CASES (reproduce with: bench/fuzz.sh --seed $seed --case K):"
    echo "$failures" | sed 's/^/  /'
    ls -1 "$out" | grep -E "^(crash|hang|violation)-.*seed${seed}" | grep -v self-test | sed "s|^|  $out/|" || true
    exit 1
fi
echo "fuzz.sh: no crash, no hang, no property broken"
