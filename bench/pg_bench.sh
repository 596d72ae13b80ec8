#!/usr/bin/env bash
# bench/pg_bench.sh - batchd's postgres sink against the same clients
# talking to PostgreSQL directly (DESIGN section 7, bench/README.md).
#
#   bench/pg_bench.sh                      3 reps x 3 s per cell, 1M-row lookup table
#   bench/pg_bench.sh --reps 5 --seconds 5 any bench/pgload option
#   bench/pg_bench.sh --no-build ...       use what is built
#
# Starts its own throwaway PostgreSQL 15 (tests/pgserver.c; as nobody when
# run as root) and batchd, runs bench/pgload, and writes the table to
# bench/results/pg.md and every line to bench/results/pg.raw.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ "${1:-}" = --no-build ]; then
    shift
else
    make -j2 all "$BUILD/bench/pgload" >/dev/null
fi
mkdir -p bench/results
raw=bench/results/pg.raw
"$BUILD/bench/pgload" --batchd "$BUILD/batchd" --sink-dir "$BUILD/sinks" \
    --reps 3 --seconds 3 "$@" | tee "$raw"
{
    echo "# bench/pg_bench.sh $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    grep '^|' "$raw"
} > bench/results/pg.md
