#!/usr/bin/env bash
# Run every Check suite in $BUILD/tests and print one summary.
#
# Each tests/check_<module>.c builds to $BUILD/tests/check_<module>. The
# integration suites find the real binaries through these variables
# (tests/helpers.c), so the same suites run against the ASan build.
# The last line is "N passed, N failed" (CI reads it).
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
export BATCHD_BIN=${BATCHD_BIN:-$top/$BUILD/batchd}
export BATCHCTL_BIN=${BATCHCTL_BIN:-$top/$BUILD/batchctl}
export BATCHD_SINK_DIR=${BATCHD_SINK_DIR:-$top/$BUILD/sinks}
export BATCHD_TEST_SINK_DIR=${BATCHD_TEST_SINK_DIR:-$top/$BUILD/tests/sinks}
export BATCHD_BENCH_DIR=${BATCHD_BENCH_DIR:-$top/$BUILD/bench}
export BATCHD_SRC_DIR=$top
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}
# Leaks are errors on clean exit in the sanitizer build.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
suites_failed=()
only=" $* "   # suite names to run (check_NAME ...); none = all
for t in "$top/$BUILD"/tests/check_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    if [ "$only" != "  " ] && [[ "$only" != *" $name "* ]]; then continue; fi
    log=$(mktemp)
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    # Check prints: "NN%: Checks: C, Failures: F, Errors: E"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        c=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
        e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
        passed=$((passed + c - f - e))
        failed=$((failed + f + e))
        if [ "$rc" -ne 0 ] && [ $((f + e)) -eq 0 ]; then
            # The suite passed its checks but exited badly (a leak report).
            failed=$((failed + 1))
            suites_failed+=("$name(exit $rc)")
        elif [ $((f + e)) -ne 0 ]; then
            suites_failed+=("$name")
        fi
    else
        failed=$((failed + 1))
        suites_failed+=("$name(no summary, exit $rc)")
    fi
    rm -f "$log"
done
echo "=== batchd test summary: suites failed: ${suites_failed[*]:-none}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
